//! `simulate verify`: observed flows held against the model. Flows are
//! folded as they stream in (one entry per distinct pair of ends, protocol
//! and port: a million records of a few hundred connections take a few
//! hundred entries); at the end each distinct connection is decided once
//! through `eval`'s own code ([`super::explain`]), which also says which
//! rules admitted it.
//!
//! The report holds:
//! - **gaps**: connections seen that the model denies (an enforcement gap:
//!   a CNI that does not enforce, a node without its agent, a rule read
//!   differently), each with `eval`'s explanation;
//! - **rules**: per policy rule, the workload pairs (and outside addresses)
//!   it admits that no flow used, and the peers and ports flows did use,
//!   from which [`super::narrow`] proposes a narrower rule;
//! - **coverage**: the share of allowed workload pairs that carried traffic;
//! - what could not be compared (unresolved ends, flows outside the
//!   cluster at both ends).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;

use k8s_openapi::jiff::Timestamp;

use super::compute::pair_ports;
use super::eval::{PeerSets, View};
use super::explain::{End, Explanation, Query, Side, Target, host_note, sides};
use super::flows::Flow;
use super::intern::PeerIds;
use super::model::{GroupId, Model, PolicyId, WlId, WorkloadId};
use super::resolve::{Resolved, Unresolved, resolve};
use crate::addresses::AddrSet;
use crate::netpol::Direction;
use crate::ports::{PortSet, Protocol};

/// One end of a connection seen, as the report names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Peer {
    /// A workload of the model.
    Workload(WorkloadId),
    /// An address outside the cluster.
    External(IpAddr),
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peer::Workload(w) => w.fmt(f),
            Peer::External(ip) => write!(f, "{ip}[External]"),
        }
    }
}

/// When flows were seen, and how many.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Seen {
    /// Flow records.
    pub flows: u64,
    /// The earliest time among them, if any record had one.
    pub first: Option<Timestamp>,
    /// The latest.
    pub last: Option<Timestamp>,
}

impl Seen {
    fn add(&mut self, time: Option<Timestamp>, n: u64) {
        self.flows += n;
        if let Some(t) = time {
            self.first = Some(self.first.map_or(t, |f| f.min(t)));
            self.last = Some(self.last.map_or(t, |l| l.max(t)));
        }
    }

    fn merge(&mut self, other: &Seen) {
        self.flows += other.flows;
        for t in [other.first, other.last].into_iter().flatten() {
            self.add(Some(t), 0);
        }
    }
}

/// A connection seen that the model denies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    /// Who opened it.
    pub src: Peer,
    /// To whom.
    pub dst: Peer,
    /// Protocol.
    pub protocol: Protocol,
    /// Destination port.
    pub port: u16,
    /// Its flows.
    pub seen: Seen,
    /// Why the model denies it: what `simulate eval` prints.
    pub explanation: Explanation,
}

/// What one rule admits, against what flows used of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleUse {
    /// `namespace/name` of the policy.
    pub policy: String,
    /// Ingress or egress.
    pub direction: Direction,
    /// The rule's index in `spec.ingress` or `spec.egress`.
    pub rule: usize,
    /// The peers (sources for ingress, destinations for egress) flows used
    /// through this rule, with the ports they used and how often.
    pub used: BTreeMap<Peer, (PortSet, Seen)>,
    /// Workload pairs `(source, destination)` the rule admits (the
    /// connection being allowed end to end) that no flow used: the first
    /// [`LISTED`] of them, in index order.
    pub unused_pairs: Vec<(WorkloadId, WorkloadId)>,
    /// How many workload pairs it admits that no flow used.
    pub unused_count: usize,
    /// Workload pairs the rule admits, used or not.
    pub admitted_pairs: usize,
    /// Addresses outside the cluster the rule admits, when no flow used
    /// any of them (CIDRs).
    pub unused_addresses: Vec<String>,
}

impl RuleUse {
    /// Does the rule admit something no flow used?
    pub fn has_unused(&self) -> bool {
        self.unused_count > 0 || !self.unused_addresses.is_empty()
    }
}

/// Allowed workload pairs, and those that carried traffic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Coverage {
    /// Distinct `(source, destination)` workload pairs the model allows
    /// (a workload's connections to itself not counted, as in `list`).
    pub allowed_pairs: usize,
    /// Of those, the pairs some flow used.
    pub used_pairs: usize,
}

impl Coverage {
    /// `used / allowed` as a percentage (100 when nothing is allowed).
    pub fn percent(&self) -> f64 {
        if self.allowed_pairs == 0 {
            100.0
        } else {
            self.used_pairs as f64 * 100.0 / self.allowed_pairs as f64
        }
    }
}

/// Flows that could not be compared, by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotCompared {
    /// An end could not be named: per reason, its flows.
    pub unresolved: BTreeMap<Unresolved, Seen>,
    /// Both ends outside the cluster: no NetworkPolicy governs them.
    pub outside: u64,
}

/// The result of holding flows against the model.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Every flow given, and the window they span.
    pub seen: Seen,
    /// Flows compared (both ends named, one inside the cluster).
    pub compared: u64,
    /// Flows allowed by the model.
    pub allowed: u64,
    /// Connections seen that the model denies, sorted.
    pub gaps: Vec<Gap>,
    /// Every rule that admits something, sorted by policy, direction, rule.
    pub rules: Vec<RuleUse>,
    /// Allowed workload pairs that carried traffic.
    pub coverage: Coverage,
    /// What could not be compared.
    pub not_compared: NotCompared,
    /// Caveats about this run (a snapshot without pod addresses).
    pub notes: Vec<String>,
}

/// How many unused pairs a rule lists (all are counted): a rule that
/// admits every pod of a large namespace admits millions of pairs.
pub const LISTED: usize = 100;

/// A resolved end, as flows are folded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Group(GroupId),
    Addr(IpAddr),
}

impl Key {
    fn end(self) -> End {
        match self {
            Key::Group(g) => End::Group(g),
            Key::Addr(ip) => End::Addr(ip),
        }
    }
}

/// Folds flows against a model; [`Verifier::finish`] decides them.
pub struct Verifier<'m> {
    model: &'m Model,
    conns: HashMap<(Key, Key, Protocol, u16), Seen>,
    seen: Seen,
    not_compared: NotCompared,
    /// Flows with an end read as outside the cluster by its address.
    external_by_address: u64,
}

impl<'m> Verifier<'m> {
    /// Nothing seen yet.
    pub fn new(model: &'m Model) -> Self {
        Verifier {
            model,
            conns: HashMap::new(),
            seen: Seen::default(),
            not_compared: NotCompared::default(),
            external_by_address: 0,
        }
    }

    /// Adds one flow.
    pub fn add(&mut self, flow: &Flow) {
        self.seen.add(flow.time, 1);
        let key = |r: Resolved| match r {
            Resolved::Pod(g) => Ok(Key::Group(g)),
            Resolved::External(ip) => Ok(Key::Addr(ip)),
            Resolved::Unresolved(u) => Err(u),
        };
        let src = key(resolve(self.model, &flow.src, flow.time));
        let dst = key(resolve(self.model, &flow.dst, flow.time));
        match (src, dst) {
            (Err(u), _) | (_, Err(u)) => self
                .not_compared
                .unresolved
                .entry(u)
                .or_default()
                .add(flow.time, 1),
            (Ok(Key::Addr(_)), Ok(Key::Addr(_))) => {
                self.external_by_address += 1;
                self.not_compared.outside += 1;
            }
            (Ok(s), Ok(d)) => {
                if matches!(s, Key::Addr(_)) || matches!(d, Key::Addr(_)) {
                    self.external_by_address += 1;
                }
                self.conns
                    .entry((s, d, flow.protocol, flow.port))
                    .or_default()
                    .add(flow.time, 1)
            }
        }
    }

    /// Decides every connection seen and reports.
    pub fn finish(self) -> Report {
        let model = self.model;
        let sets = PeerSets::new(model);
        // Every row and column once: rules and coverage walk them all.
        let view = View::dense(&sets);
        let peer = |k: Key| match k {
            Key::Group(g) => Peer::Workload(wl(model, g).clone()),
            Key::Addr(ip) => Peer::External(ip),
        };
        let target = |k: Key| match k {
            Key::Group(g) => Target::Workload(wl(model, g).clone()),
            Key::Addr(ip) => Target::Address(ip),
        };
        let mut gaps: BTreeMap<(Peer, Peer, Protocol, u16), Gap> = BTreeMap::new();
        let mut used: HashMap<RuleKey, BTreeMap<Peer, (PortSet, Seen)>> = HashMap::new();
        let mut used_pairs: HashSet<(WlId, WlId)> = HashSet::new();
        let mut used_external: HashSet<RuleKey> = HashSet::new();
        let mut rule_pairs: HashMap<RuleKey, HashSet<(WlId, WlId)>> = HashMap::new();
        let (mut compared, mut allowed) = (0, 0);
        for (&(s, d, protocol, port), seen) in &self.conns {
            compared += seen.flows;
            let q = Query {
                from: target(s),
                to: target(d),
                protocol,
                port,
            };
            let (egress, ingress) = sides(&view, &q, s.end(), d.end());
            if !(egress.allows() && ingress.allows()) {
                let notes = host_note(model, [s.end(), d.end()].iter())
                    .into_iter()
                    .collect();
                let e = Explanation {
                    query: q,
                    allowed: false,
                    egress,
                    ingress,
                    notes,
                };
                gaps.entry((peer(s), peer(d), protocol, port))
                    .and_modify(|g| g.seen.merge(seen))
                    .or_insert_with(|| Gap {
                        src: peer(s),
                        dst: peer(d),
                        protocol,
                        port,
                        seen: *seen,
                        explanation: e,
                    });
                continue;
            }
            allowed += seen.flows;
            let pair = match (s, d) {
                (Key::Group(a), Key::Group(b)) => {
                    Some((model.group(a).workload, model.group(b).workload))
                }
                _ => None,
            };
            used_pairs.extend(pair);
            for (dir, side, other) in [
                (Direction::Egress, &egress, d),
                (Direction::Ingress, &ingress, s),
            ] {
                // Where cluster-wide policies select the end, the
                // NetworkPolicy rules that admitted the flow are under them.
                let netpol = match side {
                    Side::Tiered { netpol, .. } => &**netpol,
                    other => other,
                };
                let Side::Isolated { admitted_by, .. } = netpol else {
                    continue;
                };
                for r in admitted_by {
                    let Some(p) = policy_by_ref(model, &r.policy) else {
                        continue;
                    };
                    let entry = used
                        .entry((p, dir, r.rule))
                        .or_default()
                        .entry(peer(other))
                        .or_insert_with(|| (PortSet::none(), Seen::default()));
                    entry.0.insert(protocol, port, port);
                    entry.1.merge(seen);
                    match pair {
                        Some(pair) => {
                            rule_pairs.entry((p, dir, r.rule)).or_default().insert(pair);
                        }
                        None => {
                            used_external.insert((p, dir, r.rule));
                        }
                    }
                }
            }
        }
        let rules = rule_uses(&view, &mut used, &rule_pairs, &used_external);
        // Flows counted only when allowed, so every pair used is allowed.
        let coverage = Coverage {
            allowed_pairs: allowed_pairs(&view),
            used_pairs: used_pairs.iter().filter(|(a, b)| a != b).count(),
        };
        let mut notes = Vec::new();
        if self.external_by_address > 0 && model.stats().addresses == 0 {
            notes.push(format!(
                "the cluster snapshot holds no pod addresses: every address reads as outside the cluster ({} flows); \
                 take the state with its pods (kubectl get namespaces,networkpolicies,pods,replicasets,jobs -A -o json) or use --cluster",
                self.external_by_address
            ));
        }
        Report {
            notes,
            seen: self.seen,
            compared,
            allowed,
            gaps: gaps.into_values().collect(),
            rules,
            coverage,
            not_compared: self.not_compared,
        }
    }
}

fn wl(model: &Model, g: GroupId) -> &WorkloadId {
    &model.workloads[model.group(g).workload as usize].id
}

/// A rule: its policy, direction and index.
type RuleKey = (PolicyId, Direction, usize);

/// The policy a rule reference names (`namespace/name`).
fn policy_by_ref(model: &Model, reference: &str) -> Option<PolicyId> {
    let (ns, name) = reference.split_once('/')?;
    model.policy_id(ns, name)
}

/// Distinct workload pairs `(source, destination)` of group pairs `s ->
/// d`, seen once each: a workload of several pod groups reaches a pair
/// more than once, a workload of one group (the rule) only once.
struct PairOnce<'m> {
    model: &'m Model,
    seen: HashSet<(WlId, WlId)>,
}

impl<'m> PairOnce<'m> {
    fn new(model: &'m Model) -> Self {
        PairOnce {
            model,
            seen: HashSet::new(),
        }
    }

    /// The workload pair of `s -> d`, unless it is a workload to itself or
    /// was already counted (`counted` says whether it is, once it was).
    fn pair(&self, s: GroupId, d: GroupId) -> Option<(WlId, WlId, bool)> {
        let (ws, wd) = (self.model.group(s).workload, self.model.group(d).workload);
        if ws == wd {
            return None;
        }
        let multi = |w: WlId| self.model.workloads[w as usize].groups.len() > 1;
        let tracked = multi(ws) || multi(wd);
        if tracked && self.seen.contains(&(ws, wd)) {
            return None;
        }
        Some((ws, wd, tracked))
    }

    fn counted(&mut self, ws: WlId, wd: WlId, tracked: bool) {
        if tracked {
            self.seen.insert((ws, wd));
        }
    }
}

/// Distinct workload pairs the model allows (as `list` counts them),
/// counted without holding them.
fn allowed_pairs(view: &View<'_, '_>) -> usize {
    let model = view.model();
    let mut once = PairOnce::new(model);
    let mut n = 0;
    for s in model.group_ids() {
        let row = view.row(Direction::Egress, s);
        let col = view.col(Direction::Ingress, s);
        for d in row.iter_and(&col) {
            let d = d as GroupId;
            let Some((ws, wd, tracked)) = once.pair(s, d) else {
                continue;
            };
            if !pair_ports(view, s, d).is_empty() {
                once.counted(ws, wd, tracked);
                n += 1;
            }
        }
    }
    n
}

/// Every rule of every policy, with what it admits end to end and what
/// flows used of it.
fn rule_uses(
    view: &View<'_, '_>,
    used: &mut HashMap<RuleKey, BTreeMap<Peer, (PortSet, Seen)>>,
    rule_pairs: &HashMap<RuleKey, HashSet<(WlId, WlId)>>,
    used_external: &HashSet<RuleKey>,
) -> Vec<RuleUse> {
    let model = view.model();
    let name = |w: WlId| model.workloads[w as usize].id.clone();
    let mut out = Vec::new();
    for (p, sp) in model.policies.iter() {
        let p = p as PolicyId;
        let ns = &model.namespaces[sp.namespace as usize];
        for dir in Direction::ALL {
            let selected: Vec<GroupId> = ns
                .groups
                .iter()
                .copied()
                .filter(|&g| view.selecting(dir, g).contains(&p))
                .collect();
            // For each selected group, the far ends whose own side lets
            // the connection through: for egress, who may hear from it;
            // for ingress, who may send to it.
            let far_side = match dir {
                Direction::Egress => Direction::Ingress,
                Direction::Ingress => Direction::Egress,
            };
            for (i, r) in view.rules(p, dir).iter().enumerate() {
                let peers = view.sets().rule_set(r, sp.namespace);
                let through = rule_pairs.get(&(p, dir, i));
                let mut once = PairOnce::new(model);
                let (mut admitted, mut unused_count) = (0, 0);
                let mut unused_pairs = Vec::new();
                for &g in &selected {
                    let far = view.col(far_side, g);
                    for h in peers.iter_and(&far) {
                        let h = h as GroupId;
                        let (s, d) = match dir {
                            Direction::Egress => (g, h),
                            Direction::Ingress => (h, g),
                        };
                        let Some((ws, wd, tracked)) = once.pair(s, d) else {
                            continue;
                        };
                        let rule_ports = r.ports_on(&model.group(d).shape.ports);
                        if rule_ports.is_empty()
                            || pair_ports(view, s, d).intersect(&rule_ports).is_empty()
                        {
                            continue;
                        }
                        once.counted(ws, wd, tracked);
                        admitted += 1;
                        if through.is_some_and(|t| t.contains(&(ws, wd))) {
                            continue;
                        }
                        unused_count += 1;
                        if unused_pairs.len() < LISTED {
                            unused_pairs.push((name(ws), name(wd)));
                        }
                    }
                }
                let addresses = match (&r.peers, selected.is_empty()) {
                    (_, true) => AddrSet::none(),
                    (PeerIds::Any, false) => AddrSet::all(),
                    (PeerIds::Only(_), false) => r.addresses.clone(),
                };
                let used_here = used.remove(&(p, dir, i)).unwrap_or_default();
                if admitted == 0 && addresses.is_empty() && used_here.is_empty() {
                    continue;
                }
                let unused_addresses =
                    if addresses.is_empty() || used_external.contains(&(p, dir, i)) {
                        Vec::new()
                    } else {
                        addresses.cidrs()
                    };
                out.push(RuleUse {
                    policy: model.policy_ref(p),
                    direction: dir,
                    rule: i,
                    used: used_here,
                    unused_pairs,
                    unused_count,
                    admitted_pairs: admitted,
                    unused_addresses,
                });
            }
        }
    }
    out.sort_by(|a, b| {
        (&a.policy, a.direction.index(), a.rule).cmp(&(&b.policy, b.direction.index(), b.rule))
    });
    out
}
