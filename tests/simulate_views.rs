//! The validating rules and `simulate` read policies the same way: over
//! generated clusters,
//! - a policy the validator calls allow-all for a direction makes every
//!   pod it selects reachable on every port in that direction in `list`;
//! - a namespace whose only policy is a default-deny for a direction has
//!   no connection in that direction in `list`;
//! - the admission-time preview of a policy change equals the diff of the
//!   full listings before and after it.

use std::collections::BTreeSet;

use k8s_openapi::api::networking::v1::NetworkPolicy;
use palisade::addresses::AddrSet;
use palisade::netpol::{Direction, Directions, Peer, Peers, Policy};
use palisade::ports::PortSet;
use palisade::reach::{
    Endpoint, Model, ModelBuilder, PolicyChange, WorkloadId, connections, diff, preview,
};
use proptest::prelude::*;
use serde_json::{Value, json};

const NAMESPACES: [&str; 3] = ["a", "b", "c"];
const APPS: [&str; 3] = ["web", "api", "db"];

fn arb_selector() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!({})),
        prop::sample::select(&APPS[..]).prop_map(|a| json!({"matchLabels": {"app": a}})),
        Just(
            json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "api"]}]})
        ),
    ]
}

fn arb_ns_selector() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!({})),
        Just(json!({"matchLabels": {"team": "x"}})),
        Just(
            json!({"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "Exists"}]})
        ),
        prop::sample::select(&NAMESPACES[..])
            .prop_map(|n| json!({"matchLabels": {"kubernetes.io/metadata.name": n}})),
    ]
}

fn arb_peer() -> impl Strategy<Value = Value> {
    prop_oneof![
        arb_selector().prop_map(|s| json!({"podSelector": s})),
        arb_ns_selector().prop_map(|n| json!({"namespaceSelector": n})),
        (arb_ns_selector(), arb_selector())
            .prop_map(|(n, s)| json!({"namespaceSelector": n, "podSelector": s})),
        Just(json!({"ipBlock": {"cidr": "0.0.0.0/0"}})),
        Just(json!({"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}})),
        Just(json!({"ipBlock": {"cidr": "::/0"}})),
    ]
}

fn arb_ports() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        Just(None),
        Just(Some(json!([{"port": 80}]))),
        Just(Some(json!([{"port": "http"}]))),
        Just(Some(
            json!([{"port": 8000, "endPort": 8100}, {"protocol": "UDP", "port": 53}])
        )),
        Just(Some(
            json!([{"protocol": "TCP"}, {"protocol": "UDP"}, {"protocol": "SCTP"}])
        )),
        Just(Some(json!([{"protocol": "UDP"}]))),
    ]
}

fn arb_rule(peer_key: &'static str) -> impl Strategy<Value = Value> {
    (
        prop::option::of(prop::collection::vec(arb_peer(), 1..3)),
        arb_ports(),
    )
        .prop_map(move |(peers, ports)| {
            let mut r = json!({});
            if let Some(p) = peers {
                r[peer_key] = json!(p);
            }
            if let Some(p) = ports {
                r["ports"] = p;
            }
            r
        })
}

fn arb_policy(name: String) -> impl Strategy<Value = Value> {
    (
        prop::sample::select(&NAMESPACES[..]),
        arb_selector(),
        prop_oneof![
            Just(None),
            Just(Some(vec!["Ingress"])),
            Just(Some(vec!["Egress"])),
            Just(Some(vec!["Ingress", "Egress"])),
        ],
        prop::collection::vec(arb_rule("from"), 0..3),
        prop::collection::vec(arb_rule("to"), 0..3),
    )
        .prop_map(move |(ns, sel, types, ingress, egress)| {
            let mut spec = json!({"podSelector": sel, "ingress": ingress, "egress": egress});
            if let Some(t) = types {
                spec["policyTypes"] = json!(t);
            }
            json!({"metadata": {"name": name.clone(), "namespace": ns}, "spec": spec})
        })
}

/// A pod: namespace, app label, whether it names its port `http`.
fn arb_pod() -> impl Strategy<Value = (&'static str, &'static str, bool)> {
    (
        prop::sample::select(&NAMESPACES[..]),
        prop::sample::select(&APPS[..]),
        any::<bool>(),
    )
}

fn to_policy(v: &Value) -> Policy {
    let np: NetworkPolicy = serde_json::from_value(v.clone()).unwrap();
    Policy::from_k8s(&np, "default").unwrap()
}

fn build(pods: &[(&str, &str, bool)], policies: &[Policy]) -> Model {
    let mut b = ModelBuilder::new();
    for (i, ns) in NAMESPACES.iter().enumerate() {
        let labels = if i == 0 {
            json!({"team": "x"})
        } else {
            json!({})
        };
        b.namespace(
            &serde_json::from_value(json!({"metadata": {"name": ns, "labels": labels}})).unwrap(),
        );
    }
    for (i, (ns, app, named)) in pods.iter().enumerate() {
        let port = if *named {
            json!({"name": "http", "containerPort": 8080})
        } else {
            json!({"containerPort": 8080})
        };
        b.pod(
            &serde_json::from_value(json!({
                "metadata": {"name": format!("p{i}"), "namespace": ns, "labels": {"app": app}},
                "spec": {"containers": [{"name": "c", "ports": [port]}]}
            }))
            .unwrap(),
        );
    }
    for p in policies {
        b.policy(p.clone());
    }
    b.build()
}

fn pod_id(pods: &[(&str, &str, bool)], i: usize) -> WorkloadId {
    WorkloadId::new(pods[i].0, &format!("p{i}"), "Pod")
}

/// The policies with direction `d` taken out of their types: the other
/// direction then restricts nothing, so `list` shows `d` alone.
fn only(policies: &[Policy], d: Direction) -> Vec<Policy> {
    policies
        .iter()
        .map(|p| {
            let mut p = p.clone();
            p.types = p.types.iter().filter(|t| *t == d).collect::<Directions>();
            p
        })
        .collect()
}

fn arb_cluster() -> impl Strategy<Value = (Vec<(&'static str, &'static str, bool)>, Vec<Policy>)> {
    (
        prop::collection::vec(arb_pod(), 1..7),
        prop::collection::vec(any::<u8>(), 0..6).prop_flat_map(|seeds| {
            seeds
                .iter()
                .enumerate()
                .map(|(i, _)| arb_policy(format!("p{i}")))
                .collect::<Vec<_>>()
        }),
    )
        .prop_map(|(pods, policies)| (pods, policies.iter().map(to_policy).collect()))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, .. ProptestConfig::default() })]

    /// "Allow-all" in the validator is a rule with all ports and a peer
    /// that matches everything of its kind (DESIGN.md): every pod (no
    /// `from`/`to`, or a namespaceSelector every namespace satisfies), or
    /// every address of a family (`0.0.0.0/0`, `::/0`). `list` must open
    /// exactly that on every port. What it must not be asked: that
    /// `namespaceSelector: {}` opens external addresses (it selects pods
    /// only), or that `ipBlock: 0.0.0.0/0` opens pods. Kubernetes says
    /// ipBlocks are meant for cluster-external IPs and leaves their match
    /// against pod IPs to the network plugin; the reference analyzer's
    /// fixtures (ipblockstest) admit no pod through an ipBlock. So the
    /// validator's allow-all for a whole-family ipBlock is a conservative
    /// call, and this test checks the part both views define alike.
    #[test]
    fn allow_all_in_the_validator_means_open_in_list((pods, policies) in arb_cluster()) {
        for d in Direction::ALL {
            let policies = only(&policies, d);
            let model = build(&pods, &policies);
            let conns = connections(&model);
            for p in &policies {
                let Some(rule) = p.allow_all(d) else { continue };
                let peers = &p.rules(d)[rule].peers;
                let (every_pod, v4, v6) = match peers {
                    Peers::Any => (true, true, true),
                    Peers::Only(list) => (
                        list.iter().any(Peer::admits_every_pod),
                        list.iter().any(|x| x.addresses().is_all_v4()),
                        list.iter().any(|x| x.addresses().is_all_v6()),
                    ),
                };
                prop_assert!(every_pod || v4 || v6, "{} allow-all by {:?}", p.id(), peers);
                for (i, (ns, app, _)) in pods.iter().enumerate() {
                    let labels = [("app".to_owned(), app.to_string())].into();
                    if !p.selects(ns, &labels) {
                        continue;
                    }
                    let me = Endpoint::Workload(pod_id(&pods, i));
                    for j in (0..pods.len()).filter(|&j| j != i && every_pod) {
                        let other = Endpoint::Workload(pod_id(&pods, j));
                        let (src, dst) = match d {
                            Direction::Ingress => (&other, &me),
                            Direction::Egress => (&me, &other),
                        };
                        let ports = conns.iter().find(|c| &c.src == src && &c.dst == dst).map(|c| &c.ports);
                        prop_assert_eq!(ports, Some(&PortSet::all()), "{} allow-all {:?}: {} => {}", p.id(), d, src, dst);
                    }
                    let outside: AddrSet = conns
                        .iter()
                        .filter(|c| c.ports.is_all())
                        .filter_map(|c| match (d, &c.src, &c.dst) {
                            (Direction::Ingress, Endpoint::External(a), w) if w == &me => Some(a.clone()),
                            (Direction::Egress, w, Endpoint::External(a)) if w == &me => Some(a.clone()),
                            _ => None,
                        })
                        .fold(AddrSet::none(), |acc, a| acc.union(&a));
                    prop_assert!(!v4 || outside.is_all_v4(), "{} allow-all {:?}: {} reaches only {}", p.id(), d, me, outside);
                    prop_assert!(!v6 || outside.is_all_v6(), "{} allow-all {:?}: {} reaches only {}", p.id(), d, me, outside);
                }
            }
        }
    }

    #[test]
    fn a_lone_default_deny_closes_its_namespace(
        (pods, policies) in arb_cluster(),
        ns in prop::sample::select(&NAMESPACES[..]),
        variant in 0usize..5,
    ) {
        let deny = [
            json!({"podSelector": {}}),
            json!({"podSelector": {}, "policyTypes": ["Egress"]}),
            json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
            json!({"podSelector": {"matchLabels": {}}, "policyTypes": ["Ingress", "Egress"], "ingress": [], "egress": []}),
            json!({"podSelector": {"matchExpressions": []}, "egress": []}),
        ][variant].clone();
        let deny = to_policy(&json!({"metadata": {"name": "deny", "namespace": ns}, "spec": deny}));
        let mut all: Vec<Policy> = policies.into_iter().filter(|p| p.namespace != ns).collect();
        all.push(deny.clone());
        let conns = connections(&build(&pods, &all));
        for d in Direction::ALL.into_iter().filter(|d| deny.is_default_deny(*d)) {
            for c in &conns {
                let end = match d {
                    Direction::Ingress => &c.dst,
                    Direction::Egress => &c.src,
                };
                prop_assert!(
                    end.workload().is_none_or(|w| &*w.namespace != ns),
                    "{} is default-deny for {:?} in {}, yet {}", deny.id(), d, ns, c
                );
            }
        }
    }

    #[test]
    fn preview_equals_the_diff_of_full_listings(
        (pods, policies) in arb_cluster(),
        new in arb_policy("changed".to_owned()),
        op in 0usize..3,
        pick in any::<prop::sample::Index>(),
    ) {
        let model = build(&pods, &policies);
        let change = match (op, policies.is_empty()) {
            (0, _) | (_, true) => PolicyChange::create(to_policy(&new)),
            (1, false) => {
                let old = policies[pick.index(policies.len())].clone();
                let mut new = new.clone();
                new["metadata"] = json!({"name": old.name, "namespace": old.namespace});
                PolicyChange::update(old, to_policy(&new)).unwrap()
            }
            _ => PolicyChange::delete(policies[pick.index(policies.len())].clone()),
        };
        let after = model.with_change(&change);
        let full = diff(&model, &after);
        let p = preview(&model, &change);
        prop_assert_eq!(&p.changes, &full.changes);
        // Opened and closed are the port deltas of those changes.
        let opened: BTreeSet<String> = p.opened.iter().map(ToString::to_string).collect();
        let want: BTreeSet<String> = full
            .changes
            .iter()
            .filter(|c| !c.opened().is_empty())
            .map(|c| format!("{} => {} : {}", c.src, c.dst, c.opened()))
            .collect();
        prop_assert_eq!(opened, want);
        prop_assert_eq!(p.closed.len(), full.changes.iter().filter(|c| !c.closed().is_empty()).count());
        prop_assert_eq!(full.opens(), !p.opened.is_empty());
    }
}

/// A change a watch reports.
#[derive(Debug, Clone)]
enum Event {
    /// Pod `p{slot}` in a namespace: put with (app, named port), or removed.
    Pod(usize, &'static str, Option<(&'static str, bool)>),
    /// A policy put.
    PutPolicy(Value),
    /// Policy `q{slot}` removed from a namespace.
    RemovePolicy(usize, &'static str),
    /// A namespace put (with or without `team: x`), or removed.
    Namespace(&'static str, Option<bool>),
}

fn arb_event() -> impl Strategy<Value = Event> {
    prop_oneof![
        3 => (0usize..4, prop::sample::select(&NAMESPACES[..]), prop::option::of((prop::sample::select(&APPS[..]), any::<bool>())))
            .prop_map(|(i, ns, pod)| Event::Pod(i, ns, pod)),
        3 => (0usize..4).prop_flat_map(|i| arb_policy(format!("q{i}"))).prop_map(Event::PutPolicy),
        1 => (0usize..4, prop::sample::select(&NAMESPACES[..])).prop_map(|(i, ns)| Event::RemovePolicy(i, ns)),
        1 => (prop::sample::select(&NAMESPACES[..]), prop::option::of(any::<bool>()))
            .prop_map(|(ns, team)| Event::Namespace(ns, team)),
    ]
}

fn namespace_object(name: &str, team: bool) -> k8s_openapi::api::core::v1::Namespace {
    let labels = if team {
        json!({"team": "x"})
    } else {
        json!({})
    };
    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap()
}

fn pod_object(name: &str, ns: &str, app: &str, named: bool) -> k8s_openapi::api::core::v1::Pod {
    let port = if named {
        json!({"name": "http", "containerPort": 8080})
    } else {
        json!({"containerPort": 8080})
    };
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns, "labels": {"app": app}},
        "spec": {"containers": [{"name": "c", "ports": [port]}]}
    }))
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, .. ProptestConfig::default() })]

    /// The preview's model is changed in place as watch events arrive;
    /// after any sequence of them it must be the model a fresh build of
    /// what is left gives: the same connections, workloads, namespaces and
    /// notes, and no policy body or peer kept for a policy that is gone.
    #[test]
    fn changes_in_place_equal_a_fresh_build(events in prop::collection::vec(arb_event(), 1..30)) {
        use std::collections::BTreeMap;
        let mut live = ModelBuilder::new();
        let mut pods: BTreeMap<(&str, usize), (&str, bool)> = BTreeMap::new();
        let mut policies: BTreeMap<(String, String), Policy> = BTreeMap::new();
        let mut namespaces: BTreeMap<&str, bool> = BTreeMap::new();
        for e in &events {
            match e {
                Event::Pod(i, ns, Some((app, named))) => {
                    live.pod(&pod_object(&format!("p{i}"), ns, app, *named));
                    pods.insert((ns, *i), (app, *named));
                }
                Event::Pod(i, ns, None) => {
                    live.remove_pod(ns, &format!("p{i}"));
                    pods.remove(&(ns, *i));
                }
                Event::PutPolicy(v) => {
                    let p = to_policy(v);
                    policies.insert((p.namespace.clone(), p.name.clone()), p.clone());
                    live.policy(p);
                }
                Event::RemovePolicy(i, ns) => {
                    live.remove_policy(ns, &format!("q{i}"));
                    policies.remove(&(ns.to_string(), format!("q{i}")));
                }
                Event::Namespace(ns, Some(team)) => {
                    live.namespace(&namespace_object(ns, *team));
                    namespaces.insert(ns, *team);
                }
                Event::Namespace(ns, None) => {
                    live.remove_namespace(ns);
                    namespaces.remove(ns);
                }
            }
        }
        let mut fresh = ModelBuilder::new();
        for (ns, team) in &namespaces {
            fresh.namespace(&namespace_object(ns, *team));
        }
        for ((ns, i), (app, named)) in &pods {
            fresh.pod(&pod_object(&format!("p{i}"), ns, app, *named));
        }
        for p in policies.values() {
            fresh.policy(p.clone());
        }
        let (live, fresh) = (live.build(), fresh.build());
        prop_assert_eq!(connections(&live), connections(&fresh));
        prop_assert_eq!(live.workloads().collect::<Vec<_>>(), fresh.workloads().collect::<Vec<_>>());
        prop_assert_eq!(live.namespaces().collect::<Vec<_>>(), fresh.namespaces().collect::<Vec<_>>());
        prop_assert_eq!(live.notes(), fresh.notes());
        prop_assert_eq!(live.stats(), fresh.stats());
    }
}
