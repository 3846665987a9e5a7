//! `palisade simulate` end to end over small manifest trees: eval's
//! explanations (which policy, which rule), the preview of a captured
//! NetworkPolicy admission review, the renderings (`dot` must render with
//! Graphviz, `md` is a table), and the CLI's handling of bad input.

#[path = "common/shared.rs"]
mod shared;
use shared::shared_fixtures;

use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Parser;
use palisade::netpol::Policy;
use palisade::reach::{ModelBuilder, PolicyChange, SimulateCommand, SimulateError, preview, run};

/// The subcommand as the integrator mounts it: `palisade simulate ...`.
#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: SimulateCommand,
}

struct Out {
    code: Result<i32, SimulateError>,
    stdout: String,
    stderr: String,
}

fn simulate(args: &[&str]) -> Out {
    let cli = Cli::try_parse_from(std::iter::once("simulate").chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("{e}"));
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run(cli.cmd, &mut out, &mut err);
    Out {
        code,
        stdout: String::from_utf8(out).unwrap(),
        stderr: String::from_utf8(err).unwrap(),
    }
}

const SHOP: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {team: shop}}
---
apiVersion: v1
kind: Namespace
metadata: {name: monitoring, labels: {monitoring: "true"}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: c, image: x, ports: [{name: http, containerPort: 8080}]}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: db, namespace: shop}
spec:
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: c, image: x, ports: [{name: sql, containerPort: 5432}, {name: metrics, containerPort: 9187}]}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: prometheus, namespace: monitoring}
spec:
  selector: {matchLabels: {app: prometheus}}
  template:
    metadata: {labels: {app: prometheus}}
    spec: {containers: [{name: c, image: x}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny, namespace: shop}
spec: {podSelector: {}, policyTypes: [Ingress, Egress]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-ingress, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: web}}}]
    ports: [{port: sql}]
  - from: [{namespaceSelector: {matchLabels: {monitoring: "true"}}}]
    ports: [{port: metrics}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-egress, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Egress]
  egress:
  - to: [{namespaceSelector: {}, podSelector: {matchLabels: {k8s-app: kube-dns}}}]
    ports: [{port: 53, protocol: UDP}]
  - to: [{podSelector: {matchLabels: {app: db}}}]
    ports: [{port: 5432}]
  - to: [{ipBlock: {cidr: 0.0.0.0/0, except: [10.0.0.0/8]}}]
    ports: [{port: 443}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-ingress, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{ipBlock: {cidr: 203.0.113.0/24}}]
    ports: [{port: http}]
"#;

fn shop() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shop.yaml");
    std::fs::write(&path, SHOP).unwrap();
    (dir, path)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn eval_names_the_policy_and_rule_that_admit() {
    let (_d, path) = shop();
    let o = simulate(&[
        "eval",
        "--from",
        "shop/web",
        "--to",
        "db",
        "--port",
        "5432",
        s(&path),
    ]);
    assert_eq!(o.code.unwrap(), 0, "{}", o.stdout);
    assert!(
        o.stdout
            .starts_with("ALLOWED: shop/web[Deployment] -> shop/db[Deployment] on TCP 5432"),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout.contains(
            "egress of shop/web[Deployment]: isolated by shop/default-deny, shop/web-egress"
        ),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout
            .contains("admitted by shop/web-egress egress rule 1"),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout.contains(
            "ingress of shop/db[Deployment]: isolated by shop/db-ingress, shop/default-deny"
        ),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout
            .contains("admitted by shop/db-ingress ingress rule 0"),
        "{}",
        o.stdout
    );
}

#[test]
fn eval_says_which_side_denies() {
    let (_d, path) = shop();
    // The metrics port: db's ingress admits monitoring namespaces only.
    let o = simulate(&[
        "eval",
        "--from",
        "web",
        "--to",
        "shop/db[Deployment]",
        "--port",
        "9187/TCP",
        s(&path),
    ]);
    assert_eq!(o.code.unwrap(), 1, "{}", o.stdout);
    assert!(o.stdout.starts_with("DENIED"), "{}", o.stdout);
    assert!(
        o.stdout.contains(
            "no egress rule of these policies admits shop/db[Deployment] on TCP 9187: denied"
        ),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout.contains(
            "no ingress rule of these policies admits shop/web[Deployment] on TCP 9187: denied"
        ),
        "{}",
        o.stdout
    );

    // prometheus is not isolated for egress; db's rule 1 admits it on the
    // named port `metrics`, resolved on db.
    let o = simulate(&[
        "eval",
        "--from",
        "prometheus",
        "--to",
        "db",
        "--port",
        "9187",
        s(&path),
    ]);
    assert_eq!(o.code.unwrap(), 0, "{}", o.stdout);
    assert!(
        o.stdout
            .contains("egress of monitoring/prometheus[Deployment]: not isolated"),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout
            .contains("admitted by shop/db-ingress ingress rule 1"),
        "{}",
        o.stdout
    );

    // An address: ingress only, rule 0 of web-ingress on the named port.
    let o = simulate(&[
        "eval",
        "--from",
        "203.0.113.9",
        "--to",
        "web",
        "--port",
        "8080",
        s(&path),
    ]);
    assert_eq!(o.code.unwrap(), 0, "{}", o.stdout);
    assert!(
        o.stdout
            .contains("egress of 203.0.113.9[External]: outside the cluster"),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout
            .contains("admitted by shop/web-ingress ingress rule 0"),
        "{}",
        o.stdout
    );
    // To an address: egress rule 2, except carved out.
    let o = simulate(&[
        "eval",
        "--from",
        "web",
        "--to",
        "10.1.1.1",
        "--port",
        "443",
        s(&path),
    ]);
    assert_eq!(o.code.unwrap(), 1, "{}", o.stdout);
    let o = simulate(&[
        "eval",
        "--from",
        "web",
        "--to",
        "1.1.1.1",
        "--port",
        "443",
        s(&path),
    ]);
    assert_eq!(o.code.unwrap(), 0, "{}", o.stdout);
    assert!(
        o.stdout
            .contains("admitted by shop/web-egress egress rule 2"),
        "{}",
        o.stdout
    );
}

#[test]
fn eval_rejects_unknown_and_ambiguous_workloads() {
    let (dir, path) = shop();
    let other = dir.path().join("other.yaml");
    std::fs::write(&other, "apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: other}\nspec: {containers: []}\n").unwrap();
    let o = simulate(&[
        "eval",
        "--from",
        "nope",
        "--to",
        "db",
        "--port",
        "1",
        s(&path),
    ]);
    assert!(matches!(o.code, Err(SimulateError::UnknownWorkload(_))));
    let o = simulate(&[
        "eval",
        "--from",
        "web",
        "--to",
        "db",
        "--port",
        "1",
        s(dir.path()),
    ]);
    let e = o.code.unwrap_err();
    assert!(
        e.to_string()
            .contains("other/web[Pod], shop/web[Deployment]"),
        "{e}"
    );
    assert_eq!(e.exit_code(), 2);
}

#[test]
fn list_focus_and_formats() {
    let (_d, path) = shop();
    let o = simulate(&["list", "--focus", "db", s(&path)]);
    assert_eq!(o.code.unwrap(), 0);
    assert_eq!(
        o.stdout,
        "monitoring/prometheus[Deployment]\n  => shop/db[Deployment]  TCP 9187\n\
         shop/web[Deployment]\n  => shop/db[Deployment]  TCP 5432\n\
         2 connections involving 3 workloads\n",
    );
    let o = simulate(&["list", "--output", "md", s(&path)]);
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines[0], "| Source | Destination | Ports |");
    assert_eq!(lines[1], "| --- | --- | --- |");
    assert!(
        lines[2..]
            .iter()
            .all(|l| l.starts_with("| ") && l.ends_with(" |") && l.matches(" | ").count() == 2),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout
            .contains("| shop/web\\[Deployment\\] | shop/db\\[Deployment\\] | TCP 5432 |"),
        "{}",
        o.stdout
    );
}

/// Renders with Graphviz. Fails (never skips) when `dot` is missing: the
/// CI script installs graphviz, and a silent skip would hide a broken
/// rendering.
fn render_dot(dot: &str) -> String {
    let mut child = Command::new("dot")
        .arg("-Tsvg")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run `dot` ({e}): install graphviz (`apt-get install -y graphviz`) to test the dot output")
        });
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(dot.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "dot -Tsvg failed: {}\n{dot}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn dot_renders_with_graphviz() {
    let (_d, path) = shop();
    let o = simulate(&["list", "--output", "dot", s(&path)]);
    assert_eq!(o.code.unwrap(), 0);
    assert!(o.stdout.contains("subgraph \"cluster_"), "{}", o.stdout);
    let svg = render_dot(&o.stdout);
    assert!(svg.contains("<svg"), "{svg}");
    assert!(svg.contains("shop"), "namespace cluster label missing");

    // The whole fixture with the most connections renders too.
    let big = shared_fixtures("connectivity/ipblockstest/manifests");
    let big = big.to_str().unwrap();
    let o = simulate(&["list", "--output", "dot", big]);
    assert!(render_dot(&o.stdout).contains("<svg"));
    // And a diff.
    let root = format!("{}/", shared_fixtures("connectivity").display());
    let o = simulate(&[
        "diff",
        "--output",
        "dot",
        &format!("{root}onlineboutique_workloads/manifests"),
        &format!("{root}onlineboutique_workloads_changed_netpols/manifests"),
    ]);
    assert!(render_dot(&o.stdout).contains("<svg"));
}

#[test]
fn diff_fails_on_open_only_when_something_opens() {
    let root = format!("{}/", shared_fixtures("connectivity").display());
    let old = format!("{root}netpol-analysis-example-minimal/manifests");
    let new = format!("{root}netpol-diff-example-minimal/manifests");
    let o = simulate(&["diff", "--fail-on", "open", &old, &new]);
    assert_eq!(o.code.unwrap(), 1, "{}", o.stdout);
    assert!(o.stdout.contains("~ default/frontend[Deployment] => default/backend[Deployment] : TCP 9090 -> TCP 9090; UDP 53"), "{}", o.stdout);
    // The reverse only closes.
    let o = simulate(&["diff", "--fail-on", "open", &new, &old]);
    assert_eq!(o.code.unwrap(), 0, "{}", o.stdout);
    let o = simulate(&["diff", "--fail-on", "open", &old, &old]);
    assert_eq!(o.code.unwrap(), 0);
    assert_eq!(o.stdout, "no change in connectivity\n");
    let o = simulate(&["diff", "--output", "md", &new, &old]);
    assert!(
        o.stdout
            .starts_with("| Change | Source | Destination | Before | After |\n| --- |"),
        "{}",
        o.stdout
    );
}

#[test]
fn non_manifests_are_noted_or_fatal_with_strict() {
    let case = shared_fixtures("connectivity/onlineboutique/manifests");
    let case = case.to_str().unwrap();
    let o = simulate(&["list", "--output", "json", case]);
    assert_eq!(o.code.unwrap(), 0);
    assert!(
        o.stderr.contains("note: skipped") && o.stderr.contains("connlist_output.json"),
        "{}",
        o.stderr
    );
    let o = simulate(&["list", "--strict", case]);
    let e = o.code.unwrap_err();
    assert!(e.to_string().contains("connlist_output.json"), "{e}");
    assert_eq!(e.exit_code(), 2);
}

#[test]
fn parse_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad-policy.yaml");
    std::fs::write(
        &bad,
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: x}\nspec:\n  podSelector: {}\n  ingress: [{from: [{ipBlock: {cidr: nope}}]}]\n",
    )
    .unwrap();
    let e = simulate(&["list", s(dir.path())]).code.unwrap_err();
    assert!(
        e.to_string().contains("bad-policy.yaml#0") && e.to_string().contains("invalid CIDR"),
        "{e}"
    );
    let e = simulate(&["list", "/nonexistent/palisade"])
        .code
        .unwrap_err();
    assert!(e.to_string().contains("/nonexistent/palisade"), "{e}");
    let e = simulate(&["list"]).code.unwrap_err();
    assert!(matches!(e, SimulateError::Usage(_)), "{e}");
    assert!(Cli::try_parse_from(["simulate", "list", "--output", "yaml", "x"]).is_err());
    let e = simulate(&[
        "eval",
        "--from",
        "a",
        "--to",
        "b",
        "--port",
        "http",
        s(dir.path()),
    ])
    .code
    .unwrap_err();
    assert!(e.to_string().contains("--port \"http\""), "{e}");
}

#[test]
fn state_and_paths_combine_like_kubectl_apply() {
    let (dir, path) = shop();
    // The pull request relaxes db-ingress: web may use any port.
    let pr = dir.path().join("pr");
    std::fs::create_dir(&pr).unwrap();
    std::fs::write(
        pr.join("db-ingress.yaml"),
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: db-ingress, namespace: shop}\nspec:\n  podSelector: {matchLabels: {app: db}}\n  ingress: [{from: [{podSelector: {matchLabels: {app: web}}}]}]\n",
    )
    .unwrap();
    let o = simulate(&[
        "eval",
        "--from",
        "prometheus",
        "--to",
        "db",
        "--port",
        "9187",
        "--state",
        s(&path),
        s(&pr),
    ]);
    assert_eq!(
        o.code.unwrap(),
        1,
        "the replaced policy no longer admits monitoring: {}",
        o.stdout
    );
}

// ---- preview over a captured admission review --------------------------

fn review_policies(file: &str) -> PolicyChange {
    let path = shared_fixtures("admission-reviews").join(file);
    let req = palisade::review::parse(&std::fs::read(&path).unwrap()).unwrap();
    let policy = |o: &Option<palisade::decide::Object>| match o {
        Some(palisade::decide::Object::NetworkPolicy(np)) => {
            Some(Policy::from_k8s(np, "default").unwrap())
        }
        _ => None,
    };
    PolicyChange::from_parts(policy(&req.old_object), policy(&req.object)).unwrap()
}

const FX_STATE: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: fx-apps}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: frontend, namespace: fx-apps}
spec:
  selector: {matchLabels: {app: frontend}}
  template: {metadata: {labels: {app: frontend}}, spec: {containers: [{name: c, image: x}]}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: backend, namespace: fx-apps}
spec:
  selector: {matchLabels: {app: backend}}
  template: {metadata: {labels: {app: backend}}, spec: {containers: [{name: c, image: x}]}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny-ingress, namespace: fx-apps}
spec: {podSelector: {}, policyTypes: [Ingress]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: frontend-to-backend, namespace: fx-apps}
spec:
  podSelector: {matchLabels: {app: backend}}
  policyTypes: [Ingress]
  ingress: [{from: [{podSelector: {matchLabels: {app: frontend}}}], ports: [{port: 8080, protocol: TCP}]}]
"#;

fn fx_model() -> palisade::reach::Model {
    let mut m = palisade::manifest::Manifests::default();
    palisade::manifest::read_text(Path::new("state.yaml"), FX_STATE, &mut m);
    ModelBuilder::new().documents(&m).unwrap().build()
}

#[test]
fn preview_of_a_captured_update_opens_the_new_port() {
    let change = review_policies("validating-networkpolicy-update-frontend-to-backend.json");
    let p = preview(&fx_model(), &change);
    assert_eq!(
        p.warnings(10),
        vec!["opens: fx-apps/frontend[Deployment] => fx-apps/backend[Deployment] : TCP 9090"]
    );
    assert!(p.closed.is_empty());
}

#[test]
fn preview_of_a_captured_delete_closes_what_the_policy_allowed() {
    let change = review_policies("validating-networkpolicy-delete-frontend-to-backend.json");
    // The state holds the policy as the update left it (8080 and 9090);
    // the model's version is what the delete removes.
    let model = fx_model().with_change(&review_policies(
        "validating-networkpolicy-update-frontend-to-backend.json",
    ));
    let p = preview(&model, &change);
    assert_eq!(
        p.warnings(10),
        vec!["closes: fx-apps/frontend[Deployment] => fx-apps/backend[Deployment] : TCP 8080,9090"]
    );
}

#[test]
fn preview_of_a_captured_create_and_the_warning_limit() {
    // allow-all ingress in a namespace of isolated pods opens everything.
    let change = review_policies("validating-networkpolicy-create-allow-all-ingress.json");
    let (ns, _) = change.key().unwrap();
    let mut b = ModelBuilder::new();
    for i in 0..12 {
        b.pod(
            &serde_json::from_value(serde_json::json!({
                "metadata": {"name": format!("p{i}"), "namespace": ns},
                "spec": {"containers": []}
            }))
            .unwrap(),
        );
    }
    b.policy(
        Policy::from_k8s(
            &serde_json::from_value(serde_json::json!({
                "metadata": {"name": "deny", "namespace": ns},
                "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}
            }))
            .unwrap(),
            "default",
        )
        .unwrap(),
    );
    let p = preview(&b.build(), &change);
    // 12 pods, each now reachable from 11 others and from outside.
    assert_eq!(p.opened.len(), 12 * 11 + 12);
    let w = p.warnings(10);
    assert_eq!(w.len(), 11);
    assert!(w[0].starts_with("opens: "), "{w:?}");
    assert_eq!(w[10], format!("... and {} more opened", 12 * 11 + 12 - 10));
    assert!(p.closed.is_empty());
}

#[test]
fn preview_of_nothing_changing_says_so() {
    let model = fx_model();
    let same = model
        .policy("fx-apps", "frontend-to-backend")
        .unwrap()
        .clone();
    let p = preview(&model, &PolicyChange::update(same.clone(), same).unwrap());
    assert!(p.is_empty());
    assert_eq!(
        p.warnings(10),
        vec!["this change opens and closes no connection"]
    );
}

/// `simulate --cluster` lists namespaces, policies and pods and seeds the
/// model through audit's inventory: the same objects as manifests must
/// make the same model.
#[test]
fn a_cluster_inventory_seeds_the_model_its_manifests_make() {
    let yaml = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {team: a}}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}}
spec: {containers: [{name: c, image: x}]}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: shop, labels: {app: db}}
spec: {containers: [{name: c, image: x, ports: [{containerPort: 5432}]}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}}
  policyTypes: [Ingress]
  ingress: [{from: [{podSelector: {matchLabels: {app: web}}}], ports: [{port: 5432}]}]
"#;
    let mut m = palisade::manifest::Manifests::default();
    palisade::manifest::read_text(Path::new("cluster.yaml"), yaml, &mut m);
    let inventory = palisade::audit::inventory_from_manifests(&m).unwrap();
    let seeded = inventory.model_builder().unwrap().build();
    let direct = ModelBuilder::new().documents(&m).unwrap().build();
    let lines = |model| -> Vec<String> {
        palisade::reach::connections(model)
            .iter()
            .map(ToString::to_string)
            .filter(|l| l.contains("=> shop/db[Pod]"))
            .collect()
    };
    assert_eq!(lines(&seeded), lines(&direct));
    assert_eq!(lines(&seeded), ["shop/web[Pod] => shop/db[Pod] : TCP 5432"]);
}
