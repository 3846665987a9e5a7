//! palisade in CI pipelines, as a new user meets it: `check` in a
//! repository with no policy file; one rule for what is not a manifest in
//! every command; SARIF checked by Microsoft's validator and JUnit read
//! back by a JUnit reader (both pinned as golden files); what kubectl
//! reads, palisade reads; the README's CI recipes; the pre-commit hooks
//! run by pre-commit on a scratch repository.
//!
//! Tools (installed by scripts/test.sh): `.venv/bin/kubectl`,
//! `.venv/bin/pre-commit`, `.venv/bin/python` with junitparser, and
//! `node_modules/.bin/sarif-multitool`. Golden files are rewritten with
//! `PALISADE_BLESS=1 cargo test --test pipeline`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const HINT: &str = "run ./scripts/test.sh once: it installs the tools the tests use";

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_palisade")
}

fn tool(rel: &str) -> PathBuf {
    let p = Path::new(ROOT).join(rel);
    assert!(p.exists(), "{} is missing; {HINT}", p.display());
    p
}

fn palisade(args: &[&str], cwd: &Path) -> Output {
    Command::new(bin())
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .expect("run palisade")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn write(dir: &Path, rel: &str, body: impl AsRef<[u8]>) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, body).unwrap();
}

/// A namespace with its default-deny and a Deployment: all admitted.
const FENCED: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n  labels: {environment: prod}\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: default-deny, namespace: shop}\nspec: {podSelector: {}, policyTypes: [Ingress, Egress]}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers: [{name: web, image: nginx, ports: [{containerPort: 8080}]}]\n";

const BUILT_IN_NOTE: &str = "using the built-in default policy";

#[test]
fn check_runs_anywhere_on_the_built_in_policy() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "k8s/shop.yaml", FENCED);
    let o = palisade(&["check", "k8s"], dir.path());
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}{}", text(&o.stdout));
    assert_eq!(err.matches(BUILT_IN_NOTE).count(), 1, "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    // A pod where nothing is fenced: exit by the finding, with its place.
    write(
        dir.path(),
        "k8s/wild.yaml",
        "# a pod\napiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: wild}\nspec: {containers: [{name: c, image: x}]}\n",
    );
    let o = palisade(&["check", "k8s"], dir.path());
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("DENY  Pod p (k8s/wild.yaml:2)"),
        "{}",
        text(&o.stdout)
    );
    // --config still wins, and a missing one is an error, not a default.
    let o = palisade(&["check", "--config", "nope.yaml", "k8s"], dir.path());
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("nope.yaml"), "{}", text(&o.stderr));
    assert!(!text(&o.stderr).contains(BUILT_IN_NOTE));
    // A policy file where check looks for one is used, silently.
    std::fs::create_dir_all(dir.path().join("policies/sidecars")).unwrap();
    std::fs::copy(
        Path::new(ROOT).join("policies/palisade.yaml"),
        dir.path().join("policies/palisade.yaml"),
    )
    .unwrap();
    std::fs::copy(
        Path::new(ROOT).join("policies/sidecars/access-proxy.yaml"),
        dir.path().join("policies/sidecars/access-proxy.yaml"),
    )
    .unwrap();
    let o = palisade(&["check", "k8s"], dir.path());
    assert_eq!(o.status.code(), Some(1));
    assert!(
        !text(&o.stderr).contains(BUILT_IN_NOTE),
        "{}",
        text(&o.stderr)
    );
}

/// The inputs of the consistency table (README, "What palisade reads, and
/// what it skips"): name, file, contents, whether it is noted.
fn odd_inputs() -> Vec<(&'static str, &'static str, Vec<u8>, bool)> {
    vec![
        (
            "JSON array",
            "k8s/connlist_output.json",
            br#"[{"src": "a", "dst": "b", "conn": "All Connections"}]"#.to_vec(),
            true,
        ),
        (
            "Helm template",
            "k8s/deployment.yaml",
            b"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}-web\n".to_vec(),
            true,
        ),
        (
            "kustomization.yaml",
            "k8s/kustomization.yaml",
            b"apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [shop.yaml]\n"
                .to_vec(),
            true,
        ),
        ("empty file", "k8s/empty.yaml", Vec::new(), false),
        (
            "binary file",
            "k8s/logo.yaml",
            vec![0x89, b'P', b'N', b'G', 0, 0, 0xff, 0xfe, b'\n'],
            true,
        ),
        (
            "malformed YAML",
            "k8s/broken.yaml",
            b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x\ndata: [\n".to_vec(),
            true,
        ),
    ]
}

/// Each command that reads manifests, with and without `--strict`, over a
/// directory of good manifests plus one odd input: without `--strict` the
/// input is noted (file, line, document, reason) and the exit code is the
/// one of the good manifests alone; with it, exit 2. An empty file is no
/// manifest and no error, as with kubectl.
#[test]
fn one_rule_for_what_is_not_a_manifest_in_every_command() {
    let mut table = String::from("input | command | exit | strict exit\n");
    for (what, file, body, noted) in odd_inputs() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "k8s/shop.yaml", FENCED);
        write(dir.path(), file, &body);
        let name = Path::new(file).file_name().unwrap().to_str().unwrap();
        let commands: [(&str, Vec<&str>); 4] = [
            ("check", vec!["check", "k8s"]),
            ("simulate list", vec!["simulate", "list", "k8s"]),
            (
                "simulate diff",
                vec!["simulate", "diff", "k8s/shop.yaml", "k8s"],
            ),
            (
                "audit --state",
                vec!["audit", "--config", "policy.yaml", "--state", "k8s"],
            ),
        ];
        std::fs::copy(
            Path::new(ROOT).join("policies/palisade.yaml"),
            dir.path().join("policy.yaml"),
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("sidecars")).unwrap();
        std::fs::copy(
            Path::new(ROOT).join("policies/sidecars/access-proxy.yaml"),
            dir.path().join("sidecars/access-proxy.yaml"),
        )
        .unwrap();
        for (command, args) in commands {
            let o = palisade(&args, dir.path());
            let err = text(&o.stderr);
            let strict_args: Vec<&str> = {
                let mut a = args.clone();
                let at = if a[0] == "simulate" { 2 } else { 1 };
                a.insert(at, "--strict");
                a
            };
            let s = palisade(&strict_args, dir.path());
            let strict_err = text(&s.stderr);
            table.push_str(&format!(
                "{what} | {command} | {:?} | {:?}\n",
                o.status.code(),
                s.status.code()
            ));
            assert_eq!(o.status.code(), Some(0), "{what}, {command}: {err}");
            let note = format!("note: skipped k8s/{name}:");
            if noted {
                assert_eq!(err.matches(&note).count(), 1, "{what}, {command}: {err}");
                assert!(err.contains("(document 0): "), "{what}, {command}: {err}");
                assert_eq!(s.status.code(), Some(2), "{what}, {command}: {strict_err}");
                assert!(
                    strict_err.contains(&note),
                    "{what}, {command}: {strict_err}"
                );
                assert!(strict_err.contains("(--strict)"), "{strict_err}");
            } else {
                assert!(!err.contains("note: skipped"), "{what}, {command}: {err}");
                assert_eq!(s.status.code(), Some(0), "{what}, {command}: {strict_err}");
            }
        }
    }
    println!("{table}");
}

/// `serve --state` keeps the same rule: the odd files are logged with
/// their file and reason and it serves; with `--strict` it does not start.
#[test]
fn serve_state_notes_what_is_not_a_manifest_and_strict_refuses() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "state/shop.yaml", FENCED);
    for (_, file, body, _) in odd_inputs() {
        write(dir.path(), &file.replace("k8s/", "state/"), &body);
    }
    let certs = tempfile::tempdir().unwrap();
    common::bundle().write_to(certs.path()).unwrap();
    let serve = |strict: bool| {
        let mut c = Command::new(bin());
        c.arg("serve")
            .arg("--config")
            .arg(Path::new(ROOT).join("policies/palisade.yaml"))
            .arg("--state")
            .arg(dir.path().join("state"))
            .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
            .arg("--tls-cert")
            .arg(certs.path().join(palisade::certs::CERT_FILE))
            .arg("--tls-key")
            .arg(certs.path().join(palisade::certs::KEY_FILE))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if strict {
            c.arg("--strict");
        }
        c.spawn().expect("serve")
    };
    let o = serve(true).wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("5 files or documents are not Kubernetes manifests (--strict)"),
        "{}",
        text(&o.stderr)
    );
    let mut child = serve(false);
    let stderr = child.stderr.take().unwrap();
    let mut logged = Vec::new();
    let mut serving = false;
    for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)).map_while(Result::ok) {
        if line.contains("palisade is serving") {
            serving = true;
            break;
        }
        if line.contains("skipped a file or document in --state") {
            let v: Value = serde_json::from_str(&line).expect("a JSON log line");
            assert!(v["reason"].is_string() && v["document"].is_u64(), "{line}");
            logged.push(v["file"].as_str().unwrap_or_default().to_owned());
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(serving, "serves despite the odd files");
    let names: Vec<&str> = logged
        .iter()
        .map(|f| Path::new(f).file_name().unwrap().to_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec![
            "broken.yaml",
            "connlist_output.json",
            "deployment.yaml",
            "kustomization.yaml",
            "logo.yaml"
        ]
    );
}

// ---------------------------------------------------------------- SARIF

const CHECK_ARGS: [&str; 4] = [
    "--state",
    "tests/data/check/state",
    "tests/data/check/manifests",
    "--config=policies/palisade.yaml",
];

fn golden(name: &str, got: &str) {
    let path = Path::new(ROOT).join("tests/golden/pipeline").join(name);
    if std::env::var_os("PALISADE_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, got).unwrap();
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (PALISADE_BLESS=1 writes it)", path.display()));
    assert_eq!(
        got,
        want,
        "{} changed; if intended, PALISADE_BLESS=1 and review the diff",
        path.display()
    );
}

/// Runs `sarif-multitool validate` and returns the results of level error
/// (the validator exits 0 either way; CRATES.md).
fn sarif_errors(sarif: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.sarif");
    let output = dir.path().join("out.sarif");
    std::fs::write(&input, sarif).unwrap();
    let o = Command::new(tool("node_modules/.bin/sarif-multitool"))
        .arg("validate")
        .arg(&input)
        .arg("-o")
        .arg(&output)
        .output()
        .expect("sarif-multitool");
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(&output)
            .unwrap_or_else(|e| panic!("no validator output ({e}): {}", text(&o.stdout))),
    )
    .unwrap();
    let rules = &report["runs"][0]["tool"]["driver"]["rules"];
    report["runs"][0]["results"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .filter(|r| {
                    let default = rules
                        .as_array()
                        .and_then(|all| {
                            all.iter()
                                .find(|d| d["id"] == r["ruleId"])
                                .map(|d| d["defaultConfiguration"]["level"].clone())
                        })
                        .unwrap_or(Value::Null);
                    r["level"] == "error" || (r["level"].is_null() && default == "error")
                })
                .map(|r| r.to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The line a result points at is where its object starts in its file,
/// or the field it is about (the labels, a policy's rule).
fn assert_results_point_at_objects(sarif: &Value) {
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    assert!(!results.is_empty());
    for r in results {
        let loc = &r["locations"][0]["physicalLocation"];
        let file = Path::new(ROOT).join(loc["artifactLocation"]["uri"].as_str().unwrap());
        let line = loc["region"]["startLine"].as_u64().unwrap() as usize;
        let body = std::fs::read_to_string(&file).unwrap();
        let at = body.lines().nth(line - 1).unwrap();
        let field = at.contains("labels")
            || ["ingress", "egress", "- "]
                .iter()
                .any(|f| at.trim_start().starts_with(f));
        assert!(
            at.starts_with("apiVersion:") || field,
            "{}:{line} is {at:?}, not the start of an object or a field",
            file.display()
        );
    }
}

#[test]
fn sarif_of_check_and_diff_passes_the_validator() {
    let root = Path::new(ROOT);
    let o = palisade(
        &[&["check", "--output", "sarif"][..], &CHECK_ARGS[..]].concat(),
        root,
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let check = text(&o.stdout);
    golden("check.sarif", &check);
    assert_eq!(sarif_errors(&check), Vec::<String>::new());
    let v: Value = serde_json::from_str(&check).unwrap();
    assert_results_point_at_objects(&v);
    let levels: Vec<(&str, &str)> = v["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["ruleId"].as_str().unwrap(), r["level"].as_str().unwrap()))
        .collect();
    // Field lines where the reader knows them: the allow-all rule, the
    // labels a trusted group must set, the broad egress rule.
    let at = |rule: &str, file: &str| -> Vec<u64> {
        v["runs"][0]["results"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| {
                r["ruleId"] == rule
                    && r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                        .as_str()
                        .unwrap()
                        .ends_with(file)
            })
            .map(|r| {
                r["locations"][0]["physicalLocation"]["region"]["startLine"]
                    .as_u64()
                    .unwrap()
            })
            .collect()
    };
    assert_eq!(at("no-allow-all", "shop/policies.yaml"), vec![14]);
    assert_eq!(at("trusted-labels", "namespaces.yaml"), vec![12]);
    assert_eq!(at("palisade-warning", "shop/policies.yaml"), vec![24]);
    assert_eq!(
        at("require-default-deny", "elsewhere/apps.yaml"),
        vec![2, 13, 20]
    );
    // Deny, warn-mode and dry-run-mode violations, and a broad warning.
    for want in [
        ("require-default-deny", "error"),
        ("require-default-deny", "warning"),
        ("require-default-deny", "note"),
        ("no-allow-all", "error"),
        ("trusted-labels", "error"),
        ("palisade-warning", "warning"),
    ] {
        assert!(levels.contains(&want), "{want:?} in {levels:?}");
    }

    let o = palisade(
        &[
            "simulate",
            "diff",
            "--fail-on",
            "open",
            "--output",
            "sarif",
            "docs/simulate-example/main",
            "docs/simulate-example/pr",
        ],
        root,
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let diff = text(&o.stdout);
    golden("diff.sarif", &diff);
    let v: Value = serde_json::from_str(&diff).unwrap();
    assert_results_point_at_objects(&v);
    assert_eq!(
        v["runs"][0]["results"].as_array().unwrap().len(),
        2,
        "two opened"
    );
    assert_eq!(sarif_errors(&diff), Vec::<String>::new());

    // The validator does find errors: a result whose rule index is out of
    // range, and a log without its version.
    let mut broken = v.clone();
    broken["runs"][0]["results"][0]["ruleIndex"] = 7.into();
    broken.as_object_mut().unwrap().remove("version");
    assert!(!sarif_errors(&broken.to_string()).is_empty());
}

// ---------------------------------------------------------------- JUnit

/// What junitparser (PyPI) reads from a JUnit file: every test case with
/// its class name and result.
fn junit_read(xml: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.xml");
    std::fs::write(&file, xml).unwrap();
    let script = r#"
import json, sys
from junitparser import JUnitXml, Failure, Skipped, Error
xml = JUnitXml.fromfile(sys.argv[1])
out = []
for suite in xml:
    for case in suite:
        results = [{"kind": type(r).__name__, "message": r.message, "type": r.type, "text": r.text} for r in case.result]
        out.append({"suite": suite.name, "name": case.name, "classname": case.classname, "results": results, "system_out": case.system_out})
print(json.dumps(out))
"#;
    let o = Command::new(tool(".venv/bin/python"))
        .args(["-c", script])
        .arg(&file)
        .output()
        .expect("python");
    assert!(o.status.success(), "junitparser: {}", text(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn junit_of_check_and_diff_reads_back() {
    let root = Path::new(ROOT);
    let o = palisade(
        &[&["check", "--output", "junit"][..], &CHECK_ARGS[..]].concat(),
        root,
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let xml = text(&o.stdout);
    golden("check.xml", &xml);
    let cases = junit_read(&xml);
    let json = palisade(
        &[&["check", "--output", "json"][..], &CHECK_ARGS[..]].concat(),
        root,
    );
    let report: Value = serde_json::from_slice(&json.stdout).unwrap();
    let decided: Vec<&Value> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["decision"] != "skip")
        .collect();
    let cases = cases.as_array().unwrap();
    assert_eq!(
        cases.len(),
        decided.len(),
        "one test case per object decided"
    );
    for (case, r) in cases.iter().zip(&decided) {
        assert_eq!(
            case["classname"],
            format!("{}:{}", r["file"].as_str().unwrap(), r["line"]),
            "{case}"
        );
        let failures: Vec<&Value> = case["results"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["kind"] == "Failure")
            .collect();
        if r["decision"] == "deny" {
            assert_eq!(failures.len(), 1, "{case}");
            let rule = r["violations"][0]["rule"].as_str().unwrap();
            assert_eq!(failures[0]["type"], rule);
            assert!(failures[0]["message"].as_str().unwrap().contains(rule));
            assert!(
                failures[0]["text"].as_str().unwrap().contains("Fix: "),
                "the failure carries the fix: {case}"
            );
        } else {
            assert!(failures.is_empty(), "{case}");
        }
    }
    assert_eq!(
        cases
            .iter()
            .filter(|c| c["results"].as_array().is_some_and(|r| !r.is_empty()))
            .count(),
        report["summary"]["denied"].as_u64().unwrap() as usize
    );

    let o = palisade(
        &[
            "simulate",
            "diff",
            "--fail-on",
            "open",
            "--output",
            "junit",
            "docs/simulate-example/main",
            "docs/simulate-example/pr",
        ],
        root,
    );
    assert_eq!(o.status.code(), Some(1));
    let xml = text(&o.stdout);
    golden("diff.xml", &xml);
    let cases = junit_read(&xml);
    let summary: Vec<(String, String, usize)> = cases
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["classname"].as_str().unwrap().to_owned(),
                c["results"].as_array().unwrap().len(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                "shop/web[Deployment] => shop/db[Deployment]".to_owned(),
                "changed".to_owned(),
                1
            ),
            (
                "198.51.100.0/24[External] => shop/web[Deployment]".to_owned(),
                "added".to_owned(),
                1
            ),
            (
                "203.0.113.0/24[External] => shop/web[Deployment]".to_owned(),
                "removed".to_owned(),
                0
            ),
        ]
    );
}

// ------------------------------------------------------- what kubectl reads

/// How many objects kubectl decodes from a file: with no API server to
/// map kinds, `kubectl create --dry-run=client` reports each decoded
/// object as "unable to recognize", and a file it cannot decode otherwise.
fn kubectl_objects(file: &Path, kubeconfig: &Path) -> usize {
    let kubectl = std::env::var_os("PALISADE_KUBECTL")
        .map(PathBuf::from)
        .unwrap_or_else(|| tool(".venv/bin/kubectl"));
    let o = Command::new(kubectl)
        .args(["create", "--dry-run=client", "--validate=false", "-f"])
        .arg(file)
        .env("KUBECONFIG", kubeconfig)
        .output()
        .expect("kubectl");
    text(&o.stderr).matches("unable to recognize").count()
}

#[test]
fn what_kubectl_reads_palisade_reads() {
    let dir = tempfile::tempdir().unwrap();
    // An API server address where nothing listens: kubectl decodes the
    // files, then fails to map each object's kind.
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters: [{name: none, cluster: {server: 'http://127.0.0.1:1'}}]\ncontexts: [{name: none, context: {cluster: none}}]\ncurrent-context: none\n",
    )
    .unwrap();
    let deployment_with_tabs = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: webapp, namespace: frontend}\nspec:\n  selector: {matchLabels: {app: webapp}}\n  template:\n    metadata: {labels: {app: webapp}}\n    spec:\n      containers:\n        - image: quay.io/vuln/rce-webapp:latest\n          name: webapp\n          args:\n            [\n\t\"-listen\",\n\t\":8080\",\n            ]\n";
    let export = "{\n    \"apiVersion\": \"v1\",\n    \"items\": [\n        {\"apiVersion\": \"v1\", \"kind\": \"Namespace\", \"metadata\": {\"name\": \"a\"}},\n        {\"apiVersion\": \"networking.k8s.io/v1\", \"kind\": \"NetworkPolicy\", \"metadata\": {\"name\": \"d\", \"namespace\": \"a\"}, \"spec\": {\"podSelector\": {}}}\n    ],\n    \"kind\": \"List\",\n    \"metadata\": {\"resourceVersion\": \"\"}\n}\n";
    let cases: Vec<(&str, String)> = vec![
        ("tabs-in-flow.yaml", deployment_with_tabs.to_owned()),
        (
            "anchors.yaml",
            "apiVersion: v1\nkind: ConfigMap\nx-base: &b {name: a, namespace: shop}\nmetadata:\n  <<: *b\n  name: merged\ndata: {k: v}\n".to_owned(),
        ),
        (
            "comments.yaml",
            "# leading\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n--- # the second one\napiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n---\n# only a comment\n".to_owned(),
        ),
        (
            "crlf-bom.yaml",
            "\u{feff}apiVersion: v1\r\nkind: Namespace\r\nmetadata:\r\n  name: a\r\n---\r\napiVersion: v1\r\nkind: Namespace\r\nmetadata: {name: b}\r\n".to_owned(),
        ),
        (
            "bom.json",
            "\u{feff}{\"apiVersion\": \"v1\", \"kind\": \"Namespace\", \"metadata\": {\"name\": \"a\"}}".to_owned(),
        ),
        (
            "stream.json",
            "{\"apiVersion\": \"v1\", \"kind\": \"Namespace\", \"metadata\": {\"name\": \"a\"}}\n{\"apiVersion\": \"v1\", \"kind\": \"Namespace\", \"metadata\": {\"name\": \"b\"}}\n".to_owned(),
        ),
        ("export.json", export.to_owned()),
        (
            "list.yaml",
            "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Namespace\n  metadata: {name: a}\n- apiVersion: v1\n  kind: Namespace\n  metadata: {name: b}\n".to_owned(),
        ),
        ("array.json", "[{\"apiVersion\": \"v1\", \"kind\": \"Namespace\"}]".to_owned()),
        ("empty.yaml", String::new()),
    ];
    for (name, body) in &cases {
        let file = dir.path().join(name);
        std::fs::write(&file, body).unwrap();
        let kubectl = kubectl_objects(&file, &kubeconfig);
        let m = palisade::manifest::read_paths(&[&file]).unwrap();
        // kubectl maps a list's own kind before it flattens the items, so
        // without a server it reports the list once; palisade reads both
        // items (as kubectl applies them).
        let read = if name.starts_with("export") || name.starts_with("list") {
            assert_eq!(m.documents.len(), 2, "{name}");
            1
        } else {
            m.documents.len()
        };
        assert_eq!(
            read,
            kubectl,
            "{name}: kubectl decodes {kubectl} objects, palisade read {:?} and skipped {:?}",
            m.documents.iter().map(|d| d.name()).collect::<Vec<_>>(),
            m.skipped
        );
        assert_eq!(
            m.skipped.is_empty(),
            *name != "array.json",
            "{name}: {:?}",
            m.skipped
        );
    }
    // The tab case reads as kubectl reads it.
    let m = palisade::manifest::read_paths(&[dir.path().join("tabs-in-flow.yaml")]).unwrap();
    assert_eq!(
        m.documents[0].value["spec"]["template"]["spec"]["containers"][0]["args"],
        serde_json::json!(["-listen", ":8080"])
    );
}

// ------------------------------------------------------------ CI recipes

/// The fenced ```yaml blocks of a README section.
fn yaml_blocks(readme: &str, heading: &str) -> Vec<String> {
    let start = readme.find(heading).expect("the section");
    let section = &readme[start + heading.len()..];
    let section = &section[..section.find("\n### ").unwrap_or(section.len())];
    let mut out = Vec::new();
    let mut rest = section;
    while let Some(i) = rest.find("```yaml\n") {
        let body = &rest[i + 8..];
        let end = body.find("```").expect("a closed block");
        out.push(body[..end].to_owned());
        rest = &body[end + 3..];
    }
    out
}

fn steps_text(v: &Value) -> String {
    serde_json::to_string(v).unwrap()
}

#[test]
fn the_readme_ci_recipes_parse_and_run_what_they_say() {
    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap();
    let blocks = yaml_blocks(&readme, "### CI recipes");
    assert_eq!(blocks.len(), 2, "GitHub Actions and GitLab CI");
    let options = serde_saphyr::options! { strict_booleans: true };
    let gh: Value = serde_saphyr::from_str_with_options(&blocks[0], options).expect("GitHub YAML");
    let steps = &gh["jobs"]["palisade"]["steps"];
    assert!(gh["on"]["pull_request"].is_object(), "{gh}");
    assert_eq!(gh["permissions"]["security-events"], "write");
    assert_eq!(steps[0]["with"]["fetch-depth"], 0);
    let all = steps_text(steps);
    for want in [
        "palisade check --output sarif",
        "palisade simulate diff --base",
        "--fail-on open --output sarif",
        "github/codeql-action/upload-sarif@v3",
        "--output md",
        "gh pr comment",
    ] {
        assert!(all.contains(want), "GitHub recipe lacks {want}: {all}");
    }
    let uploads: Vec<&Value> = steps
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["uses"] == "github/codeql-action/upload-sarif@v3")
        .collect();
    assert_eq!(uploads.len(), 2);
    assert!(
        uploads.iter().all(|s| s["if"] == "always()"),
        "uploaded even when check fails"
    );

    let options = serde_saphyr::options! { strict_booleans: true };
    let gl: Value = serde_saphyr::from_str_with_options(&blocks[1], options).expect("GitLab YAML");
    let job = &gl["palisade"];
    assert_eq!(job["variables"]["GIT_DEPTH"], 0);
    assert_eq!(
        job["artifacts"]["reports"]["junit"],
        serde_json::json!(["palisade-check.xml", "palisade-diff.xml"])
    );
    let script = steps_text(&job["script"]);
    for want in [
        "palisade check --output junit",
        "palisade check --output sarif",
        "--fail-on open --output junit",
        "--output md",
        "merge_requests/$CI_MERGE_REQUEST_IID/notes",
        "exit $status",
    ] {
        assert!(
            script.contains(want),
            "GitLab recipe lacks {want}: {script}"
        );
    }
    // Every palisade command the recipes run, run as written (CI
    // variables filled in) in a repository with a target branch: each
    // accepts its flags and writes what the next step reads.
    let repo = tempfile::tempdir().unwrap();
    let r = repo.path();
    git(r, &["init", "-q", "-b", "main"]);
    write(r, "k8s/shop.yaml", FENCED);
    git(r, &["add", "."]);
    git(r, &["commit", "-q", "-m", "main"]);
    git(r, &["remote", "add", "origin", r.to_str().unwrap()]);
    git(r, &["fetch", "-q", "origin"]);
    let mut ran = 0;
    for command in recipe_commands(steps)
        .into_iter()
        .chain(recipe_commands(&job["script"]))
    {
        let line = command
            .replace("\"origin/${{ github.base_ref }}\"", "origin/main")
            .replace("\"$BASE\"", "origin/main");
        let (args, out_file) = match line.split_once(" > ") {
            Some((a, f)) => (a.to_owned(), Some(f.trim().to_owned())),
            None => (line.clone(), None),
        };
        let args: Vec<&str> = args.split_whitespace().collect();
        assert!(
            !args.iter().any(|a| a.contains('$') || a.contains('"')),
            "a variable left in {line}"
        );
        let o = palisade(&args, r);
        assert!(
            matches!(o.status.code(), Some(0 | 1)),
            "{line}: {}",
            text(&o.stderr)
        );
        let out = text(&o.stdout);
        match out_file.as_deref().and_then(|f| f.rsplit('.').next()) {
            Some("sarif") => {
                let v: Value = serde_json::from_str(&out).expect(&line);
                assert_eq!(v["version"], "2.1.0", "{line}");
            }
            Some("xml") => assert!(out.starts_with("<?xml"), "{line}: {out}"),
            Some("md") => assert!(out.starts_with('|'), "{line}: {out}"),
            other => panic!("{line}: writes {other:?}"),
        }
        ran += 1;
    }
    assert_eq!(
        ran, 7,
        "three palisade commands for GitHub, four for GitLab"
    );
}

/// The `palisade ...` commands of a recipe's steps or script lines, one
/// line each (YAML folded scalars already joined, `|| ...` dropped).
fn recipe_commands(v: &Value) -> Vec<String> {
    let texts: Vec<String> = v
        .as_array()
        .unwrap_or_else(|| panic!("steps or a script: {v}"))
        .iter()
        .filter_map(|i| match i {
            Value::String(s) => Some(s.clone()),
            other => other["run"].as_str().map(str::to_owned),
        })
        .collect();
    texts
        .iter()
        .flat_map(|t| t.lines().map(str::to_owned).collect::<Vec<_>>())
        .filter_map(|l| {
            let rest = l.trim().strip_prefix("palisade ")?;
            Some(rest.split(" || ").next().unwrap_or(rest).to_owned())
        })
        .collect()
}

// -------------------------------------------------------------- pre-commit

fn git(dir: &Path, args: &[&str]) {
    let o = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .expect("git");
    assert!(o.status.success(), "git {args:?}: {}", text(&o.stderr));
}

/// `pre-commit try-repo` runs one of this repository's hooks (as
/// `.pre-commit-hooks.yaml` defines it, default arguments included) on
/// the scratch repository's files.
fn try_hook(scratch: &Path, home: &Path, hook: &str) -> Output {
    let bin_dir = Path::new(bin()).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new(tool(".venv/bin/pre-commit"))
        .args(["try-repo", ROOT, hook, "--all-files", "--verbose"])
        .current_dir(scratch)
        .env("PATH", path)
        .env("PRE_COMMIT_HOME", home)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .expect("pre-commit")
}

#[test]
fn pre_commit_hooks_pass_a_good_commit_and_fail_a_bad_one() {
    let hooks: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(Path::new(ROOT).join(".pre-commit-hooks.yaml")).unwrap(),
    )
    .unwrap();
    let ids: Vec<&str> = hooks
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "palisade-check",
            "palisade-simulate-diff",
            "palisade-check-system",
            "palisade-simulate-diff-system"
        ]
    );

    let scratch = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let s = scratch.path();
    git(s, &["init", "-q", "-b", "main"]);
    write(s, "k8s/shop.yaml", FENCED);
    git(s, &["add", "."]);
    git(s, &["commit", "-q", "-m", "a fenced shop"]);
    // origin/HEAD, which the diff hook's default arguments compare with.
    git(s, &["remote", "add", "origin", s.to_str().unwrap()]);
    git(s, &["fetch", "-q", "origin"]);
    git(s, &["remote", "set-head", "origin", "main"]);
    git(s, &["checkout", "-q", "-b", "pr"]);

    // A good commit: a narrower policy and a config map open nothing.
    write(
        s,
        "k8s/more.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: shop}\ndata: {a: b}\n",
    );
    git(s, &["add", "."]);
    git(s, &["commit", "-q", "-m", "good"]);
    for hook in ["palisade-check-system", "palisade-simulate-diff-system"] {
        let o = try_hook(s, home.path(), hook);
        assert!(
            o.status.success(),
            "{hook} on the good commit: {}{}",
            text(&o.stdout),
            text(&o.stderr)
        );
    }

    // A bad commit: an allow-all ingress policy in a prod namespace.
    write(
        s,
        "k8s/open.yaml",
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: open, namespace: shop}\nspec:\n  podSelector: {}\n  ingress: [{}]\n",
    );
    git(s, &["add", "."]);
    git(s, &["commit", "-q", "-m", "bad"]);
    let o = try_hook(s, home.path(), "palisade-check-system");
    let out = text(&o.stdout);
    assert!(!o.status.success(), "check fails: {out}");
    assert!(
        out.contains("[no-allow-all]") || out.contains("is allow-all"),
        "{out}"
    );
    assert!(out.contains("k8s/open.yaml:1"), "{out}");
    let o = try_hook(s, home.path(), "palisade-simulate-diff-system");
    let out = text(&o.stdout);
    assert!(!o.status.success(), "diff fails: {out}");
    assert!(
        out.contains("+ 0.0.0.0/0,::/0[External] => shop/web[Deployment]"),
        "{out}"
    );
}
