//! The TLS serving shell over real sockets with real rustls on both ends:
//! certificate names, hot rotation (plain files and a Kubernetes Secret
//! volume layout), bad replacements, graceful shutdown, the connection cap and
//! slow clients.

mod common;

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use common::{SERVICE_HOST as HOST, bundle, error_chain, raw_tls};
use palisade::certs::{self, CertBundle};
use palisade::server::listen::{ListenLimits, serve_https};
use palisade::server::tls::CertReloader;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

const HOST_FQDN: &str = "palisade.palisade-system.svc.cluster.local";
/// Poll interval of the certificate watcher under test; short so the poll
/// path alone would also pass the rotation deadlines.
const WATCH_INTERVAL: Duration = Duration::from_millis(250);

fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
}

fn app() -> Router {
    Router::new().route("/", get(|| async { "ok" }))
}

struct Server {
    addr: SocketAddr,
    reloader: Arc<CertReloader>,
    shutdown: Option<oneshot::Sender<()>>,
    served: JoinHandle<std::io::Result<()>>,
    watcher: JoinHandle<()>,
}

impl Server {
    async fn start(cert: &Path, key: &Path, app: Router, limits: ListenLimits) -> Self {
        Self::start_polling_every(cert, key, app, limits, WATCH_INTERVAL).await
    }

    async fn start_polling_every(
        cert: &Path,
        key: &Path,
        app: Router,
        limits: ListenLimits,
        poll: Duration,
    ) -> Self {
        let reloader = CertReloader::load(cert, key).expect("load certificates");
        let watcher = Arc::clone(&reloader).spawn_watcher(poll);
        let config = reloader.server_config().expect("server config");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = oneshot::channel::<()>();
        let served = tokio::spawn(serve_https(listener, config, app, limits, async move {
            let _ = rx.await;
        }));
        Self {
            addr,
            reloader,
            shutdown: Some(tx),
            served,
            watcher,
        }
    }

    async fn in_dir(dir: &Path) -> Self {
        Self::start(
            &dir.join(certs::CERT_FILE),
            &dir.join(certs::KEY_FILE),
            app(),
            ListenLimits::default(),
        )
        .await
    }

    fn shut_down(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shut_down();
        self.watcher.abort();
    }
}

/// A client that trusts `ca_pem` and nothing else, and reaches `host` at
/// `addr`, so the handshake is verified against `host` as a Service name.
fn client(ca_pem: &str, host: &str, addr: SocketAddr) -> reqwest::Client {
    client_builder(ca_pem, host, addr)
        .build()
        .expect("build client")
}

fn client_builder(ca_pem: &str, host: &str, addr: SocketAddr) -> reqwest::ClientBuilder {
    let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes()).expect("CA pem");
    reqwest::Client::builder()
        .tls_certs_only([ca])
        .resolve(host, addr)
        .no_proxy()
        .timeout(Duration::from_secs(3))
}

async fn fetch(ca_pem: &str, host: &str, addr: SocketAddr) -> Result<String, String> {
    let url = format!("https://{host}:{}/", addr.port());
    let resp = client(ca_pem, host, addr)
        .get(url)
        .send()
        .await
        .map_err(|e| error_chain(&e))?;
    let resp = resp.error_for_status().map_err(|e| error_chain(&e))?;
    resp.text().await.map_err(|e| error_chain(&e))
}

fn assert_cert_rejected(result: Result<String, String>) {
    let err = result.expect_err("handshake should fail");
    assert!(
        err.contains("invalid peer certificate"),
        "expected a certificate verification failure, got: {err}"
    );
}

/// Polls `check` until it holds, or fails the test after `limit`.
async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn assert_rotates_to(server: &Server, old: &CertBundle, new: &CertBundle) {
    let addr = server.addr;
    eventually(
        Duration::from_secs(4),
        "new certificate served",
        || async move { fetch(&new.ca_pem, HOST, addr).await.is_ok() },
    )
    .await;
    assert_eq!(fetch(&new.ca_pem, HOST, addr).await.as_deref(), Ok("ok"));
    assert_cert_rejected(fetch(&old.ca_pem, HOST, addr).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_certificate_verifies_by_service_names_only() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let b = bundle();
    b.write_to(tmp.path()).unwrap();
    let server = Server::in_dir(tmp.path()).await;

    assert_eq!(
        fetch(&b.ca_pem, HOST, server.addr).await.as_deref(),
        Ok("ok")
    );
    assert_eq!(
        fetch(&b.ca_pem, HOST_FQDN, server.addr).await.as_deref(),
        Ok("ok")
    );
    assert_cert_rejected(fetch(&b.ca_pem, "evil.example", server.addr).await);
    assert_cert_rejected(fetch(&bundle().ca_pem, HOST, server.addr).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_by_atomic_file_replacement() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let (first, second) = (bundle(), bundle());
    first.write_to(tmp.path()).unwrap();
    let server = Server::in_dir(tmp.path()).await;
    assert_eq!(
        fetch(&first.ca_pem, HOST, server.addr).await.as_deref(),
        Ok("ok")
    );

    second.write_to(tmp.path()).unwrap();
    assert_rotates_to(&server, &first, &second).await;
}

/// Lays out `dir` the way the kubelet publishes a Secret volume: the files
/// live in a timestamped directory, `..data` points at it, and the visible
/// names are symlinks through `..data`. An update writes a new timestamped
/// directory and renames a fresh `..data` symlink over the old one.
#[cfg(unix)]
fn publish_like_kubelet(dir: &Path, bundle: &CertBundle, generation: u32) {
    use std::os::unix::fs::symlink;

    let ts_name = format!("..2026_01_01_00_00_0{generation}.{}", 1000 + generation);
    let ts = dir.join(&ts_name);
    std::fs::create_dir(&ts).unwrap();
    std::fs::write(ts.join(certs::CA_FILE), &bundle.ca_pem).unwrap();
    std::fs::write(ts.join(certs::CERT_FILE), &bundle.cert_pem).unwrap();
    std::fs::write(ts.join(certs::KEY_FILE), &bundle.key_pem).unwrap();

    let old_target: Option<PathBuf> = std::fs::read_link(dir.join("..data")).ok();
    let tmp_link = dir.join("..data_tmp");
    symlink(&ts_name, &tmp_link).unwrap();
    std::fs::rename(&tmp_link, dir.join("..data")).unwrap();

    for name in [certs::CA_FILE, certs::CERT_FILE, certs::KEY_FILE] {
        let visible = dir.join(name);
        if std::fs::symlink_metadata(&visible).is_err() {
            symlink(Path::new("..data").join(name), &visible).unwrap();
        }
    }
    if let Some(old) = old_target {
        std::fs::remove_dir_all(dir.join(old)).unwrap();
    }
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_kubernetes_style_by_data_symlink_swap() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let (first, second) = (bundle(), bundle());
    publish_like_kubelet(tmp.path(), &first, 1);
    assert!(
        std::fs::symlink_metadata(tmp.path().join(certs::CERT_FILE))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let server = Server::in_dir(tmp.path()).await;
    assert_eq!(
        fetch(&first.ca_pem, HOST, server.addr).await.as_deref(),
        Ok("ok")
    );

    publish_like_kubelet(tmp.path(), &second, 2);
    assert_rotates_to(&server, &first, &second).await;
}

/// The rotation tests above would also pass on the poll alone; this one
/// polls so rarely that only the directory watch can see the `..data` swap.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_watch_alone_sees_a_data_symlink_swap() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let (first, second) = (bundle(), bundle());
    publish_like_kubelet(tmp.path(), &first, 1);
    let server = Server::start_polling_every(
        &tmp.path().join(certs::CERT_FILE),
        &tmp.path().join(certs::KEY_FILE),
        app(),
        ListenLimits::default(),
        Duration::from_secs(3600),
    )
    .await;
    let before = server.reloader.not_after();

    publish_like_kubelet(tmp.path(), &second, 2);
    assert_rotates_to(&server, &first, &second).await;
    assert!(server.reloader.not_after() >= before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_replacement_keeps_serving_the_old_certificate() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let good = bundle();
    good.write_to(tmp.path()).unwrap();
    let server = Server::in_dir(tmp.path()).await;
    let not_after = server.reloader.not_after();
    assert!(not_after.is_some());

    // Garbage key, replaced atomically so the watcher sees a complete file.
    let garbage = CertBundle {
        key_pem: "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n".into(),
        ..bundle()
    };
    garbage.write_to(tmp.path()).unwrap();
    let err = server.reloader.reload().expect_err("garbage must not load");
    assert!(err.to_string().contains("tls.key"), "{err}");

    // Give the watcher (events and polls) every chance to misbehave.
    tokio::time::sleep(WATCH_INTERVAL * 3).await;
    assert_eq!(
        fetch(&good.ca_pem, HOST, server.addr).await.as_deref(),
        Ok("ok")
    );
    assert_cert_rejected(fetch(&garbage.ca_pem, HOST, server.addr).await);
    assert_eq!(server.reloader.not_after(), not_after);

    // And it recovers once the files are fixed.
    let fixed = bundle();
    fixed.write_to(tmp.path()).unwrap();
    assert_rotates_to(&server, &good, &fixed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_in_flight_requests_then_refuses() {
    init();
    // Both protocols: HTTP/2 drains with GOAWAY, HTTP/1.1 by closing after
    // the response; either way the request in flight must complete.
    for http1 in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let b = bundle();
        b.write_to(tmp.path()).unwrap();
        let (started_tx, mut started_rx) = mpsc::channel::<()>(1);
        let slow = Router::new().route(
            "/slow",
            get(move || {
                let started = started_tx.clone();
                async move {
                    let _ = started.send(()).await;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    "done"
                }
            }),
        );
        let mut server = Server::start(
            &tmp.path().join(certs::CERT_FILE),
            &tmp.path().join(certs::KEY_FILE),
            slow,
            ListenLimits::default(),
        )
        .await;

        let mut builder = client_builder(&b.ca_pem, HOST, server.addr);
        if http1 {
            builder = builder.http1_only();
        }
        let client = builder.build().unwrap();
        let url = format!("https://{HOST}:{}/slow", server.addr.port());
        let in_flight = tokio::spawn(async move {
            let resp = client.get(url).send().await.map_err(|e| error_chain(&e))?;
            let status = resp.status();
            let version = resp.version();
            let body = resp.text().await.map_err(|e| error_chain(&e))?;
            Ok::<_, String>((status, version, body))
        });

        tokio::time::timeout(Duration::from_secs(3), started_rx.recv())
            .await
            .expect("handler started")
            .expect("handler signalled");
        let fired = Instant::now();
        server.shut_down();

        let (status, version, body) = in_flight.await.unwrap().expect("in-flight request");
        assert_eq!(status, 200);
        assert_eq!(body, "done");
        let expected = if http1 {
            reqwest::Version::HTTP_11
        } else {
            reqwest::Version::HTTP_2
        };
        assert_eq!(version, expected);
        assert!(
            fired.elapsed() > Duration::from_millis(200),
            "shutdown fired mid-request"
        );

        match TcpStream::connect(server.addr).await {
            Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}"),
            Ok(_) => panic!("a new connection was accepted after shutdown"),
        }
        tokio::time::timeout(Duration::from_secs(2), &mut server.served)
            .await
            .expect("serve_https returns after draining")
            .unwrap()
            .unwrap();
    }
}

/// One HTTP/1.1 request on `stream`, leaving the connection open.
async fn raw_get<S>(stream: &mut S) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    stream
        .write_all(format!("GET / HTTP/1.1\r\nHost: {HOST}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut response = Vec::new();
    let mut buf = [0u8; 1024];
    while !response.ends_with(b"\r\n\r\nok") {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed mid-response");
        response.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&response).into_owned()
}

/// Reads until the peer closes; returns how long that took.
async fn time_until_closed<S>(stream: &mut S, limit: Duration) -> Duration
where
    S: tokio::io::AsyncRead + Unpin,
{
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout_at((start + limit).into(), stream.read(&mut buf)).await {
            Err(_) => panic!("server did not close the connection within {limit:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return start.elapsed(),
            // Session tickets, HTTP/2 SETTINGS: whatever the server sends
            // first, we are waiting for it to give up on us.
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_cap_queues_the_third_connection_until_one_closes() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let b = bundle();
    b.write_to(tmp.path()).unwrap();
    let limits = ListenLimits {
        max_connections: 2,
        // Long enough that idle keep-alive does not free a slot by itself.
        header_read_timeout: Duration::from_secs(30),
        ..ListenLimits::default()
    };
    let server = Server::start(
        &tmp.path().join(certs::CERT_FILE),
        &tmp.path().join(certs::KEY_FILE),
        app(),
        limits,
    )
    .await;

    let mut first = raw_tls(&b.ca_pem, server.addr, b"http/1.1").await.unwrap();
    let mut second = raw_tls(&b.ca_pem, server.addr, b"http/1.1").await.unwrap();
    assert!(raw_get(&mut first).await.starts_with("HTTP/1.1 200"));
    assert!(raw_get(&mut second).await.starts_with("HTTP/1.1 200"));

    let ca = b.ca_pem.clone();
    let addr = server.addr;
    let mut third = tokio::spawn(async move {
        let mut conn = raw_tls(&ca, addr, b"http/1.1").await.unwrap();
        raw_get(&mut conn).await
    });
    assert!(
        tokio::time::timeout(Duration::from_millis(400), &mut third)
            .await
            .is_err(),
        "the third connection was served while two were open"
    );

    drop(first);
    let response = tokio::time::timeout(Duration::from_secs(3), third)
        .await
        .expect("third connection served once a slot freed")
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(raw_get(&mut second).await.starts_with("HTTP/1.1 200"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_client_is_dropped_after_the_handshake_timeout() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let b = bundle();
    b.write_to(tmp.path()).unwrap();
    let handshake_timeout = Duration::from_millis(500);
    let limits = ListenLimits {
        tls_handshake_timeout: handshake_timeout,
        ..ListenLimits::default()
    };
    let server = Server::start(
        &tmp.path().join(certs::CERT_FILE),
        &tmp.path().join(certs::KEY_FILE),
        app(),
        limits,
    )
    .await;

    // Connects, never sends a ClientHello.
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    let closed =
        tokio::spawn(async move { time_until_closed(&mut silent, Duration::from_secs(3)).await });

    // Meanwhile a real client is served.
    assert_eq!(
        fetch(&b.ca_pem, HOST, server.addr).await.as_deref(),
        Ok("ok")
    );

    let after = closed.await.unwrap();
    assert!(
        after >= handshake_timeout - Duration::from_millis(100),
        "closed after {after:?}, before the handshake timeout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_that_never_sends_a_request_is_dropped_on_either_protocol() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let b = bundle();
    b.write_to(tmp.path()).unwrap();
    let header_timeout = Duration::from_millis(500);
    let limits = ListenLimits {
        header_read_timeout: header_timeout,
        ..ListenLimits::default()
    };
    let server = Server::start(
        &tmp.path().join(certs::CERT_FILE),
        &tmp.path().join(certs::KEY_FILE),
        app(),
        limits,
    )
    .await;

    // HTTP/2 is covered by palisade's first-request deadline, HTTP/1.1 by
    // hyper's header read timeout; both must free the slot.
    for alpn in [&b"h2"[..], &b"http/1.1"[..]] {
        let mut idle = raw_tls(&b.ca_pem, server.addr, alpn).await.unwrap();
        assert_eq!(idle.get_ref().1.alpn_protocol(), Some(alpn));
        let after = time_until_closed(&mut idle, Duration::from_secs(3)).await;
        assert!(
            after >= header_timeout - Duration::from_millis(100),
            "{} closed after {after:?}",
            String::from_utf8_lossy(alpn)
        );
    }
    assert_eq!(
        fetch(&b.ca_pem, HOST, server.addr).await.as_deref(),
        Ok("ok")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_gives_up_on_requests_that_outlast_the_drain_timeout() {
    init();
    let tmp = tempfile::tempdir().unwrap();
    let b = bundle();
    b.write_to(tmp.path()).unwrap();
    let (started_tx, mut started_rx) = mpsc::channel::<()>(1);
    let stuck = Router::new().route(
        "/stuck",
        get(move || {
            let started = started_tx.clone();
            async move {
                let _ = started.send(()).await;
                tokio::time::sleep(Duration::from_secs(30)).await;
                "too late"
            }
        }),
    );
    let drain = Duration::from_millis(300);
    let mut server = Server::start(
        &tmp.path().join(certs::CERT_FILE),
        &tmp.path().join(certs::KEY_FILE),
        stuck,
        ListenLimits {
            drain_timeout: drain,
            ..ListenLimits::default()
        },
    )
    .await;
    let client = client(&b.ca_pem, HOST, server.addr);
    let url = format!("https://{HOST}:{}/stuck", server.addr.port());
    let in_flight = tokio::spawn(async move { client.get(url).send().await });
    started_rx.recv().await.expect("handler started");

    let fired = Instant::now();
    server.shut_down();
    tokio::time::timeout(Duration::from_secs(2), &mut server.served)
        .await
        .expect("serve_https gives up after the drain timeout")
        .unwrap()
        .unwrap();
    assert!(
        fired.elapsed() >= drain,
        "returned before the drain timeout"
    );
    let outcome = tokio::time::timeout(Duration::from_secs(2), in_flight)
        .await
        .expect("client sees the connection close")
        .unwrap();
    assert!(outcome.is_err(), "the stuck request cannot have completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_port_serves_and_shuts_down() {
    init();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let served = tokio::spawn(palisade::server::listen::serve_http(
        listener,
        app(),
        async move {
            let _ = rx.await;
        },
    ));
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let body = client
        .get(format!("http://{addr}/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "ok");

    let _ = tx.send(());
    tokio::time::timeout(Duration::from_secs(2), served)
        .await
        .expect("serve_http returns on shutdown")
        .unwrap()
        .unwrap();
    assert!(TcpStream::connect(addr).await.is_err());
}
