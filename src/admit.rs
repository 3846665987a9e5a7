//! The one decision path every command takes: find the namespace a request
//! is about (or, for a cluster-wide policy, the whole cluster), read it
//! from the cluster view, decide, and re-read before a denial that rests on
//! what a watch cache said. Where palisade generates default-denies, a
//! denial only for the lack of one that generation is about to create
//! first waits, a bounded time, for the watch to show it.

use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;

use crate::cluster::{ClusterView, NamespaceView, PreviewModel, Touched};
use crate::config::Config;
use crate::decide::{self, Request, RuleId, Verdict, preview};
use crate::generate::plan::{Plan, Scope, Skip, plan};
use crate::log_field::clip;

/// How long a review waits for generation to fence its namespace. With the
/// fresh read that may follow (at most
/// [`crate::cluster::kube::CONFIRM_TIMEOUT`], 2 s) the answer still leaves
/// well inside the API server's 5 s webhook timeout; generation itself
/// takes milliseconds (`palisade_generation_duration_seconds`).
pub const GENERATION_WAIT: Duration = Duration::from_millis(1500);

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
    /// The denial waited for palisade's generation, and the generated
    /// default-deny appeared in time: decided again, admitted.
    Generated,
}

/// Decides `req` for `webhook` against `cluster` (pure decision, plus at
/// most one fresh read of the namespace before a denial).
pub async fn admit(
    cfg: &Config,
    cluster: &dyn ClusterView,
    webhook: Webhook,
    req: &Request,
) -> (Verdict, Confirmation) {
    admit_generating(cfg, cluster, webhook, req, None).await
}

/// [`admit`], where generation runs with `generating` as its scope: a
/// denial only for the lack of a default-deny generation is about to
/// create first waits up to [`GENERATION_WAIT`] for it.
pub async fn admit_generating(
    cfg: &Config,
    cluster: &dyn ClusterView,
    webhook: Webhook,
    req: &Request,
    generating: Option<&Scope>,
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
            Some(n) => match generating.filter(|s| worth_waiting(cfg, &view, s, &verdict)) {
                None => confirm(cfg, cluster, webhook, req, n, verdict).await,
                Some(scope) => match await_generation(cfg, cluster, webhook, req, n, scope).await {
                    Awaited::Fenced(v) => (v, Confirmation::Generated),
                    Awaited::NotComing => confirm(cfg, cluster, webhook, req, n, verdict).await,
                    Awaited::Late => {
                        tracing::warn!(namespace = %clip(n), waited_ms = GENERATION_WAIT.as_millis() as u64,
                            "the generated default-deny did not appear in time; confirming the denial with a fresh read");
                        let (mut v, how) = confirm(cfg, cluster, webhook, req, n, verdict).await;
                        if !v.allowed() {
                            v.notes.push(format!(
                                "palisade creates the default-deny of new namespaces, and none appeared in namespace {n} within {:.1}s: \
                                 palisade's logs and palisade_generated_policies_total say why",
                                GENERATION_WAIT.as_secs_f64()
                            ));
                        }
                        (v, how)
                    }
                },
            },
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

/// A denial about namespace `ns` decided again on a fresh read of it.
async fn confirm(
    cfg: &Config,
    cluster: &dyn ClusterView,
    webhook: Webhook,
    req: &Request,
    ns: &str,
    verdict: Verdict,
) -> (Verdict, Confirmation) {
    let fresh = cluster.confirm(ns).await;
    reconsider(verdict, &format!("namespace {ns}"), fresh, |view| {
        decide_with(cfg, webhook, req, &view)
    })
}

/// Is `verdict` a denial that generation will lift? Only `require-default-deny`
/// is broken, and generation is about to fence the namespace, or the view
/// has not seen the namespace yet (it is a moment old: the API server
/// admits nothing into a namespace that does not exist).
fn worth_waiting(cfg: &Config, view: &NamespaceView, scope: &Scope, verdict: &Verdict) -> bool {
    let only_fence = !verdict.violations.is_empty()
        && verdict
            .violations
            .iter()
            .all(|v| v.rule == RuleId::RequireDefaultDeny);
    only_fence
        && match plan(cfg, view, scope.age_of(view)) {
            Plan::Generate(g) => g.writes(),
            Plan::Skip(why) => why == Skip::Unseen,
        }
}

/// What became of a wait for generation.
enum Awaited {
    /// Decided again once the policy appeared: admitted.
    Fenced(Verdict),
    /// The namespace turned out to be one generation leaves alone.
    NotComing,
    /// Still unfenced when the wait ran out.
    Late,
}

/// Waits for the view to show the namespace fenced, deciding again at each
/// change to it, for at most [`GENERATION_WAIT`].
async fn await_generation(
    cfg: &Config,
    cluster: &dyn ClusterView,
    webhook: Webhook,
    req: &Request,
    ns: &str,
    scope: &Scope,
) -> Awaited {
    // Listen before looking, so no change falls in between.
    let Some(mut changes) = cluster.changes() else {
        return Awaited::NotComing;
    };
    let deadline = tokio::time::Instant::now() + GENERATION_WAIT;
    loop {
        let view = cluster.namespace(ns);
        let verdict = decide_with(cfg, webhook, req, &view);
        if verdict.allowed() {
            return Awaited::Fenced(verdict);
        }
        if !worth_waiting(cfg, &view, scope, &verdict) {
            return Awaited::NotComing;
        }
        loop {
            match tokio::time::timeout_at(deadline, changes.recv()).await {
                Err(_) => return Awaited::Late,
                Ok(Ok(Touched::Namespace(n))) if &*n != ns => continue,
                Ok(Ok(_) | Err(RecvError::Lagged(_))) => break,
                Ok(Err(RecvError::Closed)) => return Awaited::NotComing,
            }
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

    /// A view a test changes while a review waits, announcing each change
    /// as the watch cache does.
    struct Moving {
        view: std::sync::Mutex<NamespaceView>,
        changes: tokio::sync::broadcast::Sender<Touched>,
    }

    impl Moving {
        fn new(view: NamespaceView) -> std::sync::Arc<Self> {
            std::sync::Arc::new(Moving {
                view: std::sync::Mutex::new(view),
                changes: tokio::sync::broadcast::channel(16).0,
            })
        }

        /// After `ms`, the namespace is `to` (and another one changes first).
        fn becomes(self: &std::sync::Arc<Self>, ms: u64, to: NamespaceView) {
            let me = std::sync::Arc::clone(self);
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                let _ = me.changes.send(Touched::Namespace("elsewhere".into()));
                *me.view.lock().unwrap() = to;
                let _ = me.changes.send(Touched::Namespace("shop".into()));
            });
        }
    }

    impl ClusterView for Moving {
        fn namespace(&self, _: &str) -> NamespaceView {
            self.view.lock().unwrap().clone()
        }
        fn confirm<'a>(
            &'a self,
            name: &'a str,
        ) -> BoxFuture<'a, Result<NamespaceView, ClusterError>> {
            Box::pin(async move { Ok(self.namespace(name)) })
        }
        fn is_ready(&self) -> bool {
            true
        }
        fn stats(&self) -> ViewStats {
            ViewStats::default()
        }
        fn changes(&self) -> Option<tokio::sync::broadcast::Receiver<Touched>> {
            Some(self.changes.subscribe())
        }
    }

    fn seen(labels: &[(&str, &str)]) -> NamespaceView {
        NamespaceView {
            name: "shop".into(),
            namespace: Some(crate::posture::NamespaceInfo {
                labels: labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                terminating: false,
                created: Some(2_000_000),
            }),
            policies: Vec::new(),
            ..Default::default()
        }
    }

    fn generating() -> Config {
        let mut cfg = Config::embedded().unwrap();
        cfg.generate.enabled = true;
        cfg
    }

    /// The shell around the pure decision: a denial only for a default-deny
    /// generation is about to create waits for it, at most
    /// GENERATION_WAIT; anything else is answered at once.
    #[tokio::test]
    async fn a_denial_generation_will_lift_waits_for_it() {
        let scope = Scope::started_at(2_000_000);
        let fenced_shop = || NamespaceView {
            policies: fenced().policies,
            ..seen(&[])
        };
        // Unseen, then seen, then fenced: admitted once fenced.
        let view = Moving::new(NamespaceView::unknown("shop"));
        view.becomes(20, seen(&[]));
        let v2 = std::sync::Arc::clone(&view);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(60)).await;
            *v2.view.lock().unwrap() = fenced_shop();
            let _ = v2.changes.send(Touched::All);
        });
        let cfg = generating();
        let started = std::time::Instant::now();
        let (v, how) =
            admit_generating(&cfg, &*view, Webhook::Validate, &pod_create(), Some(&scope)).await;
        assert!(v.allowed(), "{v:?}");
        assert_eq!(how, Confirmation::Generated);
        assert!(started.elapsed() >= Duration::from_millis(60));

        // Opted out once seen: no waiting for what will not come.
        let view = Moving::new(NamespaceView::unknown("shop"));
        view.becomes(20, seen(&[("palisade.io/generate", "disabled")]));
        let started = std::time::Instant::now();
        let (v, how) =
            admit_generating(&cfg, &*view, Webhook::Validate, &pod_create(), Some(&scope)).await;
        assert!(!v.allowed());
        assert_eq!(how, Confirmation::Confirmed);
        assert!(v.notes.is_empty(), "the usual denial: {:?}", v.notes);
        assert!(started.elapsed() < GENERATION_WAIT);

        // Never fenced: denied after the wait, saying generation was late.
        let view = Moving::new(seen(&[]));
        let (v, how) =
            admit_generating(&cfg, &*view, Webhook::Validate, &pod_create(), Some(&scope)).await;
        assert!(!v.allowed());
        assert_eq!(how, Confirmation::Confirmed);
        assert_eq!(v.notes.len(), 1, "{:?}", v.notes);
        assert!(v.notes[0].contains("none appeared in namespace shop within 1.5s"));

        // No waiting: generation off, not running here, an existing
        // namespace, a dry-run namespace (nothing to lift), another rule.
        let mut off = generating();
        off.generate.enabled = false;
        let old = Scope::started_at(3_000_000);
        let dry = seen(&[("palisade.io/mode", "dry-run")]);
        for (cfg, scope, view) in [
            (&off, Some(&scope), seen(&[])),
            (&cfg, None, seen(&[])),
            (&cfg, Some(&old), seen(&[])),
            (&cfg, Some(&scope), dry),
        ] {
            let started = std::time::Instant::now();
            let (v, how) = admit_generating(
                cfg,
                &*Moving::new(view),
                Webhook::Validate,
                &pod_create(),
                scope,
            )
            .await;
            assert!(v.notes.is_empty(), "{:?}", v.notes);
            assert_ne!(how, Confirmation::Generated);
            assert!(started.elapsed() < Duration::from_millis(500));
        }
        let mut spoof = pod_create();
        if let Some(Object::Pod(p)) = spoof.object.as_mut() {
            p.metadata.labels =
                Some([("palisade.io/role".to_string(), "database".to_string())].into());
        }
        let started = std::time::Instant::now();
        let (v, _) = admit_generating(
            &cfg,
            &*Moving::new(seen(&[])),
            Webhook::Validate,
            &spoof,
            Some(&scope),
        )
        .await;
        assert!(!v.allowed());
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "a second rule broken: no wait"
        );
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
