//! Golden files: what the mutating webhook does to a handful of pods, for a
//! reviewer to read. Each `tests/golden/mutate/<case>.snap` holds, in this
//! order: the setting (nativeSidecar, the namespace's labels), the pod as
//! sent, palisade's answer (allowed, the changes in words, the JSON Patch,
//! the client's warnings), and the pod after the patch.
//!
//! After a deliberate change: `INSTA_UPDATE=always cargo test --test
//! mutate_golden`, read the diff, commit the .snap files. CI runs with
//! `CI=true`, where insta never writes and a difference fails the test.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use palisade::cluster::NamespaceView;
use palisade::config::{Config, EMBEDDED_SIDECAR};
use palisade::decide::{Gvk, Object, Operation, Request, User, mutate};
use palisade::posture::NamespaceInfo;

fn config(native: bool) -> Config {
    let yaml = format!(
        r#"apiVersion: palisade.io/v1alpha1
kind: PalisadeConfig
roles:
  rules:
    - role: database
      match: {{images: ["postgres:*", "*/postgres:*"]}}
    - role: frontend
      match: {{labels: {{app.kubernetes.io/component: frontend}}}}
proxy:
  nativeSidecar: {native}
"#
    );
    Config::from_yaml(&yaml, EMBEDDED_SIDECAR).unwrap()
}

/// Mutates `pod` in a namespace labelled `ns_labels`; returns the golden
/// document and the patched pod.
fn golden(native: bool, ns_labels: Value, pod: Value) -> (Value, Value) {
    let cfg = config(native);
    let labels: BTreeMap<String, String> = serde_json::from_value(ns_labels.clone()).unwrap();
    let view = NamespaceView {
        name: "shop".into(),
        namespace: Some(NamespaceInfo {
            labels,
            terminating: false,
            created: None,
        }),
        policies: Vec::new(),
        ..Default::default()
    };
    let req = Request {
        uid: "golden".into(),
        kind: Gvk::new("", "v1", "Pod"),
        sub_resource: None,
        operation: Operation::Create,
        namespace: Some("shop".into()),
        name: pod["metadata"]["name"].as_str().map(str::to_owned),
        user: User::default(),
        dry_run: false,
        object: Some(Object::Pod(Box::new(
            serde_json::from_value(pod.clone()).unwrap(),
        ))),
        old_object: None,
    };
    let v = mutate(&cfg, &req, &view);
    let patch = v.effective_patch();
    let mut out = pod.clone();
    json_patch::patch(&mut out, patch).unwrap();
    // An array keeps the sections in reading order (JSON objects here are
    // sorted by key): the setting, the pod, palisade's answer, the result.
    let doc = json!([
        {"nativeSidecar": native, "namespaceLabels": ns_labels},
        {"input": pod},
        {
            "allowed": v.allowed(),
            "changes": v.changes,
            "patch": patch,
            "warnings": v.client_warnings(),
        },
        {"output": out},
    ]);
    (doc, out)
}

fn snapshot(name: &str, doc: &Value) {
    insta::with_settings!({
        snapshot_path => "golden/mutate",
        prepend_module_to_snapshot => false,
        omit_expression => true,
    }, {
        insta::assert_json_snapshot!(name, doc);
    });
}

const ON: &str = "enabled";

fn token_volume() -> Value {
    json!({"name": "kube-api-access-7xq2p", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}})
}

/// No labels, no annotations (both maps are created), the proxy appended.
#[test]
fn bare_pod_gets_label_and_sidecar() {
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "orders-db", "namespace": "shop"},
        "spec": {
            "containers": [{"name": "postgres", "image": "docker.io/library/postgres:16"}],
            "volumes": [token_volume()],
        },
    });
    let (doc, out) = golden(false, json!({"palisade.io/proxy": ON}), pod);
    snapshot("bare-pod-sidecar", &doc);

    // Its own output, as a re-invocation brings it back: nothing to do.
    let (doc, _) = golden(false, json!({"palisade.io/proxy": ON}), out);
    assert_eq!(doc[2]["patch"], json!([]));
    snapshot("already-injected", &doc);
}

/// Native sidecar into an existing initContainers array: index 0, ahead
/// of the pod's own init container.
#[test]
fn native_sidecar_goes_first_among_init_containers() {
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "api", "namespace": "shop", "labels": {"app": "api"}},
        "spec": {
            "initContainers": [{"name": "migrate", "image": "registry.example/migrate:1.0"}],
            "containers": [{"name": "api", "image": "registry.example/api:1.0"}],
            "volumes": [token_volume()],
        },
    });
    let (doc, _) = golden(true, json!({"palisade.io/proxy": ON}), pod);
    snapshot("native-into-init-containers", &doc);
}

/// Native sidecar into a pod with no initContainers and no volumes: both
/// arrays are created whole.
#[test]
fn native_sidecar_creates_missing_arrays() {
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "shop",
                     "labels": {"app.kubernetes.io/component": "frontend"},
                     "annotations": {"example.com/owner": "team-a"}},
        "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
    });
    let (doc, _) = golden(true, json!({"palisade.io/proxy": ON}), pod);
    snapshot("native-creates-arrays", &doc);
}

/// A spoofed role is replaced; the pod opted out of the proxy.
#[test]
fn spoofed_role_is_replaced_and_opt_out_is_honoured() {
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "db", "namespace": "shop",
                     "labels": {"palisade.io/role": "admin", "example.com/tier": "data"},
                     "annotations": {"palisade.io/proxy": "disabled"}},
        "spec": {"containers": [{"name": "db", "image": "postgres:16"}]},
    });
    let (doc, _) = golden(false, json!({"palisade.io/proxy": ON}), pod);
    snapshot("spoofed-role-replaced", &doc);
}

/// A role no rule gives is removed; the proxy is off in this namespace.
#[test]
fn underived_role_is_removed() {
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "tool", "namespace": "shop",
                     "labels": {"palisade.io/role": "database"}},
        "spec": {"containers": [{"name": "tool", "image": "busybox:1.36"}]},
    });
    let (doc, _) = golden(false, json!({}), pod);
    snapshot("underived-role-removed", &doc);
}

/// hostNetwork: the label, no sidecar, a warning.
#[test]
fn host_network_pod_gets_no_sidecar() {
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "node-db", "namespace": "shop"},
        "spec": {"hostNetwork": true, "containers": [{"name": "db", "image": "postgres:16"}]},
    });
    let (doc, _) = golden(false, json!({"palisade.io/proxy": ON}), pod);
    snapshot("host-network", &doc);
}

/// A volume named like the template's, in warn mode: admitted with the
/// label only, and told why.
#[test]
fn clash_in_warn_mode_skips_the_sidecar() {
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "db", "namespace": "shop"},
        "spec": {
            "containers": [{"name": "db", "image": "postgres:16"}],
            "volumes": [{"name": "palisade-proxy-tls", "emptyDir": {}}],
        },
    });
    let (doc, _) = golden(
        false,
        json!({"palisade.io/proxy": ON, "palisade.io/mode": "warn"}),
        pod,
    );
    snapshot("clash-warn", &doc);
}
