//! One copy of each distinct policy body and peer. Clusters stamp their
//! policies from templates, so 100,000 NetworkPolicies hold a few dozen
//! distinct bodies (selector, types, rules) and peers: the model keeps a
//! policy as its namespace, its name and a shared body, and a rule's peers
//! as ids into one table, so that evaluation can remember "does this peer
//! admit that pod" by a small integer.
//!
//! Bodies and peers are counted by the policies that use them and dropped
//! with the last one, so a long-lived watch does not accumulate them.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use crate::addresses::AddrSet;
use crate::netpol::{Direction, Directions, Peer, Peers, Policy, Rule};
use crate::ports::{ContainerPort, PortSet, RulePorts};
use crate::selector::Selector;

/// An index into the peer table.
pub(crate) type PeerId = u32;

/// A rule's peers, by id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum PeerIds {
    /// No `from`/`to`: every pod and every address.
    Any,
    /// These peers (never empty).
    Only(Box<[PeerId]>),
}

/// A rule with its peers interned and its addresses outside the cluster
/// computed once.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct CRule {
    pub(crate) peers: PeerIds,
    pub(crate) ports: RulePorts,
    /// Addresses outside the cluster some peer admits.
    pub(crate) addresses: AddrSet,
}

impl CRule {
    /// The ports admitted on a destination with `dst` container ports;
    /// borrowed when the rule names no port, the common case.
    pub(crate) fn ports_on<'a>(&'a self, dst: &[ContainerPort]) -> Cow<'a, PortSet> {
        if self.ports.named().is_empty() {
            Cow::Borrowed(self.ports.numeric())
        } else {
            Cow::Owned(self.ports.resolve(dst))
        }
    }
}

/// A NetworkPolicy without its namespace and name: what policies stamped
/// from one template share. Scoped peers (no `namespaceSelector`) mean the
/// policy's own namespace, whichever it is, so they are shared too.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Body {
    pub(crate) pod_selector: Selector,
    pub(crate) types: Directions,
    /// Ingress then egress rules, as written (also those of a direction
    /// that is not an effective type, so the policy can be given back
    /// whole; evaluation reads them only through [`Body::rules`]).
    rules: [Box<[CRule]>; 2],
}

impl Body {
    /// The rules that govern direction `d`: none unless `d` is an
    /// effective type.
    pub(crate) fn rules(&self, d: Direction) -> &[CRule] {
        if self.types.contains(d) {
            &self.rules[d.index()]
        } else {
            &[]
        }
    }
}

/// The peer and body tables.
#[derive(Debug, Clone, Default)]
pub(crate) struct Interner {
    /// Peers with the number of bodies that use them; `None` is a free id.
    peers: Vec<Option<(Peer, u32)>>,
    free: Vec<PeerId>,
    peer_ids: HashMap<Peer, PeerId>,
    /// Bodies with the number of policies that use them.
    bodies: HashMap<Arc<Body>, u32>,
}

impl Interner {
    /// The body of `p`, shared with every policy that has the same one.
    pub(crate) fn intern(&mut self, p: &Policy) -> Arc<Body> {
        for d in Direction::ALL {
            for r in p.rules(d) {
                if let Peers::Only(list) = &r.peers {
                    for peer in list {
                        self.peer_id_or_insert(peer);
                    }
                }
            }
        }
        let ids = &self.peer_ids;
        let body = build(p, |peer| ids.get(peer).copied().unwrap_or_default());
        if let Some(count) = self.bodies.get_mut(&body) {
            *count += 1;
            if let Some((shared, _)) = self.bodies.get_key_value(&body) {
                return Arc::clone(shared);
            }
        }
        // A known body's peers were all known: only a new body can have
        // added peers, and it counts them here.
        for id in peer_ids_of(&body) {
            if let Some(Some((_, uses))) = self.peers.get_mut(id as usize) {
                *uses += 1;
            }
        }
        let body = Arc::new(body);
        self.bodies.insert(Arc::clone(&body), 1);
        body
    }

    /// One policy no longer uses `body`: the last user drops it, and
    /// peers no body uses any more.
    pub(crate) fn release(&mut self, body: &Arc<Body>) {
        let Some(count) = self.bodies.get_mut(body) else {
            return;
        };
        *count -= 1;
        if *count > 0 {
            return;
        }
        self.bodies.remove(body);
        for id in peer_ids_of(body) {
            let Some(slot) = self.peers.get_mut(id as usize) else {
                continue;
            };
            if let Some((peer, uses)) = slot {
                *uses = uses.saturating_sub(1);
                if *uses == 0 {
                    self.peer_ids.remove(peer);
                    *slot = None;
                    self.free.push(id);
                }
            }
        }
    }

    /// The body of `p` for a preview, without changing the tables: peers
    /// the tables do not hold get ids from [`Interner::peer_capacity`] on,
    /// in the order of the returned list.
    pub(crate) fn lookup(&self, p: &Policy) -> (Body, Vec<Peer>) {
        let mut extra: Vec<Peer> = Vec::new();
        let base = self.peer_capacity();
        let body = build(p, |peer| match self.peer_ids.get(peer) {
            Some(&id) => id,
            None => {
                let pos = match extra.iter().position(|e| e == peer) {
                    Some(pos) => pos,
                    None => {
                        extra.push(peer.clone());
                        extra.len() - 1
                    }
                };
                (base + pos) as PeerId
            }
        });
        (body, extra)
    }

    /// One past the highest peer id in use.
    pub(crate) fn peer_capacity(&self) -> usize {
        self.peers.len()
    }

    /// The peer `id` (ids come from this table's bodies).
    pub(crate) fn peer(&self, id: PeerId) -> Option<&Peer> {
        self.peers
            .get(id as usize)
            .and_then(|e| e.as_ref())
            .map(|(p, _)| p)
    }

    /// Every peer in use, with its id.
    pub(crate) fn peers(&self) -> impl Iterator<Item = (PeerId, &Peer)> {
        self.peers
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.as_ref().map(|(p, _)| (i as PeerId, p)))
    }

    /// How many distinct bodies and peers are held.
    pub(crate) fn sizes(&self) -> (usize, usize) {
        (self.bodies.len(), self.peer_ids.len())
    }

    /// The policy `namespace/name` with `body`, as it was read.
    pub(crate) fn policy(&self, namespace: &str, name: &str, body: &Body) -> Policy {
        let rules = |d: Direction| -> Vec<Rule> {
            body.rules[d.index()]
                .iter()
                .map(|r| Rule {
                    peers: match &r.peers {
                        PeerIds::Any => Peers::Any,
                        PeerIds::Only(ids) => Peers::Only(
                            ids.iter()
                                .filter_map(|&id| self.peer(id).cloned())
                                .collect(),
                        ),
                    },
                    ports: r.ports.clone(),
                })
                .collect()
        };
        Policy {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            pod_selector: body.pod_selector.clone(),
            types: body.types,
            ingress: rules(Direction::Ingress),
            egress: rules(Direction::Egress),
        }
    }

    fn peer_id_or_insert(&mut self, peer: &Peer) -> PeerId {
        if let Some(&id) = self.peer_ids.get(peer) {
            return id;
        }
        let id = match self.free.pop() {
            Some(id) => {
                self.peers[id as usize] = Some((peer.clone(), 0));
                id
            }
            None => {
                self.peers.push(Some((peer.clone(), 0)));
                (self.peers.len() - 1) as PeerId
            }
        };
        self.peer_ids.insert(peer.clone(), id);
        id
    }
}

/// `p` as a [`Body`], its peers numbered by `id_of`.
fn build(p: &Policy, mut id_of: impl FnMut(&Peer) -> PeerId) -> Body {
    let rules = Direction::ALL.map(|d| {
        p.rules(d)
            .iter()
            .map(|r| CRule {
                peers: match &r.peers {
                    Peers::Any => PeerIds::Any,
                    Peers::Only(list) => PeerIds::Only(list.iter().map(&mut id_of).collect()),
                },
                ports: r.ports.clone(),
                addresses: r.peers.addresses(),
            })
            .collect::<Box<[CRule]>>()
    });
    Body {
        pod_selector: p.pod_selector.clone(),
        types: p.types,
        rules,
    }
}

fn peer_ids_of(body: &Body) -> impl Iterator<Item = PeerId> + '_ {
    body.rules
        .iter()
        .flatten()
        .flat_map(|r| match &r.peers {
            PeerIds::Any => &[][..],
            PeerIds::Only(ids) => &ids[..],
        })
        .copied()
}
