//! HTTP routes: the two webhooks on the TLS port, and health, readiness and
//! metrics on the plain metrics port.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::metrics::{Metrics, Scrape};
use crate::admit::{self, Webhook};
use crate::cluster::ClusterView;
use crate::config::Config;
use crate::generate::Generating;
use crate::review;

/// Path of the validating webhook.
pub const VALIDATE_PATH: &str = "/validate";
/// Path of the mutating webhook.
pub const MUTATE_PATH: &str = "/mutate";
/// Liveness.
pub const HEALTHZ_PATH: &str = "/healthz";
/// Readiness.
pub const READYZ_PATH: &str = "/readyz";
/// Prometheus metrics.
pub const METRICS_PATH: &str = "/metrics";

/// Limits on what a client may send.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// Largest body accepted. The API server caps objects near 3 MiB and an
    /// UPDATE carries two of them.
    pub max_bytes: usize,
    /// Longest time to receive a body once headers are in.
    pub read_timeout: Duration,
}

impl Default for BodyLimits {
    fn default() -> Self {
        BodyLimits {
            max_bytes: 8 * 1024 * 1024,
            read_timeout: Duration::from_secs(10),
        }
    }
}

/// What a certificate source that is more than files reports (palisade's
/// self-managed certificates): whether the API server would accept what is
/// served, and the state behind it.
pub trait CertificateStatus: Send + Sync {
    /// `None` when the served certificate is trusted by every webhook that
    /// calls palisade; else why not.
    fn not_ready(&self) -> Option<String>;
    /// Whether this replica leads; `None` when it takes part in no election.
    fn leader(&self) -> Option<bool>;
    /// Seconds since each of its watches was last known in sync.
    fn watch_sync_ages(&self) -> Vec<(&'static str, f64)>;
}

/// What the handlers share.
pub struct AppState {
    /// The validated config.
    pub config: Arc<Config>,
    /// Where cluster state comes from.
    pub cluster: Arc<dyn ClusterView>,
    /// Counters and histograms.
    pub metrics: Arc<Metrics>,
    /// Set when shutdown has begun: readiness turns false at once.
    pub shutting_down: Arc<AtomicBool>,
    /// Body limits.
    pub limits: BodyLimits,
    /// Self-managed certificates, when they are the source; `None` for
    /// files (loaded before the listeners start).
    pub certificates: Option<Arc<dyn CertificateStatus>>,
    /// Generation, when it runs: reviews in new namespaces wait for it.
    pub generating: Option<Generating>,
}

/// Why the server is not ready, each reason once; empty when it is.
fn not_ready(s: &AppState) -> Vec<String> {
    let mut why = Vec::new();
    if !s.cluster.is_ready() {
        why.push("cluster watch caches not synced".to_owned());
    }
    if let Some(reason) = s.certificates.as_ref().and_then(|c| c.not_ready()) {
        why.push(reason);
    }
    if s.shutting_down.load(Ordering::Relaxed) {
        why.push("shutting down".to_owned());
    }
    why
}

/// The HTTPS app: `POST /validate` and `POST /mutate`.
pub fn webhook_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(VALIDATE_PATH, post(validate))
        .route(MUTATE_PATH, post(mutate))
        .with_state(state)
}

/// The plain-HTTP app: `/healthz`, `/readyz`, `/metrics`.
pub fn ops_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(HEALTHZ_PATH, get(|| async { "ok" }))
        .route(READYZ_PATH, get(readyz))
        .route(METRICS_PATH, get(metrics))
        .with_state(state)
}

async fn validate(State(s): State<Arc<AppState>>, body: Body) -> Response {
    review_request(&s, Webhook::Validate, body).await
}

async fn mutate(State(s): State<Arc<AppState>>, body: Body) -> Response {
    review_request(&s, Webhook::Mutate, body).await
}

fn bad_request(s: &AppState, webhook: Webhook, reason: String) -> Response {
    s.metrics.bad_request(webhook);
    // A parse error can quote what was sent, and what was sent can be
    // megabytes: the log line keeps a clipped copy, the client gets it all.
    tracing::info!(webhook = webhook.as_str(), reason = %crate::log_field::clip(&reason), "rejected a body that is not an AdmissionReview");
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{reason}\n"),
    )
        .into_response()
}

/// A body that did not arrive within [`BodyLimits::read_timeout`]: 408,
/// not 400, because nothing was wrong with what was sent, only with how
/// slowly (RFC 9110 §15.5.9); and the connection is closed, since the rest
/// of the body may still be on its way. The API server sends a review in one
/// go, so only slow or hostile peers see this.
fn body_timeout(s: &AppState, webhook: Webhook) -> Response {
    let reason = "timed out reading the request body";
    s.metrics.bad_request(webhook);
    tracing::info!(
        webhook = webhook.as_str(),
        reason,
        "gave up on a slow request body"
    );
    (
        StatusCode::REQUEST_TIMEOUT,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CONNECTION, "close"),
        ],
        format!("{reason}\n"),
    )
        .into_response()
}

async fn review_request(s: &AppState, webhook: Webhook, body: Body) -> Response {
    let limit = s.limits.max_bytes;
    let bytes = match tokio::time::timeout(s.limits.read_timeout, axum::body::to_bytes(body, limit))
        .await
    {
        Err(_) => return body_timeout(s, webhook),
        Ok(Err(e)) => {
            let too_big = std::error::Error::source(&e)
                .is_some_and(|src| src.is::<http_body_util::LengthLimitError>());
            let reason = if too_big {
                format!("request body exceeds the limit of {limit} bytes")
            } else {
                format!("cannot read the request body: {e}")
            };
            return bad_request(s, webhook, reason);
        }
        Ok(Ok(b)) => b,
    };
    let req = match review::parse(&bytes) {
        Ok(r) => r,
        Err(e) => return bad_request(s, webhook, e.to_string()),
    };
    let started = Instant::now();
    let scope = s.generating.as_ref().map(|g| &g.scope);
    let (verdict, confirmation) =
        admit::admit_generating(&s.config, s.cluster.as_ref(), webhook, &req, scope).await;
    let body = review::respond(&req.uid, &verdict, webhook == Webhook::Mutate);
    let elapsed = started.elapsed();
    s.metrics
        .record(webhook, &req, &verdict, confirmation, elapsed.as_secs_f64());
    super::log::decision(webhook, &req, &verdict, confirmation, elapsed);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

async fn readyz(State(s): State<Arc<AppState>>) -> Response {
    let why = not_ready(&s);
    if why.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", why.join("; ")),
        )
            .into_response()
    }
}

async fn metrics(State(s): State<Arc<AppState>>) -> Response {
    let mut watch_sync_ages = s.cluster.watch_sync_ages();
    if let Some(c) = &s.certificates {
        watch_sync_ages.extend(c.watch_sync_ages());
    }
    let text = s.metrics.encode(&Scrape {
        synced: s.cluster.is_ready(),
        stats: s.cluster.stats(),
        ready: not_ready(&s).is_empty(),
        leader: s
            .generating
            .as_ref()
            .map(|g| g.leadership.is_leader())
            .or_else(|| s.certificates.as_ref().and_then(|c| c.leader())),
        watch_sync_ages,
    });
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}
