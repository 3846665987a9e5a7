//! The one decision path every command takes: find the namespace a request
//! is about, read it from the cluster view, decide, and re-read before a
//! denial that rests on what a watch cache said.

use crate::cluster::{ClusterView, NamespaceView};
use crate::config::Config;
use crate::decide::{self, Request, Verdict};

/// Which webhook is answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Webhook {
    /// `POST /validate`.
    Validate,
    /// `POST /mutate`.
    Mutate,
}

impl Webhook {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Webhook::Validate => "validate",
            Webhook::Mutate => "mutate",
        }
    }
}

/// How a decision was reached, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmation {
    /// The view's answer stood without a second read.
    NotNeeded,
    /// A fresh read agreed with the denial.
    Confirmed,
    /// A fresh read overturned the denial.
    Overturned,
    /// The fresh read failed; the view's answer stands.
    Failed,
}

/// Decides `req` for `webhook` against `cluster` (pure decision, plus at
/// most one fresh read of the namespace before a denial).
pub async fn admit(
    cfg: &Config,
    cluster: &dyn ClusterView,
    webhook: Webhook,
    req: &Request,
) -> (Verdict, Confirmation) {
    let ns = decide::request_namespace(req);
    let view = match ns.as_deref() {
        Some(n) => cluster.namespace(n),
        None => NamespaceView::default(),
    };
    let verdict = decide_with(cfg, webhook, req, &view);
    let Some(ns) = ns.filter(|_| verdict.needs_confirmation()) else {
        return (verdict, Confirmation::NotNeeded);
    };
    match cluster.confirm(&ns).await {
        Ok(fresh) => {
            let again = decide_with(cfg, webhook, req, &fresh);
            let how = if again.allowed() {
                Confirmation::Overturned
            } else {
                Confirmation::Confirmed
            };
            (again, how)
        }
        Err(e) => {
            // Deny on the cache's word: failing closed is what
            // failurePolicy: Fail asks of a webhook that cannot see.
            tracing::warn!(namespace = %ns, error = %e, "could not confirm a denial with a fresh read; the cached view stands");
            (verdict, Confirmation::Failed)
        }
    }
}

/// The pure decision for one webhook.
pub fn decide_with(cfg: &Config, webhook: Webhook, req: &Request, view: &NamespaceView) -> Verdict {
    match webhook {
        Webhook::Validate => decide::validate(cfg, req, view),
        Webhook::Mutate => decide::mutate(cfg, req, view),
    }
}
