//! Properties of the mutating webhook over generated pods: with and without
//! labels and annotations maps (absent, `null`, empty, filled), keys holding
//! `/` and `~`, existing init containers and volumes, hostNetwork on and
//! off, proxy enabled or disabled by namespace or pod, native sidecars on
//! and off, every mode. For each:
//!
//! - the patch, as it travels (JSON), applies to the pod as sent;
//! - the result reads as a `k8s_openapi` Pod;
//! - a second run on the result yields no patch;
//! - the role label is exactly what the rules derive for the result (an
//!   oracle written here, not palisade's own derivation), and the sidecar
//!   is there exactly when it should be;
//! - nothing else of the pod's labels and annotations changes.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use proptest::prelude::*;
use proptest::sample::subsequence;
use serde_json::{Map, Value, json};

use palisade::cluster::NamespaceView;
use palisade::config::{Config, EMBEDDED_SIDECAR};
use palisade::decide::{Gvk, Object, Operation, Request, User, mutate};
use palisade::mode::Mode;
use palisade::posture::NamespaceInfo;

const ROLE: &str = "palisade.io/role";
const PROXY: &str = "palisade.io/proxy";
const STATUS: &str = "palisade.io/proxy-status";
const PROXY_NAME: &str = "access-proxy";
/// What the shipped template brings that a pod could already hold.
const TEMPLATE_VOLUMES: [&str; 2] = ["palisade-proxy-config", "palisade-proxy-tls"];
const TEMPLATE_PORTS: [i32; 2] = [15443, 15021];

fn config(native: bool) -> Config {
    let yaml = format!(
        r#"apiVersion: palisade.io/v1alpha1
kind: PalisadeConfig
roles:
  rules:
    - role: database
      match: {{images: ["postgres:*"]}}
    - role: frontend
      match: {{labels: {{app.kubernetes.io/component: frontend}}}}
    - role: never
      match: {{labels: {{palisade.io/role: admin}}}}
    - role: proxied
      match: {{images: ["*/envoyproxy/envoy-distroless:*"]}}
proxy:
  nativeSidecar: {native}
"#
    );
    Config::from_yaml(&yaml, EMBEDDED_SIDECAR).unwrap()
}

/// The rules above, written out independently: the role a pod with these
/// images and labels must carry.
fn oracle(pod: &Pod) -> Option<&'static str> {
    let spec = pod.spec.as_ref()?;
    let images: Vec<&str> = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .filter_map(|c| c.image.as_deref())
        .collect();
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    if images.iter().any(|i| i.starts_with("postgres:")) {
        Some("database")
    } else if labels
        .get("app.kubernetes.io/component")
        .map(String::as_str)
        == Some("frontend")
    {
        Some("frontend")
    } else if images
        .iter()
        .any(|i| i.contains("/envoyproxy/envoy-distroless:"))
    {
        Some("proxied")
    } else {
        None
    }
}

/// How a string map appears in the pod's JSON.
#[derive(Debug, Clone)]
enum MapShape {
    Absent,
    Null,
    Filled(BTreeMap<String, String>),
}

fn map_shape(
    keys: &'static [&'static str],
    values: &'static [&'static str],
) -> BoxedStrategy<MapShape> {
    prop_oneof![
        Just(MapShape::Absent),
        Just(MapShape::Null),
        proptest::collection::btree_map(
            proptest::sample::select(keys).prop_map(str::to_owned),
            proptest::sample::select(values).prop_map(str::to_owned),
            0..4,
        )
        .prop_map(MapShape::Filled),
    ]
    .boxed()
}

#[derive(Debug, Clone)]
struct Case {
    native: bool,
    mode: Mode,
    namespace_proxy: Option<&'static str>,
    labels: MapShape,
    annotations: MapShape,
    containers: Vec<Value>,
    init: Option<Vec<Value>>,
    volumes: Option<Vec<&'static str>>,
    host_network: Option<bool>,
}

fn container(name: &'static str, image: &'static str, port: Option<i32>, always: bool) -> Value {
    let mut c = json!({"name": name, "image": image});
    if let Some(p) = port {
        c["ports"] = json!([{"containerPort": p}]);
    }
    if always {
        c["restartPolicy"] = json!("Always");
    }
    c
}

fn containers(names: &'static [&'static str], max: usize) -> impl Strategy<Value = Vec<Value>> {
    let images = proptest::sample::select(
        &[
            "postgres:16",
            "nginx:1.27",
            "registry.example/app:1",
            "docker.io/envoyproxy/envoy-distroless:v1.32.13",
        ][..],
    );
    // A declared port now and then, sometimes the proxy's own.
    let port = prop_oneof![4 => Just(None), 1 => Just(Some(8080)), 1 => Just(Some(15443))];
    subsequence(names, 1..=max).prop_flat_map(move |ns| {
        let n = ns.len();
        (
            Just(ns),
            proptest::collection::vec((images.clone(), port.clone(), any::<bool>()), n),
        )
            .prop_map(|(ns, attrs)| {
                ns.into_iter()
                    .zip(attrs)
                    .map(|(name, (image, port, always))| container(name, image, port, always))
                    .collect::<Vec<_>>()
            })
    })
}

fn case() -> impl Strategy<Value = Case> {
    let labels = map_shape(
        &[
            "app",
            "a/b",
            "x~y",
            "~1/~0",
            ROLE,
            "app.kubernetes.io/component",
        ],
        &["admin", "database", "frontend", "proxied", "v1", ""],
    );
    let annotations = map_shape(
        &[PROXY, STATUS, "k~0/1", "example.com/owner"],
        &["enabled", "disabled", "injected", "yes", "x"],
    );
    // `access-proxy` among the pod's own names stands for a pod that was
    // injected before (or names a container like the proxy).
    let own = containers(&["app", "db", "web", PROXY_NAME], 3).prop_map(|mut cs| {
        for c in &mut cs {
            c.as_object_mut().unwrap().remove("restartPolicy");
        }
        cs
    });
    let init = prop_oneof![
        Just(None),
        Just(Some(Vec::new())),
        containers(&["migrate", "setup", PROXY_NAME], 2).prop_map(Some),
    ];
    let volumes = prop_oneof![
        Just(None),
        Just(Some(Vec::new())),
        subsequence(
            &["data", "cache", "kube-api-access-x", "palisade-proxy-tls"][..],
            0..=3
        )
        .prop_map(Some),
    ];
    let modes = proptest::sample::select(&[Mode::Enforce, Mode::Warn, Mode::DryRun][..]);
    let ns_proxy = proptest::sample::select(&[None, Some("enabled"), Some("disabled")][..]);
    let host = proptest::sample::select(&[None, Some(false), Some(true)][..]);
    (
        (any::<bool>(), modes, ns_proxy, labels, annotations),
        (own, init, volumes, host),
    )
        .prop_map(
            |(
                (native, mode, namespace_proxy, labels, annotations),
                (containers, init, volumes, host_network),
            )| {
                Case {
                    native,
                    mode,
                    namespace_proxy,
                    labels,
                    annotations,
                    containers,
                    init,
                    volumes,
                    host_network,
                }
            },
        )
}

fn put_map(meta: &mut Map<String, Value>, key: &str, shape: &MapShape) {
    match shape {
        MapShape::Absent => {}
        MapShape::Null => {
            meta.insert(key.into(), Value::Null);
        }
        MapShape::Filled(m) => {
            meta.insert(key.into(), json!(m));
        }
    }
}

fn pod_json(c: &Case) -> Value {
    let mut meta = Map::new();
    meta.insert("name".into(), json!("p"));
    meta.insert("namespace".into(), json!("shop"));
    put_map(&mut meta, "labels", &c.labels);
    put_map(&mut meta, "annotations", &c.annotations);
    let mut spec = Map::new();
    spec.insert("containers".into(), json!(c.containers));
    if let Some(init) = &c.init {
        spec.insert("initContainers".into(), json!(init));
    }
    if let Some(vols) = &c.volumes {
        let vols: Vec<Value> = vols
            .iter()
            .map(|n| json!({"name": n, "emptyDir": {}}))
            .collect();
        spec.insert("volumes".into(), json!(vols));
    }
    if let Some(h) = c.host_network {
        spec.insert("hostNetwork".into(), json!(h));
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec})
}

fn request(pod: &Value) -> Request {
    Request {
        uid: "u".into(),
        kind: Gvk::new("", "v1", "Pod"),
        sub_resource: None,
        operation: Operation::Create,
        namespace: Some("shop".into()),
        name: Some("p".into()),
        user: User::default(),
        dry_run: false,
        object: Some(Object::Pod(Box::new(
            serde_json::from_value(pod.clone()).unwrap(),
        ))),
        old_object: None,
    }
}

fn view(c: &Case) -> NamespaceView {
    let mut labels = BTreeMap::new();
    labels.insert("palisade.io/mode".to_string(), c.mode.as_str().to_string());
    if let Some(v) = c.namespace_proxy {
        labels.insert(PROXY.to_string(), v.to_string());
    }
    NamespaceView {
        name: "shop".into(),
        namespace: Some(NamespaceInfo {
            labels,
            terminating: false,
            created: None,
        }),
        policies: Vec::new(),
        ..Default::default()
    }
}

/// What the sidecar should do for the case, worked out here from the
/// contract: (switched on, already injected, blocked by a clash).
fn expectations(c: &Case) -> (bool, bool, bool) {
    let ann = match &c.annotations {
        MapShape::Filled(m) => m.clone(),
        _ => BTreeMap::new(),
    };
    let enabled = match ann.get(PROXY).map(String::as_str) {
        Some("enabled") => true,
        Some("disabled") => false,
        _ => c.namespace_proxy == Some("enabled"),
    };
    let init = c.init.clone().unwrap_or_default();
    let name = |v: &Value| v["name"].as_str().unwrap().to_owned();
    let already = ann.get(STATUS).map(String::as_str) == Some("injected")
        || c.containers
            .iter()
            .chain(&init)
            .any(|v| name(v) == PROXY_NAME);
    let volume_clash = c
        .volumes
        .iter()
        .flatten()
        .any(|v| TEMPLATE_VOLUMES.contains(v));
    let running = c.containers.iter().chain(
        init.iter()
            .filter(|v| c.native || v["restartPolicy"] == json!("Always")),
    );
    let port_clash = running
        .flat_map(|v| v["ports"].as_array().cloned().unwrap_or_default())
        .any(|p| TEMPLATE_PORTS.contains(&(p["containerPort"].as_i64().unwrap() as i32)));
    (enabled, already, volume_clash || port_clash)
}

fn without(map: Option<BTreeMap<String, String>>, key: &str) -> BTreeMap<String, String> {
    let mut m = map.unwrap_or_default();
    m.remove(key);
    m
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn patches_apply_are_final_and_label_only_what_rules_derive(c in case()) {
        let cfg = config(c.native);
        let pod = pod_json(&c);
        let v = mutate(&cfg, &request(&pod), &view(&c));
        prop_assert_eq!(v.skipped, None);

        // As it travels: JSON, then read back.
        let wire = serde_json::to_vec(v.effective_patch()).unwrap();
        let ops: Vec<json_patch::PatchOperation> = serde_json::from_slice(&wire).unwrap();
        let mut doc = pod.clone();
        if let Err(e) = json_patch::patch(&mut doc, &ops) {
            return Err(TestCaseError::fail(format!("patch does not apply: {e}\n{}", String::from_utf8_lossy(&wire))));
        }
        let out: Pod = serde_json::from_value(doc.clone())
            .map_err(|e| TestCaseError::fail(format!("not a Pod: {e}")))?;
        let before: Pod = serde_json::from_value(pod.clone()).unwrap();

        let (enabled, already, clash) = expectations(&c);
        let host = c.host_network == Some(true);
        let denied = c.mode == Mode::Enforce && enabled && !already && !host && clash;
        prop_assert_eq!(v.allowed(), !denied);
        let applies = c.mode != Mode::DryRun && !denied;

        if applies {
            prop_assert_eq!(
                out.metadata.labels.as_ref().and_then(|l| l.get(ROLE)).map(String::as_str),
                oracle(&out)
            );
        } else {
            prop_assert!(ops.is_empty());
        }
        prop_assert_eq!(without(out.metadata.labels.clone(), ROLE), without(before.metadata.labels.clone(), ROLE));
        prop_assert_eq!(without(out.metadata.annotations.clone(), STATUS), without(before.metadata.annotations.clone(), STATUS));

        let count = |p: &Pod| {
            let s = p.spec.as_ref().unwrap();
            s.containers.iter().chain(s.init_containers.iter().flatten()).filter(|x| x.name == PROXY_NAME).count()
        };
        let injects = applies && enabled && !already && !host && !clash;
        prop_assert_eq!(count(&out), count(&before) + usize::from(injects));
        if injects {
            let s = out.spec.as_ref().unwrap();
            let status = out.metadata.annotations.as_ref().and_then(|a| a.get(STATUS));
            prop_assert_eq!(status.map(String::as_str), Some("injected"));
            if c.native {
                let first = &s.init_containers.as_ref().unwrap()[0];
                prop_assert_eq!(&first.name, PROXY_NAME);
                prop_assert_eq!(first.restart_policy.as_deref(), Some("Always"));
            } else {
                prop_assert_eq!(&s.containers.last().unwrap().name, PROXY_NAME);
            }
        }
        if host && enabled && !already {
            prop_assert!(v.warnings.iter().any(|w| w.contains("hostNetwork")));
        }

        // Final: a second run on the result changes nothing.
        let again = mutate(&cfg, &request(&doc), &view(&c));
        prop_assert!(
            again.effective_patch().is_empty(),
            "second run patched: {:?}", again.effective_patch()
        );
    }
}
