//! A namespace's standing: is it exempt, is it dev, which mode governs it,
//! does it deny by default, and which of its labels weaken protection.

use std::fmt;

use crate::cluster_policy::ClusterPolicies;
use crate::cluster_policy::defaults::{self, ClusterDefault, RuleAt};
use crate::config::{Config, GENERATE_LABEL, GENERATE_OPT_OUT, MODE_LABEL};
use crate::mode::Mode;
use crate::netpol::{Direction, Directions, PolicyFacts};
use crate::selector::Labels;

/// What palisade knows of a namespace object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamespaceInfo {
    /// Its labels.
    pub labels: Labels,
    /// Being deleted (`deletionTimestamp` set or phase `Terminating`).
    pub terminating: bool,
    /// `creationTimestamp` in Unix seconds; `None` for a manifest that has
    /// not been created yet.
    pub created: Option<i64>,
}

impl NamespaceInfo {
    /// From a Namespace object. The `kubernetes.io/metadata.name` label is
    /// filled in when absent (manifests read offline), since the API server
    /// always sets it and selectors rely on it.
    pub fn from_k8s(ns: &k8s_openapi::api::core::v1::Namespace) -> (String, NamespaceInfo) {
        let phase = ns.status.as_ref().and_then(|s| s.phase.as_deref());
        Self::from_meta(&ns.metadata, phase)
    }

    /// From a Namespace's metadata and, when known, its phase: what a
    /// metadata-only watch delivers (the API server sets `deletionTimestamp`
    /// whenever the phase is `Terminating`, so metadata alone suffices).
    pub fn from_meta(
        meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
        phase: Option<&str>,
    ) -> (String, NamespaceInfo) {
        let name = meta.name.clone().unwrap_or_default();
        let mut labels = meta.labels.clone().unwrap_or_default();
        labels
            .entry(crate::selector::NAMESPACE_NAME_LABEL.to_owned())
            .or_insert_with(|| name.clone());
        let terminating = meta.deletion_timestamp.is_some() || phase == Some("Terminating");
        let created = meta.creation_timestamp.as_ref().map(|t| t.0.as_second());
        (
            name,
            NamespaceInfo {
                labels,
                terminating,
                created,
            },
        )
    }
}

/// Where the governing mode came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModeSource {
    /// The config's default.
    Default,
    /// The namespace label `palisade.io/mode`.
    Label,
    /// The label holds no mode; the default applies.
    InvalidLabel(String),
}

/// A namespace's standing under the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posture {
    /// Nothing is checked or mutated here.
    pub exempt: bool,
    /// A dev namespace: allow-all policies are permitted.
    pub dev: bool,
    /// The mode that governs requests here.
    pub mode: Mode,
    /// Where `mode` came from.
    pub mode_source: ModeSource,
}

impl Posture {
    /// The standing of namespace `name` with `labels`.
    pub fn of(cfg: &Config, name: &str, labels: &Labels) -> Posture {
        let (mode, mode_source) = match labels.get(MODE_LABEL) {
            None => (cfg.mode, ModeSource::Default),
            Some(v) => match v.parse::<Mode>() {
                Ok(m) => (m, ModeSource::Label),
                Err(_) => (cfg.mode, ModeSource::InvalidLabel(v.clone())),
            },
        };
        Posture {
            exempt: cfg.is_exempt(name),
            dev: is_dev(cfg, labels),
            mode,
            mode_source,
        }
    }
}

/// Does the environment label name a dev environment? No label: not dev.
pub fn is_dev(cfg: &Config, labels: &Labels) -> bool {
    labels
        .get(&cfg.environment.label)
        .is_some_and(|v| cfg.is_dev_value(v))
}

/// The directions for which some policy is default-deny.
pub fn default_deny(policies: &[PolicyFacts]) -> Directions {
    policies
        .iter()
        .fold(Directions::NONE, |acc, p| acc.union(p.default_deny))
}

/// The required default-deny directions that none of `policies` provides.
pub fn missing_default_deny(cfg: &Config, policies: &[PolicyFacts]) -> Directions {
    cfg.require_default_deny.minus(default_deny(policies))
}

/// Has the namespace opted out of generation (`palisade.io/generate=disabled`)?
pub fn opted_out_of_generation(labels: &Labels) -> bool {
    labels.get(GENERATE_LABEL).map(String::as_str) == Some(GENERATE_OPT_OUT)
}

/// Where a namespace's default-deny comes from: its NetworkPolicies, and
/// what the cluster-wide tiers give it per direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultDeny {
    /// Directions its NetworkPolicies deny by default.
    pub netpol: Directions,
    /// Per direction (`Direction::index`), what the cluster-wide policies
    /// give it.
    pub cluster: [ClusterDefault; 2],
    /// Does a cluster-wide ingress deny count (`clusterPolicies.countIngressDeny`)?
    pub count_ingress: bool,
}

impl DefaultDeny {
    /// The standing of a namespace with `labels`, whose NetworkPolicies
    /// have `policies`, under the cluster-wide policies `cluster`.
    pub fn of(
        cfg: &Config,
        policies: &[PolicyFacts],
        cluster: &ClusterPolicies,
        labels: &Labels,
    ) -> Self {
        let netpol = default_deny(policies);
        // The tiers are walked only for what NetworkPolicies leave open:
        // with no cluster-wide policy, or a namespace fenced on its own,
        // this costs nothing.
        let cluster = Direction::ALL.map(|d| {
            if netpol.contains(d) || cluster.is_empty() {
                ClusterDefault::Nothing
            } else {
                defaults::default_deny(cluster, labels, d)
            }
        });
        DefaultDeny {
            netpol,
            cluster,
            count_ingress: cfg.cluster_policies.count_ingress_deny,
        }
    }

    /// Does the cluster-wide default-deny of `d` count? Egress always;
    /// Ingress only when configured, since these policies cannot deny
    /// traffic from outside the cluster.
    pub fn counts_cluster(&self, d: Direction) -> bool {
        self.cluster[d.index()].is_denied() && (d == Direction::Egress || self.count_ingress)
    }

    /// Every direction denied by default, by either.
    pub fn directions(&self) -> Directions {
        Direction::ALL
            .into_iter()
            .filter(|d| self.netpol.contains(*d) || self.counts_cluster(*d))
            .collect()
    }

    /// The directions of `required` not denied by default.
    pub fn missing(&self, required: Directions) -> Directions {
        required.minus(self.directions())
    }

    /// What the cluster-wide policies `set` (those this standing was
    /// computed with) do for the `required` directions NetworkPolicies
    /// leave open, one line each: which policy provides default-deny and
    /// what it lets through, or which one was considered and why it does
    /// not count.
    pub fn notes(&self, required: Directions, set: &ClusterPolicies) -> Vec<String> {
        let named = |by: &[RuleAt], d: Direction| -> String {
            by.iter()
                .filter_map(|r| r.named(set, d))
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
                .join(" and ")
        };
        let mut out = Vec::new();
        for d in required.iter().filter(|d| !self.netpol.contains(*d)) {
            let dir = d.as_str().to_lowercase();
            let line = match &self.cluster[d.index()] {
                ClusterDefault::Nothing => continue,
                ClusterDefault::Denied { by, allowances } if self.counts_cluster(d) => {
                    let through: String = allowances
                        .iter()
                        .map(|a| format!("\n  - {}", a.describe(set, d)))
                        .collect();
                    let through = if through.is_empty() {
                        ".".to_owned()
                    } else {
                        format!(", which lets through:{through}")
                    };
                    format!(
                        "{d} is denied by default cluster-wide by {}{through}",
                        named(by, d)
                    )
                }
                ClusterDefault::Denied { by, .. } => format!(
                    "{d}: {} denies {dir} from every pod, but cluster-wide policies cannot deny traffic from \
                     outside the cluster (their {dir} peers are pods and namespaces only), so it does not count as \
                     default-deny for {d}. Where something else blocks outside traffic to pods, set \
                     clusterPolicies.countIngressDeny: true in palisade's config; otherwise apply the NetworkPolicy below.",
                    named(by, d)
                ),
                ClusterDefault::Cut { deny, by } => format!(
                    "{d}: {} would deny all {dir}, but an earlier rule lets broad traffic through first: {}.",
                    named(std::slice::from_ref(deny), d),
                    by.describe(set, d)
                ),
                ClusterDefault::Partial { by, missing } => format!(
                    "{d}: {} {} {dir} traffic but not {} {missing}; a default-deny must cover every peer.",
                    named(by, d),
                    if by.len() == 1 { "denies" } else { "deny" },
                    if d == Direction::Egress { "to" } else { "from" },
                ),
            };
            out.push(line);
        }
        out
    }
}

/// A namespace label change that lowers protection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Weakening {
    /// `palisade.io/mode` set to a mode weaker than the config default.
    Mode {
        /// The new value.
        to: Mode,
    },
    /// The environment label set to a dev value.
    Dev {
        /// The label key.
        label: String,
        /// The new value.
        to: String,
    },
    /// `palisade.io/generate=disabled`: palisade will not create the
    /// namespace's default-deny.
    GenerateOptOut,
}

impl fmt::Display for Weakening {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Weakening::Mode { to } => write!(f, "{MODE_LABEL}={to}"),
            Weakening::Dev { label, to } => write!(f, "{label}={to}"),
            Weakening::GenerateOptOut => write!(f, "{GENERATE_LABEL}={GENERATE_OPT_OUT}"),
        }
    }
}

/// Labels of `new` that weaken protection and were not already in effect
/// in `old` (`None` for a namespace being created). Keeping an existing
/// weakening label is not a new weakening: a namespace can be edited
/// without re-proving a decision made by someone trusted before.
pub fn weakenings(cfg: &Config, old: Option<&Labels>, new: &Labels) -> Vec<Weakening> {
    let mut out = Vec::new();
    let weak_mode = |labels: &Labels| {
        labels
            .get(MODE_LABEL)
            .and_then(|v| v.parse::<Mode>().ok())
            .filter(|m| m.is_weaker_than(cfg.mode))
    };
    if let Some(to) = weak_mode(new) {
        let before = old.and_then(weak_mode);
        if before.is_none_or(|b| to.is_weaker_than(b)) {
            out.push(Weakening::Mode { to });
        }
    }
    if is_dev(cfg, new) && !old.is_some_and(|o| is_dev(cfg, o)) {
        out.push(Weakening::Dev {
            label: cfg.environment.label.clone(),
            to: new.get(&cfg.environment.label).cloned().unwrap_or_default(),
        });
    }
    if opted_out_of_generation(new) && !old.is_some_and(opted_out_of_generation) {
        out.push(Weakening::GenerateOptOut);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netpol::Direction;

    fn cfg() -> Config {
        Config::embedded().unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn posture_truth_table() {
        let c = cfg();
        let cases = [
            (
                "apps",
                labels(&[]),
                false,
                false,
                Mode::Enforce,
                ModeSource::Default,
            ),
            (
                "kube-system",
                labels(&[]),
                true,
                false,
                Mode::Enforce,
                ModeSource::Default,
            ),
            (
                "apps",
                labels(&[("environment", "dev")]),
                false,
                true,
                Mode::Enforce,
                ModeSource::Default,
            ),
            (
                "apps",
                labels(&[("environment", "development")]),
                false,
                true,
                Mode::Enforce,
                ModeSource::Default,
            ),
            (
                "apps",
                labels(&[("environment", "prod")]),
                false,
                false,
                Mode::Enforce,
                ModeSource::Default,
            ),
            (
                "apps",
                labels(&[("palisade.io/mode", "warn")]),
                false,
                false,
                Mode::Warn,
                ModeSource::Label,
            ),
            (
                "apps",
                labels(&[("palisade.io/mode", "dry-run")]),
                false,
                false,
                Mode::DryRun,
                ModeSource::Label,
            ),
            (
                "apps",
                labels(&[("palisade.io/mode", "off")]),
                false,
                false,
                Mode::Enforce,
                ModeSource::InvalidLabel("off".into()),
            ),
        ];
        for (name, l, exempt, dev, mode, source) in cases {
            let p = Posture::of(&c, name, &l);
            assert_eq!(
                (p.exempt, p.dev, p.mode, p.mode_source),
                (exempt, dev, mode, source),
                "{name} {l:?}"
            );
        }
    }

    #[test]
    fn default_deny_needs_every_required_direction() {
        let c = cfg();
        let facts = |name: &str, dd: &[Direction]| PolicyFacts {
            name: name.into(),
            default_deny: dd.iter().copied().collect(),
            allow_all: Directions::NONE,
        };
        assert_eq!(missing_default_deny(&c, &[]), Directions::BOTH);
        assert_eq!(
            missing_default_deny(&c, &[facts("a", &[Direction::Ingress])]),
            Directions::only(Direction::Egress)
        );
        assert!(
            missing_default_deny(
                &c,
                &[
                    facts("a", &[Direction::Ingress]),
                    facts("b", &[Direction::Egress])
                ]
            )
            .is_empty()
        );
        assert!(
            missing_default_deny(&c, &[facts("a", &[Direction::Ingress, Direction::Egress])])
                .is_empty()
        );
    }

    #[test]
    fn weakenings_truth_table() {
        let c = cfg();
        let m = |v: &str| labels(&[("palisade.io/mode", v)]);
        let env = |v: &str| labels(&[("environment", v)]);
        let gen_label = |v: &str| labels(&[("palisade.io/generate", v)]);
        let cases: Vec<(Option<Labels>, Labels, Vec<&str>)> = vec![
            (None, labels(&[]), vec![]),
            (None, m("enforce"), vec![]),
            (None, m("warn"), vec!["palisade.io/mode=warn"]),
            (None, m("dry-run"), vec!["palisade.io/mode=dry-run"]),
            (Some(m("warn")), m("warn"), vec![]),
            (
                Some(m("warn")),
                m("dry-run"),
                vec!["palisade.io/mode=dry-run"],
            ),
            (Some(m("dry-run")), m("warn"), vec![]),
            (
                Some(m("off")),
                m("dry-run"),
                vec!["palisade.io/mode=dry-run"],
            ),
            (None, env("dev"), vec!["environment=dev"]),
            (Some(env("prod")), env("dev"), vec!["environment=dev"]),
            (Some(env("dev")), env("development"), vec![]),
            (Some(env("dev")), env("prod"), vec![]),
            (
                None,
                gen_label("disabled"),
                vec!["palisade.io/generate=disabled"],
            ),
            (
                Some(labels(&[])),
                gen_label("disabled"),
                vec!["palisade.io/generate=disabled"],
            ),
            (Some(gen_label("disabled")), gen_label("disabled"), vec![]),
            (Some(gen_label("disabled")), labels(&[]), vec![]),
            // Only `disabled` opts out: anything else asks for nothing.
            (None, gen_label("false"), vec![]),
            (None, gen_label("enabled"), vec![]),
        ];
        for (old, new, want) in cases {
            let got: Vec<String> = weakenings(&c, old.as_ref(), &new)
                .iter()
                .map(ToString::to_string)
                .collect();
            assert_eq!(got, want, "{old:?} -> {new:?}");
        }
    }
}
