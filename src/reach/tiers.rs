//! The cluster-wide tiers in reachability: AdminNetworkPolicy,
//! BaselineAdminNetworkPolicy and ClusterNetworkPolicy around the
//! NetworkPolicies the rest of this module evaluates.
//!
//! For one direction of one connection the allowed ports are
//! `admin-allowed ∪ (lower − admin-denied)`, `lower` being what
//! NetworkPolicies allow where some selects the pod for that direction,
//! else everything the baseline does not deny
//! ([`crate::cluster_policy::tiers`], the same first-match evaluation the
//! truth tables hold). This file only says which cluster-wide policies
//! select a pod group and which rules' peers admit the far end, from sets
//! over the model's groups computed when first asked and remembered for
//! one computation, like [`super::eval::PeerSets`].
//!
//! Where no cluster-wide policy selects a group for a direction, nothing
//! here is consulted: a cluster without them is simulated exactly as
//! before.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::Arc;

use super::bits::BitSet;
use super::external::ExtMap;
use super::model::{GroupId, Model};
use crate::addresses::AddrSet;
use crate::cluster_policy::tiers::{self as t, TierOutcome};
use crate::cluster_policy::{ClusterPeer, ClusterPolicies, ClusterPolicy, ClusterRule, Tier};
use crate::netpol::Direction;
use crate::ports::{ContainerPort, PortSet};

/// The far end of one direction of a connection.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Far {
    /// A pod group of the model.
    Group(GroupId),
    /// An address outside the cluster.
    Addr(IpAddr),
}

/// The cluster-wide policies of one computation, with what has been
/// evaluated of them.
pub(crate) struct Tiers<'m> {
    model: &'m Model,
    set: Arc<ClusterPolicies>,
    /// Per policy (index into `set.all()`): the groups its subject selects.
    subjects: RefCell<Vec<Option<Rc<BitSet>>>>,
    /// Per (policy, direction, rule): the groups some peer admits.
    peers: RefCell<HashMap<(usize, usize, usize), Rc<BitSet>>>,
    /// Per (policy, direction, rule): the addresses some peer admits.
    addresses: RefCell<HashMap<(usize, usize, usize), Rc<AddrSet>>>,
    /// Per (direction, selecting policies): the candidate row's tier part.
    rows: RefCell<HashMap<RowKey, Rc<RowPart>>>,
    /// Per direction: the governed groups by selecting policies.
    classes: RefCell<[Option<Rc<Classes>>; 2]>,
}

/// Groups selected by the same cluster-wide policies, with the tier part
/// of their rows.
type Classes = Vec<(BitSet, Rc<RowPart>)>;

/// A direction and the cluster-wide policies selecting a group for it.
type RowKey = (usize, Vec<usize>);

/// What the tiers do to a group's row: groups an admin `Allow` may let
/// through, groups the admin tier denies on every port, groups the
/// baseline denies on every port.
struct RowPart {
    admin_allowed: BitSet,
    admin_denied: BitSet,
    baseline_denied: BitSet,
}

impl<'m> Tiers<'m> {
    /// The tiers of `set` over `model`'s groups.
    pub(crate) fn new(model: &'m Model, set: Arc<ClusterPolicies>) -> Self {
        let n = set.len();
        Tiers {
            model,
            set,
            subjects: RefCell::new(vec![None; n]),
            peers: RefCell::new(HashMap::new()),
            addresses: RefCell::new(HashMap::new()),
            rows: RefCell::new(HashMap::new()),
            classes: RefCell::new([None, None]),
        }
    }

    /// No cluster-wide policy at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    fn width(&self) -> usize {
        self.model.group_capacity()
    }

    fn subject(&self, pi: usize) -> Rc<BitSet> {
        if let Some(s) = self.subjects.borrow().get(pi).cloned().flatten() {
            return s;
        }
        let m = self.model;
        let p = &self.set.all()[pi];
        let mut set = BitSet::empty(self.width());
        for (_, n) in &m.namespaces {
            if !p.subject.selects_namespace(&n.labels) {
                continue;
            }
            for &g in &n.groups {
                if p.subject.selects(&n.labels, &m.group(g).shape.labels) {
                    set.insert(g as usize);
                }
            }
        }
        let set = Rc::new(set);
        if let Some(slot) = self.subjects.borrow_mut().get_mut(pi) {
            *slot = Some(Rc::clone(&set));
        }
        set
    }

    /// The policies of `tier` that select group `g` and have rules for
    /// `d`, in evaluation order (indexes into `set.all()`).
    fn selecting(&self, tier: Tier, d: Direction, g: GroupId) -> Vec<usize> {
        if self.set.is_empty() {
            return Vec::new();
        }
        self.set
            .all()
            .iter()
            .enumerate()
            .filter(|(i, p)| {
                p.tier == tier && !p.rules(d).is_empty() && self.subject(*i).contains(g as usize)
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// Does some cluster-wide policy select group `g` for `d`?
    pub(crate) fn governs(&self, d: Direction, g: GroupId) -> bool {
        !self.set.is_empty()
            && self
                .set
                .all()
                .iter()
                .enumerate()
                .any(|(i, p)| !p.rules(d).is_empty() && self.subject(i).contains(g as usize))
    }

    /// Which policies select `g` for `d`, as a key for caches of results
    /// that depend only on that.
    pub(crate) fn key(&self, d: Direction, g: GroupId) -> Vec<usize> {
        let mut k = self.selecting(Tier::Admin, d, g);
        k.extend(self.selecting(Tier::Baseline, d, g));
        k
    }

    fn rule(&self, pi: usize, d: Direction, ri: usize) -> &ClusterRule {
        &self.set.all()[pi].rules(d)[ri]
    }

    /// The groups some peer of rule `ri` of policy `pi` admits.
    fn admitted(&self, pi: usize, d: Direction, ri: usize) -> Rc<BitSet> {
        let key = (pi, d.index(), ri);
        if let Some(s) = self.peers.borrow().get(&key) {
            return Rc::clone(s);
        }
        let m = self.model;
        let rule = self.rule(pi, d, ri);
        let mut set = BitSet::empty(self.width());
        for peer in &rule.peers {
            let ClusterPeer::Pods(p) = peer else { continue };
            for (_, n) in &m.namespaces {
                if !p.admits_namespace("", &n.name, &n.labels) {
                    continue;
                }
                for &g in &n.groups {
                    if p.admits_pod("", &n.name, &n.labels, &m.group(g).shape.labels) {
                        set.insert(g as usize);
                    }
                }
            }
        }
        let set = Rc::new(set);
        self.peers.borrow_mut().insert(key, Rc::clone(&set));
        set
    }

    /// The addresses some peer of rule `ri` of policy `pi` admits (node
    /// peers through the model's known nodes).
    fn rule_addresses(&self, pi: usize, d: Direction, ri: usize) -> Rc<AddrSet> {
        let key = (pi, d.index(), ri);
        if let Some(s) = self.addresses.borrow().get(&key) {
            return Rc::clone(s);
        }
        let set = Rc::new(self.rule(pi, d, ri).addresses(&self.model.nodes));
        self.addresses.borrow_mut().insert(key, Rc::clone(&set));
        set
    }

    fn outcome(
        &self,
        tier: Tier,
        d: Direction,
        near: GroupId,
        far: Far,
        dst: &[ContainerPort],
    ) -> TierOutcome {
        let all = self.set.all();
        let selecting = self.selecting(tier, d, near);
        t::evaluate(
            selecting.iter().map(|&i| (i, &all[i])),
            d,
            |pi, ri, _| match far {
                Far::Group(g) => self.admitted(pi, d, ri).contains(g as usize),
                // Ingress peers are pods only: outside traffic is not
                // decided by these policies.
                Far::Addr(ip) => {
                    d == Direction::Egress && self.rule_addresses(pi, d, ri).contains(ip)
                }
            },
            |rule| match far {
                Far::Group(_) if !rule.ports.named().is_empty() => {
                    Cow::Owned(rule.ports.resolve(dst))
                }
                // An address has no container ports: names admit nothing.
                _ => Cow::Borrowed(rule.ports.numeric()),
            },
        )
    }

    /// The ports direction `d` of group `near` allows with `far`, given
    /// what NetworkPolicies allow (`netpol`: `None` when none selects
    /// `near` for `d`). `dst` are the destination's container ports.
    pub(crate) fn side(
        &self,
        d: Direction,
        near: GroupId,
        far: Far,
        dst: &[ContainerPort],
        netpol: Option<PortSet>,
    ) -> PortSet {
        if !self.governs(d, near) {
            return netpol.unwrap_or_else(PortSet::all);
        }
        let admin = self.outcome(Tier::Admin, d, near, far, dst);
        let lower = match netpol {
            Some(p) => p,
            None => t::baseline_allows(&self.outcome(Tier::Baseline, d, near, far, dst)),
        };
        t::combine(&admin, &lower)
    }

    /// What each tier decided for one direction of one connection, for an
    /// explanation: the admin tier's outcome and the baseline's (evaluated
    /// whether or not NetworkPolicies select the pod).
    pub(crate) fn trace(
        &self,
        d: Direction,
        near: GroupId,
        far: Far,
        dst: &[ContainerPort],
    ) -> (TierOutcome, TierOutcome) {
        (
            self.outcome(Tier::Admin, d, near, far, dst),
            self.outcome(Tier::Baseline, d, near, far, dst),
        )
    }

    /// The policy at `pi`.
    pub(crate) fn policy(&self, pi: usize) -> &ClusterPolicy {
        &self.set.all()[pi]
    }

    /// A group's row with the tiers applied: `netpol` is the row
    /// NetworkPolicies give (`None` when none selects `g` for `d`). A
    /// superset of the groups some port reaches: exact where a rule decides
    /// every port, wider where it decides some.
    pub(crate) fn row(
        &self,
        d: Direction,
        g: GroupId,
        netpol: Option<&BitSet>,
        live: &BitSet,
    ) -> BitSet {
        let part = self.row_part(d, g);
        let mut row = match netpol {
            Some(r) => r.clone(),
            None => {
                let mut r = live.clone();
                r.subtract_with(&part.baseline_denied);
                r
            }
        };
        row.union_with(&part.admin_allowed);
        row.subtract_with(&part.admin_denied);
        row
    }

    fn row_part(&self, d: Direction, g: GroupId) -> Rc<RowPart> {
        let admin = self.selecting(Tier::Admin, d, g);
        let baseline = self.selecting(Tier::Baseline, d, g);
        self.part_of(d, admin, baseline)
    }

    /// The tier part of the rows of groups selected by exactly `admin` and
    /// `baseline` for `d`.
    fn part_of(&self, d: Direction, admin: Vec<usize>, baseline: Vec<usize>) -> Rc<RowPart> {
        let mut key = admin.clone();
        key.push(usize::MAX);
        key.extend(&baseline);
        let key = (d.index(), key);
        if let Some(p) = self.rows.borrow().get(&key) {
            return Rc::clone(p);
        }
        let n = self.width();
        let (admin_allowed, admin_denied) = self.fully(&admin, d, n);
        let (_, baseline_denied) = self.fully(&baseline, d, n);
        let part = Rc::new(RowPart {
            admin_allowed,
            admin_denied,
            baseline_denied,
        });
        self.rows.borrow_mut().insert(key, Rc::clone(&part));
        part
    }

    /// The groups some cluster-wide policy selects for `d`, grouped by
    /// which ones select them, with the tier part of their rows.
    fn classes(&self, d: Direction) -> Rc<Classes> {
        if let Some(c) = self.classes.borrow()[d.index()].as_ref() {
            return Rc::clone(c);
        }
        let mut by: HashMap<(Vec<usize>, Vec<usize>), BitSet> = HashMap::new();
        for g in self.model.group_ids() {
            let admin = self.selecting(Tier::Admin, d, g);
            let baseline = self.selecting(Tier::Baseline, d, g);
            if admin.is_empty() && baseline.is_empty() {
                continue;
            }
            by.entry((admin, baseline))
                .or_insert_with(|| BitSet::empty(self.width()))
                .insert(g as usize);
        }
        let classes: Classes = by
            .into_iter()
            .map(|((admin, baseline), members)| (members, self.part_of(d, admin, baseline)))
            .collect();
        let classes = Rc::new(classes);
        self.classes.borrow_mut()[d.index()] = Some(Rc::clone(&classes));
        classes
    }

    /// A column with the tiers applied: `netpol` holds the groups whose
    /// NetworkPolicy row holds `g` and the groups no NetworkPolicy selects
    /// for `d` (`isolated` are those some does). The transpose of
    /// [`Tiers::row`] over every group, one class of alike-selected groups
    /// at a time rather than one row per group.
    pub(crate) fn col(
        &self,
        d: Direction,
        g: GroupId,
        mut netpol: BitSet,
        isolated: &BitSet,
    ) -> BitSet {
        let g = g as usize;
        for (members, part) in self.classes(d).iter() {
            if part.admin_denied.contains(g) {
                netpol.subtract_with(members);
            } else if part.admin_allowed.contains(g) {
                netpol.union_with(members);
            } else if part.baseline_denied.contains(g) {
                let mut open = members.clone();
                open.subtract_with(isolated);
                netpol.subtract_with(&open);
            }
        }
        netpol
    }

    /// For policies in order: the groups some `Allow` rule may admit, and
    /// the groups whose first matching rule is a `Deny` of every port.
    fn fully(&self, policies: &[usize], d: Direction, n: usize) -> (BitSet, BitSet) {
        let mut allowed = BitSet::empty(n);
        let mut denied = BitSet::empty(n);
        let mut touched = BitSet::empty(n);
        for &pi in policies {
            for (ri, rule) in self.set.all()[pi].rules(d).iter().enumerate() {
                let admitted = self.admitted(pi, d, ri);
                match rule.action {
                    crate::cluster_policy::Action::Allow => allowed.union_with(&admitted),
                    crate::cluster_policy::Action::Deny if rule.ports.covers_all() => {
                        let mut fresh = (*admitted).clone();
                        fresh.subtract_with(&touched);
                        denied.union_with(&fresh);
                    }
                    _ => {}
                }
                touched.union_with(&admitted);
            }
        }
        (allowed, denied)
    }

    /// Egress of group `g` to addresses outside the cluster with the tiers
    /// applied to what NetworkPolicies allow (`netpol`: `None` when none
    /// selects `g` for egress). Ingress from outside is never decided by
    /// these policies, so it is not asked for here.
    pub(crate) fn egress_external(&self, g: GroupId, netpol: Option<ExtMap>) -> ExtMap {
        let d = Direction::Egress;
        let admin = self.selecting(Tier::Admin, d, g);
        let baseline = if netpol.is_none() {
            self.selecting(Tier::Baseline, d, g)
        } else {
            Vec::new()
        };
        // Cut the address space wherever a rule's addresses or a
        // NetworkPolicy's entries start or end: on each piece every rule
        // matches all of it or none of it.
        let mut pieces = vec![AddrSet::all()];
        let mut cut = |by: &AddrSet| {
            if by.is_empty() {
                return;
            }
            pieces = pieces
                .drain(..)
                .flat_map(|p| [p.intersect(by), p.subtract(by)])
                .filter(|p| !p.is_empty())
                .collect();
        };
        for &pi in admin.iter().chain(&baseline) {
            for ri in 0..self.set.all()[pi].rules(d).len() {
                cut(&self.rule_addresses(pi, d, ri));
            }
        }
        if let Some(np) = &netpol {
            for (a, _) in np.entries() {
                cut(a);
            }
        }
        let all = self.set.all();
        let parts: Vec<(AddrSet, PortSet)> = pieces
            .into_iter()
            .map(|piece| {
                let outcome = |policies: &[usize]| {
                    t::evaluate(
                        policies.iter().map(|&i| (i, &all[i])),
                        d,
                        |pi, ri, _| {
                            let a = self.rule_addresses(pi, d, ri);
                            !a.is_empty() && piece.subtract(&a).is_empty()
                        },
                        |rule| Cow::Borrowed(rule.ports.numeric()),
                    )
                };
                let lower = match &netpol {
                    Some(np) => np
                        .entries()
                        .iter()
                        .find(|(a, _)| piece.subtract(a).is_empty())
                        .map(|(_, p)| p.clone())
                        .unwrap_or_default(),
                    None => t::baseline_allows(&outcome(&baseline)),
                };
                let ports = t::combine(&outcome(&admin), &lower);
                (piece, ports)
            })
            .collect();
        ExtMap::from_parts(&parts)
    }
}
