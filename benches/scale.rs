//! Scale: a generated cluster of 10,000 namespaces and 100,000
//! NetworkPolicies, loaded the way `palisade serve --state DIR` loads it.
//!
//! ```text
//! cargo bench --bench scale
//! ```
//!
//! The parent process writes states of 100, 1,000 and 10,000 namespaces
//! (ten policies each, one YAML file per namespace) to temporary
//! directories, then measures each in a fresh child process (this same
//! binary, re-run), so the memory figures are those of a process that did
//! nothing but load the state: time to load, VmRSS after the load and VmHWM
//! (the peak), then the latency of single reviews decided against the
//! state (parse, decide, respond; no network), which must not grow with
//! the number of namespaces. Last, the real binary serves the largest state
//! and its VmRSS is read once it answers.
//!
//! Knobs (environment): `PALISADE_SCALE_SIZES` (comma-separated namespace
//! counts, default `100,1000,10000`), `PALISADE_SCALE_POLICIES` (per
//! namespace, default 10), `PALISADE_SCALE_REVIEWS` (timed reviews per size,
//! default 20000).

#[path = "../tests/common/shared.rs"]
mod shared;

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use palisade::admit::{self, Webhook};
use palisade::cluster::ClusterView;
use palisade::cluster::static_dir::StaticCluster;
use palisade::config::Config;
use palisade::review;

/// The binary's allocator, so that the state's memory here is what it is there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CHILD_ENV: &str = "PALISADE_SCALE_CHILD";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Namespace `i` of the generated cluster.
fn namespace_name(i: usize) -> String {
    const TEAMS: [&str; 8] = [
        "payments", "checkout", "search", "ledger", "identity", "media", "ads", "ml",
    ];
    format!("{}-svc-{i:05}", TEAMS[i % TEAMS.len()])
}

/// One namespace's manifests: the Namespace and `policies` NetworkPolicies
/// in the proportions of a real fleet. Every namespace but one in twenty
/// has a default-deny; one in twenty is a dev namespace with an allow-all;
/// the rest are app-to-app rules, namespaceSelector rules, DNS egress,
/// ipBlock egress and monitoring scrapes.
fn namespace_yaml(i: usize, policies: usize) -> String {
    let ns = namespace_name(i);
    let dev = i % 20 == 7;
    let env = if dev {
        "dev"
    } else if i.is_multiple_of(3) {
        "staging"
    } else {
        "prod"
    };
    let team = ns.split('-').next().unwrap_or("x");
    let mut y = String::with_capacity(policies * 420 + 300);
    let _ = write!(
        y,
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n  labels:\n    environment: {env}\n    team: {team}\n{}",
        if i.is_multiple_of(4) {
            "    palisade.io/proxy: enabled\n"
        } else {
            ""
        }
    );
    let apps = ["web", "api", "worker", "db", "cache", "auth"];
    for p in 0..policies {
        let head = format!(
            "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  namespace: {ns}\n"
        );
        y.push_str(&head);
        let body = match p {
            0 if i % 20 != 3 => "  name: default-deny\nspec:\n  podSelector: {}\n  policyTypes: [Ingress, Egress]\n".to_owned(),
            1 => "  name: allow-dns\nspec:\n  podSelector: {}\n  policyTypes: [Egress]\n  egress:\n  - to:\n    - namespaceSelector:\n        matchLabels: {kubernetes.io/metadata.name: kube-system}\n      podSelector:\n        matchLabels: {k8s-app: kube-dns}\n    ports: [{port: 53, protocol: UDP}, {port: 53, protocol: TCP}]\n".to_owned(),
            2 if dev => "  name: allow-all-ingress\nspec:\n  podSelector: {}\n  ingress: [{}]\n".to_owned(),
            3 => format!(
                "  name: from-team-{team}\nspec:\n  podSelector:\n    matchLabels: {{app: api}}\n  ingress:\n  - from:\n    - namespaceSelector:\n        matchLabels: {{team: {team}}}\n    ports: [{{port: 8443}}]\n"
            ),
            4 => "  name: egress-internal\nspec:\n  podSelector:\n    matchLabels: {app: worker}\n  policyTypes: [Egress]\n  egress:\n  - to:\n    - ipBlock: {cidr: 10.0.0.0/8, except: [10.96.0.0/12]}\n    ports: [{port: 443}]\n".to_owned(),
            5 => "  name: monitoring\nspec:\n  podSelector: {}\n  ingress:\n  - from:\n    - namespaceSelector:\n        matchLabels: {kubernetes.io/metadata.name: monitoring}\n      podSelector:\n        matchLabels: {app.kubernetes.io/name: prometheus}\n    ports: [{port: metrics}]\n".to_owned(),
            _ => {
                let to = apps[p % apps.len()];
                let from = apps[(p + 1) % apps.len()];
                format!(
                    "  name: {from}-to-{to}-{p}\nspec:\n  podSelector:\n    matchLabels: {{app: {to}}}\n  policyTypes: [Ingress]\n  ingress:\n  - from:\n    - podSelector:\n        matchLabels: {{app: {from}}}\n    ports: [{{port: {}, protocol: TCP}}]\n",
                    8000 + p
                )
            }
        };
        y.push_str(&body);
    }
    y
}

fn generate(dir: &Path, namespaces: usize, policies: usize) -> u64 {
    let mut bytes = 0u64;
    for i in 0..namespaces {
        let text = namespace_yaml(i, policies);
        bytes += text.len() as u64;
        std::fs::write(dir.join(format!("{}.yaml", namespace_name(i))), text).expect("write");
    }
    bytes
}

/// `VmRSS` and `VmHWM` of this process, in KiB.
fn memory_kib(pid: &str) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A pod CREATE review for namespace `ns`, from the captured fixture.
fn pod_review(ns: &str, uid: usize) -> Vec<u8> {
    let path = shared::shared_fixtures("admission-reviews/validating-pod-create-with-labels.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("JSON");
    v["request"]["namespace"] = ns.into();
    v["request"]["object"]["metadata"]["namespace"] = ns.into();
    v["request"]["uid"] = format!("scale-{uid}").into();
    serde_json::to_vec(&v).expect("serialize")
}

/// Child: load `dir`, report memory and time, then decide reviews.
fn child(dir: &Path, namespaces: usize) {
    let (rss_before, _) = memory_kib("self");
    let started = Instant::now();
    let (cluster, skipped) = StaticCluster::load(&[dir]).expect("state loads");
    let load = started.elapsed();
    let (rss, hwm) = memory_kib("self");
    assert!(skipped.is_empty(), "{skipped:?}");
    let stats = cluster.stats();

    let config = Config::embedded().expect("config");
    let cluster: Arc<dyn ClusterView> = Arc::new(cluster);
    let n: usize = env_or("PALISADE_SCALE_REVIEWS", 20_000usize).max(100);
    // 512 namespaces spread over the whole state, visited in turn, so the
    // lookups do not all hit one warm cache line.
    let bodies: Vec<Vec<u8>> = (0..512)
        .map(|k| pod_review(&namespace_name((k * 7919) % namespaces), k))
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let (mut decide, mut lookup) = rt.block_on(async {
        let mut decide = Vec::with_capacity(n);
        let mut lookup = Vec::with_capacity(n);
        let mut denied = 0usize;
        for i in 0..n {
            let body = &bodies[i % bodies.len()];
            let t = Instant::now();
            let req = review::parse(body).expect("review parses");
            let (verdict, _) =
                admit::admit(&config, cluster.as_ref(), Webhook::Validate, &req).await;
            let out = review::respond(&req.uid, &verdict, false);
            decide.push(t.elapsed());
            denied += usize::from(!verdict.allowed());
            std::hint::black_box(out);
            let ns = req.namespace.as_deref().unwrap_or("");
            let t = Instant::now();
            std::hint::black_box(cluster.namespace(ns));
            lookup.push(t.elapsed());
        }
        // Pods in the namespaces without default-deny are denied.
        assert!(denied > 0 && denied < n, "the mix has denials: {denied}");
        (decide, lookup)
    });
    decide.sort_unstable();
    lookup.sort_unstable();
    println!(
        "{:>6} namespaces {:>7} policies  load {:>7.2} s  VmRSS {:>6.1} MiB (before load {:.1})  VmHWM {:>6.1} MiB  review p50 {:>6.1} µs p99 {:>6.1} µs  namespace view p50 {:>5.2} µs p99 {:>5.2} µs",
        stats.namespaces,
        stats.policies,
        load.as_secs_f64(),
        mib(rss),
        mib(rss_before),
        mib(hwm),
        percentile(&decide, 50.0).as_secs_f64() * 1e6,
        percentile(&decide, 99.0).as_secs_f64() * 1e6,
        percentile(&lookup, 50.0).as_secs_f64() * 1e6,
        percentile(&lookup, 99.0).as_secs_f64() * 1e6,
    );
}

/// The real binary on the state: its VmRSS once it serves.
fn serve_rss(state: &Path) {
    let certs = tempfile::tempdir().expect("tempdir");
    let bundle = palisade::certs::generate(&palisade::certs::CertSpec {
        service: "palisade".into(),
        namespace: "palisade-system".into(),
        dns: vec![],
        ips: vec![],
        validity_days: 1,
    })
    .expect("certificates");
    bundle.write_to(certs.path()).expect("write");
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .arg("serve")
        .arg("--config")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/policies/palisade.yaml"
        ))
        .arg("--state")
        .arg(state)
        .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
        .arg("--tls-cert")
        .arg(certs.path().join(palisade::certs::CERT_FILE))
        .arg("--tls-key")
        .arg(certs.path().join(palisade::certs::KEY_FILE))
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("palisade serve");
    let pid = child.id().to_string();
    let stderr = child.stderr.take().expect("stderr");
    let mut serving = false;
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        if line.contains("palisade is serving") {
            serving = true;
            break;
        }
    }
    let ready = started.elapsed();
    // Let the runtime settle (listeners spawned, watcher registered).
    std::thread::sleep(Duration::from_millis(500));
    let (rss, hwm) = memory_kib(&pid);
    // SAFETY: kill(2) with a pid we spawned and still own.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let status = child.wait().expect("wait");
    println!(
        "palisade serve --state (binary): serving after {:.2} s: {serving}; VmRSS {:.1} MiB, VmHWM {:.1} MiB; exit after SIGTERM: {status}",
        ready.as_secs_f64(),
        mib(rss),
        mib(hwm),
    );
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        let (n, dir) = spec.split_once(':').expect("N:DIR");
        child(Path::new(dir), n.parse().expect("namespace count"));
        return;
    }
    let sizes: Vec<usize> = std::env::var("PALISADE_SCALE_SIZES")
        .unwrap_or_else(|_| "100,1000,10000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let policies: usize = env_or("PALISADE_SCALE_POLICIES", 10usize);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "palisade scale bench: {policies} NetworkPolicies per namespace, one YAML file per namespace; load average {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let exe = std::env::current_exe().expect("own path");
    let mut largest: Option<(usize, tempfile::TempDir)> = None;
    for &n in &sizes {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = Instant::now();
        let bytes = generate(dir.path(), n, policies);
        println!(
            "generated {n} namespaces, {} policies, {:.1} MiB of YAML in {:.2} s",
            n * policies,
            bytes as f64 / (1024.0 * 1024.0),
            t.elapsed().as_secs_f64()
        );
        let status = Command::new(&exe)
            .env(CHILD_ENV, format!("{n}:{}", dir.path().display()))
            .status()
            .expect("child");
        assert!(status.success(), "child for {n} namespaces: {status}");
        if largest.as_ref().is_none_or(|(m, _)| n > *m) {
            largest = Some((n, dir));
        }
    }
    if let Some((_, dir)) = largest {
        serve_rss(&PathBuf::from(dir.path()));
    }
}
