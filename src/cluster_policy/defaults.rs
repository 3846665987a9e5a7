//! What the validating rules ask of cluster-wide policies, over labels
//! only (no pods): does a namespace deny a direction by default because of
//! them, and is an admin policy allow-all or broad.
//!
//! **Default-deny from the tiers.** A namespace denies direction D by
//! default when, walking the admin tier then the baseline tier in
//! evaluation order, `Deny` rules on all ports of policies whose subject
//! covers every pod of the namespace together deny every peer (ingress:
//! every pod of the cluster; egress: every pod and every address,
//! `0.0.0.0/0` and `::/0`), and no earlier rule cuts into them: an
//! `Allow`/`Accept` with a broad peer (every pod, or a whole address
//! family) anywhere before, or a broad `Pass` earlier in the same tier
//! (an admin `Pass` only skips the admin tier: the baseline still
//! applies). Earlier rules that name specific peers (DNS, a monitoring
//! namespace) do not cut in: they are the default-deny's allowances, and
//! messages list them. NetworkPolicies between the tiers do not weaken
//! this: a pod they select is held to their allow-list.

use std::fmt;

use super::{Action, ClusterPolicies, ClusterPolicy, ClusterRule, Subject, Tier};
use crate::netpol::Direction;
use crate::selector::{Labels, Operator};

/// One rule of one cluster-wide policy, for messages.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RuleRef {
    /// `admin policy deny-egress (priority 10)`.
    pub policy: String,
    /// The policy's kind (for `kubectl get`).
    pub kind: super::ClusterKind,
    /// The policy's name.
    pub name: String,
    /// `rule "block-db"` or `egress rule 2`.
    pub rule: String,
}

impl fmt::Display for RuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.policy, self.rule)
    }
}

/// A rule by position: policy `policy` of [`ClusterPolicies::all`], its
/// rule `rule` of the direction asked about. Walking the tiers for 10,000
/// namespaces records positions; words are made only for a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RuleAt {
    /// Index into [`ClusterPolicies::all`].
    pub policy: usize,
    /// Index into the policy's rules of the direction.
    pub rule: usize,
}

impl RuleAt {
    /// The policy and rule, named.
    pub fn named(self, set: &ClusterPolicies, d: Direction) -> Option<RuleRef> {
        let p = set.all().get(self.policy)?;
        Some(RuleRef {
            policy: p.to_string(),
            kind: p.kind,
            name: p.name.clone(),
            rule: p.rule_label(d, self.rule),
        })
    }

    /// The rule in words (see [`describe_rule`]).
    pub fn describe(self, set: &ClusterPolicies, d: Direction) -> String {
        set.all()
            .get(self.policy)
            .map(|p| describe_rule(p, d, self.rule))
            .unwrap_or_default()
    }
}

/// An earlier rule that lets specific peers through a default-deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Allowance {
    /// The rule.
    pub at: RuleAt,
    /// An admin `Pass` before an admin deny: the peers go on to
    /// NetworkPolicies and the baseline.
    pub passed: bool,
}

impl Allowance {
    /// In words.
    pub fn describe(self, set: &ClusterPolicies, d: Direction) -> String {
        let words = self.at.describe(set, d);
        if self.passed {
            format!("{words} (passed on to NetworkPolicies and the baseline)")
        } else {
            words
        }
    }
}

/// What the cluster-wide tiers give one namespace for one direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterDefault {
    /// No cluster-wide rule denies everything there.
    Nothing,
    /// Denied by default: `by` together deny every peer on every port.
    Denied {
        /// The deny rules.
        by: Vec<RuleAt>,
        /// Earlier rules that let specific peers through (DNS, ...).
        allowances: Vec<Allowance>,
    },
    /// A deny-everything rule exists but an earlier broad rule cuts into it.
    Cut {
        /// The deny rule cut into.
        deny: RuleAt,
        /// The rule that cuts in.
        by: RuleAt,
    },
    /// Deny rules cover only part of the peers.
    Partial {
        /// The deny rules.
        by: Vec<RuleAt>,
        /// What they leave out, in words.
        missing: &'static str,
    },
}

impl ClusterDefault {
    /// Is the direction denied by default?
    pub fn is_denied(&self) -> bool {
        matches!(self, ClusterDefault::Denied { .. })
    }
}

/// How much of the peer space the deny rules seen so far cover.
#[derive(Default)]
struct Coverage {
    pods: bool,
    v4: bool,
    v6: bool,
    by: Vec<RuleAt>,
}

impl Coverage {
    fn add(&mut self, rule: &ClusterRule, at: RuleAt) {
        let nets = rule.networks();
        let before = (self.pods, self.v4, self.v6);
        self.pods |= rule.admits_every_pod();
        self.v4 |= nets.is_all_v4();
        self.v6 |= nets.is_all_v6();
        if (self.pods, self.v4, self.v6) != before {
            self.by.push(at);
        }
    }

    fn complete(&self, d: Direction) -> bool {
        match d {
            // Ingress peers are pods only: outside traffic is never decided
            // here (the caller says what that means for default-deny).
            Direction::Ingress => self.pods,
            Direction::Egress => self.pods && self.v4 && self.v6,
        }
    }

    fn missing(&self, d: Direction) -> &'static str {
        let egress = d == Direction::Egress;
        match (self.pods, egress, self.v4, self.v6) {
            (false, false, _, _) | (false, true, true, true) => "every pod (namespaces: {})",
            (false, true, false, false) => {
                "every pod (namespaces: {}) and every address (networks: [0.0.0.0/0, ::/0])"
            }
            (false, true, false, true) => {
                "every pod (namespaces: {}) and IPv4 addresses (networks: [0.0.0.0/0])"
            }
            (false, true, true, false) => {
                "every pod (namespaces: {}) and IPv6 addresses (networks: [::/0])"
            }
            (true, true, false, false) => "every address (networks: [0.0.0.0/0, ::/0])",
            (true, true, false, true) => "IPv4 addresses (networks: [0.0.0.0/0])",
            (true, true, true, false) => "IPv6 addresses (networks: [::/0])",
            (true, _, _, _) => "",
        }
    }

    fn partial_or_nothing(self, d: Direction) -> ClusterDefault {
        if self.by.is_empty() {
            ClusterDefault::Nothing
        } else {
            ClusterDefault::Partial {
                missing: self.missing(d),
                by: self.by,
            }
        }
    }
}

/// The rule in words: `admin policy x (priority 5) rule "dns": Allow pods
/// k8s-app=kube-dns in namespaces ... on UDP 53`.
pub fn describe_rule(p: &ClusterPolicy, d: Direction, i: usize) -> String {
    let Some(r) = p.rules(d).get(i) else {
        return String::new();
    };
    let peers: Vec<String> = r.peers.iter().map(ToString::to_string).collect();
    format!(
        "{} {}: {} {} on {}",
        p,
        p.rule_label(d, i),
        p.action_word(r.action),
        peers.join(", "),
        r.ports
    )
}

/// What the cluster-wide policies give a namespace with `ns_labels` for
/// direction `d` (see the module documentation).
pub fn default_deny(set: &ClusterPolicies, ns_labels: &Labels, d: Direction) -> ClusterDefault {
    let mut cov = Coverage::default();
    let mut allowances = Vec::new();
    let mut admin_passes = Vec::new();
    let mut cut_in_admin: Option<RuleAt> = None;
    let mut cut_deny: Option<(RuleAt, RuleAt)> = None;
    let all = set.all();
    for (pi, p) in all.iter().enumerate() {
        if !p.subject.selects_namespace(ns_labels) {
            continue;
        }
        let covers = p.subject.covers_namespace(ns_labels);
        for (ri, rule) in p.rules(d).iter().enumerate() {
            let at = RuleAt {
                policy: pi,
                rule: ri,
            };
            match (rule.action, p.tier) {
                // Everything after a broad allow is cut into for those
                // peers; passing broadly in the baseline ends allowed.
                (Action::Allow, _) | (Action::Pass, Tier::Baseline) if rule.is_broad() => {
                    let deny = cut_deny
                        .map(|(deny, _)| deny)
                        .or_else(|| first_deny_after(set, ns_labels, d, pi, ri));
                    return match deny {
                        Some(deny) => ClusterDefault::Cut { deny, by: at },
                        None => cov.partial_or_nothing(d),
                    };
                }
                (Action::Allow, _) | (Action::Pass, Tier::Baseline) => {
                    allowances.push(Allowance { at, passed: false })
                }
                (Action::Pass, Tier::Admin) if rule.is_broad() => {
                    cut_in_admin.get_or_insert(at);
                }
                (Action::Pass, Tier::Admin) => admin_passes.push(Allowance { at, passed: true }),
                (Action::Deny, tier) => {
                    if !covers || !rule.ports.covers_all() {
                        continue;
                    }
                    if tier == Tier::Admin
                        && let Some(by) = cut_in_admin
                    {
                        cut_deny.get_or_insert((at, by));
                        continue;
                    }
                    cov.add(rule, at);
                    if cov.complete(d) {
                        if tier == Tier::Admin {
                            // Peers passed before an admin deny go on to
                            // NetworkPolicies and the baseline.
                            allowances.extend(admin_passes.iter().copied());
                        }
                        return ClusterDefault::Denied {
                            by: cov.by,
                            allowances,
                        };
                    }
                }
            }
        }
    }
    match cut_deny {
        Some((deny, by)) => ClusterDefault::Cut { deny, by },
        None => cov.partial_or_nothing(d),
    }
}

/// The first deny-everything rule after rule `after` of policy `from`, for
/// a message that says what was cut into.
fn first_deny_after(
    set: &ClusterPolicies,
    ns_labels: &Labels,
    d: Direction,
    from: usize,
    after: usize,
) -> Option<RuleAt> {
    set.all()
        .iter()
        .enumerate()
        .skip(from)
        .filter(|(_, p)| p.subject.covers_namespace(ns_labels))
        .find_map(|(pi, p)| {
            p.rules(d).iter().enumerate().find_map(|(ri, r)| {
                let later = pi > from || ri > after;
                (later && r.action == Action::Deny && r.ports.covers_all() && r.admits_every_pod())
                    .then_some(RuleAt {
                        policy: pi,
                        rule: ri,
                    })
            })
        })
}

/// An admin-tier rule that allows everything for a direction: `Allow`/
/// `Accept` on all ports, with peers matching every pod and, on egress,
/// every address of a family (as a NetworkPolicy's `0.0.0.0/0` or `::/0`
/// ipBlock is allow-all). It overrides every NetworkPolicy of the
/// namespaces it selects.
pub fn allow_all(p: &ClusterPolicy, d: Direction) -> Option<usize> {
    if p.tier != Tier::Admin {
        return None;
    }
    p.rules(d).iter().position(|r| {
        r.action == Action::Allow
            && r.ports.covers_all()
            && r.admits_every_pod()
            && match d {
                Direction::Ingress => true,
                Direction::Egress => {
                    let n = r.networks();
                    n.is_all_v4() || n.is_all_v6()
                }
            }
    })
}

/// Admin-tier `Allow`/`Accept` rules with a broad peer that are not
/// allow-all (a warning, as for NetworkPolicies): `(direction, rule
/// index, words)`.
pub fn broad_rules(p: &ClusterPolicy) -> Vec<(Direction, usize, String)> {
    if p.tier != Tier::Admin {
        return Vec::new();
    }
    let mut out = Vec::new();
    for d in Direction::ALL {
        let all = allow_all(p, d);
        for (i, r) in p.rules(d).iter().enumerate() {
            if r.action != Action::Allow || Some(i) == all || !r.is_broad() {
                continue;
            }
            let broad: Vec<String> = r
                .peers
                .iter()
                .filter(|x| x.is_broad())
                .map(ToString::to_string)
                .collect();
            out.push((
                d,
                i,
                format!(
                    "{} {}s {} on {}, overriding every NetworkPolicy of the pods it selects",
                    p.rule_label(d, i),
                    p.action_word(r.action).to_lowercase(),
                    broad.join(", "),
                    r.ports
                ),
            ));
        }
    }
    out
}

/// Does the subject confine itself to dev namespaces by the environment
/// label: does its namespace selector require `env_label` to hold one of
/// `dev` values (`matchLabels` or `In`)?
pub fn confined_to_dev(subject: &Subject, env_label: &str, dev: &[String]) -> bool {
    subject.namespaces().requirements().iter().any(|r| {
        r.key == env_label
            && match &r.operator {
                Operator::In(values) => {
                    !values.is_empty() && values.iter().all(|v| dev.contains(v))
                }
                _ => false,
            }
    })
}
