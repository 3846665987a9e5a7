//! The policy file (`policies/palisade.yaml`): typed, defaulted, validated.
//!
//! A missing file, an unknown key or a bad value is an error that names the
//! file and the key; palisade never falls back to a default it was not asked
//! for. The embedded default ([`Config::embedded`]) exists for `--demo` and
//! tests, and is the same file the repository ships.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use thiserror::Error;

use crate::glob::Glob;
use crate::mode::Mode;
use crate::netpol::{Direction, Directions};
use crate::patch::RenderError;
use crate::sidecar::{Injection, SidecarTemplate, TemplateError};

/// The config file's `apiVersion`.
pub const API_VERSION: &str = "palisade.io/v1alpha1";
/// The config file's `kind`.
pub const KIND: &str = "PalisadeConfig";
/// The namespace label that sets a namespace's mode.
pub const MODE_LABEL: &str = "palisade.io/mode";
/// The pod annotation that marks a pod palisade injected.
pub const PROXY_STATUS_ANNOTATION: &str = "palisade.io/proxy-status";

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

/// The default preview budget: deploy/'s 128 MiB container limit, less
/// what the webhook itself holds at 10,000 namespaces and 100,000
/// policies with room to spare (docs/performance.md).
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
