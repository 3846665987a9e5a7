//! The access-proxy sidecar: its template (a partial PodSpec from the
//! policy directory) and the plan to inject it.
//!
//! Planning is separate from patching: [`plan`] says what a pod needs in
//! plain data ([`InjectionPlan`]), and the mutating webhook renders that
//! to JSON Patch in one place, so the same plan can be tested as a truth
//! table without reading patches.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Container, ContainerPort, Pod, PodSpec, Volume};
use serde::Deserialize;
use serde_json::Value;
use thiserror::Error;

use crate::patch::{self, RenderError};
use crate::selector::Labels;

/// The pod annotation that marks a pod palisade injected.
pub const PROXY_STATUS_ANNOTATION: &str = "palisade.io/proxy-status";

/// `proxy`.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Namespace label or pod annotation: `enabled` | `disabled`.
    pub label: String,
    /// Inject as an init container with `restartPolicy: Always`.
    pub native_sidecar: bool,
    /// Where the template was read from.
    pub template_path: PathBuf,
    /// The template, parsed and checked.
    pub template: SidecarTemplate,
    /// What the template adds to a pod, rendered once.
    pub injection: Arc<Injection>,
}

impl ProxyConfig {
    /// The proxy settings, with the injection built from `template`.
    pub fn new(
        label: String,
        native_sidecar: bool,
        template_path: PathBuf,
        template: SidecarTemplate,
    ) -> Result<Self, RenderError> {
        let injection = Arc::new(Injection::new(&template, native_sidecar)?);
        Ok(ProxyConfig {
            label,
            native_sidecar,
            template_path,
            template,
            injection,
        })
    }
}

/// Why a sidecar template is unusable.
#[derive(Debug, Error)]
pub enum TemplateError {
    /// The file could not be read.
    #[error("cannot read sidecar template {path}: {source}")]
    Read {
        /// The template file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not YAML of the expected shape.
    #[error("sidecar template {path}: {message}")]
    Parse {
        /// The template file.
        path: PathBuf,
        /// The parser's message with line and column.
        message: String,
    },
    /// Parsed, but would not make a valid pod.
    #[error("sidecar template {path}: {message}")]
    Invalid {
        /// The template file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// A partial PodSpec: what injection adds to a pod.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SidecarTemplate {
    /// Proxy containers (the first is "the proxy").
    #[serde(default)]
    pub containers: Vec<Container>,
    /// Init containers that run before the pod's own.
    #[serde(default)]
    pub init_containers: Vec<Container>,
    /// Volumes the containers mount.
    #[serde(default)]
    pub volumes: Vec<Volume>,
}

impl SidecarTemplate {
    /// Reads a template file.
    pub fn load(path: &Path) -> Result<Self, TemplateError> {
        let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses template text; `path` is only for messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, TemplateError> {
        let options = serde_saphyr::options! { strict_booleans: true };
        let t: SidecarTemplate =
            serde_saphyr::from_str_with_options(text, options).map_err(|e| {
                TemplateError::Parse {
                    path: path.to_owned(),
                    message: e.to_string(),
                }
            })?;
        let invalid = |message: String| TemplateError::Invalid {
            path: path.to_owned(),
            message,
        };
        if t.containers.is_empty() {
            return Err(invalid(
                "containers: at least one container (the proxy) is required".into(),
            ));
        }
        let mut names = std::collections::BTreeSet::new();
        for (field, list) in [
            ("containers", &t.containers),
            ("initContainers", &t.init_containers),
        ] {
            for (i, c) in list.iter().enumerate() {
                if c.name.is_empty() {
                    return Err(invalid(format!("{field}[{i}].name is required")));
                }
                if c.image.as_deref().unwrap_or("").is_empty() {
                    return Err(invalid(format!(
                        "{field}[{i}] ({}): image is required",
                        c.name
                    )));
                }
                if !names.insert(c.name.clone()) {
                    return Err(invalid(format!(
                        "{field}[{i}]: container name {:?} is used twice",
                        c.name
                    )));
                }
            }
        }
        let mut volumes = std::collections::BTreeSet::new();
        for (i, v) in t.volumes.iter().enumerate() {
            if !volumes.insert(v.name.clone()) {
                return Err(invalid(format!(
                    "volumes[{i}]: volume name {:?} is used twice",
                    v.name
                )));
            }
        }
        Ok(t)
    }

    /// The proxy container's name: the first container of the template.
    pub fn proxy_name(&self) -> &str {
        self.containers
            .first()
            .map(|c| c.name.as_str())
            .unwrap_or("")
    }
}

/// The value of the proxy label or annotation that turns injection on.
pub const ENABLED: &str = "enabled";
/// The value that turns it off.
pub const DISABLED: &str = "disabled";
/// The value of [`PROXY_STATUS_ANNOTATION`] on a pod palisade injected.
pub const INJECTED: &str = "injected";

/// Who decided whether a pod is proxied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwitchSource {
    /// The pod's annotation (it wins over the namespace).
    PodAnnotation,
    /// The namespace's label.
    NamespaceLabel,
    /// Neither says `enabled` or `disabled`: off.
    Default,
}

/// Whether a pod is to be proxied, and who said so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Switch {
    /// Inject the sidecar (unless the pod cannot take it).
    pub enabled: bool,
    /// Who decided.
    pub source: SwitchSource,
    /// A pod annotation value that is neither `enabled` nor `disabled`:
    /// ignored, and worth a warning, since its author meant something.
    pub ignored_annotation: Option<String>,
}

/// Reads the proxy switch: the pod annotation `key` when it says `enabled`
/// or `disabled`, else the namespace label `key` (only `enabled` enables).
pub fn switch(
    key: &str,
    namespace_labels: &Labels,
    pod_annotations: Option<&BTreeMap<String, String>>,
) -> Switch {
    let annotation = pod_annotations.and_then(|a| a.get(key));
    let ignored_annotation = annotation
        .filter(|v| v.as_str() != ENABLED && v.as_str() != DISABLED)
        .cloned();
    match annotation.map(String::as_str) {
        Some(v @ (ENABLED | DISABLED)) => Switch {
            enabled: v == ENABLED,
            source: SwitchSource::PodAnnotation,
            ignored_annotation,
        },
        _ => match namespace_labels.get(key).map(String::as_str) {
            Some(v @ (ENABLED | DISABLED)) => Switch {
                enabled: v == ENABLED,
                source: SwitchSource::NamespaceLabel,
                ignored_annotation,
            },
            _ => Switch {
                enabled: false,
                source: SwitchSource::Default,
                ignored_annotation,
            },
        },
    }
}

/// How palisade recognizes a pod that already carries the sidecar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Marker {
    /// `palisade.io/proxy-status: injected`.
    StatusAnnotation,
    /// A container or init container named like the template's proxy.
    ProxyContainer(String),
}

/// Two processes in one pod that would bind the same port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PortClash {
    /// The port number.
    pub port: i32,
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: String,
    /// The pod's container that declares it.
    pub container: String,
    /// The template's container that listens on it.
    pub proxy: String,
}

/// What in the pod stands in the template's way. Injecting anyway would
/// make a pod the API server rejects (duplicate names) or one whose proxy
/// never starts (a port taken).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conflict {
    /// Container names the pod and the template both use.
    pub containers: Vec<String>,
    /// Volume names the pod and the template both use.
    pub volumes: Vec<String>,
    /// Ports the pod and the template both listen on.
    pub ports: Vec<PortClash>,
}

impl Conflict {
    /// Nothing clashes.
    pub fn is_empty(&self) -> bool {
        self.containers.is_empty() && self.volumes.is_empty() && self.ports.is_empty()
    }
}

/// What injection adds to a pod. It depends on the template and the
/// config alone, never on the pod, so it is built once when the config
/// loads ([`Injection::new`]) and shared by every admission.
#[derive(Debug, Clone, PartialEq)]
pub struct Injection {
    /// The proxy container's name.
    pub proxy: String,
    /// The proxy runs as a native sidecar (an init container with
    /// `restartPolicy: Always`).
    pub native: bool,
    /// Put before the pod's own init containers, in this order: the
    /// template's init containers, then (native) the proxy containers.
    pub init_containers: Vec<Container>,
    /// Appended to the pod's containers (the proxies, when not native).
    pub containers: Vec<Container>,
    /// Appended to the pod's volumes.
    pub volumes: Vec<Volume>,
    /// The same three lists as the JSON a patch carries.
    pub json: InjectionJson,
}

/// [`Injection`]'s lists rendered as patch values.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct InjectionJson {
    /// [`Injection::init_containers`].
    pub init_containers: Vec<Value>,
    /// [`Injection::containers`].
    pub containers: Vec<Value>,
    /// [`Injection::volumes`].
    pub volumes: Vec<Value>,
}

impl Injection {
    /// What `template` adds to a pod, as a native sidecar or not.
    pub fn new(template: &SidecarTemplate, native: bool) -> Result<Self, RenderError> {
        let mut proxies = template.containers.clone();
        let (init_containers, containers) = if native {
            for c in &mut proxies {
                c.restart_policy = Some("Always".into());
            }
            let init = template.init_containers.iter().cloned().chain(proxies);
            (init.collect(), Vec::new())
        } else {
            (template.init_containers.clone(), proxies)
        };
        let volumes = template.volumes.clone();
        let json = InjectionJson {
            init_containers: values(&init_containers, |c| format!("init container {}", c.name))?,
            containers: values(&containers, |c| format!("container {}", c.name))?,
            volumes: values(&volumes, |v| format!("volume {}", v.name))?,
        };
        Ok(Injection {
            proxy: template.proxy_name().to_owned(),
            native,
            init_containers,
            containers,
            volumes,
            json,
        })
    }

    /// The images injection adds: role rules match the pod as admitted,
    /// sidecar included.
    pub fn images(&self) -> impl Iterator<Item = &str> {
        self.init_containers
            .iter()
            .chain(&self.containers)
            .filter_map(|c| c.image.as_deref())
    }

    /// What injection does, in words, for logs and audit annotations.
    pub fn describe(&self) -> String {
        if self.native {
            format!("inject sidecar {} (native)", self.proxy)
        } else {
            format!("inject sidecar {}", self.proxy)
        }
    }
}

/// What to do about the sidecar for one pod.
#[derive(Debug, Clone, PartialEq)]
pub enum InjectionPlan {
    /// Proxying is not enabled for the pod.
    Disabled,
    /// The pod already carries the sidecar (a re-invocation, or a pod
    /// created from an injected one): nothing to add.
    AlreadyInjected(Marker),
    /// The pod has no spec to inject into.
    NoSpec,
    /// `hostNetwork: true`: NetworkPolicy does not apply to the pod, so a
    /// proxy cannot fence it; it gets no sidecar.
    HostNetwork,
    /// Injecting would break the pod.
    Conflict(Conflict),
    /// Inject this (the config's one [`Injection`]).
    Inject(Arc<Injection>),
}

/// Plans the sidecar for `pod`, given the proxy config and the switch.
pub fn plan(proxy: &ProxyConfig, switch: &Switch, pod: &Pod) -> InjectionPlan {
    if !switch.enabled {
        return InjectionPlan::Disabled;
    }
    let template = &proxy.template;
    if pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(PROXY_STATUS_ANNOTATION))
        .is_some_and(|v| v == INJECTED)
    {
        return InjectionPlan::AlreadyInjected(Marker::StatusAnnotation);
    }
    let Some(spec) = pod.spec.as_ref() else {
        return InjectionPlan::NoSpec;
    };
    let proxy_name = template.proxy_name();
    if all_containers(spec).any(|c| c.name == proxy_name) {
        return InjectionPlan::AlreadyInjected(Marker::ProxyContainer(proxy_name.to_owned()));
    }
    if spec.host_network == Some(true) {
        return InjectionPlan::HostNetwork;
    }
    let conflict = conflicts(template, proxy.native_sidecar, spec);
    if !conflict.is_empty() {
        return InjectionPlan::Conflict(conflict);
    }
    InjectionPlan::Inject(Arc::clone(&proxy.injection))
}

/// Every container of the pod, of all three kinds, as names go: they
/// share one namespace.
fn all_containers(spec: &PodSpec) -> impl Iterator<Item = &Container> {
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
}

fn conflicts(template: &SidecarTemplate, native: bool, spec: &PodSpec) -> Conflict {
    let pod_names: BTreeSet<&str> = all_containers(spec)
        .map(|c| c.name.as_str())
        .chain(
            spec.ephemeral_containers
                .iter()
                .flatten()
                .map(|c| c.name.as_str()),
        )
        .collect();
    let containers: BTreeSet<String> = template
        .containers
        .iter()
        .chain(&template.init_containers)
        .filter(|c| pod_names.contains(c.name.as_str()))
        .map(|c| c.name.clone())
        .collect();
    let pod_volumes: BTreeSet<&str> = spec
        .volumes
        .iter()
        .flatten()
        .map(|v| v.name.as_str())
        .collect();
    let volumes: BTreeSet<String> = template
        .volumes
        .iter()
        .filter(|v| pod_volumes.contains(v.name.as_str()))
        .map(|v| v.name.clone())
        .collect();
    // Only what runs at the same time as the proxy can hold its port: the
    // pod's containers and sidecars, and, when the proxy starts ahead of
    // them as a native sidecar, the pod's ordinary init containers too.
    let alongside = spec.containers.iter().chain(
        spec.init_containers
            .iter()
            .flatten()
            .filter(|c| native || c.restart_policy.as_deref() == Some("Always")),
    );
    let mut taken = BTreeMap::new();
    for c in alongside {
        for p in c.ports.iter().flatten() {
            taken
                .entry((p.container_port, protocol(p)))
                .or_insert(c.name.as_str());
        }
    }
    let mut ports = BTreeSet::new();
    for proxy in &template.containers {
        for p in proxy.ports.iter().flatten() {
            let key = (p.container_port, protocol(p));
            if let Some(container) = taken.get(&key) {
                ports.insert(PortClash {
                    port: key.0,
                    protocol: key.1.to_owned(),
                    container: (*container).to_owned(),
                    proxy: proxy.name.clone(),
                });
            }
        }
    }
    Conflict {
        containers: containers.into_iter().collect(),
        volumes: volumes.into_iter().collect(),
        ports: ports.into_iter().collect(),
    }
}

fn values<T: serde::Serialize>(
    items: &[T],
    what: impl Fn(&T) -> String,
) -> Result<Vec<Value>, RenderError> {
    items.iter().map(|x| patch::to_value(x, what(x))).collect()
}

fn protocol(p: &ContainerPort) -> &str {
    p.protocol.as_deref().unwrap_or("TCP")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, EMBEDDED_SIDECAR};
    use serde_json::json;

    const TEMPLATE: &str = r#"
initContainers:
  - name: proxy-init
    image: example/proxy-init:1
containers:
  - name: access-proxy
    image: example/proxy:1
    ports: [{name: proxy, containerPort: 15001}]
  - name: proxy-agent
    image: example/agent:1
volumes:
  - name: palisade-proxy-tls
    secret: {secretName: tls}
"#;

    fn proxy(native: bool) -> ProxyConfig {
        ProxyConfig::new(
            "palisade.io/proxy".into(),
            native,
            "t.yaml".into(),
            SidecarTemplate::parse(TEMPLATE, Path::new("t.yaml")).unwrap(),
        )
        .unwrap()
    }

    /// The spec the pod will have once `i` is injected, as the API server
    /// builds it from the patch.
    fn applied(i: &Injection, spec: &PodSpec) -> PodSpec {
        let mut out = spec.clone();
        let own_init = out.init_containers.take().unwrap_or_default();
        let init: Vec<Container> = i.init_containers.iter().cloned().chain(own_init).collect();
        out.init_containers = (!init.is_empty()).then_some(init);
        out.containers.extend(i.containers.iter().cloned());
        if !i.volumes.is_empty() {
            out.volumes
                .get_or_insert_with(Vec::new)
                .extend(i.volumes.iter().cloned());
        }
        out
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_pod_annotation_wins_over_the_namespace_label() {
        use SwitchSource::*;
        let key = "palisade.io/proxy";
        // (namespace label, pod annotation, enabled, source, ignored)
        let cases = [
            (None, None, false, Default, None),
            (Some("enabled"), None, true, NamespaceLabel, None),
            (Some("disabled"), None, false, NamespaceLabel, None),
            (Some("yes"), None, false, Default, None),
            (None, Some("enabled"), true, PodAnnotation, None),
            (Some("disabled"), Some("enabled"), true, PodAnnotation, None),
            (
                Some("enabled"),
                Some("disabled"),
                false,
                PodAnnotation,
                None,
            ),
            (None, Some("disabled"), false, PodAnnotation, None),
            (
                Some("enabled"),
                Some("true"),
                true,
                NamespaceLabel,
                Some("true"),
            ),
            (None, Some("Enabled"), false, Default, Some("Enabled")),
        ];
        for (ns, pod, enabled, source, ignored) in cases {
            let ns_labels = labels(&ns.map(|v| vec![(key, v)]).unwrap_or_default());
            let ann = pod.map(|v| labels(&[(key, v), ("other", "x")]));
            let s = switch(key, &ns_labels, ann.as_ref());
            assert_eq!(
                (s.enabled, s.source, s.ignored_annotation.as_deref()),
                (enabled, source, ignored),
                "namespace {ns:?}, pod {pod:?}"
            );
        }
    }

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    fn on() -> Switch {
        Switch {
            enabled: true,
            source: SwitchSource::NamespaceLabel,
            ignored_annotation: None,
        }
    }

    /// The outcome as a short word, for a readable table.
    fn outcome(p: &InjectionPlan) -> String {
        match p {
            InjectionPlan::Disabled => "disabled".into(),
            InjectionPlan::AlreadyInjected(Marker::StatusAnnotation) => {
                "injected:annotation".into()
            }
            InjectionPlan::AlreadyInjected(Marker::ProxyContainer(n)) => format!("injected:{n}"),
            InjectionPlan::NoSpec => "no-spec".into(),
            InjectionPlan::HostNetwork => "host-network".into(),
            InjectionPlan::Conflict(c) => format!(
                "conflict:{:?}{:?}{:?}",
                c.containers,
                c.volumes,
                c.ports
                    .iter()
                    .map(|p| (p.port, &p.container))
                    .collect::<Vec<_>>()
            ),
            InjectionPlan::Inject(_) => "inject".into(),
        }
    }

    #[test]
    fn plan_truth_table() {
        let app = json!({"name": "app", "image": "app:1"});
        let off = Switch {
            enabled: false,
            source: SwitchSource::PodAnnotation,
            ignored_annotation: None,
        };
        let status = json!({"palisade.io/proxy-status": "injected"});
        // (switch, native, pod, outcome)
        let cases = vec![
            (
                off.clone(),
                false,
                json!({"spec": {"containers": [app]}}),
                "disabled",
            ),
            // Disabled wins even over a clash: nothing is planned at all.
            (
                off,
                false,
                json!({"spec": {"containers": [app], "volumes": [{"name": "palisade-proxy-tls"}]}}),
                "disabled",
            ),
            (
                on(),
                false,
                json!({"spec": {"containers": [app]}}),
                "inject",
            ),
            (on(), true, json!({"spec": {"containers": [app]}}), "inject"),
            (on(), false, json!({"metadata": {}}), "no-spec"),
            // Already injected: by the annotation (even if the container
            // was renamed since), or by the proxy's container name in
            // either list.
            (
                on(),
                false,
                json!({"metadata": {"annotations": status}, "spec": {"containers": [app]}}),
                "injected:annotation",
            ),
            (
                on(),
                false,
                json!({"spec": {"containers": [app, {"name": "access-proxy"}]}}),
                "injected:access-proxy",
            ),
            (
                on(),
                true,
                json!({"spec": {"containers": [app], "initContainers": [{"name": "access-proxy"}]}}),
                "injected:access-proxy",
            ),
            // Already injected is checked before hostNetwork, so a
            // re-invocation is silent.
            (
                on(),
                false,
                json!({"metadata": {"annotations": status}, "spec": {"hostNetwork": true, "containers": [app]}}),
                "injected:annotation",
            ),
            (
                on(),
                false,
                json!({"spec": {"hostNetwork": true, "containers": [app]}}),
                "host-network",
            ),
            (
                on(),
                false,
                json!({"spec": {"hostNetwork": false, "containers": [app]}}),
                "inject",
            ),
            // Hostnetwork is checked before clashes: such a pod is never
            // refused for a sidecar it would not get anyway.
            (
                on(),
                false,
                json!({"spec": {"hostNetwork": true, "containers": [app], "volumes": [{"name": "palisade-proxy-tls"}]}}),
                "host-network",
            ),
            (
                on(),
                false,
                json!({"spec": {"containers": [app], "volumes": [{"name": "palisade-proxy-tls"}]}}),
                r#"conflict:[]["palisade-proxy-tls"][]"#,
            ),
            (
                on(),
                false,
                json!({"spec": {"containers": [app, {"name": "proxy-agent"}], "initContainers": [{"name": "proxy-init"}]}}),
                r#"conflict:["proxy-agent", "proxy-init"][][]"#,
            ),
            (
                on(),
                false,
                json!({"spec": {"containers": [app], "ephemeralContainers": [{"name": "proxy-agent"}]}}),
                r#"conflict:["proxy-agent"][][]"#,
            ),
            // Ports: the pod's containers clash; an ordinary init container
            // has finished before a regular sidecar starts, but runs beside
            // a native one.
            (
                on(),
                false,
                json!({"spec": {"containers": [{"name": "app", "ports": [{"containerPort": 15001}]}]}}),
                r#"conflict:[][][(15001, "app")]"#,
            ),
            (
                on(),
                false,
                json!({"spec": {"containers": [{"name": "app", "ports": [{"containerPort": 15001, "protocol": "UDP"}]}]}}),
                "inject",
            ),
            (
                on(),
                false,
                json!({"spec": {"containers": [app], "initContainers": [{"name": "init", "ports": [{"containerPort": 15001}]}]}}),
                "inject",
            ),
            (
                on(),
                true,
                json!({"spec": {"containers": [app], "initContainers": [{"name": "init", "ports": [{"containerPort": 15001}]}]}}),
                r#"conflict:[][][(15001, "init")]"#,
            ),
            (
                on(),
                false,
                json!({"spec": {"containers": [app], "initContainers": [{"name": "side", "restartPolicy": "Always", "ports": [{"containerPort": 15001}]}]}}),
                r#"conflict:[][][(15001, "side")]"#,
            ),
        ];
        for (i, (s, native, p, want)) in cases.into_iter().enumerate() {
            let got = plan(&proxy(native), &s, &pod(p.clone()));
            assert_eq!(outcome(&got), want, "case {i}: native={native} {p}");
        }
    }

    #[test]
    fn native_sidecars_go_first_after_the_templates_init_containers() {
        let p = pod(json!({"spec": {
            "containers": [{"name": "app", "image": "app:1"}],
            "initContainers": [{"name": "migrate", "image": "m:1"}],
            "volumes": [{"name": "data"}],
        }}));
        let names = |cs: &[Container]| cs.iter().map(|c| c.name.clone()).collect::<Vec<_>>();

        let InjectionPlan::Inject(i) = plan(&proxy(true), &on(), &p) else {
            panic!("expected an injection")
        };
        assert!(i.native && i.containers.is_empty());
        assert_eq!(
            names(&i.init_containers),
            ["proxy-init", "access-proxy", "proxy-agent"]
        );
        let always = |c: &Container| c.restart_policy.as_deref() == Some("Always");
        assert!(!always(&i.init_containers[0]));
        assert!(always(&i.init_containers[1]) && always(&i.init_containers[2]));
        let after = applied(&i, p.spec.as_ref().unwrap());
        assert_eq!(
            names(after.init_containers.as_deref().unwrap()),
            ["proxy-init", "access-proxy", "proxy-agent", "migrate"]
        );
        assert_eq!(names(&after.containers), ["app"]);
        assert_eq!(i.describe(), "inject sidecar access-proxy (native)");

        let InjectionPlan::Inject(i) = plan(&proxy(false), &on(), &p) else {
            panic!("expected an injection")
        };
        assert_eq!(names(&i.init_containers), ["proxy-init"]);
        assert!(i.containers.iter().all(|c| c.restart_policy.is_none()));
        let after = applied(&i, p.spec.as_ref().unwrap());
        assert_eq!(
            names(after.init_containers.as_deref().unwrap()),
            ["proxy-init", "migrate"]
        );
        assert_eq!(
            names(&after.containers),
            ["app", "access-proxy", "proxy-agent"]
        );
        let vols: Vec<&str> = after
            .volumes
            .iter()
            .flatten()
            .map(|v| v.name.as_str())
            .collect();
        assert_eq!(vols, ["data", "palisade-proxy-tls"]);
        assert_eq!(i.describe(), "inject sidecar access-proxy");
    }

    /// The shipped template is what the README promises: a hardened,
    /// probed, resourced proxy whose volumes and ports are named so they
    /// do not collide with a pod's own.
    #[test]
    fn the_shipped_template_is_hardened() {
        let cfg = Config::from_yaml(
            "apiVersion: palisade.io/v1alpha1\nkind: PalisadeConfig\n",
            EMBEDDED_SIDECAR,
        )
        .unwrap();
        let t = &cfg.proxy.template;
        assert_eq!(t.proxy_name(), "access-proxy");
        let c = &t.containers[0];
        assert!(
            c.image
                .as_deref()
                .unwrap()
                .starts_with("docker.io/envoyproxy/envoy-distroless:v1.32.")
        );
        let sc = c.security_context.as_ref().unwrap();
        assert_eq!(sc.run_as_non_root, Some(true));
        assert!(sc.run_as_user.is_some_and(|u| u > 0));
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(
            sc.capabilities.as_ref().unwrap().drop.as_deref(),
            Some(&["ALL".to_string()][..])
        );
        assert_eq!(sc.seccomp_profile.as_ref().unwrap().type_, "RuntimeDefault");
        let res = c.resources.as_ref().unwrap();
        for k in ["cpu", "memory"] {
            assert!(
                res.requests.as_ref().unwrap().contains_key(k),
                "request {k}"
            );
            assert!(res.limits.as_ref().unwrap().contains_key(k), "limit {k}");
        }
        let ports: Vec<&str> = c
            .ports
            .iter()
            .flatten()
            .map(|p| p.name.as_deref().unwrap())
            .collect();
        assert_eq!(ports, ["proxy-tls", "proxy-health"]);
        for probe in [&c.startup_probe, &c.readiness_probe] {
            let probe = probe.as_ref().unwrap().http_get.as_ref().unwrap();
            assert_eq!(probe.path.as_deref(), Some("/ready"));
            assert_eq!(
                probe.port,
                k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(
                    "proxy-health".into()
                )
            );
        }
        assert!(t.volumes.iter().all(|v| v.name.starts_with("palisade-")));
        let config = t.volumes.iter().find(|v| v.config_map.is_some()).unwrap();
        let secret = t.volumes.iter().find(|v| v.secret.is_some()).unwrap();
        assert_eq!(
            config.config_map.as_ref().unwrap().name,
            "access-proxy-config"
        );
        assert_eq!(
            secret.secret.as_ref().unwrap().secret_name.as_deref(),
            Some("access-proxy-tls")
        );
        // 0444 in decimal: readable by the proxy's non-root user.
        assert_eq!(secret.secret.as_ref().unwrap().default_mode, Some(0o444));
        let mounts: Vec<&str> = c
            .volume_mounts
            .iter()
            .flatten()
            .filter(|m| m.read_only == Some(true))
            .map(|m| m.name.as_str())
            .collect();
        assert_eq!(mounts, ["palisade-proxy-config", "palisade-proxy-tls"]);
    }
}
