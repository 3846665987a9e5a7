//! The webhook on cluster-wide policies (AdminNetworkPolicy,
//! BaselineAdminNetworkPolicy, ClusterNetworkPolicy), end to end over
//! HTTPS: every rule they take part in, in enforce, warn and dry-run.
//!
//! Reviews are built from the captured NetworkPolicy envelopes of
//! `../shared/fixtures/admission-reviews/` with what the API server sends
//! for a cluster-scoped custom resource: `kind`, `resource`, `requestKind`
//! and `requestResource` of group `policy.networking.k8s.io`, no
//! `namespace`, and the object in place of the policy.

mod common;

use common::{TestServer, default_config, fixture, state};
use palisade::mode::Mode;
use serde_json::{Value, json};

/// Namespaces: `fx-apps` (prod) fenced for ingress by its own policy only,
/// `fx-dev` (dev), `team-b` (prod, no policy).
const CLUSTER: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: fx-apps, labels: {environment: prod}}
---
apiVersion: v1
kind: Namespace
metadata: {name: fx-dev, labels: {environment: dev}}
---
apiVersion: v1
kind: Namespace
metadata: {name: team-b, labels: {environment: prod}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-ingress, namespace: fx-apps}
spec: {podSelector: {}, policyTypes: [Ingress]}
"#;

/// A baseline that denies all egress but DNS.
const BASELINE: &str = r#"
apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata: {name: default}
spec:
  subject: {namespaces: {}}
  egress:
  - name: dns
    action: Allow
    to:
    - pods:
        namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}
        podSelector: {matchLabels: {k8s-app: kube-dns}}
    ports: [{portNumber: {protocol: UDP, port: 53}}]
  - name: deny-all-egress
    action: Deny
    to:
    - namespaces: {}
    - networks: [0.0.0.0/0, '::/0']
"#;

fn yaml_value(yaml: &str) -> Value {
    let options = serde_saphyr::options! { strict_booleans: true };
    serde_saphyr::from_str_with_options(yaml, options).expect("test YAML")
}

fn config(mode: Mode) -> palisade::config::Config {
    let mut c = default_config();
    c.mode = mode;
    c
}

/// A review of `op` on a cluster-wide object, from the captured
/// NetworkPolicy envelope of the same operation.
fn cluster_review(op: &str, object: Option<&Value>, old: Option<&Value>) -> Value {
    let envelope = match op {
        "CREATE" => "validating-networkpolicy-create-default-deny-all.json",
        "UPDATE" => "validating-networkpolicy-update-frontend-to-backend.json",
        "DELETE" => "validating-networkpolicy-delete-frontend-to-backend.json",
        other => panic!("{other}"),
    };
    let mut v = fixture(envelope);
    let obj = object.or(old).expect("an object");
    let (group, version) = obj["apiVersion"].as_str().unwrap().split_once('/').unwrap();
    let kind = obj["kind"].as_str().unwrap();
    let plural = match kind {
        "AdminNetworkPolicy" => "adminnetworkpolicies",
        "BaselineAdminNetworkPolicy" => "baselineadminnetworkpolicies",
        "ClusterNetworkPolicy" => "clusternetworkpolicies",
        other => panic!("{other}"),
    };
    let r = &mut v["request"];
    r["kind"] = json!({"group": group, "version": version, "kind": kind});
    r["requestKind"] = r["kind"].clone();
    r["resource"] = json!({"group": group, "version": version, "resource": plural});
    r["requestResource"] = r["resource"].clone();
    r.as_object_mut().unwrap().remove("namespace");
    r["name"] = obj["metadata"]["name"].clone();
    r["object"] = object.cloned().unwrap_or(Value::Null);
    if let Some(o) = old {
        r["oldObject"] = o.clone();
    }
    assert_eq!(r["operation"], op);
    v
}

fn pod_create() -> Value {
    fixture("validating-pod-create-with-labels.json")
}

fn message(resp: &Value) -> String {
    resp["status"]["message"].as_str().unwrap_or("").to_owned()
}

/// enforce denies, warn allows with a warning, dry-run allows silently;
/// all three annotate.
async fn assert_in_modes(
    state_yaml: &str,
    review: &Value,
    rule: &str,
    check: impl Fn(&str),
) -> Value {
    let enforce = TestServer::start(config(Mode::Enforce), state(state_yaml)).await;
    let resp = enforce.review("/validate", review).await;
    assert_eq!(resp["allowed"], false, "{resp:#}");
    assert_eq!(resp["status"]["code"], 403);
    let msg = message(&resp);
    assert!(msg.starts_with(&format!("[{rule}] ")), "{msg}");
    check(&msg);
    assert_eq!(resp["auditAnnotations"]["decision"], "deny");
    assert_eq!(resp["auditAnnotations"]["rules"], rule);

    let warn = TestServer::start(config(Mode::Warn), state(state_yaml)).await;
    let w = warn.review("/validate", review).await;
    assert_eq!(w["allowed"], true, "{w:#}");
    let warning = w["warnings"][0].as_str().unwrap();
    assert!(
        warning.starts_with(&format!(
            "palisade would deny this in enforce mode [{rule}]"
        )),
        "{warning}"
    );
    assert_eq!(w["auditAnnotations"]["decision"], "would-deny");
    assert_eq!(w["auditAnnotations"]["mode"], "warn");

    let dry = TestServer::start(config(Mode::DryRun), state(state_yaml)).await;
    let d = dry.review("/validate", review).await;
    assert_eq!(d["allowed"], true, "{d:#}");
    assert!(
        d["warnings"]
            .as_array()
            .is_none_or(|ws| ws.iter().all(|w| !w.as_str().unwrap().contains(rule))),
        "dry-run is silent: {d:#}"
    );
    assert_eq!(d["auditAnnotations"]["decision"], "would-deny");
    assert_eq!(d["auditAnnotations"]["rules"], rule);
    let metrics = dry.metrics().await;
    let kind = review["request"]["kind"]["kind"].as_str().unwrap();
    let op = review["request"]["operation"].as_str().unwrap();
    assert!(
        metrics.contains(&format!(
            r#"palisade_decisions_total{{webhook="validate",kind="{kind}",operation="{op}",decision="would-deny",mode="dry-run"}} 1"#
        )),
        "{metrics}"
    );
    resp
}

// ---- require-default-deny ---------------------------------------------

#[tokio::test]
async fn a_baseline_egress_deny_counts_and_its_allowances_are_listed() {
    // fx-apps denies ingress itself and egress by the baseline: admitted
    // without an egress NetworkPolicy, in every mode.
    let fenced = format!("{CLUSTER}---{BASELINE}");
    for mode in [Mode::Enforce, Mode::Warn, Mode::DryRun] {
        let server = TestServer::start(config(mode), state(&fenced)).await;
        let resp = server.review("/validate", &pod_create()).await;
        assert_eq!(resp["allowed"], true, "{mode:?}: {resp:#}");
        assert_eq!(resp["auditAnnotations"]["decision"], "allow");
    }

    // Without its ingress policy the pod is denied for Ingress only; the
    // message names the baseline it considered and lists its allowances.
    let open = fenced.replace("name: deny-ingress", "name: plain").replace(
        "spec: {podSelector: {}, policyTypes: [Ingress]}",
        "spec: {podSelector: {matchLabels: {app: none}}, policyTypes: [Ingress]}",
    );
    assert_in_modes(&open, &pod_create(), "require-default-deny", |msg| {
        assert!(
            msg.contains("namespace fx-apps has no default-deny NetworkPolicy for Ingress."),
            "{msg}"
        );
        assert!(
            msg.contains("Egress is denied by default cluster-wide by baseline policy default (BaselineAdminNetworkPolicy) rule \"deny-all-egress\", which lets through:\n  - baseline policy default (BaselineAdminNetworkPolicy) rule \"dns\": Allow pods k8s-app=kube-dns in namespaces kubernetes.io/metadata.name=kube-system on UDP 53\n"),
            "{msg}"
        );
        assert!(msg.contains("policyTypes:\n  - Ingress\n"), "{msg}");
        assert!(!msg.contains("  - Egress"), "the fix is for Ingress only: {msg}");
    })
    .await;
}

#[tokio::test]
async fn a_cluster_wide_ingress_deny_counts_only_when_configured() {
    let deny_ingress = r#"
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: baseline-ingress}
spec:
  tier: Baseline
  priority: 10
  subject: {namespaces: {}}
  ingress:
  - {name: deny-all-ingress, action: Deny, from: [{namespaces: {}}]}
"#;
    let both = format!(
        "{}---{BASELINE}---{deny_ingress}",
        CLUSTER.replace(
            "spec: {podSelector: {}, policyTypes: [Ingress]}",
            "spec: {podSelector: {matchLabels: {app: none}}, policyTypes: [Ingress]}"
        )
    );
    assert_in_modes(&both, &pod_create(), "require-default-deny", |msg| {
        assert!(
            msg.contains("Ingress: baseline policy baseline-ingress (priority 10) rule \"deny-all-ingress\" denies ingress from every pod, but cluster-wide policies cannot deny traffic from outside the cluster"),
            "{msg}"
        );
        assert!(msg.contains("clusterPolicies.countIngressDeny: true"), "{msg}");
    })
    .await;

    let mut counting = default_config();
    counting.cluster_policies.count_ingress_deny = true;
    let server = TestServer::start(counting, state(&both)).await;
    let resp = server.review("/validate", &pod_create()).await;
    assert_eq!(resp["allowed"], true, "{resp:#}");
}

#[tokio::test]
async fn an_admin_allow_of_every_namespace_cuts_into_the_baseline() {
    let open_443 = r#"
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: open-https}
spec:
  priority: 5
  subject: {namespaces: {}}
  egress:
  - {name: https-anywhere-in-cluster, action: Allow, to: [{namespaces: {}}], ports: [{portNumber: {port: 443}}]}
"#;
    let cut = format!("{CLUSTER}---{BASELINE}---{open_443}");
    assert_in_modes(&cut, &pod_create(), "require-default-deny", |msg| {
        assert!(msg.contains("no default-deny NetworkPolicy for Egress"), "{msg}");
        assert!(
            msg.contains("Egress: baseline policy default (BaselineAdminNetworkPolicy) rule \"deny-all-egress\" would deny all egress, but an earlier rule lets broad traffic through first: admin policy open-https (priority 5) rule \"https-anywhere-in-cluster\""),
            "{msg}"
        );
    })
    .await;
}

// ---- no-allow-all ----------------------------------------------------

fn allow_all_anp(subject: &str) -> Value {
    yaml_value(&format!(
        r#"
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {{name: open-everything}}
spec:
  priority: 1
  subject: {subject}
  ingress:
  - {{name: from-anywhere, action: Allow, from: [{{namespaces: {{}}}}]}}
"#
    ))
}

#[tokio::test]
async fn an_admin_allow_all_outside_dev_is_denied_with_a_fix() {
    let review = cluster_review("CREATE", Some(&allow_all_anp("{namespaces: {}}")), None);
    assert_in_modes(CLUSTER, &review, "no-allow-all", |msg| {
        assert!(
            msg.starts_with("[no-allow-all] AdminNetworkPolicy open-everything is allow-all for Ingress: spec.ingress[0] (rule \"from-anywhere\") allows every pod in every namespace on all ports"),
            "{msg}"
        );
        assert!(
            msg.contains("It selects 2 non-dev namespaces now: fx-apps, team-b."),
            "{msg}"
        );
        assert!(msg.contains("Fix: name the peers and ports that are needed"), "{msg}");
    })
    .await;

    // The same in v1alpha2.
    let mut cnp = allow_all_anp("{namespaces: {}}");
    cnp["apiVersion"] = json!("policy.networking.k8s.io/v1alpha2");
    cnp["kind"] = json!("ClusterNetworkPolicy");
    cnp["spec"]["tier"] = json!("Admin");
    cnp["spec"]["ingress"][0]["action"] = json!("Accept");
    let review = cluster_review("CREATE", Some(&cnp), None);
    assert_in_modes(CLUSTER, &review, "no-allow-all", |msg| {
        assert!(
            msg.contains("accepts every pod in every namespace"),
            "{msg}"
        );
    })
    .await;

    // A subject that selects no non-dev namespace now but is not confined
    // to dev by the environment label is still denied.
    let review = cluster_review(
        "CREATE",
        Some(&allow_all_anp(
            "{namespaces: {matchLabels: {team: nobody}}}",
        )),
        None,
    );
    let server = TestServer::start(default_config(), state(CLUSTER)).await;
    let resp = server.review("/validate", &review).await;
    assert_eq!(resp["allowed"], false);
    assert!(
        message(&resp).contains("It selects no non-dev namespace now, but nothing in its subject keeps it to dev namespaces"),
        "{resp:#}"
    );

    // Confined to dev namespaces by the environment label: allowed, with a
    // broad-free answer.
    let review = cluster_review(
        "CREATE",
        Some(&allow_all_anp(
            "{namespaces: {matchLabels: {environment: dev}}}",
        )),
        None,
    );
    let resp = server.review("/validate", &review).await;
    assert_eq!(resp["allowed"], true, "{resp:#}");
    assert_eq!(resp["auditAnnotations"]["decision"], "allow");
}

#[tokio::test]
async fn broad_admin_rules_and_shared_priorities_warn() {
    let broad = yaml_value(
        r#"
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: metrics-from-anywhere}
spec:
  priority: 7
  subject: {namespaces: {}}
  ingress:
  - {name: metrics, action: Allow, from: [{namespaces: {}}], ports: [{portNumber: {port: 9090}}]}
"#,
    );
    let other = r#"
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: a-first}
spec:
  priority: 7
  subject: {namespaces: {}}
  egress:
  - {action: Pass, to: [{namespaces: {}}]}
"#;
    let server = TestServer::start(default_config(), state(&format!("{CLUSTER}---{other}"))).await;
    let resp = server
        .review("/validate", &cluster_review("CREATE", Some(&broad), None))
        .await;
    assert_eq!(resp["allowed"], true, "{resp:#}");
    let warnings: Vec<&str> = resp["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert!(
        warnings.iter().any(|w| w.contains(
            "spec.ingress[0] is broad: rule \"metrics\" allows every pod in every namespace on TCP 9090"
        )),
        "{warnings:?}"
    );
    assert!(
        warnings.iter().any(|w| w.contains(
            "admin policies a-first and metrics-from-anywhere share priority 7; the API leaves their order undefined, palisade applies a-first first (by name)"
        )),
        "{warnings:?}"
    );
}

// ---- keep-default-deny -----------------------------------------------

#[tokio::test]
async fn deleting_or_weakening_the_baseline_that_fences_namespaces_is_denied() {
    let fenced = format!("{CLUSTER}---{BASELINE}");
    let banp = yaml_value(BASELINE);
    // fx-apps loses its only egress default-deny; team-b had none for
    // ingress, so it had nothing to lose; fx-dev neither.
    let delete = cluster_review("DELETE", None, Some(&banp));
    assert_in_modes(&fenced, &delete, "keep-default-deny", |msg| {
        assert!(
            msg.starts_with("[keep-default-deny] deleting BaselineAdminNetworkPolicy default removes the only default-deny for Egress of 1 namespace: fx-apps."),
            "{msg}"
        );
        assert!(
            msg.contains("Their default-deny came from baseline policy default (BaselineAdminNetworkPolicy) rule \"deny-all-egress\""),
            "{msg}"
        );
        assert!(msg.contains("namespace: fx-apps"), "{msg}");
    })
    .await;

    // Dropping ::/0 weakens it the same way.
    let mut weaker = banp.clone();
    weaker["spec"]["egress"][1]["to"][1]["networks"] = json!(["0.0.0.0/0"]);
    let update = cluster_review("UPDATE", Some(&weaker), Some(&banp));
    assert_in_modes(&fenced, &update, "keep-default-deny", |msg| {
        assert!(
            msg.starts_with("[keep-default-deny] this change to BaselineAdminNetworkPolicy default removes the only default-deny for Egress of 1 namespace: fx-apps."),
            "{msg}"
        );
    })
    .await;

    // A new admin policy that cuts in is a weakening too.
    let cut = yaml_value(
        r#"
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: egress-to-cluster}
spec:
  priority: 3
  subject: {namespaces: {matchLabels: {environment: prod}}}
  egress:
  - {action: Allow, to: [{namespaces: {}}], ports: [{portNumber: {port: 8080}}]}
"#,
    );
    let server = TestServer::start(default_config(), state(&fenced)).await;
    let resp = server
        .review("/validate", &cluster_review("CREATE", Some(&cut), None))
        .await;
    assert_eq!(resp["allowed"], false, "{resp:#}");
    assert!(
        message(&resp).starts_with("[keep-default-deny] creating AdminNetworkPolicy egress-to-cluster (its rules come first and cut into the default-deny)"),
        "{resp:#}"
    );

    // With its own egress default-deny, fx-apps loses nothing.
    let own = format!(
        "{fenced}---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: deny-egress, namespace: fx-apps}}\nspec: {{podSelector: {{}}, policyTypes: [Egress]}}\n"
    );
    let server = TestServer::start(default_config(), state(&own)).await;
    let resp = server.review("/validate", &delete).await;
    assert_eq!(resp["allowed"], true, "{resp:#}");

    // Nor does it lose anything when its NetworkPolicy goes but the
    // baseline stays.
    let delete_np = {
        let mut v = fixture("validating-networkpolicy-delete-frontend-to-backend.json");
        v["request"]["name"] = json!("deny-egress");
        v["request"]["oldObject"] = json!({
            "kind": "NetworkPolicy", "apiVersion": "networking.k8s.io/v1",
            "metadata": {"name": "deny-egress", "namespace": "fx-apps"},
            "spec": {"podSelector": {}, "policyTypes": ["Egress"]}
        });
        v
    };
    let resp = server.review("/validate", &delete_np).await;
    assert_eq!(resp["allowed"], true, "{resp:#}");
}

#[tokio::test]
async fn relabelling_a_namespace_out_of_the_subject_is_denied() {
    let prod_only = BASELINE.replace(
        "subject: {namespaces: {}}",
        "subject: {namespaces: {matchLabels: {environment: prod}}}",
    );
    let fenced = format!("{CLUSTER}---{prod_only}");
    let mut review = fixture("validating-namespace-update-add-label.json");
    let r = &mut review["request"];
    r["name"] = json!("fx-apps");
    r["namespace"] = json!("fx-apps");
    r["object"]["metadata"]["name"] = json!("fx-apps");
    r["oldObject"]["metadata"]["name"] = json!("fx-apps");
    r["oldObject"]["metadata"]["labels"] =
        json!({"kubernetes.io/metadata.name": "fx-apps", "environment": "prod"});
    r["object"]["metadata"]["labels"] =
        json!({"kubernetes.io/metadata.name": "fx-apps", "environment": "staging"});
    assert_in_modes(&fenced, &review, "keep-default-deny", |msg| {
        assert!(
            msg.starts_with("[keep-default-deny] Namespace fx-apps: these labels take namespace fx-apps out of the subject of baseline policy default (BaselineAdminNetworkPolicy) (Egress), its only default-deny for Egress"),
            "{msg}"
        );
    })
    .await;
}

// ---- bad objects, status updates, deletion --------------------------

#[tokio::test]
async fn an_object_palisade_cannot_read_names_the_field() {
    let mut bad = allow_all_anp("{namespaces: {}}");
    bad["spec"]["ingress"][0]["action"] = json!("Block");
    let server = TestServer::start(default_config(), state(CLUSTER)).await;
    let resp = server
        .review("/validate", &cluster_review("CREATE", Some(&bad), None))
        .await;
    assert_eq!(resp["allowed"], false);
    assert_eq!(
        message(&resp),
        "[invalid-object] AdminNetworkPolicy open-everything: cannot be read: AdminNetworkPolicy open-everything: spec.ingress[0].action: unknown action \"Block\" (expected Allow, Deny or Pass)"
    );

    // The network plugin's status updates are not judged.
    let mut status = cluster_review(
        "UPDATE",
        Some(&allow_all_anp("{namespaces: {}}")),
        Some(&allow_all_anp("{namespaces: {}}")),
    );
    status["request"]["subResource"] = json!("status");
    let resp = server.review("/validate", &status).await;
    assert_eq!(resp["allowed"], true);
    assert_eq!(resp["auditAnnotations"]["decision"], "skip");
}

// ---- preview -------------------------------------------------------------

#[tokio::test]
async fn a_dry_run_of_a_cluster_policy_previews_what_it_opens() {
    let workloads = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: fx-apps}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: web:1}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: team-b}
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec: {containers: [{name: api, image: api:1, ports: [{containerPort: 8080}]}]}
"#;
    let cluster = common::state_with_model(&format!("{CLUSTER}---{BASELINE}---{workloads}"));
    let mut cfg = default_config();
    cfg.simulate.preview = true;
    let server = TestServer::start(cfg, cluster).await;
    let api_access = yaml_value(
        r#"
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: web-to-api}
spec:
  priority: 20
  subject: {pods: {namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: fx-apps}}, podSelector: {matchLabels: {app: web}}}}
  egress:
  - {name: api, action: Allow, to: [{pods: {namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: team-b}}, podSelector: {matchLabels: {app: api}}}}], ports: [{portNumber: {port: 8080}}]}
"#,
    );
    let mut review = cluster_review("CREATE", Some(&api_access), None);
    review["request"]["dryRun"] = json!(true);
    let resp = server.review("/validate", &review).await;
    assert_eq!(resp["allowed"], true, "{resp:#}");
    let warnings: Vec<&str> = resp["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert_eq!(
        warnings,
        [
            "palisade preview of AdminNetworkPolicy web-to-api: opens 1 and closes 0 connections",
            "opens: fx-apps/web[Deployment] => team-b/api[Deployment] : TCP 8080",
        ]
    );
    // Without dry-run, in enforce mode, no preview.
    review["request"]["dryRun"] = json!(false);
    let resp = server.review("/validate", &review).await;
    assert!(resp.get("warnings").is_none(), "{resp:#}");
}

// ---- many namespaces, audit, files ----------------------------------

#[tokio::test]
async fn the_namespaces_that_would_lose_their_default_deny_are_listed_ten_then_a_count() {
    let mut yaml = String::from(BASELINE);
    for i in 0..12 {
        yaml.push_str(&format!(
            "---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: team-{i:02}}}\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: deny-ingress, namespace: team-{i:02}}}\nspec: {{podSelector: {{}}, policyTypes: [Ingress]}}\n"
        ));
    }
    let server = TestServer::start(default_config(), state(&yaml)).await;
    let resp = server
        .review(
            "/validate",
            &cluster_review("DELETE", None, Some(&yaml_value(BASELINE))),
        )
        .await;
    assert_eq!(resp["allowed"], false);
    assert!(
        message(&resp).starts_with("[keep-default-deny] deleting BaselineAdminNetworkPolicy default removes the only default-deny for Egress of 12 namespaces: team-00, team-01, team-02, team-03, team-04, team-05, team-06, team-07, team-08, team-09 and 2 more."),
        "{resp:#}"
    );
}

#[test]
fn audit_reads_cluster_wide_policies() {
    let allow_all = "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\nmetadata: {name: open-everything}\nspec:\n  priority: 1\n  subject: {namespaces: {}}\n  ingress:\n  - {action: Allow, from: [{namespaces: {}}]}\n";
    let mut m = palisade::manifest::Manifests::default();
    palisade::manifest::read_text(
        std::path::Path::new("cluster.yaml"),
        &format!("{CLUSTER}---{BASELINE}---\n{allow_all}"),
        &mut m,
    );
    let inv = palisade::audit::inventory_from_manifests(&m).unwrap();
    assert_eq!(inv.cluster_policies.len(), 2);
    let report = palisade::audit::audit(&default_config(), &inv);
    let kinds: Vec<(String, String, String)> = report
        .findings
        .iter()
        .map(|f| (f.namespace.clone(), f.object_kind.clone(), f.name.clone()))
        .collect();
    // The allow-all, cluster-scoped; team-b lacks default-deny for
    // Ingress (the baseline fences its egress); fx-apps is fenced.
    assert!(
        kinds.contains(&(
            String::new(),
            "AdminNetworkPolicy".to_owned(),
            "open-everything".to_owned()
        )),
        "{kinds:?}"
    );
    let team_b = report
        .findings
        .iter()
        .find(|f| f.namespace == "team-b")
        .expect("team-b lacks ingress");
    assert!(
        team_b
            .message
            .starts_with("namespace team-b has no default-deny NetworkPolicy for Ingress;"),
        "{}",
        team_b.message
    );
    assert!(
        team_b
            .message
            .contains("Egress is denied by default cluster-wide by baseline policy default"),
        "{}",
        team_b.message
    );
    assert!(!kinds.iter().any(|(ns, _, _)| ns == "fx-apps"), "{kinds:?}");
    let yaml = palisade::audit::render_policy_reports(&report, 1_700_000_000);
    assert!(yaml.contains("kind: ClusterPolicyReport"), "{yaml}");
    assert!(yaml.contains("kind: AdminNetworkPolicy"), "{yaml}");
}

#[test]
fn a_file_the_api_server_would_reject_names_file_document_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        format!(
            "{CLUSTER}---\napiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\nmetadata: {{name: deny}}\nspec:\n  priority: 3\n  subject: {{namespaces: {{}}}}\n  egress:\n  - {{action: Block, to: [{{namespaces: {{}}}}]}}\n"
        ),
    )
    .unwrap();
    let want = "bad.yaml#4: AdminNetworkPolicy deny: spec.egress[0].action: unknown action \"Block\" (expected Allow, Deny or Pass)";
    // simulate
    let err = palisade::reach::run(
        palisade::reach::SimulateCommand::List {
            state: None,
            cluster: false,
            focus: None,
            output: palisade::reach::output::Format::Text,
            strict: false,
            paths: vec![bad.clone()],
        },
        &mut Vec::new(),
        &mut Vec::new(),
    )
    .unwrap_err();
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().ends_with(want), "{err}");
    // check, and --state
    let opts = palisade::check::Options {
        paths: vec![bad.clone()],
        state: None,
        namespace: "default".into(),
        user: palisade::decide::User::default(),
        strict: false,
    };
    let err = palisade::check::run(&default_config(), &opts, &mut |_| {}).unwrap_err();
    assert!(err.to_string().ends_with(want), "{err}");
    let err = palisade::cluster::static_dir::StaticCluster::load(&[dir.path()]).unwrap_err();
    assert!(err.to_string().ends_with(want), "{err}");
}
