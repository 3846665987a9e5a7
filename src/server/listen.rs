//! Accept loops for the HTTPS webhook port and the plain-HTTP metrics port.
//!
//! axum's own `serve` cannot terminate TLS, so we drive hyper ourselves:
//! tokio-rustls for the handshake, hyper-util's connection builder for
//! HTTP/1.1 and HTTP/2, and hyper-util's `GracefulShutdown` so a rollout lets
//! the API server's in-flight admission calls finish instead of failing them
//! (a failed call is a denied or unmutated workload under `failurePolicy:
//! Fail`, or an unchecked one under `Ignore`).
//!
//! The API server is the only legitimate client; everything else here is
//! about not letting a slow or hostile peer starve it: a cap on open
//! connections, and timeouts on every phase a peer could stall.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

/// How long to back off after a failed `accept` (e.g. EMFILE): long enough
/// not to spin on a condition that lasts, short enough to recover quickly
/// once a descriptor is freed.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// HTTP/2 keep-alive pings find peers that vanished without a FIN (a node
/// that died, a dropped NAT entry), which would otherwise hold a connection
/// slot forever.
const H2_PING_INTERVAL: Duration = Duration::from_secs(20);
const H2_PING_TIMEOUT: Duration = Duration::from_secs(20);

/// Bounds on what a connection may cost the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenLimits {
    /// Connections served at once. Beyond it, new connections wait in the
    /// kernel's accept backlog until one closes; they are not refused. At
    /// least 1 is used.
    pub max_connections: usize,
    /// Time a client gets to complete the TLS handshake.
    pub tls_handshake_timeout: Duration,
    /// Time a client gets to send a complete request head, counted from when
    /// the server starts waiting for it. For HTTP/1.1 this also closes a
    /// keep-alive connection left idle this long, and for any protocol a
    /// connection that sends no request at all within it.
    pub header_read_timeout: Duration,
    /// After shutdown is signalled, time given to in-flight requests before
    /// their connections are closed anyway. Keep it below the pod's
    /// `terminationGracePeriodSeconds`.
    pub drain_timeout: Duration,
}

impl ListenLimits {
    /// The default [`ListenLimits::drain_timeout`]: Kubernetes' default
    /// grace period is 30 s; leave room to exit.
    pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(25);
}

impl Default for ListenLimits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            tls_handshake_timeout: Duration::from_secs(5),
            header_read_timeout: Duration::from_secs(5),
            drain_timeout: Self::DEFAULT_DRAIN_TIMEOUT,
        }
    }
}

/// Serves `app` over TLS on `listener` until `shutdown` completes, then stops
/// accepting, lets open connections finish their in-flight requests for up
/// to [`ListenLimits::drain_timeout`], and returns.
///
/// The protocol follows ALPN (`h2` or `http/1.1`, see
/// [`super::tls::CertReloader::server_config`]); a client that negotiates none
/// is served whichever it speaks. Failed handshakes and accept errors are
/// logged and never end the loop.
pub async fn serve_https(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: axum::Router,
    limits: ListenLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let acceptor = TlsAcceptor::from(tls);
    let handshake_timeout = limits.tls_handshake_timeout;
    let handshake = move |stream: TcpStream, peer: SocketAddr| {
        let acceptor = acceptor.clone();
        async move {
            match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let protocol = match tls.get_ref().1.alpn_protocol() {
                        Some(b"h2") => Protocol::Http2,
                        Some(b"http/1.1") => Protocol::Http1,
                        _ => Protocol::Detect,
                    };
                    Some((tls, protocol))
                }
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    None
                }
                Err(_) => {
                    tracing::debug!(
                        %peer,
                        timeout_ms = handshake_timeout.as_millis() as u64,
                        "TLS handshake timed out"
                    );
                    None
                }
            }
        }
    };
    serve(listener, app, limits, shutdown, handshake, "https").await
}

/// Serves `app` over plain HTTP (HTTP/1.1, or HTTP/2 with prior knowledge)
/// on `listener`, for the metrics and health port, with the default
/// [`ListenLimits`]; shuts down like [`serve_https`].
pub async fn serve_http(
    listener: TcpListener,
    app: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let handshake =
        |stream: TcpStream, _peer: SocketAddr| async move { Some((stream, Protocol::Detect)) };
    serve(
        listener,
        app,
        ListenLimits::default(),
        shutdown,
        handshake,
        "http",
    )
    .await
}

/// Which HTTP the connection speaks, when the transport already told us.
#[derive(Debug, Clone, Copy)]
enum Protocol {
    Http1,
    Http2,
    /// Read the first bytes and decide (HTTP/2 preface or not).
    Detect,
}

/// One hyper builder per [`Protocol`], built once: pinning the version by
/// ALPN means a client cannot speak a protocol it did not negotiate, and
/// skips the detection read.
struct Builders {
    detect: auto::Builder<TokioExecutor>,
    http1: auto::Builder<TokioExecutor>,
    http2: auto::Builder<TokioExecutor>,
}

impl Builders {
    fn new(limits: &ListenLimits) -> Self {
        let mut detect = auto::Builder::new(TokioExecutor::new());
        detect
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .keep_alive(true);
        detect
            .http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(H2_PING_INTERVAL)
            .keep_alive_timeout(H2_PING_TIMEOUT);
        Self {
            http1: detect.clone().http1_only(),
            http2: detect.clone().http2_only(),
            detect,
        }
    }

    fn for_protocol(&self, protocol: Protocol) -> &auto::Builder<TokioExecutor> {
        match protocol {
            Protocol::Http1 => &self.http1,
            Protocol::Http2 => &self.http2,
            Protocol::Detect => &self.detect,
        }
    }
}

/// The accept loop shared by both ports; `handshake` turns an accepted TCP
/// stream into the IO to serve HTTP on (or `None` to drop it).
async fn serve<H, F, IO>(
    listener: TcpListener,
    app: axum::Router,
    limits: ListenLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
    handshake: H,
    scheme: &'static str,
) -> io::Result<()>
where
    H: Fn(TcpStream, SocketAddr) -> F,
    F: Future<Output = Option<(IO, Protocol)>> + Send + 'static,
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let local = listener.local_addr()?;
    let builders = Arc::new(Builders::new(&limits));
    let permits = Arc::new(Semaphore::new(
        limits.max_connections.clamp(1, Semaphore::MAX_PERMITS),
    ));
    let graceful = GracefulShutdown::new();
    // Owning the connection tasks lets us abort the stragglers when the
    // drain timeout expires instead of leaving them running detached.
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    tracing::info!(%local, scheme, "listening");

    loop {
        // Take a slot before accepting: at the cap we simply stop calling
        // accept, so excess connections queue in the kernel backlog rather
        // than being accepted and starved.
        let permit = tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                log_task_end(done);
                continue;
            }
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(p) => p,
                // We never close the semaphore; treat it like shutdown.
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                log_task_end(done);
                continue;
            }
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(%local, error = %e, "accept failed; retrying");
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                    }
                }
            },
        };
        // Admission responses are small; don't let Nagle hold them back.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(%peer, error = %e, "cannot set TCP_NODELAY");
        }
        // Taken before the handshake so a shutdown waits for connections
        // still handshaking, and tells them to close once they are up.
        let watcher = graceful.watcher();
        let builders = Arc::clone(&builders);
        let app = app.clone();
        let handshaking = handshake(stream, peer);
        let first_request_timeout = limits.header_read_timeout;
        tasks.spawn(async move {
            let _permit = permit;
            let Some((io, protocol)) = handshaking.await else {
                return;
            };
            serve_connection(
                io,
                protocol,
                &builders,
                app,
                first_request_timeout,
                watcher,
                peer,
            )
            .await;
        });
    }

    // Dropping the listener closes the socket: new connections are refused
    // from here on, which tells a load balancer to try another replica.
    drop(listener);
    let open = tasks.len();
    tracing::info!(%local, scheme, open, "shutting down; draining open connections");
    match tokio::time::timeout(limits.drain_timeout, graceful.shutdown()).await {
        Ok(()) => tracing::info!(%local, scheme, "all connections drained"),
        Err(_) => tracing::warn!(
            %local,
            scheme,
            remaining = tasks.len(),
            timeout_ms = limits.drain_timeout.as_millis() as u64,
            "drain timeout expired; closing remaining connections"
        ),
    }
    tasks.shutdown().await;
    Ok(())
}

/// Serves HTTP on one established connection until it closes.
async fn serve_connection<IO>(
    io: IO,
    protocol: Protocol,
    builders: &Builders,
    app: axum::Router,
    first_request_timeout: Duration,
    watcher: Watcher,
    peer: SocketAddr,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // hyper's header timeout covers HTTP/1.1 only; a peer that opens
    // HTTP/2 (or nothing detectable) and never sends a request would hold
    // its slot forever. So the first request must arrive in time, whatever
    // the protocol.
    let first_request = Arc::new(Notify::new());
    let seen = Arc::clone(&first_request);
    let service = app.map_request(move |req: hyper::Request<Incoming>| {
        seen.notify_one();
        req
    });
    let conn = builders
        .for_protocol(protocol)
        .serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
    let conn = watcher.watch(conn);
    tokio::pin!(conn);

    let idle = tokio::time::timeout(first_request_timeout, first_request.notified());
    let result = tokio::select! {
        result = &mut conn => result,
        waited = idle => match waited {
            Ok(()) => (&mut conn).await,
            Err(_) => {
                tracing::debug!(%peer, "no request within the header read timeout; closing");
                return;
            }
        },
    };
    if let Err(e) = result {
        // Peers hanging up mid-request, timeouts and protocol errors are the
        // client's problem, not ours; keep them out of the warn level.
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

fn log_task_end(done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done
        && e.is_panic()
    {
        tracing::error!(error = %e, "connection task panicked");
    }
}
