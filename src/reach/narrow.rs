//! A narrower rule, proposed from the flows a rule admitted: the peers and
//! ports actually used, as a NetworkPolicy to review. Peers that used the
//! same ports share one rule; a rule per distinct port set keeps the
//! proposal from admitting a peer on another peer's ports.
//!
//! Workloads are named by the labels all their pods share, less the labels
//! controllers stamp per rollout or per pod (`pod-template-hash`, ...),
//! which would stop matching at the next rollout; addresses outside the
//! cluster by the addresses seen, merged into CIDRs.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::model::{Model, WorkloadId};
use super::verify::{Peer, RuleUse};
use crate::addresses::AddrSet;
use crate::netpol::Direction;
use crate::ports::PortSet;
use crate::selector::{Labels, NAMESPACE_NAME_LABEL, Operator, Selector};

/// Labels controllers set per rollout, revision or pod: a selector on them
/// stops matching when the workload changes.
const VOLATILE: &[&str] = &[
    "pod-template-hash",
    "controller-revision-hash",
    "pod-template-generation",
    "statefulset.kubernetes.io/pod-name",
    "apps.kubernetes.io/pod-index",
    "batch.kubernetes.io/controller-uid",
    "batch.kubernetes.io/job-completion-index",
    "controller-uid",
];

/// More outside addresses than this in one rule: the rule's own ipBlocks
/// are kept rather than listing every address.
const MAX_BLOCKS: usize = 32;

/// The policy that rule `u` narrowed to what flows used would leave: the
/// same name, namespace and pod selector, with only this direction's
/// narrowed rules. `None` when no flow used the rule (the proposal is to
/// remove it) or the policy is not in the model.
pub fn proposal(model: &Model, u: &RuleUse) -> Option<NetworkPolicy> {
    if u.used.is_empty() {
        return None;
    }
    let (ns, name) = u.policy.split_once('/')?;
    let policy = model.policy(ns, name)?;
    // Peers grouped by the exact ports they used.
    let mut by_ports: BTreeMap<String, (PortSet, Vec<&Peer>)> = BTreeMap::new();
    for (peer, (ports, _)) in &u.used {
        by_ports
            .entry(ports.to_string())
            .or_insert_with(|| (ports.clone(), Vec::new()))
            .1
            .push(peer);
    }
    let original_blocks = || -> Vec<NetworkPolicyPeer> {
        let Some(crate::netpol::Peers::Only(peers)) =
            policy.rules(u.direction).get(u.rule).map(|r| &r.peers)
        else {
            return vec![block("0.0.0.0/0", Vec::new()), block("::/0", Vec::new())];
        };
        peers
            .iter()
            .filter_map(|p| match p {
                crate::netpol::Peer::Addresses { cidr, except, .. } => {
                    Some(block(cidr, except.clone()))
                }
                crate::netpol::Peer::Pods { .. } => None,
            })
            .collect()
    };
    let mut rules: Vec<(Vec<NetworkPolicyPeer>, Vec<NetworkPolicyPort>)> = Vec::new();
    for (ports, peers) in by_ports.into_values() {
        let mut out: Vec<NetworkPolicyPeer> = Vec::new();
        let mut addrs = AddrSet::none();
        for p in peers {
            match p {
                Peer::Workload(w) => out.push(workload_peer(model, w, ns)),
                Peer::External(ip) => addrs = addrs.union(&AddrSet::from_ip(*ip)),
            }
        }
        let cidrs = addrs.cidrs();
        if cidrs.len() > MAX_BLOCKS {
            out.extend(original_blocks());
        } else {
            out.extend(cidrs.iter().map(|c| block(c, Vec::new())));
        }
        rules.push((out, k8s_ports(&ports)));
    }
    let mut spec = NetworkPolicySpec {
        pod_selector: Some(label_selector(&policy.pod_selector)),
        policy_types: Some(vec![u.direction.as_str().to_owned()]),
        ..NetworkPolicySpec::default()
    };
    match u.direction {
        Direction::Ingress => {
            spec.ingress = Some(
                rules
                    .into_iter()
                    .map(|(from, ports)| NetworkPolicyIngressRule {
                        from: Some(from),
                        ports: Some(ports),
                    })
                    .collect(),
            )
        }
        Direction::Egress => {
            spec.egress = Some(
                rules
                    .into_iter()
                    .map(|(to, ports)| NetworkPolicyEgressRule {
                        to: Some(to),
                        ports: Some(ports),
                    })
                    .collect(),
            )
        }
    }
    Some(NetworkPolicy {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(ns.to_owned()),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
    })
}

/// The proposal as YAML, with a header saying what it replaces.
pub fn proposal_yaml(model: &Model, u: &RuleUse) -> Option<String> {
    let np = proposal(model, u)?;
    let body = serde_saphyr::to_string(&np).ok()?;
    Some(format!(
        "# Proposed narrowing of {} {}[{}], from the flows seen: the peers and ports used.\n\
         # It replaces that rule; the policy's other rules stay as they are.\n{body}",
        u.policy,
        u.direction.field(),
        u.rule
    ))
}

/// Pods of workload `w`, for a policy in `policy_ns`: by the labels all
/// its pods share (less volatile ones), in its namespace.
fn workload_peer(model: &Model, w: &WorkloadId, policy_ns: &str) -> NetworkPolicyPeer {
    let shapes = model.shapes(w);
    let mut common: Labels = shapes.first().map(|s| s.labels.clone()).unwrap_or_default();
    for s in shapes.iter().skip(1) {
        common.retain(|k, v| s.labels.get(k) == Some(v));
    }
    common.retain(|k, _| !VOLATILE.contains(&k.as_str()));
    let namespace_selector = (&*w.namespace != policy_ns).then(|| LabelSelector {
        match_labels: Some(
            [(NAMESPACE_NAME_LABEL.to_owned(), w.namespace.to_string())]
                .into_iter()
                .collect(),
        ),
        ..LabelSelector::default()
    });
    NetworkPolicyPeer {
        pod_selector: Some(LabelSelector {
            match_labels: (!common.is_empty()).then(|| common.into_iter().collect()),
            ..LabelSelector::default()
        }),
        namespace_selector,
        ip_block: None,
    }
}

fn block(cidr: &str, except: Vec<String>) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        ip_block: Some(IPBlock {
            cidr: cidr.to_owned(),
            except: (!except.is_empty()).then_some(except),
        }),
        ..NetworkPolicyPeer::default()
    }
}

/// Ports as a rule writes them: one entry per range, `endPort` for ranges.
fn k8s_ports(ports: &PortSet) -> Vec<NetworkPolicyPort> {
    let mut out = Vec::new();
    for (protocol, ranges) in ports.by_protocol() {
        for &(start, end) in ranges.ranges() {
            out.push(NetworkPolicyPort {
                protocol: Some(protocol.as_str().to_owned()),
                port: Some(IntOrString::Int(i32::from(start))),
                end_port: (end > start).then_some(i32::from(end)),
            });
        }
    }
    out
}

/// A selector as the API writes it: single-value `In` requirements as
/// `matchLabels`, the rest as `matchExpressions`.
fn label_selector(s: &Selector) -> LabelSelector {
    let mut labels = BTreeMap::new();
    let mut exprs = Vec::new();
    for r in s.requirements() {
        let (operator, values) = match &r.operator {
            Operator::In(v) if v.len() == 1 && !labels.contains_key(&r.key) => {
                labels.insert(r.key.clone(), v[0].clone());
                continue;
            }
            Operator::In(v) => ("In", Some(v.clone())),
            Operator::NotIn(v) => ("NotIn", Some(v.clone())),
            Operator::Exists => ("Exists", None),
            Operator::DoesNotExist => ("DoesNotExist", None),
        };
        exprs.push(LabelSelectorRequirement {
            key: r.key.clone(),
            operator: operator.to_owned(),
            values,
        });
    }
    LabelSelector {
        match_labels: (!labels.is_empty()).then_some(labels),
        match_expressions: (!exprs.is_empty()).then_some(exprs),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::Protocol;
    use crate::reach::verify::Seen;

    fn model() -> Model {
        let yaml = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}, matchExpressions: [{key: tier, operator: NotIn, values: [test]}]}
  policyTypes: [Ingress]
  ingress:
  - from: [{podSelector: {}}, {ipBlock: {cidr: 10.0.0.0/8}}]
"#;
        let np: NetworkPolicy = serde_saphyr::from_str(yaml).unwrap();
        let mut b = crate::reach::ModelBuilder::new();
        b.network_policy(&np).unwrap();
        for (name, labels) in [("a", "app: a"), ("b", "app: b, pod-template-hash: 5d9")] {
            let pod = format!(
                "metadata: {{name: {name}, namespace: shop, labels: {{{labels}}}}}\nspec: {{containers: []}}\n"
            );
            b.pod(&serde_saphyr::from_str(&pod).unwrap());
        }
        b.build()
    }

    fn ports(p: &[(Protocol, u16, u16)]) -> PortSet {
        let mut s = PortSet::none();
        for &(proto, a, b) in p {
            s.insert(proto, a, b);
        }
        s
    }

    /// Peers that used different ports get different rules (one rule
    /// with both would admit each on the other's ports); labels a
    /// rollout changes are left out; outside addresses become CIDRs.
    #[test]
    fn peers_are_grouped_by_the_ports_they_used() {
        let m = model();
        let wl = |n: &str| Peer::Workload(WorkloadId::new("shop", n, "Pod"));
        let seen = Seen::default();
        let mut used = BTreeMap::new();
        used.insert(wl("a"), (ports(&[(Protocol::Tcp, 5432, 5432)]), seen));
        used.insert(
            wl("b"),
            (
                ports(&[(Protocol::Tcp, 6379, 6379), (Protocol::Udp, 53, 54)]),
                seen,
            ),
        );
        used.insert(
            Peer::External("10.1.2.3".parse().unwrap()),
            (ports(&[(Protocol::Tcp, 5432, 5432)]), seen),
        );
        let u = RuleUse {
            policy: "shop/db".into(),
            direction: Direction::Ingress,
            rule: 0,
            used,
            unused_pairs: Vec::new(),
            unused_count: 0,
            admitted_pairs: 2,
            unused_addresses: Vec::new(),
        };
        let yaml = proposal_yaml(&m, &u).unwrap();
        assert!(
            yaml.starts_with("# Proposed narrowing of shop/db ingress[0]"),
            "{yaml}"
        );
        let np: NetworkPolicy = serde_saphyr::from_str(&yaml).unwrap();
        let spec = np.spec.unwrap();
        let sel = spec.pod_selector.unwrap();
        assert_eq!(sel.match_labels.unwrap()["app"], "db");
        assert_eq!(sel.match_expressions.unwrap()[0].operator, "NotIn");
        assert_eq!(spec.policy_types.unwrap(), vec!["Ingress".to_owned()]);
        let rules = spec.ingress.unwrap();
        let text: Vec<String> = rules
            .iter()
            .map(|r| {
                let peers: Vec<String> = r
                    .from
                    .iter()
                    .flatten()
                    .map(|p| match (&p.pod_selector, &p.ip_block) {
                        (Some(s), _) => format!("{:?}", s.match_labels),
                        (_, Some(b)) => b.cidr.clone(),
                        _ => "?".into(),
                    })
                    .collect();
                let ports: Vec<String> = r
                    .ports
                    .iter()
                    .flatten()
                    .map(|p| format!("{:?}/{:?}-{:?}", p.protocol.as_deref(), p.port, p.end_port))
                    .collect();
                format!("{peers:?} {ports:?}")
            })
            .collect();
        assert_eq!(
            text,
            vec![
                r#"["Some({\"app\": \"a\"})", "10.1.2.3/32"] ["Some(\"TCP\")/Some(Int(5432))-None"]"#,
                r#"["Some({\"app\": \"b\"})"] ["Some(\"TCP\")/Some(Int(6379))-None", "Some(\"UDP\")/Some(Int(53))-Some(54)"]"#,
            ]
        );
        // Nothing used: nothing to narrow to (the rule can go).
        let none = RuleUse {
            used: BTreeMap::new(),
            ..u
        };
        assert!(proposal(&m, &none).is_none());
    }
}
