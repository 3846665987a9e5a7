//! `simulate eval`: is one connection allowed, and why. The answer names
//! the policies that isolate the source for egress and the destination
//! for ingress, and which rule of which policy admits the connection, or
//! that none does; where cluster-wide policies select an end, the tier,
//! policy and rule that decided (`admin policy deny-egress (priority 10)
//! rule "block-db": Deny`). It reads the same evaluation as `list`, so the
//! two cannot disagree.

use std::fmt;
use std::net::IpAddr;

use thiserror::Error;

use super::eval::{PeerSets, View};
use super::model::{GroupId, Model, WorkloadId};
use super::tiers::Far;
use crate::cluster_policy::Action;
use crate::cluster_policy::tiers::TierOutcome;
use crate::netpol::Direction;
use crate::ports::{ContainerPort, Protocol};

/// One end of the connection asked about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The pods of a workload.
    Workload(WorkloadId),
    /// An address outside the cluster (the model knows no pod IPs).
    Address(IpAddr),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Workload(w) => w.fmt(f),
            Target::Address(ip) => write!(f, "{ip}[External]"),
        }
    }
}

/// The connection asked about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// Who connects.
    pub from: Target,
    /// To whom.
    pub to: Target,
    /// With which protocol.
    pub protocol: Protocol,
    /// To which port of the destination.
    pub port: u16,
}

/// A question eval cannot answer.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ExplainError {
    /// Both ends are addresses: no NetworkPolicy governs that traffic.
    #[error(
        "--from and --to are both addresses outside the cluster; NetworkPolicy governs neither"
    )]
    NoWorkload,
    /// The workload is not in the model.
    #[error("no workload {0} in the input")]
    UnknownWorkload(String),
}

/// A rule that admits the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleRef {
    /// `namespace/name` of the policy.
    pub policy: String,
    /// The rule's index in `spec.ingress` or `spec.egress`.
    pub rule: usize,
}

/// The rule of a cluster-wide policy that decided the port asked about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierHit {
    /// `admin policy deny-egress (priority 10)`.
    pub policy: String,
    /// `rule "block-db"` or `egress rule 2`.
    pub rule: String,
    /// What it did.
    pub action: Action,
    /// The action as the policy's kind spells it (`Allow`, `Accept`, ...).
    pub word: &'static str,
}

impl fmt::Display for TierHit {
    /// `admin policy deny-egress (priority 10) rule "block-db": Deny`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.policy, self.rule, self.word)
    }
}

/// One direction's verdict: the source's egress or the destination's
/// ingress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Side {
    /// This end is an address outside the cluster: no policy applies.
    Outside,
    /// No policy selects this end with this type: everything is allowed.
    NotIsolated,
    /// Policies isolate this end; the connection passes iff some rule of
    /// theirs admits it.
    Isolated {
        /// `namespace/name` of every policy selecting this end with this
        /// type.
        isolating: Vec<String>,
        /// The rules that admit the connection (empty: denied).
        admitted_by: Vec<RuleRef>,
    },
    /// Cluster-wide policies select this end: the admin tier, then
    /// NetworkPolicies or (where none selects it) the baseline decide.
    Tiered {
        /// The admin rule that decided the port, if any matched.
        admin: Option<TierHit>,
        /// What NetworkPolicies say ([`Side::NotIsolated`] or
        /// [`Side::Isolated`]); read when the admin tier passed or did not
        /// match.
        netpol: Box<Side>,
        /// The baseline rule that decided the port, if any matched; read
        /// when NetworkPolicies do not select this end.
        baseline: Option<TierHit>,
        /// The verdict.
        allowed: bool,
    },
}

impl Side {
    /// Does this side let the connection through?
    pub fn allows(&self) -> bool {
        match self {
            Side::Outside | Side::NotIsolated => true,
            Side::Isolated { admitted_by, .. } => !admitted_by.is_empty(),
            Side::Tiered { allowed, .. } => *allowed,
        }
    }
}

/// The answer to a [`Query`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// The question.
    pub query: Query,
    /// Allowed iff both sides allow.
    pub allowed: bool,
    /// The source's egress.
    pub egress: Side,
    /// The destination's ingress.
    pub ingress: Side,
    /// Caveats (pods of one workload that policies tell apart, hostNetwork).
    pub notes: Vec<String>,
}

/// One end resolved to a pod group of the model, or an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum End {
    Group(GroupId),
    Addr(IpAddr),
}

/// Answers `q` against `model`.
pub fn explain(model: &Model, q: &Query) -> Result<Explanation, ExplainError> {
    let groups_of = |t: &Target| -> Result<Vec<End>, ExplainError> {
        match t {
            Target::Address(ip) => Ok(vec![End::Addr(*ip)]),
            Target::Workload(w) => {
                let wi = model
                    .wl_id(w)
                    .ok_or_else(|| ExplainError::UnknownWorkload(w.to_string()))?;
                Ok(model.workloads[wi as usize]
                    .groups
                    .iter()
                    .map(|&g| End::Group(g))
                    .collect())
            }
        }
    };
    let from = groups_of(&q.from)?;
    let to = groups_of(&q.to)?;
    if matches!((&q.from, &q.to), (Target::Address(_), Target::Address(_))) {
        return Err(ExplainError::NoWorkload);
    }
    let sets = PeerSets::new(model);
    let view = View::new(&sets);
    let mut answers = Vec::new();
    for &s in &from {
        for &d in &to {
            answers.push(sides(&view, q, s, d));
        }
    }
    let mut notes = Vec::new();
    let verdicts: Vec<bool> = answers
        .iter()
        .map(|(e, i)| e.allows() && i.allows())
        .collect();
    if verdicts.iter().any(|v| *v) && verdicts.iter().any(|v| !*v) {
        notes.push(
            "pods of the same workload differ in labels or ports and get different answers; \
             shown: a pair of pods that is allowed"
                .to_owned(),
        );
    }
    if let Some(n) = host_note(model, from.iter().chain(&to)) {
        notes.push(n);
    }
    let pick = verdicts.iter().position(|v| *v).unwrap_or(0);
    let (egress, ingress) = answers.swap_remove(pick);
    Ok(Explanation {
        query: q.clone(),
        allowed: egress.allows() && ingress.allows(),
        egress,
        ingress,
        notes,
    })
}

/// The caveat when a hostNetwork pod is among `ends`.
pub(crate) fn host_note<'a>(
    model: &Model,
    mut ends: impl Iterator<Item = &'a End>,
) -> Option<String> {
    let host = ends.any(|e| match e {
        End::Group(g) => model.group(*g).shape.host_network,
        End::Addr(_) => false,
    });
    host.then(|| {
        "a hostNetwork pod is involved: Kubernetes leaves NetworkPolicy for it to the network \
         plugin; it is simulated as an ordinary pod"
            .to_owned()
    })
}

/// Both verdicts for one pair of ends, `s` connecting to `d` on `q`'s
/// port: the source's egress and the destination's ingress.
pub(crate) fn sides(view: &View<'_, '_>, q: &Query, s: End, d: End) -> (Side, Side) {
    let model = view.model();
    let dst_ports: &[ContainerPort] = match d {
        End::Group(g) => &model.group(g).shape.ports,
        End::Addr(_) => &[],
    };
    let egress = match s {
        End::Addr(_) => Side::Outside,
        End::Group(g) => tiered(view, q, Direction::Egress, g, d, dst_ports),
    };
    let ingress = match d {
        End::Addr(_) => Side::Outside,
        End::Group(g) => tiered(view, q, Direction::Ingress, g, s, dst_ports),
    };
    (egress, ingress)
}

/// The verdict of direction `d` for pod group `selected` with `other` at
/// the far end, through the cluster-wide tiers where they select it.
fn tiered(
    view: &View<'_, '_>,
    q: &Query,
    d: Direction,
    selected: GroupId,
    other: End,
    dst_ports: &[ContainerPort],
) -> Side {
    let netpol = side(view, q, d, selected, other, dst_ports);
    let tiers = view.sets().tiers();
    if !tiers.governs(d, selected) {
        return netpol;
    }
    let far = match other {
        End::Group(g) => Far::Group(g),
        End::Addr(ip) => Far::Addr(ip),
    };
    let (admin, baseline) = tiers.trace(d, selected, far, dst_ports);
    let hit = |o: &TierOutcome| {
        o.decider(q.protocol, q.port).map(|x| {
            let p = tiers.policy(x.policy);
            TierHit {
                policy: p.to_string(),
                rule: p.rule_label(d, x.rule),
                action: x.action,
                word: p.action_word(x.action),
            }
        })
    };
    let admin = hit(&admin);
    let baseline = hit(&baseline);
    let allowed = match admin.as_ref().map(|h| h.action) {
        Some(Action::Allow) => true,
        Some(Action::Deny) => false,
        _ if !matches!(netpol, Side::NotIsolated) => netpol.allows(),
        _ => baseline.as_ref().map(|h| h.action) != Some(Action::Deny),
    };
    Side::Tiered {
        admin,
        netpol: Box::new(netpol),
        baseline,
        allowed,
    }
}

/// The verdict NetworkPolicies give direction `d` for pod group
/// `selected` with `other` at the far end.
fn side(
    view: &View<'_, '_>,
    q: &Query,
    d: Direction,
    selected: GroupId,
    other: End,
    dst_ports: &[ContainerPort],
) -> Side {
    let model = view.model();
    // Policies in name order, as they are listed to the user.
    let mut pols: Vec<(String, u32)> = view
        .selecting(d, selected)
        .iter()
        .map(|&p| (model.policy_ref(p), p))
        .collect();
    if pols.is_empty() {
        return Side::NotIsolated;
    }
    pols.sort();
    let mut admitted_by = Vec::new();
    for (name, p) in &pols {
        let scope = view.policy_ns(*p);
        for (i, r) in view.rules(*p, d).iter().enumerate() {
            let peer = match other {
                End::Group(g) => view.sets().admits(r, scope, g),
                End::Addr(ip) => r.addresses.contains(ip),
            };
            if peer && r.ports_on(dst_ports).contains(q.protocol, q.port) {
                admitted_by.push(RuleRef {
                    policy: name.clone(),
                    rule: i,
                });
            }
        }
    }
    Side::Isolated {
        isolating: pols.into_iter().map(|(name, _)| name).collect(),
        admitted_by,
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let q = &self.query;
        writeln!(
            f,
            "{}: {} -> {} on {} {}",
            if self.allowed { "ALLOWED" } else { "DENIED" },
            q.from,
            q.to,
            q.protocol,
            q.port
        )?;
        let conn = format!("{} {}", q.protocol, q.port);
        for (d, end, other, side) in [
            (Direction::Egress, &q.from, &q.to, &self.egress),
            (Direction::Ingress, &q.to, &q.from, &self.ingress),
        ] {
            let field = d.field();
            write!(f, "  {} of {end}: ", d.as_str().to_lowercase())?;
            let side = match side {
                Side::Tiered {
                    admin,
                    netpol,
                    baseline,
                    allowed,
                } => {
                    let verdict = if *allowed { "allowed" } else { "denied" };
                    match admin {
                        Some(h) if h.action != Action::Pass => {
                            writeln!(f, "{h} ({verdict}; no NetworkPolicy can change it)")?;
                            continue;
                        }
                        Some(h) => writeln!(f, "{h}, on to NetworkPolicies")?,
                        None => writeln!(f, "no admin-tier rule matches, on to NetworkPolicies")?,
                    }
                    if matches!(**netpol, Side::NotIsolated) {
                        match baseline {
                            Some(h) => writeln!(
                                f,
                                "    no NetworkPolicy selects it with {d}, so the baseline decides: {h} ({verdict})"
                            )?,
                            None => writeln!(
                                f,
                                "    no NetworkPolicy selects it with {d} and no baseline rule matches: allowed"
                            )?,
                        }
                        continue;
                    }
                    write!(f, "    ")?;
                    netpol.as_ref()
                }
                other => other,
            };
            match side {
                Side::Outside => writeln!(
                    f,
                    "outside the cluster, no NetworkPolicy applies ({} is not governed)",
                    d.as_str()
                )?,
                Side::NotIsolated => writeln!(
                    f,
                    "not isolated (no NetworkPolicy selects it with {d}): allowed"
                )?,
                Side::Isolated {
                    isolating,
                    admitted_by,
                } => {
                    writeln!(f, "isolated by {}", isolating.join(", "))?;
                    if admitted_by.is_empty() {
                        writeln!(
                            f,
                            "    no {field} rule of these policies admits {other} on {conn}: denied"
                        )?;
                    }
                    for r in admitted_by {
                        writeln!(f, "    admitted by {} {field} rule {}", r.policy, r.rule)?;
                    }
                }
                Side::Tiered { .. } => {}
            }
        }
        for n in &self.notes {
            writeln!(f, "  note: {n}")?;
        }
        Ok(())
    }
}
