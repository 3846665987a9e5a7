//! `simulate` with cluster-wide policies beyond the known answers of
//! `tests/simulate_fixtures.rs`: `eval` names the tier, policy and rule
//! that decided and agrees with `list` on every pair of every case; the
//! preview of a change to a cluster-wide policy equals the diff of full
//! listings before and after.

#[path = "common/shared.rs"]
mod shared;
use shared::shared_fixtures;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use palisade::cluster_policy::{Action, ClusterPolicy};
use palisade::manifest;
use palisade::ports::Protocol;
use palisade::reach::{
    Change, Endpoint, Model, ModelBuilder, Query, Target, connections, diff, explain,
    preview_cluster,
};

fn cases() -> Vec<PathBuf> {
    let root = shared_fixtures("cluster-policies");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("manifests").is_dir())
        .collect();
    out.sort();
    assert!(!out.is_empty());
    out
}

fn model(dir: &Path) -> Model {
    let m = manifest::read_paths(&[dir]).unwrap();
    ModelBuilder::new().documents(&m).unwrap().build()
}

fn model_of(yaml: &str) -> Model {
    let mut m = manifest::Manifests::default();
    manifest::read_text(Path::new("t.yaml"), yaml, &mut m);
    assert!(m.skipped.is_empty(), "{:?}", m.skipped);
    ModelBuilder::new().documents(&m).unwrap().build()
}

/// The ports asked about: every container port of the cases, and a few
/// that no container names.
const PORTS: &[(Protocol, u16)] = &[
    (Protocol::Tcp, 80),
    (Protocol::Tcp, 81),
    (Protocol::Tcp, 8080),
    (Protocol::Tcp, 443),
    (Protocol::Udp, 53),
    (Protocol::Udp, 80),
    (Protocol::Udp, 81),
    (Protocol::Udp, 5353),
    (Protocol::Sctp, 9003),
    (Protocol::Sctp, 9005),
];

#[test]
fn eval_agrees_with_list_on_every_pair_of_every_case() {
    let mut asked = 0;
    for case in cases() {
        let m = model(&case.join("manifests"));
        let conns = connections(&m);
        let workloads: Vec<_> = m.workloads().cloned().collect();
        let listed = |from: &Endpoint, to: &Endpoint, p: Protocol, port: u16| {
            conns
                .iter()
                .any(|c| &c.src == from && &c.dst == to && c.ports.contains(p, port))
        };
        for a in &workloads {
            for b in &workloads {
                if a == b {
                    continue;
                }
                for &(p, port) in PORTS {
                    let q = Query {
                        from: Target::Workload(a.clone()),
                        to: Target::Workload(b.clone()),
                        protocol: p,
                        port,
                    };
                    let e = explain(&m, &q).unwrap();
                    let want = listed(
                        &Endpoint::Workload(a.clone()),
                        &Endpoint::Workload(b.clone()),
                        p,
                        port,
                    );
                    assert_eq!(
                        e.allowed,
                        want,
                        "{}: {a} -> {b} on {p} {port}\n{e}",
                        case.display()
                    );
                    asked += 1;
                }
            }
        }
    }
    assert!(asked > 1000, "{asked}");
}

#[test]
fn eval_names_the_tier_policy_and_rule_that_decided() {
    let case = shared_fixtures("cluster-policies/anp_with_np_and_banp_pass_test/manifests");
    let m = model(&case);
    let ask = |from: &str, to: &str, p: Protocol, port: u16| {
        let target = |r: &str| Target::Workload(m.find(r)[0].clone());
        explain(
            &m,
            &Query {
                from: target(from),
                to: target(to),
                protocol: p,
                port,
            },
        )
        .unwrap()
        .to_string()
    };
    let tcp80 = ask("ns2/pod1", "ns1/pod1", Protocol::Tcp, 80);
    assert!(tcp80.starts_with("ALLOWED"), "{tcp80}");
    assert!(
        tcp80.contains("  ingress of ns1/pod1[Deployment]: admin policy pass-example-with-np (priority 10) rule \"allow-tcp-80-from-ns2-pod1\": Allow (allowed; no NetworkPolicy can change it)"),
        "{tcp80}"
    );
    let udp81 = ask("ns2/pod1", "ns1/pod1", Protocol::Udp, 81);
    assert!(udp81.starts_with("DENIED"), "{udp81}");
    assert!(
        udp81.contains("rule \"pass-tcp81-udp80-81-conns-from-ns2-pod1\": Pass, on to NetworkPolicies\n    isolated by ns1/allow-ingress-from-ns2-pod1\n    no ingress rule of these policies admits ns2/pod1[Deployment] on UDP 81: denied"),
        "{udp81}"
    );

    // The baseline decides where no NetworkPolicy selects the pod.
    let case =
        shared_fixtures("cluster-policies/anp_and_banp_using_networks_with_ipv6_test/manifests");
    let m = model(&case);
    let out = explain(
        &m,
        &Query {
            from: Target::Workload(m.find("ns1/pod1")[0].clone()),
            to: Target::Address("1.1.1.1".parse().unwrap()),
            protocol: Protocol::Tcp,
            port: 443,
        },
    )
    .unwrap();
    assert!(!out.allowed);
    let text = out.to_string();
    assert!(
        text.contains("admin policy network-as-egress-peer (priority 70) rule \"pass-all-egress-to-internet\": Pass, on to NetworkPolicies\n    no NetworkPolicy selects it with Egress, so the baseline decides: baseline policy default (BaselineAdminNetworkPolicy) rule \"deny-all-egress-to-internet\": Deny (denied)"),
        "{text}"
    );
    // An IPv6 address the admin tier allows.
    let v6 = explain(
        &m,
        &Query {
            from: Target::Workload(m.find("ns1/pod1")[0].clone()),
            to: Target::Address("fd00::1".parse().unwrap()),
            protocol: Protocol::Tcp,
            port: 443,
        },
    )
    .unwrap();
    assert!(v6.allowed, "{v6}");
    assert!(
        v6.to_string()
            .contains("rule \"allow-all-egress-to-intranet\": Allow"),
        "{v6}"
    );
}

fn change_set(changes: &[Change]) -> BTreeSet<String> {
    changes
        .iter()
        .map(|c| format!("{} => {} : {:?} -> {:?}", c.src, c.dst, c.before, c.after))
        .collect()
}

/// A policy with every rule's action turned: Allow to Deny, Deny to Pass
/// where the tier has it, Pass to Allow.
fn turned(p: &ClusterPolicy) -> ClusterPolicy {
    let mut q = p.clone();
    for r in q.ingress.iter_mut().chain(q.egress.iter_mut()) {
        r.action = match r.action {
            Action::Allow => Action::Deny,
            Action::Deny if p.tier == palisade::cluster_policy::Tier::Admin => Action::Pass,
            Action::Deny => Action::Allow,
            Action::Pass => Action::Allow,
        };
    }
    q
}

#[test]
fn the_preview_of_a_cluster_policy_change_equals_the_diff_of_full_listings() {
    let mut checked = 0;
    for case in cases() {
        let m = model(&case.join("manifests"));
        for p in m.cluster_policies().all().to_vec() {
            for (old, new) in [(Some(&p), None), (Some(&p), Some(turned(&p)))] {
                let after = m.with_cluster_change(old, new.as_ref());
                let want = diff(&m, &after).changes;
                let got = preview_cluster(&m, old, new.as_ref()).changes;
                assert_eq!(
                    change_set(&got),
                    change_set(&want),
                    "{}: {} {}",
                    case.display(),
                    if new.is_some() { "turning" } else { "deleting" },
                    p
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 40, "{checked}");

    // A new policy the model does not have yet.
    let base = model(&shared_fixtures("cluster-policies/anp_test_10/manifests"));
    let extra = model_of(
        "apiVersion: policy.networking.k8s.io/v1alpha2\nkind: ClusterNetworkPolicy\nmetadata: {name: lockdown}\nspec:\n  tier: Admin\n  priority: 0\n  subject: {namespaces: {}}\n  egress:\n  - {action: Deny, to: [{namespaces: {}}], protocols: [{udp: {destinationPort: {number: 5353}}}]}\n",
    );
    let new = extra.cluster_policies().all()[0].clone();
    let after = base.with_cluster_change(None, Some(&new));
    let want = diff(&base, &after).changes;
    assert!(!want.is_empty(), "the new policy closes something");
    let got = preview_cluster(&base, None, Some(&new)).changes;
    assert_eq!(change_set(&got), change_set(&want));
}

/// The transcripts of `docs/cluster-policies-example` in README.md: each
/// `$ palisade ...` line is run (through `sh`, with the built binary first
/// on PATH, from the repository root) and must print exactly the lines
/// under it. (docs/simulate.md's sessions are run by
/// `tests/live_cluster.rs`.)
#[test]
fn the_worked_example_prints_what_the_docs_say() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bin = Path::new(env!("CARGO_BIN_EXE_palisade"))
        .parent()
        .unwrap()
        .to_owned();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut ran = 0;
    for doc in ["README.md"] {
        let text = std::fs::read_to_string(root.join(doc)).unwrap();
        let mut in_block = false;
        let mut current: Option<(String, Vec<String>)> = None;
        let mut transcripts = Vec::new();
        for line in text.lines() {
            if line.starts_with("```") {
                in_block = !in_block;
                transcripts.extend(current.take());
                continue;
            }
            if !in_block {
                continue;
            }
            if let Some(cmd) = line.strip_prefix("$ ") {
                transcripts.extend(current.take());
                if cmd.starts_with("palisade ") && cmd.contains("docs/cluster-policies-example") {
                    current = Some((cmd.to_owned(), Vec::new()));
                }
            } else if let Some((_, out)) = current.as_mut() {
                out.push(line.to_owned());
            }
        }
        for (cmd, want) in transcripts {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(&cmd)
                .current_dir(root)
                .env("PATH", &path)
                .output()
                .unwrap();
            let got = String::from_utf8_lossy(&out.stdout);
            let want = want.join("\n");
            assert_eq!(
                got.trim_end_matches('\n'),
                want.trim_end_matches('\n'),
                "{doc}: $ {cmd}"
            );
            ran += 1;
        }
    }
    assert!(ran >= 3, "{ran} transcripts found");
}

/// A NetworkPolicy preview evaluates only the rows and columns of the pods
/// the policy selects; with cluster-wide policies around them, its columns
/// take the tiers into account too. Deleting each NetworkPolicy of every
/// case previews as the diff of full listings says.
#[test]
fn networkpolicy_previews_among_tiers_equal_the_diff() {
    let mut checked = 0;
    for case in cases() {
        let m = model(&case.join("manifests"));
        for (ns, name) in m.policy_keys() {
            let p = m.policy(&ns, &name).unwrap();
            let change = palisade::reach::PolicyChange::delete(p);
            let want = diff(&m, &m.with_change(&change)).changes;
            let got = palisade::reach::preview(&m, &change).changes;
            assert_eq!(
                change_set(&got),
                change_set(&want),
                "{}: deleting {ns}/{name}",
                case.display()
            );
            checked += 1;
        }
    }
    assert!(checked >= 5, "{checked}");
}

/// A cluster-wide policy whose subject is a few pods of a large cluster is
/// previewed from their rows and columns alone; the answer is the diff.
#[test]
fn a_narrow_cluster_policy_previews_from_its_pods_alone() {
    let mut yaml = String::new();
    for i in 0..12 {
        yaml.push_str(&format!(
            "---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: ns{i}, labels: {{team: t{}}}}}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: app, namespace: ns{i}}}\nspec:\n  selector: {{matchLabels: {{app: a}}}}\n  template:\n    metadata: {{labels: {{app: a}}}}\n    spec: {{containers: [{{name: c, image: x, ports: [{{name: http, containerPort: 8080}}]}}]}}\n",
            i % 3
        ));
    }
    yaml.push_str(
        "---\napiVersion: policy.networking.k8s.io/v1alpha1\nkind: BaselineAdminNetworkPolicy\nmetadata: {name: default}\nspec:\n  subject: {namespaces: {matchLabels: {team: t0}}}\n  ingress:\n  - {action: Deny, from: [{namespaces: {}}]}\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: in, namespace: ns3}\nspec:\n  podSelector: {}\n  ingress: [{from: [{namespaceSelector: {matchLabels: {team: t1}}}], ports: [{port: http}]}]\n",
    );
    let m = model_of(&yaml);
    let narrow = model_of(
        "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\nmetadata: {name: one}\nspec:\n  priority: 5\n  subject: {namespaces: {matchLabels: {kubernetes.io/metadata.name: ns0}}}\n  egress:\n  - {action: Allow, to: [{namespaces: {matchLabels: {team: t0}}}], ports: [{namedPort: http}]}\n  - {action: Deny, to: [{namespaces: {}}]}\n  ingress:\n  - {action: Allow, from: [{namespaces: {matchLabels: {team: t2}}}]}\n",
    )
    .cluster_policies()
    .all()[0]
    .clone();
    let after = m.with_cluster_change(None, Some(&narrow));
    let want = diff(&m, &after).changes;
    assert!(!want.is_empty());
    let got = preview_cluster(&m, None, Some(&narrow)).changes;
    assert_eq!(change_set(&got), change_set(&want));
    // And a NetworkPolicy change among those tiers.
    let np = m.policy("ns3", "in").unwrap();
    let change = palisade::reach::PolicyChange::delete(np);
    assert_eq!(
        change_set(&palisade::reach::preview(&after, &change).changes),
        change_set(&diff(&after, &after.with_change(&change)).changes)
    );
}
