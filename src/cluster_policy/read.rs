//! Reading the three kinds into one [`ClusterPolicy`]: v1alpha1
//! `AdminNetworkPolicy` and `BaselineAdminNetworkPolicy`, v1alpha2
//! `ClusterNetworkPolicy`. Every difference between the API versions
//! stays in this file: field names (`ports` or `protocols`), actions
//! (`Allow` or `Accept`), where the tier comes from, what is required.
//!
//! What the CRDs' schemas reject (`../shared/fixtures/crds/network-policy-api`)
//! is an error here that names the field, as for NetworkPolicies: a field
//! the schema does not know, a missing subject, an unknown action, a peer
//! or port entry with no or two fields, a bad CIDR, a priority outside
//! 0-1000. The experimental channel's fields (`nodes`, `namedPort`,
//! `destinationNamedPort`, `domainNames`) are read too.

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use thiserror::Error;

use super::{
    Action, BASELINE_SINGLETON, ClusterKind, ClusterPeer, ClusterPolicy, ClusterRule, Subject, Tier,
};
use crate::addresses::{AddrSet, CidrError};
use crate::netpol::Direction;
use crate::ports::{MAX_PORT, MIN_PORT, PortError, PortSet, Protocol, RulePorts};
use crate::selector::{Selector, SelectorError};

/// A cluster-wide policy the API server would reject, or palisade cannot
/// read.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("{kind} {name}: {path}: {problem}")]
pub struct ClusterPolicyError {
    /// The kind.
    pub kind: ClusterKind,
    /// `metadata.name`.
    pub name: String,
    /// Where in the object, e.g. `spec.egress[0].to[1]`.
    pub path: String,
    /// What is wrong.
    pub problem: Problem,
}

/// What is wrong in a cluster-wide policy.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum Problem {
    /// The object does not have the shape of its kind (an unknown field, a
    /// value of the wrong type).
    #[error("{0}")]
    Shape(String),
    /// A bad label selector.
    #[error(transparent)]
    Selector(#[from] SelectorError),
    /// A bad port entry.
    #[error(transparent)]
    Port(#[from] PortError),
    /// A bad CIDR.
    #[error(transparent)]
    Cidr(#[from] CidrError),
    /// A value the schema does not allow.
    #[error("{0}")]
    Invalid(String),
    /// An API version palisade does not read.
    #[error("apiVersion {0} is not supported (palisade reads {1})")]
    Version(String, String),
}

/// Reads one object of `kind` in API version `version` (`v1alpha1`,
/// `v1alpha2`) from its JSON value.
pub fn from_value(
    kind: ClusterKind,
    version: &str,
    value: &serde_json::Value,
) -> Result<ClusterPolicy, ClusterPolicyError> {
    let name = value
        .pointer("/metadata/name")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_owned();
    let err = |path: &str, problem: Problem| ClusterPolicyError {
        kind,
        name: name.clone(),
        path: path.to_owned(),
        problem,
    };
    if version != kind.version() {
        return Err(err(
            "apiVersion",
            Problem::Version(
                format!("{}/{version}", super::GROUP),
                format!("{}/{}", super::GROUP, kind.version()),
            ),
        ));
    }
    let r = Reader { name: &name };
    let p = match kind {
        ClusterKind::AdminNetworkPolicy => {
            let spec: v1::AdminSpec = r.spec(value).map_err(|(p, e)| err(&p, e))?;
            r.admin(spec)
        }
        ClusterKind::BaselineAdminNetworkPolicy => {
            let spec: v1::BaselineSpec = r.spec(value).map_err(|(p, e)| err(&p, e))?;
            r.baseline(spec)
        }
        ClusterKind::ClusterNetworkPolicy => {
            let spec: v2::Spec = r.spec(value).map_err(|(p, e)| err(&p, e))?;
            r.cluster(spec)
        }
    };
    p.map_err(|(path, problem)| err(&path, problem))
}

/// A problem and where it is.
type Located = (String, Problem);

/// The object around a spec: what may sit beside it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Object<S> {
    #[serde(default)]
    #[allow(dead_code)]
    api_version: Option<IgnoredAny>,
    #[serde(default)]
    #[allow(dead_code)]
    kind: Option<IgnoredAny>,
    #[serde(default)]
    #[allow(dead_code)]
    metadata: Option<IgnoredAny>,
    spec: Option<S>,
    #[serde(default)]
    #[allow(dead_code)]
    status: Option<IgnoredAny>,
}

/// How many items a list may hold, per the CRDs.
struct Limits {
    rules: usize,
    peers: usize,
    ports: usize,
}

const V1_LIMITS: Limits = Limits {
    rules: 100,
    peers: 100,
    ports: 100,
};
const V2_LIMITS: Limits = Limits {
    rules: 25,
    peers: 25,
    ports: 25,
};
const MAX_NETWORKS: usize = 25;
const MAX_RULE_NAME: usize = 100;
const MAX_PRIORITY: i64 = 1000;

struct Reader<'a> {
    name: &'a str,
}

impl Reader<'_> {
    fn spec<S: DeserializeOwned>(&self, value: &serde_json::Value) -> Result<S, Located> {
        let obj: Object<S> = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let path = if path == "." { String::new() } else { path };
            (path, Problem::Shape(e.into_inner().to_string()))
        })?;
        obj.spec
            .ok_or_else(|| ("spec".to_owned(), Problem::Invalid("missing spec".into())))
    }

    fn admin(&self, s: v1::AdminSpec) -> Result<ClusterPolicy, Located> {
        let priority = priority(s.priority)?;
        let subject = read_subject(s.subject)?;
        let ingress = v1_rules(Direction::Ingress, s.ingress, ANP_ACTIONS)?;
        let egress = v1_rules(Direction::Egress, s.egress, ANP_ACTIONS)?;
        Ok(self.policy(
            ClusterKind::AdminNetworkPolicy,
            Tier::Admin,
            Some(priority),
            subject,
            ingress,
            egress,
        ))
    }

    fn baseline(&self, s: v1::BaselineSpec) -> Result<ClusterPolicy, Located> {
        if !self.name.is_empty() && self.name != BASELINE_SINGLETON {
            return Err((
                "metadata.name".into(),
                Problem::Invalid(format!(
                    "{:?}: only one BaselineAdminNetworkPolicy, named {BASELINE_SINGLETON:?}, can exist in a cluster",
                    self.name
                )),
            ));
        }
        let subject = read_subject(s.subject)?;
        let ingress = v1_rules(Direction::Ingress, s.ingress, BANP_ACTIONS)?;
        let egress = v1_rules(Direction::Egress, s.egress, BANP_ACTIONS)?;
        Ok(self.policy(
            ClusterKind::BaselineAdminNetworkPolicy,
            Tier::Baseline,
            None,
            subject,
            ingress,
            egress,
        ))
    }

    fn cluster(&self, s: v2::Spec) -> Result<ClusterPolicy, Located> {
        let tier = match s.tier.as_deref() {
            Some("Admin") => Tier::Admin,
            Some("Baseline") => Tier::Baseline,
            Some(other) => {
                return Err((
                    "spec.tier".into(),
                    Problem::Invalid(format!(
                        "unknown tier {other:?} (expected Admin or Baseline)"
                    )),
                ));
            }
            None => return Err(("spec.tier".into(), Problem::Invalid("missing tier".into()))),
        };
        let priority = priority(s.priority)?;
        let subject = read_subject(s.subject)?;
        let ingress = v2_rules(
            Direction::Ingress,
            s.ingress
                .into_iter()
                .map(|r| (r.name, r.action, r.from.map(v2_ingress_peers), r.protocols))
                .collect(),
        )?;
        let egress = v2_rules(
            Direction::Egress,
            s.egress
                .into_iter()
                .map(|r| (r.name, r.action, r.to, r.protocols))
                .collect(),
        )?;
        Ok(self.policy(
            ClusterKind::ClusterNetworkPolicy,
            tier,
            Some(priority),
            subject,
            ingress,
            egress,
        ))
    }

    fn policy(
        &self,
        kind: ClusterKind,
        tier: Tier,
        priority: Option<u32>,
        subject: Subject,
        ingress: Vec<ClusterRule>,
        egress: Vec<ClusterRule>,
    ) -> ClusterPolicy {
        ClusterPolicy {
            kind,
            name: self.name.to_owned(),
            tier,
            priority,
            subject,
            ingress,
            egress,
        }
    }
}

const ANP_ACTIONS: &[(&str, Action)] = &[
    ("Allow", Action::Allow),
    ("Deny", Action::Deny),
    ("Pass", Action::Pass),
];
const BANP_ACTIONS: &[(&str, Action)] = &[("Allow", Action::Allow), ("Deny", Action::Deny)];
/// `Accept` is v1alpha2's word for `Allow`: one action.
const CNP_ACTIONS: &[(&str, Action)] = &[
    ("Accept", Action::Allow),
    ("Deny", Action::Deny),
    ("Pass", Action::Pass),
];

fn priority(p: Option<i64>) -> Result<u32, Located> {
    let at = || "spec.priority".to_owned();
    match p {
        None => Err((at(), Problem::Invalid("missing priority".into()))),
        Some(p) if !(0..=MAX_PRIORITY).contains(&p) => Err((
            at(),
            Problem::Invalid(format!("{p} is outside 0-{MAX_PRIORITY}")),
        )),
        // In range, so the conversion cannot fail.
        Some(p) => Ok(u32::try_from(p).unwrap_or_default()),
    }
}

fn missing_subject() -> Located {
    (
        "spec.subject".into(),
        Problem::Invalid("missing subject (exactly one of namespaces or pods)".into()),
    )
}

fn selector(path: &str, s: &LabelSelector) -> Result<Selector, Located> {
    Selector::from_k8s(s).map_err(|e| (path.to_owned(), e.into()))
}

/// `pods: {namespaceSelector, podSelector}` as written. The schemas
/// require `podSelector` (and v1alpha1 `namespaceSelector` too), but the
/// API's own types hold both as plain selectors whose zero value is `{}`,
/// every namespace or pod, and the reference analyzer's cases leave them
/// out meaning just that: an absent one is read as `{}`.
struct PodsFields {
    namespace_selector: Option<LabelSelector>,
    pod_selector: Option<LabelSelector>,
}

/// A subject from its two optional halves.
fn subject_of(
    namespaces: Option<LabelSelector>,
    pods: Option<PodsFields>,
) -> Result<Subject, Located> {
    match (namespaces, pods) {
        (Some(ns), None) => Ok(Subject::Namespaces(selector(
            "spec.subject.namespaces",
            &ns,
        )?)),
        (None, Some(p)) => {
            let (namespaces, pods) = namespaced_pod("spec.subject.pods", p)?;
            Ok(Subject::Pods { namespaces, pods })
        }
        (None, None) => Err(missing_subject()),
        (Some(_), Some(_)) => Err((
            "spec.subject".into(),
            Problem::Invalid("exactly one of namespaces or pods may be set, not both".into()),
        )),
    }
}

/// The namespace and pod selectors of a `pods` subject or peer.
fn namespaced_pod(at: &str, p: PodsFields) -> Result<(Selector, Selector), Located> {
    let read = |field: &str, s: Option<LabelSelector>| match s {
        Some(s) => selector(&format!("{at}.{field}"), &s),
        None => Ok(Selector::everything()),
    };
    Ok((
        read("namespaceSelector", p.namespace_selector)?,
        read("podSelector", p.pod_selector)?,
    ))
}

fn action(at: &str, word: Option<&str>, allowed: &[(&str, Action)]) -> Result<Action, Located> {
    let expected = allowed.iter().map(|(w, _)| *w).collect::<Vec<_>>();
    let expected = match expected.as_slice() {
        [a, b] => format!("{a} or {b}"),
        [a, b, c] => format!("{a}, {b} or {c}"),
        other => other.join(", "),
    };
    match word {
        None => Err((
            format!("{at}.action"),
            Problem::Invalid(format!("missing action (expected {expected})")),
        )),
        Some(w) => allowed
            .iter()
            .find(|(name, _)| *name == w)
            .map(|(_, a)| *a)
            .ok_or_else(|| {
                (
                    format!("{at}.action"),
                    Problem::Invalid(format!("unknown action {w:?} (expected {expected})")),
                )
            }),
    }
}

fn rule_name(at: &str, name: Option<String>) -> Result<Option<String>, Located> {
    match name {
        Some(n) if n.chars().count() > MAX_RULE_NAME => Err((
            format!("{at}.name"),
            Problem::Invalid(format!("longer than {MAX_RULE_NAME} characters")),
        )),
        other => Ok(other.filter(|n| !n.is_empty())),
    }
}

fn at_most(at: &str, len: usize, max: usize, what: &str) -> Result<(), Located> {
    if len > max {
        return Err((
            at.to_owned(),
            Problem::Invalid(format!("{len} {what}; at most {max} are allowed")),
        ));
    }
    Ok(())
}

/// A peer, with which fields it had set, checked to be exactly one.
struct PeerFields {
    namespaces: Option<LabelSelector>,
    pods: Option<PodsFields>,
    nodes: Option<LabelSelector>,
    networks: Option<Vec<String>>,
    domain_names: Option<Vec<String>>,
}

fn peer(at: &str, f: PeerFields) -> Result<ClusterPeer, Located> {
    let set = [
        f.namespaces.is_some(),
        f.pods.is_some(),
        f.nodes.is_some(),
        f.networks.is_some(),
        f.domain_names.is_some(),
    ]
    .iter()
    .filter(|x| **x)
    .count();
    if set != 1 {
        return Err((
            at.to_owned(),
            Problem::Invalid(format!(
                "a peer needs exactly one of its fields set, this one has {set}"
            )),
        ));
    }
    if let Some(ns) = f.namespaces {
        return Ok(ClusterPeer::namespaces(selector(
            &format!("{at}.namespaces"),
            &ns,
        )?));
    }
    if let Some(p) = f.pods {
        let (ns, pods) = namespaced_pod(&format!("{at}.pods"), p)?;
        return Ok(ClusterPeer::pods(ns, pods));
    }
    if let Some(nodes) = f.nodes {
        return Ok(ClusterPeer::Nodes(selector(
            &format!("{at}.nodes"),
            &nodes,
        )?));
    }
    if let Some(cidrs) = f.networks {
        let at = format!("{at}.networks");
        if cidrs.is_empty() {
            return Err((at, Problem::Invalid("needs at least one CIDR".into())));
        }
        at_most(&at, cidrs.len(), MAX_NETWORKS, "CIDRs")?;
        let mut set = AddrSet::none();
        for (i, c) in cidrs.iter().enumerate() {
            let one = AddrSet::from_cidr(c).map_err(|e| (format!("{at}[{i}]"), e.into()))?;
            set = set.union(&one);
        }
        return Ok(ClusterPeer::Networks { set, cidrs });
    }
    let names = f.domain_names.unwrap_or_default();
    if names.is_empty() {
        return Err((
            format!("{at}.domainNames"),
            Problem::Invalid("needs at least one domain name".into()),
        ));
    }
    Ok(ClusterPeer::DomainNames(names))
}

fn peers(
    at: &str,
    list: Option<Vec<PeerFields>>,
    d: Direction,
    max: usize,
) -> Result<Vec<ClusterPeer>, Located> {
    let field = d.peer_field();
    let list = list.unwrap_or_default();
    if list.is_empty() {
        return Err((
            format!("{at}.{field}"),
            Problem::Invalid(format!("needs at least one peer ({field} is required)")),
        ));
    }
    at_most(&format!("{at}.{field}"), list.len(), max, "peers")?;
    list.into_iter()
        .enumerate()
        .map(|(j, f)| peer(&format!("{at}.{field}[{j}]"), f))
        .collect()
}

fn port_number(at: &str, n: i64) -> Result<u16, Located> {
    u16::try_from(n)
        .ok()
        .filter(|p| (MIN_PORT..=MAX_PORT).contains(p))
        .ok_or_else(|| (at.to_owned(), PortError::OutOfRange(n).into()))
}

fn protocol(at: &str, p: Option<&str>) -> Result<Protocol, Located> {
    match p {
        None | Some("") => Ok(Protocol::Tcp),
        Some(p) => p
            .parse()
            .map_err(|e: PortError| (format!("{at}.protocol"), e.into())),
    }
}

fn read_subject(s: Option<SubjectFields>) -> Result<Subject, Located> {
    let s = s.ok_or_else(missing_subject)?;
    subject_of(s.namespaces, s.pods.map(NamespacedPod::fields))
}

fn v1_ports(at: &str, ports: Option<Vec<v1::Port>>) -> Result<RulePorts, Located> {
    let Some(ports) = ports else {
        return Ok(RulePorts::all());
    };
    let at = format!("{at}.ports");
    if ports.is_empty() {
        return Err((
            at,
            Problem::Invalid("needs at least one entry when given".into()),
        ));
    }
    at_most(&at, ports.len(), V1_LIMITS.ports, "ports")?;
    let mut numeric = PortSet::none();
    let mut names = Vec::new();
    for (i, p) in ports.into_iter().enumerate() {
        let at = format!("{at}[{i}]");
        match (p.port_number, p.port_range, p.named_port) {
            (Some(n), None, None) => {
                let at = format!("{at}.portNumber");
                let proto = protocol(&at, n.protocol.as_deref())?;
                let port = port_number(&format!("{at}.port"), n.port)?;
                numeric.insert(proto, port, port);
            }
            (None, Some(r), None) => {
                let at = format!("{at}.portRange");
                let proto = protocol(&at, r.protocol.as_deref())?;
                let start = port_number(&format!("{at}.start"), r.start)?;
                let end = port_number(&format!("{at}.end"), r.end)?;
                // v1alpha1's schema does not check the order: a range that
                // ends before it starts is accepted, and holds no port.
                if start <= end {
                    numeric.insert(proto, start, end);
                }
            }
            (None, None, Some(name)) => names.push(name),
            _ => {
                return Err((
                    at,
                    Problem::Invalid(
                        "exactly one of portNumber, portRange or namedPort must be set".into(),
                    ),
                ));
            }
        }
    }
    Ok(RulePorts::from_parts(numeric, names))
}

fn v1_rules<R: v1::Rule>(
    d: Direction,
    rules: Vec<R>,
    actions: &[(&str, Action)],
) -> Result<Vec<ClusterRule>, Located> {
    at_most(
        &format!("spec.{}", d.field()),
        rules.len(),
        V1_LIMITS.rules,
        "rules",
    )?;
    rules
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let at = format!("spec.{}[{i}]", d.field());
            let (name, act, list, ports) = r.parts();
            Ok(ClusterRule {
                name: rule_name(&at, name)?,
                action: action(&at, act.as_deref(), actions)?,
                peers: peers(&at, list, d, V1_LIMITS.peers)?,
                ports: v1_ports(&at, ports)?,
            })
        })
        .collect()
}

fn v2_ingress_peers(list: Vec<IngressPeer>) -> Vec<v2::EgressPeer> {
    list.into_iter()
        .map(|p| v2::EgressPeer {
            namespaces: p.namespaces,
            pods: p.pods,
            nodes: None,
            networks: None,
            domain_names: None,
        })
        .collect()
}

fn v2_protocols(at: &str, list: Option<Vec<v2::Protocol>>) -> Result<RulePorts, Located> {
    let Some(list) = list else {
        return Ok(RulePorts::all());
    };
    let at = format!("{at}.protocols");
    if list.is_empty() {
        return Err((
            at,
            Problem::Invalid("needs at least one entry when given".into()),
        ));
    }
    at_most(&at, list.len(), V2_LIMITS.ports, "protocols")?;
    let mut numeric = PortSet::none();
    let mut names = Vec::new();
    for (i, p) in list.into_iter().enumerate() {
        let at = format!("{at}[{i}]");
        let set = [
            p.tcp.is_some(),
            p.udp.is_some(),
            p.sctp.is_some(),
            p.destination_named_port.is_some(),
        ];
        if set.iter().filter(|x| **x).count() != 1 {
            return Err((
                at,
                Problem::Invalid(
                    "exactly one of tcp, udp, sctp or destinationNamedPort must be set".into(),
                ),
            ));
        }
        if let Some(name) = p.destination_named_port {
            names.push(name);
            continue;
        }
        let (proto, field, spec) = match (p.tcp, p.udp, p.sctp) {
            (Some(s), _, _) => (Protocol::Tcp, "tcp", s),
            (_, Some(s), _) => (Protocol::Udp, "udp", s),
            (_, _, Some(s)) => (Protocol::Sctp, "sctp", s),
            _ => continue,
        };
        let at = format!("{at}.{field}");
        let Some(port) = spec.destination_port else {
            return Err((
                at,
                Problem::Invalid(
                    "needs destinationPort (an empty protocol matches nothing the schema allows)"
                        .into(),
                ),
            ));
        };
        let at = format!("{at}.destinationPort");
        match (port.number, port.range) {
            (Some(n), None) => {
                let n = port_number(&format!("{at}.number"), n)?;
                numeric.insert(proto, n, n);
            }
            (None, Some(r)) => {
                let start = port_number(&format!("{at}.range.start"), r.start)?;
                let end = port_number(&format!("{at}.range.end"), r.end)?;
                if start >= end {
                    return Err((
                        format!("{at}.range"),
                        Problem::Invalid(format!("start {start} must be less than end {end}")),
                    ));
                }
                numeric.insert(proto, start, end);
            }
            _ => {
                return Err((
                    at,
                    Problem::Invalid("exactly one of number or range must be set".into()),
                ));
            }
        }
    }
    Ok(RulePorts::from_parts(numeric, names))
}

type V2RuleParts = (
    Option<String>,
    Option<String>,
    Option<Vec<v2::EgressPeer>>,
    Option<Vec<v2::Protocol>>,
);

fn v2_rules(d: Direction, rules: Vec<V2RuleParts>) -> Result<Vec<ClusterRule>, Located> {
    at_most(
        &format!("spec.{}", d.field()),
        rules.len(),
        V2_LIMITS.rules,
        "rules",
    )?;
    rules
        .into_iter()
        .enumerate()
        .map(|(i, (name, act, list, protocols))| {
            let at = format!("spec.{}[{i}]", d.field());
            let action = action(&at, act.as_deref(), CNP_ACTIONS)?;
            let named = protocols
                .iter()
                .flatten()
                .any(|p| p.destination_named_port.is_some());
            let peers = peers(
                &at,
                list.map(|l| l.into_iter().map(v2::EgressPeer::fields).collect()),
                d,
                V2_LIMITS.peers,
            )?;
            let addressed = peers.iter().any(|p| {
                matches!(
                    p,
                    ClusterPeer::Networks { .. }
                        | ClusterPeer::Nodes(_)
                        | ClusterPeer::DomainNames(_)
                )
            });
            if named && addressed {
                return Err((
                    at,
                    Problem::Invalid(
                        "networks/nodes/domainNames peers cannot be combined with destinationNamedPort: they have no named ports".into(),
                    ),
                ));
            }
            if action != Action::Allow
                && peers.iter().any(|p| matches!(p, ClusterPeer::DomainNames(_)))
            {
                return Err((
                    at,
                    Problem::Invalid("domainNames peers are allowed in Accept rules only".into()),
                ));
            }
            Ok(ClusterRule {
                name: rule_name(&at, name)?,
                action,
                peers,
                ports: v2_protocols(&at, protocols)?,
            })
        })
        .collect()
}

impl fmt::Display for Action {
    /// `Allow`, `Deny`, `Pass` (the v1alpha1 words; policies print their
    /// own with [`ClusterPolicy::action_word`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Allow => "Allow",
            Action::Deny => "Deny",
            Action::Pass => "Pass",
        })
    }
}

/// The v1alpha1 schema (bundle v0.1.7, with the experimental channel's
/// `nodes` and `namedPort`).
/// What both versions write the same way: the subject, a `pods`
/// selector pair, an ingress peer.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SubjectFields {
    namespaces: Option<LabelSelector>,
    pods: Option<NamespacedPod>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NamespacedPod {
    namespace_selector: Option<LabelSelector>,
    pod_selector: Option<LabelSelector>,
}

impl NamespacedPod {
    fn fields(self) -> PodsFields {
        PodsFields {
            namespace_selector: self.namespace_selector,
            pod_selector: self.pod_selector,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct IngressPeer {
    namespaces: Option<LabelSelector>,
    pods: Option<NamespacedPod>,
}

mod v1 {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
    use serde::Deserialize;

    use super::{IngressPeer, NamespacedPod, PeerFields, SubjectFields};

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub(super) struct AdminSpec {
        pub(super) priority: Option<i64>,
        pub(super) subject: Option<SubjectFields>,
        #[serde(default)]
        pub(super) ingress: Vec<IngressRule>,
        #[serde(default)]
        pub(super) egress: Vec<EgressRule>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub(super) struct BaselineSpec {
        pub(super) subject: Option<SubjectFields>,
        #[serde(default)]
        pub(super) ingress: Vec<IngressRule>,
        #[serde(default)]
        pub(super) egress: Vec<EgressRule>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub(super) struct IngressRule {
        name: Option<String>,
        action: Option<String>,
        from: Option<Vec<IngressPeer>>,
        ports: Option<Vec<Port>>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub(super) struct EgressRule {
        name: Option<String>,
        action: Option<String>,
        to: Option<Vec<EgressPeer>>,
        ports: Option<Vec<Port>>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub(super) struct EgressPeer {
        namespaces: Option<LabelSelector>,
        pods: Option<NamespacedPod>,
        nodes: Option<LabelSelector>,
        networks: Option<Vec<String>>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub(super) struct Port {
        pub(super) port_number: Option<PortNumber>,
        pub(super) port_range: Option<PortRange>,
        pub(super) named_port: Option<String>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub(super) struct PortNumber {
        pub(super) protocol: Option<String>,
        pub(super) port: i64,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub(super) struct PortRange {
        pub(super) protocol: Option<String>,
        pub(super) start: i64,
        pub(super) end: i64,
    }

    /// A rule's name, action, peers and ports, as written.
    pub(super) type Parts = (
        Option<String>,
        Option<String>,
        Option<Vec<PeerFields>>,
        Option<Vec<Port>>,
    );

    /// What the reader needs of a rule of either direction.
    pub(super) trait Rule {
        fn parts(self) -> Parts;
    }

    impl Rule for IngressRule {
        fn parts(self) -> Parts {
            let peers = self.from.map(|l| {
                l.into_iter()
                    .map(|p| PeerFields {
                        namespaces: p.namespaces,
                        pods: p.pods.map(NamespacedPod::fields),
                        nodes: None,
                        networks: None,
                        domain_names: None,
                    })
                    .collect()
            });
            (self.name, self.action, peers, self.ports)
        }
    }

    impl Rule for EgressRule {
        fn parts(self) -> Parts {
            let peers = self.to.map(|l| {
                l.into_iter()
                    .map(|p| PeerFields {
                        namespaces: p.namespaces,
                        pods: p.pods.map(NamespacedPod::fields),
                        nodes: p.nodes,
                        networks: p.networks,
                        domain_names: None,
                    })
                    .collect()
            });
            (self.name, self.action, peers, self.ports)
        }
    }
}

/// The v1alpha2 schema (bundle v0.2.0, with the experimental channel's
/// `nodes`, `domainNames` and `destinationNamedPort`).
mod v2 {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
    use serde::Deserialize;

    use super::{IngressPeer, NamespacedPod, PeerFields, SubjectFields};

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub(super) struct Spec {
        pub(super) tier: Option<String>,
        pub(super) priority: Option<i64>,
        pub(super) subject: Option<SubjectFields>,
        #[serde(default)]
        pub(super) ingress: Vec<IngressRule>,
        #[serde(default)]
        pub(super) egress: Vec<EgressRule>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub(super) struct IngressRule {
        pub(super) name: Option<String>,
        pub(super) action: Option<String>,
        pub(super) from: Option<Vec<IngressPeer>>,
        pub(super) protocols: Option<Vec<Protocol>>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub(super) struct EgressRule {
        pub(super) name: Option<String>,
        pub(super) action: Option<String>,
        pub(super) to: Option<Vec<EgressPeer>>,
        pub(super) protocols: Option<Vec<Protocol>>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub(super) struct EgressPeer {
        pub(super) namespaces: Option<LabelSelector>,
        pub(super) pods: Option<NamespacedPod>,
        pub(super) nodes: Option<LabelSelector>,
        pub(super) networks: Option<Vec<String>>,
        pub(super) domain_names: Option<Vec<String>>,
    }

    impl EgressPeer {
        pub(super) fn fields(self) -> PeerFields {
            PeerFields {
                namespaces: self.namespaces,
                pods: self.pods.map(NamespacedPod::fields),
                nodes: self.nodes,
                networks: self.networks,
                domain_names: self.domain_names,
            }
        }
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub(super) struct Protocol {
        pub(super) tcp: Option<ProtocolPort>,
        pub(super) udp: Option<ProtocolPort>,
        pub(super) sctp: Option<ProtocolPort>,
        pub(super) destination_named_port: Option<String>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub(super) struct ProtocolPort {
        pub(super) destination_port: Option<Port>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub(super) struct Port {
        pub(super) number: Option<i64>,
        pub(super) range: Option<Range>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub(super) struct Range {
        pub(super) start: i64,
        pub(super) end: i64,
    }
}
