//! Cluster-wide policies at scale: what they add to a review, and what a
//! change to one of them costs.
//!
//! ```text
//! cargo bench --bench cluster_policies
//! ```
//!
//! The webhook side: 10,000 namespaces (every twentieth without a
//! default-deny of its own), a baseline that denies egress but DNS and
//! ingress from every pod, and 20 admin policies with a few rules each.
//! Timed: a Pod CREATE in a namespace fenced only by the baseline (the
//! namespace view plus the walk over the tiers), an AdminNetworkPolicy
//! UPDATE (every namespace judged before and after, `keep-default-deny`),
//! and the same update without cluster-wide policies in the view for
//! comparison. The simulate side: 5,000 workloads in 500 namespaces with the
//! same policies: `list` (every connection), and the preview of a change to
//! the baseline. Figures are printed, never asserted.
//!
//! Knobs: `PALISADE_BENCH_NAMESPACES` (default 10000),
//! `PALISADE_BENCH_REVIEWS` (timed pod reviews, default 20000),
//! `PALISADE_BENCH_UPDATES` (timed policy updates, default 30).

use std::path::Path;
use std::time::{Duration, Instant};

use palisade::admit::{self, Webhook};
use palisade::check::create_request;
use palisade::cluster::static_dir::StaticCluster;
use palisade::config::Config;
use palisade::decide::{ClusterObject, Gvk, Object, Operation, User};
use palisade::manifest::{self, Manifests};
use palisade::reach::{ModelBuilder, PolicyChange, connections, preview, preview_cluster};

/// The binary's allocator, as in the other benches.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const BASELINE: &str = "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: BaselineAdminNetworkPolicy\nmetadata: {name: default}\nspec:\n  subject: {namespaces: {matchExpressions: [{key: kubernetes.io/metadata.name, operator: NotIn, values: [kube-system]}]}}\n  egress:\n  - name: dns\n    action: Allow\n    to: [{pods: {namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}, podSelector: {matchLabels: {k8s-app: kube-dns}}}}]\n    ports: [{portNumber: {protocol: UDP, port: 53}}]\n  - {name: deny-all-egress, action: Deny, to: [{namespaces: {}}, {networks: [0.0.0.0/0, '::/0']}]}\n  ingress:\n  - {name: deny-all-ingress, action: Deny, from: [{namespaces: {}}]}\n";

/// Admin policy `k`: a team's egress to another team on one port, a deny
/// of one team's database, a pass for monitoring.
fn admin(k: usize) -> String {
    "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\nmetadata: {name: team-K}\nspec:\n  priority: P\n  subject: {namespaces: {matchLabels: {team: tA}}}\n  egress:\n  - {name: to-api, action: Allow, to: [{namespaces: {matchLabels: {team: tB}}}], ports: [{portNumber: {port: 8080}}]}\n  - {name: block-db, action: Deny, to: [{pods: {namespaceSelector: {matchLabels: {team: tB}}, podSelector: {matchLabels: {app: db}}}}]}\n  ingress:\n  - {name: monitoring, action: Pass, from: [{namespaces: {matchLabels: {kubernetes.io/metadata.name: monitoring}}}]}\n"
        .replace("team-K", &format!("team-{k}"))
        .replace("priority: P", &format!("priority: {}", 10 + k))
        .replace("team: tA", &format!("team: t{}", k % 8))
        .replace("team: tB", &format!("team: t{}", (k + 1) % 8))
}

fn namespace(i: usize) -> String {
    let mut y = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: ns-{i:05}, labels: {{team: t{}, environment: prod}}}}\n",
        i % 8
    );
    // Every twentieth namespace has no default-deny of its own: the
    // baseline is all it has for egress.
    if !i.is_multiple_of(20) {
        y.push_str(&format!("---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: default-deny, namespace: ns-{i:05}}}\nspec: {{podSelector: {{}}, policyTypes: [Ingress, Egress]}}\n"));
    }
    y
}

fn workloads(i: usize) -> String {
    (0..10)
        .map(|w| {
            let app = if w == 0 { "db" } else { "api" };
            format!("---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: w{w}, namespace: ns-{i:05}}}\nspec:\n  selector: {{matchLabels: {{app: {app}-{w}}}}}\n  template:\n    metadata: {{labels: {{app: {app}}}}}\n    spec: {{containers: [{{name: c, image: x, ports: [{{containerPort: 8080}}, {{name: sql, containerPort: 5432}}]}}]}}\n")
        })
        .collect()
}

fn read(yaml: &str) -> Manifests {
    let mut m = Manifests::default();
    manifest::read_text(Path::new("bench.yaml"), yaml, &mut m);
    assert!(m.skipped.is_empty(), "{:?}", m.skipped);
    m
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(what: &str, mut times: Vec<Duration>) {
    times.sort();
    println!(
        "{what}: p50 {:.1?}, p99 {:.1?} ({} runs)",
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        times.len()
    );
}

fn cluster_policy_object(yaml: &str) -> Object {
    let d = read(yaml).documents.remove(0);
    let kind = palisade::cluster_policy::ClusterKind::from_group_kind(&d.gvk.group, &d.gvk.kind)
        .expect("a cluster-wide kind");
    Object::ClusterPolicy(Box::new(ClusterObject {
        kind,
        version: d.gvk.version.clone(),
        metadata: serde_json::from_value(d.value["metadata"].clone()).expect("metadata"),
        value: d.value,
    }))
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cfg = Config::embedded().expect("config");
    let namespaces: usize = env_or("PALISADE_BENCH_NAMESPACES", 10_000);
    let reviews: usize = env_or("PALISADE_BENCH_REVIEWS", 20_000);
    let updates: usize = env_or("PALISADE_BENCH_UPDATES", 30);

    // ---- the webhook --------------------------------------------------
    let t = Instant::now();
    let mut plain = StaticCluster::new();
    for i in 0..namespaces {
        plain.apply_all(&read(&namespace(i))).expect("state");
    }
    let mut tiered = StaticCluster::new();
    for i in 0..namespaces {
        tiered.apply_all(&read(&namespace(i))).expect("state");
    }
    let cluster_yaml: String = std::iter::once(BASELINE.to_owned())
        .chain((0..20).map(admin))
        .collect::<Vec<_>>()
        .join("---\n");
    tiered
        .apply_all(&read(&cluster_yaml))
        .expect("cluster policies");
    println!(
        "webhook state: {namespaces} namespaces, 21 cluster-wide policies, built in {:.1?}",
        t.elapsed()
    );

    let user = User::default();
    let pod = |ns: &str| {
        let object: Object = serde_json::from_value::<k8s_openapi::api::core::v1::Pod>(
            serde_json::json!({"metadata": {"name": "p", "namespace": ns}, "spec": {"containers": [{"name": "c", "image": "x"}]}}),
        )
        .map(|p| Object::Pod(Box::new(p)))
        .expect("pod");
        create_request(
            &Gvk::new("", "v1", "Pod"),
            Some(ns),
            "p",
            &user,
            object,
            "u".into(),
        )
    };
    // ns-00020: fenced for egress by the baseline only (ingress fails: the
    // shipped config does not count it), so the tiers are walked each time.
    let fenced_by_baseline = pod("ns-00020");
    let own_policy = pod("ns-00021");
    for (what, req, cluster) in [
        (
            "pod CREATE, namespace with its own default-deny, no cluster-wide policies",
            &own_policy,
            &plain,
        ),
        (
            "pod CREATE, namespace with its own default-deny, 21 cluster-wide policies",
            &own_policy,
            &tiered,
        ),
        (
            "pod CREATE, namespace fenced by the baseline only, 21 cluster-wide policies",
            &fenced_by_baseline,
            &tiered,
        ),
    ] {
        let times: Vec<Duration> = (0..reviews)
            .map(|_| {
                let t = Instant::now();
                let v = admit::decide_in(&cfg, Webhook::Validate, req, cluster);
                std::hint::black_box(v);
                t.elapsed()
            })
            .collect();
        report(what, times);
    }

    let old = cluster_policy_object(&admin(3));
    let new = cluster_policy_object(&admin(3).replace("port: 8080", "port: 8443"));
    let mut update = create_request(
        &Gvk::new("policy.networking.k8s.io", "v1alpha1", "AdminNetworkPolicy"),
        None,
        "team-3",
        &user,
        new,
        "u".into(),
    );
    update.operation = Operation::Update;
    update.old_object = Some(old);
    let times: Vec<Duration> = (0..updates)
        .map(|_| {
            let t = Instant::now();
            let v = admit::decide_in(&cfg, Webhook::Validate, &update, &tiered);
            assert!(v.allowed(), "{:?}", v.violations);
            t.elapsed()
        })
        .collect();
    report(
        &format!("AdminNetworkPolicy UPDATE judged against {namespaces} namespaces"),
        times,
    );

    // ---- simulate ---------------------------------------------------
    let sim_namespaces = 500;
    let t = Instant::now();
    let mut b = ModelBuilder::new();
    for i in 0..sim_namespaces {
        b.documents(&read(&format!("{}{}", namespace(i), workloads(i))))
            .expect("model");
    }
    b.documents(&read(&cluster_yaml)).expect("cluster policies");
    let model = b.build();
    println!(
        "simulate model: {} workloads in {sim_namespaces} namespaces, 21 cluster-wide policies, built in {:.1?}",
        model.workloads().len(),
        t.elapsed()
    );
    let t = Instant::now();
    let conns = connections(&model);
    println!(
        "simulate list: {} connections in {:.2?}",
        conns.len(),
        t.elapsed()
    );
    let banp = model
        .cluster_policies()
        .all()
        .last()
        .cloned()
        .expect("the baseline");
    let mut weaker = banp.clone();
    weaker.egress.truncate(1);
    let times: Vec<Duration> = (0..5)
        .map(|_| {
            let t = Instant::now();
            let p = preview_cluster(&model, Some(&banp), Some(&weaker));
            std::hint::black_box(p);
            t.elapsed()
        })
        .collect();
    report(
        "preview of a change to the baseline (every pod is in its subject)",
        times,
    );
    // A NetworkPolicy change in one namespace, with the tiers around it.
    let np = palisade::netpol::Policy::from_k8s(
        &serde_json::from_value(serde_json::json!({
            "metadata": {"name": "api-in", "namespace": "ns-00042"},
            "spec": {"podSelector": {"matchLabels": {"app": "api"}},
                     "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "t3"}}}], "ports": [{"port": 8080}]}]}
        }))
        .expect("policy"),
        "default",
    )
    .expect("policy");
    let change = PolicyChange::create(np);
    let times: Vec<Duration> = (0..20)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(preview(&model, &change));
            t.elapsed()
        })
        .collect();
    report(
        "preview of a NetworkPolicy change in one namespace, with the tiers",
        times,
    );
}
