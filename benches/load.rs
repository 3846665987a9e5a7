//! Load generator: palisade's real HTTPS server against a no-op baseline,
//! in one process, in one run, so the ratio between them shows what
//! palisade's own per-review work costs on this machine.
//!
//! ```text
//! cargo bench --bench load
//! ```
//!
//! Both servers are started in-process on their own tokio runtime (two
//! workers, as the binary has on a two-core node) and share the listener
//! stack: [`listen::serve_https`] with the rustls config of a
//! [`CertReloader`]. palisade is [`serve::start`], exactly what the binary
//! runs, with decisions logged as JSON (to `/dev/null`) and counted. The
//! baseline reads the body and answers a fixed `allowed: true` review. A
//! third server, the floor, also parses the body as JSON and echoes its
//! uid: the least a webhook that reads its input can do, to show which part
//! of the gap to the baseline is palisade's and which any webhook pays.
//!
//! The client speaks HTTP/1.1 over TLS with keep-alive, as the API server
//! does to a webhook behind a Service (kubernetes#82090; HTTP/2 is used only
//! for webhook URLs on localhost). `PALISADE_BENCH_PROTOCOL=h2` measures
//! HTTP/2 over one multiplexed connection instead.
//!
//! Two phases per server, interleaved over several rounds:
//! - closed loop: a fixed number of connections, each sending its next
//!   review as soon as the last answer arrived, for maximum throughput;
//! - open loop: reviews sent on a fixed schedule (default 2,000/s) whatever
//!   the answers do, latency measured from each review's *intended* send
//!   time, so a stall is charged to every review it delayed (no coordinated
//!   omission).
//!
//! Server CPU per review comes from the runtime threads' schedstat: "max"
//! in the closed loop, "rate" in the open loop. Only the latter compares
//! like with like, since a busier stack batches more work per wake-up.
//!
//! Knobs (environment): `PALISADE_BENCH_ROUNDS` (3), `PALISADE_BENCH_SECONDS`
//! (closed-loop window, 5), `PALISADE_BENCH_OPEN_SECONDS` (10),
//! `PALISADE_BENCH_RATE` (2000), `PALISADE_BENCH_CONNECTIONS` (closed loop,
//! 16), `PALISADE_BENCH_OPEN_CONNECTIONS` (32), `PALISADE_BENCH_PROTOCOL`
//! (`h1` or `h2`), `PALISADE_BENCH_ONLY` (`palisade`, `baseline` or
//! `floor`: one server alone, for a profiler), `PALISADE_BENCH_FLOOR_WORK_US`
//! (0: the floor also does this many microseconds of pure CPU work per
//! review, a loop calibrated once on an idle thread, to show what ratio a
//! webhook with that much work of its own can reach on this machine).

#[path = "../tests/common/shared.rs"]
mod shared;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use palisade::certs::{self, CertSpec};
use palisade::cluster::static_dir::StaticCluster;
use palisade::config::Config;
use palisade::manifest::{self, Manifests};
use palisade::serve::{self, Settings};
use palisade::server::listen::{self, ListenLimits};
use palisade::server::routes::BodyLimits;
use palisade::server::tls::CertReloader;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio_rustls::TlsConnector;

/// The binary's allocator, so that palisade here costs what it costs there
/// (the baseline and the client use it too: one process, one allocator).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The Service name the serving certificate is issued for.
const HOST: &str = "palisade.palisade-system.svc";
/// Thread-name prefix of the servers' runtime, to read its CPU time.
const SERVER_THREADS: &str = "bench-server";
/// Load before each measured window: connections opened, caches warm.
const WARMUP: Duration = Duration::from_secs(1);

/// The cluster palisade decides against: a fenced namespace (the one the
/// captured reviews were made in), an open one (no default-deny: pods are
/// denied after a confirming read), a namespace without labels, and the
/// terminating namespace of the namespace-controller capture.
const STATE: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: fx-apps, labels: {environment: prod, palisade.io/proxy: enabled, team: payments}}
---
apiVersion: v1
kind: Namespace
metadata: {name: fx-open, labels: {environment: prod, team: web}}
---
apiVersion: v1
kind: Namespace
metadata: {name: fx-plain}
---
apiVersion: v1
kind: Namespace
metadata: {name: kcm-test, deletionTimestamp: "2026-01-01T00:00:00Z"}
status: {phase: Terminating}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny-all, namespace: fx-apps}
spec: {podSelector: {}, policyTypes: [Ingress, Egress]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: frontend-to-backend, namespace: fx-apps}
spec:
  podSelector: {matchLabels: {app: backend}}
  ingress: [{from: [{podSelector: {matchLabels: {app: frontend}}}], ports: [{port: 8080}]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-dns, namespace: fx-apps}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress: [{to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}}], ports: [{port: 53, protocol: UDP}, {port: 53}]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: ingress-from-gateway, namespace: fx-apps}
spec:
  podSelector: {matchLabels: {app: frontend}}
  ingress: [{from: [{namespaceSelector: {matchLabels: {role: gateway}}}]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny-all, namespace: kcm-test}
spec: {podSelector: {}, policyTypes: [Ingress, Egress]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: fx-open}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{ports: [{port: 80}]}]
"#;

/// What the baseline answers to everything.
const NOOP_REVIEW: &str = r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"00000000-0000-0000-0000-000000000000","allowed":true}}"#;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    H1,
    H2,
}

struct Knobs {
    rounds: usize,
    closed: Duration,
    open: Duration,
    rate: u32,
    closed_conns: usize,
    open_conns: usize,
    protocol: Protocol,
}

impl Knobs {
    fn from_env() -> Self {
        Knobs {
            rounds: env_or("PALISADE_BENCH_ROUNDS", 3usize).max(1),
            closed: Duration::from_secs_f64(env_or("PALISADE_BENCH_SECONDS", 5.0)),
            open: Duration::from_secs_f64(env_or("PALISADE_BENCH_OPEN_SECONDS", 10.0)),
            rate: env_or("PALISADE_BENCH_RATE", 2000u32).max(1),
            closed_conns: env_or("PALISADE_BENCH_CONNECTIONS", 16usize).max(1),
            open_conns: env_or("PALISADE_BENCH_OPEN_CONNECTIONS", 32usize).max(1),
            protocol: match std::env::var("PALISADE_BENCH_PROTOCOL").as_deref() {
                Ok("h2") => Protocol::H2,
                _ => Protocol::H1,
            },
        }
    }
}

/// One review of the mix, ready to send.
struct Review {
    path: &'static str,
    body: Bytes,
}

/// The captured fixtures, compacted as the API server sends them, plus
/// each pod and deployment CREATE moved to the open namespace.
fn load_mix() -> (Vec<Review>, Vec<serde_json::Value>) {
    let dir = shared::shared_fixtures("admission-reviews");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("fixtures directory")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    let mut reviews = Vec::new();
    let mut values = Vec::new();
    for name in names {
        let text = std::fs::read_to_string(dir.join(&name)).expect("fixture");
        let value: serde_json::Value = serde_json::from_str(&text).expect("fixture JSON");
        let path = if name.starts_with("mutating-") {
            "/mutate?timeout=10s"
        } else {
            "/validate?timeout=10s"
        };
        let mut variants = vec![value.clone()];
        let kind = value["request"]["kind"]["kind"].as_str().unwrap_or("");
        if value["request"]["operation"] == "CREATE" && matches!(kind, "Pod" | "Deployment") {
            let mut open = value.clone();
            let r = &mut open["request"];
            r["namespace"] = "fx-open".into();
            if r["object"]["metadata"].is_object() {
                r["object"]["metadata"]["namespace"] = "fx-open".into();
            }
            let uid = format!("{}-open", r["uid"].as_str().unwrap_or(""));
            r["uid"] = uid.into();
            variants.push(open);
        }
        for v in variants {
            reviews.push(Review {
                path,
                body: Bytes::from(serde_json::to_vec(&v).expect("serialize")),
            });
            values.push(v);
        }
    }
    (reviews, values)
}

fn state() -> StaticCluster {
    let mut m = Manifests::default();
    manifest::read_text(Path::new("bench-state.yaml"), STATE, &mut m);
    assert!(m.skipped.is_empty(), "{:?}", m.skipped);
    let mut c = StaticCluster::new();
    c.apply_all(&m).expect("bench state");
    c
}

/// Iterations of [`work`] the floor runs per review
/// (`PALISADE_BENCH_FLOOR_WORK_US`, converted once by [`calibrate_work`]).
static FLOOR_WORK: AtomicU64 = AtomicU64::new(0);

/// Pure CPU work the optimiser cannot remove: no memory traffic, no
/// syscalls, so what it adds under load is the cost of a handler being
/// busy for that long, nothing else.
fn work(iterations: u64) -> u64 {
    let mut x = 0u64;
    for i in 0..iterations {
        x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(i));
    }
    x
}

/// Iterations of [`work`] that take `micros` on this thread, timed before
/// any server runs (the fastest of five tries, so a preempted try does not
/// shrink the work).
fn calibrate_work(micros: f64) -> u64 {
    if micros <= 0.0 {
        return 0;
    }
    const PROBE: u64 = 2_000_000;
    let best = (0..5)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(work(PROBE));
            t.elapsed()
        })
        .min()
        .unwrap_or(Duration::from_millis(1));
    let per_iteration_ns = best.as_nanos().max(1) as f64 / PROBE as f64;
    (micros * 1e3 / per_iteration_ns) as u64
}

/// The least any webhook that reads its input does: check the body is
/// JSON (every byte, as serde_json reads it: nothing kept but the uid) and
/// echo the uid. What palisade pays beyond this is its own decision work;
/// what this pays beyond the baseline, no webhook can avoid.
async fn floor(body: Body) -> Response {
    #[derive(serde::Deserialize)]
    struct Review<'a> {
        #[serde(borrow)]
        request: Request<'a>,
    }
    #[derive(serde::Deserialize)]
    struct Request<'a> {
        #[serde(borrow)]
        uid: std::borrow::Cow<'a, str>,
    }
    let Ok(bytes) = axum::body::to_bytes(body, BodyLimits::default().max_bytes).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let Ok(review) = serde_json::from_slice::<Review<'_>>(&bytes) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    std::hint::black_box(work(FLOOR_WORK.load(Ordering::Relaxed)));
    let answer = serde_json::json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": review.request.uid, "allowed": true},
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        answer.to_string(),
    )
        .into_response()
}

async fn noop(body: Body) -> Response {
    match axum::body::to_bytes(body, BodyLimits::default().max_bytes).await {
        Ok(_) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            NOOP_REVIEW,
        )
            .into_response(),
        Err(_) => StatusCode::BAD_REQUEST.into_response(),
    }
}

#[derive(Clone, Copy)]
struct Target {
    name: &'static str,
    addr: SocketAddr,
}

/// One client connection: HTTP/1.1 (one request at a time) or a handle
/// on a shared HTTP/2 connection.
enum Conn {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

async fn connect(addr: SocketAddr, tls: &TlsConnector, protocol: Protocol) -> Result<Conn, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let name = ServerName::try_from(HOST).map_err(|e| e.to_string())?;
    let stream = tls.connect(name, tcp).await.map_err(|e| e.to_string())?;
    let io = TokioIo::new(stream);
    match protocol {
        Protocol::H1 => {
            let (send, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Ok(Conn::H1(send))
        }
        Protocol::H2 => {
            let (send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Ok(Conn::H2(send))
        }
    }
}

impl Conn {
    /// Sends one review and reads the whole answer; `Err` for anything
    /// but a 200.
    async fn review(&mut self, r: &Review) -> Result<Bytes, String> {
        let builder = hyper::Request::post(match self {
            Conn::H1(_) => r.path.to_owned(),
            Conn::H2(_) => format!("https://{HOST}{}", r.path),
        })
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json, */*")
        .header(header::USER_AGENT, "kube-apiserver-admission");
        let builder = match self {
            Conn::H1(_) => builder.header(header::HOST, HOST),
            Conn::H2(_) => builder,
        };
        let req = builder
            .body(Full::new(r.body.clone()))
            .map_err(|e| e.to_string())?;
        let resp = match self {
            Conn::H1(s) => {
                s.ready().await.map_err(|e| e.to_string())?;
                s.send_request(req).await
            }
            Conn::H2(s) => {
                s.ready().await.map_err(|e| e.to_string())?;
                s.send_request(req).await
            }
        }
        .map_err(|e| e.to_string())?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        if status != StatusCode::OK {
            return Err(format!("HTTP {status}: {}", String::from_utf8_lossy(&body)));
        }
        Ok(body)
    }

    fn clone_h2(&self) -> Option<Conn> {
        match self {
            Conn::H2(s) => Some(Conn::H2(s.clone())),
            Conn::H1(_) => None,
        }
    }
}

/// `n` connections to `addr`: separate ones for HTTP/1.1, handles on one
/// multiplexed connection for HTTP/2.
async fn connections(
    addr: SocketAddr,
    tls: &TlsConnector,
    protocol: Protocol,
    n: usize,
) -> Vec<Conn> {
    let mut out = Vec::with_capacity(n);
    match protocol {
        Protocol::H1 => {
            for _ in 0..n {
                out.push(connect(addr, tls, protocol).await.expect("connect"));
            }
        }
        Protocol::H2 => {
            let first = connect(addr, tls, protocol).await.expect("connect");
            for _ in 1..n {
                out.push(first.clone_h2().expect("h2"));
            }
            out.push(first);
        }
    }
    out
}

/// What one measured phase saw.
#[derive(Default)]
struct Sample {
    completed: u64,
    errors: u64,
    first_error: Option<String>,
    latencies_ns: Vec<u64>,
    window: Duration,
    server_cpu: Duration,
}

impl Sample {
    fn merge(&mut self, other: Sample) {
        self.completed += other.completed;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.latencies_ns.extend(other.latencies_ns);
    }

    fn throughput(&self) -> f64 {
        self.completed as f64 / self.window.as_secs_f64()
    }

    fn cpu_us_per_review(&self) -> f64 {
        self.server_cpu.as_secs_f64() * 1e6 / self.completed.max(1) as f64
    }

    fn percentile_ms(&mut self, p: f64) -> f64 {
        if self.latencies_ns.is_empty() {
            return f64::NAN;
        }
        self.latencies_ns.sort_unstable();
        let rank = ((p / 100.0) * self.latencies_ns.len() as f64).ceil() as usize;
        let i = rank.clamp(1, self.latencies_ns.len()) - 1;
        self.latencies_ns[i] as f64 / 1e6
    }
}

/// CPU time consumed so far by the servers' runtime threads (both servers
/// share one runtime; only one is under load at a time).
fn server_cpu() -> Duration {
    let mut ns = 0u64;
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    for t in tasks.filter_map(|t| t.ok()) {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if !comm.starts_with(SERVER_THREADS) {
            continue;
        }
        // schedstat: nanoseconds on CPU, then waiting, then timeslices.
        let stat = std::fs::read_to_string(t.path().join("schedstat")).unwrap_or_default();
        ns += stat
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Duration::from_nanos(ns)
}

async fn closed_loop(
    target: Target,
    tls: &TlsConnector,
    knobs: &Knobs,
    reviews: &Arc<Vec<Review>>,
) -> Sample {
    let conns = connections(target.addr, tls, knobs.protocol, knobs.closed_conns).await;
    let start = Instant::now();
    let measure_from = start + WARMUP;
    let end = measure_from + knobs.closed;
    let (cpu_tx, cpu_rx) = oneshot::channel();
    // Read the servers' CPU at the window's edges.
    tokio::spawn(async move {
        tokio::time::sleep_until(measure_from.into()).await;
        let a = server_cpu();
        tokio::time::sleep_until(end.into()).await;
        let _ = cpu_tx.send(server_cpu().saturating_sub(a));
    });
    let mut workers = Vec::new();
    for (i, mut conn) in conns.into_iter().enumerate() {
        let reviews = Arc::clone(reviews);
        let tls = tls.clone();
        let protocol = knobs.protocol;
        workers.push(tokio::spawn(async move {
            let mut s = Sample::default();
            // Workers start at different points of the mix.
            let mut next = i * 7;
            loop {
                let sent = Instant::now();
                if sent >= end {
                    break;
                }
                let r = &reviews[next % reviews.len()];
                next += 1;
                let outcome = conn.review(r).await;
                let done = Instant::now();
                let counted = sent >= measure_from && done <= end;
                match outcome {
                    Ok(_) if counted => {
                        s.completed += 1;
                        s.latencies_ns.push((done - sent).as_nanos() as u64);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        if counted {
                            s.errors += 1;
                        }
                        s.first_error.get_or_insert(e);
                        if protocol == Protocol::H1 {
                            match connect(target.addr, &tls, protocol).await {
                                Ok(c) => conn = c,
                                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                            }
                        }
                    }
                }
            }
            s
        }));
    }
    let mut total = Sample::default();
    for w in workers {
        total.merge(w.await.expect("worker"));
    }
    total.window = knobs.closed;
    total.server_cpu = cpu_rx.await.unwrap_or_default();
    total
}

async fn open_loop(
    target: Target,
    tls: &TlsConnector,
    knobs: &Knobs,
    reviews: &Arc<Vec<Review>>,
) -> Sample {
    let conns = connections(target.addr, tls, knobs.protocol, knobs.open_conns).await;
    let interval = Duration::from_secs_f64(1.0 / f64::from(knobs.rate));
    let total_jobs = ((WARMUP + knobs.open).as_secs_f64() * f64::from(knobs.rate)) as u64;
    let warmup_jobs = (WARMUP.as_secs_f64() * f64::from(knobs.rate)) as u64;
    let (tx, rx) = mpsc::unbounded_channel::<(Instant, u64)>();
    let rx = Arc::new(Mutex::new(rx));
    let start = Instant::now() + Duration::from_millis(20);
    // The pacer is an OS thread with 1 ns timer slack: tokio's timer has
    // millisecond resolution, far coarser than a 500 µs send interval.
    let pacer = std::thread::spawn(move || {
        // SAFETY: prctl(PR_SET_TIMERSLACK) only changes this thread's timer
        // slack; it takes no pointers.
        unsafe {
            libc::prctl(libc::PR_SET_TIMERSLACK, 1, 0, 0, 0);
        }
        for i in 0..total_jobs {
            let intended = start + interval.mul_f64(i as f64);
            let now = Instant::now();
            if intended > now {
                std::thread::sleep(intended - now);
            }
            if tx.send((intended, i)).is_err() {
                return;
            }
        }
    });
    let measure_from_cpu = start + WARMUP;
    let end = start + WARMUP + knobs.open;
    let (cpu_tx, cpu_rx) = oneshot::channel();
    tokio::spawn(async move {
        tokio::time::sleep_until(measure_from_cpu.into()).await;
        let a = server_cpu();
        tokio::time::sleep_until(end.into()).await;
        let _ = cpu_tx.send(server_cpu().saturating_sub(a));
    });
    let mut workers = Vec::new();
    for mut conn in conns {
        let reviews = Arc::clone(reviews);
        let rx = Arc::clone(&rx);
        let tls = tls.clone();
        let protocol = knobs.protocol;
        workers.push(tokio::spawn(async move {
            let mut s = Sample::default();
            loop {
                let job = rx.lock().await.recv().await;
                let Some((intended, i)) = job else { break };
                let r = &reviews[(i as usize) % reviews.len()];
                let outcome = conn.review(r).await;
                let done = Instant::now();
                let counted = i >= warmup_jobs;
                match outcome {
                    Ok(_) if counted => {
                        s.completed += 1;
                        s.latencies_ns.push((done - intended).as_nanos() as u64);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        if counted {
                            s.errors += 1;
                        }
                        s.first_error.get_or_insert(e);
                        if protocol == Protocol::H1
                            && let Ok(c) = connect(target.addr, &tls, protocol).await
                        {
                            conn = c;
                        }
                    }
                }
            }
            s
        }));
    }
    let mut total = Sample::default();
    for w in workers {
        total.merge(w.await.expect("worker"));
    }
    pacer.join().expect("pacer");
    total.window = knobs.open;
    total.server_cpu = cpu_rx.await.unwrap_or_default();
    total
}

/// Sends every review of the mix once to palisade and checks each answer
/// is a well-formed review with the request's uid; returns a tally of
/// what was decided, to print the mix.
async fn preflight(
    target: Target,
    tls: &TlsConnector,
    protocol: Protocol,
    reviews: &[Review],
    values: &[serde_json::Value],
) -> BTreeMap<String, usize> {
    let mut conn = connect(target.addr, tls, protocol)
        .await
        .expect("connect for preflight");
    let mut tally = BTreeMap::new();
    for (r, v) in reviews.iter().zip(values) {
        let body = conn.review(r).await.expect("preflight review");
        let out: serde_json::Value = serde_json::from_slice(&body).expect("response JSON");
        assert_eq!(out["kind"], "AdmissionReview");
        assert_eq!(out["response"]["uid"], v["request"]["uid"], "uid echoed");
        let resp = &out["response"];
        let decision = if resp["allowed"] == false {
            "denied"
        } else if resp.get("patch").is_some() {
            "patched"
        } else {
            "allowed"
        };
        let key = format!(
            "{:<8} {:<13} {:<6} {decision}",
            r.path
                .trim_start_matches('/')
                .split('?')
                .next()
                .unwrap_or(""),
            v["request"]["kind"]["kind"].as_str().unwrap_or(""),
            v["request"]["operation"].as_str().unwrap_or(""),
        );
        *tally.entry(key).or_insert(0) += 1;
    }
    tally
}

/// palisade's own work per review, stage by stage, on one thread with no
/// network: where the difference to the baseline goes.
fn stage_costs(reviews: &[Review], cluster: &StaticCluster) {
    use palisade::admit::{self, Webhook};
    use palisade::server::metrics::Metrics;
    let config = Config::embedded().expect("config");
    let metrics = Metrics::new();
    let rounds = 200;
    let mut t = [Duration::ZERO; 5];
    for _ in 0..rounds {
        for r in reviews {
            let webhook = if r.path.starts_with("/mutate") {
                Webhook::Mutate
            } else {
                Webhook::Validate
            };
            let a = Instant::now();
            let req = palisade::review::parse(&r.body).expect("review");
            let b = Instant::now();
            let (verdict, confirmation) =
                futures::executor::block_on(admit::admit(&config, cluster, webhook, &req));
            let c = Instant::now();
            let out = palisade::review::respond(&req.uid, &verdict, webhook == Webhook::Mutate);
            let d = Instant::now();
            metrics.record(webhook, &req, &verdict, confirmation, 0.0);
            palisade::server::log::decision(webhook, &req, &verdict, confirmation, d - b);
            let e = Instant::now();
            drop((req, verdict, out));
            let f = Instant::now();
            for (i, span) in [b - a, c - b, d - c, e - d, f - e].into_iter().enumerate() {
                t[i] += span;
            }
        }
    }
    let n = (rounds * reviews.len()) as f64;
    let us = |d: Duration| d.as_secs_f64() * 1e6 / n;
    println!(
        "palisade's work per review, one thread, no network (mean over the mix): parse {:.1} µs, decide {:.1} µs, respond {:.1} µs, log + metrics {:.1} µs, free {:.1} µs; total {:.1} µs",
        us(t[0]),
        us(t[1]),
        us(t[2]),
        us(t[3]),
        us(t[4]),
        us(t.iter().sum()),
    );
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

#[derive(Default)]
struct Results {
    throughput: Vec<f64>,
    cpu_closed: Vec<f64>,
    cpu_open: Vec<f64>,
    p50: Vec<f64>,
    p99: Vec<f64>,
    p999: Vec<f64>,
    errors: u64,
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let knobs = Knobs::from_env();
    // Decisions are formatted and queued as the binary does it (JSON, info,
    // the same writer thread) and written where they clutter nothing.
    let devnull = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .expect("/dev/null");
    let _log = palisade::server::log::init_with_writer(devnull, false);

    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "palisade load bench: {cores} cores, load average {} at start; protocol {}; {} rounds; closed loop {} connections x {:?}; open loop {}/s x {:?} over {} connections",
        load_average(),
        match knobs.protocol {
            Protocol::H1 => "HTTP/1.1",
            Protocol::H2 => "HTTP/2",
        },
        knobs.rounds,
        knobs.closed_conns,
        knobs.closed,
        knobs.rate,
        knobs.open,
        knobs.open_conns,
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let bundle = certs::generate(&CertSpec {
        service: "palisade".into(),
        namespace: "palisade-system".into(),
        dns: vec![],
        ips: vec![],
        validity_days: 1,
    })
    .expect("certificates");
    bundle.write_to(dir.path()).expect("write certificates");
    let cert = dir.path().join(certs::CERT_FILE);
    let key = dir.path().join(certs::KEY_FILE);

    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(SERVER_THREADS)
        .enable_all()
        .build()
        .expect("server runtime");
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bench-client")
        .enable_all()
        .build()
        .expect("client runtime");

    let floor_work_us: f64 = env_or("PALISADE_BENCH_FLOOR_WORK_US", 0.0);
    FLOOR_WORK.store(calibrate_work(floor_work_us), Ordering::Relaxed);
    let floor_says = if floor_work_us > 0.0 {
        let says = format!("reading the JSON plus {floor_work_us} µs of pure CPU work");
        println!(
            "floor: {says} ({} loop iterations per review)",
            FLOOR_WORK.load(Ordering::Relaxed)
        );
        says
    } else {
        "reading the JSON, nothing else".to_owned()
    };
    let local: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let palisade_server = server_rt
        .block_on(serve::start(Settings {
            config: Arc::new(Config::embedded().expect("config")),
            cluster: Arc::new(state()),
            listen: local,
            metrics_listen: local,
            tls: serve::TlsSource::Files {
                cert: cert.clone(),
                key: key.clone(),
            },
            limits: ListenLimits::default(),
            body: BodyLimits::default(),
            generating: None,
        }))
        .expect("palisade starts");
    let (stop_others, stopped) = tokio::sync::watch::channel(());
    let other = |app: Router| {
        let mut stopped = stopped.clone();
        server_rt.block_on(async {
            let reloader = CertReloader::load(&cert, &key).expect("certificates");
            let tls = reloader.server_config().expect("server config");
            let listener = tokio::net::TcpListener::bind(local).await.expect("bind");
            let addr = listener.local_addr().expect("addr");
            tokio::spawn(listen::serve_https(
                listener,
                tls,
                app,
                ListenLimits::default(),
                async move {
                    let _ = stopped.changed().await;
                },
            ));
            addr
        })
    };
    let baseline_addr = other(
        Router::new()
            .route("/validate", post(noop))
            .route("/mutate", post(noop)),
    );
    let floor_addr = other(
        Router::new()
            .route("/validate", post(floor))
            .route("/mutate", post(floor)),
    );
    let targets = [
        Target {
            name: "baseline",
            addr: baseline_addr,
        },
        Target {
            name: "palisade",
            addr: palisade_server.https_addr,
        },
        Target {
            name: "floor",
            addr: floor_addr,
        },
    ];

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(bundle.ca_pem.as_bytes()).expect("CA"))
        .expect("CA");
    let mut client_tls = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    client_tls.alpn_protocols = match knobs.protocol {
        Protocol::H1 => vec![b"http/1.1".to_vec()],
        Protocol::H2 => vec![b"h2".to_vec()],
    };
    let tls = TlsConnector::from(Arc::new(client_tls));

    let (reviews, values) = load_mix();
    let tally = client_rt.block_on(preflight(
        targets[1],
        &tls,
        knobs.protocol,
        &reviews,
        &values,
    ));
    let bytes: usize = reviews.iter().map(|r| r.body.len()).sum();
    println!(
        "mix: {} reviews ({} captured fixtures + pod/deployment CREATEs moved to an open namespace), mean body {} bytes; palisade answered (webhook kind operation decision: count):",
        reviews.len(),
        values
            .iter()
            .filter(|v| !v["request"]["uid"]
                .as_str()
                .unwrap_or("")
                .ends_with("-open"))
            .count(),
        bytes / reviews.len()
    );
    for (k, n) in &tally {
        println!("  {k}: {n}");
    }
    stage_costs(&reviews, &state());
    let reviews = Arc::new(reviews);

    let mut results: [Results; 3] = Default::default();
    // Profiling one server alone: PALISADE_BENCH_ONLY=palisade (or baseline, floor).
    let only = std::env::var("PALISADE_BENCH_ONLY").ok();
    let skip = |t: &Target| only.as_deref().is_some_and(|o| o != t.name);
    for round in 1..=knobs.rounds {
        for (t, res) in targets.iter().zip(results.iter_mut()) {
            if skip(t) {
                continue;
            }
            let s = client_rt.block_on(closed_loop(*t, &tls, &knobs, &reviews));
            println!(
                "round {round} closed {:<8} {:>8.0} reviews/s  server CPU {:>6.1} µs/review  errors {}{}",
                t.name,
                s.throughput(),
                s.cpu_us_per_review(),
                s.errors,
                s.first_error
                    .as_deref()
                    .map(|e| format!(" (first: {e})"))
                    .unwrap_or_default()
            );
            res.throughput.push(s.throughput());
            res.cpu_closed.push(s.cpu_us_per_review());
            res.errors += s.errors;
        }
        for (t, res) in targets.iter().zip(results.iter_mut()) {
            if skip(t) || knobs.open.is_zero() {
                continue;
            }
            let mut s = client_rt.block_on(open_loop(*t, &tls, &knobs, &reviews));
            let (p50, p99, p999) = (
                s.percentile_ms(50.0),
                s.percentile_ms(99.0),
                s.percentile_ms(99.9),
            );
            let max = s.percentile_ms(100.0);
            println!(
                "round {round} open   {:<8} {:>8.0} reviews/s  p50 {p50:.3} ms  p99 {p99:.3} ms  p99.9 {p999:.3} ms  max {max:.3} ms  server CPU {:>6.1} µs/review  errors {}{}",
                t.name,
                s.throughput(),
                s.cpu_us_per_review(),
                s.errors,
                s.first_error
                    .as_deref()
                    .map(|e| format!(" (first: {e})"))
                    .unwrap_or_default()
            );
            res.cpu_open.push(s.cpu_us_per_review());
            res.p50.push(p50);
            res.p99.push(p99);
            res.p999.push(p999);
            res.errors += s.errors;
        }
    }

    if only.is_some() {
        palisade_server.shutdown();
        return;
    }
    if knobs.open.is_zero() {
        // Closed loop only (PALISADE_BENCH_OPEN_SECONDS=0): the quick way
        // to trace throughput against PALISADE_BENCH_FLOOR_WORK_US.
        let tput: Vec<f64> = results
            .iter()
            .map(|r| median(r.throughput.clone()))
            .collect();
        println!(
            "\nsummary, closed loop only (median of {} rounds): max reviews/s baseline {:.0}, palisade {:.0} ({:.2}), floor {:.0} ({:.2}; {floor_says})",
            knobs.rounds,
            tput[0],
            tput[1],
            tput[1] / tput[0],
            tput[2],
            tput[2] / tput[0],
        );
        palisade_server.shutdown();
        return;
    }
    println!();
    println!(
        "summary (median of {} rounds; load average {} at end):",
        knobs.rounds,
        load_average()
    );
    println!(
        "  {:<9} {:>10} {:>11} {:>11} {:>8} {:>8} {:>9} {:>7}",
        "server",
        "max rev/s",
        "CPU µs max",
        "CPU µs rate",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "errors"
    );
    let mut med = Vec::new();
    for (t, r) in targets.iter().zip(&results) {
        let m = (
            median(r.throughput.clone()),
            median(r.cpu_closed.clone()),
            median(r.p50.clone()),
            median(r.p99.clone()),
            median(r.p999.clone()),
            median(r.cpu_open.clone()),
        );
        println!(
            "  {:<9} {:>10.0} {:>11.1} {:>11.1} {:>8.3} {:>8.3} {:>9.3} {:>7}",
            t.name, m.0, m.1, m.5, m.2, m.3, m.4, r.errors
        );
        med.push(m);
    }
    let (b, p, f) = (med[0], med[1], med[2]);
    let tput = p.0 / b.0;
    let p99 = p.3 / b.3;
    println!(
        "  ratio palisade/baseline: max throughput {tput:.2} (target >= 0.80: {}), p99 at {}/s {p99:.2} (target <= 1.25: {}), p50 {:.2}, p99.9 {:.2}",
        if tput >= 0.8 { "met" } else { "MISSED" },
        knobs.rate,
        if p99 <= 1.25 { "met" } else { "MISSED" },
        p.2 / b.2,
        p.4 / b.4,
    );
    // Per-review CPU of the same stack depends on the rate (batching), so
    // the two servers are compared where they serve the same rate.
    println!(
        "  server CPU per review at {}/s: palisade {:.1} µs, baseline {:.1} µs: palisade's own work costs {:.1} µs per review under load",
        knobs.rate,
        p.5,
        b.5,
        p.5 - b.5
    );

    println!(
        "  ratio floor/baseline ({floor_says}): max throughput {:.2}, p99 at {}/s {:.2}, server CPU per review at {}/s {:.1} µs more than the baseline",
        f.0 / b.0,
        knobs.rate,
        f.3 / b.3,
        knobs.rate,
        f.5 - b.5
    );

    palisade_server.shutdown();
    let _ = stop_others.send(());
    let _ = server_rt.block_on(palisade_server.wait());
}
