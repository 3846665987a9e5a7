//! Generation's latency: how long a new namespace waits for its generated
//! policies, and how long the first review in it waits for them, with
//! palisade's watch cache, leader writer and decision path in one process
//! against the local API stand-in that takes writes
//! (tests/common/api_store.rs), over real HTTP.
//!
//! ```text
//! cargo bench --bench generate
//! ```
//!
//! Printed: for namespaces created one at a time, each followed at once by
//! a pod review in it (the `kubectl apply` of a Namespace and a Deployment),
//! the time from the Namespace's creation to its default-deny in the cache
//! and to the review's answer (p50, p99, max); then a burst of namespaces
//! created together, and the time until every one is fenced. Among
//! `PALISADE_GEN_EXISTING` (default 2,000) fenced namespaces, so the
//! leader's planning runs over a cluster that is not empty.
//!
//! What the stand-in does not reproduce: the API server's own latency (an
//! etcd write, admission webhooks on the create: palisade's own among
//! them), so on a cluster add the API server's create latency, twice (the
//! baseline, then the default-deny), to both figures.
//!
//! Knobs (environment): `PALISADE_GEN_NAMESPACES` (one at a time, default
//! 200), `PALISADE_GEN_BURST` (default 500), `PALISADE_GEN_EXISTING`.

#[path = "../tests/common/api_store.rs"]
mod api_store;

use std::sync::Arc;
use std::time::{Duration, Instant};

use api_store::ApiStore;
use palisade::admit::{Confirmation, Webhook, admit_generating};
use palisade::cluster::ClusterView;
use palisade::cluster::kube::KubeCluster;
use palisade::decide::{Gvk, Object, Operation, Request, User};
use palisade::generate::plan::Scope;
use palisade::generate::writer::Writer;
use palisade::leader::{Leadership, Role};
use palisade::server::metrics::Metrics;
use serde_json::json;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn namespace(name: &str, created: Option<&str>) -> serde_json::Value {
    let mut n = json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name, "team": "bench"}},
        "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}});
    if let Some(t) = created {
        n["metadata"]["uid"] = json!(format!("uid-{name}"));
        n["metadata"]["creationTimestamp"] = json!(t);
    }
    n
}

fn pod_create(ns: &str) -> Request {
    let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": ns, "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": "nginx:1"}]}
    }))
    .expect("a pod");
    Request {
        uid: format!("bench-{ns}"),
        kind: Gvk::new("", "v1", "Pod"),
        sub_resource: None,
        operation: Operation::Create,
        namespace: Some(ns.to_owned()),
        name: Some("web".into()),
        user: User::default(),
        dry_run: false,
        object: Some(Object::Pod(Box::new(pod))),
        old_object: None,
    }
}

fn quantiles(what: &str, mut d: Vec<Duration>) {
    d.sort();
    let at = |q: f64| d[((d.len() as f64 * q) as usize).min(d.len() - 1)];
    println!(
        "{what}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} namespaces)",
        at(0.5).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        d.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        d.len()
    );
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let one_by_one = env_or("PALISADE_GEN_NAMESPACES", 200);
    let burst = env_or("PALISADE_GEN_BURST", 500);
    let existing = env_or("PALISADE_GEN_EXISTING", 2_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let api = ApiStore::start().await;
        for i in 0..existing {
            let ns = format!("old-{i}");
            api.put(namespace(&ns, Some("2024-03-01T08:00:00Z")));
            api.put(json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": {"name": "default-deny", "namespace": ns},
                "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}}));
        }
        let mut cfg = palisade::config::Config::embedded().expect("config");
        cfg.generate.enabled = true;
        let cfg = Arc::new(cfg);
        let (cluster, _watches) = KubeCluster::start(api.client(), None);
        while !cluster.is_ready() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let scope = Scope::started_at(palisade::certmgr::unix_now());
        let _writer = Writer {
            client: api.client(),
            cluster: Arc::clone(&cluster) as Arc<dyn ClusterView>,
            config: Arc::clone(&cfg),
            scope,
            leadership: Leadership::fixed(Role::Leader),
            metrics: Arc::new(Metrics::new()),
        }
        .spawn();
        println!(
            "generation against the API stand-in, {existing} fenced namespaces already there"
        );

        let fenced = |ns: &str| cluster.namespace(ns).missing_default_deny(&cfg).is_empty();
        let (mut to_fence, mut to_answer, mut waited) = (Vec::new(), Vec::new(), 0);
        for i in 0..one_by_one {
            let ns = format!("new-{i}");
            let created = Instant::now();
            api.put(namespace(&ns, None));
            let (v, how) =
                admit_generating(&cfg, &*cluster, Webhook::Validate, &pod_create(&ns), Some(&scope))
                    .await;
            assert!(v.allowed(), "{ns}: {v:?}");
            to_answer.push(created.elapsed());
            waited += usize::from(how == Confirmation::Generated);
            while !fenced(&ns) {
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
            to_fence.push(created.elapsed());
        }
        quantiles("namespace created -> default-deny in the cache", to_fence);
        quantiles(
            &format!("namespace created -> first pod review answered, allowed ({waited} waited for generation)"),
            to_answer,
        );

        let started = Instant::now();
        let names: Vec<String> = (0..burst).map(|i| format!("burst-{i}")).collect();
        for ns in &names {
            api.put(namespace(ns, None));
        }
        while !names.iter().all(|ns| fenced(ns)) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let took = started.elapsed();
        println!(
            "a burst of {burst} namespaces: all fenced {:.0} ms after the first was created ({:.0} namespaces/s)",
            took.as_secs_f64() * 1e3,
            burst as f64 / took.as_secs_f64()
        );
    });
}
