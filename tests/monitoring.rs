//! The dashboard and the alerts of deploy/components/monitoring: every
//! query is parsed by a PromQL parser (promql-parser, the parser of a
//! Prometheus-compatible database), and every metric it names is one a
//! running palisade exports, checked against a real scrape of `/metrics`
//! from a replica with self-managed certificates that has answered reviews.
//! The Helm chart's copies must be the same bytes.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use common::api_store::ApiStore;
use common::managed::{api_server_client, deploy_webhooks, readyz, replica, review};
use palisade::certmgr::plan::Policy;
use promql_parser::parser::{self, Expr};
use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every metric name a query selects.
fn names(e: &Expr, out: &mut BTreeSet<String>) {
    match e {
        Expr::VectorSelector(v) => out.extend(v.name.clone()),
        Expr::MatrixSelector(m) => out.extend(m.vs.name.clone()),
        Expr::Aggregate(a) => {
            names(&a.expr, out);
            if let Some(p) = &a.param {
                names(p, out);
            }
        }
        Expr::Unary(u) => names(&u.expr, out),
        Expr::Binary(b) => {
            names(&b.lhs, out);
            names(&b.rhs, out);
        }
        Expr::Paren(p) => names(&p.expr, out),
        Expr::Subquery(s) => names(&s.expr, out),
        Expr::Call(c) => c.args.args.iter().for_each(|a| names(a, out)),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

/// A dashboard query with Grafana's variables given values, as Grafana
/// sends it to Prometheus.
fn as_sent(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$__range", "6h")
        .replace("$job", ".*")
}

fn parse_all(what: &str, exprs: &[String]) -> BTreeSet<String> {
    assert!(!exprs.is_empty(), "{what}: no queries found");
    let mut out = BTreeSet::new();
    for e in exprs {
        let parsed =
            parser::parse(e).unwrap_or_else(|err| panic!("{what}: {e}\ndoes not parse: {err}"));
        names(&parsed, &mut out);
    }
    out
}

fn dashboard_exprs() -> Vec<String> {
    let d: Value = serde_json::from_str(&read(
        "deploy/components/monitoring/palisade-dashboard.json",
    ))
    .expect("the dashboard is JSON");
    d["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .map(|t| as_sent(t["expr"].as_str().expect("expr")))
        .collect()
}

fn rule_exprs() -> Vec<(String, String)> {
    let r: Value =
        serde_saphyr::from_str(&read("deploy/components/monitoring/prometheusrule.yaml"))
            .expect("the PrometheusRule is YAML");
    r["spec"]["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .map(|rule| {
            (
                rule["alert"].as_str().expect("alert name").to_owned(),
                rule["expr"].as_str().expect("expr").to_owned(),
            )
        })
        .collect()
}

/// A scrape of a replica that has answered an allowed, a denied and a bad
/// review, with self-managed certificates (so the leader, readiness and
/// certificate watches report): the metric names, `_bucket`/`_sum`/
/// `_count` of histograms included, as Prometheus stores them.
async fn scraped_names() -> BTreeSet<String> {
    common::init();
    let api = ApiStore::start().await;
    deploy_webhooks(&api);
    let r = replica(&api, Policy::default()).await;
    let end = Instant::now() + Duration::from_secs(20);
    while readyz(r.server.metrics_addr).await.0 != 200 {
        assert!(Instant::now() < end, "never ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let addr = r.server.https_addr;
    let client = api_server_client(&api, addr);
    review(&client, addr, "allowed").await.expect("allowed");
    let mut denied = common::fixture("validating-pod-create-with-labels.json");
    denied["request"]["namespace"] = "fx-open".into();
    denied["request"]["object"]["metadata"]["namespace"] = "fx-open".into();
    for (body, path) in [
        (serde_json::to_vec(&denied).expect("json"), "/validate"),
        (b"not a review".to_vec(), "/validate"),
    ] {
        client
            .post(format!(
                "https://{}:{}{path}",
                common::SERVICE_HOST,
                addr.port()
            ))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("sent");
    }
    let text = reqwest::get(format!("http://{}/metrics", r.server.metrics_addr))
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text");
    r.managed.stop(Duration::from_secs(2)).await;
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap_or_default().to_owned())
        .collect()
}

/// Metrics that come from Prometheus itself, not from palisade.
const FROM_PROMETHEUS: [&str; 1] = ["up"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_and_alerts_name_only_metrics_palisade_exports() {
    let exported = scraped_names().await;
    for must in [
        "palisade_decisions_total",
        "palisade_violations_total",
        "palisade_confirmations_total",
        "palisade_bad_requests_total",
        "palisade_watch_sync_age_seconds",
        "palisade_leader",
        "palisade_ready",
        "palisade_previews_total",
        "palisade_certificate_expiry_timestamp_seconds",
        "palisade_generated_policies_total",
        "palisade_generation_duration_seconds_bucket",
    ] {
        assert!(
            exported.contains(must),
            "the scrape lacks {must}: {exported:#?}"
        );
    }
    let dashboard = parse_all("dashboard", &dashboard_exprs());
    let rules = rule_exprs();
    let alerts = parse_all(
        "PrometheusRule",
        &rules.iter().map(|(_, e)| e.clone()).collect::<Vec<_>>(),
    );
    for (what, used) in [("dashboard", &dashboard), ("PrometheusRule", &alerts)] {
        let unknown: Vec<&String> = used
            .iter()
            .filter(|n| !exported.contains(*n) && !FROM_PROMETHEUS.contains(&n.as_str()))
            .collect();
        assert!(
            unknown.is_empty(),
            "the {what} names metrics palisade does not export: {unknown:?}"
        );
    }
    // What the dashboard promises to show.
    for m in [
        "palisade_decisions_total",
        "palisade_violations_total",
        "palisade_admission_duration_seconds_bucket",
        "palisade_cache_synced",
        "palisade_watch_sync_age_seconds",
        "palisade_cache_objects",
        "palisade_certificate_expiry_timestamp_seconds",
        "palisade_previews_total",
        "palisade_generated_policies_total",
        "palisade_generation_duration_seconds_bucket",
    ] {
        assert!(dashboard.contains(m), "the dashboard should chart {m}");
    }
}

/// Each alert: the runbook section it links to exists in deploy/README.md.
#[test]
fn every_alert_has_a_runbook() {
    let readme = read("deploy/README.md").to_lowercase();
    let rules = rule_exprs();
    assert!(rules.len() >= 7, "{rules:?}");
    for (alert, _) in rules {
        let heading = format!("#### {}", alert.to_lowercase());
        assert!(
            readme.contains(&heading),
            "deploy/README.md has no runbook `#### {alert}`"
        );
    }
}

/// The chart carries the component's files byte for byte.
#[test]
fn the_chart_copies_are_identical() {
    for file in ["palisade-dashboard.json", "prometheusrule.yaml"] {
        let component = read(&format!("deploy/components/monitoring/{file}"));
        let chart = read(&format!("deploy/helm/palisade/files/{file}"));
        assert!(
            component == chart,
            "deploy/helm/palisade/files/{file} differs from the component's; re-sync it with:\n  \
             cp deploy/components/monitoring/{file} deploy/helm/palisade/files/{file}"
        );
    }
}
