//! The reachability preview at admission, over HTTPS: a NetworkPolicy
//! change that is a server-side dry run (or in a warn / dry-run namespace)
//! answers with warnings listing what it opens and closes.

mod common;

use common::{TestServer, fixture};
use serde_json::{Value, json};

const STATE: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: fx-apps, labels: {environment: prod}}
---
apiVersion: v1
kind: Namespace
metadata: {name: quiet, labels: {environment: prod, palisade.io/mode: dry-run}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-ingress, namespace: fx-apps}
spec: {podSelector: {}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: frontend-to-backend, namespace: fx-apps}
spec:
  podSelector: {matchLabels: {app: backend}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: frontend}}}]
    ports: [{port: 8080, protocol: TCP}]
  policyTypes: [Ingress]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: frontend, namespace: fx-apps}
spec:
  selector: {matchLabels: {app: frontend}}
  template:
    metadata: {labels: {app: frontend}}
    spec: {containers: [{name: web, image: web:1}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: backend, namespace: fx-apps}
spec:
  selector: {matchLabels: {app: backend}}
  template:
    metadata: {labels: {app: backend}}
    spec: {containers: [{name: api, image: api:1, ports: [{containerPort: 8080}, {containerPort: 9090}]}]}
"#;

async fn server(preview: bool) -> TestServer {
    server_with(preview, "").await
}

/// [`STATE`] plus `extra` manifests.
async fn server_with(preview: bool, extra: &str) -> TestServer {
    let yaml = format!("{STATE}\n---\n{extra}");
    let mut cfg = common::default_config();
    cfg.simulate.preview = preview;
    let cluster = if preview {
        common::state_with_model(&yaml)
    } else {
        common::state(&yaml)
    };
    TestServer::start(cfg, cluster).await
}

fn warnings(resp: &Value) -> Vec<String> {
    resp["warnings"]
        .as_array()
        .map(|w| w.iter().map(|x| x.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

fn dry(mut review: Value) -> Value {
    review["request"]["dryRun"] = json!(true);
    review
}

#[tokio::test]
async fn a_dry_run_update_previews_what_it_opens() {
    let s = server(true).await;
    // The captured re-apply of frontend-to-backend with TCP 9090 added.
    let resp = s
        .review(
            "/validate",
            &dry(fixture(
                "validating-networkpolicy-update-frontend-to-backend.json",
            )),
        )
        .await;
    assert_eq!(resp["allowed"], true);
    assert_eq!(
        warnings(&resp),
        vec![
            "palisade preview of NetworkPolicy fx-apps/frontend-to-backend: opens 1 and closes 0 connections",
            "opens: fx-apps/frontend[Deployment] => fx-apps/backend[Deployment] : TCP 9090",
        ]
    );
    // The same request for real, in enforce mode: no preview.
    let resp = s
        .review(
            "/validate",
            &fixture("validating-networkpolicy-update-frontend-to-backend.json"),
        )
        .await;
    assert!(warnings(&resp).is_empty(), "{resp:#}");
}

#[tokio::test]
async fn a_dry_run_delete_previews_what_it_closes() {
    let s = server(true).await;
    let resp = s
        .review(
            "/validate",
            &dry(fixture(
                "validating-networkpolicy-delete-frontend-to-backend.json",
            )),
        )
        .await;
    let w = warnings(&resp);
    assert_eq!(
        w[0],
        "palisade preview of NetworkPolicy fx-apps/frontend-to-backend: opens 0 and closes 1 connections"
    );
    assert_eq!(
        w[1],
        "closes: fx-apps/frontend[Deployment] => fx-apps/backend[Deployment] : TCP 8080"
    );
}

#[tokio::test]
async fn a_denied_allow_all_still_shows_what_it_would_have_opened_and_counts_past_ten() {
    // Twelve client workloads elsewhere, free to egress: an allow-all
    // ingress in fx-apps opens far more than ten connections.
    let clients: String = (0..12)
        .map(|i| {
            format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: client-{i:02}, namespace: clients}}\n\
                 spec:\n  selector: {{matchLabels: {{app: client-{i:02}}}}}\n  template:\n    \
                 metadata: {{labels: {{app: client-{i:02}}}}}\n    spec: {{containers: [{{name: c, image: c:1}}]}}\n---\n"
            )
        })
        .collect();
    let s = server_with(
        true,
        &format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: clients}}\n---\n{clients}"),
    )
    .await;
    let resp = s
        .review(
            "/validate",
            &dry(fixture(
                "validating-networkpolicy-create-allow-all-ingress.json",
            )),
        )
        .await;
    assert_eq!(
        resp["allowed"], false,
        "allow-all outside dev is still denied"
    );
    let w = warnings(&resp);
    let opened: usize = w[0]
        .strip_prefix("palisade preview of NetworkPolicy fx-apps/allow-all-ingress: opens ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{w:?}"));
    // 12 clients x {frontend, backend}, frontend <-> backend (backend's
    // ingress widened past 8080), and outside addresses to each.
    assert_eq!(opened, 28, "{w:?}");
    assert_eq!(
        w[1..3],
        [
            "opens: clients/client-00[Deployment] => fx-apps/backend[Deployment] : all ports",
            "opens: clients/client-00[Deployment] => fx-apps/frontend[Deployment] : all ports",
        ],
        "{w:?}"
    );
    assert_eq!(
        w.iter().filter(|x| x.starts_with("opens: ")).count(),
        10,
        "{w:?}"
    );
    assert_eq!(w.last().unwrap(), "... and 18 more opened", "{w:?}");
    assert_eq!(w.len(), 12, "{w:?}");
}

#[tokio::test]
async fn a_dry_run_mode_namespace_previews_without_dry_run_and_preview_off_is_silent() {
    let s = server(true).await;
    let mut review = fixture("validating-networkpolicy-create-frontend-to-backend.json");
    review["request"]["namespace"] = json!("quiet");
    review["request"]["object"]["metadata"]["namespace"] = json!("quiet");
    let resp = s.review("/validate", &review).await;
    let w = warnings(&resp);
    assert_eq!(
        w,
        vec![
            "palisade preview of NetworkPolicy quiet/frontend-to-backend: opens 0 and closes 0 connections",
            "this change opens and closes no connection"
        ]
    );

    let off = server(false).await;
    let resp = off
        .review(
            "/validate",
            &dry(fixture(
                "validating-networkpolicy-update-frontend-to-backend.json",
            )),
        )
        .await;
    assert_eq!(resp["allowed"], true);
    assert!(warnings(&resp).is_empty(), "preview is opt-in: {resp:#}");
}
