//! Load generator: palisade's real HTTPS server against two no-op
//! webhooks on the same listener stack, each driven over loopback TLS by a
//! load generator that runs in a process of its own.
//!
//! ```text
//! cargo bench --bench load
//! ```
//!
//! The three servers run in this process, on one tokio runtime with two
//! workers (as the binary has on a two-core node), behind the same
//! listener stack: [`listen::serve_https`] with the rustls config of a
//! [`CertReloader`].
//! - **palisade** is [`serve::start`], exactly what the binary runs, with
//!   decisions logged as JSON (to `/dev/null`, through the binary's queue
//!   and writer thread) and counted.
//! - **floor**: a no-op webhook that does what every webhook must, parse
//!   the review (every byte, as serde_json checks it) and echo its uid.
//!   The ratio targets compare palisade with it: what palisade pays beyond
//!   it is palisade's own work; what it pays beyond the baseline, no
//!   webhook that reads its input can avoid.
//! - **baseline**: reads the body and answers a fixed `allowed: true`
//!   review without parsing it (not a valid webhook: the uid is not
//!   echoed), printed beside the floor as the cost of the stack alone.
//!
//! The load generator is this bench re-executed in client mode
//! (`PALISADE_BENCH_CLIENT`, set by the bench itself), one process per
//! measured phase. So this process's CPU clock, read at the edges of each
//! measured window, is the servers' CPU alone (palisade's log writer
//! thread included); the generator reports its own CPU beside it. Both
//! still share the machine's cores.
//!
//! The client speaks HTTP/1.1 over TLS with keep-alive, as the API server
//! does to a webhook behind a Service (kubernetes#82090; HTTP/2 is used only
//! for webhook URLs on localhost). `PALISADE_BENCH_PROTOCOL=h2` measures
//! HTTP/2 over one multiplexed connection instead.
//!
//! Two phases per server, the servers taken in turn (the order rotates
//! every round) over several rounds:
//! - closed loop: a fixed number of connections, each sending its next
//!   review as soon as the last answer arrived, for maximum throughput;
//! - open loop: reviews sent on a fixed schedule (default 2,000/s) whatever
//!   the answers do, latency measured from each review's *intended* send
//!   time, so a stall is charged to every review it delayed (no coordinated
//!   omission).
//!
//! Every figure is reported as its median over the rounds with the
//! spread (min-max), and every ratio as the median of the per-round ratios
//! (servers compared within the same round) with its spread: a single
//! round's p99 on a shared machine moves by 3x on its own. Server CPU per
//! review is read at maximum throughput and at the fixed rate; only the
//! latter compares like with like, since a busier stack batches more work
//! per wake-up.
//!
//! Knobs (environment): `PALISADE_BENCH_ROUNDS` (5), `PALISADE_BENCH_SECONDS`
//! (closed-loop window, 5), `PALISADE_BENCH_OPEN_SECONDS` (10; 0 skips the
//! open loop), `PALISADE_BENCH_RATE` (2000), `PALISADE_BENCH_CONNECTIONS`
//! (closed loop, 16), `PALISADE_BENCH_OPEN_CONNECTIONS` (32),
//! `PALISADE_BENCH_PROTOCOL` (`h1` or `h2`), `PALISADE_BENCH_ONLY`
//! (`palisade`, `floor` or `baseline`: one server alone, for a profiler
//! attached to this process), `PALISADE_BENCH_FLOOR_WORK_US` (0: the floor
//! also does this many microseconds of pure CPU work per review, a loop
//! calibrated once on an idle thread, to show what ratio a webhook with
//! that much work of its own can reach on this machine; the palisade/floor
//! ratio is then no longer the target's). A value that does not parse is an
//! error, not a silent default. The bench prints the command that reruns it
//! with the knobs it ran with.

#[path = "../tests/common/shared.rs"]
mod shared;

use std::collections::BTreeMap;
use std::fmt;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
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
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio::sync::{Mutex, mpsc};
use tokio_rustls::TlsConnector;

/// The binary's allocator, so that palisade here costs what it costs there
/// (the other servers and the load generator use it too: one binary, one
/// allocator).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The Service name the serving certificate is issued for.
const HOST: &str = "palisade.palisade-system.svc";
/// Load before each measured window: connections opened, caches warm.
const WARMUP: Duration = Duration::from_secs(1);
/// Set (to a [`ClientJob`] as JSON) when this bench runs as the load
/// generator.
const CLIENT_ENV: &str = "PALISADE_BENCH_CLIENT";
/// The load generator's stdout lines: its measured window starts, ends,
/// and what it saw (then [`PhaseReport`] as JSON).
const WINDOW_START: &str = "window-start";
const WINDOW_END: &str = "window-end";
const REPORT: &str = "report ";

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

/// The knob `name`, or `default` when it is not set; a value that does not
/// parse stops the bench rather than measuring something else than asked.
fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Err(_) => default,
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} does not parse")),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    H1,
    H2,
}

/// The bench's knobs, read the same way by the server process and by each
/// load generator it starts (they inherit its environment).
struct Knobs {
    rounds: usize,
    closed: Duration,
    open: Duration,
    rate: u32,
    closed_conns: usize,
    open_conns: usize,
    protocol: Protocol,
    floor_work_us: f64,
    only: Option<String>,
}

impl Knobs {
    fn from_env() -> Self {
        let only = std::env::var("PALISADE_BENCH_ONLY").ok();
        if let Some(o) = &only {
            assert!(
                SERVERS.contains(&o.as_str()),
                "PALISADE_BENCH_ONLY={o:?}: one of {SERVERS:?}"
            );
        }
        Knobs {
            rounds: env_or("PALISADE_BENCH_ROUNDS", 5usize).max(1),
            closed: Duration::from_secs_f64(env_or("PALISADE_BENCH_SECONDS", 5.0f64).max(0.1)),
            open: Duration::from_secs_f64(env_or("PALISADE_BENCH_OPEN_SECONDS", 10.0f64).max(0.0)),
            rate: env_or("PALISADE_BENCH_RATE", 2000u32).max(1),
            closed_conns: env_or("PALISADE_BENCH_CONNECTIONS", 16usize).max(1),
            open_conns: env_or("PALISADE_BENCH_OPEN_CONNECTIONS", 32usize).max(1),
            protocol: match std::env::var("PALISADE_BENCH_PROTOCOL").as_deref() {
                Err(_) | Ok("h1") => Protocol::H1,
                Ok("h2") => Protocol::H2,
                Ok(other) => panic!("PALISADE_BENCH_PROTOCOL={other:?}: h1 or h2"),
            },
            floor_work_us: env_or("PALISADE_BENCH_FLOOR_WORK_US", 0.0f64).max(0.0),
            only,
        }
    }

    /// The command that reruns this bench with these knobs.
    fn rerun(&self) -> String {
        let mut cmd = format!(
            "PALISADE_BENCH_ROUNDS={} PALISADE_BENCH_SECONDS={} PALISADE_BENCH_OPEN_SECONDS={} PALISADE_BENCH_RATE={} PALISADE_BENCH_CONNECTIONS={} PALISADE_BENCH_OPEN_CONNECTIONS={} PALISADE_BENCH_PROTOCOL={}",
            self.rounds,
            self.closed.as_secs_f64(),
            self.open.as_secs_f64(),
            self.rate,
            self.closed_conns,
            self.open_conns,
            match self.protocol {
                Protocol::H1 => "h1",
                Protocol::H2 => "h2",
            },
        );
        if self.floor_work_us > 0.0 {
            cmd += &format!(" PALISADE_BENCH_FLOOR_WORK_US={}", self.floor_work_us);
        }
        if let Some(o) = &self.only {
            cmd += &format!(" PALISADE_BENCH_ONLY={o}");
        }
        cmd + " cargo bench --bench load"
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

/// The baseline: reads the body and answers without parsing it, the cost
/// of the listener stack alone.
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

/// What a load generator process is asked to do.
#[derive(Debug, Serialize, Deserialize)]
struct ClientJob {
    phase: Phase,
    addr: SocketAddr,
    /// The CA that issued the servers' certificate, as PEM.
    ca: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Phase {
    /// Every review of the mix once, each answer checked.
    Preflight,
    /// Maximum throughput.
    Closed,
    /// The fixed rate.
    Open,
}

/// What a load generator saw, sent to the server process as JSON.
#[derive(Debug, Default, Serialize, Deserialize)]
struct PhaseReport {
    completed: u64,
    errors: u64,
    first_error: Option<String>,
    /// The measured window, seconds.
    window_s: f64,
    /// The load generator's own CPU time over the window, seconds.
    client_cpu_s: f64,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    p999_ms: Option<f64>,
    max_ms: Option<f64>,
    /// Preflight only: `webhook kind operation decision` -> count.
    tally: BTreeMap<String, usize>,
}

/// CPU time of this whole process so far, every thread, those that have
/// exited included.
fn process_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a pointer to a
    // live, writable one.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_PROCESS_CPUTIME_ID)");
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}

/// Tells the server process, on stdout, where the measured window starts
/// and ends (it reads its own CPU clock at each line); returns this
/// process's CPU time over the same window.
fn mark_window(from: Instant, end: Instant) -> std::thread::JoinHandle<Duration> {
    std::thread::spawn(move || {
        sleep_until(from);
        let a = process_cpu();
        println!("{WINDOW_START}");
        sleep_until(end);
        let b = process_cpu();
        println!("{WINDOW_END}");
        b.saturating_sub(a)
    })
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

/// What one measured phase saw, in the load generator.
#[derive(Default)]
struct Sample {
    completed: u64,
    errors: u64,
    first_error: Option<String>,
    latencies_ns: Vec<u64>,
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

    fn percentile_ms(&self, p: f64) -> Option<f64> {
        if self.latencies_ns.is_empty() {
            return None;
        }
        let rank = ((p / 100.0) * self.latencies_ns.len() as f64).ceil() as usize;
        let i = rank.clamp(1, self.latencies_ns.len()) - 1;
        Some(self.latencies_ns[i] as f64 / 1e6)
    }

    fn report(mut self, window: Duration, client_cpu: Duration) -> PhaseReport {
        self.latencies_ns.sort_unstable();
        PhaseReport {
            completed: self.completed,
            errors: self.errors,
            window_s: window.as_secs_f64(),
            client_cpu_s: client_cpu.as_secs_f64(),
            p50_ms: self.percentile_ms(50.0),
            p99_ms: self.percentile_ms(99.0),
            p999_ms: self.percentile_ms(99.9),
            max_ms: self.percentile_ms(100.0),
            first_error: self.first_error,
            tally: BTreeMap::new(),
        }
    }
}

async fn closed_loop(
    addr: SocketAddr,
    tls: &TlsConnector,
    knobs: &Knobs,
    reviews: &Arc<Vec<Review>>,
) -> PhaseReport {
    let conns = connections(addr, tls, knobs.protocol, knobs.closed_conns).await;
    let start = Instant::now();
    let measure_from = start + WARMUP;
    let end = measure_from + knobs.closed;
    let window = mark_window(measure_from, end);
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
                            match connect(addr, &tls, protocol).await {
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
    let client_cpu = window.join().expect("window marker");
    total.report(knobs.closed, client_cpu)
}

async fn open_loop(
    addr: SocketAddr,
    tls: &TlsConnector,
    knobs: &Knobs,
    reviews: &Arc<Vec<Review>>,
) -> PhaseReport {
    let conns = connections(addr, tls, knobs.protocol, knobs.open_conns).await;
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
            sleep_until(intended);
            if tx.send((intended, i)).is_err() {
                return;
            }
        }
    });
    let window = mark_window(start + WARMUP, start + WARMUP + knobs.open);
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
                            && let Ok(c) = connect(addr, &tls, protocol).await
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
    let client_cpu = window.join().expect("window marker");
    total.report(knobs.open, client_cpu)
}

/// Sends every review of the mix once and checks each answer is a
/// well-formed review with the request's uid; tallies what was decided.
async fn preflight(
    addr: SocketAddr,
    tls: &TlsConnector,
    protocol: Protocol,
    reviews: &[Review],
    values: &[serde_json::Value],
) -> PhaseReport {
    let mut conn = connect(addr, tls, protocol)
        .await
        .expect("connect for preflight");
    let mut report = PhaseReport::default();
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
        *report.tally.entry(key).or_insert(0) += 1;
        report.completed += 1;
    }
    report
}

/// The load generator: runs one job against one server and prints its
/// report on stdout for the server process.
fn client_main(spec: &str) {
    let job: ClientJob = serde_json::from_str(spec).expect("the load generator's job");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let knobs = Knobs::from_env();
    let ca = std::fs::read(&job.ca).expect("the CA file");
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(&ca).expect("CA"))
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
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bench-client")
        .enable_all()
        .build()
        .expect("client runtime");
    let report = match job.phase {
        Phase::Preflight => {
            rt.block_on(preflight(job.addr, &tls, knobs.protocol, &reviews, &values))
        }
        Phase::Closed => rt.block_on(closed_loop(job.addr, &tls, &knobs, &Arc::new(reviews))),
        Phase::Open => rt.block_on(open_loop(job.addr, &tls, &knobs, &Arc::new(reviews))),
    };
    println!(
        "{REPORT}{}",
        serde_json::to_string(&report).expect("report JSON")
    );
}

/// The servers, in the order of the summary's columns.
const SERVERS: [&str; 3] = ["palisade", "floor", "baseline"];
const PALISADE: usize = 0;
const FLOOR: usize = 1;
const BASELINE: usize = 2;

/// Runs one load generator process for `job` and reads this process's CPU
/// clock at the edges of the window it measures: the servers' CPU there.
fn run_client(job: &ClientJob) -> Measured {
    let exe = std::env::current_exe().expect("own path");
    let mut child = Command::new(exe)
        .env(CLIENT_ENV, serde_json::to_string(job).expect("job JSON"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the load generator");
    let out = child.stdout.take().expect("piped stdout");
    let (mut from, mut server_cpu, mut report) = (None, None, None);
    for line in BufReader::new(out).lines() {
        let line = line.expect("read the load generator");
        if line == WINDOW_START {
            from = Some(process_cpu());
        } else if line == WINDOW_END {
            server_cpu = from.map(|a| process_cpu().saturating_sub(a));
        } else if let Some(json) = line.strip_prefix(REPORT) {
            report = Some(serde_json::from_str::<PhaseReport>(json).expect("report"));
        } else {
            println!("  load generator: {line}");
        }
    }
    let status = child.wait().expect("wait for the load generator");
    assert!(status.success(), "load generator for {job:?}: {status}");
    let server_cpu = match job.phase {
        Phase::Preflight => Duration::ZERO,
        Phase::Closed | Phase::Open => server_cpu.expect("the load generator's window"),
    };
    Measured {
        report: report.expect("the load generator's report"),
        server_cpu,
    }
}

/// One phase against one server, as both processes saw it.
struct Measured {
    report: PhaseReport,
    server_cpu: Duration,
}

impl Measured {
    fn throughput(&self) -> f64 {
        self.report.completed as f64 / self.report.window_s
    }

    fn server_us(&self) -> f64 {
        self.server_cpu.as_secs_f64() * 1e6 / self.report.completed.max(1) as f64
    }

    fn client_us(&self) -> f64 {
        self.report.client_cpu_s * 1e6 / self.report.completed.max(1) as f64
    }

    fn errors(&self) -> String {
        format!(
            "errors {}{}",
            self.report.errors,
            self.report
                .first_error
                .as_deref()
                .map(|e| format!(" (first: {e})"))
                .unwrap_or_default()
        )
    }
}

/// One server's figures in one round (`None` for a phase not run).
#[derive(Default, Clone, Copy)]
struct Figures {
    max_rps: Option<f64>,
    server_us_max: Option<f64>,
    client_us_max: Option<f64>,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    p999_ms: Option<f64>,
    server_us_rate: Option<f64>,
    client_us_rate: Option<f64>,
}

/// A figure over the rounds: its median and its range.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Spread {
    median: f64,
    min: f64,
    max: f64,
}

impl Spread {
    /// `None` for no values; the median of an even count is the mean of
    /// the middle two.
    fn of(values: &[f64]) -> Option<Spread> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: v[0],
            max: v[n - 1],
        })
    }
}

/// `median [min-max]`, at the formatter's precision (2 by default); the
/// median alone for one value.
impl fmt::Display for Spread {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = f.precision().unwrap_or(2);
        if self.min == self.max {
            write!(f, "{:.p$}", self.median)
        } else {
            write!(f, "{:.p$} [{:.p$}-{:.p$}]", self.median, self.min, self.max)
        }
    }
}

/// Where a figure is read from one server's round.
type Getter = fn(&Figures) -> Option<f64>;

/// The figures of the per-server table: label, precision, where read.
fn server_rows(rate: u32) -> [(String, usize, Getter); 8] {
    let at = |what: &str| format!("at {rate}/s: {what}");
    [
        ("max reviews/s".to_owned(), 0, |f| f.max_rps),
        ("at max: server CPU µs/review".to_owned(), 1, |f| {
            f.server_us_max
        }),
        ("at max: load generator CPU µs/review".to_owned(), 1, |f| {
            f.client_us_max
        }),
        (at("p50 ms"), 3, |f| f.p50_ms),
        (at("p99 ms"), 3, |f| f.p99_ms),
        (at("p99.9 ms"), 3, |f| f.p999_ms),
        (at("server CPU µs/review"), 1, |f| f.server_us_rate),
        (at("load generator CPU µs/review"), 1, |f| f.client_us_rate),
    ]
}

/// `a`'s figure over `b`'s, round by round, where both were measured.
fn ratios(results: &[[Figures; 3]], a: usize, b: usize, get: Getter) -> Option<Spread> {
    let per_round: Vec<f64> = results
        .iter()
        .filter_map(|r| Some(get(&r[a])? / get(&r[b])?))
        .collect();
    Spread::of(&per_round)
}

fn cell(s: Option<Spread>, precision: usize) -> String {
    s.map_or_else(|| "-".to_owned(), |s| format!("{s:.precision$}"))
}

/// Prints a table, leaving out the rows with nothing measured.
fn table(columns: &[&str], rows: Vec<(String, Vec<String>)>) {
    const LABEL: usize = 38;
    const CELL: usize = 23;
    print!("  {:LABEL$}", "");
    for c in columns {
        print!(" {c:>CELL$}");
    }
    println!();
    for (label, cells) in rows {
        if cells.iter().all(|c| c == "-") {
            continue;
        }
        print!("  {label:<LABEL$}");
        for c in cells {
            print!(" {c:>CELL$}");
        }
        println!();
    }
}

/// The summary: every figure per server, the ratios, the verdicts.
fn summarize(knobs: &Knobs, results: &[[Figures; 3]], errors: &[u64; 3], floor_says: &str) {
    let rate = knobs.rate;
    let servers: Vec<usize> = (0..SERVERS.len())
        .filter(|&s| knobs.only.as_deref().is_none_or(|o| o == SERVERS[s]))
        .collect();
    println!();
    println!(
        "summary: median over {} round{} [min-max across rounds]; load average {} at end",
        results.len(),
        if results.len() == 1 { "" } else { "s" },
        load_average()
    );
    let columns: Vec<&str> = servers.iter().map(|&s| SERVERS[s]).collect();
    let mut rows: Vec<(String, Vec<String>)> = server_rows(rate)
        .into_iter()
        .map(|(label, p, get)| {
            let cells = servers
                .iter()
                .map(|&s| {
                    let v: Vec<f64> = results.iter().filter_map(|r| get(&r[s])).collect();
                    cell(Spread::of(&v), p)
                })
                .collect();
            (label, cells)
        })
        .collect();
    rows.push((
        "errors".to_owned(),
        servers.iter().map(|&s| errors[s].to_string()).collect(),
    ));
    table(&columns, rows);
    if servers.len() < SERVERS.len() {
        println!("one server only (PALISADE_BENCH_ONLY): no ratios");
        return;
    }

    let pairs = [
        (PALISADE, FLOOR, "palisade/floor"),
        (PALISADE, BASELINE, "palisade/baseline"),
        (FLOOR, BASELINE, "floor/baseline"),
    ];
    let ratio_rows: [(String, Getter); 5] = [
        ("max throughput".into(), |f| f.max_rps),
        (format!("p99 at {rate}/s"), |f| f.p99_ms),
        (format!("server CPU per review at {rate}/s"), |f| {
            f.server_us_rate
        }),
        (format!("p50 at {rate}/s"), |f| f.p50_ms),
        (format!("p99.9 at {rate}/s"), |f| f.p999_ms),
    ];
    println!("ratios: median of the per-round ratios [min-max]");
    table(
        &pairs.map(|(_, _, name)| name),
        ratio_rows
            .into_iter()
            .map(|(label, get)| {
                let cells = pairs
                    .iter()
                    .map(|&(a, b, _)| cell(ratios(results, a, b, get), 2))
                    .collect();
                (label, cells)
            })
            .collect(),
    );

    // The headline: palisade against the webhook that only parses.
    let status = |ok: bool| {
        if knobs.floor_work_us > 0.0 {
            "not the target's floor"
        } else if ok {
            "met"
        } else {
            "MISSED"
        }
    };
    let mut headline = Vec::new();
    if let Some(t) = ratios(results, PALISADE, FLOOR, |f| f.max_rps) {
        headline.push(format!(
            "max throughput {t:.2} (target >= 0.80: {})",
            status(t.median >= 0.8)
        ));
    }
    if let Some(p) = ratios(results, PALISADE, FLOOR, |f| f.p99_ms) {
        headline.push(format!(
            "p99 at {rate}/s {p:.2} (target <= 1.25: {})",
            status(p.median <= 1.25)
        ));
    }
    if let Some(c) = ratios(results, PALISADE, FLOOR, |f| f.server_us_rate) {
        headline.push(format!("server CPU per review at {rate}/s {c:.2}"));
    }
    println!(
        "headline, palisade/floor (floor: {floor_says}): {}",
        headline.join(", ")
    );
    let own: Vec<f64> = results
        .iter()
        .filter_map(|r| Some(r[PALISADE].server_us_rate? - r[FLOOR].server_us_rate?))
        .collect();
    if let Some(own) = Spread::of(&own) {
        println!(
            "palisade's own work under load (server CPU per review at {rate}/s, palisade minus floor): {own:.1} µs"
        );
    }
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

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.3} ms"))
}

fn main() {
    if let Ok(job) = std::env::var(CLIENT_ENV) {
        client_main(&job);
        return;
    }
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
        "palisade load bench: {cores} cores, load average {} at start; protocol {}; {} rounds; closed loop {} connections x {:?}; {}",
        load_average(),
        match knobs.protocol {
            Protocol::H1 => "HTTP/1.1",
            Protocol::H2 => "HTTP/2",
        },
        knobs.rounds,
        knobs.closed_conns,
        knobs.closed,
        if knobs.open.is_zero() {
            "no open loop".to_owned()
        } else {
            format!(
                "open loop {}/s x {:?} over {} connections",
                knobs.rate, knobs.open, knobs.open_conns
            )
        },
    );
    println!(
        "servers in this process (pid {}, threads bench-server-*); load generator: this bench in client mode, a process of its own per phase (threads bench-client-*)",
        std::process::id()
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
    let ca = dir.path().join("bench-client-ca.pem");
    std::fs::write(&ca, &bundle.ca_pem).expect("write the CA for the load generator");

    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bench-server")
        .enable_all()
        .build()
        .expect("server runtime");

    FLOOR_WORK.store(calibrate_work(knobs.floor_work_us), Ordering::Relaxed);
    let floor_says = if knobs.floor_work_us > 0.0 {
        let says = format!(
            "parses the review, echoes its uid, plus {} µs of pure CPU work",
            knobs.floor_work_us
        );
        println!(
            "floor: {says} ({} loop iterations per review)",
            FLOOR_WORK.load(Ordering::Relaxed)
        );
        says
    } else {
        "parses the review, echoes its uid".to_owned()
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
    let floor_addr = other(
        Router::new()
            .route("/validate", post(floor))
            .route("/mutate", post(floor)),
    );
    let baseline_addr = other(
        Router::new()
            .route("/validate", post(noop))
            .route("/mutate", post(noop)),
    );
    // Indexed as SERVERS.
    let addrs = [palisade_server.https_addr, floor_addr, baseline_addr];
    let job = |phase: Phase, server: usize| ClientJob {
        phase,
        addr: addrs[server],
        ca: ca.clone(),
    };

    let (reviews, values) = load_mix();
    let palisade_answers = run_client(&job(Phase::Preflight, PALISADE)).report;
    let floor_answers = run_client(&job(Phase::Preflight, FLOOR)).report;
    let bytes: usize = reviews.iter().map(|r| r.body.len()).sum();
    println!(
        "mix: {} reviews ({} captured fixtures + pod/deployment CREATEs moved to an open namespace), mean body {} bytes; the floor answered {} with their uids; palisade answered (webhook kind operation decision: count):",
        reviews.len(),
        values
            .iter()
            .filter(|v| !v["request"]["uid"]
                .as_str()
                .unwrap_or("")
                .ends_with("-open"))
            .count(),
        bytes / reviews.len(),
        floor_answers.completed,
    );
    for (k, n) in &palisade_answers.tally {
        println!("  {k}: {n}");
    }
    stage_costs(&reviews, &state());
    drop((reviews, values));

    let mut results = vec![[Figures::default(); 3]; knobs.rounds];
    let mut errors = [0u64; 3];
    let measured = |s: usize| knobs.only.as_deref().is_none_or(|o| o == SERVERS[s]);
    for (round, figures) in results.iter_mut().enumerate() {
        // Each round starts with the next server, so none is always
        // measured right after the same other.
        let order: Vec<usize> = (0..SERVERS.len())
            .map(|i| (i + round) % SERVERS.len())
            .filter(|&s| measured(s))
            .collect();
        for &s in &order {
            let m = run_client(&job(Phase::Closed, s));
            println!(
                "round {} closed {:<8} {:>8.0} reviews/s  server CPU {:>6.1} µs/review  load generator CPU {:>6.1} µs/review  {}",
                round + 1,
                SERVERS[s],
                m.throughput(),
                m.server_us(),
                m.client_us(),
                m.errors(),
            );
            let f = &mut figures[s];
            f.max_rps = Some(m.throughput());
            f.server_us_max = Some(m.server_us());
            f.client_us_max = Some(m.client_us());
            errors[s] += m.report.errors;
        }
        if knobs.open.is_zero() {
            continue;
        }
        for &s in &order {
            let m = run_client(&job(Phase::Open, s));
            let r = &m.report;
            println!(
                "round {} open   {:<8} {:>8.0} reviews/s  p50 {}  p99 {}  p99.9 {}  max {}  server CPU {:>6.1} µs/review  load generator CPU {:>6.1} µs/review  {}",
                round + 1,
                SERVERS[s],
                m.throughput(),
                ms(r.p50_ms),
                ms(r.p99_ms),
                ms(r.p999_ms),
                ms(r.max_ms),
                m.server_us(),
                m.client_us(),
                m.errors(),
            );
            let f = &mut figures[s];
            f.p50_ms = r.p50_ms;
            f.p99_ms = r.p99_ms;
            f.p999_ms = r.p999_ms;
            f.server_us_rate = Some(m.server_us());
            f.client_us_rate = Some(m.client_us());
            errors[s] += r.errors;
        }
    }
    summarize(&knobs, &results, &errors, &floor_says);
    println!("rerun: {}", knobs.rerun());

    palisade_server.shutdown();
    let _ = stop_others.send(());
    let _ = server_rt.block_on(palisade_server.wait());
}
