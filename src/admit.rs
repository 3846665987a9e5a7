//! The one decision path every command takes: find the namespace a request
//! is about (or, for a cluster-wide policy, the whole cluster), read it
//! from the cluster view, decide, and re-read before a denial that rests on
//! what a watch cache said.

use crate::cluster::{ClusterView, NamespaceView, PreviewModel};
use crate::config::Config;
use crate::decide::{self, Request, Verdict, preview};
use crate::log_field::clip;

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
    let (mut verdict, how) = if webhook == Webhook::Validate && decide::is_cluster_policy(req) {
        // A cluster-wide policy: decided against every namespace,
        // confirmed with the cluster-wide policies read fresh.
        let verdict = decide::validate_cluster_policy(cfg, req, &cluster.cluster_scope());
        if verdict.needs_confirmation() {
            let fresh = cluster.confirm_cluster().await;
            reconsider(verdict, "the cluster-wide policies", fresh, |scope| {
                decide::validate_cluster_policy(cfg, req, &scope)
            })
        } else {
            (verdict, Confirmation::NotNeeded)
        }
    } else {
        let view = match ns.as_deref() {
            Some(n) => cluster.namespace(n),
            None => NamespaceView::default(),
        };
        let verdict = decide_with(cfg, webhook, req, &view);
        match ns.as_deref().filter(|_| verdict.needs_confirmation()) {
            None => (verdict, Confirmation::NotNeeded),
            Some(n) => {
                let fresh = cluster.confirm(n).await;
                reconsider(verdict, &format!("namespace {n}"), fresh, |view| {
                    decide_with(cfg, webhook, req, &view)
                })
            }
        }
    };
    if webhook == Webhook::Validate && preview::wants_preview(req, &verdict) {
        match cluster.preview_model() {
            PreviewModel::Absent => {}
            PreviewModel::Off(why) => verdict.notes.push(format!("palisade preview off: {why}")),
            PreviewModel::Ready(model) => {
                if let Some(notes) = preview::preview_warnings(req, ns.as_deref(), &model) {
                    verdict.notes.extend(notes);
                    verdict.previewed = true;
                }
            }
        }
    }
    (verdict, how)
}

/// A denial decided again on a fresh read of `what`, or kept on the
/// cache's word when the read failed.
fn reconsider<T>(
    verdict: Verdict,
    what: &str,
    fresh: Result<T, crate::cluster::ClusterError>,
    decide_again: impl FnOnce(T) -> Verdict,
) -> (Verdict, Confirmation) {
    match fresh {
        Ok(fresh) => {
            let again = decide_again(fresh);
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
            let error = e.to_string();
            tracing::warn!(read = %clip(what), error = %clip(&error), "could not confirm a denial with a fresh read; the cached view stands");
            (verdict, Confirmation::Failed)
        }
    }
}

/// The pure decision for one webhook against a cluster view, as
/// [`admit`] takes it without the fresh reads: the namespace's view, or
/// the whole cluster's for a cluster-wide policy.
pub fn decide_in(
    cfg: &Config,
    webhook: Webhook,
    req: &Request,
    cluster: &dyn ClusterView,
) -> Verdict {
    if webhook == Webhook::Validate && decide::is_cluster_policy(req) {
        return decide::validate_cluster_policy(cfg, req, &cluster.cluster_scope());
    }
    let view = match decide::request_namespace(req) {
        Some(n) => cluster.namespace(&n),
        None => NamespaceView::default(),
    };
    decide_with(cfg, webhook, req, &view)
}

/// The pure decision for one webhook.
pub fn decide_with(cfg: &Config, webhook: Webhook, req: &Request, view: &NamespaceView) -> Verdict {
    match webhook {
        Webhook::Validate => decide::validate(cfg, req, view),
        Webhook::Mutate => decide::mutate(cfg, req, view),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{ClusterError, ViewStats};
    use crate::decide::{Gvk, Object, Operation, User};
    use crate::netpol::{Directions, PolicyFacts};
    use futures::future::BoxFuture;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A watch cache that has not yet seen a policy the API server has:
    /// the cached view lacks default-deny, a fresh read has it (or fails).
    struct Lagging {
        fresh: Option<NamespaceView>,
        reads: AtomicUsize,
    }

    impl Lagging {
        fn new(fresh: Option<NamespaceView>) -> Self {
            Lagging {
                fresh,
                reads: AtomicUsize::new(0),
            }
        }
    }

    impl ClusterView for Lagging {
        fn namespace(&self, name: &str) -> NamespaceView {
            NamespaceView::unknown(name)
        }
        fn confirm<'a>(
            &'a self,
            name: &'a str,
        ) -> BoxFuture<'a, Result<NamespaceView, ClusterError>> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            let out = self.fresh.clone().ok_or(ClusterError {
                what: format!("namespace {name}"),
                message: "connection refused".into(),
            });
            Box::pin(async move { out })
        }
        fn is_ready(&self) -> bool {
            true
        }
        fn stats(&self) -> ViewStats {
            ViewStats::default()
        }
    }

    fn pod_create() -> Request {
        Request {
            uid: "u".into(),
            kind: Gvk::new("", "v1", "Pod"),
            sub_resource: None,
            operation: Operation::Create,
            namespace: Some("shop".into()),
            name: Some("p".into()),
            user: User::default(),
            dry_run: false,
            object: Some(Object::Pod(Box::default())),
            old_object: None,
        }
    }

    fn fenced() -> NamespaceView {
        NamespaceView {
            name: "shop".into(),
            namespace: None,
            policies: vec![PolicyFacts {
                name: "default-deny".into(),
                default_deny: Directions::BOTH,
                allow_all: Directions::NONE,
            }],
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_denial_from_a_lagging_cache_is_overturned_by_a_fresh_read() {
        let cfg = Config::embedded().unwrap();
        let view = Lagging::new(Some(fenced()));
        let (v, how) = admit(&cfg, &view, Webhook::Validate, &pod_create()).await;
        assert!(v.allowed(), "{v:?}");
        assert_eq!(how, Confirmation::Overturned);
        assert_eq!(view.reads.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_confirmed_or_unconfirmable_denial_stands() {
        let cfg = Config::embedded().unwrap();
        let confirmed = Lagging::new(Some(NamespaceView::unknown("shop")));
        let (v, how) = admit(&cfg, &confirmed, Webhook::Validate, &pod_create()).await;
        assert!(!v.allowed());
        assert_eq!(how, Confirmation::Confirmed);
        let down = Lagging::new(None);
        let (v, how) = admit(&cfg, &down, Webhook::Validate, &pod_create()).await;
        assert!(!v.allowed(), "fails closed");
        assert_eq!(how, Confirmation::Failed);
    }

    #[tokio::test]
    async fn only_denials_cost_a_read() {
        let mut cfg = Config::embedded().unwrap();
        cfg.mode = crate::mode::Mode::Warn;
        let view = Lagging::new(Some(fenced()));
        let (v, how) = admit(&cfg, &view, Webhook::Validate, &pod_create()).await;
        assert!(v.allowed());
        assert_eq!(how, Confirmation::NotNeeded);
        assert_eq!(view.reads.load(Ordering::SeqCst), 0);
    }

    /// A view whose preview switched itself off past its memory budget.
    struct PreviewOff;

    impl ClusterView for PreviewOff {
        fn namespace(&self, name: &str) -> NamespaceView {
            NamespaceView {
                name: name.into(),
                ..fenced()
            }
        }
        fn confirm<'a>(
            &'a self,
            name: &'a str,
        ) -> futures::future::BoxFuture<'a, Result<NamespaceView, crate::cluster::ClusterError>>
        {
            Box::pin(async move { Ok(self.namespace(name)) })
        }
        fn is_ready(&self) -> bool {
            true
        }
        fn stats(&self) -> ViewStats {
            ViewStats::default()
        }
        fn preview_model(&self) -> PreviewModel<'_> {
            PreviewModel::Off("over budget".into())
        }
    }

    #[tokio::test]
    async fn a_preview_switched_off_is_one_warning_that_says_why() {
        let cfg = Config::embedded().unwrap();
        let np: k8s_openapi::api::networking::v1::NetworkPolicy = serde_json::from_value(
            serde_json::json!({"metadata": {"name": "x", "namespace": "shop"}, "spec": {"podSelector": {}}}),
        )
        .unwrap();
        let req = Request {
            kind: Gvk::new("networking.k8s.io", "v1", "NetworkPolicy"),
            name: Some("x".into()),
            dry_run: true,
            object: Some(Object::NetworkPolicy(Box::new(np))),
            ..pod_create()
        };
        let (v, _) = admit(&cfg, &PreviewOff, Webhook::Validate, &req).await;
        assert!(v.allowed(), "{v:?}");
        assert_eq!(
            v.notes,
            vec!["palisade preview off: over budget".to_owned()]
        );
        // A pod review asks for no preview.
        let (v, _) = admit(&cfg, &PreviewOff, Webhook::Validate, &pod_create()).await;
        assert!(v.notes.is_empty());
    }
}
