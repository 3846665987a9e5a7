//! Prometheus metrics: what was decided, how fast, and whether palisade can
//! see the cluster and prove who it is.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::admit::{Confirmation, Webhook};
use crate::cluster::ViewStats;
use crate::decide::{Request, Verdict};
use crate::generate::create::Outcome;

/// Labels of `palisade_decisions_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    /// `validate` or `mutate`.
    pub webhook: &'static str,
    /// The object's kind if palisade decides it, else `other`: a label
    /// taken as sent would let any client that reaches the port add series
    /// without bound.
    pub kind: &'static str,
    /// CREATE, UPDATE, DELETE, CONNECT.
    pub operation: &'static str,
    /// allow, deny, would-deny, patch, would-patch, skip.
    pub decision: &'static str,
    /// enforce, warn, dry-run.
    pub mode: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabel {
    webhook: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleLabels {
    rule: &'static str,
    mode: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResourceLabel {
    resource: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

/// `palisade_log_lines_dropped_total`: the log writer's count, as it is
/// when scraped.
#[derive(Debug)]
struct LogLinesDropped;

impl Collector for LogLinesDropped {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let counter = ConstCounter::new(super::log::dropped_lines());
        let metric = encoder.encode_descriptor(
            "log_lines_dropped",
            "Log lines dropped because stderr was not read fast enough (reviews are answered regardless).",
            None,
            counter.metric_type(),
        )?;
        counter.encode(metric)
    }
}

/// What a scrape reads from the rest of the server at that moment.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    /// The cluster view has caught up with its source.
    pub synced: bool,
    /// What the cluster view holds.
    pub stats: ViewStats,
    /// `/readyz` would answer 200.
    pub ready: bool,
    /// Whether this replica leads; `None` when it takes part in no election.
    pub leader: Option<bool>,
    /// Seconds since each watch was last known in sync, by resource.
    pub watch_sync_ages: Vec<(&'static str, f64)>,
}

/// Every metric palisade exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    decisions: Family<DecisionLabels, Counter>,
    violations: Family<RuleLabels, Counter>,
    duration: Family<WebhookLabel, Histogram, fn() -> Histogram>,
    bad_requests: Family<WebhookLabel, Counter>,
    confirmations: Family<ResultLabel, Counter>,
    cache_synced: Gauge,
    cache_objects: Family<ResourceLabel, Gauge>,
    cert_expiry: Gauge,
    cert_expiry_seconds: AtomicI64,
    previews: Counter,
    ready: Gauge,
    leader: Family<Vec<(String, String)>, Gauge>,
    watch_sync_age: Family<ResourceLabel, Gauge<f64, AtomicU64>>,
    preview_enabled: Gauge,
    preview_bytes: Gauge,
    generated: Family<OutcomeLabel, Counter>,
    generation_duration: Histogram,
}

fn latency_histogram() -> Histogram {
    // 50 µs to ~6.6 s: admission answers live in the low milliseconds, and
    // anything near or past the API server's 5 s timeout must still land in
    // a bucket of its own, so the p99 alert can see it.
    Histogram::new(exponential_buckets(0.00005, 2.0, 18))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh set of metrics, registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("palisade");
        let decisions = Family::<DecisionLabels, Counter>::default();
        let violations = Family::<RuleLabels, Counter>::default();
        let duration = Family::<WebhookLabel, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let bad_requests = Family::<WebhookLabel, Counter>::default();
        let confirmations = Family::<ResultLabel, Counter>::default();
        let cache_synced = Gauge::default();
        let cache_objects = Family::<ResourceLabel, Gauge>::default();
        let cert_expiry = Gauge::default();
        let previews = Counter::default();
        let ready = Gauge::default();
        let leader = Family::<Vec<(String, String)>, Gauge>::default();
        let watch_sync_age = Family::<ResourceLabel, Gauge<f64, AtomicU64>>::default();
        let preview_enabled = Gauge::default();
        let preview_bytes = Gauge::default();
        let generated = Family::<OutcomeLabel, Counter>::default();
        // Every outcome from the start, at zero: a rate or an alert over
        // an outcome that has not happened yet has a series to read.
        for o in Outcome::ALL {
            let _ = generated.get_or_create(&OutcomeLabel {
                outcome: o.as_str(),
            });
        }
        // 1 ms to ~65 s: a create is milliseconds; a queue behind a burst
        // of new namespaces, or an API server in trouble, is seconds.
        let generation_duration = Histogram::new(exponential_buckets(0.001, 2.0, 17));
        registry.register(
            "decisions",
            "Admission requests decided, by webhook, kind, operation, decision and mode",
            decisions.clone(),
        );
        registry.register(
            "violations",
            "Rules broken, by rule and mode (in warn and dry-run these are would-be denials)",
            violations.clone(),
        );
        registry.register(
            "admission_duration_seconds",
            "Time from a parsed AdmissionReview to its answer, by webhook",
            duration.clone(),
        );
        registry.register(
            "bad_requests",
            "Bodies that were not an AdmissionReview (answered 400) or did not arrive in time (408), by webhook",
            bad_requests.clone(),
        );
        registry.register(
            "confirmations",
            "Denials that rested on the watch cache, by what became of them: a fresh read confirmed, overturned or failed them, or waiting for generation lifted them (generated)",
            confirmations.clone(),
        );
        registry.register(
            "cache_synced",
            "1 when the cluster view has caught up with its source (readiness)",
            cache_synced.clone(),
        );
        registry.register(
            "cache_objects",
            "Objects held by the cluster view, by resource",
            cache_objects.clone(),
        );
        registry.register(
            "certificate_expiry_timestamp_seconds",
            "notAfter of the serving certificate, as a Unix time",
            cert_expiry.clone(),
        );
        registry.register(
            "previews",
            "NetworkPolicy reviews answered with a reachability preview",
            previews.clone(),
        );
        registry.register(
            "ready",
            "1 when /readyz answers 200 (caches synced, certificate trusted, not shutting down)",
            ready.clone(),
        );
        registry.register(
            "leader",
            "1 when this replica holds the leader Lease and writes what palisade keeps: the certificate Secret, generated NetworkPolicies (absent without an election)",
            leader.clone(),
        );
        registry.register(
            "watch_sync_age_seconds",
            "Seconds since a watch was last known to be in sync with the API server, by resource",
            watch_sync_age.clone(),
        );
        registry.register(
            "preview_enabled",
            "1 while the reachability preview is on; 0 when simulate.preview is off or the preview switched itself off past its memory budget (logged)",
            preview_enabled.clone(),
        );
        registry.register(
            "preview_model_bytes",
            "Estimated memory held by the reachability preview's model",
            preview_bytes.clone(),
        );
        registry.register(
            "generated_policies",
            "NetworkPolicies generation planned, by outcome (created, exists, forbidden, invalid, gone, failed; would-create in warn and dry-run)",
            generated.clone(),
        );
        registry.register(
            "generation_duration_seconds",
            "Time from a namespace change reaching the leader to its generated policies being created",
            generation_duration.clone(),
        );
        // Read from the log writer's own count at each scrape.
        registry.register_collector(Box::new(LogLinesDropped));
        Metrics {
            registry,
            decisions,
            violations,
            duration,
            bad_requests,
            confirmations,
            cache_synced,
            cache_objects,
            cert_expiry,
            cert_expiry_seconds: AtomicI64::new(0),
            previews,
            ready,
            leader,
            watch_sync_age,
            preview_enabled,
            preview_bytes,
            generated,
            generation_duration,
        }
    }

    /// Counts one policy generation planned, by what became of it.
    pub fn generated(&self, outcome: Outcome) {
        self.generated
            .get_or_create(&OutcomeLabel {
                outcome: outcome.as_str(),
            })
            .inc();
    }

    /// Records how long a namespace waited for its generated policies.
    pub fn generation_took(&self, seconds: f64) {
        self.generation_duration.observe(seconds);
    }

    /// Counts one decided request.
    pub fn record(
        &self,
        webhook: Webhook,
        req: &Request,
        verdict: &Verdict,
        confirmation: Confirmation,
        seconds: f64,
    ) {
        let mode = verdict.mode.as_str();
        self.decisions
            .get_or_create(&DecisionLabels {
                webhook: webhook.as_str(),
                kind: req.kind.decided_kind().unwrap_or("other"),
                operation: req.operation.as_str(),
                decision: verdict.decision().as_str(),
                mode,
            })
            .inc();
        for v in &verdict.violations {
            self.violations
                .get_or_create(&RuleLabels {
                    rule: v.rule.as_str(),
                    mode,
                })
                .inc();
        }
        let result = match confirmation {
            Confirmation::NotNeeded => None,
            Confirmation::Confirmed => Some("confirmed"),
            Confirmation::Overturned => Some("overturned"),
            Confirmation::Failed => Some("failed"),
            Confirmation::Generated => Some("generated"),
        };
        if verdict.previewed {
            self.previews.inc();
        }
        if let Some(result) = result {
            self.confirmations
                .get_or_create(&ResultLabel { result })
                .inc();
        }
        self.duration
            .get_or_create(&WebhookLabel {
                webhook: webhook.as_str(),
            })
            .observe(seconds);
    }

    /// Counts a body that was not an AdmissionReview.
    pub fn bad_request(&self, webhook: Webhook) {
        self.bad_requests
            .get_or_create(&WebhookLabel {
                webhook: webhook.as_str(),
            })
            .inc();
    }

    /// Sets the serving certificate's expiry.
    pub fn set_certificate_expiry(&self, unix_seconds: i64) {
        self.cert_expiry_seconds
            .store(unix_seconds, Ordering::Relaxed);
        self.cert_expiry.set(unix_seconds);
    }

    /// The text exposition, with the server's state as read now.
    pub fn encode(&self, scrape: &Scrape) -> String {
        let stats = scrape.stats;
        self.cache_synced.set(i64::from(scrape.synced));
        self.ready.set(i64::from(scrape.ready));
        if let Some(leader) = scrape.leader {
            self.leader
                .get_or_create(&Vec::new())
                .set(i64::from(leader));
        }
        for (resource, age) in &scrape.watch_sync_ages {
            self.watch_sync_age
                .get_or_create(&ResourceLabel { resource })
                .set(*age);
        }
        for (resource, n) in [
            ("namespaces", stats.namespaces),
            ("networkpolicies", stats.policies),
            ("clusterpolicies", stats.cluster_policies),
        ] {
            self.cache_objects
                .get_or_create(&ResourceLabel { resource })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        if let Some((bytes, on)) = stats.preview {
            self.preview_enabled.set(i64::from(on));
            self.preview_bytes
                .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        }
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::create_request;
    use crate::decide::{Gvk, Object, Skip, User};
    use crate::mode::Mode;

    fn request(group: &str, kind: &str) -> Request {
        let gvk = Gvk::new(group, "v1", kind);
        let object = Object::Other(gvk.clone());
        create_request(
            &gvk,
            Some("shop"),
            "x",
            &User::default(),
            object,
            "u".into(),
        )
    }

    fn decision_series(text: &str) -> Vec<&str> {
        text.lines()
            .filter(|l| l.starts_with("palisade_decisions_total{"))
            .collect()
    }

    #[test]
    fn made_up_kinds_share_one_series_and_decided_kinds_keep_their_names() {
        let m = Metrics::new();
        let skipped = Verdict::skip(Mode::Enforce, Skip::NotCovered);
        for i in 0..1_000 {
            let req = request("example.com", &format!("Kind{i}"));
            m.record(
                Webhook::Validate,
                &req,
                &skipped,
                Confirmation::NotNeeded,
                0.0,
            );
        }
        // A kind palisade decides, but in another API group, is not it.
        let impostor = request("example.com", "Pod");
        m.record(
            Webhook::Validate,
            &impostor,
            &skipped,
            Confirmation::NotNeeded,
            0.0,
        );
        let allowed = Verdict::new(Mode::Enforce);
        for (group, kind) in [
            ("", "Pod"),
            ("apps", "Deployment"),
            ("networking.k8s.io", "NetworkPolicy"),
        ] {
            m.record(
                Webhook::Validate,
                &request(group, kind),
                &allowed,
                Confirmation::NotNeeded,
                0.0,
            );
        }

        let text = m.encode(&Scrape::default());
        let series = decision_series(&text);
        assert_eq!(series.len(), 4, "{series:#?}");
        let other = series
            .iter()
            .find(|l| l.contains("kind=\"other\""))
            .expect("one series for every kind palisade does not decide");
        assert!(other.ends_with(" 1001"), "{other}");
        for kind in ["Pod", "Deployment", "NetworkPolicy"] {
            assert!(
                series
                    .iter()
                    .any(|l| l.contains(&format!("kind=\"{kind}\"")) && l.ends_with(" 1")),
                "{kind}: {series:#?}"
            );
        }
    }

    #[test]
    fn dropped_log_lines_are_a_counter_read_at_each_scrape() {
        let text = Metrics::new().encode(&Scrape::default());
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("log_lines_dropped"))
            .collect();
        assert_eq!(
            lines,
            [
                "# HELP palisade_log_lines_dropped Log lines dropped because stderr was not read fast enough (reviews are answered regardless).",
                "# TYPE palisade_log_lines_dropped counter",
                // No log writer in this process: nothing dropped.
                "palisade_log_lines_dropped_total 0",
            ],
            "{text}"
        );
    }
}
