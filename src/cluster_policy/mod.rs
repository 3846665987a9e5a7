//! Cluster-wide network policies: `AdminNetworkPolicy` and
//! `BaselineAdminNetworkPolicy` (`policy.networking.k8s.io/v1alpha1`) and
//! `ClusterNetworkPolicy` (`v1alpha2`, `spec.tier: Admin | Baseline`), read
//! into one type and evaluated by one set of rules: the sibling of
//! [`crate::netpol`] for the tiers around NetworkPolicies.
//!
//! How a connection is decided, per direction and per port:
//!
//! 1. the admin tier (admin policies by `priority`, lowest first; rules in
//!    order): the first rule whose peer and ports match decides `Allow`
//!    (`Accept`), `Deny`, or `Pass` (on to step 2);
//! 2. NetworkPolicies, as [`crate::netpol`] reads them, if some policy
//!    selects the pod for that direction; else
//! 3. the baseline tier (first match: `Allow`/`Accept` or `Deny`; `Pass`
//!    goes on to step 4);
//! 4. allowed.
//!
//! So the ports allowed are `admin-allowed ∪ (lower − admin-denied)`, where
//! `lower` is the NetworkPolicy result or everything minus what the
//! baseline denies ([`tiers`]). Ingress peers are pods and namespaces only:
//! these policies never decide traffic from outside the cluster. Egress
//! `networks` are addresses outside the cluster, like a NetworkPolicy's
//! `ipBlock` (palisade knows no pod IPs, so it matches pods by selectors
//! only, as the reference analyzer does); `nodes` peers are the nodes'
//! addresses, known only when Node objects are given.
//!
//! - [`read`]: the three kinds, from manifests and admission requests; the
//!   API versions differ only there.
//! - [`tiers`]: first-match evaluation of a tier, per port.
//! - [`defaults`]: what the webhook asks of them: does a namespace deny
//!   by default because of them, is an admin policy allow-all or broad.

use std::cmp::Ordering;
use std::fmt;

use serde::Serialize;

use crate::addresses::AddrSet;
use crate::netpol::{Direction, NamespaceScope, Peer};
use crate::ports::RulePorts;
use crate::selector::{Labels, Selector};

pub mod defaults;
pub mod read;
pub mod tiers;

#[cfg(test)]
mod truth_tables;

pub use read::{ClusterPolicyError, Problem};

/// The API group of all three kinds.
pub const GROUP: &str = "policy.networking.k8s.io";

/// The name the API allows for the one `BaselineAdminNetworkPolicy`.
pub const BASELINE_SINGLETON: &str = "default";

/// Which of the three kinds an object is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum ClusterKind {
    /// `AdminNetworkPolicy` (v1alpha1): the admin tier.
    AdminNetworkPolicy,
    /// `BaselineAdminNetworkPolicy` (v1alpha1): the baseline tier, the
    /// singleton named `default`.
    BaselineAdminNetworkPolicy,
    /// `ClusterNetworkPolicy` (v1alpha2): either tier, by `spec.tier`.
    ClusterNetworkPolicy,
}

impl ClusterKind {
    /// Every kind, in the order their API appeared.
    pub const ALL: [ClusterKind; 3] = [
        ClusterKind::AdminNetworkPolicy,
        ClusterKind::BaselineAdminNetworkPolicy,
        ClusterKind::ClusterNetworkPolicy,
    ];

    /// The kind's name.
    pub fn as_str(self) -> &'static str {
        match self {
            ClusterKind::AdminNetworkPolicy => "AdminNetworkPolicy",
            ClusterKind::BaselineAdminNetworkPolicy => "BaselineAdminNetworkPolicy",
            ClusterKind::ClusterNetworkPolicy => "ClusterNetworkPolicy",
        }
    }

    /// The API version palisade reads the kind in (the CRDs in
    /// `shared/fixtures/crds/network-policy-api`).
    pub fn version(self) -> &'static str {
        match self {
            ClusterKind::ClusterNetworkPolicy => "v1alpha2",
            _ => "v1alpha1",
        }
    }

    /// The resource's plural name, as webhook rules and RBAC name it.
    pub fn plural(self) -> &'static str {
        match self {
            ClusterKind::AdminNetworkPolicy => "adminnetworkpolicies",
            ClusterKind::BaselineAdminNetworkPolicy => "baselineadminnetworkpolicies",
            ClusterKind::ClusterNetworkPolicy => "clusternetworkpolicies",
        }
    }

    /// The kind named `kind` in `group`, if it is one of the three.
    pub fn from_group_kind(group: &str, kind: &str) -> Option<Self> {
        if group != GROUP {
            return None;
        }
        ClusterKind::ALL.into_iter().find(|k| k.as_str() == kind)
    }

    /// How the kind spells "allowed": `Allow` in v1alpha1, `Accept` in
    /// v1alpha2.
    pub fn allow_word(self) -> &'static str {
        match self {
            ClusterKind::ClusterNetworkPolicy => "Accept",
            _ => "Allow",
        }
    }
}

impl fmt::Display for ClusterKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A tier of cluster-wide policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Tier {
    /// Before NetworkPolicies; its decisions cannot be overridden by them.
    Admin,
    /// After NetworkPolicies, only for pods no NetworkPolicy selects in
    /// that direction.
    Baseline,
}

impl Tier {
    /// `admin` or `baseline`, as messages name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Admin => "admin",
            Tier::Baseline => "baseline",
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a matching rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Action {
    /// `Allow` (v1alpha1) or `Accept` (v1alpha2): allowed, whatever later
    /// tiers say.
    Allow,
    /// Denied, whatever later tiers say.
    Deny,
    /// Skip the rest of this tier: on to the next one.
    Pass,
}

/// Which pods a policy applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    /// Every pod of the namespaces whose labels match.
    Namespaces(Selector),
    /// The pods matching `pods` in the namespaces matching `namespaces`.
    Pods {
        /// Which namespaces.
        namespaces: Selector,
        /// Which pods there.
        pods: Selector,
    },
}

impl Subject {
    /// The namespace half of the subject.
    pub fn namespaces(&self) -> &Selector {
        match self {
            Subject::Namespaces(s) | Subject::Pods { namespaces: s, .. } => s,
        }
    }

    /// Could the subject select pods of a namespace with these labels?
    pub fn selects_namespace(&self, ns_labels: &Labels) -> bool {
        self.namespaces().matches(ns_labels)
    }

    /// Does it select every pod of a namespace with these labels?
    pub fn covers_namespace(&self, ns_labels: &Labels) -> bool {
        self.selects_namespace(ns_labels)
            && match self {
                Subject::Namespaces(_) => true,
                Subject::Pods { pods, .. } => pods.is_everything(),
            }
    }

    /// Does it select a pod with `pod_labels` in a namespace with
    /// `ns_labels`?
    pub fn selects(&self, ns_labels: &Labels, pod_labels: &Labels) -> bool {
        self.selects_namespace(ns_labels)
            && match self {
                Subject::Namespaces(_) => true,
                Subject::Pods { pods, .. } => pods.matches(pod_labels),
            }
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Namespaces(ns) if ns.is_everything() => f.write_str("every namespace"),
            Subject::Namespaces(ns) => write!(f, "namespaces {ns}"),
            Subject::Pods { namespaces, pods } => {
                write!(f, "pods {pods} in ")?;
                if namespaces.is_everything() {
                    f.write_str("every namespace")
                } else {
                    write!(f, "namespaces {namespaces}")
                }
            }
        }
    }
}

/// One entry of a rule's `from` or `to`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ClusterPeer {
    /// `namespaces` or `pods`: pods, read as a NetworkPolicy peer with a
    /// namespace selector (so both kinds of policy match pods through one
    /// piece of code, [`Peer::admits_pod`]).
    Pods(Peer),
    /// `networks`: CIDRs, addresses outside the cluster.
    Networks {
        /// Every address of the CIDRs.
        set: AddrSet,
        /// The CIDRs as written.
        cidrs: Vec<String>,
    },
    /// `nodes` (experimental): the addresses of the nodes whose labels
    /// match, outside the cluster's pod network.
    Nodes(Selector),
    /// `domainNames` (v1alpha2 experimental, `Accept` only): addresses a
    /// DNS name resolves to, which no offline analysis knows.
    DomainNames(Vec<String>),
}

impl ClusterPeer {
    /// A `namespaces` peer.
    pub fn namespaces(selector: Selector) -> Self {
        ClusterPeer::Pods(Peer::Pods {
            namespaces: NamespaceScope::Matching(selector),
            pods: Selector::everything(),
        })
    }

    /// A `pods` peer.
    pub fn pods(namespaces: Selector, pods: Selector) -> Self {
        ClusterPeer::Pods(Peer::Pods {
            namespaces: NamespaceScope::Matching(namespaces),
            pods,
        })
    }

    /// Every pod of every namespace.
    pub fn admits_every_pod(&self) -> bool {
        matches!(self, ClusterPeer::Pods(p) if p.admits_every_pod())
    }

    /// Does the peer admit a pod with `pod_labels` in a namespace with
    /// `ns_labels`?
    pub fn admits_pod(&self, ns: &str, ns_labels: &Labels, pod_labels: &Labels) -> bool {
        match self {
            // A cluster-wide peer always has a namespace selector, so the
            // policy namespace NetworkPolicy peers default to plays no part.
            ClusterPeer::Pods(p) => p.admits_pod("", ns, ns_labels, pod_labels),
            _ => false,
        }
    }

    /// The addresses outside the cluster the peer admits, given the
    /// nodes' addresses (`nodes`: label sets with their addresses).
    pub fn addresses(&self, nodes: &[(Labels, AddrSet)]) -> AddrSet {
        match self {
            ClusterPeer::Networks { set, .. } => set.clone(),
            ClusterPeer::Nodes(sel) => nodes
                .iter()
                .filter(|(labels, _)| sel.matches(labels))
                .fold(AddrSet::none(), |acc, (_, a)| acc.union(a)),
            ClusterPeer::Pods(_) | ClusterPeer::DomainNames(_) => AddrSet::none(),
        }
    }

    /// A peer that names no specific party: every pod, or every address of
    /// a family.
    pub fn is_broad(&self) -> bool {
        match self {
            ClusterPeer::Pods(p) => p.admits_every_pod(),
            ClusterPeer::Networks { set, .. } => set.is_all_v4() || set.is_all_v6(),
            ClusterPeer::Nodes(_) | ClusterPeer::DomainNames(_) => false,
        }
    }
}

impl fmt::Display for ClusterPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClusterPeer::Pods(p) => p.fmt(f),
            ClusterPeer::Networks { cidrs, .. } => write!(f, "networks {}", cidrs.join(", ")),
            ClusterPeer::Nodes(sel) if sel.is_everything() => f.write_str("every node"),
            ClusterPeer::Nodes(sel) => write!(f, "nodes {sel}"),
            ClusterPeer::DomainNames(names) => write!(f, "domain names {}", names.join(", ")),
        }
    }
}

/// One ingress or egress rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClusterRule {
    /// `name`, if given.
    pub name: Option<String>,
    /// What it does to the traffic it matches.
    pub action: Action,
    /// Who is on the other end (never empty).
    pub peers: Vec<ClusterPeer>,
    /// On which ports of the destination.
    pub ports: RulePorts,
}

impl ClusterRule {
    /// Does some peer admit this pod? See [`ClusterPeer::admits_pod`].
    pub fn admits_pod(&self, ns: &str, ns_labels: &Labels, pod_labels: &Labels) -> bool {
        self.peers
            .iter()
            .any(|p| p.admits_pod(ns, ns_labels, pod_labels))
    }

    /// The addresses outside the cluster some peer admits.
    pub fn addresses(&self, nodes: &[(Labels, AddrSet)]) -> AddrSet {
        self.peers
            .iter()
            .fold(AddrSet::none(), |acc, p| acc.union(&p.addresses(nodes)))
    }

    /// Some peer admits every pod of the cluster.
    pub fn admits_every_pod(&self) -> bool {
        self.peers.iter().any(ClusterPeer::admits_every_pod)
    }

    /// The `networks` of the rule, together.
    pub fn networks(&self) -> AddrSet {
        self.addresses(&[])
    }

    /// Some peer is broad (see [`ClusterPeer::is_broad`]).
    pub fn is_broad(&self) -> bool {
        self.peers.iter().any(ClusterPeer::is_broad)
    }
}

/// A cluster-wide policy of any of the three kinds, as palisade reads it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClusterPolicy {
    /// The kind it was written as.
    pub kind: ClusterKind,
    /// `metadata.name`.
    pub name: String,
    /// Its tier.
    pub tier: Tier,
    /// `spec.priority`; `None` for the BaselineAdminNetworkPolicy, which
    /// has none.
    pub priority: Option<u32>,
    /// The pods it applies to.
    pub subject: Subject,
    /// `spec.ingress`, in order.
    pub ingress: Vec<ClusterRule>,
    /// `spec.egress`, in order.
    pub egress: Vec<ClusterRule>,
}

impl ClusterPolicy {
    /// The rules of one direction.
    pub fn rules(&self, d: Direction) -> &[ClusterRule] {
        match d {
            Direction::Ingress => &self.ingress,
            Direction::Egress => &self.egress,
        }
    }

    /// `(kind, name)`: what identifies the object.
    pub fn key(&self) -> (ClusterKind, &str) {
        (self.kind, self.name.as_str())
    }

    /// The name of an action as this policy's kind spells it.
    pub fn action_word(&self, a: Action) -> &'static str {
        match a {
            Action::Allow => self.kind.allow_word(),
            Action::Deny => "Deny",
            Action::Pass => "Pass",
        }
    }

    /// The words for rule `i` of direction `d`: `rule "block-db"`, or
    /// `egress rule 2` when it has no name.
    pub fn rule_label(&self, d: Direction, i: usize) -> String {
        match self.rules(d).get(i).and_then(|r| r.name.as_deref()) {
            Some(n) if !n.is_empty() => format!("rule {n:?}"),
            _ => format!("{} rule {i}", d.field()),
        }
    }

    /// Evaluation order within a tier: priority (lowest first), the
    /// BaselineAdminNetworkPolicy after every baseline ClusterNetworkPolicy,
    /// then name and kind, so that ties the API leaves undefined are
    /// broken the same way everywhere.
    pub fn order(&self, other: &ClusterPolicy) -> Ordering {
        let rank = |p: &ClusterPolicy| (p.tier, p.priority.is_none(), p.priority.unwrap_or(0));
        rank(self)
            .cmp(&rank(other))
            .then_with(|| self.name.cmp(&other.name))
            .then_with(|| self.kind.cmp(&other.kind))
    }
}

impl fmt::Display for ClusterPolicy {
    /// `admin policy deny-egress (priority 10)`, `baseline policy default
    /// (BaselineAdminNetworkPolicy)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.priority {
            Some(p) => write!(f, "{} policy {} (priority {p})", self.tier, self.name),
            None => write!(f, "{} policy {} ({})", self.tier, self.name, self.kind),
        }
    }
}

/// Two policies of one tier with the same priority: the API leaves their
/// order undefined; palisade applies `first` before `second`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tie {
    /// The tier.
    pub tier: Tier,
    /// The shared priority.
    pub priority: u32,
    /// Applied first (by name, then kind).
    pub first: String,
    /// Applied after it.
    pub second: String,
}

impl fmt::Display for Tie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{tier} policies {a} and {b} share priority {p}; the API leaves their order undefined, \
             palisade applies {a} first (by name). Give them distinct priorities if both can match one connection",
            tier = self.tier,
            a = self.first,
            b = self.second,
            p = self.priority,
        )
    }
}

/// Every cluster-wide policy of a cluster, in evaluation order: what the
/// webhook's views and the reachability model hold (a cluster has few).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ClusterPolicies {
    policies: Vec<ClusterPolicy>,
}

impl ClusterPolicies {
    /// What these policies leave to chance in a simulation: two
    /// policies of one tier sharing a priority (the API leaves their order
    /// undefined), `nodes` peers with no node known (their addresses are not
    /// in the input, so they match nothing here), `domainNames` peers (what
    /// they resolve to is not known offline). `nodes_known`: the input held
    /// Node objects.
    pub fn simulation_notes(&self, nodes_known: bool) -> Vec<String> {
        let set = self;
        let mut out: Vec<String> = set.ties().iter().map(ToString::to_string).collect();
        let mut unresolved = |what: &str, why: &str| {
            let users: Vec<String> = set
                .all()
                .iter()
                .filter(|p| {
                    Direction::ALL.iter().any(|d| {
                        p.rules(*d).iter().any(|r| {
                            r.peers.iter().any(|peer| match peer {
                                ClusterPeer::Nodes(_) => what == "nodes",
                                ClusterPeer::DomainNames(_) => what == "domainNames",
                                _ => false,
                            })
                        })
                    })
                })
                .map(ToString::to_string)
                .collect();
            if !users.is_empty() {
                out.push(format!("{what} peers of {}: {why}", users.join(", ")));
            }
        };
        if !nodes_known {
            unresolved(
                "nodes",
                "no Node objects are in the input, so the nodes' addresses are unknown and these peers match no address here; \
                 give the Node manifests (with status.addresses) to simulate them",
            );
        }
        unresolved(
            "domainNames",
            "the addresses a name resolves to are not known here, so these peers match no address",
        );
        out
    }

    /// No cluster-wide policy: NetworkPolicies alone decide, as in a
    /// cluster without the CRDs.
    pub fn none() -> Self {
        Self::default()
    }

    /// The policies in evaluation order (a later one of the same kind and
    /// name replaces an earlier one, as `kubectl apply` would).
    pub fn new(policies: impl IntoIterator<Item = ClusterPolicy>) -> Self {
        let mut set = Self::none();
        for p in policies {
            set.put(p);
        }
        set
    }

    /// Adds or replaces a policy.
    pub fn put(&mut self, p: ClusterPolicy) {
        self.remove(p.kind, &p.name);
        let at = self
            .policies
            .partition_point(|q| q.order(&p) == Ordering::Less);
        self.policies.insert(at, p);
    }

    /// Removes a policy, if present; returns it.
    pub fn remove(&mut self, kind: ClusterKind, name: &str) -> Option<ClusterPolicy> {
        let i = self.policies.iter().position(|q| q.key() == (kind, name))?;
        Some(self.policies.remove(i))
    }

    /// The policy of this kind and name.
    pub fn get(&self, kind: ClusterKind, name: &str) -> Option<&ClusterPolicy> {
        self.policies.iter().find(|q| q.key() == (kind, name))
    }

    /// Every policy: the admin tier in order, then the baseline tier.
    pub fn all(&self) -> &[ClusterPolicy] {
        &self.policies
    }

    /// The policies of one tier, in evaluation order.
    pub fn tier(&self, t: Tier) -> &[ClusterPolicy] {
        let start = self.policies.partition_point(|p| p.tier < t);
        let end = self.policies.partition_point(|p| p.tier <= t);
        &self.policies[start..end]
    }

    /// No policy at all.
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.policies.len()
    }

    /// Neighbours in evaluation order that share a tier and a priority.
    pub fn ties(&self) -> Vec<Tie> {
        self.policies
            .windows(2)
            .filter_map(|w| match (w[0].priority, w[1].priority) {
                (Some(a), Some(b)) if a == b && w[0].tier == w[1].tier => Some(Tie {
                    tier: w[0].tier,
                    priority: a,
                    first: w[0].name.clone(),
                    second: w[1].name.clone(),
                }),
                _ => None,
            })
            .collect()
    }

    /// The ties that involve the policy `kind`/`name`.
    pub fn ties_of(&self, kind: ClusterKind, name: &str) -> Vec<Tie> {
        let Some(p) = self.get(kind, name) else {
            return Vec::new();
        };
        self.ties()
            .into_iter()
            .filter(|t| t.tier == p.tier && (t.first == p.name || t.second == p.name))
            .collect()
    }
}
