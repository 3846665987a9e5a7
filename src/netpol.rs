//! NetworkPolicy semantics: the one place that says what a policy selects,
//! which peers and ports each rule admits, and therefore what counts as
//! default-deny, allow-all and broad.
//!
//! The validating rules and the reachability model (`reach`) both read
//! policies through [`Policy`]: allow-all and default-deny are facts about
//! the same peer and port evaluation that `simulate` uses, never a second
//! implementation. The truth tables in the tests below are the contract of
//! DESIGN.md "Semantics".

use std::fmt;

use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::addresses::{AddrSet, CidrError};
use crate::ports::{PortError, RulePorts};
use crate::selector::{Labels, Selector, SelectorError};

/// A direction of traffic relative to the pods a policy selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Direction {
    /// Traffic into the selected pods.
    Ingress,
    /// Traffic out of the selected pods.
    Egress,
}

impl Direction {
    /// Both directions, Ingress first: `ALL[d.index()] == d`.
    pub const ALL: [Direction; 2] = [Direction::Ingress, Direction::Egress];

    /// The direction's position in [`Direction::ALL`], for tables indexed
    /// by direction.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The name as `policyTypes` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Ingress => "Ingress",
            Direction::Egress => "Egress",
        }
    }

    /// The rules field of the spec: `ingress` or `egress`.
    pub fn field(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }

    /// `from` or `to`.
    pub fn peer_field(self) -> &'static str {
        match self {
            Direction::Ingress => "from",
            Direction::Egress => "to",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of directions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Directions {
    ingress: bool,
    egress: bool,
}

impl Directions {
    /// No direction.
    pub const NONE: Directions = Directions {
        ingress: false,
        egress: false,
    };
    /// Ingress and Egress.
    pub const BOTH: Directions = Directions {
        ingress: true,
        egress: true,
    };

    /// The set holding exactly `d`.
    pub fn only(d: Direction) -> Self {
        let mut s = Self::NONE;
        s.insert(d);
        s
    }

    /// Adds `d`.
    pub fn insert(&mut self, d: Direction) {
        match d {
            Direction::Ingress => self.ingress = true,
            Direction::Egress => self.egress = true,
        }
    }

    /// Holds `d`?
    pub fn contains(self, d: Direction) -> bool {
        match d {
            Direction::Ingress => self.ingress,
            Direction::Egress => self.egress,
        }
    }

    /// Holds nothing?
    pub fn is_empty(self) -> bool {
        !self.ingress && !self.egress
    }

    /// Both sets together.
    pub fn union(self, other: Directions) -> Directions {
        Directions {
            ingress: self.ingress || other.ingress,
            egress: self.egress || other.egress,
        }
    }

    /// The directions of `self` that `other` lacks.
    pub fn minus(self, other: Directions) -> Directions {
        Directions {
            ingress: self.ingress && !other.ingress,
            egress: self.egress && !other.egress,
        }
    }

    /// The members, Ingress first.
    pub fn iter(self) -> impl Iterator<Item = Direction> {
        Direction::ALL
            .into_iter()
            .filter(move |d| self.contains(*d))
    }
}

impl FromIterator<Direction> for Directions {
    fn from_iter<I: IntoIterator<Item = Direction>>(iter: I) -> Self {
        let mut s = Directions::NONE;
        for d in iter {
            s.insert(d);
        }
        s
    }
}

impl fmt::Display for Directions {
    /// `Ingress and Egress`, `Egress`, `none`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(Direction::as_str).collect();
        match names.as_slice() {
            [] => f.write_str("none"),
            [one] => f.write_str(one),
            _ => f.write_str(&names.join(" and ")),
        }
    }
}

/// A NetworkPolicy that Kubernetes would reject, or that palisade cannot read.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("NetworkPolicy {policy}: {path}: {problem}")]
pub struct PolicyError {
    /// `namespace/name`.
    pub policy: String,
    /// Where in the object, e.g. `spec.ingress[0].from[1]`.
    pub path: String,
    /// What is wrong.
    pub problem: Problem,
}

/// What is wrong in a policy.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum Problem {
    /// A bad label selector.
    #[error(transparent)]
    Selector(#[from] SelectorError),
    /// A bad port entry.
    #[error(transparent)]
    Port(#[from] PortError),
    /// A bad CIDR.
    #[error(transparent)]
    Cidr(#[from] CidrError),
    /// Not Ingress or Egress.
    #[error("unknown policyType {0:?} (expected Ingress or Egress)")]
    PolicyType(String),
    /// A peer with nothing in it, or ipBlock mixed with selectors.
    #[error("{0}")]
    Peer(&'static str),
    /// No spec at all.
    #[error("missing spec")]
    MissingSpec,
}

/// Which namespaces a pod peer looks in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum NamespaceScope {
    /// No `namespaceSelector`: the policy's own namespace.
    PolicyNamespace,
    /// Namespaces whose labels match.
    Matching(Selector),
}

/// One entry of a rule's `from` or `to`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Peer {
    /// `podSelector` and/or `namespaceSelector`: pods of some namespaces.
    Pods {
        /// Which namespaces.
        namespaces: NamespaceScope,
        /// Which pods there (`{}` when no `podSelector` is given).
        pods: Selector,
    },
    /// `ipBlock`: addresses, as carved by `except`.
    Addresses {
        /// The addresses admitted: `cidr` minus every `except`.
        set: AddrSet,
        /// `cidr` as written.
        cidr: String,
        /// `except` as written.
        except: Vec<String>,
    },
}

impl Peer {
    /// DESIGN.md: a peer matches everything when it admits every pod of the
    /// cluster (`namespaceSelector` that every namespace satisfies and no or
    /// empty `podSelector`), or a whole address family (`0.0.0.0/0` or
    /// `::/0` with no `except`). An absent peer list is [`Peers::Any`].
    pub fn admits_everything(&self) -> bool {
        self.admits_every_pod() || self.admits_every_address_of_a_family()
    }

    /// Every pod of every namespace, whatever their labels.
    pub fn admits_every_pod(&self) -> bool {
        match self {
            Peer::Pods {
                namespaces: NamespaceScope::Matching(ns),
                pods,
            } => ns.matches_every_namespace() && pods.is_everything(),
            _ => false,
        }
    }

    fn admits_every_address_of_a_family(&self) -> bool {
        match self {
            Peer::Addresses { set, .. } => set.is_all_v4() || set.is_all_v6(),
            Peer::Pods { .. } => false,
        }
    }

    /// Does the peer admit a pod with these labels in namespace `pod_ns`
    /// (with `ns_labels`), for a policy in `policy_ns`? `ipBlock` peers
    /// admit no pod here: pods are matched by selectors only, as an
    /// analyzer without pod IPs must.
    pub fn admits_pod(
        &self,
        policy_ns: &str,
        pod_ns: &str,
        ns_labels: &Labels,
        pod_labels: &Labels,
    ) -> bool {
        match self {
            Peer::Pods { pods, .. } => {
                self.admits_namespace(policy_ns, pod_ns, ns_labels) && pods.matches(pod_labels)
            }
            Peer::Addresses { .. } => false,
        }
    }

    /// Could the peer admit some pod of namespace `ns` (with `ns_labels`),
    /// for a policy in `policy_ns`? The namespace half of
    /// [`Peer::admits_pod`], so that a caller holding many pods can skip
    /// whole namespaces without a second reading of the peer.
    pub fn admits_namespace(&self, policy_ns: &str, ns: &str, ns_labels: &Labels) -> bool {
        match self {
            Peer::Pods { namespaces, .. } => match namespaces {
                NamespaceScope::PolicyNamespace => policy_ns == ns,
                NamespaceScope::Matching(sel) => sel.matches(ns_labels),
            },
            Peer::Addresses { .. } => false,
        }
    }

    /// The addresses outside the cluster that the peer admits.
    pub fn addresses(&self) -> AddrSet {
        match self {
            Peer::Addresses { set, .. } => set.clone(),
            Peer::Pods { .. } => AddrSet::none(),
        }
    }
}

impl fmt::Display for Peer {
    /// Plain words for messages: `pods app=web in namespace of the policy`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Pods { .. } if self.admits_every_pod() => {
                f.write_str("every pod in every namespace")
            }
            Peer::Pods { namespaces, pods } => {
                let pods_txt = if pods.is_everything() {
                    "every pod".to_owned()
                } else {
                    format!("pods {pods}")
                };
                match namespaces {
                    NamespaceScope::PolicyNamespace => {
                        write!(f, "{pods_txt} in the policy's namespace")
                    }
                    NamespaceScope::Matching(ns) if ns.matches_every_namespace() => {
                        write!(f, "{pods_txt} in every namespace")
                    }
                    NamespaceScope::Matching(ns) => write!(f, "{pods_txt} in namespaces {ns}"),
                }
            }
            Peer::Addresses { cidr, except, .. } if except.is_empty() => {
                write!(f, "addresses {cidr}")
            }
            Peer::Addresses { cidr, except, .. } => {
                write!(f, "addresses {cidr} except {}", except.join(", "))
            }
        }
    }
}

/// The peers of a rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Peers {
    /// No `from`/`to`, or an empty list: every pod and every address.
    Any,
    /// These peers only (never empty).
    Only(Vec<Peer>),
}

impl Peers {
    /// The peer list admits everything (see [`Peer::admits_everything`]).
    pub fn admits_everything(&self) -> bool {
        match self {
            Peers::Any => true,
            Peers::Only(peers) => peers.iter().any(Peer::admits_everything),
        }
    }

    /// Does some peer admit this pod? See [`Peer::admits_pod`].
    pub fn admits_pod(
        &self,
        policy_ns: &str,
        pod_ns: &str,
        ns_labels: &Labels,
        pod_labels: &Labels,
    ) -> bool {
        match self {
            Peers::Any => true,
            Peers::Only(peers) => peers
                .iter()
                .any(|p| p.admits_pod(policy_ns, pod_ns, ns_labels, pod_labels)),
        }
    }

    /// The addresses outside the cluster that some peer admits.
    pub fn addresses(&self) -> AddrSet {
        match self {
            Peers::Any => AddrSet::all(),
            Peers::Only(peers) => peers
                .iter()
                .fold(AddrSet::none(), |acc, p| acc.union(&p.addresses())),
        }
    }
}

/// One ingress or egress rule: traffic with any of its peers on any of its
/// ports is admitted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rule {
    /// Who may be on the other end.
    pub peers: Peers,
    /// On which ports (of the destination).
    pub ports: RulePorts,
}

impl Rule {
    /// DESIGN.md: a rule admits everything when it has all ports and a peer
    /// that matches everything.
    pub fn admits_everything(&self) -> bool {
        self.ports.covers_all() && self.peers.admits_everything()
    }
}

/// Why a rule is broad (a warning, never a denial by itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broad {
    /// The rule's direction.
    pub direction: Direction,
    /// Its index in `spec.ingress` or `spec.egress`.
    pub rule: usize,
    /// What it admits, in words.
    pub reason: String,
}

/// What the validating rules need to know about one policy, and all the
/// watch cache keeps of it: a few bytes instead of the whole object.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PolicyFacts {
    /// The policy's name.
    pub name: String,
    /// Directions it denies by default (see [`Policy::is_default_deny`]).
    pub default_deny: Directions,
    /// Directions in which it is allow-all (see [`Policy::allow_all`]).
    pub allow_all: Directions,
}

impl PolicyFacts {
    /// A policy with no fact worth remembering.
    pub fn is_plain(&self) -> bool {
        self.default_deny.is_empty() && self.allow_all.is_empty()
    }
}

/// A NetworkPolicy as palisade reads it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Policy {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The pods it applies to, in its namespace.
    pub pod_selector: Selector,
    /// Effective policyTypes (see [`Policy::from_k8s`]).
    pub types: Directions,
    /// `spec.ingress`.
    pub ingress: Vec<Rule>,
    /// `spec.egress`.
    pub egress: Vec<Rule>,
}

impl Policy {
    /// Reads a NetworkPolicy. `default_namespace` applies when the object
    /// names none (a manifest meant for `kubectl apply -n`).
    ///
    /// Effective policyTypes are `spec.policyTypes` if non-empty, else
    /// Ingress, plus Egress when `spec.egress` is non-empty: the API
    /// server's own defaulting, applied here so files read offline mean
    /// what they will mean once applied.
    pub fn from_k8s(np: &NetworkPolicy, default_namespace: &str) -> Result<Self, PolicyError> {
        let namespace = np
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| default_namespace.to_owned());
        let name = np.metadata.name.clone().unwrap_or_default();
        let err = |path: String, problem: Problem| PolicyError {
            policy: format!("{namespace}/{name}"),
            path,
            problem,
        };
        let spec = np
            .spec
            .as_ref()
            .ok_or_else(|| err("spec".into(), Problem::MissingSpec))?;
        let pod_selector = match &spec.pod_selector {
            None => Selector::everything(),
            Some(s) => {
                Selector::from_k8s(s).map_err(|e| err("spec.podSelector".into(), e.into()))?
            }
        };
        let read_rules =
            |direction: Direction, rules: Vec<RuleParts<'_>>| -> Result<Vec<Rule>, PolicyError> {
                rules
                    .into_iter()
                    .enumerate()
                    .map(|(i, (peers, ports))| {
                        let at = format!("spec.{}[{i}]", direction.field());
                        let ports = RulePorts::from_k8s(ports)
                            .map_err(|e| err(format!("{at}.ports"), e.into()))?;
                        let peers = match peers {
                            None | Some([]) => Peers::Any,
                            Some(list) => Peers::Only(
                                list.iter()
                                    .enumerate()
                                    .map(|(j, p)| {
                                        read_peer(p).map_err(|e| {
                                            err(format!("{at}.{}[{j}]", direction.peer_field()), e)
                                        })
                                    })
                                    .collect::<Result<_, _>>()?,
                            ),
                        };
                        Ok(Rule { peers, ports })
                    })
                    .collect()
            };
        let ingress = read_rules(
            Direction::Ingress,
            spec.ingress
                .iter()
                .flatten()
                .map(|r| (r.from.as_deref(), r.ports.as_deref()))
                .collect(),
        )?;
        let egress = read_rules(
            Direction::Egress,
            spec.egress
                .iter()
                .flatten()
                .map(|r| (r.to.as_deref(), r.ports.as_deref()))
                .collect(),
        )?;
        let types = match spec.policy_types.as_deref() {
            Some(listed) if !listed.is_empty() => listed
                .iter()
                .map(|t| match t.as_str() {
                    "Ingress" => Ok(Direction::Ingress),
                    "Egress" => Ok(Direction::Egress),
                    other => Err(err(
                        "spec.policyTypes".into(),
                        Problem::PolicyType(other.to_owned()),
                    )),
                })
                .collect::<Result<Directions, _>>()?,
            _ => {
                let mut t = Directions::only(Direction::Ingress);
                if !egress.is_empty() {
                    t.insert(Direction::Egress);
                }
                t
            }
        };
        Ok(Policy {
            namespace,
            name,
            pod_selector,
            types,
            ingress,
            egress,
        })
    }

    /// `namespace/name`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// The rules of one direction (whether or not it is an effective type).
    pub fn rules(&self, d: Direction) -> &[Rule] {
        match d {
            Direction::Ingress => &self.ingress,
            Direction::Egress => &self.egress,
        }
    }

    /// Does the policy isolate its pods for `d` (is `d` an effective type)?
    pub fn isolates(&self, d: Direction) -> bool {
        self.types.contains(d)
    }

    /// A `podSelector` with no requirement: every pod of the namespace.
    pub fn selects_all_pods(&self) -> bool {
        self.pod_selector.is_everything()
    }

    /// Does the policy apply to a pod with these labels in `namespace`?
    pub fn selects(&self, namespace: &str, pod_labels: &Labels) -> bool {
        self.namespace == namespace && self.pod_selector.matches(pod_labels)
    }

    /// Default-deny for `d`: selects all pods, has `d` among its effective
    /// policyTypes, and has no rules for `d`.
    pub fn is_default_deny(&self, d: Direction) -> bool {
        self.selects_all_pods() && self.isolates(d) && self.rules(d).is_empty()
    }

    /// The index of the first rule that makes the policy allow-all for `d`:
    /// `d` is an effective type and the rule admits everything on all ports.
    pub fn allow_all(&self, d: Direction) -> Option<usize> {
        if !self.isolates(d) {
            return None;
        }
        self.rules(d).iter().position(Rule::admits_everything)
    }

    /// The facts the validating rules keep about this policy.
    pub fn facts(&self) -> PolicyFacts {
        PolicyFacts {
            name: self.name.clone(),
            default_deny: Direction::ALL
                .into_iter()
                .filter(|d| self.is_default_deny(*d))
                .collect(),
            allow_all: Direction::ALL
                .into_iter()
                .filter(|d| self.allow_all(*d).is_some())
                .collect(),
        }
    }

    /// Rules that are broad without being allow-all: a peer that matches
    /// everything on some ports only, or an ipBlock of a whole address
    /// family with exceptions (every address but a few).
    pub fn broad_rules(&self) -> Vec<Broad> {
        let mut out = Vec::new();
        for d in self.types.iter() {
            for (i, rule) in self.rules(d).iter().enumerate() {
                if rule.admits_everything() {
                    continue;
                }
                let reason = match &rule.peers {
                    Peers::Any => Some(format!(
                        "admits every pod and every address ({} absent) on {}",
                        d.peer_field(),
                        rule.ports
                    )),
                    Peers::Only(peers) => peers.iter().find_map(|p| {
                        if p.admits_everything() {
                            Some(format!("admits {p} on {}", rule.ports))
                        } else if let Peer::Addresses { cidr, except, .. } = p {
                            let whole = AddrSet::from_cidr(cidr)
                                .map(|s| s.is_all_v4() || s.is_all_v6())
                                .unwrap_or(false);
                            (whole && !except.is_empty()).then(|| {
                                format!(
                                    "admits every address of {cidr} except {} on {}",
                                    except.join(", "),
                                    rule.ports
                                )
                            })
                        } else {
                            None
                        }
                    }),
                };
                if let Some(reason) = reason {
                    out.push(Broad {
                        direction: d,
                        rule: i,
                        reason,
                    });
                }
            }
        }
        out
    }
}

/// The manifest of a default-deny policy for `directions` in `namespace`:
/// the fix printed when a namespace lacks one.
pub fn default_deny_manifest(namespace: &str, directions: Directions) -> String {
    let name = match (
        directions.contains(Direction::Ingress),
        directions.contains(Direction::Egress),
    ) {
        (true, false) => "default-deny-ingress",
        (false, true) => "default-deny-egress",
        _ => "default-deny",
    };
    let types: String = directions.iter().map(|d| format!("  - {d}\n")).collect();
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: {name}\n  namespace: {namespace}\nspec:\n  podSelector: {{}}\n  policyTypes:\n{types}"
    )
}

/// A rule's peers and ports as the API object holds them.
type RuleParts<'a> = (
    Option<&'a [NetworkPolicyPeer]>,
    Option<&'a [NetworkPolicyPort]>,
);

fn read_peer(p: &NetworkPolicyPeer) -> Result<Peer, Problem> {
    match (&p.ip_block, &p.namespace_selector, &p.pod_selector) {
        (Some(block), None, None) => {
            let mut set = AddrSet::from_cidr(&block.cidr)?;
            let except = block.except.clone().unwrap_or_default();
            for e in &except {
                set = set.subtract(&AddrSet::from_cidr(e)?);
            }
            Ok(Peer::Addresses {
                set,
                cidr: block.cidr.clone(),
                except,
            })
        }
        (Some(_), _, _) => Err(Problem::Peer(
            "ipBlock cannot be combined with podSelector or namespaceSelector",
        )),
        (None, None, None) => Err(Problem::Peer(
            "a peer needs podSelector, namespaceSelector or ipBlock",
        )),
        (None, ns, pods) => Ok(Peer::Pods {
            namespaces: match ns {
                None => NamespaceScope::PolicyNamespace,
                Some(s) => NamespaceScope::Matching(Selector::from_k8s(s)?),
            },
            pods: match pods {
                None => Selector::everything(),
                Some(s) => Selector::from_k8s(s)?,
            },
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(spec_yaml: &str) -> Policy {
        let doc = format!(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: p, namespace: ns}}\nspec:\n{}",
            spec_yaml
                .lines()
                .map(|l| format!("  {l}\n"))
                .collect::<String>()
        );
        let np: NetworkPolicy =
            serde_saphyr::from_str(&doc).unwrap_or_else(|e| panic!("{e}\n{doc}"));
        Policy::from_k8s(&np, "default").unwrap()
    }

    const I: Direction = Direction::Ingress;
    const E: Direction = Direction::Egress;

    #[test]
    fn effective_policy_types_truth_table() {
        // (spec, effective ingress, effective egress)
        let cases = [
            ("podSelector: {}", true, false),
            ("podSelector: {}\npolicyTypes: []", true, false),
            ("podSelector: {}\negress: []", true, false),
            ("podSelector: {}\negress: [{}]", true, true),
            ("podSelector: {}\ningress: [{}]\negress: [{}]", true, true),
            ("podSelector: {}\npolicyTypes: [Egress]", false, true),
            (
                "podSelector: {}\npolicyTypes: [Egress]\ningress: [{}]",
                false,
                true,
            ),
            (
                "podSelector: {}\npolicyTypes: [Ingress, Egress]",
                true,
                true,
            ),
            (
                "podSelector: {}\npolicyTypes: [Ingress]\negress: [{}]",
                true,
                false,
            ),
        ];
        for (spec, ing, eg) in cases {
            let p = policy(spec);
            assert_eq!((p.isolates(I), p.isolates(E)), (ing, eg), "{spec}");
        }
    }

    #[test]
    fn selects_all_pods_truth_table() {
        let cases = [
            ("podSelector: {}", true),
            ("podSelector: {matchLabels: {}}", true),
            ("podSelector: {matchExpressions: []}", true),
            ("podSelector: {matchLabels: {}, matchExpressions: []}", true),
            ("podSelector: {matchLabels: {app: web}}", false),
            (
                "podSelector: {matchExpressions: [{key: app, operator: Exists}]}",
                false,
            ),
        ];
        for (spec, all) in cases {
            assert_eq!(policy(spec).selects_all_pods(), all, "{spec}");
        }
    }

    #[test]
    fn default_deny_truth_table() {
        // (spec, default-deny ingress, default-deny egress)
        let cases = [
            ("podSelector: {}", true, false),
            (
                "podSelector: {}\npolicyTypes: [Ingress, Egress]",
                true,
                true,
            ),
            ("podSelector: {}\npolicyTypes: [Egress]", false, true),
            (
                "podSelector: {}\npolicyTypes: [Ingress, Egress]\ningress: []\negress: []",
                true,
                true,
            ),
            (
                "podSelector: {}\npolicyTypes: [Ingress, Egress]\negress: [{to: [{podSelector: {}}]}]",
                true,
                false,
            ),
            (
                "podSelector: {matchLabels: {}}\npolicyTypes: [Ingress, Egress]",
                true,
                true,
            ),
            (
                "podSelector: {matchLabels: {app: web}}\npolicyTypes: [Ingress, Egress]",
                false,
                false,
            ),
            // A rule that matches nothing still is a rule: not default-deny by DESIGN.md.
            (
                "podSelector: {}\ningress: [{from: [{podSelector: {matchLabels: {none: x}}}]}]",
                false,
                false,
            ),
            (
                "podSelector: {}\npolicyTypes: [Ingress]\negress: [{}]",
                true,
                false,
            ),
        ];
        for (spec, di, de) in cases {
            let p = policy(spec);
            assert_eq!(
                (p.is_default_deny(I), p.is_default_deny(E)),
                (di, de),
                "{spec}"
            );
            assert_eq!(
                p.facts().default_deny,
                [(I, di), (E, de)]
                    .into_iter()
                    .filter(|x| x.1)
                    .map(|x| x.0)
                    .collect()
            );
        }
    }

    #[test]
    fn peer_matches_everything_truth_table() {
        let cases = [
            ("from absent", "ingress: [{}]", true),
            ("from: []", "ingress: [{from: []}]", true),
            (
                "namespaceSelector {}",
                "ingress: [{from: [{namespaceSelector: {}}]}]",
                true,
            ),
            (
                "namespaceSelector {} + podSelector {}",
                "ingress: [{from: [{namespaceSelector: {}, podSelector: {}}]}]",
                true,
            ),
            (
                "namespaceSelector {} + empty matchLabels podSelector",
                "ingress: [{from: [{namespaceSelector: {matchLabels: {}}, podSelector: {matchExpressions: []}}]}]",
                true,
            ),
            (
                "metadata.name Exists",
                "ingress: [{from: [{namespaceSelector: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: Exists}]}}]}]",
                true,
            ),
            (
                "metadata.name NotIn",
                "ingress: [{from: [{namespaceSelector: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: NotIn, values: [x]}]}}]}]",
                false,
            ),
            (
                "namespaceSelector {} + podSelector app=web",
                "ingress: [{from: [{namespaceSelector: {}, podSelector: {matchLabels: {app: web}}}]}]",
                false,
            ),
            (
                "podSelector {} only (own namespace)",
                "ingress: [{from: [{podSelector: {}}]}]",
                false,
            ),
            (
                "team namespaces",
                "ingress: [{from: [{namespaceSelector: {matchLabels: {team: a}}}]}]",
                false,
            ),
            (
                "0.0.0.0/0",
                "ingress: [{from: [{ipBlock: {cidr: 0.0.0.0/0}}]}]",
                true,
            ),
            (
                "::/0",
                "ingress: [{from: [{ipBlock: {cidr: '::/0'}}]}]",
                true,
            ),
            (
                "0.0.0.0/0 except",
                "ingress: [{from: [{ipBlock: {cidr: 0.0.0.0/0, except: [10.0.0.0/8]}}]}]",
                false,
            ),
            (
                "0.0.0.0/0 except []",
                "ingress: [{from: [{ipBlock: {cidr: 0.0.0.0/0, except: []}}]}]",
                true,
            ),
            (
                "0.0.0.0/1",
                "ingress: [{from: [{ipBlock: {cidr: 0.0.0.0/1}}]}]",
                false,
            ),
            (
                "narrow peer then a match-everything peer",
                "ingress: [{from: [{podSelector: {matchLabels: {a: b}}}, {ipBlock: {cidr: 0.0.0.0/0}}]}]",
                true,
            ),
        ];
        for (name, rules, everything) in cases {
            let p = policy(&format!("podSelector: {{}}\n{rules}"));
            assert_eq!(p.ingress[0].peers.admits_everything(), everything, "{name}");
            // With all ports, a match-everything peer is exactly allow-all.
            assert_eq!(p.allow_all(I).is_some(), everything, "allow-all: {name}");
        }
    }

    #[test]
    fn allow_all_truth_table() {
        // (spec, allow-all ingress, allow-all egress)
        let cases = [
            ("podSelector: {}\ningress: [{}]", true, false),
            (
                "podSelector: {matchLabels: {app: api}}\ningress: [{from: [{namespaceSelector: {}}]}]",
                true,
                false,
            ),
            ("podSelector: {}\negress: [{}]", false, true),
            (
                "podSelector: {}\npolicyTypes: [Egress]\negress: [{}]",
                false,
                true,
            ),
            (
                "podSelector: {}\npolicyTypes: [Egress]\ningress: [{}]",
                false,
                false,
            ),
            (
                "podSelector: {}\ningress: [{ports: [{port: 443}]}]",
                false,
                false,
            ),
            (
                "podSelector: {}\ningress: [{ports: [{protocol: TCP}, {protocol: UDP}, {protocol: SCTP}]}]",
                true,
                false,
            ),
            (
                "podSelector: {}\ningress: [{ports: [{port: 1, endPort: 65535}, {protocol: UDP, port: 1, endPort: 65535}, {protocol: SCTP}]}]",
                true,
                false,
            ),
            (
                "podSelector: {}\ningress: [{ports: [{protocol: TCP}, {protocol: UDP}]}]",
                false,
                false,
            ),
            (
                "podSelector: {}\npolicyTypes: [Egress]\negress: [{to: [{ipBlock: {cidr: 0.0.0.0/0, except: [169.254.169.254/32]}}]}]",
                false,
                false,
            ),
            (
                "podSelector: {}\npolicyTypes: [Egress]\negress: [{to: [{ipBlock: {cidr: 0.0.0.0/0}}]}]",
                false,
                true,
            ),
            (
                "podSelector: {}\ningress: [{from: [{podSelector: {}}]}]",
                false,
                false,
            ),
            ("podSelector: {}", false, false),
            (
                "podSelector: {}\npolicyTypes: [Ingress, Egress]",
                false,
                false,
            ),
        ];
        for (spec, ai, ae) in cases {
            let p = policy(spec);
            assert_eq!(
                (p.allow_all(I).is_some(), p.allow_all(E).is_some()),
                (ai, ae),
                "{spec}"
            );
        }
    }

    #[test]
    fn allow_all_reports_the_first_offending_rule() {
        let p = policy(
            "podSelector: {}\ningress: [{from: [{podSelector: {}}]}, {ports: [{port: 80}]}, {}]",
        );
        assert_eq!(p.allow_all(I), Some(2));
    }

    #[test]
    fn broad_truth_table() {
        let cases = [
            (
                "ingress: [{ports: [{port: 443}]}]",
                Some("admits every pod and every address (from absent) on TCP 443"),
            ),
            (
                "ingress: [{from: [{namespaceSelector: {}}], ports: [{port: 80}]}]",
                Some("admits every pod in every namespace on TCP 80"),
            ),
            (
                "policyTypes: [Egress]\negress: [{to: [{ipBlock: {cidr: 0.0.0.0/0, except: [169.254.169.254/32]}}]}]",
                Some("admits every address of 0.0.0.0/0 except 169.254.169.254/32 on all ports"),
            ),
            ("ingress: [{}]", None),
            (
                "ingress: [{from: [{podSelector: {matchLabels: {app: web}}}], ports: [{port: 80}]}]",
                None,
            ),
            ("ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8}}]}]", None),
            // Not an effective type: no traffic is governed, nothing to warn about.
            (
                "policyTypes: [Egress]\ningress: [{ports: [{port: 443}]}]",
                None,
            ),
        ];
        for (rules, want) in cases {
            let p = policy(&format!("podSelector: {{}}\n{rules}"));
            let got = p.broad_rules();
            assert_eq!(got.first().map(|b| b.reason.as_str()), want, "{rules}");
        }
    }

    #[test]
    fn invalid_policies_name_the_path() {
        let np: NetworkPolicy = serde_saphyr::from_str(
            "metadata: {name: bad, namespace: ns}\nspec:\n  podSelector: {}\n  ingress:\n  - from: [{podSelector: {}}, {ipBlock: {cidr: nope}}]\n",
        )
        .unwrap();
        let e = Policy::from_k8s(&np, "default").unwrap_err();
        assert_eq!(e.path, "spec.ingress[0].from[1]");
        assert!(
            e.to_string()
                .starts_with("NetworkPolicy ns/bad: spec.ingress[0].from[1]: invalid CIDR"),
            "{e}"
        );

        let np: NetworkPolicy = serde_saphyr::from_str(
            "metadata: {name: bad}\nspec:\n  podSelector: {}\n  policyTypes: [Sideways]\n",
        )
        .unwrap();
        let e = Policy::from_k8s(&np, "default").unwrap_err();
        assert_eq!(e.policy, "default/bad");
        assert!(matches!(e.problem, Problem::PolicyType(_)));

        let np: NetworkPolicy = serde_saphyr::from_str(
            "metadata: {name: bad}\nspec:\n  podSelector: {}\n  egress: [{to: [{}]}]\n",
        )
        .unwrap();
        assert!(matches!(
            Policy::from_k8s(&np, "d").unwrap_err().problem,
            Problem::Peer(_)
        ));
    }

    #[test]
    fn the_default_deny_fix_is_a_default_deny_policy() {
        for dirs in [Directions::BOTH, Directions::only(I), Directions::only(E)] {
            let yaml = default_deny_manifest("shop", dirs);
            let np: NetworkPolicy = serde_saphyr::from_str(&yaml).unwrap();
            let p = Policy::from_k8s(&np, "elsewhere").unwrap();
            assert_eq!(p.namespace, "shop");
            assert_eq!(p.facts().default_deny, dirs, "{yaml}");
            assert!(p.facts().allow_all.is_empty());
        }
        assert!(
            default_deny_manifest("shop", Directions::only(E))
                .contains("name: default-deny-egress")
        );
    }

    #[test]
    fn peers_admit_pods_by_namespace_scope() {
        let labels = |pairs: &[(&str, &str)]| -> Labels {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let p = policy(
            "podSelector: {}\ningress:\n- from:\n  - podSelector: {matchLabels: {app: web}}\n  - namespaceSelector: {matchLabels: {team: a}}\n    podSelector: {matchLabels: {app: api}}\n",
        );
        let peers = &p.ingress[0].peers;
        let team_a = labels(&[("team", "a")]);
        let none = labels(&[]);
        assert!(peers.admits_pod("ns", "ns", &none, &labels(&[("app", "web")])));
        assert!(!peers.admits_pod("ns", "other", &none, &labels(&[("app", "web")])));
        assert!(peers.admits_pod("ns", "other", &team_a, &labels(&[("app", "api")])));
        assert!(!peers.admits_pod("ns", "other", &team_a, &labels(&[("app", "web")])));
        assert!(peers.addresses().is_empty());

        // The namespace half agrees with admits_pod for every namespace.
        let Peers::Only(v) = peers else {
            unreachable!()
        };
        assert!(v[0].admits_namespace("ns", "ns", &none));
        assert!(!v[0].admits_namespace("ns", "other", &team_a));
        assert!(v[1].admits_namespace("ns", "other", &team_a));
        assert!(!v[1].admits_namespace("ns", "other", &none));
        let block = policy("podSelector: {}\ningress: [{from: [{ipBlock: {cidr: 10.0.0.0/8}}]}]");
        let Peers::Only(b) = &block.ingress[0].peers else {
            unreachable!()
        };
        assert!(!b[0].admits_namespace("ns", "ns", &none));
    }

    #[test]
    fn direction_index_is_its_place_in_all() {
        for (i, d) in Direction::ALL.into_iter().enumerate() {
            assert_eq!(d.index(), i, "{d:?}");
        }
    }
}
