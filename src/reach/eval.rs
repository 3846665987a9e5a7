//! Evaluating the model's policies on demand: which pod groups a peer
//! admits, each group's egress and ingress rows (the groups it may send to
//! or hear from) and their columns (the groups that may send to it or hear
//! from it).
//!
//! Nothing here is kept in the model: a [`View`] remembers what one
//! computation (a listing, a preview, an explanation) has evaluated, and is
//! dropped with it. A preview asks only about the few groups a change
//! touches, so the model's resident memory is its compact summaries, not
//! sets over all pairs of groups; a full listing evaluates every row once.
//!
//! Every fact comes from [`crate::netpol`]: `Peer::admits_namespace` and
//! `Peer::admits_pod`, the rules' ports and addresses. This module only
//! decides what to evaluate and remembers the answers.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use super::bits::{BitSet, transpose};
use super::intern::{Body, CRule, PeerId, PeerIds};
use super::model::{GroupId, Model, NsId, PolicyId};
use super::tiers::Tiers;
use crate::cluster_policy::ClusterPolicies;
use crate::netpol::{Direction, NamespaceScope, Peer};

/// Scope key for peers that do not depend on the policy's namespace.
const ANY_SCOPE: NsId = NsId::MAX;

/// Which groups each peer admits, remembered across the views of one
/// computation (a preview's "before" and "after" share it).
pub(crate) struct PeerSets<'m> {
    model: &'m Model,
    /// Every group of the model.
    live: Rc<BitSet>,
    /// Peers a preview's new policy has and the model does not, numbered
    /// from the model's peer capacity on.
    extra: Vec<Peer>,
    sets: RefCell<HashMap<(PeerId, NsId), Rc<BitSet>>>,
    /// The cluster-wide policies around the NetworkPolicies.
    tiers: Tiers<'m>,
}

impl<'m> PeerSets<'m> {
    pub(crate) fn new(model: &'m Model) -> Self {
        Self::with_extra(model, Vec::new())
    }

    pub(crate) fn with_extra(model: &'m Model, extra: Vec<Peer>) -> Self {
        Self::with_cluster(model, extra, std::sync::Arc::clone(&model.cluster))
    }

    /// With the cluster-wide policies `cluster` in place of the model's
    /// (a preview of a change to one of them).
    pub(crate) fn with_cluster(
        model: &'m Model,
        extra: Vec<Peer>,
        cluster: std::sync::Arc<ClusterPolicies>,
    ) -> Self {
        let mut live = BitSet::empty(model.group_capacity());
        for g in model.group_ids() {
            live.insert(g as usize);
        }
        PeerSets {
            model,
            live: Rc::new(live),
            extra,
            sets: RefCell::new(HashMap::new()),
            tiers: Tiers::new(model, cluster),
        }
    }

    /// The cluster-wide tiers of this computation.
    pub(crate) fn tiers(&self) -> &Tiers<'m> {
        &self.tiers
    }

    /// The model evaluated.
    pub(crate) fn model(&self) -> &'m Model {
        self.model
    }

    /// The peer `id`.
    pub(crate) fn peer(&self, id: PeerId) -> Option<&Peer> {
        let base = self.model.intern.peer_capacity();
        match (id as usize).checked_sub(base) {
            Some(i) => self.extra.get(i),
            None => self.model.intern.peer(id),
        }
    }

    /// The groups peer `id` admits for a policy in namespace `scope`.
    pub(crate) fn set(&self, id: PeerId, scope: NsId) -> Rc<BitSet> {
        let Some(peer) = self.peer(id) else {
            return Rc::new(BitSet::empty(self.live.len()));
        };
        let scoped = matches!(
            peer,
            Peer::Pods {
                namespaces: NamespaceScope::PolicyNamespace,
                ..
            }
        );
        let key = (id, if scoped { scope } else { ANY_SCOPE });
        if let Some(s) = self.sets.borrow().get(&key) {
            return Rc::clone(s);
        }
        let m = self.model;
        let mut set = BitSet::empty(self.live.len());
        if matches!(peer, Peer::Pods { .. }) {
            let policy_ns = m.namespaces.get(scope as usize).map_or("", |n| &*n.name);
            let mut add_ns = |n: &super::model::Ns| {
                if !peer.admits_namespace(policy_ns, &n.name, &n.labels) {
                    return;
                }
                for &g in &n.groups {
                    let labels = &m.group(g).shape.labels;
                    if peer.admits_pod(policy_ns, &n.name, &n.labels, labels) {
                        set.insert(g as usize);
                    }
                }
            };
            if scoped {
                if let Some(n) = m.namespaces.get(scope as usize) {
                    add_ns(n);
                }
            } else {
                for (_, n) in &m.namespaces {
                    add_ns(n);
                }
            }
        }
        let set = Rc::new(set);
        self.sets.borrow_mut().insert(key, Rc::clone(&set));
        set
    }

    /// The groups some peer of `rule` admits, for a policy in `scope`.
    pub(crate) fn rule_set(&self, rule: &CRule, scope: NsId) -> Rc<BitSet> {
        match &rule.peers {
            PeerIds::Any => Rc::clone(&self.live),
            PeerIds::Only(ids) => match &ids[..] {
                [one] => self.set(*one, scope),
                many => {
                    let mut set = BitSet::empty(self.live.len());
                    for &id in many {
                        set.union_with(&self.set(id, scope));
                    }
                    Rc::new(set)
                }
            },
        }
    }

    /// Does `rule` (of a policy in `scope`) admit group `g`?
    pub(crate) fn admits(&self, rule: &CRule, scope: NsId, g: GroupId) -> bool {
        match &rule.peers {
            PeerIds::Any => true,
            PeerIds::Only(ids) => ids
                .iter()
                .any(|&id| self.set(id, scope).contains(g as usize)),
        }
    }
}

/// One policy replaced, added or removed, as a preview sees it.
pub(crate) struct Change {
    /// The policy's index: its own when it exists, else one no policy has.
    pub(crate) slot: PolicyId,
    /// Its namespace.
    pub(crate) namespace: NsId,
    /// Its body after the change (`None` when deleted).
    pub(crate) body: Option<Body>,
    /// Changed groups, sorted, with their selecting policies after it.
    pub(crate) selecting: Vec<(GroupId, [Vec<PolicyId>; 2])>,
}

/// What a connection evaluation reads: the model, or the model with one
/// policy changed (a preview). Rows and columns are computed when first
/// asked and remembered for the life of the view.
pub(crate) struct View<'s, 'm> {
    sets: &'s PeerSets<'m>,
    change: Option<Change>,
    rows: RefCell<HashMap<(usize, GroupId), Rc<BitSet>>>,
    /// Every column, when a full listing transposed every row.
    cols: Option<[Vec<BitSet>; 2]>,
}

impl<'s, 'm> View<'s, 'm> {
    /// The model as it is.
    pub(crate) fn new(sets: &'s PeerSets<'m>) -> Self {
        View {
            sets,
            change: None,
            rows: RefCell::new(HashMap::new()),
            cols: None,
        }
    }

    /// The model with `change` applied.
    pub(crate) fn changed(sets: &'s PeerSets<'m>, change: Change) -> Self {
        View {
            change: Some(change),
            ..View::new(sets)
        }
    }

    /// The model as it is, with every row and column evaluated up front:
    /// what a full listing reads.
    pub(crate) fn dense(sets: &'s PeerSets<'m>) -> Self {
        let view = View::new(sets);
        let n = sets.live.len();
        let cols = Direction::ALL.map(|d| {
            let rows: Vec<BitSet> = (0..n)
                .map(|g| {
                    if sets.live.contains(g) {
                        (*view.row(d, g as GroupId)).clone()
                    } else {
                        BitSet::empty(n)
                    }
                })
                .collect();
            transpose(&rows, n)
        });
        View {
            cols: Some(cols),
            ..view
        }
    }

    pub(crate) fn model(&self) -> &'m Model {
        self.sets.model
    }

    pub(crate) fn sets(&self) -> &'s PeerSets<'m> {
        self.sets
    }

    /// Policies selecting group `g` with `d` among their types.
    pub(crate) fn selecting(&self, d: Direction, g: GroupId) -> &[PolicyId] {
        if let Some(c) = &self.change
            && let Ok(i) = c.selecting.binary_search_by_key(&g, |x| x.0)
        {
            return &c.selecting[i].1[d.index()];
        }
        &self.model().group(g).selecting[d.index()]
    }

    /// Policy `p`'s rules for `d`.
    pub(crate) fn rules(&self, p: PolicyId, d: Direction) -> &[CRule] {
        if let Some(c) = &self.change
            && c.slot == p
        {
            return c.body.as_ref().map_or(&[], |b| b.rules(d));
        }
        self.model()
            .policies
            .get(p as usize)
            .map_or(&[], |sp| sp.body.rules(d))
    }

    /// Policy `p`'s namespace.
    pub(crate) fn policy_ns(&self, p: PolicyId) -> NsId {
        if let Some(c) = &self.change
            && c.slot == p
        {
            return c.namespace;
        }
        self.model()
            .policies
            .get(p as usize)
            .map_or(ANY_SCOPE, |sp| sp.namespace)
    }

    /// Egress: the groups `g` may send to; Ingress: the groups `g` may
    /// hear from (every group when `g` is not isolated for `d`).
    pub(crate) fn row(&self, d: Direction, g: GroupId) -> Rc<BitSet> {
        let pols = self.selecting(d, g);
        let tiered = self.sets.tiers.governs(d, g);
        if pols.is_empty() && !tiered {
            return Rc::clone(&self.sets.live);
        }
        let key = (d.index(), g);
        if let Some(r) = self.rows.borrow().get(&key) {
            return Rc::clone(r);
        }
        let mut row = BitSet::empty(self.sets.live.len());
        for &p in pols {
            let scope = self.policy_ns(p);
            for r in self.rules(p, d) {
                row.union_with(&self.sets.rule_set(r, scope));
            }
        }
        if tiered {
            let netpol = (!pols.is_empty()).then_some(&row);
            row = self.sets.tiers.row(d, g, netpol, &self.sets.live);
        }
        let row = Rc::new(row);
        self.rows.borrow_mut().insert(key, Rc::clone(&row));
        row
    }

    /// The transpose of [`View::row`]: Egress: the groups that may send
    /// to `g`; Ingress: the groups that may hear from `g`.
    pub(crate) fn col(&self, d: Direction, g: GroupId) -> Rc<BitSet> {
        if let Some(cols) = &self.cols {
            return Rc::new(cols[d.index()][g as usize].clone());
        }
        let n = self.sets.live.len();
        let target = Target::new(self.sets, g);
        let mut col = BitSet::empty(n);
        let mut isolated = BitSet::empty(n);
        for x in self.sets.live.iter() {
            let pols = self.selecting(d, x as GroupId);
            if !pols.is_empty() {
                isolated.insert(x);
            }
            let admits = pols.is_empty()
                || pols.iter().any(|&p| {
                    let scope = self.policy_ns(p);
                    self.rules(p, d)
                        .iter()
                        .any(|r| target.admitted_by(r, scope))
                });
            if admits {
                col.insert(x);
            }
        }
        // With cluster-wide policies a row is more than its rules' peers.
        if !self.sets.tiers.is_empty() {
            col = self.sets.tiers.col(d, g, col, &isolated);
        }
        Rc::new(col)
    }
}

/// One group as the far end of many rules: which peers admit it,
/// remembered by peer id. A column asks this of every rule of every
/// policy in the cluster; peers are shared by many policies, so each is
/// evaluated once, and no set over all groups is built for it.
struct Target<'a, 'm> {
    sets: &'a PeerSets<'m>,
    ns: NsId,
    ns_name: &'m str,
    ns_labels: &'m crate::selector::Labels,
    labels: &'m crate::selector::Labels,
    /// Per peer id: unknown, or whether the peer admits the group (for
    /// a peer without namespaceSelector: if the policy is in the group's
    /// namespace).
    memo: RefCell<Vec<Option<bool>>>,
}

impl<'a, 'm> Target<'a, 'm> {
    fn new(sets: &'a PeerSets<'m>, g: GroupId) -> Self {
        let m = sets.model;
        let group = m.group(g);
        let ns = &m.namespaces[group.namespace as usize];
        Target {
            sets,
            ns: group.namespace,
            ns_name: &ns.name,
            ns_labels: &ns.labels,
            labels: &group.shape.labels,
            memo: RefCell::new(vec![None; m.intern.peer_capacity() + sets.extra.len()]),
        }
    }

    /// Does `rule`, of a policy in namespace `scope`, admit the group?
    fn admitted_by(&self, rule: &CRule, scope: NsId) -> bool {
        match &rule.peers {
            PeerIds::Any => true,
            PeerIds::Only(ids) => ids.iter().any(|&id| self.peer_admits(id, scope)),
        }
    }

    fn peer_admits(&self, id: PeerId, scope: NsId) -> bool {
        let Some(peer) = self.sets.peer(id) else {
            return false;
        };
        let scoped = matches!(
            peer,
            Peer::Pods {
                namespaces: NamespaceScope::PolicyNamespace,
                ..
            }
        );
        if scoped && scope != self.ns {
            return false;
        }
        let known = self.memo.borrow().get(id as usize).copied().flatten();
        if let Some(v) = known {
            return v;
        }
        // A scoped peer is asked only for a policy in the group's own
        // namespace (above), so that namespace stands in for the policy's.
        let v = peer.admits_pod(self.ns_name, self.ns_name, self.ns_labels, self.labels);
        if let Some(slot) = self.memo.borrow_mut().get_mut(id as usize) {
            *slot = Some(v);
        }
        v
    }
}
