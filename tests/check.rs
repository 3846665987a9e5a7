//! `palisade check` and `palisade audit`: the manifests tree in
//! tests/data/check covers every decision type; its JSON report is pinned
//! in tests/data/check/expected.json; check and serve agree object by
//! object; audit finds what it should over a static cluster.
//!
//! To update expected.json after an intended change:
//! `PALISADE_BLESS=1 cargo test --test check` and review the diff.

mod common;

use std::path::Path;

use base64::Engine;
use palisade::audit::{self, FindingKind};
use palisade::check::{self, Options};
use palisade::cluster::static_dir::StaticCluster;
use palisade::decide::{Decision, RuleId, User};
use palisade::manifest;
use serde_json::{Value, json};

const STATE: &str = "tests/data/check/state";
const MANIFESTS: &str = "tests/data/check/manifests";
const EXPECTED: &str = "tests/data/check/expected.json";

fn options() -> Options {
    Options {
        paths: vec![MANIFESTS.into()],
        state: Some(STATE.into()),
        namespace: "default".into(),
        user: User {
            username: "palisade-check".into(),
            groups: vec![],
        },
        strict: false,
    }
}

/// Notes of skipped files fail these tests: the tree is all manifests.
fn no_notes(s: &manifest::Skipped) {
    panic!("unexpected note: {s}");
}

#[test]
fn the_json_report_of_the_tree_is_the_expected_one() {
    let report =
        check::run(&common::default_config(), &options(), &mut no_notes).expect("check runs");
    let got = serde_json::to_string_pretty(&report).unwrap() + "\n";
    if std::env::var_os("PALISADE_BLESS").is_some() {
        std::fs::write(EXPECTED, &got).unwrap();
    }
    let want =
        std::fs::read_to_string(EXPECTED).expect("expected.json (PALISADE_BLESS=1 writes it)");
    assert_eq!(
        got, want,
        "check's JSON changed; if intended, PALISADE_BLESS=1 and review the diff"
    );

    // The decision types the tree is there to cover, spelled out so the
    // pinned file cannot silently lose one.
    let by_name = |kind: &str, name: &str| {
        report
            .results
            .iter()
            .find(|r| r.kind == kind && r.name == name)
            .unwrap_or_else(|| panic!("{kind} {name} not in the report"))
    };
    let rules = |r: &check::ObjectResult| r.violations.iter().map(|v| v.rule).collect::<Vec<_>>();
    let api = by_name("Deployment", "api");
    assert_eq!(
        (api.decision, rules(api)),
        (Decision::Deny, vec![RuleId::RequireDefaultDeny])
    );
    let ns = by_name("Namespace", "playground");
    assert_eq!(
        (ns.decision, rules(ns)),
        (Decision::Deny, vec![RuleId::TrustedLabels])
    );
    let aa = by_name("NetworkPolicy", "allow-everyone");
    assert_eq!(
        (aa.decision, rules(aa)),
        (Decision::Deny, vec![RuleId::NoAllowAll])
    );
    assert_eq!(
        by_name("NetworkPolicy", "open").decision,
        Decision::Allow,
        "allow-all is fine in dev"
    );
    let broad = by_name("NetworkPolicy", "internet-egress");
    assert!(broad.allowed && broad.warnings[0].contains("is broad"));
    let warn = by_name("Pod", "probe");
    assert_eq!((warn.decision, warn.allowed), (Decision::WouldDeny, true));
    assert!(warn.warnings[0].starts_with("palisade would deny this in enforce mode"));
    let dry = by_name("Pod", "cache");
    assert_eq!(
        (dry.decision, dry.allowed, dry.warnings.len()),
        (Decision::WouldDeny, true, 0)
    );
    assert!(
        !dry.mutation.as_ref().unwrap().applied,
        "dry-run sends no patch"
    );
    let web = by_name("Deployment", "web");
    assert_eq!(web.decision, Decision::Allow);
    assert_eq!(
        web.mutation.as_ref().unwrap().changes,
        vec![
            "set label palisade.io/role=frontend",
            "inject sidecar access-proxy"
        ]
    );
    let sneaky = by_name("Pod", "sneaky");
    assert_eq!(
        sneaky.decision,
        Decision::Allow,
        "validated after its mutation replaced the forged label"
    );
    assert_eq!(by_name("ConfigMap", "settings").decision, Decision::Skip);
    assert_eq!(report.summary.denied, 3);
    assert_eq!(report.exit_code(), 1);
}

#[test]
fn the_cli_prints_the_same_json_and_exits_1() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["check", "--output", "json", "--state", STATE, MANIFESTS])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    let want: Value = serde_json::from_str(&std::fs::read_to_string(EXPECTED).unwrap()).unwrap();
    assert_eq!(got, want);

    // A document that is not a manifest is noted with its file, line
    // and document, and skipped: the run is decided by its findings (the
    // pod in a namespace without default-deny), unless --strict.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n---\nspec: [unclosed\n",
    )
    .unwrap();
    let run = |strict: bool| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_palisade"));
        c.arg("check");
        if strict {
            c.arg("--strict");
        }
        c.arg(&bad).output().unwrap()
    };
    let out = run(false);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.yaml:5 (document 1): not valid YAML"),
        "{err}"
    );
    assert_eq!(run(true).status.code(), Some(2));
}

/// The request the API server would send for `doc`, in a captured envelope.
fn envelope(doc: &manifest::Document, object: &Value, mutating: bool) -> Value {
    let base = if mutating {
        "mutating-pod-create-with-labels.json"
    } else {
        "validating-pod-create-with-labels.json"
    };
    let mut v = common::fixture(base);
    let r = &mut v["request"];
    let kind = json!({"group": doc.gvk.group, "version": doc.gvk.version, "kind": doc.gvk.kind});
    r["kind"] = kind.clone();
    r["requestKind"] = kind;
    r["uid"] = json!(format!("parity-{}", doc.origin()));
    r["name"] = json!(doc.name());
    let ns = if doc.gvk.kind == "Namespace" {
        doc.name()
    } else {
        doc.namespace().unwrap_or("default")
    };
    r["namespace"] = json!(ns);
    r["userInfo"] = json!({"username": "palisade-check", "groups": []});
    r["object"] = object.clone();
    v
}

/// check and serve give identical verdicts and patches for the same object
/// and state.
#[tokio::test]
async fn check_and_serve_agree_on_every_object() {
    let cfg = common::default_config();
    let report = check::run(&cfg, &options(), &mut no_notes).unwrap();
    // The server's cluster: the same state with the set applied.
    let (mut cluster, _) = StaticCluster::load(&[STATE]).unwrap();
    let docs = manifest::read_paths(&[MANIFESTS]).unwrap().documents;
    for d in &docs {
        cluster.apply(d).unwrap();
    }
    let server = common::TestServer::start(cfg, cluster).await;
    assert_eq!(docs.len(), report.results.len());
    for (doc, checked) in docs.iter().zip(&report.results) {
        let mut object = doc.value.clone();
        if doc.gvk.kind == "Pod" {
            let resp = server
                .review("/mutate", &envelope(doc, &object, true))
                .await;
            let served_patch: Option<Value> = resp["patch"].as_str().map(|b64| {
                serde_json::from_slice(
                    &base64::engine::general_purpose::STANDARD
                        .decode(b64)
                        .unwrap(),
                )
                .unwrap()
            });
            let checked_patch = checked
                .mutation
                .as_ref()
                .filter(|m| m.applied)
                .map(|m| serde_json::to_value(&m.patch).unwrap());
            assert_eq!(
                served_patch,
                checked_patch,
                "{}: patches differ",
                doc.origin()
            );
            if let Some(p) = served_patch {
                let ops: json_patch::Patch = serde_json::from_value(p).unwrap();
                json_patch::patch(&mut object, &ops).unwrap();
            }
        }
        let resp = server
            .review("/validate", &envelope(doc, &object, false))
            .await;
        assert_eq!(
            resp["allowed"],
            checked.allowed,
            "{}: {resp:#}",
            doc.origin()
        );
        assert_eq!(
            resp["auditAnnotations"]["decision"].as_str().unwrap(),
            checked.decision.as_str(),
            "{}",
            doc.origin()
        );
        let served_rules = resp["auditAnnotations"]["rules"].as_str().unwrap_or("");
        let checked_rules: Vec<&str> = checked.violations.iter().map(|v| v.rule.as_str()).collect();
        assert_eq!(served_rules, checked_rules.join(","), "{}", doc.origin());
        let served_message = resp["status"]["message"].as_str().unwrap_or("");
        for v in &checked.violations {
            assert!(
                served_message.contains(&v.message) || checked.allowed,
                "{}",
                doc.origin()
            );
        }
        let warnings: Vec<String> = resp["warnings"]
            .as_array()
            .map(|w| w.iter().map(|x| x.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default();
        assert_eq!(warnings, checked.warnings, "{}", doc.origin());
    }
}

#[test]
fn audit_finds_what_the_webhooks_would_not_admit_today() {
    let yaml = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {environment: prod, palisade.io/proxy: enabled}}
---
apiVersion: v1
kind: Namespace
metadata: {name: fenced, labels: {environment: prod}}
---
apiVersion: v1
kind: Namespace
metadata: {name: lab, labels: {environment: dev}}
---
apiVersion: v1
kind: Namespace
metadata: {name: kube-system}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: fenced}
spec: {podSelector: {}, policyTypes: [Ingress, Egress]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: open, namespace: fenced}
spec: {podSelector: {}, egress: [{to: [{ipBlock: {cidr: 0.0.0.0/0}}]}], policyTypes: [Egress]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: open, namespace: lab}
spec: {podSelector: {}, ingress: [{}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: lab}
spec: {podSelector: {}, policyTypes: [Ingress, Egress]}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: fenced}
spec: {containers: [{name: pg, image: postgres:16}]}
---
apiVersion: v1
kind: Pod
metadata: {name: fake, namespace: fenced, labels: {palisade.io/role: database}}
spec: {containers: [{name: app, image: nginx:1}]}
---
apiVersion: v1
kind: Pod
metadata: {name: right, namespace: fenced, labels: {palisade.io/role: database}}
spec: {containers: [{name: pg, image: postgres:16}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, annotations: {palisade.io/proxy-status: injected}}
spec: {containers: [{name: web, image: nginx:1}, {name: access-proxy, image: envoy}]}
---
apiVersion: v1
kind: Pod
metadata: {name: bare, namespace: shop}
spec: {containers: [{name: web, image: nginx:1}]}
---
apiVersion: v1
kind: Pod
metadata: {name: hostnet, namespace: shop}
spec: {hostNetwork: true, containers: [{name: agent, image: agent:1}]}
---
apiVersion: v1
kind: Pod
metadata: {name: coredns, namespace: kube-system, labels: {palisade.io/role: whatever}}
spec: {containers: [{name: dns, image: coredns:1}]}
"#;
    let mut m = manifest::Manifests::default();
    manifest::read_text(Path::new("cluster.yaml"), yaml, &mut m);
    let inv = audit::inventory_from_manifests(&m).unwrap();
    let report = audit::audit(&common::default_config(), &inv);
    let got: Vec<(FindingKind, &str, &str)> = report
        .findings
        .iter()
        .map(|f| (f.kind, f.namespace.as_str(), f.name.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (FindingKind::AllowAllOutsideDev, "fenced", "open"),
            (FindingKind::MissingRoleLabel, "fenced", "db"),
            (FindingKind::UnderivedRoleLabel, "fenced", "fake"),
            (FindingKind::MissingDefaultDeny, "shop", "shop"),
            (FindingKind::MissingSidecar, "shop", "bare"),
        ]
    );
    assert_eq!(report.exit_code(), 1);
    let fake = &report.findings[2];
    assert!(
        fake.message
            .contains("Fix: kubectl -n fenced label pod fake palisade.io/role-"),
        "{}",
        fake.message
    );

    // The PolicyReport output parses and carries every finding.
    let yaml = audit::render_policy_reports(&report, 1_700_000_000);
    let mut docs = manifest::Manifests::default();
    manifest::read_text(Path::new("reports.yaml"), &yaml, &mut docs);
    assert_eq!(docs.documents.len(), 2, "{yaml}");
    let results: usize = docs
        .documents
        .iter()
        .inspect(|d| {
            assert_eq!(
                (d.gvk.group.as_str(), d.gvk.kind.as_str()),
                ("wgpolicyk8s.io", "PolicyReport")
            )
        })
        .map(|d| d.value["results"].as_array().unwrap().len())
        .sum();
    assert_eq!(results, 5);
}

/// Runs the binary; exit code and stdout.
fn palisade(args: &[&str]) -> (Option<i32>, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(args)
        .env_remove("PALISADE_GENERATE")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).expect("UTF-8"),
    )
}

/// With generation on, `check` sees the cluster as `kubectl apply` leaves
/// it with palisade generating: a file holding a new Namespace and its
/// Deployment passes, as its apply would. Existing namespaces (of --state)
/// are not fenced for it (generate.existing is false), nor an opted-out
/// one, and generation off changes nothing.
#[test]
fn check_counts_what_generation_creates_in_new_namespaces() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app.yaml");
    std::fs::write(
        &app,
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n---\n\
         apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\n\
         spec: {selector: {matchLabels: {app: web}}, template: {metadata: {labels: {app: web}}, spec: {containers: [{name: web, image: nginx:1}]}}}\n---\n\
         apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: old, namespace: legacy}\n\
         spec: {selector: {matchLabels: {app: old}}, template: {metadata: {labels: {app: old}}, spec: {containers: [{name: old, image: nginx:1}]}}}\n",
    )
    .unwrap();
    let app = app.to_str().unwrap();
    let decisions = |args: &[&str]| -> Vec<(String, String)> {
        let (_, out) = palisade(args);
        let v: Value = serde_json::from_str(&out).expect("JSON");
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    format!(
                        "{}/{}",
                        r["kind"].as_str().unwrap(),
                        r["name"].as_str().unwrap()
                    ),
                    r["decision"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    let base = ["check", "--output", "json", "--state", STATE];
    assert_eq!(
        decisions(&[&base[..], &["--generate", app]].concat()),
        pairs(&[
            ("Namespace/shop", "allow"),
            ("Deployment/web", "allow"),
            ("Deployment/old", "deny"),
        ])
    );
    assert_eq!(
        decisions(&[&base[..], &[app]].concat()),
        pairs(&[
            ("Namespace/shop", "allow"),
            ("Deployment/web", "deny"),
            ("Deployment/old", "deny"),
        ])
    );
    let text = std::fs::read_to_string(app).unwrap().replace(
        "metadata: {name: shop}",
        "metadata: {name: shop, labels: {palisade.io/generate: disabled}}",
    );
    std::fs::write(app, text).unwrap();
    assert_eq!(
        decisions(
            &[
                &base[..],
                &["--generate", "--as-group", "system:masters", app]
            ]
            .concat()
        ),
        pairs(&[
            ("Namespace/shop", "allow"),
            ("Deployment/web", "deny"),
            ("Deployment/old", "deny"),
        ]),
        "opted out"
    );
    let (code, out) = palisade(&[&base[..], &["--generate", app]].concat());
    assert_eq!(code, Some(1));
    assert!(
        out.contains("only members of system:masters may set palisade.io/generate=disabled"),
        "the opt-out label is a trusted group's: {out}"
    );
}

/// A namespace created in warn mode is told what generation would create.
#[test]
fn a_namespace_created_in_warn_mode_hears_what_generation_would_create() {
    let mut cfg = common::default_config();
    cfg.generate.enabled = true;
    cfg.mode = palisade::mode::Mode::Warn;
    let mut m = manifest::Manifests::default();
    manifest::read_text(
        Path::new("ns.yaml"),
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n",
        &mut m,
    );
    let user = User::default();
    let report = check::check_documents(
        &cfg,
        StaticCluster::new(),
        m.documents.clone(),
        "default",
        &user,
    )
    .unwrap();
    assert_eq!(
        report.results[0].warnings,
        [
            "Namespace shop: palisade would create NetworkPolicies shop/palisade-baseline, shop/palisade-default-deny \
          (default-deny for Ingress and Egress) in enforce mode; in warn mode it creates nothing"
        ]
    );
    cfg.mode = palisade::mode::Mode::Enforce;
    let report =
        check::check_documents(&cfg, StaticCluster::new(), m.documents, "default", &user).unwrap();
    assert!(
        report.results[0].warnings.is_empty(),
        "enforce: it just does it"
    );
}

/// `audit --output fixes`: one YAML stream of exactly what generation
/// would create in the audited namespaces (existing ones included, any
/// mode), which, applied, leaves no namespace unfenced.
#[test]
fn audit_fixes_are_what_generation_would_create() {
    let (code, out) = palisade(&["audit", "--state", STATE, "--output", "fixes"]);
    assert_eq!(code, Some(1), "the audit's findings set the exit code");
    let mut m = manifest::Manifests::default();
    manifest::read_text(Path::new("fixes.yaml"), &out, &mut m);
    assert!(m.skipped.is_empty(), "{:?}\n{out}", m.skipped);
    let got: Vec<String> = m
        .documents
        .iter()
        .map(|d| {
            let np: k8s_openapi::api::networking::v1::NetworkPolicy =
                serde_json::from_value(d.value.clone()).expect("a NetworkPolicy");
            assert_eq!(
                np.metadata.labels.as_ref().unwrap()["app.kubernetes.io/managed-by"],
                "palisade"
            );
            format!(
                "{}/{}",
                np.metadata.namespace.unwrap(),
                np.metadata.name.unwrap()
            )
        })
        .collect();
    let state = manifest::read_paths(&[STATE]).unwrap();
    let inv = audit::inventory_from_manifests(&state).unwrap();
    let unfenced: Vec<String> = audit::audit(&common::default_config(), &inv)
        .findings
        .iter()
        .filter(|f| f.kind == FindingKind::MissingDefaultDeny)
        .map(|f| f.namespace.clone())
        .collect();
    assert!(!unfenced.is_empty());
    let want: Vec<String> = unfenced
        .iter()
        .flat_map(|ns| {
            [
                format!("{ns}/palisade-baseline"),
                format!("{ns}/palisade-default-deny"),
            ]
        })
        .collect();
    assert_eq!(got, want);

    // Applied, they fence every namespace.
    let mut after = state;
    after.documents.extend(m.documents);
    let inv = audit::inventory_from_manifests(&after).unwrap();
    let report = audit::audit(&common::default_config(), &inv);
    assert!(
        report
            .findings
            .iter()
            .all(|f| f.kind != FindingKind::MissingDefaultDeny),
        "{:#?}",
        report.findings
    );
}
