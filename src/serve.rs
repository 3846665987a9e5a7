//! `palisade serve`: bind, load certificates, start the cluster view, serve
//! the webhooks and the ops port until SIGTERM, then drain.
//!
//! [`start`] takes already-decided [`Settings`] so tests run the very same
//! server on `127.0.0.1:0` that the binary runs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::certmgr::replica::Replica;
use crate::cluster::ClusterView;
use crate::config::Config;
use crate::generate::Generating;
use crate::server::listen::{self, ListenLimits};
use crate::server::metrics::Metrics;
use crate::server::routes::{self, AppState, BodyLimits, CertificateStatus};
use crate::server::tls::{CertReloader, ServingCert, TlsError};

/// The webhook port `--listen` defaults to.
pub const DEFAULT_WEBHOOK_PORT: u16 = 8443;
/// The metrics port `--metrics-listen` defaults to.
pub const DEFAULT_METRICS_PORT: u16 = 9090;

/// How often certificate files are re-checked even without a change event.
const CERT_POLL: Duration = Duration::from_secs(10);

/// Why the server could not start or stopped with an error.
#[derive(Debug, Error)]
pub enum ServeError {
    /// The certificate or key could not be loaded.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// An address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A serving loop failed.
    #[error("{what} server failed: {source}")]
    Serve {
        /// `webhook` or `metrics`.
        what: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Where the serving certificate comes from.
pub enum TlsSource {
    /// PEM files, loaded before the listeners start and re-read when they
    /// change.
    Files {
        /// The certificate chain.
        cert: PathBuf,
        /// The private key.
        key: PathBuf,
    },
    /// palisade's self-managed certificate Secret, read through the API:
    /// the listeners start at once, and the server is ready once the
    /// certificate is loaded and trusted by both webhook configurations.
    Managed(Arc<Replica>),
}

/// Everything the server needs, decided by the caller.
pub struct Settings {
    /// The validated config.
    pub config: Arc<Config>,
    /// Cluster state.
    pub cluster: Arc<dyn ClusterView>,
    /// HTTPS address of the webhooks.
    pub listen: SocketAddr,
    /// Plain-HTTP address of `/healthz`, `/readyz`, `/metrics`.
    pub metrics_listen: SocketAddr,
    /// Where the serving certificate comes from.
    pub tls: TlsSource,
    /// Connection limits and timeouts.
    pub limits: ListenLimits,
    /// Body limits.
    pub body: BodyLimits,
    /// Generation, when it runs here (reviews in new namespaces wait for
    /// it); its writer counts into [`Server::metrics`].
    pub generating: Option<Generating>,
}

/// A running server.
pub struct Server {
    /// Where the webhooks answer.
    pub https_addr: SocketAddr,
    /// Where `/metrics` answers.
    pub metrics_addr: SocketAddr,
    /// What `/metrics` exports, for whatever else counts into it.
    pub metrics: Arc<Metrics>,
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<(), ServeError>>,
}

impl Server {
    /// Starts a graceful shutdown: stop accepting, finish in-flight reviews.
    pub fn shutdown(&self) {
        let _ = self.stop.send(true);
    }

    /// Waits until both listeners have stopped.
    pub async fn wait(self) -> Result<(), ServeError> {
        match self.task.await {
            Ok(r) => r,
            Err(e) => Err(ServeError::Serve {
                what: "webhook",
                source: std::io::Error::other(e),
            }),
        }
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}

/// Binds both addresses, loads the certificate and starts serving.
pub async fn start(s: Settings) -> Result<Server, ServeError> {
    let (serving, certificates, watcher) = match s.tls {
        TlsSource::Files { cert, key } => {
            let reloader = CertReloader::load(&cert, &key)?;
            let serving = Arc::clone(reloader.serving());
            (serving, None, Some(reloader.spawn_watcher(CERT_POLL)))
        }
        TlsSource::Managed(replica) => {
            let serving = Arc::clone(replica.serving());
            (serving, Some(replica as Arc<dyn CertificateStatus>), None)
        }
    };
    let tls = serving.server_config()?;
    let https = bind(s.listen).await?;
    let ops = bind(s.metrics_listen).await?;
    let https_addr = https.local_addr().map_err(|source| ServeError::Bind {
        addr: s.listen,
        source,
    })?;
    let metrics_addr = ops.local_addr().map_err(|source| ServeError::Bind {
        addr: s.metrics_listen,
        source,
    })?;

    let shutting_down = Arc::new(AtomicBool::new(false));
    let metrics = Arc::new(Metrics::new());
    let state = Arc::new(AppState {
        config: s.config,
        cluster: s.cluster,
        metrics: Arc::clone(&metrics),
        shutting_down: Arc::clone(&shutting_down),
        limits: s.body,
        certificates,
        generating: s.generating,
    });

    let expiry = spawn_expiry_gauge(serving, Arc::clone(&state.metrics));

    let (stop, stopped) = watch::channel(false);
    let signal = |mut rx: watch::Receiver<bool>| async move {
        // Either a send(true) or the sender dropping ends the wait.
        let _ = rx.wait_for(|v| *v).await;
    };
    let webhook = listen::serve_https(
        https,
        tls,
        routes::webhook_router(Arc::clone(&state)),
        s.limits,
        {
            let flag = Arc::clone(&shutting_down);
            let wait = signal(stopped.clone());
            async move {
                wait.await;
                // /readyz turns false at once so no new traffic is routed here.
                flag.store(true, Ordering::Relaxed);
            }
        },
    );
    let ops_server = listen::serve_http(ops, routes::ops_router(state), signal(stopped));
    tracing::info!(%https_addr, %metrics_addr, "palisade is serving");
    let task = tokio::spawn(async move {
        let (w, o) = tokio::join!(webhook, ops_server);
        if let Some(w) = watcher {
            w.abort();
        }
        expiry.abort();
        w.map_err(|source| ServeError::Serve {
            what: "webhook",
            source,
        })?;
        o.map_err(|source| ServeError::Serve {
            what: "metrics",
            source,
        })?;
        Ok(())
    });
    Ok(Server {
        https_addr,
        metrics_addr,
        metrics,
        stop,
        task,
    })
}

fn spawn_expiry_gauge(serving: Arc<ServingCert>, metrics: Arc<Metrics>) -> JoinHandle<()> {
    tokio::spawn(async move {
        // Often enough that a certificate loaded from the Secret shows
        // within a scrape interval.
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            if let Some(t) = serving.not_after() {
                metrics.set_certificate_expiry(t);
            }
        }
    })
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn termination() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the server");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
