//! Role derivation: which value of the owned role label a pod must carry.
//!
//! Rules come from the config; the first whose every given condition holds
//! wins. No matching rule means the pod carries no role label at all.

use k8s_openapi::api::core::v1::PodSpec;

use crate::config::{Config, RoleRule};
use crate::selector::Labels;
use crate::sidecar::Injection;

/// The service account Kubernetes uses when a pod names none.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";

/// The facts about a pod that role rules look at.
#[derive(Debug, Clone, Copy)]
pub struct PodFacts<'a> {
    /// The pod's namespace.
    pub namespace: &'a str,
    /// The pod's labels (the role label itself is ignored).
    pub labels: &'a Labels,
    /// The pod's spec.
    pub spec: &'a PodSpec,
    /// The sidecar about to be injected, whose images count as the pod's:
    /// the role is derived from the pod as it will be admitted.
    pub injecting: Option<&'a Injection>,
}

impl PodFacts<'_> {
    /// `serviceAccountName`, else the deprecated `serviceAccount`, else `default`.
    pub fn service_account(&self) -> &str {
        self.spec
            .service_account_name
            .as_deref()
            .or(self.spec.service_account.as_deref())
            .filter(|s| !s.is_empty())
            .unwrap_or(DEFAULT_SERVICE_ACCOUNT)
    }

    fn images(&self) -> impl Iterator<Item = &str> {
        self.spec
            .containers
            .iter()
            .chain(self.spec.init_containers.iter().flatten())
            .filter_map(|c| c.image.as_deref())
            .chain(self.injecting.into_iter().flat_map(Injection::images))
    }
}

/// The role a rule gave, and which rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Derived<'c> {
    /// The role label value.
    pub role: &'c str,
    /// Index in `roles.rules`.
    pub rule: usize,
}

/// The role for a pod: the first rule that matches, or `None`.
pub fn derive<'c>(cfg: &'c Config, pod: &PodFacts<'_>) -> Option<Derived<'c>> {
    cfg.roles
        .rules
        .iter()
        .enumerate()
        .find(|(_, r)| rule_matches(cfg, r, pod))
        .map(|(rule, r)| Derived {
            role: r.role.as_str(),
            rule,
        })
}

/// What the owned role label of a pod needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelPlan<'c> {
    /// It is right as it is: the derived role, or absent when no rule
    /// matches.
    Keep,
    /// Set it to `role` (from `roles.rules[rule]`), replacing the value the
    /// pod brought, if any.
    Set {
        /// The derived role.
        role: &'c str,
        /// The rule that gave it.
        rule: usize,
        /// The value the pod brought instead, if any.
        replacing: Option<String>,
    },
    /// Remove it: no rule gives the pod a role, whatever value it brought.
    Remove {
        /// The value the pod brought.
        value: String,
    },
}

impl LabelPlan<'_> {
    /// What the plan does, in words; `None` for [`LabelPlan::Keep`].
    pub fn describe(&self, key: &str) -> Option<String> {
        match self {
            LabelPlan::Keep => None,
            LabelPlan::Set {
                role,
                replacing: None,
                ..
            } => Some(format!("set label {key}={role}")),
            LabelPlan::Set {
                role,
                replacing: Some(old),
                ..
            } => Some(format!("set label {key}={role} (replacing {old})")),
            LabelPlan::Remove { value } => {
                Some(format!("remove label {key}={value} (no role rule matches)"))
            }
        }
    }
}

/// Plans the role label for a pod that carries `current` as its value.
pub fn plan_label<'c>(cfg: &'c Config, pod: &PodFacts<'_>, current: Option<&str>) -> LabelPlan<'c> {
    match (derive(cfg, pod), current) {
        (Some(d), Some(now)) if now == d.role => LabelPlan::Keep,
        (Some(d), now) => LabelPlan::Set {
            role: d.role,
            rule: d.rule,
            replacing: now.map(str::to_owned),
        },
        (None, Some(now)) => LabelPlan::Remove {
            value: now.to_owned(),
        },
        (None, None) => LabelPlan::Keep,
    }
}

fn rule_matches(cfg: &Config, rule: &RoleRule, pod: &PodFacts<'_>) -> bool {
    let m = &rule.matcher;
    let images = m
        .images
        .as_ref()
        .is_none_or(|globs| pod.images().any(|img| globs.iter().any(|g| g.matches(img))));
    // The role label is palisade's output, never its input: a pod must not
    // be able to pick its own role by bringing the label.
    let labels = m.labels.as_ref().is_none_or(|want| {
        want.iter()
            .all(|(k, v)| k != &cfg.roles.label && pod.labels.get(k) == Some(v))
    });
    let namespaces = m
        .namespaces
        .as_ref()
        .is_none_or(|globs| globs.iter().any(|g| g.matches(pod.namespace)));
    let accounts = m
        .service_accounts
        .as_ref()
        .is_none_or(|globs| globs.iter().any(|g| g.matches(pod.service_account())));
    images && labels && namespaces && accounts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EMBEDDED_SIDECAR;
    use k8s_openapi::api::core::v1::Container;

    fn cfg() -> Config {
        Config::from_yaml(
            r#"apiVersion: palisade.io/v1alpha1
kind: PalisadeConfig
roles:
  rules:
    - role: payments-db
      match:
        images: ["postgres:*", "*/postgres:*"]
        namespaces: ["payments-*"]
        serviceAccounts: ["db"]
    - role: database
      match:
        images: ["postgres:*", "*/postgres:*"]
    - role: frontend
      match:
        labels: {app.kubernetes.io/component: frontend}
    - role: spoof
      match:
        labels: {palisade.io/role: admin}
"#,
            EMBEDDED_SIDECAR,
        )
        .unwrap()
    }

    fn spec(images: &[&str], init: &[&str], sa: Option<&str>) -> PodSpec {
        let c = |i: &&str| Container {
            name: "c".into(),
            image: Some(i.to_string()),
            ..Default::default()
        };
        PodSpec {
            containers: images.iter().map(c).collect(),
            init_containers: (!init.is_empty()).then(|| init.iter().map(c).collect()),
            service_account_name: sa.map(str::to_owned),
            ..Default::default()
        }
    }

    #[test]
    fn derivation_truth_table() {
        let c = cfg();
        let none = Labels::new();
        let fe: Labels = [(
            "app.kubernetes.io/component".to_string(),
            "frontend".to_string(),
        )]
        .into();
        let spoof: Labels = [("palisade.io/role".to_string(), "admin".to_string())].into();
        type Case<'a> = (&'a str, &'a Labels, PodSpec, Option<(&'a str, usize)>);
        let cases: Vec<Case> = vec![
            (
                "payments-eu",
                &none,
                spec(&["postgres:16"], &[], Some("db")),
                Some(("payments-db", 0)),
            ),
            (
                "payments-eu",
                &none,
                spec(&["postgres:16"], &[], None),
                Some(("database", 1)),
            ),
            (
                "shop",
                &none,
                spec(&["postgres:16"], &[], Some("db")),
                Some(("database", 1)),
            ),
            (
                "shop",
                &none,
                spec(&["nginx:1", "docker.io/library/postgres:16"], &[], None),
                Some(("database", 1)),
            ),
            (
                "shop",
                &none,
                spec(&["nginx:1"], &["postgres:16"], None),
                Some(("database", 1)),
            ),
            (
                "shop",
                &fe,
                spec(&["nginx:1"], &[], None),
                Some(("frontend", 2)),
            ),
            ("shop", &none, spec(&["nginx:1"], &[], None), None),
            ("shop", &spoof, spec(&["nginx:1"], &[], None), None),
        ];
        for (ns, labels, spec, want) in cases {
            let got = derive(
                &c,
                &PodFacts {
                    namespace: ns,
                    labels,
                    spec: &spec,
                    injecting: None,
                },
            )
            .map(|d| (d.role, d.rule));
            assert_eq!(got, want, "{ns} {labels:?} {:?}", spec.containers);
        }
    }

    #[test]
    fn label_plan_truth_table() {
        let c = cfg();
        let none = Labels::new();
        let db = spec(&["postgres:16"], &[], None);
        let web = spec(&["nginx:1"], &[], None);
        let facts = |spec| PodFacts {
            namespace: "shop",
            labels: &none,
            spec,
            injecting: None,
        };
        let set = |role, replacing: Option<&str>| LabelPlan::Set {
            role,
            rule: 1,
            replacing: replacing.map(str::to_owned),
        };
        let cases = [
            (&db, None, set("database", None)),
            (&db, Some("database"), LabelPlan::Keep),
            (&db, Some("admin"), set("database", Some("admin"))),
            (&db, Some(""), set("database", Some(""))),
            (&web, None, LabelPlan::Keep),
            (
                &web,
                Some("database"),
                LabelPlan::Remove {
                    value: "database".into(),
                },
            ),
        ];
        for (spec, current, want) in cases {
            assert_eq!(
                plan_label(&c, &facts(spec), current),
                want,
                "{current:?} {:?}",
                spec.containers
            );
        }
        let key = "palisade.io/role";
        assert_eq!(
            set("database", None).describe(key).as_deref(),
            Some("set label palisade.io/role=database")
        );
        assert_eq!(
            set("database", Some("admin")).describe(key).as_deref(),
            Some("set label palisade.io/role=database (replacing admin)")
        );
        assert_eq!(
            LabelPlan::Remove { value: "x".into() }
                .describe(key)
                .as_deref(),
            Some("remove label palisade.io/role=x (no role rule matches)")
        );
        assert_eq!(LabelPlan::Keep.describe(key), None);
    }

    #[test]
    fn service_account_defaults() {
        let l = Labels::new();
        let s = spec(&[], &[], None);
        assert_eq!(
            PodFacts {
                namespace: "x",
                labels: &l,
                spec: &s,
                injecting: None,
            }
            .service_account(),
            "default"
        );
        let s = PodSpec {
            service_account: Some("legacy".into()),
            ..Default::default()
        };
        assert_eq!(
            PodFacts {
                namespace: "x",
                labels: &l,
                spec: &s,
                injecting: None,
            }
            .service_account(),
            "legacy"
        );
    }
}
