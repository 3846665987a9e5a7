//! `cargo bench --bench simulate`: `simulate list` and the admission-time
//! preview over a generated cluster of 5,000 workloads in 500 namespaces
//! with 10,000 NetworkPolicies.
//!
//! The mix per namespace (10 workloads, 20 policies): a default-deny for
//! both directions (ingress only in one namespace of ten, whose pods keep
//! open egress); DNS egress to the infra namespace and egress within the
//! namespace (in the ingress-only ones: ingress within it); app-to-app ingress
//! rules by pod label with numeric and named ports; ingress from other
//! teams' namespaces (namespaceSelector + podSelector); metrics scraping
//! from every monitoring namespace on a named port; egress to other
//! namespaces' backends; ingress from and egress to ipBlocks with
//! `except`. Targets: list < 2 s and < 512 MiB; preview p99 < 50 ms.

use std::hint::black_box;
use std::time::{Duration, Instant};

use palisade::decide::{Gvk, Object};
use palisade::netpol::Policy;
use palisade::reach::output::{Format, write_list};
use palisade::reach::{ModelBuilder, PolicyChange, connections, preview};
use serde_json::{Value, json};

const NAMESPACES: usize = 500;
const WORKLOADS_PER_NS: usize = 10;
const POLICIES_PER_NS: usize = 20;
const PREVIEWS: usize = 400;

#[path = "support/rng.rs"]
mod rng;
use rng::Rng;

fn ns_name(i: usize) -> String {
    format!("ns-{i:03}")
}

fn namespace(i: usize) -> Value {
    let env = ["prod", "staging", "dev"][i % 3];
    let mut labels = json!({"team": format!("t{}", i % 25), "environment": env});
    if i.is_multiple_of(50) {
        labels["monitoring"] = json!("true");
    }
    if i == 0 {
        labels["role"] = json!("infra");
    }
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns_name(i), "labels": labels}})
}

fn deployment(ns: usize, w: usize) -> Value {
    let tier = ["frontend", "backend", "db"][w % 3];
    let mut ports = vec![
        json!({"name": "http", "containerPort": 8080}),
        json!({"name": "metrics", "containerPort": 9090}),
    ];
    if w.is_multiple_of(4) {
        ports.push(json!({"name": "grpc", "containerPort": 50051}));
    }
    if tier == "db" {
        ports.push(json!({"name": "sql", "containerPort": 5432}));
    }
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": format!("app-{w}"), "namespace": ns_name(ns)},
        "spec": {
            "selector": {"matchLabels": {"app": format!("app-{w}")}},
            "template": {
                "metadata": {"labels": {"app": format!("app-{w}"), "tier": tier}},
                "spec": {"containers": [{"name": "c", "image": "x", "ports": ports}]}
            }
        }
    })
}

/// One namespace in ten.
fn legacy(ns: usize) -> bool {
    ns % 10 == 5
}

fn policy(ns: usize, k: usize, rng: &mut Rng) -> Value {
    let app = |w: usize| json!({"matchLabels": {"app": format!("app-{w}")}});
    let name = format!("p-{k}");
    let spec = match k {
        // Legacy namespaces deny ingress only: their pods' egress is open
        // unless an app policy below isolates it.
        0 if legacy(ns) => json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
        0 => json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
        1 if legacy(ns) => json!({
            "podSelector": {}, "ingress": [{"from": [{"podSelector": {}}]}]
        }),
        1 => json!({
            "podSelector": {}, "policyTypes": ["Egress"],
            "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"role": "infra"}}}],
                        "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53}]},
                       {"to": [{"podSelector": {}}]}]
        }),
        2..=10 => {
            let (dst, src) = (rng.below(WORKLOADS_PER_NS), rng.below(WORKLOADS_PER_NS));
            let port = if k.is_multiple_of(2) {
                json!("http")
            } else {
                json!(8080 + k as i32)
            };
            json!({
                "podSelector": app(dst),
                "ingress": [{"from": [{"podSelector": app(src)}], "ports": [{"port": port}]}]
            })
        }
        11..=13 => json!({
            "podSelector": app(rng.below(WORKLOADS_PER_NS)),
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": format!("t{}", rng.below(25))}},
                                   "podSelector": {"matchLabels": {"tier": "frontend"}}}],
                         "ports": [{"port": 8080}, {"port": "grpc"}]}]
        }),
        14 | 15 => json!({
            "podSelector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["backend", "db"]}]},
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"monitoring": "true"}}}],
                         "ports": [{"port": "metrics"}]}]
        }),
        16 | 17 => json!({
            "podSelector": app(rng.below(WORKLOADS_PER_NS)), "policyTypes": ["Egress"],
            "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"team": format!("t{}", rng.below(25))}},
                                "podSelector": {"matchLabels": {"tier": "backend"}}}],
                        "ports": [{"port": 8080, "endPort": 8090}]}]
        }),
        18 => json!({
            "podSelector": {"matchLabels": {"tier": "frontend"}},
            "ingress": [{"from": [{"ipBlock": {"cidr": format!("10.{}.0.0/16", rng.below(256)),
                                               "except": [format!("10.{}.1.0/24", rng.below(256))]}}],
                         "ports": [{"port": 443}]}]
        }),
        _ => json!({
            "podSelector": {"matchLabels": {"tier": "backend"}}, "policyTypes": ["Egress"],
            "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]}}],
                        "ports": [{"port": 443}]}]
        }),
    };
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
           "metadata": {"name": name, "namespace": ns_name(ns)}, "spec": spec})
}

fn object(v: Value) -> Object {
    let api = v["apiVersion"].as_str().unwrap_or("").to_owned();
    let kind = v["kind"].as_str().unwrap_or("").to_owned();
    match Object::from_value(&Gvk::from_api_version(&api, &kind), v) {
        Ok(o) => o,
        Err(e) => panic!("generated object does not parse: {e}"),
    }
}

fn to_policy(v: Value) -> Policy {
    match object(v) {
        Object::NetworkPolicy(np) => match Policy::from_k8s(&np, "default") {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        },
        other => panic!("not a policy: {other:?}"),
    }
}

/// Peak and current resident set size in KiB, from /proc.
fn rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn reset_peak() {
    // Writing 5 resets VmHWM to the current RSS (Linux >= 4.0).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let t = Instant::now();
    let mut b = ModelBuilder::new();
    for ns in 0..NAMESPACES {
        let objects = std::iter::once(namespace(ns))
            .chain((0..WORKLOADS_PER_NS).map(|w| deployment(ns, w)))
            .chain((0..POLICIES_PER_NS).map(|k| policy(ns, k, &mut rng)));
        for v in objects {
            if let Err(e) = b.object(&object(v)) {
                panic!("{e}");
            }
        }
    }
    println!(
        "generated {NAMESPACES} namespaces, {} workloads, {} policies in {:.2?}",
        NAMESPACES * WORKLOADS_PER_NS,
        NAMESPACES * POLICIES_PER_NS,
        t.elapsed()
    );

    reset_peak();
    let (_, rss_before) = rss();
    let t = Instant::now();
    let model = b.build();
    let built = t.elapsed();
    let conns = connections(&model);
    let listed = t.elapsed();
    let mut sink = std::io::sink();
    if let Err(e) = write_list(&conns, Format::Json, &mut sink) {
        panic!("{e}");
    }
    let rendered = t.elapsed();
    let (peak, _) = rss();
    println!(
        "list: model+index {built:.2?}, connections {:.2?}, JSON {:.2?}; total {rendered:.2?} (target < 2 s)",
        listed - built,
        rendered - listed
    );
    println!(
        "list: {} connections; peak RSS {:.1} MiB during list ({:.1} MiB before it; target < 512 MiB)",
        conns.len(),
        peak as f64 / 1024.0,
        rss_before as f64 / 1024.0
    );
    drop(conns);

    // Single-policy changes as they reach the webhook: updates of an
    // existing policy (a port or selector changed), creates, and deletes,
    // default-deny ones included at their natural share (1 in 20).
    let mut times = Vec::with_capacity(PREVIEWS);
    let mut sizes = Vec::with_capacity(PREVIEWS);
    for i in 0..PREVIEWS {
        let ns = rng.below(NAMESPACES);
        let k = rng.below(POLICIES_PER_NS);
        let change = match i % 3 {
            0 => {
                let old = model.policy(&ns_name(ns), &format!("p-{k}"));
                let new = to_policy(policy(ns, k, &mut rng));
                match old.map(|o| PolicyChange::update(o, new.clone())) {
                    Some(Ok(c)) => c,
                    _ => PolicyChange::create(new),
                }
            }
            1 => {
                let mut v = policy(ns, k, &mut rng);
                v["metadata"]["name"] = json!(format!("new-{i}"));
                PolicyChange::create(to_policy(v))
            }
            _ => match model.policy(&ns_name(ns), &format!("p-{k}")) {
                Some(p) => PolicyChange::delete(p),
                None => continue,
            },
        };
        let t = Instant::now();
        let p = black_box(preview(&model, &change));
        let w = black_box(p.warnings(10));
        times.push(t.elapsed());
        sizes.push(p.opened.len() + p.closed.len());
        drop(w);
    }
    times.sort();
    sizes.sort();
    println!(
        "preview: {} single-policy changes: p50 {:.2?}, p99 {:.2?}, max {:.2?} (target p99 < 50 ms); \
         connections opened+closed per change: median {}, max {}",
        times.len(),
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        times.last().copied().unwrap_or_default(),
        sizes[sizes.len() / 2],
        sizes.last().copied().unwrap_or(0)
    );

    // The heavy end: changes that open or close a namespace to the whole
    // cluster (an allow-all ingress created; the default-deny deleted).
    let mut times = Vec::new();
    let mut sizes = Vec::new();
    for ns in (0..NAMESPACES).step_by(25) {
        let open = to_policy(json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "allow-all-ingress", "namespace": ns_name(ns)},
            "spec": {"podSelector": {}, "ingress": [{}]}
        }));
        let mut changes = vec![PolicyChange::create(open)];
        if let Some(p) = model.policy(&ns_name(ns), "p-0") {
            changes.push(PolicyChange::delete(p));
        }
        for change in changes {
            let t = Instant::now();
            let p = black_box(preview(&model, &change));
            let w = black_box(p.warnings(10));
            times.push(t.elapsed());
            sizes.push(p.opened.len() + p.closed.len());
            drop(w);
        }
    }
    times.sort();
    println!(
        "preview, namespace opened to the cluster: {} changes: p50 {:.2?}, max {:.2?}; \
         connections opened+closed per change: up to {}",
        times.len(),
        percentile(&times, 0.5),
        times.last().copied().unwrap_or_default(),
        sizes.iter().max().copied().unwrap_or(0)
    );
}
