//! `simulate verify` against the connectivity fixtures
//! (`../shared/fixtures/connectivity/` and `cluster-policies/`, cases with
//! known answers from np-guard/netpol-analyzer): flows are synthesized from each case's
//! `connections.txt`, one per allowed connection and port range, named the
//! way Hubble names them (the workload, or an outside address), and held
//! against the model of the case's manifests.
//!
//! - every allowed connection seen: no gap, no unused allowance, coverage
//!   100 %;
//! - plus one connection the expected output denies: exactly one gap, with
//!   `simulate eval`'s explanation;
//! - less every flow one rule admits: that rule is reported unused;
//! - less one peer's flows of a rule: the rule's proposed narrowing (YAML,
//!   parsed back with k8s-openapi and put in the model) admits exactly the
//!   flows kept of that rule.

#[path = "common/shared.rs"]
mod shared;
use shared::shared_fixtures;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use k8s_openapi::api::networking::v1::NetworkPolicy;
use palisade::manifest::{self, Entry, ReadError};
use palisade::netpol::{Direction, Policy};
use palisade::ports::{PortSet, Protocol};
use palisade::reach::explain::{Side, Target};
use palisade::reach::flows::{Flow, FlowEnd};
use palisade::reach::narrow::proposal_yaml;
use palisade::reach::verify::{Peer, Report, RuleUse, Verifier};
use palisade::reach::{Model, ModelBuilder, Query, WorkloadId, explain};

/// Every case with its expected connections: NetworkPolicies alone
/// (`connectivity`), and with the cluster-wide tiers
/// (`cluster-policies`: AdminNetworkPolicy, BaselineAdminNetworkPolicy),
/// which verify reads through the same `eval`.
fn cases() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = ["connectivity", "cluster-policies"]
        .into_iter()
        .flat_map(|set| std::fs::read_dir(shared_fixtures(set)).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("connections.txt").exists())
        .collect();
    out.sort();
    out
}

fn model(case: &Path) -> Model {
    let mut b = ModelBuilder::new();
    manifest::stream_paths::<_, ReadError>(
        &[case.join("manifests")],
        &manifest::all_kinds,
        &mut |e| {
            if let Entry::Document(d) = e {
                b.document(&d).unwrap();
            }
            Ok(())
        },
    )
    .unwrap();
    b.build()
}

/// `ns/name[Kind]` as Hubble's workload, or `a.b.c.d-e.f.g.h[External]`
/// as its first address.
fn end(s: &str) -> FlowEnd {
    let s = s.trim();
    if let Some(r) = s.strip_suffix("[External]") {
        let first = r.split_once('-').map_or(r, |(a, _)| a);
        return FlowEnd::ip(IpAddr::V4(first.parse::<Ipv4Addr>().unwrap()));
    }
    let (path, kind) = s.strip_suffix(']').unwrap().split_once('[').unwrap();
    let (ns, name) = path.split_once('/').unwrap();
    FlowEnd {
        workload: Some((ns.into(), name.into(), kind.into())),
        ..FlowEnd::default()
    }
}

/// `All Connections`, `TCP 8080,9090-9099,UDP 53`.
fn conn(s: &str) -> PortSet {
    let s = s.trim();
    if s == "All Connections" {
        return PortSet::all();
    }
    let mut out = PortSet::none();
    let mut proto = None;
    for item in s.split(',') {
        let item = item.trim();
        let ports = match item.split_once(' ') {
            Some((p, rest)) => {
                proto = Some(p.parse::<Protocol>().unwrap());
                rest
            }
            None if item.parse::<Protocol>().is_ok() => {
                proto = item.parse().ok();
                "1-65535"
            }
            None => item,
        };
        let (a, b) = ports.split_once('-').unwrap_or((ports, ports));
        out.insert(proto.unwrap(), a.parse().unwrap(), b.parse().unwrap());
    }
    out
}

/// One flow per allowed connection and port range (at its first port),
/// and the workload pairs listed.
fn flows(case: &Path) -> (Vec<Flow>, BTreeSet<(String, String)>) {
    let text = std::fs::read_to_string(case.join("connections.txt")).unwrap();
    let mut out = Vec::new();
    let mut pairs = BTreeSet::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (ends, ports) = line.split_once(" : ").unwrap();
        let (src, dst) = ends.split_once(" => ").unwrap();
        pairs.insert((src.trim().to_owned(), dst.trim().to_owned()));
        for (protocol, ranges) in conn(ports).by_protocol() {
            for &(port, _) in ranges.ranges() {
                out.push(Flow {
                    time: None,
                    src: end(src),
                    dst: end(dst),
                    protocol,
                    port,
                });
            }
        }
    }
    (out, pairs)
}

fn verify(model: &Model, flows: &[Flow]) -> Report {
    let mut v = Verifier::new(model);
    for f in flows {
        v.add(f);
    }
    v.finish()
}

fn target(e: &FlowEnd) -> Target {
    match (&e.workload, e.ip) {
        (Some((ns, name, kind)), _) => Target::Workload(WorkloadId::new(ns, name, kind)),
        (None, Some(ip)) => Target::Address(ip),
        _ => unreachable!(),
    }
}

fn query(f: &Flow) -> Query {
    Query {
        from: target(&f.src),
        to: target(&f.dst),
        protocol: f.protocol,
        port: f.port,
    }
}

/// Does `eval` say rule `rule` of `policy` (direction `d`) admits `f`?
fn admitted_by(model: &Model, f: &Flow, policy: &str, d: Direction, rule: Option<usize>) -> bool {
    let e = explain(model, &query(f)).unwrap();
    let side = match d {
        Direction::Egress => &e.egress,
        Direction::Ingress => &e.ingress,
    };
    let side = match side {
        Side::Tiered { netpol, .. } => &**netpol,
        other => other,
    };
    match side {
        Side::Isolated { admitted_by, .. } => admitted_by
            .iter()
            .any(|r| r.policy == policy && rule.is_none_or(|i| r.rule == i)),
        _ => false,
    }
}

fn rule<'a>(r: &'a Report, u: &RuleUse) -> &'a RuleUse {
    r.rules
        .iter()
        .find(|x| x.policy == u.policy && x.direction == u.direction && x.rule == u.rule)
        .unwrap_or_else(|| {
            panic!(
                "{} {:?} {} gone from the report",
                u.policy, u.direction, u.rule
            )
        })
}

#[test]
fn every_allowed_connection_seen_leaves_no_gap_no_unused_rule_and_full_coverage() {
    for case in cases() {
        let name = case.file_name().unwrap().to_string_lossy().to_string();
        let m = model(&case);
        let (flows, _) = flows(&case);
        let r = verify(&m, &flows);
        assert_eq!(r.seen.flows, flows.len() as u64, "{name}");
        assert!(r.gaps.is_empty(), "{name}: gaps {:#?}", r.gaps);
        let unused: Vec<&RuleUse> = r.rules.iter().filter(|u| u.has_unused()).collect();
        assert!(unused.is_empty(), "{name}: unused {unused:#?}");
        assert_eq!(
            r.coverage.used_pairs, r.coverage.allowed_pairs,
            "{name}: coverage {:?}",
            r.coverage
        );
        assert_eq!(r.coverage.percent(), 100.0, "{name}");
        assert_eq!(r.allowed, r.compared, "{name}");
    }
}

#[test]
fn one_denied_connection_is_exactly_one_gap_with_evals_explanation() {
    let mut checked = 0;
    for case in cases() {
        let name = case.file_name().unwrap().to_string_lossy().to_string();
        let m = model(&case);
        let (mut flows, pairs) = flows(&case);
        // A pair of workloads the expected output does not connect.
        let wls: Vec<String> = m.workloads().map(ToString::to_string).collect();
        let Some((a, b)) = wls
            .iter()
            .flat_map(|a| wls.iter().map(move |b| (a, b)))
            .find(|(a, b)| a != b && !pairs.contains(&((*a).clone(), (*b).clone())))
        else {
            continue;
        };
        let denied = Flow {
            time: None,
            src: end(a),
            dst: end(b),
            protocol: Protocol::Tcp,
            port: 4242,
        };
        flows.push(denied.clone());
        let r = verify(&m, &flows);
        assert_eq!(r.gaps.len(), 1, "{name}: {:#?}", r.gaps);
        let g = &r.gaps[0];
        assert_eq!(g.src.to_string(), *a, "{name}");
        assert_eq!(g.dst.to_string(), *b, "{name}");
        assert_eq!((g.protocol, g.port, g.seen.flows), (Protocol::Tcp, 4242, 1));
        let eval = explain(&m, &query(&denied)).unwrap();
        assert!(!eval.allowed, "{name}");
        assert_eq!(g.explanation.to_string(), eval.to_string(), "{name}");
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} cases had a denied pair");
}

#[test]
fn a_rule_whose_flows_are_all_dropped_is_reported_unused() {
    let mut checked = 0;
    for case in cases() {
        let name = case.file_name().unwrap().to_string_lossy().to_string();
        let m = model(&case);
        let (flows, _) = flows(&case);
        let full = verify(&m, &flows);
        for u in full.rules.iter().filter(|u| !u.used.is_empty()).take(4) {
            let kept: Vec<Flow> = flows
                .iter()
                .filter(|f| !admitted_by(&m, f, &u.policy, u.direction, Some(u.rule)))
                .cloned()
                .collect();
            assert!(kept.len() < flows.len(), "{name}: {} {}", u.policy, u.rule);
            let r = verify(&m, &kept);
            let now = rule(&r, u);
            assert!(now.used.is_empty(), "{name}: {now:#?}");
            assert!(now.has_unused(), "{name}: {now:#?}");
            assert!(
                proposal_yaml(&m, now).is_none(),
                "{name}: nothing to narrow to"
            );
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} rules checked");
}

#[test]
fn a_narrowing_admits_exactly_the_flows_kept() {
    let mut checked = 0;
    for case in cases() {
        let name = case.file_name().unwrap().to_string_lossy().to_string();
        let m = model(&case);
        let (flows, _) = flows(&case);
        let full = verify(&m, &flows);
        for u in full.rules.iter().filter(|u| u.used.len() >= 2).take(4) {
            let dropped_peer = u.used.keys().next().unwrap().clone();
            let mine = |f: &Flow| admitted_by(&m, f, &u.policy, u.direction, Some(u.rule));
            let is_dropped = |f: &Flow| {
                let other_end = match u.direction {
                    Direction::Ingress => &f.src,
                    Direction::Egress => &f.dst,
                };
                let peer = match target(other_end) {
                    Target::Workload(w) => Peer::Workload(w),
                    Target::Address(ip) => Peer::External(ip),
                };
                mine(f) && peer == dropped_peer
            };
            let kept: Vec<Flow> = flows.iter().filter(|f| !is_dropped(f)).cloned().collect();
            let r = verify(&m, &kept);
            let now = rule(&r, u);
            assert!(!now.used.contains_key(&dropped_peer), "{name}");
            if let Peer::Workload(_) = dropped_peer {
                assert!(now.has_unused(), "{name}: {now:#?}");
            }
            let yaml = proposal_yaml(&m, now).unwrap();
            // It parses back as the API reads it, and enters the model
            // under a name of its own.
            let mut np: NetworkPolicy =
                serde_saphyr::from_str(&yaml).unwrap_or_else(|e| panic!("{name}: {e}\n{yaml}"));
            np.metadata.name = Some("proposed".to_owned());
            let (ns, _) = u.policy.split_once('/').unwrap();
            let p = Policy::from_k8s(&np, ns).unwrap_or_else(|e| panic!("{name}: {e}\n{yaml}"));
            let mut b = m.to_builder();
            b.policy(p);
            let with = b.build();
            let proposed = format!("{ns}/proposed");
            for f in flows.iter().filter(|f| mine(f)) {
                let admits = admitted_by(&with, f, &proposed, u.direction, None);
                assert_eq!(
                    admits,
                    !is_dropped(f),
                    "{name}: {} {:?}[{}] narrowed, flow {:?} -> {:?} {} {}\n{yaml}",
                    u.policy,
                    u.direction,
                    u.rule,
                    f.src,
                    f.dst,
                    f.protocol,
                    f.port
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} rules checked");
}

/// A connection the admin tier denies (an AdminNetworkPolicy's Deny on
/// TCP 80, where NetworkPolicies would let it through) is a gap, and its
/// explanation names the tier's policy and rule, as `eval` does.
#[test]
fn a_gap_the_admin_tier_denies_names_its_rule() {
    let case = shared_fixtures("cluster-policies/anp_demo");
    let m = model(&case);
    let (mut flows, _) = flows(&case);
    let denied = Flow {
        time: None,
        src: end("gryffindor/harry-potter[StatefulSet]"),
        dst: end("slytherin/draco-malfoy[StatefulSet]"),
        protocol: Protocol::Tcp,
        port: 80,
    };
    flows.push(denied.clone());
    let r = verify(&m, &flows);
    assert_eq!(r.gaps.len(), 1, "{:#?}", r.gaps);
    let text = r.gaps[0].explanation.to_string();
    assert_eq!(text, explain(&m, &query(&denied)).unwrap().to_string());
    assert!(
        text.contains("admin policy gress-rules-gryffindor (priority 15)")
            && text.contains("deny-to-slytherin-at-ports-80-53-9003"),
        "{text}"
    );
}

/// A rule that admits many pairs lists the first 100 unused ones and
/// counts them all: a namespace-wide rule in a large namespace admits
/// millions.
#[test]
fn unused_pairs_are_counted_and_the_first_hundred_listed() {
    let mut b = ModelBuilder::new();
    let np: NetworkPolicy = serde_saphyr::from_str(
        "metadata: {name: all, namespace: big}\n\
         spec: {podSelector: {}, policyTypes: [Ingress], ingress: [{from: [{podSelector: {}}]}]}\n",
    )
    .unwrap();
    b.network_policy(&np).unwrap();
    for w in 0..12 {
        let pod = format!(
            "metadata: {{name: p{w}, namespace: big, labels: {{app: a{w}}}}}\nspec: {{containers: []}}\n"
        );
        b.pod(&serde_saphyr::from_str(&pod).unwrap());
    }
    let m = b.build();
    let seen = Flow {
        time: None,
        src: FlowEnd {
            workload: Some(("big".into(), "p0".into(), "Pod".into())),
            ..FlowEnd::default()
        },
        dst: FlowEnd {
            workload: Some(("big".into(), "p1".into(), "Pod".into())),
            ..FlowEnd::default()
        },
        protocol: Protocol::Tcp,
        port: 80,
    };
    let r = verify(&m, &[seen]);
    let u = &r.rules[0];
    assert_eq!((u.admitted_pairs, u.unused_count), (132, 131));
    assert_eq!(u.unused_pairs.len(), 100);
    assert_eq!((r.coverage.allowed_pairs, r.coverage.used_pairs), (132, 1));
}
