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
//! Then the shape of a cluster exported with `kubectl get ns,netpol,pods -A
//! -o json` (issue 19): one JSON `List` of 10,000 namespaces, 100,000
//! NetworkPolicies and 50,000 pods in 5,000 namespaces, each object with
//! the metadata, `managedFields` and (for pods) spec and status a real API
//! server returns, about 350 MB, written to a temporary directory and served
//! by the real binary with `serve --state DIR`, the preview off: time until
//! it serves, VmHWM (peak) and VmRSS once settled. The file is read object
//! by object and the pods are passed over unparsed. It does not reproduce
//! the exact field mix of every real pod (one template, varied by name,
//! labels and owner).
//!
//! Knobs (environment): `PALISADE_SCALE_SIZES` (comma-separated namespace
//! counts, default `100,1000,10000`), `PALISADE_SCALE_POLICIES` (per
//! namespace, default 10), `PALISADE_SCALE_REVIEWS` (timed reviews per size,
//! default 20000), `PALISADE_SCALE_EXPORT` (`NAMESPACES,POLICIES,PODS` of the
//! export, default `10000,100000,50000`; `0` skips it).
//!
//! ```text
//! PALISADE_SCALE_SIZES=100 cargo bench --bench scale               # the export only, quickly
//! PALISADE_SCALE_EXPORT=0 cargo bench --bench scale                # the YAML layouts only
//! ```

#[path = "support/cluster.rs"]
mod cluster;
#[path = "../tests/common/fake_api.rs"]
#[allow(dead_code)]
mod fake_api;
#[path = "../tests/common/shared.rs"]
mod shared;
#[path = "support/watch.rs"]
mod watch;

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

/// One namespace's manifests as a YAML stream: the Namespace and its
/// `policies` NetworkPolicies (benches/support/cluster.rs).
fn namespace_yaml(i: usize, policies: usize) -> String {
    std::iter::once(cluster::namespace(i))
        .chain((0..policies).map(|p| cluster::policy(i, p)))
        .map(|v| serde_saphyr::to_string(&v).expect("YAML"))
        .collect::<Vec<_>>()
        .join("---\n")
}

fn generate(dir: &Path, namespaces: usize, policies: usize) -> u64 {
    let mut bytes = 0u64;
    for i in 0..namespaces {
        let text = namespace_yaml(i, policies);
        bytes += text.len() as u64;
        std::fs::write(
            dir.join(format!("{}.yaml", cluster::namespace_name(i))),
            text,
        )
        .expect("write");
    }
    bytes
}

/// `VmRSS` and `VmHWM` of this process, in KiB.
fn memory_kib(pid: &str) -> (u64, u64) {
    (status_kib(pid, "VmRSS:"), status_kib(pid, "VmHWM:"))
}

/// One `kB` field of `/proc/PID/status` (`VmRSS:`, `RssFile:`, ...), 0 when absent.
fn status_kib(pid: &str, name: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A serving certificate and key for `palisade.palisade-system`, written
/// into `dir` as `serve --tls-cert/--tls-key` reads them; the CA, for
/// clients, is in what it returns.
fn write_certificates(dir: &Path) -> palisade::certs::CertBundle {
    let bundle = palisade::certs::generate(&palisade::certs::CertSpec {
        service: "palisade".into(),
        namespace: "palisade-system".into(),
        dns: vec![],
        ips: vec![],
        validity_days: 1,
    })
    .expect("certificates");
    bundle.write_to(dir).expect("write certificates");
    bundle
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
        .map(|k| pod_review(&cluster::namespace_name((k * 7919) % namespaces), k))
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

/// One item of a `kubectl get -o json` List, indented as kubectl writes
/// items (eight spaces), with the metadata an API server adds.
/// Writes the export to `path` item by item (never held whole), as
/// `kubectl get ns,netpol,pods -A -o json` prints it: namespaces, then
/// policies, then pods (`PODS_PER_WORKLOAD` per namespace from the first
/// on); returns its size in bytes.
fn write_export(path: &Path, namespaces: usize, policies: usize, pods: usize) -> u64 {
    use std::io::Write;
    let file = std::fs::File::create(path).expect("create");
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut first = true;
    let mut item = |w: &mut std::io::BufWriter<std::fs::File>, v: serde_json::Value| {
        w.write_all(if first { b"\n" } else { b",\n" })
            .expect("write");
        first = false;
        serde_json::to_writer_pretty(&mut *w, &cluster::exported(v)).expect("write");
    };
    write!(w, "{{\n    \"apiVersion\": \"v1\",\n    \"items\": [").expect("write");
    for i in 0..namespaces {
        item(&mut w, cluster::namespace(i));
    }
    let per_ns = policies / namespaces.max(1);
    for i in 0..namespaces {
        for p in 0..per_ns {
            item(&mut w, cluster::policy(i, p));
        }
    }
    for k in 0..pods {
        item(
            &mut w,
            cluster::pod(
                k / cluster::PODS_PER_WORKLOAD,
                k % cluster::PODS_PER_WORKLOAD,
            ),
        );
    }
    write!(w, "\n    ],\n    \"kind\": \"List\",\n    \"metadata\": {{\n        \"resourceVersion\": \"\"\n    }}\n}}\n").expect("write");
    w.flush().expect("flush");
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// The real binary on the state: its VmRSS once it serves.
fn serve_rss(state: &Path) {
    let certs = tempfile::tempdir().expect("tempdir");
    write_certificates(certs.path());
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
    let mut metrics_addr = String::new();
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        if line.contains("palisade is serving") {
            serving = true;
            metrics_addr = serde_json::from_str::<serde_json::Value>(&line)
                .ok()
                .and_then(|v| v["metrics_addr"].as_str().map(str::to_owned))
                .unwrap_or_default();
            break;
        }
    }
    let ready = started.elapsed();
    // Let the runtime settle (listeners spawned, watcher registered, the
    // allocator's freed pages given back).
    std::thread::sleep(Duration::from_millis(env_or(
        "PALISADE_SCALE_SETTLE_MS",
        3000u64,
    )));
    let (rss, hwm) = memory_kib(&pid);
    let held = cache_objects(&metrics_addr);
    // SAFETY: kill(2) with a pid we spawned and still own.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let status = child.wait().expect("wait");
    println!(
        "palisade serve --state (binary): serving after {:.2} s: {serving}, holding {held}; settled VmRSS {:.1} MiB ({:.1} s after), peak VmHWM {:.1} MiB; exit after SIGTERM: {status}",
        ready.as_secs_f64(),
        mib(rss),
        env_or("PALISADE_SCALE_SETTLE_MS", 3000u64) as f64 / 1000.0,
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
    if std::env::var(watch::CHILD_ENV).is_ok() {
        watch::model_child(&watch::Sizes::from_env());
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
    export_bench();
    if env_or("PALISADE_SCALE_WATCH", 1u8) != 0 {
        watch::run();
    }
}

/// `palisade_cache_objects` from the metrics port: what the server holds.
fn cache_objects(addr: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut conn) = std::net::TcpStream::connect(addr) else {
        return "? (no metrics)".into();
    };
    let _ = conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n");
    let mut body = String::new();
    let _ = conn.read_to_string(&mut body);
    body.lines()
        .filter(|l| l.starts_with("palisade_cache_objects{"))
        .map(|l| l.trim_start_matches("palisade_cache_objects"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `serve --state` on a `kubectl get ns,netpol,pods -A -o json` export.
fn export_bench() {
    let spec =
        std::env::var("PALISADE_SCALE_EXPORT").unwrap_or_else(|_| "10000,100000,50000".into());
    let parts: Vec<usize> = spec
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let [namespaces, policies, pods] = parts[..] else {
        return;
    };
    if namespaces == 0 {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("cluster.json");
    let t = Instant::now();
    let bytes = write_export(&file, namespaces, policies, pods);
    println!(
        "export (kubectl get ns,netpol,pods -A -o json shape): {namespaces} namespaces, {policies} NetworkPolicies, {pods} pods, one List of {:.0} MB, written in {:.1} s",
        bytes as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    println!(
        "rerun: PALISADE_SCALE_SIZES=100 PALISADE_SCALE_EXPORT={namespaces},{policies},{pods} cargo bench --bench scale"
    );
    serve_rss(dir.path());
}
