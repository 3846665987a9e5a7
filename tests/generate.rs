//! Generation against the API's own request and response shapes: a real
//! `kube::Client` talks HTTP to a local stand-in of the API server
//! (tests/common/api_store.rs) that keeps objects, takes creates and
//! answers 201, 409 AlreadyExists, 403 (RBAC, a terminating namespace) and
//! 422 as the API server does; palisade's watch cache follows it as it
//! follows a cluster. No mocked client.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::api_store::ApiStore;
use common::until;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use palisade::admit::{self, Confirmation, Webhook};
use palisade::cluster::ClusterView;
use palisade::cluster::kube::KubeCluster;
use palisade::config::Config;
use palisade::decide;
use palisade::generate::Generating;
use palisade::generate::create::{Outcome, create};
use palisade::generate::plan::{Age, Plan, Scope, plan};
use palisade::generate::writer::Writer;
use palisade::leader::{Leadership, Role};
use palisade::server::metrics::{Metrics, Scrape};
use serde_json::{Value, json};

fn netpols(ns: &str) -> String {
    format!("apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies")
}

/// A Namespace as the API server stores it.
fn namespace(name: &str, labels: &[(&str, &str)]) -> Value {
    let mut l: serde_json::Map<String, Value> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    l.insert("kubernetes.io/metadata.name".into(), json!(name));
    json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": name, "labels": l},
        "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
}

/// A Namespace created long before palisade started.
fn old_namespace(name: &str) -> Value {
    let mut n = namespace(name, &[]);
    n["metadata"]["uid"] = json!(format!("uid-{name}"));
    n["metadata"]["creationTimestamp"] = json!("2024-03-01T08:00:00Z");
    n
}

fn generating_config() -> Config {
    let mut c = common::default_config();
    c.generate.enabled = true;
    c
}

fn leader() -> Leadership {
    Leadership::fixed(Role::Leader)
}

/// The watch cache on `api`, synced.
async fn cluster(api: &ApiStore) -> Arc<KubeCluster> {
    let (c, _tasks) = KubeCluster::start(api.client(), None);
    until("the watches to sync", || c.is_ready()).await;
    c
}

/// A replica's generation: its cache, its writer, its metrics.
struct Replica {
    cluster: Arc<KubeCluster>,
    metrics: Arc<Metrics>,
    scope: Scope,
    writer: tokio::task::JoinHandle<()>,
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.writer.abort();
    }
}

async fn replica(api: &ApiStore, cfg: &Config, leadership: Leadership) -> Replica {
    let cluster = cluster(api).await;
    let metrics = Arc::new(Metrics::new());
    let scope = Scope::started_at(palisade::certmgr::unix_now());
    let writer = Writer {
        client: api.client(),
        cluster: Arc::clone(&cluster) as Arc<dyn ClusterView>,
        config: Arc::new(cfg.clone()),
        scope,
        leadership,
        metrics: Arc::clone(&metrics),
    }
    .spawn();
    Replica {
        cluster,
        metrics,
        scope,
        writer,
    }
}

/// `palisade_generated_policies_total{outcome}` as scraped.
fn generated(m: &Metrics, outcome: &str) -> u64 {
    let text = m.encode(&Scrape::default());
    let series = format!("palisade_generated_policies_total{{outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(series.as_str()))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
}

/// Creates of NetworkPolicies the stand-in answered with `status`.
fn creates(api: &ApiStore, status: u16) -> usize {
    api.seen()
        .iter()
        .filter(|s| s.method == "POST" && s.uri.contains("/networkpolicies") && s.status == status)
        .count()
}

/// palisade writes NetworkPolicies only by POST: never an update, a patch
/// or a delete, so it can change no policy it did not create.
fn only_creates(api: &ApiStore) {
    let writes: Vec<String> = api
        .seen()
        .iter()
        .filter(|s| s.uri.contains("/networkpolicies") && s.method != "GET")
        .map(|s| format!("{} {}", s.method, s.uri))
        .collect();
    assert!(writes.iter().all(|w| w.starts_with("POST ")), "{writes:#?}");
}

fn planned(cfg: &Config, ns: &str) -> Vec<NetworkPolicy> {
    let mut c = cfg.clone();
    c.generate.enabled = true;
    let view = palisade::cluster::NamespaceView {
        namespace: Some(palisade::posture::NamespaceInfo::default()),
        ..palisade::cluster::NamespaceView::unknown(ns)
    };
    match plan(&c, &view, Age::New) {
        Plan::Generate(g) => g.policies,
        Plan::Skip(s) => panic!("{s:?}"),
    }
}

/// One create each way the API server answers: 201, 409 AlreadyExists
/// (the policy there, not palisade's, is left byte for byte), 403 from
/// RBAC, 403 from a namespace being deleted, 422 for a name it refuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_create_path_against_the_api_responses() {
    common::init();
    let api = ApiStore::start().await;
    let client = api.client();
    let cfg = generating_config();
    let [baseline, deny] = <[NetworkPolicy; 2]>::try_from(planned(&cfg, "shop")).expect("two");

    assert_eq!(create(&client, &deny).await, (Outcome::Created, None));
    let stored = api
        .get(&netpols("shop"), "palisade-default-deny")
        .expect("created");
    assert_eq!(
        stored["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "palisade"
    );
    assert_eq!(stored["spec"]["policyTypes"], json!(["Ingress", "Egress"]));

    // Someone else's policy of that name: 409, and it stays as it is.
    let theirs = json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "palisade-baseline", "namespace": "shop", "labels": {"team": "shop"}},
        "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"]}});
    api.put(theirs);
    let before = api.get(&netpols("shop"), "palisade-baseline");
    let (outcome, message) = create(&client, &baseline).await;
    assert_eq!(outcome, Outcome::Exists);
    assert!(
        message
            .as_deref()
            .unwrap_or_default()
            .contains("already exists"),
        "{message:?}"
    );
    assert_eq!(api.get(&netpols("shop"), "palisade-baseline"), before);

    // A name the API server refuses.
    let mut bad = deny.clone();
    bad.metadata.name = Some("Default_Deny".into());
    let (outcome, message) = create(&client, &bad).await;
    assert_eq!(outcome, Outcome::Invalid);
    let message = message.unwrap_or_default();
    assert!(
        message.contains(r#"NetworkPolicy.networking.k8s.io "Default_Deny" is invalid: metadata.name: Invalid value"#),
        "{message}"
    );

    // A namespace being deleted: nothing left to fence.
    let mut doomed = namespace("doomed", &[]);
    doomed["metadata"]["deletionTimestamp"] = json!("2026-12-01T00:00:00Z");
    doomed["status"]["phase"] = json!("Terminating");
    api.put(doomed);
    let (outcome, message) = create(&client, &planned(&cfg, "doomed")[1]).await;
    assert_eq!(outcome, Outcome::Gone, "{message:?}");
    assert!(
        message
            .unwrap_or_default()
            .contains("because it is being terminated")
    );

    // RBAC without create on NetworkPolicies.
    api.forbid("create", "networkpolicies");
    let (outcome, message) = create(&client, &planned(&cfg, "other")[1]).await;
    assert_eq!(outcome, Outcome::Forbidden);
    assert!(
        message.unwrap_or_default().contains(
            r#"cannot create resource "networkpolicies" in API group "networking.k8s.io" in the namespace "other""#
        )
    );

    let statuses: Vec<u16> = api
        .seen()
        .iter()
        .filter(|s| s.method == "POST")
        .map(|s| s.status)
        .collect();
    assert_eq!(statuses, [201, 409, 422, 403, 403]);
    only_creates(&api);
}

/// A new namespace gets its baseline and its default-deny from the leader
/// alone, created once; an old one, an exempt one, an opted-out one and
/// one in dry-run mode get nothing written (dry-run: counted as
/// would-create).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_fences_new_namespaces_once() {
    common::init();
    let api = ApiStore::start().await;
    api.put(old_namespace("legacy"));
    let cfg = generating_config();
    let lead = replica(&api, &cfg, leader()).await;
    let follow = replica(
        &api,
        &cfg,
        Leadership::fixed(Role::Follower { leader: None }),
    )
    .await;

    for ns in [
        namespace("shop", &[]),
        namespace("kube-public", &[]),
        namespace("lab", &[("palisade.io/generate", "disabled")]),
        namespace("staging", &[("palisade.io/mode", "dry-run")]),
    ] {
        api.put(ns);
    }
    until("shop to be fenced in both caches", || {
        [&lead.cluster, &follow.cluster]
            .iter()
            .all(|c| c.namespace("shop").missing_default_deny(&cfg).is_empty())
    })
    .await;
    until("dry-run to be counted", || {
        generated(&lead.metrics, "would-create") == 2
    })
    .await;
    // Give a second writer every chance to write twice.
    tokio::time::sleep(Duration::from_millis(300)).await;

    assert_eq!(creates(&api, 201), 2, "{:#?}", api.seen());
    assert_eq!(creates(&api, 409), 0, "created once");
    for name in ["palisade-baseline", "palisade-default-deny"] {
        let p = api.get(&netpols("shop"), name).expect(name);
        assert_eq!(
            p["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "palisade"
        );
    }
    for ns in ["legacy", "kube-public", "lab", "staging"] {
        assert!(
            api.get(&netpols(ns), "palisade-default-deny").is_none(),
            "{ns}"
        );
    }
    assert_eq!(generated(&lead.metrics, "created"), 2);
    assert_eq!(generated(&follow.metrics, "created"), 0);
    assert_eq!(
        generated(&follow.metrics, "would-create"),
        0,
        "only the leader counts"
    );
    only_creates(&api);
}

/// `generate.existing: true`: namespaces older than palisade get theirs too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn existing_namespaces_on_request() {
    common::init();
    let api = ApiStore::start().await;
    api.put(old_namespace("legacy"));
    let mut cfg = generating_config();
    cfg.generate.existing = true;
    let lead = replica(&api, &cfg, leader()).await;
    until("legacy to be fenced", || {
        lead.cluster
            .namespace("legacy")
            .missing_default_deny(&cfg)
            .is_empty()
    })
    .await;
    assert_eq!(generated(&lead.metrics, "created"), 2);
}

/// RBAC without `create` on NetworkPolicies: counted as forbidden, nothing
/// written, and the namespace's pods are denied as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_creates_are_counted() {
    common::init();
    let api = ApiStore::start().await;
    api.forbid("create", "networkpolicies");
    let cfg = generating_config();
    let lead = replica(&api, &cfg, leader()).await;
    api.put(namespace("shop", &[]));
    until("the refusal to be counted", || {
        generated(&lead.metrics, "forbidden") == 1
    })
    .await;
    assert_eq!(
        creates(&api, 403),
        1,
        "stops at the first refusal, tries again later"
    );
    assert!(api.get(&netpols("shop"), "palisade-baseline").is_none());
}

/// A captured pod CREATE review, moved into `ns`.
fn pod_review(ns: &str) -> Value {
    let mut v = common::fixture("validating-pod-create-with-labels.json");
    v["request"]["namespace"] = json!(ns);
    v["request"]["object"]["metadata"]["namespace"] = json!(ns);
    v
}

/// What validation says of `review` in a namespace with no policy: the
/// usual denial, word for word.
fn usual_denial(cfg: &Config, review: &Value) -> String {
    let req = palisade::review::parse(&serde_json::to_vec(review).expect("json")).expect("review");
    let ns = decide::request_namespace(&req).expect("namespace");
    decide::validate(cfg, &req, &palisade::cluster::NamespaceView::unknown(&ns))
        .denial_message()
        .expect("denied")
}

/// The race: the Namespace event and a pod review a few milliseconds
/// apart, over HTTPS to a server whose leader generates. The review is
/// answered allowed once the default-deny exists; with generation off, or
/// in a namespace that opted out, it is denied with the usual message and
/// without waiting for what will not come.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_right_after_its_namespace_is_admitted_once_fenced() {
    common::init();
    let api = ApiStore::start().await;
    let cfg = generating_config();
    let lead = replica(&api, &cfg, leader()).await;
    let server = common::TestServer::start_generating(
        cfg.clone(),
        Arc::clone(&lead.cluster) as Arc<dyn ClusterView>,
        Generating {
            scope: lead.scope,
            leadership: leader(),
        },
    )
    .await;

    // The cache sees new policies late, so the review cannot outrun
    // generation by luck: it has to wait for it.
    let lag = Duration::from_millis(300);
    api.lag("networkpolicies", lag);
    api.put(namespace("shop", &[]));
    tokio::time::sleep(Duration::from_millis(3)).await;
    let started = Instant::now();
    let resp = server.review("/validate", &pod_review("shop")).await;
    assert_eq!(resp["allowed"], true, "{resp}");
    assert!(
        started.elapsed() >= lag - Duration::from_millis(10),
        "{:?}",
        started.elapsed()
    );
    assert!(
        api.get(&netpols("shop"), "palisade-default-deny").is_some(),
        "admitted only once the default-deny exists"
    );
    // `kubectl apply -f` of a Namespace and a Deployment: the same race.
    api.put(namespace("web", &[]));
    let mut deploy = common::fixture("validating-deployment-create-two-replicas.json");
    deploy["request"]["namespace"] = json!("web");
    deploy["request"]["object"]["metadata"]["namespace"] = json!("web");
    let resp = server.review("/validate", &deploy).await;
    assert_eq!(resp["allowed"], true, "{resp}");

    // Opted out: denied, as usual, at once.
    api.put(namespace("lab", &[("palisade.io/generate", "disabled")]));
    tokio::time::sleep(Duration::from_millis(3)).await;
    let started = Instant::now();
    let review = pod_review("lab");
    let resp = server.review("/validate", &review).await;
    assert_eq!(resp["allowed"], false, "{resp}");
    assert_eq!(
        resp["status"]["message"],
        usual_denial(&cfg, &review).as_str()
    );
    assert!(resp["warnings"].is_null(), "{resp}");
    assert!(
        started.elapsed() < admit::GENERATION_WAIT,
        "{:?}",
        started.elapsed()
    );
    assert!(api.get(&netpols("lab"), "palisade-default-deny").is_none());

    let metrics = server.metrics().await;
    for line in [
        "palisade_confirmations_total{result=\"generated\"} 2",
        "palisade_confirmations_total{result=\"confirmed\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in:\n{metrics}");
    }
    drop(lead);

    // Generation off: nothing waits, nothing is created.
    let api = ApiStore::start().await;
    let off = common::default_config();
    let cache = cluster(&api).await;
    let server = common::TestServer::start_custom(
        off.clone(),
        cache,
        Default::default(),
        Default::default(),
    )
    .await;
    api.put(namespace("shop", &[]));
    tokio::time::sleep(Duration::from_millis(3)).await;
    let started = Instant::now();
    let review = pod_review("shop");
    let resp = server.review("/validate", &review).await;
    assert_eq!(resp["allowed"], false, "{resp}");
    assert_eq!(
        resp["status"]["message"],
        usual_denial(&off, &review).as_str()
    );
    assert!(started.elapsed() < admit::GENERATION_WAIT);
    assert_eq!(creates(&api, 201), 0);
}

/// A watch that lags: the policy is created at once, the cache sees it
/// late. A review waits for the cache; when the lag outlasts the wait, the
/// fresh read before a denial finds the policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_watch_delays_the_answer_not_the_fence() {
    common::init();
    let api = ApiStore::start().await;
    let cfg = generating_config();
    let lead = replica(&api, &cfg, leader()).await;
    let pod = |ns: &str| {
        palisade::review::parse(&serde_json::to_vec(&pod_review(ns)).expect("json"))
            .expect("review")
    };

    api.lag("networkpolicies", Duration::from_millis(400));
    api.put(namespace("shop", &[]));
    let started = Instant::now();
    let (v, how) = admit::admit_generating(
        &cfg,
        &*lead.cluster,
        Webhook::Validate,
        &pod("shop"),
        Some(&lead.scope),
    )
    .await;
    assert!(v.allowed(), "{v:?}");
    assert_eq!(how, Confirmation::Generated);
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );

    api.lag("networkpolicies", Duration::from_millis(2500));
    api.put(namespace("slow", &[]));
    let started = Instant::now();
    let (v, how) = admit::admit_generating(
        &cfg,
        &*lead.cluster,
        Webhook::Validate,
        &pod("slow"),
        Some(&lead.scope),
    )
    .await;
    assert!(v.allowed(), "{v:?}");
    assert_eq!(how, Confirmation::Overturned, "the fresh read found it");
    let took = started.elapsed();
    assert!(
        took >= admit::GENERATION_WAIT && took < Duration::from_secs(4),
        "{took:?}"
    );
}

/// The binary as deploy/ runs it: `serve --generate` against the API
/// stand-in (through KUBECONFIG) elects itself on the Lease and fences a
/// namespace created after it started, and only that one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_generate_elects_and_fences_new_namespaces() {
    common::init();
    let api = ApiStore::start().await;
    api.put(old_namespace("legacy"));
    let dir = tempfile::tempdir().expect("tempdir");
    common::bundle().write_to(dir.path()).expect("certificates");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, common::fake_api::kubeconfig(api.addr)).expect("kubeconfig");
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/palisade.yaml");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_palisade"))
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
        .arg("--tls-cert")
        .arg(dir.path().join("tls.crt"))
        .arg("--tls-key")
        .arg(dir.path().join("tls.key"))
        .env("KUBECONFIG", &kubeconfig)
        .env("PALISADE_GENERATE", "true")
        .env("PALISADE_NAMESPACE", "palisade-system")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("palisade serve");
    let _running = common::Running(child);

    until("the Lease to be held", || {
        api.get(
            "apis/coordination.k8s.io/v1/namespaces/palisade-system/leases",
            "palisade-leader",
        )
        .is_some_and(|l| l["spec"]["holderIdentity"].is_string())
    })
    .await;
    api.put(namespace("shop", &[]));
    until("shop to be fenced", || {
        api.get(&netpols("shop"), "palisade-default-deny").is_some()
    })
    .await;
    assert!(api.get(&netpols("shop"), "palisade-baseline").is_some());
    assert!(
        api.get(&netpols("legacy"), "palisade-default-deny")
            .is_none()
    );
    only_creates(&api);
}
