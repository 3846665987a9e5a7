//! First-match evaluation of a tier, per port: for one direction of one
//! connection, each port is decided by the first rule (policies in
//! evaluation order, rules in order) whose peer matches and whose ports
//! hold it. The caller says which policies select the pod and which rules'
//! peers match the far end, so the webhook (labels) and simulation
//! (precomputed bit sets) share this one evaluation.

use std::borrow::Cow;
use std::net::IpAddr;

use super::{Action, ClusterPolicies, ClusterPolicy, ClusterRule, Tier};
use crate::addresses::AddrSet;
use crate::netpol::Direction;
use crate::ports::{ContainerPort, PortSet};
use crate::selector::Labels;

/// A rule that decided some ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    /// Index of the policy in the slice evaluated.
    pub policy: usize,
    /// Index of the rule in the policy's rules for the direction.
    pub rule: usize,
    /// What it did.
    pub action: Action,
    /// The ports it decided (those no earlier rule had).
    pub ports: PortSet,
}

/// What one tier decides for one direction of one connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TierOutcome {
    /// Ports an `Allow`/`Accept` rule matched first.
    pub allowed: PortSet,
    /// Ports a `Deny` rule matched first.
    pub denied: PortSet,
    /// Ports a `Pass` rule matched first.
    pub passed: PortSet,
    /// The rules that decided something, in evaluation order.
    pub decided_by: Vec<Decided>,
}

impl TierOutcome {
    /// Ports no rule of the tier matched.
    pub fn undecided(&self) -> PortSet {
        PortSet::all()
            .subtract(&self.allowed)
            .subtract(&self.denied)
            .subtract(&self.passed)
    }

    /// The rule that decided `port`/`protocol`, if any.
    pub fn decider(&self, protocol: crate::ports::Protocol, port: u16) -> Option<&Decided> {
        self.decided_by
            .iter()
            .find(|d| d.ports.contains(protocol, port))
    }
}

/// Evaluates the policies of one tier, already in evaluation order and
/// already filtered to those whose subject selects the pod. `matches`
/// says whether rule `rule` of policy `policy` has a peer matching the far
/// end; `ports` gives a rule's ports on the destination (named ports
/// resolved).
pub fn evaluate<'a>(
    policies: impl IntoIterator<Item = (usize, &'a ClusterPolicy)>,
    d: Direction,
    mut matches: impl FnMut(usize, usize, &ClusterRule) -> bool,
    mut ports: impl FnMut(&'a ClusterRule) -> Cow<'a, PortSet>,
) -> TierOutcome {
    let mut out = TierOutcome::default();
    let mut decided = PortSet::none();
    for (pi, p) in policies {
        for (ri, rule) in p.rules(d).iter().enumerate() {
            if !matches(pi, ri, rule) {
                continue;
            }
            let new = ports(rule).subtract(&decided);
            if new.is_empty() {
                continue;
            }
            decided = decided.union(&new);
            let bucket = match rule.action {
                Action::Allow => &mut out.allowed,
                Action::Deny => &mut out.denied,
                Action::Pass => &mut out.passed,
            };
            *bucket = bucket.union(&new);
            out.decided_by.push(Decided {
                policy: pi,
                rule: ri,
                action: rule.action,
                ports: new,
            });
            if decided.is_all() {
                return out;
            }
        }
    }
    out
}

/// What the baseline tier leaves allowed: every port it does not deny
/// (`Allow`, `Pass` and no match all end allowed).
pub fn baseline_allows(baseline: &TierOutcome) -> PortSet {
    PortSet::all().subtract(&baseline.denied)
}

/// The ports one direction allows: what the admin tier allows, plus what
/// the lower tiers (`lower`: NetworkPolicies where some selects the pod for
/// this direction, else [`baseline_allows`]) allow of the ports the admin
/// tier passed or did not match.
pub fn combine(admin: &TierOutcome, lower: &PortSet) -> PortSet {
    admin.allowed.union(&lower.subtract(&admin.denied))
}

/// The far end of a connection, for [`allowed_ports`].
#[derive(Debug, Clone, Copy)]
pub enum Far<'a> {
    /// A pod: its namespace, the namespace's labels, its own labels.
    Pod {
        /// The namespace's name.
        namespace: &'a str,
        /// The namespace's labels.
        namespace_labels: &'a Labels,
        /// The pod's labels.
        labels: &'a Labels,
    },
    /// An address outside the cluster.
    Address(IpAddr),
}

/// The pod a direction is evaluated for: the source for egress, the
/// destination for ingress.
#[derive(Debug, Clone, Copy)]
pub struct Near<'a> {
    /// The namespace's labels.
    pub namespace_labels: &'a Labels,
    /// The pod's labels.
    pub labels: &'a Labels,
}

/// One direction of one connection through every tier, over labels: the
/// ports `near` allows with `far` (egress: `near` sends to `far`; ingress:
/// `near` receives from `far`). `dst` are the destination's container
/// ports (named ports resolve there; an address has none); `nodes` the
/// known nodes' labels and addresses; `netpol` the ports NetworkPolicies
/// allow, or `None` when none selects `near` for `d` (then the baseline
/// decides).
pub fn allowed_ports(
    set: &ClusterPolicies,
    d: Direction,
    near: Near<'_>,
    far: Far<'_>,
    dst: &[ContainerPort],
    nodes: &[(Labels, AddrSet)],
    netpol: Option<&PortSet>,
) -> PortSet {
    let outcome = |tier: Tier| {
        let selecting = set
            .tier(tier)
            .iter()
            .enumerate()
            .filter(|(_, p)| p.subject.selects(near.namespace_labels, near.labels));
        evaluate(
            selecting,
            d,
            |_, _, rule| match far {
                Far::Pod {
                    namespace,
                    namespace_labels,
                    labels,
                } => rule.admits_pod(namespace, namespace_labels, labels),
                // Ingress peers are pods only: outside traffic is not
                // decided here.
                Far::Address(ip) => d == Direction::Egress && rule.addresses(nodes).contains(ip),
            },
            |rule| Cow::Owned(rule.ports.resolve(dst)),
        )
    };
    let admin = outcome(Tier::Admin);
    let lower = match netpol {
        Some(p) => p.clone(),
        None => baseline_allows(&outcome(Tier::Baseline)),
    };
    combine(&admin, &lower)
}
