//! The live cluster at scale: the real `palisade serve` binary watching a
//! local stand-in for the API server (tests/common/fake_api.rs) that holds
//! 10,000 namespaces, 100,000 NetworkPolicies and, for the preview, 50,000
//! pods of 5,000 workloads in 5,000 namespaces (benches/support/cluster.rs).
//!
//! ```text
//! cargo bench --bench scale                                         # with the rest
//! PALISADE_SCALE_SIZES=100 PALISADE_SCALE_EXPORT=0 cargo bench --bench scale   # this part alone
//! ```
//!
//! Printed, each for the preview off and on: time until `/readyz` answers
//! 200 (and, with the preview, until its model holds every pod), VmRSS
//! once settled, VmHWM (the peak); with the preview, the latency of
//! server-side dry-run NetworkPolicy reviews over TLS, which carry the
//! preview. Then, in a process of its own, the preview's model built from
//! the same objects without the webhook around it: its memory, its own
//! estimate of it (what the budget compares), and preview times.
//!
//! What the stand-in does not reproduce: the API server's latency and
//! throughput (it answers from memory, at once), protobuf (palisade asks
//! for JSON), HTTP/2 multiplexing, `resourceVersion` semantics beyond a
//! counter, authentication, and watch events arriving during the list.
//!
//! Knobs (environment): `PALISADE_WATCH_NAMESPACES` (default 10000),
//! `PALISADE_WATCH_POD_NAMESPACES` (namespaces with a workload, default
//! 5000), `PALISADE_WATCH_PREVIEWS` (reviews timed, default 400),
//! `PALISADE_WATCH_BUDGET_MIB` (the preview's budget, default 48).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use palisade::netpol::Policy;
use palisade::reach::{Model, PodSummary, PolicyChange, preview};
use serde_json::Value;

use crate::cluster;
use crate::fake_api::{Collection, FakeApi, Items};
use crate::{env_or, memory_kib, mib, percentile, shared, status_kib};

/// Set in the child that measures the model alone.
pub const CHILD_ENV: &str = "PALISADE_WATCH_CHILD";
const POLICIES_PER_NS: usize = 10;

/// How big a cluster the stand-in serves.
pub struct Sizes {
    namespaces: usize,
    pod_namespaces: usize,
}

impl Sizes {
    /// From the environment (see the module doc).
    pub fn from_env() -> Self {
        let namespaces = env_or("PALISADE_WATCH_NAMESPACES", 10_000usize);
        Sizes {
            namespaces,
            pod_namespaces: env_or("PALISADE_WATCH_POD_NAMESPACES", 5_000usize).min(namespaces),
        }
    }

    /// Every policy, by (namespace, place).
    fn policies(&self) -> Vec<Value> {
        (0..self.namespaces)
            .flat_map(|i| (0..POLICIES_PER_NS).map(move |p| cluster::policy(i, p)))
            .collect()
    }
}

/// The preview's model alone, built in place from the generated objects
/// as the watch builds it; in a child process, so its memory is its own.
pub fn model_child(s: &Sizes) {
    let (rss0, _) = memory_kib("self");
    let t = Instant::now();
    let mut m = Model::default();
    for i in 0..s.namespaces {
        let ns: k8s_openapi::api::core::v1::Namespace =
            serde_json::from_value(cluster::namespace(i)).expect("namespace");
        let (name, info) = palisade::posture::NamespaceInfo::from_k8s(&ns);
        m.put_namespace(&name, info.labels);
        for p in 0..POLICIES_PER_NS {
            let np = serde_json::from_value(cluster::policy(i, p)).expect("policy");
            m.put_policy(&Policy::from_k8s(&np, "default").expect("valid policy"));
        }
    }
    for i in 0..s.pod_namespaces {
        let rs: k8s_openapi::api::apps::v1::ReplicaSet =
            serde_json::from_value(cluster::replicaset(i)).expect("replicaset");
        m.put_owner(palisade::reach::Intermediate::ReplicaSet, &rs.metadata);
        for k in 0..cluster::PODS_PER_WORKLOAD {
            let pod: k8s_openapi::api::core::v1::Pod =
                serde_json::from_value(cluster::pod(i, k)).expect("pod");
            let name = pod.metadata.name.clone().unwrap_or_default();
            m.put_pod(&name, PodSummary::from_pod(&pod, "default"));
        }
    }
    let built = t.elapsed();
    let (rss, hwm) = memory_kib("self");
    let stats = m.stats();
    println!(
        "model alone: {} namespaces, {} policies ({} distinct bodies, {} peers), {} pods in {} workloads ({} shapes), built in place in {:.2} s",
        stats.namespaces,
        stats.policies,
        stats.bodies,
        stats.peers,
        stats.pods,
        stats.workloads,
        stats.groups,
        built.as_secs_f64()
    );
    println!(
        "model alone: VmRSS {:.1} MiB ({:.1} MiB before it: the model {:.1} MiB), VmHWM {:.1} MiB; its own estimate {:.1} MiB",
        mib(rss),
        mib(rss0),
        mib(rss - rss0),
        mib(hwm),
        stats.approx_bytes() as f64 / (1024.0 * 1024.0)
    );
    // Single-policy changes in namespaces with pods: a new app-to-app rule,
    // an update of an existing one, a deletion of the default-deny.
    let n = if s.pod_namespaces == 0 {
        0
    } else {
        env_or("PALISADE_WATCH_PREVIEWS", 400usize)
    };
    let mut times = Vec::with_capacity(n);
    let mut sizes = Vec::with_capacity(n);
    for k in 0..n {
        let i = (k * 7919) % s.pod_namespaces;
        let ns = cluster::namespace_name(i);
        let change = match k % 4 {
            3 => {
                // The heavy end: the namespace opened both ways.
                let np: k8s_openapi::api::networking::v1::NetworkPolicy = serde_json::from_value(
                    serde_json::json!({"metadata": {"name": format!("open-{k}"), "namespace": ns},
                        "spec": {"podSelector": {}, "ingress": [{}], "egress": [{}]}}),
                )
                .expect("policy");
                PolicyChange::create(Policy::from_k8s(&np, &ns).expect("policy"))
            }
            0 => {
                let v = cluster::policy(i, 6 + k % 4);
                let mut np: k8s_openapi::api::networking::v1::NetworkPolicy =
                    serde_json::from_value(v).expect("policy");
                np.metadata.name = Some(format!("new-{k}"));
                PolicyChange::create(Policy::from_k8s(&np, &ns).expect("policy"))
            }
            1 => {
                let old = m.policy(&ns, "monitoring").expect("monitoring");
                let mut new = old.clone();
                new.ingress[0].ports = palisade::ports::RulePorts::all();
                PolicyChange::update(old, new).expect("same policy")
            }
            _ => match m.policy(&ns, "default-deny") {
                Some(p) => PolicyChange::delete(p),
                None => continue,
            },
        };
        let t = Instant::now();
        let p = std::hint::black_box(preview(&m, &change));
        times.push(t.elapsed());
        sizes.push(p.opened.len() + p.closed.len());
    }
    if times.is_empty() {
        // No pods: nothing a preview could open or close.
        return;
    }
    times.sort();
    sizes.sort();
    let (_, hwm2) = memory_kib("self");
    println!(
        "model alone: {} previews: p50 {:.2?}, p99 {:.2?}, max {:.2?} (target p99 < 50 ms); connections opened+closed per change: median {}, max {}; VmHWM after {:.1} MiB",
        times.len(),
        percentile(&times, 50.0),
        percentile(&times, 99.0),
        times.last().copied().unwrap_or_default(),
        sizes.get(sizes.len() / 2).copied().unwrap_or(0),
        sizes.last().copied().unwrap_or(0),
        mib(hwm2),
    );
}

/// The served objects.
fn collections(s: &Sizes, with_pods: bool) -> Vec<Collection> {
    let n = s.namespaces;
    let policies = Arc::new(s.policies());
    let pods = if with_pods {
        s.pod_namespaces * cluster::PODS_PER_WORKLOAD
    } else {
        0
    };
    vec![
        Collection {
            path: "/api/v1/namespaces".into(),
            api_version: "v1".into(),
            kind: "Namespace".into(),
            items: Items::Made {
                len: n,
                make: Arc::new(cluster::namespace),
            },
        },
        Collection {
            path: "/apis/networking.k8s.io/v1/networkpolicies".into(),
            api_version: "networking.k8s.io/v1".into(),
            kind: "NetworkPolicy".into(),
            items: Items::Made {
                len: policies.len(),
                make: Arc::new(move |i| policies[i].clone()),
            },
        },
        Collection {
            path: "/apis/apps/v1/replicasets".into(),
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            items: Items::Made {
                len: if with_pods { s.pod_namespaces } else { 0 },
                make: Arc::new(cluster::replicaset),
            },
        },
        Collection::held("/apis/batch/v1/jobs", "batch/v1", "Job", Vec::new()),
        Collection {
            path: "/api/v1/pods".into(),
            api_version: "v1".into(),
            kind: "Pod".into(),
            items: Items::Made {
                len: pods,
                make: Arc::new(|k| {
                    cluster::pod(
                        k / cluster::PODS_PER_WORKLOAD,
                        k % cluster::PODS_PER_WORKLOAD,
                    )
                }),
            },
        },
    ]
}

struct Run {
    ready: Duration,
    preview_ready: Option<Duration>,
    rss: u64,
    /// Of `rss`, pages backed by files (the binary's own code and data).
    file: u64,
    hwm: u64,
    reviews: Vec<Duration>,
    previewed: usize,
}

/// Serves the stand-in and measures the real binary against it.
async fn serve_run(s: &Sizes, preview_on: bool) -> Run {
    let api = FakeApi::start(collections(s, preview_on)).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, api.kubeconfig()).expect("kubeconfig");
    let bundle = crate::write_certificates(dir.path());
    let config = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/policies/palisade.yaml"
    ))
    .expect("config");
    let budget: u32 = env_or("PALISADE_WATCH_BUDGET_MIB", 48u32);
    let config: String = config
        .lines()
        .map(|l| match l.trim_start() {
            t if t.starts_with("preview:") => format!("  preview: {preview_on}\n"),
            t if t.starts_with("previewMemoryMiB:") => format!("  previewMemoryMiB: {budget}\n"),
            _ => format!("{l}\n"),
        })
        .collect();
    std::fs::create_dir_all(dir.path().join("sidecars")).expect("dir");
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/policies/sidecars/access-proxy.yaml"
        ),
        dir.path().join("sidecars/access-proxy.yaml"),
    )
    .expect("sidecar template");
    std::fs::write(dir.path().join("palisade.yaml"), config).expect("config");

    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .arg("serve")
        .arg("--config")
        .arg(dir.path().join("palisade.yaml"))
        .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
        .arg("--tls-cert")
        .arg(dir.path().join(palisade::certs::CERT_FILE))
        .arg("--tls-key")
        .arg(dir.path().join(palisade::certs::KEY_FILE))
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("palisade serve");
    let pid = child.id().to_string();
    let stderr = child.stderr.take().expect("stderr");
    // The log tells the ports, then whether the preview's watches synced.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let field = |line: &str, key: &str| -> Option<String> {
        let v: Value = serde_json::from_str(line).ok()?;
        // palisade's JSON lines carry an event's fields at the top level.
        v[key].as_str().map(str::to_owned)
    };
    let (mut https, mut metrics) = (None, None);
    while https.is_none() {
        let line = rx.recv().await.expect("palisade exited before serving");
        if line.contains("palisade is serving") {
            https = field(&line, "https_addr");
            metrics = field(&line, "metrics_addr");
        }
    }
    let (https, metrics) = (
        https.expect("https address"),
        metrics.expect("metrics address"),
    );
    let http = reqwest::Client::builder().build().expect("client");
    let ready = loop {
        if let Ok(r) = http.get(format!("http://{metrics}/readyz")).send().await
            && r.status() == 200
        {
            break started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut preview_ready = None;
    if preview_on {
        let mut synced = 0;
        // Namespaces, policies, pods, ReplicaSets and Jobs.
        while synced < 5 {
            let line = match tokio::time::timeout(Duration::from_secs(120), rx.recv()).await {
                Ok(Some(l)) => l,
                _ => panic!("the preview's watches did not sync"),
            };
            if line.contains("preview watch synced") {
                synced += 1;
            }
            if line.contains("preview switched off") {
                println!("  the preview switched itself off: {line}");
                break;
            }
        }
        preview_ready = Some(started.elapsed());
    }
    // Settled: a few seconds after everything listed.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (rss, hwm) = memory_kib(&pid);
    let file = status_kib(&pid, "RssFile:");

    let mut reviews = Vec::new();
    let mut previewed = 0;
    if preview_on {
        let tls = reqwest::Client::builder()
            .add_root_certificate(
                reqwest::Certificate::from_pem(bundle.ca_pem.as_bytes()).expect("CA"),
            )
            .resolve(
                "palisade.palisade-system.svc",
                https.parse().expect("address"),
            )
            .build()
            .expect("TLS client");
        let template: Value = serde_json::from_str(
            &std::fs::read_to_string(shared::shared_fixtures(
                "admission-reviews/validating-networkpolicy-create-frontend-to-backend.json",
            ))
            .expect("fixture"),
        )
        .expect("JSON");
        let port = https.rsplit(':').next().unwrap_or("443");
        let n = env_or("PALISADE_WATCH_PREVIEWS", 400usize);
        for k in 0..n {
            let i = (k * 7919) % s.pod_namespaces;
            let ns = cluster::namespace_name(i);
            let mut body = template.clone();
            body["request"]["uid"] = format!("preview-{k}").into();
            body["request"]["namespace"] = ns.clone().into();
            body["request"]["dryRun"] = true.into();
            body["request"]["object"] = cluster::policy(i, 6 + k % 4);
            body["request"]["object"]["metadata"]["name"] = format!("new-{k}").into();
            let t = Instant::now();
            let resp: Value = tls
                .post(format!(
                    "https://palisade.palisade-system.svc:{port}/validate"
                ))
                .json(&body)
                .send()
                .await
                .expect("review")
                .json()
                .await
                .expect("review response");
            reviews.push(t.elapsed());
            let warned = resp["response"]["warnings"].as_array().is_some_and(|w| {
                w.iter()
                    .any(|w| w.as_str().is_some_and(|w| w.contains("palisade preview")))
            });
            previewed += usize::from(warned);
        }
        reviews.sort();
    }
    // SAFETY: kill(2) with a pid we spawned and still own.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let _ = child.wait();
    drop(api);
    Run {
        ready,
        preview_ready,
        rss,
        file,
        hwm,
        reviews,
        previewed,
    }
}

/// Measures the live path (both serve runs, then the model alone).
pub fn run() {
    let s = Sizes::from_env();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "palisade watch bench: {} namespaces, {} NetworkPolicies; preview pods: {} in {} workloads; load average {}",
        s.namespaces,
        s.policies().len(),
        s.pod_namespaces * cluster::PODS_PER_WORKLOAD,
        s.pod_namespaces,
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "rerun: PALISADE_SCALE_SIZES=100 PALISADE_SCALE_EXPORT=0 PALISADE_WATCH_NAMESPACES={} PALISADE_WATCH_POD_NAMESPACES={} cargo bench --bench scale",
        s.namespaces, s.pod_namespaces
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    // PALISADE_WATCH_ONLY=off|on: one serve run alone, no model child.
    let only = std::env::var("PALISADE_WATCH_ONLY").ok();
    let runs: Vec<bool> = match only.as_deref() {
        Some("off") => vec![false],
        Some("on") => vec![true],
        _ => vec![false, true],
    };
    for preview_on in runs {
        let r = rt.block_on(serve_run(&s, preview_on));
        let label = if preview_on {
            "preview on "
        } else {
            "preview off"
        };
        print!(
            "serve (binary), watch, {label}: ready after {:.2} s",
            r.ready.as_secs_f64()
        );
        if let Some(p) = r.preview_ready {
            print!(", preview synced after {:.2} s", p.as_secs_f64());
        }
        println!(
            "; settled VmRSS {:.1} MiB ({:.1} of it the binary's file-backed pages), peak VmHWM {:.1} MiB",
            mib(r.rss),
            mib(r.file),
            mib(r.hwm)
        );
        if preview_on {
            println!(
                "  {} dry-run NetworkPolicy reviews over TLS, {} with a preview: p50 {:.2?}, p99 {:.2?}, max {:.2?} (target p99 < 50 ms)",
                r.reviews.len(),
                r.previewed,
                percentile(&r.reviews, 50.0),
                percentile(&r.reviews, 99.0),
                r.reviews.last().copied().unwrap_or_default()
            );
        }
    }
    if only.is_some() {
        return;
    }
    // The model with its pods, then without any: the difference is what
    // the pods cost, the rest what the policies and namespaces cost.
    let exe = std::env::current_exe().expect("own path");
    for pods in [s.pod_namespaces, 0] {
        let status = Command::new(&exe)
            .env(CHILD_ENV, "model")
            .env("PALISADE_WATCH_POD_NAMESPACES", pods.to_string())
            .status()
            .expect("child");
        assert!(status.success(), "model child: {status}");
    }
}
