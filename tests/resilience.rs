//! palisade under hostile and changing conditions, over real sockets:
//! slow clients holding connections, oversize bodies, idle HTTP/2
//! connections, certificate rotation and shutdown while reviews are being
//! sent, SIGTERM to the real binary with reviews in flight, and a binary
//! whose log reader stops reading.
//!
//! tests/tls.rs covers the same mechanisms one at a time without load; here
//! they run against the full server (`serve::start`, what the binary runs)
//! with real reviews. Assertions are about behaviour: every real review is
//! answered 200 with its uid within the API server's own timeout (5 s,
//! `timeoutSeconds` in deploy/), nothing fails, slow peers are cut by the
//! server. No assertion is about how fast anything was.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Running, SERVICE_HOST, TestServer, bundle, error_chain, raw_tls};
use futures::future::BoxFuture;
use palisade::certs;
use palisade::cluster::static_dir::StaticCluster;
use palisade::cluster::{ClusterError, ClusterView, NamespaceView, ViewStats};
use palisade::server::listen::ListenLimits;
use palisade::server::routes::BodyLimits;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// The API server gives up on a webhook after `timeoutSeconds` (5 in
/// deploy/base/webhooks.yaml); a review answered later has failed.
const API_SERVER_TIMEOUT: Duration = Duration::from_secs(5);

/// A fenced namespace (pods allowed), an open one (pods denied after a
/// confirming read) for the captured reviews to land in.
const STATE: &str = "\
apiVersion: v1\nkind: Namespace\nmetadata: {name: fx-apps, labels: {environment: prod}}\n---\n\
apiVersion: v1\nkind: Namespace\nmetadata: {name: fx-open, labels: {environment: prod}}\n---\n\
apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: fx-apps}\nspec: {podSelector: {}, policyTypes: [Ingress, Egress]}\n";

/// Reviews the load clients send: allowed ones from the captures.
const ALLOWED: [&str; 4] = [
    "validating-pod-create-with-labels.json",
    "validating-networkpolicy-create-default-deny-all.json",
    "mutating-pod-create-no-labels.json",
    "validating-namespace-update-add-label.json",
];

fn init() {
    common::init();
}

fn path_for(name: &str) -> &'static str {
    if name.starts_with("mutating-") {
        "/mutate"
    } else {
        "/validate"
    }
}

/// The captured pod CREATE, moved to the namespace without default-deny:
/// denied, after the view is confirmed by a fresh read.
fn denied_review(uid: &str) -> Vec<u8> {
    let mut v = common::fixture("validating-pod-create-with-labels.json");
    v["request"]["namespace"] = "fx-open".into();
    v["request"]["object"]["metadata"]["namespace"] = "fx-open".into();
    v["request"]["uid"] = uid.into();
    serde_json::to_vec(&v).expect("serialize")
}

fn with_uid(name: &str, uid: &str) -> Vec<u8> {
    let mut v = common::fixture(name);
    v["request"]["uid"] = uid.into();
    serde_json::to_vec(&v).expect("serialize")
}

/// A client that trusts `cas` and reaches the Service name at `addr`.
fn client_for(cas: &[&str], addr: SocketAddr, http1: bool, fresh: bool) -> reqwest::Client {
    let certs: Vec<reqwest::Certificate> = cas
        .iter()
        .map(|pem| reqwest::Certificate::from_pem(pem.as_bytes()).expect("CA pem"))
        .collect();
    let mut b = reqwest::Client::builder()
        .tls_certs_only(certs)
        .resolve(SERVICE_HOST, addr)
        .no_proxy()
        .tls_info(true)
        .timeout(API_SERVER_TIMEOUT);
    if http1 {
        b = b.http1_only();
    }
    if fresh {
        // A new connection, with its own handshake, for every request.
        b = b.pool_max_idle_per_host(0);
    }
    b.build().expect("client")
}

fn url(addr: SocketAddr, path: &str) -> String {
    format!("https://{SERVICE_HOST}:{}{path}", addr.port())
}

/// Sends one review; `Err` says why it failed (transport, status, uid).
async fn send_review(
    client: &reqwest::Client,
    addr: SocketAddr,
    path: &str,
    body: Vec<u8>,
    uid: &str,
) -> Result<Value, String> {
    let resp = client
        .post(url(addr, path))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| error_chain(&e))?;
    let status = resp.status();
    let text = resp.text().await.map_err(|e| error_chain(&e))?;
    if status != 200 {
        return Err(format!("HTTP {status}: {text}"));
    }
    let v: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    if v["response"]["uid"] != uid {
        return Err(format!("uid {} for {uid}", v["response"]["uid"]));
    }
    Ok(v["response"].clone())
}

/// Has the peer closed (or reset) `stream`? Waits at most `wait`.
async fn closed_within<S: tokio::io::AsyncRead + Unpin>(stream: &mut S, wait: Duration) -> bool {
    let mut buf = [0u8; 512];
    loop {
        match tokio::time::timeout(wait, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            // Anything the server says first (a session ticket, SETTINGS,
            // GOAWAY, an error response) is not a close by itself.
            Ok(Ok(_)) => {}
        }
    }
}

/// `n` real reviews at once, each on a new connection (the case the cap
/// and the timeouts protect: connections the API server opens while under
/// attack).
async fn real_reviews_succeed(server: &TestServer, n: usize) {
    let addr = server.server.https_addr;
    let ca = server.ca_pem.as_str();
    let reviews = (0..n).map(|i| async move {
        let client = client_for(&[ca], addr, i % 2 == 0, true);
        let uid = format!("real-{i}");
        let name = ALLOWED[i % ALLOWED.len()];
        let out = send_review(&client, addr, path_for(name), with_uid(name, &uid), &uid)
            .await
            .unwrap_or_else(|e| panic!("real review {i} under attack: {e}"));
        assert_eq!(out["allowed"], true, "{out}");
    });
    futures::future::join_all(reviews).await;
}

fn limits(max_connections: usize, timeout: Duration) -> ListenLimits {
    ListenLimits {
        max_connections,
        tls_handshake_timeout: timeout,
        header_read_timeout: timeout,
        drain_timeout: Duration::from_secs(3),
    }
}

// ------------------------------------------------------------ slow clients

/// Slowloris on every phase a peer could stall, with three times as many
/// attackers as connection slots: TLS handshakes sent a byte at a time,
/// HTTP/1.1 request heads never finished, HTTP/2 connections that never
/// send a request. Real reviews on new connections still get through,
/// because the server cuts each attacker at its deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_and_handshakes_cannot_starve_reviews() {
    init();
    let deadline = Duration::from_millis(500);
    let server = TestServer::start_custom(
        common::default_config(),
        Arc::new(common::state(STATE)),
        limits(4, deadline),
        BodyLimits::default(),
    )
    .await;
    let addr = server.server.https_addr;
    let stop = Arc::new(AtomicBool::new(false));
    // Connections the server closed on each kind of attacker.
    let cut: Arc<[AtomicUsize; 3]> = Arc::new(Default::default());
    let mut attackers = Vec::new();
    for i in 0..12 {
        let (stop, cut, ca) = (Arc::clone(&stop), Arc::clone(&cut), server.ca_pem.clone());
        attackers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let closed = match i % 3 {
                    // A ClientHello one byte at a time.
                    0 => {
                        let Ok(mut tcp) = TcpStream::connect(addr).await else {
                            continue;
                        };
                        // A handshake record of 16 KiB announced, then its
                        // bytes one at a time: rustls waits for the record.
                        let mut closed = tcp
                            .write_all(&[0x16, 0x03, 0x01, 0x40, 0x00])
                            .await
                            .is_err();
                        while !closed && !stop.load(Ordering::Relaxed) {
                            closed = tcp.write_all(&[0]).await.is_err()
                                || closed_within(&mut tcp, Duration::from_millis(50)).await;
                        }
                        closed
                    }
                    // An HTTP/1.1 request head that never ends.
                    1 => {
                        let Ok(mut tls) = raw_tls(&ca, addr, b"http/1.1").await else {
                            continue;
                        };
                        let head = b"POST /validate HTTP/1.1\r\nHost: palisade\r\nX-Slow: ";
                        let mut closed = tls.write_all(head).await.is_err();
                        while !closed && !stop.load(Ordering::Relaxed) {
                            closed = tls.write_all(b"a").await.is_err()
                                || closed_within(&mut tls, Duration::from_millis(50)).await;
                        }
                        closed
                    }
                    // HTTP/2 negotiated, then silence.
                    _ => {
                        let Ok(mut tls) = raw_tls(&ca, addr, b"h2").await else {
                            continue;
                        };
                        let mut closed = false;
                        while !closed && !stop.load(Ordering::Relaxed) {
                            closed = closed_within(&mut tls, Duration::from_millis(50)).await;
                        }
                        closed
                    }
                };
                if closed {
                    cut[i % 3].fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    // Let the attackers take every slot and queue behind them.
    tokio::time::sleep(Duration::from_secs(1)).await;
    real_reviews_succeed(&server, 6).await;
    stop.store(true, Ordering::Relaxed);
    for a in attackers {
        a.await.expect("attacker");
    }
    // Each deadline fired: handshake, request head, first HTTP/2 request.
    let cut: Vec<usize> = cut.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    assert!(
        cut.iter().all(|&n| n > 0),
        "slow connections closed by the server: {cut:?}"
    );
}

/// Request bodies sent a byte at a time: each is cut at the body read
/// timeout with 408 and its connection closed, and real reviews get through
/// meanwhile although the attackers outnumber the connection slots.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_are_cut_with_408_and_cannot_starve_reviews() {
    init();
    let read_timeout = Duration::from_millis(500);
    let server = TestServer::start_custom(
        common::default_config(),
        Arc::new(common::state(STATE)),
        // Headers are quick here; only the body is slow.
        limits(4, Duration::from_secs(5)),
        BodyLimits {
            read_timeout,
            ..BodyLimits::default()
        },
    )
    .await;
    let addr = server.server.https_addr;
    let stop = Arc::new(AtomicBool::new(false));
    let mut attackers = Vec::new();
    for _ in 0..10 {
        let (stop, ca) = (Arc::clone(&stop), server.ca_pem.clone());
        attackers.push(tokio::spawn(async move {
            // What each slow body got: closed after a 408, or something else.
            let (mut cut, mut other) = (0usize, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                let Ok(mut tls) = raw_tls(&ca, addr, b"http/1.1").await else {
                    continue;
                };
                let head = "POST /validate HTTP/1.1\r\nHost: palisade\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{";
                if tls.write_all(head.as_bytes()).await.is_err() {
                    continue;
                }
                let mut response = Vec::new();
                let mut buf = [0u8; 1024];
                let mut closed = false;
                'trickle: while !stop.load(Ordering::Relaxed) {
                    // The server may stop reading; a failed write is fine,
                    // the answer is still to be read.
                    let _ = tls.write_all(b" ").await;
                    loop {
                        match tokio::time::timeout(Duration::from_millis(50), tls.read(&mut buf))
                            .await
                        {
                            Err(_) => break,
                            Ok(Ok(0)) | Ok(Err(_)) => {
                                closed = true;
                                break 'trickle;
                            }
                            Ok(Ok(n)) => response.extend_from_slice(&buf[..n]),
                        }
                    }
                }
                let text = String::from_utf8_lossy(&response);
                if text.starts_with("HTTP/1.1 408")
                    && text.contains("timed out reading the request body")
                    && closed
                {
                    cut += 1;
                } else if !text.is_empty() || closed {
                    other.push(format!("closed: {closed}, answer: {text}"));
                }
            }
            (cut, other)
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    real_reviews_succeed(&server, 6).await;
    stop.store(true, Ordering::Relaxed);
    let mut cut = 0;
    for a in attackers {
        let (n, other) = a.await.expect("attacker");
        assert!(other.is_empty(), "{other:#?}");
        cut += n;
    }
    assert!(cut > 0, "no slow body was answered 408 and closed");
}

/// Bodies over the limit are answered 400 on either protocol; a review
/// padded to exactly the limit is still decided.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_bodies_get_400() {
    init();
    let max_bytes = 64 * 1024;
    let server = TestServer::start_custom(
        common::default_config(),
        Arc::new(common::state(STATE)),
        ListenLimits::default(),
        BodyLimits {
            max_bytes,
            ..BodyLimits::default()
        },
    )
    .await;
    let addr = server.server.https_addr;
    let name = "validating-pod-create-with-labels.json";
    let mut exact = with_uid(name, "exact");
    // JSON allows trailing whitespace: the same review, max_bytes long.
    exact.resize(max_bytes, b' ');
    for http1 in [true, false] {
        let client = client_for(&[&server.ca_pem], addr, http1, false);
        let out = send_review(&client, addr, "/validate", exact.clone(), "exact")
            .await
            .expect("a review of exactly the limit is decided");
        assert_eq!(out["allowed"], true);

        let mut over = exact.clone();
        over.push(b' ');
        let huge = vec![b'{'; 2 * max_bytes];
        for body in [over, huge] {
            let resp = client
                .post(url(addr, "/validate"))
                .body(body)
                .send()
                .await
                .expect("an answer, not a reset");
            assert_eq!(resp.status(), 400, "http1: {http1}");
            let text = resp.text().await.expect("body");
            assert!(
                text.contains(&format!("exceeds the limit of {max_bytes} bytes")),
                "{text}"
            );
        }
    }
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("palisade_bad_requests_total{webhook=\"validate\"} 4"),
        "{metrics}"
    );
}

/// HTTP/2 connections that sent their requests and went quiet give their
/// slot back after the header read timeout, like idle HTTP/1.1 keep-alive
/// connections do; otherwise two idle clients would starve a third forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_http2_connections_give_their_slot_back() {
    init();
    let server = TestServer::start_custom(
        common::default_config(),
        Arc::new(common::state(STATE)),
        limits(2, Duration::from_millis(500)),
        BodyLimits::default(),
    )
    .await;
    let addr = server.server.https_addr;
    let name = ALLOWED[0];
    let mut idle = Vec::new();
    for i in 0..2 {
        // reqwest keeps an idle HTTP/2 connection for 90 s by default.
        let client = client_for(&[&server.ca_pem], addr, false, false);
        let uid = format!("idle-{i}");
        send_review(&client, addr, path_for(name), with_uid(name, &uid), &uid)
            .await
            .expect("first reviews");
        idle.push(client);
    }
    let third = client_for(&[&server.ca_pem], addr, false, false);
    send_review(
        &third,
        addr,
        path_for(name),
        with_uid(name, "third"),
        "third",
    )
    .await
    .expect("a third client is served once the idle connections are closed");
    // The idle clients reconnect transparently (their old connections
    // have been closed by now).
    tokio::time::sleep(Duration::from_millis(700)).await;
    for (i, client) in idle.iter().enumerate() {
        let uid = format!("again-{i}");
        send_review(client, addr, path_for(name), with_uid(name, &uid), &uid)
            .await
            .expect("idle clients are served again");
    }
}

// ------------------------------------------------------------ under load

/// Load clients: each sends reviews until `stop`, counting successes and
/// keeping every failure. Even-numbered clients speak HTTP/1.1 and odd ones
/// HTTP/2; every third one opens a new connection for each review, so
/// handshakes happen throughout.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<Vec<String>>>,
}

impl Load {
    fn start(
        cas: &[&str],
        addr: SocketAddr,
        clients: usize,
        review: impl Fn(usize, usize) -> (&'static str, Vec<u8>, String) + Send + Sync + 'static,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let review = Arc::new(review);
        let tasks = (0..clients)
            .map(|c| {
                let client = client_for(cas, addr, c % 2 == 0, c % 3 == 0);
                let (stop, ok, review) = (Arc::clone(&stop), Arc::clone(&ok), Arc::clone(&review));
                tokio::spawn(async move {
                    let mut failures = Vec::new();
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let (path, body, uid) = review(c, n);
                        n += 1;
                        match send_review(&client, addr, path, body, &uid).await {
                            Ok(_) => {
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => failures.push(format!("client {c} review {uid}: {e}")),
                        }
                    }
                    failures
                })
            })
            .collect();
        Load { stop, ok, tasks }
    }

    /// Stops the clients once their review in flight is answered; returns
    /// every failure.
    async fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let mut failures = Vec::new();
        for t in self.tasks {
            failures.extend(t.await.expect("load client"));
        }
        (self.ok.load(Ordering::Relaxed), failures)
    }
}

fn allowed_review(c: usize, n: usize) -> (&'static str, Vec<u8>, String) {
    let name = ALLOWED[(c + n) % ALLOWED.len()];
    let uid = format!("load-{c}-{n}");
    (path_for(name), with_uid(name, &uid), uid)
}

/// The certificate a new connection is served.
async fn served_certificate(cas: &[&str], addr: SocketAddr) -> Result<Vec<u8>, String> {
    let client = client_for(cas, addr, true, true);
    let name = ALLOWED[0];
    let resp = client
        .post(url(addr, path_for(name)))
        .body(with_uid(name, "probe"))
        .send()
        .await
        .map_err(|e| error_chain(&e))?;
    let info = resp
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .ok_or("no TLS info")?;
    info.peer_certificate()
        .map(<[u8]>::to_vec)
        .ok_or_else(|| "no peer certificate".into())
}

fn der(pem: &str) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .expect("certificate PEM")
        .to_vec()
}

/// Certificate files replaced by ones from a new CA while eight clients send
/// reviews (clients trust both CAs, as they do during a CA rotation): no
/// review fails, and connections made after the swap get the new
/// certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_under_load_fails_no_review() {
    init();
    let server = TestServer::start(common::default_config(), common::state(STATE)).await;
    let addr = server.server.https_addr;
    let old_ca = server.ca_pem.clone();
    let next = bundle();
    let cas = [old_ca.as_str(), next.ca_pem.as_str()];
    let old_cert = served_certificate(&cas, addr).await.expect("probe");
    assert_ne!(old_cert, der(&next.cert_pem));

    let load = Load::start(&cas, addr, 8, allowed_review);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before_swap = load.ok.load(Ordering::Relaxed);
    next.write_to(server.dir.path()).expect("replace the files");

    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if served_certificate(&cas, addr).await.ok() == Some(der(&next.cert_pem)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // From now on, every new connection gets the new certificate.
    for _ in 0..5 {
        assert_eq!(
            served_certificate(&cas, addr).await.expect("probe"),
            der(&next.cert_pem)
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (ok, failures) = load.finish().await;
    assert!(
        failures.is_empty(),
        "{} failed: {failures:#?}",
        failures.len()
    );
    assert!(
        before_swap > 0 && ok > before_swap,
        "load ran across the swap: {ok}"
    );
    // Only the new CA is needed now.
    served_certificate(&[&next.ca_pem], addr)
        .await
        .expect("a client trusting only the new CA");
}

/// A cluster view whose confirming reads wait at a gate, so a test can hold
/// reviews in flight inside the server at a moment of its choosing.
struct GatedCluster {
    inner: StaticCluster,
    open: watch::Receiver<bool>,
    waiting: AtomicUsize,
}

impl ClusterView for GatedCluster {
    fn namespace(&self, name: &str) -> NamespaceView {
        self.inner.namespace(name)
    }

    fn confirm<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<NamespaceView, ClusterError>> {
        Box::pin(async move {
            self.waiting.fetch_add(1, Ordering::SeqCst);
            let mut open = self.open.clone();
            let _ = open.wait_for(|o| *o).await;
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            self.inner.confirm(name).await
        })
    }

    fn is_ready(&self) -> bool {
        true
    }

    fn stats(&self) -> ViewStats {
        self.inner.stats()
    }
}

/// Shutdown while six clients send reviews: at the moment it starts, every
/// client has a review inside the server; each of those is answered (200,
/// its uid, the denial it earned), no review fails, new connections are
/// refused, and the server returns cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_under_load_answers_every_review_in_flight() {
    init();
    let (gate, open) = watch::channel(true);
    let cluster = Arc::new(GatedCluster {
        inner: common::state(STATE),
        open,
        waiting: AtomicUsize::new(0),
    });
    let server = TestServer::start_custom(
        common::default_config(),
        Arc::clone(&cluster) as Arc<dyn ClusterView>,
        ListenLimits::default(),
        BodyLimits::default(),
    )
    .await;
    let addr = server.server.https_addr;
    let clients = 6;
    // Every other review is denied after a confirming read: with the gate
    // closed, each client ends up holding one of those in flight.
    let load = Load::start(&[&server.ca_pem], addr, clients, |c, n| {
        if n % 2 == 1 {
            let uid = format!("deny-{c}-{n}");
            ("/validate", denied_review(&uid), uid)
        } else {
            allowed_review(c, n)
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(load.ok.load(Ordering::Relaxed) > 0);

    gate.send_replace(false);
    let deadline = Instant::now() + Duration::from_secs(5);
    while cluster.waiting.load(Ordering::SeqCst) < clients {
        assert!(Instant::now() < deadline, "clients never all in flight");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // No client sends another review once its current one is answered.
    load.stop.store(true, Ordering::Relaxed);
    server.server.shutdown();
    // The listener closes while the reviews are still held.
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(addr).await.is_ok() {
        assert!(Instant::now() < deadline, "still accepting after shutdown");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(cluster.waiting.load(Ordering::SeqCst), clients);
    gate.send_replace(true);

    let (ok, failures) = load.finish().await;
    assert!(
        failures.is_empty(),
        "{} failed: {failures:#?}",
        failures.len()
    );
    assert!(ok >= clients);
    let TestServer { server, .. } = server;
    tokio::time::timeout(Duration::from_secs(5), server.wait())
        .await
        .expect("the server stops after draining")
        .expect("clean stop");
}

// ------------------------------------------------------------ the binary

/// Starts the real binary, `palisade serve --state DIR`, on ports of its
/// own choosing, with the certificates of `b`; its log lines (JSON, info)
/// come on the returned stderr.
fn start_binary(b: &certs::CertBundle, dir: &Path) -> (Running, std::process::ChildStderr) {
    let certs_dir = dir.join("certs");
    let state_dir = dir.join("state");
    b.write_to(&certs_dir).expect("certificates");
    std::fs::create_dir_all(&state_dir).expect("state dir");
    std::fs::write(state_dir.join("state.yaml"), STATE).expect("state");
    let mut child = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .arg("serve")
        .arg("--config")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/palisade.yaml"))
        .arg("--state")
        .arg(&state_dir)
        .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
        .arg("--tls-cert")
        .arg(certs_dir.join(certs::CERT_FILE))
        .arg("--tls-key")
        .arg(certs_dir.join(certs::KEY_FILE))
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("palisade serve");
    let stderr = child.stderr.take().expect("stderr");
    (Running(child), stderr)
}

/// An address from the "palisade is serving" log line.
fn logged_addr(serving: &Value, field: &str) -> SocketAddr {
    serving[field]
        .as_str()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("{field} in the log: {serving}"))
}

/// Reads the binary's log lines on a thread (so the pipe never fills) and
/// hands them over.
fn log_lines(stderr: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits for a log line containing every one of `needles`; returns it.
fn wait_for_log(lines: &std::sync::mpsc::Receiver<String>, needles: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if needles.iter().all(|n| line.contains(n)) => return line,
            Ok(_) => {}
            Err(e) => panic!("no log line with {needles:?}: {e}"),
        }
    }
}

/// One HTTP/1.1 request held in flight: the head is sent with
/// `Expect: 100-continue`, and the server's `100 Continue` (sent when the
/// handler starts reading the body) proves the review is inside palisade.
struct HeldRequest {
    tls: tokio_rustls::client::TlsStream<TcpStream>,
    body: Vec<u8>,
    uid: String,
}

impl HeldRequest {
    async fn open(ca: &str, addr: SocketAddr, uid: String) -> Self {
        let body = with_uid("validating-pod-create-with-labels.json", &uid);
        let mut tls = raw_tls(ca, addr, b"http/1.1").await.expect("connect");
        let head = format!(
            "POST /validate HTTP/1.1\r\nHost: {SERVICE_HOST}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
            body.len()
        );
        tls.write_all(head.as_bytes()).await.expect("head");
        let mut got = Vec::new();
        let mut buf = [0u8; 256];
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = tokio::time::timeout(API_SERVER_TIMEOUT, tls.read(&mut buf))
                .await
                .expect("100 Continue in time")
                .expect("read");
            assert!(n > 0, "closed before 100 Continue");
            got.extend_from_slice(&buf[..n]);
        }
        assert!(
            got.starts_with(b"HTTP/1.1 100 Continue"),
            "{}",
            String::from_utf8_lossy(&got)
        );
        HeldRequest { tls, body, uid }
    }

    /// Sends the body; returns the status line and the response body, and
    /// checks the server closes the connection after answering.
    async fn finish(mut self) -> (String, Value) {
        self.tls.write_all(&self.body).await.expect("body");
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let (head, body) = loop {
            let n = tokio::time::timeout(API_SERVER_TIMEOUT, self.tls.read(&mut buf))
                .await
                .expect("answered in time")
                .expect("read the answer");
            assert!(n > 0, "closed before answering");
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got).into_owned();
            let Some((head, body)) = text.split_once("\r\n\r\n") else {
                continue;
            };
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap_or(0))
                })
                .expect("content-length");
            if body.len() >= length {
                break (head.to_owned(), body.to_owned());
            }
        };
        let status = head.lines().next().unwrap_or("").to_owned();
        let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        assert_eq!(v["response"]["uid"], self.uid.as_str());
        assert!(
            closed_within(&mut self.tls, API_SERVER_TIMEOUT).await,
            "a draining server closes the connection after answering"
        );
        (status, v)
    }
}

/// The real binary, `palisade serve --state DIR`, gets SIGTERM while eight
/// reviews are inside it (and after clients ran reviews against it): it
/// stops accepting, answers all eight, and exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_to_the_binary_answers_reviews_in_flight_and_exits_0() {
    init();
    let dir = tempfile::tempdir().expect("tempdir");
    let b = bundle();
    let (mut child, stderr) = start_binary(&b, dir.path());
    let lines = log_lines(stderr);
    let serving: Value =
        serde_json::from_str(&wait_for_log(&lines, &["palisade is serving"])).expect("JSON log");
    let addr = logged_addr(&serving, "https_addr");

    // Mid-run: clients have been sending reviews.
    let load = Load::start(&[&b.ca_pem], addr, 4, allowed_review);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (ok, failures) = load.finish().await;
    assert!(ok > 0 && failures.is_empty(), "{failures:?}");

    let mut held = Vec::new();
    for i in 0..8 {
        held.push(HeldRequest::open(&b.ca_pem, addr, format!("held-{i}")).await);
    }
    // SAFETY: kill(2) on the pid of a child this test spawned and has not
    // yet waited for.
    let rc = unsafe { libc::kill(child.0.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0, "kill: {}", std::io::Error::last_os_error());
    wait_for_log(&lines, &["shutting down: finishing in-flight reviews"]);
    let draining: Value = serde_json::from_str(&wait_for_log(
        &lines,
        &["draining open connections", "\"scheme\":\"https\""],
    ))
    .expect("JSON log");
    assert!(draining["open"].as_u64() >= Some(8), "{draining}");
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "new connections are refused once draining"
    );
    let answers = futures::future::join_all(held.into_iter().map(HeldRequest::finish)).await;
    for (status, review) in answers {
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_eq!(review["response"]["allowed"], true);
    }

    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.0.try_wait().expect("wait") {
            break s;
        }
        assert!(
            Instant::now() <= deadline,
            "palisade did not exit after draining"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "exit status {status}");
    wait_for_log(&lines, &["all connections drained", "\"scheme\":\"https\""]);
}

/// Nobody reads the binary's stderr (a stalled container runtime: the pipe
/// fills after about a hundred decision lines) while clients send two
/// thousand reviews: every one is answered in time, none of their log
/// lines is lost, and once stderr is read again they all arrive, in order,
/// before the line of a review sent afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binary_whose_stderr_is_not_read_keeps_answering_and_loses_no_log_line() {
    const REVIEWS: usize = 2_000;
    init();
    let dir = tempfile::tempdir().expect("tempdir");
    let b = bundle();
    let (_child, stderr) = start_binary(&b, dir.path());
    // Read up to the "serving" line, then stop reading: the pipe fills.
    let (serving, stalled) = tokio::task::spawn_blocking(move || {
        let mut reader = BufReader::new(stderr);
        let mut line = String::new();
        while !line.contains("palisade is serving") {
            line.clear();
            let n = reader.read_line(&mut line).expect("read stderr");
            assert!(n > 0, "palisade exited before serving");
        }
        (line, reader)
    })
    .await
    .expect("reader");
    let serving: Value = serde_json::from_str(&serving).expect("JSON log");
    let (addr, metrics) = (
        logged_addr(&serving, "https_addr"),
        logged_addr(&serving, "metrics_addr"),
    );

    let load = Load::start(&[&b.ca_pem], addr, 4, allowed_review);
    let deadline = Instant::now() + Duration::from_secs(60);
    while load.ok.load(Ordering::Relaxed) < REVIEWS {
        assert!(
            Instant::now() < deadline,
            "only {} reviews answered while stderr was not read",
            load.ok.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (ok, failures) = load.finish().await;
    assert!(failures.is_empty(), "{failures:?}");

    let text = reqwest::get(format!("http://{metrics}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    assert!(
        text.lines()
            .any(|l| l == "palisade_log_lines_dropped_total 0"),
        "{text}"
    );

    // Read stderr again; one more review marks the end.
    let lines = log_lines(stalled);
    let client = client_for(&[&b.ca_pem], addr, true, false);
    let name = "validating-pod-create-with-labels.json";
    send_review(
        &client,
        addr,
        path_for(name),
        with_uid(name, "after-the-stall"),
        "after-the-stall",
    )
    .await
    .expect("a review after the stall");
    let mut logged = 0;
    // Each client sends its reviews one after another, so its lines come
    // in the order of their numbers.
    let mut last_of_client = std::collections::HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let line = lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|e| panic!("{logged} of {ok} decision lines, then: {e}"));
        if line.contains("\"uid\":\"after-the-stall\"") {
            break;
        }
        if !line.contains("admission decision") {
            continue;
        }
        let v: Value = serde_json::from_str(&line).expect("JSON log");
        let Some((client, n)) = v["uid"]
            .as_str()
            .and_then(|u| u.strip_prefix("load-"))
            .and_then(|u| u.split_once('-'))
        else {
            continue;
        };
        let n: usize = n.parse().expect("review number");
        if let Some(before) = last_of_client.insert(client.to_owned(), n) {
            assert!(
                before < n,
                "client {client}: review {n} logged after {before}"
            );
        }
        logged += 1;
    }
    assert_eq!(logged, ok, "one decision line for every review answered");
}
