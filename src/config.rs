//! The policy file (`policies/palisade.yaml`): typed, defaulted, validated.
//!
//! A missing file, an unknown key or a bad value is an error that names the
//! file and the key; palisade never falls back to a default it was not asked
//! for. The embedded default ([`Config::embedded`]) exists for `--demo` and
//! tests, and is the same file the repository ships.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

use crate::glob::Glob;
use crate::mode::Mode;
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicySpec,
};

use crate::netpol::{Direction, Directions, Policy};
pub use crate::sidecar::{PROXY_STATUS_ANNOTATION, ProxyConfig};
use crate::sidecar::{SidecarTemplate, TemplateError};

/// The config file's `apiVersion`.
pub const API_VERSION: &str = "palisade.io/v1alpha1";
/// The config file's `kind`.
pub const KIND: &str = "PalisadeConfig";
/// The namespace label that sets a namespace's mode.
pub const MODE_LABEL: &str = "palisade.io/mode";
/// The namespace label that opts a namespace out of generation, with the
/// value [`GENERATE_OPT_OUT`]; only `trustedGroups` may set it.
pub const GENERATE_LABEL: &str = "palisade.io/generate";
/// The value of [`GENERATE_LABEL`] that opts a namespace out.
pub const GENERATE_OPT_OUT: &str = "disabled";

/// The policy file shipped in the repository, compiled in for `--demo`.
pub const EMBEDDED_CONFIG: &str = include_str!("../policies/palisade.yaml");
/// The sidecar template the embedded config names.
pub const EMBEDDED_SIDECAR: &str = include_str!("../policies/sidecars/access-proxy.yaml");

/// Why a config could not be loaded.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The YAML does not parse, or has an unknown key or a value of the
    /// wrong type (the message names the key and line).
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A key holds a value palisade cannot use.
    #[error("config file {path}: {key}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The key, as a path (`roles.rules[2].role`).
        key: String,
        /// What is wrong.
        message: String,
    },
    /// The sidecar template could not be read or is not usable.
    #[error("config file {path}: proxy.template: {source}")]
    Template {
        /// The config file.
        path: PathBuf,
        /// What went wrong with the template.
        source: TemplateError,
    },
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Default mode for every namespace.
    pub mode: Mode,
    /// Directions a namespace must deny by default.
    pub require_default_deny: Directions,
    /// How environments are read from namespace labels.
    pub environment: EnvironmentConfig,
    /// Namespaces where nothing is checked or mutated.
    pub exempt_namespaces: Vec<String>,
    /// Groups whose members may set weakening namespace labels.
    pub trusted_groups: Vec<String>,
    /// Role derivation.
    pub roles: RolesConfig,
    /// Access-proxy injection.
    pub proxy: ProxyConfig,
    /// Reachability preview at admission.
    pub simulate: SimulateConfig,
    /// How cluster-wide policies (AdminNetworkPolicy, ...) count.
    pub cluster_policies: ClusterPoliciesConfig,
    /// Self-managed certificates.
    pub certificates: CertificatesConfig,
    /// Generated default-deny policies in new namespaces.
    pub generate: GenerateConfig,
}

/// `environment`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EnvironmentConfig {
    /// The namespace label that names the environment.
    #[serde(default = "default_env_label")]
    pub label: String,
    /// Values that make a namespace dev.
    #[serde(default = "default_dev_values")]
    pub dev: Vec<String>,
}

impl Default for EnvironmentConfig {
    fn default() -> Self {
        Self {
            label: default_env_label(),
            dev: default_dev_values(),
        }
    }
}

/// `roles`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RolesConfig {
    /// The pod label palisade owns.
    #[serde(default = "default_role_label")]
    pub label: String,
    /// Rules, first match wins.
    #[serde(default)]
    pub rules: Vec<RoleRule>,
}

impl Default for RolesConfig {
    fn default() -> Self {
        Self {
            label: default_role_label(),
            rules: Vec::new(),
        }
    }
}

/// One role rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RoleRule {
    /// The role label value this rule gives.
    pub role: String,
    /// What a pod must look like; every field given must match.
    #[serde(rename = "match", default)]
    pub matcher: RoleMatch,
}

/// The conditions of a role rule. An empty matcher matches every pod.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RoleMatch {
    /// Some container or init container's image matches one of these.
    #[serde(default)]
    pub images: Option<Vec<Glob>>,
    /// The pod carries all of these labels with these values.
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
    /// The pod's namespace matches one of these.
    #[serde(default)]
    pub namespaces: Option<Vec<Glob>>,
    /// The pod's service account (`default` when unnamed) matches one of these.
    #[serde(default)]
    pub service_accounts: Option<Vec<Glob>>,
}

/// `simulate`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SimulateConfig {
    /// Watch workload summaries to preview NetworkPolicy changes at admission.
    #[serde(default)]
    pub preview: bool,
    /// The preview model's memory budget in MiB: past it the preview
    /// switches itself off (a log line, a metric, one warning per preview)
    /// rather than grow palisade into its memory limit.
    #[serde(default = "default_preview_memory", rename = "previewMemoryMiB")]
    pub preview_memory_mib: u32,
}

/// The default preview budget: holds the model of 10,000 namespaces,
/// 100,000 NetworkPolicies and 50,000 pods (43 MiB), and beside what the
/// webhook itself holds at that size (peak 80 MiB) fits the 192 MiB limit
/// of deploy/components/preview with room to spare (docs/performance.md).
pub const DEFAULT_PREVIEW_MEMORY_MIB: u32 = 48;

fn default_preview_memory() -> u32 {
    DEFAULT_PREVIEW_MEMORY_MIB
}

impl Default for SimulateConfig {
    fn default() -> Self {
        SimulateConfig {
            preview: false,
            preview_memory_mib: DEFAULT_PREVIEW_MEMORY_MIB,
        }
    }
}

impl SimulateConfig {
    /// The preview's budget in bytes, when the preview is on.
    pub fn preview_budget(&self) -> Option<usize> {
        self.preview
            .then(|| self.preview_memory_mib as usize * 1024 * 1024)
    }
}

/// `clusterPolicies`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClusterPoliciesConfig {
    /// Count a cluster-wide ingress deny of every pod as default-deny for
    /// Ingress. Off by default: those policies cannot deny traffic from
    /// outside the cluster, so set it only where something else (a cloud
    /// firewall, the ingress path) blocks outside traffic to pods.
    #[serde(default)]
    pub count_ingress_deny: bool,
}

/// `certificates`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CertificatesConfig {
    /// palisade keeps its CA and serving certificate in the Secret
    /// `palisade-certs`, serves from it, and keeps the webhook
    /// configurations' caBundle in step (also `serve --manage-certs`).
    #[serde(default)]
    pub manage: bool,
}

/// The name of an object palisade creates: a lowercase RFC 1123 subdomain
/// (what the API server accepts as a NetworkPolicy's name), so a create is
/// never refused for its name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectName(String);

impl ObjectName {
    /// `name`, when the API server would accept it.
    pub fn new(name: &str) -> Result<Self, String> {
        // apimachinery's IsDNS1123Subdomain: the regex bounds the whole
        // name, not each dot-separated part (unlike a DNS label).
        let part_ok = |p: &str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !p.starts_with('-')
                && !p.ends_with('-')
        };
        let ok = !name.is_empty() && name.len() <= 253 && name.split('.').all(part_ok);
        if ok {
            Ok(ObjectName(name.to_owned()))
        } else {
            Err(format!(
                "{name:?} is not a valid object name (a lowercase RFC 1123 subdomain: at most 253 characters, \
                 lowercase letters, digits, '-' and '.', starting and ending with a letter or digit)"
            ))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ObjectName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `generate`: palisade creates the default-deny NetworkPolicy of a
/// namespace that lacks one (README, "New namespaces").
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateConfig {
    /// Generation runs (also `serve --generate`); off by default.
    pub enabled: bool,
    /// The generated default-deny's name.
    pub name: ObjectName,
    /// Namespaces that existed before palisade started get theirs too,
    /// not only new ones.
    pub existing: bool,
    /// Allowances written into a second generated policy, so the
    /// default-deny itself stays a plain default-deny.
    pub baseline: Option<Baseline>,
}

impl Default for GenerateConfig {
    fn default() -> Self {
        GenerateConfig {
            enabled: false,
            name: ObjectName(DEFAULT_GENERATED_NAME.to_owned()),
            existing: false,
            baseline: None,
        }
    }
}

/// The default name of the generated default-deny.
pub const DEFAULT_GENERATED_NAME: &str = "palisade-default-deny";

/// `generate.baseline`: what every generated namespace allows, for the
/// directions palisade fences there (e.g. DNS to the cluster DNS pods).
#[derive(Debug, Clone, PartialEq)]
pub struct Baseline {
    /// The policy's name.
    pub name: ObjectName,
    /// Ingress rules, as in a NetworkPolicy's `spec.ingress`.
    pub ingress: Vec<NetworkPolicyIngressRule>,
    /// Egress rules, as in a NetworkPolicy's `spec.egress`.
    pub egress: Vec<NetworkPolicyEgressRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawGenerate {
    #[serde(default)]
    enabled: bool,
    #[serde(default = "default_generated_name")]
    name: String,
    #[serde(default)]
    existing: bool,
    #[serde(default)]
    baseline: Option<RawBaseline>,
}

impl Default for RawGenerate {
    fn default() -> Self {
        RawGenerate {
            enabled: false,
            name: default_generated_name(),
            existing: false,
            baseline: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawBaseline {
    name: String,
    // Read untyped first: the Kubernetes types skip unknown keys, and a
    // typo in an allowance must be an error, not a silently wider rule.
    #[serde(default)]
    ingress: Vec<serde_json::Value>,
    #[serde(default)]
    egress: Vec<serde_json::Value>,
}

/// Reads `rules` as `T`, refusing any key the type does not keep.
fn typed_rules<T: serde::de::DeserializeOwned + serde::Serialize>(
    key: &str,
    rules: Vec<serde_json::Value>,
) -> Result<Vec<T>, (String, String)> {
    rules
        .into_iter()
        .enumerate()
        .map(|(i, raw)| {
            let at = format!("{key}[{i}]");
            let rule: T =
                serde_json::from_value(raw.clone()).map_err(|e| (at.clone(), e.to_string()))?;
            let back = serde_json::to_value(&rule).map_err(|e| (at.clone(), e.to_string()))?;
            match unknown_key(&raw, &back, &at) {
                Some(k) => Err((k, "unknown field".to_owned())),
                None => Ok(rule),
            }
        })
        .collect()
}

/// The first key of `raw` that `back` (the same value, typed and written
/// out again) lost, as a key path.
fn unknown_key(raw: &serde_json::Value, back: &serde_json::Value, at: &str) -> Option<String> {
    use serde_json::Value;
    match (raw, back) {
        (Value::Object(r), Value::Object(b)) => r.iter().find_map(|(k, v)| match b.get(k) {
            None if !v.is_null() => Some(format!("{at}.{k}")),
            None => None,
            Some(bv) => unknown_key(v, bv, &format!("{at}.{k}")),
        }),
        (Value::Array(r), Value::Array(b)) => r
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (rv, bv))| unknown_key(rv, bv, &format!("{at}[{i}]"))),
        _ => None,
    }
}

impl RawGenerate {
    fn build(self) -> Result<GenerateConfig, (String, String)> {
        let name = ObjectName::new(&self.name).map_err(|m| ("generate.name".to_owned(), m))?;
        let baseline = match self.baseline {
            None => None,
            Some(b) => {
                let bname = ObjectName::new(&b.name)
                    .map_err(|m| ("generate.baseline.name".to_owned(), m))?;
                if bname == name {
                    return Err((
                        "generate.baseline.name".into(),
                        format!(
                            "{bname} is also generate.name: the two generated policies need two names"
                        ),
                    ));
                }
                let baseline = Baseline {
                    name: bname,
                    ingress: typed_rules("generate.baseline.ingress", b.ingress)?,
                    egress: typed_rules("generate.baseline.egress", b.egress)?,
                };
                check_baseline(&baseline)?;
                Some(baseline)
            }
        };
        Ok(GenerateConfig {
            enabled: self.enabled,
            name,
            existing: self.existing,
            baseline,
        })
    }
}

/// A baseline must allow something, and never everything: palisade's own
/// `no-allow-all` rule would refuse it outside dev namespaces.
fn check_baseline(b: &Baseline) -> Result<(), (String, String)> {
    if b.ingress.is_empty() && b.egress.is_empty() {
        return Err((
            "generate.baseline".into(),
            "has no ingress or egress rules; remove it to generate the default-deny alone".into(),
        ));
    }
    let np = NetworkPolicy {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(b.name.to_string()),
            ..Default::default()
        },
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(Default::default()),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress: Some(b.ingress.clone()),
            egress: Some(b.egress.clone()),
        }),
    };
    let policy = Policy::from_k8s(&np, "baseline")
        .map_err(|e| ("generate.baseline".to_owned(), e.to_string()))?;
    for d in Direction::ALL {
        if let Some(i) = policy.allow_all(d) {
            return Err((
                format!("generate.baseline.{}[{i}]", d.field()),
                "admits every peer on every port: an allowance must name its peers or ports".into(),
            ));
        }
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawConfig {
    api_version: String,
    kind: String,
    #[serde(default)]
    mode: Mode,
    #[serde(default = "default_required")]
    require_default_deny: Vec<Direction>,
    #[serde(default)]
    environment: EnvironmentConfig,
    #[serde(default = "default_exempt")]
    exempt_namespaces: Vec<String>,
    #[serde(default = "default_trusted")]
    trusted_groups: Vec<String>,
    #[serde(default)]
    roles: RolesConfig,
    #[serde(default)]
    proxy: RawProxy,
    #[serde(default)]
    simulate: SimulateConfig,
    #[serde(default)]
    cluster_policies: ClusterPoliciesConfig,
    #[serde(default)]
    certificates: CertificatesConfig,
    #[serde(default)]
    generate: RawGenerate,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawProxy {
    #[serde(default = "default_proxy_label")]
    label: String,
    #[serde(default)]
    native_sidecar: bool,
    #[serde(default = "default_template")]
    template: PathBuf,
}

impl Default for RawProxy {
    fn default() -> Self {
        Self {
            label: default_proxy_label(),
            native_sidecar: false,
            template: default_template(),
        }
    }
}

fn default_env_label() -> String {
    "environment".into()
}
fn default_dev_values() -> Vec<String> {
    vec!["dev".into(), "development".into()]
}
fn default_role_label() -> String {
    "palisade.io/role".into()
}
fn default_proxy_label() -> String {
    "palisade.io/proxy".into()
}
fn default_template() -> PathBuf {
    "sidecars/access-proxy.yaml".into()
}
fn default_required() -> Vec<Direction> {
    vec![Direction::Ingress, Direction::Egress]
}
fn default_exempt() -> Vec<String> {
    [
        "kube-system",
        "kube-public",
        "kube-node-lease",
        "palisade-system",
    ]
    .map(String::from)
    .to_vec()
}
fn default_trusted() -> Vec<String> {
    vec!["system:masters".into()]
}
fn default_generated_name() -> String {
    DEFAULT_GENERATED_NAME.into()
}

impl Config {
    /// Reads and validates the config file at `path`; the sidecar template
    /// is read relative to it.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let raw = parse_raw(path, &text)?;
        let template_path = path
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join(&raw.proxy.template);
        let template =
            SidecarTemplate::load(&template_path).map_err(|source| ConfigError::Template {
                path: path.to_owned(),
                source,
            })?;
        Self::build(path, raw, template_path, template)
    }

    /// The configuration shipped in `policies/`, compiled in.
    pub fn embedded() -> Result<Self, ConfigError> {
        Self::from_yaml(EMBEDDED_CONFIG, EMBEDDED_SIDECAR)
    }

    /// A configuration from YAML text and a sidecar template text (for
    /// tests and `--demo`; `load` is the path for files).
    pub fn from_yaml(config: &str, sidecar: &str) -> Result<Self, ConfigError> {
        let path = Path::new("<embedded>/palisade.yaml");
        let raw = parse_raw(path, config)?;
        let template_path = Path::new("<embedded>").join(&raw.proxy.template);
        let template = SidecarTemplate::parse(sidecar, &template_path).map_err(|source| {
            ConfigError::Template {
                path: path.to_owned(),
                source,
            }
        })?;
        Self::build(path, raw, template_path, template)
    }

    fn build(
        path: &Path,
        raw: RawConfig,
        template_path: PathBuf,
        template: SidecarTemplate,
    ) -> Result<Self, ConfigError> {
        let invalid = |key: String, message: String| ConfigError::Invalid {
            path: path.to_owned(),
            key,
            message,
        };
        if raw.api_version != API_VERSION {
            return Err(invalid(
                "apiVersion".into(),
                format!(
                    "{:?} is not supported (expected {API_VERSION})",
                    raw.api_version
                ),
            ));
        }
        if raw.kind != KIND {
            return Err(invalid(
                "kind".into(),
                format!("{:?} is not {KIND}", raw.kind),
            ));
        }
        let mut required = Directions::NONE;
        for (i, d) in raw.require_default_deny.iter().enumerate() {
            if required.contains(*d) {
                return Err(invalid(
                    format!("requireDefaultDeny[{i}]"),
                    format!("{d} is listed twice"),
                ));
            }
            required.insert(*d);
        }
        check_label_key(&raw.environment.label)
            .map_err(|m| invalid("environment.label".into(), m))?;
        for (i, v) in raw.environment.dev.iter().enumerate() {
            check_label_value(v).map_err(|m| invalid(format!("environment.dev[{i}]"), m))?;
        }
        for (i, ns) in raw.exempt_namespaces.iter().enumerate() {
            check_dns_label(ns).map_err(|m| invalid(format!("exemptNamespaces[{i}]"), m))?;
        }
        for (i, g) in raw.trusted_groups.iter().enumerate() {
            if g.trim().is_empty() {
                return Err(invalid(
                    format!("trustedGroups[{i}]"),
                    "must not be empty".into(),
                ));
            }
        }
        check_label_key(&raw.roles.label).map_err(|m| invalid("roles.label".into(), m))?;
        for (i, rule) in raw.roles.rules.iter().enumerate() {
            let at = format!("roles.rules[{i}]");
            check_label_value(&rule.role).map_err(|m| invalid(format!("{at}.role"), m))?;
            if rule.role.is_empty() {
                return Err(invalid(format!("{at}.role"), "must not be empty".into()));
            }
            let m = &rule.matcher;
            for (field, list) in [
                ("images", &m.images),
                ("namespaces", &m.namespaces),
                ("serviceAccounts", &m.service_accounts),
            ] {
                if let Some(list) = list {
                    if list.is_empty() {
                        return Err(invalid(
                            format!("{at}.match.{field}"),
                            "an empty list matches nothing; remove the key to match any".into(),
                        ));
                    }
                    if let Some(j) = list.iter().position(|g| g.as_str().is_empty()) {
                        return Err(invalid(
                            format!("{at}.match.{field}[{j}]"),
                            "empty pattern".into(),
                        ));
                    }
                }
            }
            for (k, v) in m.labels.iter().flatten() {
                check_label_key(k).map_err(|e| invalid(format!("{at}.match.labels.{k}"), e))?;
                check_label_value(v).map_err(|e| invalid(format!("{at}.match.labels.{k}"), e))?;
            }
        }
        check_label_key(&raw.proxy.label).map_err(|m| invalid("proxy.label".into(), m))?;
        let generate = raw.generate.build().map_err(|(k, m)| invalid(k, m))?;
        Ok(Config {
            mode: raw.mode,
            require_default_deny: required,
            environment: raw.environment,
            exempt_namespaces: raw.exempt_namespaces,
            trusted_groups: raw.trusted_groups,
            roles: raw.roles,
            proxy: ProxyConfig::new(
                raw.proxy.label,
                raw.proxy.native_sidecar,
                template_path,
                template,
            )
            .map_err(|e| invalid("proxy.template".into(), e.to_string()))?,
            simulate: raw.simulate,
            cluster_policies: raw.cluster_policies,
            certificates: raw.certificates,
            generate,
        })
    }

    /// Is `namespace` exempt from every check and mutation?
    pub fn is_exempt(&self, namespace: &str) -> bool {
        self.exempt_namespaces.iter().any(|n| n == namespace)
    }

    /// Is a member of any of `groups` trusted to weaken namespace labels?
    pub fn is_trusted(&self, groups: &[String]) -> bool {
        groups.iter().any(|g| self.trusted_groups.contains(g))
    }

    /// Is `value` of the environment label a dev environment?
    pub fn is_dev_value(&self, value: &str) -> bool {
        self.environment.dev.iter().any(|d| d == value)
    }
}

fn parse_raw(path: &Path, text: &str) -> Result<RawConfig, ConfigError> {
    let options = serde_saphyr::options! { strict_booleans: true };
    serde_saphyr::from_str_with_options(text, options).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// A label key: an optional DNS-subdomain prefix and `/`, then a name of at
/// most 63 characters of alphanumerics, `-`, `_`, `.`, starting and ending
/// alphanumeric.
pub fn check_label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix
        && (p.is_empty()
            || p.len() > 253
            || !p.split('.').all(|part| check_dns_label(part).is_ok()))
    {
        return Err(format!("{key:?}: prefix {p:?} is not a DNS subdomain"));
    }
    if name.is_empty() {
        return Err(format!("{key:?}: the name part is empty"));
    }
    check_label_value(name).map_err(|e| format!("{key:?}: {e}"))
}

/// A label value: empty, or at most 63 characters of alphanumerics, `-`,
/// `_`, `.`, starting and ending alphanumeric.
pub fn check_label_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    let ok_chars = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    let ends = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if value.len() > 63 || !ok_chars || !ends(value.chars().next()) || !ends(value.chars().last()) {
        return Err(format!(
            "{value:?} is not a valid label value (at most 63 characters: letters, digits, '-', '_', '.', starting and ending with a letter or digit)"
        ));
    }
    Ok(())
}

fn check_dns_label(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a DNS label (lowercase letters, digits and '-')"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "apiVersion: palisade.io/v1alpha1\nkind: PalisadeConfig\n";

    fn cfg(extra: &str) -> Result<Config, ConfigError> {
        Config::from_yaml(&format!("{MINIMAL}{extra}"), EMBEDDED_SIDECAR)
    }

    #[test]
    fn embedded_config_loads() {
        let c = Config::embedded().unwrap();
        assert_eq!(c.mode, Mode::Enforce);
        assert_eq!(c.require_default_deny, Directions::BOTH);
        assert!(c.is_exempt("kube-system") && c.is_exempt("palisade-system"));
        assert!(c.is_trusted(&["system:masters".into()]));
        assert!(!c.is_trusted(&["dev-team".into()]));
        assert!(!c.roles.rules.is_empty());
        assert!(!c.simulate.preview);
        assert!(!c.cluster_policies.count_ingress_deny);
    }

    #[test]
    fn the_shipped_file_loads_from_disk() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/palisade.yaml");
        let c = Config::load(&path).unwrap();
        assert!(
            c.proxy
                .template_path
                .ends_with("policies/sidecars/access-proxy.yaml")
        );
        assert!(!c.proxy.template.containers.is_empty());
    }

    #[test]
    fn defaults_fill_in_what_is_absent() {
        let c = cfg("").unwrap();
        assert_eq!(c.mode, Mode::Enforce);
        assert_eq!(c.require_default_deny, Directions::BOTH);
        assert_eq!(c.environment.label, "environment");
        assert!(c.is_dev_value("dev") && c.is_dev_value("development") && !c.is_dev_value("prod"));
        assert_eq!(c.exempt_namespaces.len(), 4);
        assert_eq!(c.roles.label, "palisade.io/role");
        assert_eq!(c.proxy.label, "palisade.io/proxy");
        assert!(!c.proxy.native_sidecar);
    }

    #[test]
    fn unknown_keys_name_the_key_and_line() {
        let e = cfg("mode: warn\nenvironment:\n  labell: env\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `labell`"), "{e}");
        assert!(e.contains("line 5"), "{e}");
        let e = cfg("proxyy: {}\n").unwrap_err().to_string();
        assert!(e.contains("proxyy") && e.contains("line 3"), "{e}");
    }

    #[test]
    fn bad_values_name_the_key() {
        let cases = [
            ("mode: off\n", "off"),
            ("requireDefaultDeny: [Ingress, Sideways]\n", "Sideways"),
            (
                "requireDefaultDeny: [Ingress, Ingress]\n",
                "requireDefaultDeny[1]",
            ),
            ("environment: {label: 'bad key!'}\n", "environment.label"),
            ("exemptNamespaces: [Kube_System]\n", "exemptNamespaces[0]"),
            (
                "roles: {rules: [{role: 'Data Base', match: {}}]}\n",
                "roles.rules[0].role",
            ),
            (
                "roles: {rules: [{role: db, match: {images: []}}]}\n",
                "roles.rules[0].match.images",
            ),
            (
                "roles: {rules: [{role: db, match: {imagez: [x]}}]}\n",
                "imagez",
            ),
        ];
        for (yaml, needle) in cases {
            let e = cfg(yaml).map(|_| ()).unwrap_err().to_string();
            assert!(e.contains(needle), "{yaml:?}: {e}");
        }
        let e = Config::from_yaml("apiVersion: v1\nkind: PalisadeConfig\n", EMBEDDED_SIDECAR)
            .unwrap_err();
        assert!(e.to_string().contains("apiVersion"), "{e}");
    }

    #[test]
    fn a_missing_file_is_an_error_naming_it() {
        let e = Config::load(Path::new("/nonexistent/palisade.yaml")).unwrap_err();
        assert!(matches!(e, ConfigError::Read { .. }));
        assert!(e.to_string().contains("/nonexistent/palisade.yaml"));
    }

    #[test]
    fn a_missing_template_is_an_error_naming_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("palisade.yaml");
        std::fs::write(
            &path,
            format!("{MINIMAL}proxy: {{template: missing.yaml}}\n"),
        )
        .unwrap();
        let e = Config::load(&path).unwrap_err().to_string();
        assert!(
            e.contains("proxy.template") && e.contains("missing.yaml"),
            "{e}"
        );
    }

    #[test]
    fn generation_is_off_by_default_and_the_shipped_baseline_allows_dns() {
        let c = cfg("").unwrap();
        assert_eq!(c.generate, GenerateConfig::default());
        assert_eq!(c.generate.name.as_str(), "palisade-default-deny");
        let shipped = Config::embedded().unwrap().generate;
        assert!(!shipped.enabled && !shipped.existing);
        let b = shipped.baseline.expect("the shipped file allows DNS");
        assert_eq!(b.name.as_str(), "palisade-baseline");
        assert!(b.ingress.is_empty());
        let rule = serde_json::to_value(&b.egress).unwrap();
        assert_eq!(
            rule,
            serde_json::json!([{
                "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
            }])
        );
    }

    #[test]
    fn bad_generation_settings_name_the_key() {
        let cases = [
            ("generate: {name: Default_Deny}\n", "generate.name"),
            ("generate: {name: ''}\n", "generate.name"),
            ("generate: {enable: true}\n", "enable"),
            (
                "generate: {baseline: {name: palisade-default-deny, egress: [{ports: [{port: 53}]}]}}\n",
                "generate.baseline.name",
            ),
            (
                "generate: {baseline: {name: b}}\n",
                "generate.baseline: has no ingress or egress rules",
            ),
            (
                "generate: {baseline: {name: b, egress: [{to: [{podSelecter: {}}]}]}}\n",
                "generate.baseline.egress[0].to[0].podSelecter: unknown field",
            ),
            (
                "generate: {baseline: {name: b, egress: [{portz: [{port: 53}]}]}}\n",
                "generate.baseline.egress[0].portz: unknown field",
            ),
            (
                "generate: {baseline: {name: b, ingress: [{}]}}\n",
                "generate.baseline.ingress[0]: admits every peer on every port",
            ),
            (
                "generate: {baseline: {name: b, egress: [{to: [{ipBlock: {cidr: 0.0.0.0/0}}]}]}}\n",
                "generate.baseline.egress[0]: admits every peer",
            ),
            (
                "generate: {baseline: {name: b, egress: [{to: [{ipBlock: {cidr: nope}}]}]}}\n",
                "generate.baseline: ",
            ),
        ];
        for (yaml, needle) in cases {
            let e = cfg(yaml).map(|_| ()).unwrap_err().to_string();
            assert!(e.contains(needle), "{yaml:?}: {e}");
        }
        let ok = cfg("generate: {enabled: true, existing: true, name: fence.v1, baseline: {name: b, ingress: [{from: [{podSelector: {matchLabels: {app: probe}}}]}]}}\n")
            .unwrap()
            .generate;
        assert!(ok.enabled && ok.existing);
        assert_eq!(ok.name.as_str(), "fence.v1");
        assert_eq!(ok.baseline.unwrap().ingress.len(), 1);
    }

    #[test]
    fn object_names_are_what_the_api_server_accepts() {
        for good in ["a", "palisade-default-deny", "a.b-c.d", &"a".repeat(253)] {
            assert!(ObjectName::new(good).is_ok(), "{good}");
        }
        for bad in ["", "A", "a_b", "-a", "a-", "a..b", ".a", &"a".repeat(254)] {
            assert!(ObjectName::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn label_syntax() {
        assert!(check_label_key("palisade.io/role").is_ok());
        assert!(check_label_key("app").is_ok());
        assert!(check_label_key("a/b/c").is_err());
        assert!(check_label_key("-x").is_err());
        assert!(check_label_value("").is_ok());
        assert!(check_label_value("db-1.x_y").is_ok());
        assert!(check_label_value(&"a".repeat(64)).is_err());
    }
}
