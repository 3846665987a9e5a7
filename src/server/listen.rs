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
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
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
    /// the server starts waiting for it. It is also the idle timeout: a
    /// connection of either protocol with no request in progress for this
    /// long (none sent yet, or none since the last answer) is closed
    /// gracefully, so idle HTTP/1.1 keep-alive and HTTP/2 connections give
    /// their slot back.
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
    // Tells every connection to finish what is in flight and close.
    // hyper-util's GracefulShutdown would do that too, but it owns the
    // connection, and an idle connection must be closed the same way.
    let (drain, draining) = watch::channel(false);
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
        // A shutdown waits for connections still handshaking too (they are
        // in `tasks`), and they close as soon as they are up.
        let draining = draining.clone();
        let builders = Arc::clone(&builders);
        let app = app.clone();
        let handshaking = handshake(stream, peer);
        let idle_timeout = limits.header_read_timeout;
        tasks.spawn(async move {
            let _permit = permit;
            let Some((io, protocol)) = handshaking.await else {
                return;
            };
            serve_connection(io, protocol, &builders, app, idle_timeout, draining, peer).await;
        });
    }

    // Dropping the listener closes the socket: new connections are refused
    // from here on, which tells a load balancer to try another replica.
    drop(listener);
    let open = tasks.len();
    tracing::info!(%local, scheme, open, "shutting down; draining open connections");
    drain.send_replace(true);
    let drained = tokio::time::timeout(limits.drain_timeout, async {
        while let Some(done) = tasks.join_next().await {
            log_task_end(done);
        }
    })
    .await;
    match drained {
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

/// Requests in progress on one connection, and when the last one started
/// or ended: what decides that a connection is idle.
struct Activity {
    since: Instant,
    in_flight: AtomicUsize,
    /// Nanoseconds from `since` to the last start or end of a request.
    last: AtomicU64,
    ended: Notify,
}

impl Activity {
    fn new() -> Arc<Self> {
        Arc::new(Activity {
            since: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last: AtomicU64::new(0),
            ended: Notify::new(),
        })
    }

    fn touch(&self) {
        let nanos = u64::try_from(self.since.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last.store(nanos, Ordering::Relaxed);
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.touch();
        InFlight(Arc::clone(self))
    }

    /// Resolves once no request has been in progress for `timeout`.
    async fn idle_for(&self, timeout: Duration) {
        loop {
            if self.in_flight.load(Ordering::Acquire) > 0 {
                // A permit stored by an `end` that raced with this check
                // makes the wait return at once.
                self.ended.notified().await;
                continue;
            }
            let last = self.since + Duration::from_nanos(self.last.load(Ordering::Relaxed));
            let deadline = last + timeout;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// One request in progress; dropped when its response is ready or the
/// request is abandoned (a reset stream, a closed connection).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.0.ended.notify_one();
    }
}

/// Serves HTTP on one established connection until it closes, the server
/// drains, or it has had no request in progress for `idle_timeout`.
async fn serve_connection<IO>(
    io: IO,
    protocol: Protocol,
    builders: &Builders,
    app: axum::Router,
    idle_timeout: Duration,
    mut draining: watch::Receiver<bool>,
    peer: SocketAddr,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // hyper's header timeout covers HTTP/1.1 only. A peer that opens
    // HTTP/2 and never sends a request, or sends one and then keeps the
    // connection open without another (answering pings keeps it alive),
    // would hold its slot forever; with the cap, enough of them starve the
    // API server. So every connection is closed once idle, whatever the
    // protocol.
    let activity = Activity::new();
    let tracker = Arc::clone(&activity);
    let service = tower::service_fn(move |req: hyper::Request<Incoming>| {
        let in_flight = tracker.begin();
        let app = app.clone();
        async move {
            let response = app.oneshot(req).await;
            drop(in_flight);
            response
        }
    });
    let conn = builders
        .for_protocol(protocol)
        .serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
    tokio::pin!(conn);
    let already = *draining.borrow();
    if already {
        // Shutdown began while this connection was handshaking.
        conn.as_mut().graceful_shutdown();
    }

    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = async {
            // Either a send(true) or the sender dropping; the guard the
            // wait returns must not live on across the drain.
            let _ = draining.wait_for(|d| *d).await;
        }, if !already => {
            // In-flight requests finish; the drain timeout bounds the wait
            // (the task is aborted when it expires).
            conn.as_mut().graceful_shutdown();
            conn.as_mut().await
        }
        () = activity.idle_for(idle_timeout) => {
            tracing::debug!(%peer, "no request in progress within the idle timeout; closing");
            conn.as_mut().graceful_shutdown();
            // Nothing is in flight: closing is a GOAWAY or a FIN at most. A
            // peer that does not read gets no longer than this.
            match tokio::time::timeout(idle_timeout, conn.as_mut()).await {
                Ok(result) => result,
                Err(_) => return,
            }
        }
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
