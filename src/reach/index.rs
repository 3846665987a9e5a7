//! What is precomputed once per model so that connections are cheap to
//! evaluate: which policies select each pod group (per direction), which
//! pod groups each rule's peers admit, and per group the set of groups its
//! egress may reach and its ingress may hear from (with their transposes).
//!
//! Every fact here comes from [`crate::netpol`]: `Policy::selects`,
//! `Policy::isolates`, `Peer::admits_namespace`/`admits_pod`,
//! `Peers::addresses` and `RulePorts::resolve`. This module only decides
//! what to evaluate and remembers the answers.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use super::bits::{BitSet, transpose};
use super::model::PodGroup;
use crate::addresses::AddrSet;
use crate::netpol::{Direction, NamespaceScope, Peer, Peers, Policy, Rule};
use crate::ports::{ContainerPort, PortSet, RulePorts};
use crate::selector::Labels;

/// One rule with its peers evaluated against every pod group.
#[derive(Debug, Clone)]
pub(crate) struct RuleData {
    /// Pod groups some peer of the rule admits.
    pub(crate) admitted: Arc<BitSet>,
    /// Addresses outside the cluster some peer admits.
    pub(crate) addresses: AddrSet,
    /// The rule's ports as written.
    pub(crate) ports: RulePorts,
}

impl RuleData {
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

/// A policy's rules, evaluated; the rules of a direction that is not an
/// effective type are left out, since they govern nothing.
#[derive(Debug, Clone, Default)]
pub(crate) struct PolicyData {
    pub(crate) rules: [Vec<RuleData>; 2],
}

/// Which pod groups a peer admits, shared between every rule that names
/// the same peer (policies are often stamped from templates).
#[derive(Debug, Clone, Default)]
pub(crate) struct PeerMemo {
    // A peer without namespaceSelector means the policy's own namespace,
    // so the namespace is part of its key.
    sets: HashMap<(Option<String>, Peer), Arc<BitSet>>,
}

/// Where peer sets are looked up: a read-only memo (the base model's, in
/// a preview) and one that takes new entries.
pub(crate) struct Memos<'a> {
    pub(crate) shared: Option<&'a PeerMemo>,
    pub(crate) own: PeerMemo,
}

/// The namespaces and pod groups peers are evaluated against. Groups are
/// stored in workload order, namespace first, and namespaces by name, so
/// each namespace's groups are one contiguous run ([`Universe::groups_in`]).
pub(crate) struct Universe<'a> {
    pub(crate) namespaces: &'a [(String, Labels)],
    pub(crate) groups: &'a [PodGroup],
}

impl<'a> Universe<'a> {
    pub(crate) fn new(namespaces: &'a [(String, Labels)], groups: &'a [PodGroup]) -> Self {
        debug_assert!(groups.is_sorted_by_key(|g| g.namespace));
        Universe { namespaces, groups }
    }

    /// The groups of namespace `ni`.
    fn groups_in(&self, ni: usize) -> std::ops::Range<usize> {
        let start = self.groups.partition_point(|g| (g.namespace as usize) < ni);
        let end = self
            .groups
            .partition_point(|g| (g.namespace as usize) <= ni);
        start..end
    }

    fn namespace_index(&self, name: &str) -> Option<usize> {
        self.namespaces
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()
    }

    /// The groups that `policy` selects.
    pub(crate) fn selected(&self, policy: &Policy) -> Vec<u32> {
        let Some(ns) = self.namespace_index(&policy.namespace) else {
            return Vec::new();
        };
        self.groups_in(ns)
            .filter(|&g| policy.selects(&policy.namespace, &self.groups[g].shape.labels))
            .map(|g| g as u32)
            .collect()
    }

    fn peer_set(&self, memo: &mut Memos<'_>, policy_ns: &str, peer: &Peer) -> Arc<BitSet> {
        let scoped = matches!(
            peer,
            Peer::Pods {
                namespaces: NamespaceScope::PolicyNamespace,
                ..
            }
        );
        let key = (scoped.then(|| policy_ns.to_owned()), peer.clone());
        if let Some(s) = memo.shared.and_then(|m| m.sets.get(&key)) {
            return Arc::clone(s);
        }
        if let Some(s) = memo.own.sets.get(&key) {
            return Arc::clone(s);
        }
        let mut set = BitSet::empty(self.groups.len());
        if matches!(peer, Peer::Pods { .. }) {
            for (ni, (ns, ns_labels)) in self.namespaces.iter().enumerate() {
                if !peer.admits_namespace(policy_ns, ns, ns_labels) {
                    continue;
                }
                for g in self.groups_in(ni) {
                    let labels = &self.groups[g].shape.labels;
                    if peer.admits_pod(policy_ns, ns, ns_labels, labels) {
                        set.insert(g);
                    }
                }
            }
        }
        let set = Arc::new(set);
        memo.own.sets.insert(key, Arc::clone(&set));
        set
    }

    fn rule_data(&self, memo: &mut Memos<'_>, policy_ns: &str, rule: &Rule) -> RuleData {
        let admitted = match &rule.peers {
            Peers::Any => Arc::new(BitSet::full(self.groups.len())),
            Peers::Only(peers) => match peers.as_slice() {
                [one] => self.peer_set(memo, policy_ns, one),
                many => {
                    let mut set = BitSet::empty(self.groups.len());
                    for p in many {
                        set.union_with(&self.peer_set(memo, policy_ns, p));
                    }
                    Arc::new(set)
                }
            },
        };
        RuleData {
            admitted,
            addresses: rule.peers.addresses(),
            ports: rule.ports.clone(),
        }
    }

    pub(crate) fn policy_data(&self, memo: &mut Memos<'_>, policy: &Policy) -> PolicyData {
        let mut data = PolicyData::default();
        for d in policy.types.iter() {
            data.rules[d.index()] = policy
                .rules(d)
                .iter()
                .map(|r| self.rule_data(memo, &policy.namespace, r))
                .collect();
        }
        data
    }
}

/// What a connection evaluation reads: the base index, or the base index
/// with one policy changed (a preview).
pub(crate) trait View {
    /// How many pod groups there are.
    fn len(&self) -> usize;
    /// Policies selecting group `g` with `d` among their types.
    fn selecting(&self, d: Direction, g: usize) -> &[u32];
    /// A policy's evaluated rules for `d`.
    fn rules(&self, policy: u32, d: Direction) -> &[RuleData];
    /// Egress: the groups `g` may send to; Ingress: the groups `g` may
    /// hear from (every group when `g` is not isolated for `d`).
    fn row(&self, d: Direction, g: usize) -> &BitSet;
    /// The transpose of [`View::row`]: Egress: the groups that may send to
    /// `g`; Ingress: the groups that may hear from `g`.
    fn col(&self, d: Direction, g: usize) -> Cow<'_, BitSet>;
}

/// The precomputed facts of a model.
#[derive(Debug, Clone, Default)]
pub(crate) struct Index {
    n: usize,
    policies: Vec<PolicyData>,
    selecting: [Vec<Vec<u32>>; 2],
    rows: [Vec<BitSet>; 2],
    cols: [Vec<BitSet>; 2],
    pub(crate) memo: PeerMemo,
}

impl Index {
    pub(crate) fn build(
        namespaces: &[(String, Labels)],
        groups: &[PodGroup],
        policies: &[Policy],
    ) -> Index {
        let n = groups.len();
        let u = Universe::new(namespaces, groups);
        let mut memo = Memos {
            shared: None,
            own: PeerMemo::default(),
        };
        let mut selecting = [vec![Vec::new(); n], vec![Vec::new(); n]];
        let mut data = Vec::with_capacity(policies.len());
        for (pi, p) in policies.iter().enumerate() {
            let selected = u.selected(p);
            for d in p.types.iter() {
                for &g in &selected {
                    selecting[d.index()][g as usize].push(pi as u32);
                }
            }
            data.push(u.policy_data(&mut memo, p));
        }
        let mut index = Index {
            n,
            policies: data,
            selecting,
            rows: [Vec::new(), Vec::new()],
            cols: [Vec::new(), Vec::new()],
            memo: memo.own,
        };
        for d in Direction::ALL {
            let rows: Vec<BitSet> = (0..n).map(|g| row_of(&index, d, g)).collect();
            index.cols[d.index()] = transpose(&rows, n);
            index.rows[d.index()] = rows;
        }
        index
    }

    /// Do the policies see groups `a` and `b` the same way: selected by the
    /// same policies, admitted by the same peers, with the same ports?
    pub(crate) fn treated_alike(&self, a: usize, b: usize, groups: &[PodGroup]) -> bool {
        self.selecting.iter().all(|s| s[a] == s[b])
            && self
                .memo
                .sets
                .values()
                .all(|set| set.contains(a) == set.contains(b))
            && groups[a].shape.ports == groups[b].shape.ports
    }
}

/// The row of group `g` for `d` in any view: the union of the groups
/// admitted by the rules of the policies selecting it, or everything.
pub(crate) fn row_of(view: &impl View, d: Direction, g: usize) -> BitSet {
    let pols = view.selecting(d, g);
    if pols.is_empty() {
        return BitSet::full(view.len());
    }
    let mut row = BitSet::empty(view.len());
    for &p in pols {
        for r in view.rules(p, d) {
            row.union_with(&r.admitted);
        }
    }
    row
}

impl View for Index {
    fn len(&self) -> usize {
        self.n
    }

    fn selecting(&self, d: Direction, g: usize) -> &[u32] {
        &self.selecting[d.index()][g]
    }

    fn rules(&self, policy: u32, d: Direction) -> &[RuleData] {
        self.policies
            .get(policy as usize)
            .map(|p| p.rules[d.index()].as_slice())
            .unwrap_or(&[])
    }

    fn row(&self, d: Direction, g: usize) -> &BitSet {
        &self.rows[d.index()][g]
    }

    fn col(&self, d: Direction, g: usize) -> Cow<'_, BitSet> {
        Cow::Borrowed(&self.cols[d.index()][g])
    }
}

/// A group a policy change touches: its index, its selecting policies and
/// its rows after the change (per direction).
type Changed = (usize, [Vec<u32>; 2], [BitSet; 2]);

/// The base index with one policy replaced, added or removed: only the
/// groups that policy selects (before or after) see anything different.
pub(crate) struct Overlay<'a> {
    base: &'a Index,
    /// The policy's position: its index in the model, or one past the
    /// end for a new policy.
    slot: u32,
    /// Its rules after the change (empty when deleted).
    data: PolicyData,
    /// Changed groups, sorted, with their new selecting lists and rows.
    changed: Vec<Changed>,
}

impl<'a> Overlay<'a> {
    /// `slot` is where the changed policy sits in the base (one past the
    /// end for a new one); `after` lists, per direction, the sorted groups
    /// the new version selects with that type, and `data` its rules (both
    /// empty for a delete).
    pub(crate) fn new(
        base: &'a Index,
        slot: u32,
        data: PolicyData,
        after: [Vec<u32>; 2],
    ) -> Overlay<'a> {
        let mut touched: Vec<usize> = Vec::new();
        for (selecting, after) in base.selecting.iter().zip(&after) {
            for (g, pols) in selecting.iter().enumerate() {
                if pols.contains(&slot) {
                    touched.push(g);
                }
            }
            touched.extend(after.iter().map(|&g| g as usize));
        }
        touched.sort_unstable();
        touched.dedup();
        let changed = touched
            .into_iter()
            .map(|g| {
                let selecting: [Vec<u32>; 2] = std::array::from_fn(|d| {
                    let mut v: Vec<u32> = base.selecting[d][g]
                        .iter()
                        .copied()
                        .filter(|&p| p != slot)
                        .collect();
                    if after[d].binary_search(&(g as u32)).is_ok() {
                        v.push(slot);
                    }
                    v
                });
                (g, selecting, [BitSet::default(), BitSet::default()])
            })
            .collect();
        let mut ov = Overlay {
            base,
            slot,
            data,
            changed,
        };
        // Rows read the new selecting lists through the overlay itself, so
        // the lists go in first and the rows after.
        for i in 0..ov.changed.len() {
            let g = ov.changed[i].0;
            ov.changed[i].2 = [
                row_of(&ov, Direction::Ingress, g),
                row_of(&ov, Direction::Egress, g),
            ];
        }
        ov
    }

    fn changed(&self, g: usize) -> Option<&Changed> {
        self.changed
            .binary_search_by_key(&g, |c| c.0)
            .ok()
            .map(|i| &self.changed[i])
    }

    /// The groups whose selecting policies or rows differ from the base.
    pub(crate) fn changed_groups(&self) -> impl Iterator<Item = usize> + '_ {
        self.changed.iter().map(|c| c.0)
    }
}

impl View for Overlay<'_> {
    fn len(&self) -> usize {
        self.base.n
    }

    fn selecting(&self, d: Direction, g: usize) -> &[u32] {
        match self.changed(g) {
            Some(c) => &c.1[d.index()],
            None => self.base.selecting(d, g),
        }
    }

    fn rules(&self, policy: u32, d: Direction) -> &[RuleData] {
        if policy == self.slot {
            &self.data.rules[d.index()]
        } else {
            self.base.rules(policy, d)
        }
    }

    fn row(&self, d: Direction, g: usize) -> &BitSet {
        match self.changed(g) {
            Some(c) => &c.2[d.index()],
            None => self.base.row(d, g),
        }
    }

    fn col(&self, d: Direction, g: usize) -> Cow<'_, BitSet> {
        let mut col = self.base.cols[d.index()][g].clone();
        for c in &self.changed {
            col.set(c.0, c.2[d.index()].contains(g));
        }
        Cow::Owned(col)
    }
}
