//! The validating webhook end to end: every captured `validating-*` review
//! posted over real HTTPS to a running server, under several cluster
//! states, with the verdict asserted per fixture and state; then the rules
//! the captures do not exercise directly, on captured envelopes whose
//! objects were edited; then bodies that are not reviews.

mod common;

use common::{TestServer, default_config, fixture, fixture_names, state};
use palisade::server::routes::BodyLimits;
use serde_json::{Value, json};

/// fx-apps and kcm-test are production namespaces with a default-deny for
/// both directions; fx-plain exists with no labels.
const FENCED: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: fx-apps, labels: {environment: prod}}
---
apiVersion: v1
kind: Namespace
metadata: {name: kcm-test}
---
apiVersion: v1
kind: Namespace
metadata: {name: fx-plain}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny-all, namespace: fx-apps}
spec: {podSelector: {}, policyTypes: [Ingress, Egress]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny, namespace: kcm-test}
spec: {podSelector: {}, policyTypes: [Ingress, Egress]}
"#;

/// The same namespaces with no NetworkPolicy at all.
const OPEN: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: fx-apps, labels: {environment: prod}}
---
apiVersion: v1
kind: Namespace
metadata: {name: kcm-test}
---
apiVersion: v1
kind: Namespace
metadata: {name: fx-plain}
"#;

/// fx-apps is a dev namespace with only an Ingress default-deny.
const DEV: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: fx-apps, labels: {environment: dev}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-ingress, namespace: fx-apps}
spec: {podSelector: {}}
"#;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Want {
    /// Allowed, no warnings.
    Allow,
    /// Not decided (exempt, or a kind/operation palisade has no rule for).
    Skip,
    /// Allowed with a warning containing this text.
    Warn(&'static str),
    /// Denied by this rule.
    Deny(&'static str),
}
use Want::*;

/// (fixture, FENCED, OPEN, DEV)
const TABLE: &[(&str, Want, Want, Want)] = &[
    (
        "validating-deployment-create-two-replicas.json",
        Allow,
        Deny("require-default-deny"),
        Deny("require-default-deny"),
    ),
    (
        "validating-namespace-create-no-labels.json",
        Allow,
        Allow,
        Allow,
    ),
    (
        "validating-namespace-create-with-labels.json",
        Allow,
        Allow,
        Allow,
    ),
    (
        "validating-namespace-delete-plain-namespace.json",
        Skip,
        Skip,
        Skip,
    ),
    (
        "validating-namespace-update-add-label.json",
        Allow,
        Allow,
        Allow,
    ),
    (
        "validating-networkpolicy-create-allow-all-ingress.json",
        Deny("no-allow-all"),
        Deny("no-allow-all"),
        Allow,
    ),
    (
        "validating-networkpolicy-create-allow-from-all-namespaces.json",
        Deny("no-allow-all"),
        Deny("no-allow-all"),
        Allow,
    ),
    (
        "validating-networkpolicy-create-default-deny-all.json",
        Allow,
        Allow,
        Allow,
    ),
    (
        "validating-networkpolicy-create-egress-ipblock-any.json",
        Warn("every address of 0.0.0.0/0 except 169.254.169.254/32"),
        Warn("every address of 0.0.0.0/0 except 169.254.169.254/32"),
        Warn("every address of 0.0.0.0/0 except 169.254.169.254/32"),
    ),
    (
        "validating-networkpolicy-create-frontend-to-backend.json",
        Allow,
        Allow,
        Allow,
    ),
    (
        "validating-networkpolicy-delete-frontend-to-backend.json",
        Allow,
        Allow,
        Allow,
    ),
    (
        "validating-networkpolicy-update-frontend-to-backend.json",
        Allow,
        Allow,
        Allow,
    ),
    (
        "validating-pod-create-after-labels-map-patch.json",
        Allow,
        Deny("require-default-deny"),
        Deny("require-default-deny"),
    ),
    (
        "validating-pod-create-after-native-sidecar-patch.json",
        Allow,
        Deny("require-default-deny"),
        Deny("require-default-deny"),
    ),
    (
        "validating-pod-create-after-sidecar-patch.json",
        Allow,
        Deny("require-default-deny"),
        Deny("require-default-deny"),
    ),
    (
        "validating-pod-create-dry-run-server.json",
        Allow,
        Deny("require-default-deny"),
        Deny("require-default-deny"),
    ),
    (
        "validating-pod-create-generate-name.json",
        Allow,
        Deny("require-default-deny"),
        Deny("require-default-deny"),
    ),
    (
        "validating-pod-create-host-network.json",
        Allow,
        Deny("require-default-deny"),
        Deny("require-default-deny"),
    ),
    (
        "validating-pod-create-no-labels.json",
        Allow,
        Deny("require-default-deny"),
        Deny("require-default-deny"),
    ),
    (
        "validating-pod-create-non-admin-user.json",
        Allow,
        Deny("require-default-deny"),
        Deny("require-default-deny"),
    ),
    (
        "validating-pod-create-replicaset-controller.json",
        Allow,
        Deny("require-default-deny"),
        Deny("require-default-deny"),
    ),
    (
        "validating-pod-create-with-init-container.json",
        Allow,
        Deny("require-default-deny"),
        Deny("require-default-deny"),
    ),
    (
        "validating-pod-create-with-labels.json",
        Allow,
        Deny("require-default-deny"),
        Deny("require-default-deny"),
    ),
    (
        "validating-pod-delete-bare-pod-call2.json",
        Skip,
        Skip,
        Skip,
    ),
    (
        "validating-pod-delete-bare-pod-call3.json",
        Skip,
        Skip,
        Skip,
    ),
    ("validating-pod-delete-bare-pod.json", Skip, Skip, Skip),
    (
        "validating-pod-delete-namespace-controller.json",
        Skip,
        Skip,
        Skip,
    ),
    (
        "validating-pod-update-add-label.json",
        Allow,
        Deny("require-default-deny"),
        Deny("require-default-deny"),
    ),
];

fn check(fixture_name: &str, state_name: &str, want: Want, resp: &Value) {
    let at = format!("{fixture_name} in {state_name}: {resp:#}");
    let decision = resp["auditAnnotations"]["decision"].as_str().unwrap_or("");
    let warnings: Vec<&str> = resp["warnings"]
        .as_array()
        .map(|w| w.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert!(
        resp.get("patch").is_none(),
        "a validating webhook never patches: {at}"
    );
    match want {
        Allow | Skip | Warn(_) => {
            assert_eq!(resp["allowed"], true, "{at}");
            assert!(resp.get("status").is_none(), "{at}");
            assert_eq!(
                decision,
                if want == Skip { "skip" } else { "allow" },
                "{at}"
            );
            match want {
                Warn(text) => assert!(warnings.iter().any(|w| w.contains(text)), "{at}"),
                _ => assert!(warnings.is_empty(), "{at}"),
            }
        }
        Deny(rule) => {
            assert_eq!(resp["allowed"], false, "{at}");
            assert_eq!(resp["status"]["code"], 403, "{at}");
            assert_eq!(resp["status"]["reason"], "Forbidden", "{at}");
            let msg = resp["status"]["message"].as_str().unwrap_or("");
            assert!(msg.starts_with(&format!("[{rule}] ")), "{at}");
            assert_eq!(resp["auditAnnotations"]["rules"], rule, "{at}");
            assert_eq!(decision, "deny", "{at}");
        }
    }
}

#[tokio::test]
async fn every_validating_fixture_in_every_state() {
    let names = fixture_names("validating-");
    let listed: Vec<&str> = TABLE.iter().map(|r| r.0).collect();
    assert_eq!(
        names, listed,
        "every captured validating fixture has a row, and only those"
    );
    let servers = [
        (
            "FENCED",
            TestServer::start(default_config(), state(FENCED)).await,
        ),
        (
            "OPEN",
            TestServer::start(default_config(), state(OPEN)).await,
        ),
        ("DEV", TestServer::start(default_config(), state(DEV)).await),
    ];
    for (name, fenced, open, dev) in TABLE {
        let review = fixture(name);
        for ((state_name, server), want) in servers.iter().zip([*fenced, *open, *dev]) {
            let resp = server.review("/validate", &review).await;
            check(name, state_name, want, &resp);
        }
    }
    // Every decision was counted.
    let metrics = servers[1].1.metrics().await;
    assert!(
        metrics.contains(r#"palisade_decisions_total{webhook="validate",kind="Pod",operation="CREATE",decision="deny",mode="enforce"} 11"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_missing_default_deny_denial_prints_the_policy_that_fixes_it() {
    let server = TestServer::start(default_config(), state(DEV)).await;
    let resp = server
        .review(
            "/validate",
            &fixture("validating-pod-create-with-labels.json"),
        )
        .await;
    let msg = resp["status"]["message"].as_str().unwrap();
    assert!(
        msg.contains(
            "Pod fx-apps/web: namespace fx-apps has no default-deny NetworkPolicy for Egress."
        ),
        "{msg}"
    );
    // The YAML in the message is a policy that provides what is missing.
    let yaml = msg
        .split("\n\n")
        .nth(1)
        .expect("manifest after a blank line");
    let np: k8s_openapi::api::networking::v1::NetworkPolicy = serde_saphyr::from_str(yaml).unwrap();
    let p = palisade::netpol::Policy::from_k8s(&np, "x").unwrap();
    assert_eq!(p.namespace, "fx-apps");
    assert!(p.is_default_deny(palisade::netpol::Direction::Egress));
    assert_eq!(p.name, "default-deny-egress");
}

#[tokio::test]
async fn dry_run_requests_are_decided_like_real_ones() {
    for st in [FENCED, OPEN] {
        let server = TestServer::start(default_config(), state(st)).await;
        let real = fixture("validating-pod-create-with-labels.json");
        let mut dry = real.clone();
        dry["request"]["dryRun"] = json!(true);
        let a = server.review("/validate", &real).await;
        let b = server.review("/validate", &dry).await;
        assert_eq!(a, b);
        let captured = server
            .review(
                "/validate",
                &fixture("validating-pod-create-dry-run-server.json"),
            )
            .await;
        assert_eq!(captured["allowed"], a["allowed"]);
    }
}

/// A captured envelope with its object (and old object) replaced.
fn edited(name: &str, edit: impl FnOnce(&mut Value)) -> Value {
    let mut v = fixture(name);
    edit(&mut v["request"]);
    v
}

fn default_deny_object(name: &str) -> Value {
    json!({
        "kind": "NetworkPolicy", "apiVersion": "networking.k8s.io/v1",
        "metadata": {"name": name, "namespace": "fx-apps"},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    })
}

#[tokio::test]
async fn the_last_default_deny_cannot_be_deleted_or_weakened() {
    let delete_last = edited(
        "validating-networkpolicy-delete-frontend-to-backend.json",
        |r| {
            r["name"] = json!("default-deny-all");
            r["oldObject"] = default_deny_object("default-deny-all");
        },
    );
    let server = TestServer::start(default_config(), state(FENCED)).await;
    // The API server sends one delete several times: each call gets the same answer.
    for _ in 0..3 {
        let resp = server.review("/validate", &delete_last).await;
        assert_eq!(resp["allowed"], false, "{resp:#}");
        let msg = resp["status"]["message"].as_str().unwrap();
        assert!(msg.starts_with("[keep-default-deny] deleting NetworkPolicy fx-apps/default-deny-all removes its default-deny for Ingress and Egress"), "{msg}");
    }

    // Losing one required direction is enough.
    let weaken = edited(
        "validating-networkpolicy-update-frontend-to-backend.json",
        |r| {
            r["name"] = json!("default-deny-all");
            r["oldObject"] = default_deny_object("default-deny-all");
            let mut new = default_deny_object("default-deny-all");
            new["spec"]["egress"] = json!([{"to": [{"podSelector": {}}]}]);
            r["object"] = new;
        },
    );
    let resp = server.review("/validate", &weaken).await;
    assert_eq!(resp["allowed"], false, "{resp:#}");
    assert!(
        resp["status"]["message"]
            .as_str()
            .unwrap()
            .contains("no longer default-deny for Egress")
    );

    // With a second default-deny in place, the first may go.
    let two = format!(
        "{FENCED}---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: backup, namespace: fx-apps}}\nspec: {{podSelector: {{}}, policyTypes: [Ingress, Egress]}}\n"
    );
    let server = TestServer::start(default_config(), state(&two)).await;
    assert_eq!(
        server.review("/validate", &delete_last).await["allowed"],
        true
    );

    // In a Terminating namespace every deletion is allowed, whoever makes it.
    let terminating = FENCED.replace(
        "metadata: {name: fx-apps, labels: {environment: prod}}",
        "metadata: {name: fx-apps, labels: {environment: prod}}\nstatus: {phase: Terminating}",
    );
    let server = TestServer::start(default_config(), state(&terminating)).await;
    let mut by_controller = delete_last.clone();
    by_controller["request"]["userInfo"] = json!({"username": "system:serviceaccount:kube-system:namespace-controller", "groups": ["system:serviceaccounts"]});
    assert_eq!(
        server.review("/validate", &by_controller).await["allowed"],
        true
    );
}

fn namespace_update(old_labels: Value, new_labels: Value, user: &str, groups: &[&str]) -> Value {
    edited("validating-namespace-update-add-label.json", |r| {
        r["oldObject"]["metadata"]["labels"] = old_labels;
        r["object"]["metadata"]["labels"] = new_labels;
        r["userInfo"] = json!({"username": user, "groups": groups});
    })
}

#[tokio::test]
async fn weakening_namespace_labels_need_a_trusted_group() {
    let server = TestServer::start(default_config(), state(OPEN)).await;
    let base = json!({"kubernetes.io/metadata.name": "fx-plain"});
    let mut dry = base.clone();
    dry["palisade.io/mode"] = json!("dry-run");
    let mut dev = base.clone();
    dev["environment"] = json!("dev");
    let mut stronger = base.clone();
    stronger["palisade.io/mode"] = json!("enforce");
    let mut bogus = base.clone();
    bogus["palisade.io/mode"] = json!("off");

    let cases = [
        (
            dry.clone(),
            "dev-user",
            vec!["dev-team"],
            Some("trusted-labels"),
        ),
        (
            dry.clone(),
            "kubernetes-admin",
            vec!["system:masters"],
            None,
        ),
        (
            dev.clone(),
            "dev-user",
            vec!["dev-team"],
            Some("trusted-labels"),
        ),
        (
            dev.clone(),
            "kubernetes-admin",
            vec!["system:masters"],
            None,
        ),
        (stronger, "dev-user", vec!["dev-team"], None),
        (
            bogus,
            "kubernetes-admin",
            vec!["system:masters"],
            Some("valid-mode-label"),
        ),
    ];
    for (labels, user, groups, rule) in cases {
        let resp = server
            .review(
                "/validate",
                &namespace_update(base.clone(), labels.clone(), user, &groups),
            )
            .await;
        match rule {
            None => assert_eq!(resp["allowed"], true, "{labels} by {user}: {resp:#}"),
            Some(rule) => {
                assert_eq!(resp["allowed"], false, "{labels} by {user}: {resp:#}");
                assert_eq!(resp["auditAnnotations"]["rules"], rule);
            }
        }
    }
    // The message says who may, and why.
    let resp = server
        .review(
            "/validate",
            &namespace_update(base.clone(), dry.clone(), "dev-user", &["dev-team"]),
        )
        .await;
    let msg = resp["status"]["message"].as_str().unwrap();
    assert!(
        msg.contains("only members of system:masters may set palisade.io/mode=dry-run; user dev-user (groups: dev-team) is not"),
        "{msg}"
    );
    // A namespace update is judged under its OLD labels: a namespace already
    // in dry-run mode records the violation but the request goes through,
    // while one that tries to put itself in dry-run is judged in enforce.
    let resp = server
        .review(
            "/validate",
            &namespace_update(dry.clone(), dev.clone(), "dev-user", &["dev-team"]),
        )
        .await;
    assert_eq!(resp["allowed"], true, "{resp:#}");
    assert_eq!(resp["auditAnnotations"]["decision"], "would-deny");
    assert_eq!(resp["auditAnnotations"]["mode"], "dry-run");
}

#[tokio::test]
async fn a_namespace_with_allow_all_policies_cannot_leave_dev() {
    let dev_with_allow_all = r#"
apiVersion: v1
kind: Namespace
metadata: {name: fx-plain, labels: {environment: dev}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: open-door, namespace: fx-plain}
spec: {podSelector: {}, ingress: [{}]}
"#;
    let server = TestServer::start(default_config(), state(dev_with_allow_all)).await;
    let dev = json!({"kubernetes.io/metadata.name": "fx-plain", "environment": "dev"});
    let prod = json!({"kubernetes.io/metadata.name": "fx-plain", "environment": "prod"});
    let resp = server
        .review(
            "/validate",
            &namespace_update(dev.clone(), prod, "kubernetes-admin", &["system:masters"]),
        )
        .await;
    assert_eq!(resp["allowed"], false, "{resp:#}");
    let msg = resp["status"]["message"].as_str().unwrap();
    assert!(msg.contains("cannot leave dev (environment=prod) while it holds allow-all NetworkPolicies: open-door (Ingress)"), "{msg}");
    // Without the label at all it is not dev either.
    let bare = json!({"kubernetes.io/metadata.name": "fx-plain"});
    let resp = server
        .review(
            "/validate",
            &namespace_update(dev, bare, "kubernetes-admin", &["system:masters"]),
        )
        .await;
    assert_eq!(resp["allowed"], false);
}

#[tokio::test]
async fn a_pod_cannot_relabel_itself_into_a_role() {
    let server = TestServer::start(default_config(), state(FENCED)).await;
    // The captured label change, with the role label forged instead.
    let forge = |value: &str| {
        edited("validating-pod-update-add-label.json", |r| {
            r["object"]["metadata"]["labels"]["palisade.io/role"] = json!(value);
            r["oldObject"]["metadata"]["labels"]["palisade.io/role"] = json!("frontend");
        })
    };
    let resp = server.review("/validate", &forge("database")).await;
    assert_eq!(resp["allowed"], false, "{resp:#}");
    let msg = resp["status"]["message"].as_str().unwrap();
    assert!(
        msg.contains("this pod must carry palisade.io/role=frontend (roles.rules["),
        "the pod (app: frontend) derives frontend: {msg}"
    );
    assert!(msg.contains("not palisade.io/role=database"), "{msg}");
    // Keeping the derived value is fine; so is an unrelated label change.
    assert_eq!(
        server.review("/validate", &forge("frontend")).await["allowed"],
        true
    );
}

#[tokio::test]
async fn warn_and_dry_run_modes_allow_and_say_so_differently() {
    let with_mode = |mode: &str| {
        OPEN.replace(
            "metadata: {name: fx-apps, labels: {environment: prod}}",
            &format!("metadata: {{name: fx-apps, labels: {{environment: prod, palisade.io/mode: {mode}}}}}"),
        )
    };
    let review = fixture("validating-pod-create-with-labels.json");

    let warn = TestServer::start(default_config(), state(&with_mode("warn"))).await;
    let resp = warn.review("/validate", &review).await;
    assert_eq!(resp["allowed"], true);
    let w = resp["warnings"][0].as_str().unwrap();
    assert!(
        w.starts_with(
            "palisade would deny this in enforce mode [require-default-deny]: Pod fx-apps/web"
        ),
        "{w}"
    );
    assert!(!w.contains('\n'), "warnings travel as HTTP headers");
    assert_eq!(resp["auditAnnotations"]["decision"], "would-deny");
    assert_eq!(resp["auditAnnotations"]["mode"], "warn");

    let dry = TestServer::start(default_config(), state(&with_mode("dry-run"))).await;
    let resp = dry.review("/validate", &review).await;
    assert_eq!(resp["allowed"], true);
    assert!(
        resp.get("warnings").is_none(),
        "dry-run is silent to the client: {resp:#}"
    );
    assert_eq!(resp["auditAnnotations"]["decision"], "would-deny");
    assert_eq!(resp["auditAnnotations"]["rules"], "require-default-deny");
    let metrics = dry.metrics().await;
    assert!(
        metrics.contains(r#"palisade_decisions_total{webhook="validate",kind="Pod",operation="CREATE",decision="would-deny",mode="dry-run"} 1"#),
        "{metrics}"
    );

    // The config's default mode applies where no label says otherwise.
    let mut config = default_config();
    config.mode = palisade::mode::Mode::Warn;
    let server = TestServer::start(config, state(OPEN)).await;
    assert_eq!(
        server.review("/validate", &review).await["auditAnnotations"]["mode"],
        "warn"
    );
}

#[tokio::test]
async fn exempt_namespaces_are_never_checked() {
    let server = TestServer::start(default_config(), state(OPEN)).await;
    let review = edited("validating-pod-create-with-labels.json", |r| {
        r["namespace"] = json!("kube-system");
        r["object"]["metadata"]["namespace"] = json!("kube-system");
    });
    let resp = server.review("/validate", &review).await;
    assert_eq!(resp["allowed"], true);
    assert_eq!(resp["auditAnnotations"]["decision"], "skip");
}

#[tokio::test]
async fn bodies_that_are_not_reviews_get_400_with_a_reason() {
    let limits = BodyLimits {
        max_bytes: 64 * 1024,
        ..BodyLimits::default()
    };
    let server = TestServer::start_with(default_config(), state(OPEN), limits).await;
    let good = serde_json::to_vec(&fixture("validating-pod-create-with-labels.json")).unwrap();
    let mut wrong_version = fixture("validating-pod-create-with-labels.json");
    wrong_version["apiVersion"] = json!("admission.k8s.io/v1beta1");
    let mut pod_not_review =
        fixture("validating-pod-create-with-labels.json")["request"]["object"].clone();
    pod_not_review["apiVersion"] = json!("v1");
    let mut mismatched = fixture("validating-pod-create-with-labels.json");
    mismatched["request"]["object"]["spec"] = json!("not a pod spec");
    let mut no_uid = fixture("validating-pod-create-with-labels.json");
    no_uid["request"].as_object_mut().unwrap().remove("uid");
    let mut oversized = fixture("validating-pod-create-with-labels.json");
    oversized["request"]["object"]["metadata"]["annotations"]["padding"] =
        json!("x".repeat(100 * 1024));

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", vec![], "body is not an AdmissionReview"),
        (
            "garbage",
            b"\x00\xffnot json".to_vec(),
            "body is not an AdmissionReview",
        ),
        (
            "truncated",
            good[..good.len() / 2].to_vec(),
            "body is not an AdmissionReview",
        ),
        (
            "wrong apiVersion",
            serde_json::to_vec(&wrong_version).unwrap(),
            "expected apiVersion admission.k8s.io/v1",
        ),
        (
            "a Pod, not a review",
            serde_json::to_vec(&pod_not_review).unwrap(),
            "expected apiVersion admission.k8s.io/v1 kind AdmissionReview",
        ),
        (
            "object of the wrong kind",
            serde_json::to_vec(&mismatched).unwrap(),
            "request.object is not a valid v1/Pod",
        ),
        ("no uid", serde_json::to_vec(&no_uid).unwrap(), "no uid"),
        (
            "oversized",
            serde_json::to_vec(&oversized).unwrap(),
            "exceeds the limit of 65536 bytes",
        ),
    ];
    for (what, body, reason) in cases {
        for path in ["/validate", "/mutate"] {
            let (status, text) = server.post(path, body.clone()).await;
            assert_eq!(status, 400, "{what} on {path}: {text}");
            assert!(text.contains(reason), "{what} on {path}: {text}");
        }
    }
    // And the server is still fine.
    let (status, _) = server.post("/validate", good).await;
    assert_eq!(status, 200);
    let metrics = server.metrics().await;
    assert!(
        metrics.contains(r#"palisade_bad_requests_total{webhook="validate"} 8"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn readiness_and_health() {
    let server = TestServer::start(default_config(), state(OPEN)).await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    for (path, want) in [("/healthz", 200), ("/readyz", 200), ("/nope", 404)] {
        let status = http
            .get(format!("http://{}{path}", server.server.metrics_addr))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status.as_u16(), want, "{path}");
    }
}
