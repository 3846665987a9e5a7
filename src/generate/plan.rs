//! Which namespace gets which generated policies (pure): the config, the
//! namespace as the cluster view holds it and whether it is new, in; the
//! policies to create, or why none, out. The leader's writer, the review
//! that waits for generation, `check` and `audit --output fixes` all ask
//! [`plan`].

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicySpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use crate::cluster::NamespaceView;
use crate::config::{Baseline, Config, ObjectName};
use crate::mode::Mode;
use crate::netpol::{Direction, Directions};
use crate::posture::{self, Posture};

/// The label every generated policy carries.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Its value.
pub const MANAGED_BY: &str = "palisade";

/// How long before palisade started a namespace may have been created and
/// still count as new: a namespace created while replicas were being
/// replaced (an upgrade) must not be missed, and clocks differ a little.
pub const NEW_GRACE_SECONDS: i64 = 300;

/// Whether generation treats a namespace as new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Age {
    /// Created since palisade started (or not created yet: a manifest).
    New,
    /// Older: generated only with `generate.existing: true`.
    Existing,
}

/// From when namespaces count as new, for one running palisade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scope {
    since: i64,
}

impl Scope {
    /// The scope of a palisade that started at `unix_seconds`.
    pub fn started_at(unix_seconds: i64) -> Self {
        Scope {
            since: unix_seconds.saturating_sub(NEW_GRACE_SECONDS),
        }
    }

    /// The age of a namespace created at `created` (Unix seconds; `None`:
    /// not created yet).
    pub fn age(&self, created: Option<i64>) -> Age {
        match created {
            Some(c) if c < self.since => Age::Existing,
            _ => Age::New,
        }
    }

    /// The age of the namespace of `view`: new when the view has not
    /// seen it yet (the API server admits nothing into a namespace that
    /// does not exist, so one the watch has not shown is a moment old).
    pub fn age_of(&self, view: &NamespaceView) -> Age {
        view.namespace
            .as_ref()
            .map_or(Age::New, |info| self.age(info.created))
    }
}

/// Why a namespace gets nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Generation is off (`generate.enabled: false`).
    Off,
    /// An exempt namespace: nothing is checked or changed there.
    Exempt,
    /// The view has not seen the Namespace object.
    Unseen,
    /// Being deleted: nothing new can be created in it.
    Terminating,
    /// Labelled `palisade.io/generate=disabled`.
    OptedOut,
    /// Older than palisade's start, and `generate.existing` is false.
    Existing,
    /// It already denies every required direction by default.
    Fenced,
}

impl Skip {
    /// For logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Skip::Off => "off",
            Skip::Exempt => "exempt",
            Skip::Unseen => "unseen",
            Skip::Terminating => "terminating",
            Skip::OptedOut => "opted-out",
            Skip::Existing => "existing",
            Skip::Fenced => "fenced",
        }
    }
}

/// The policies one namespace gets.
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    /// The namespace.
    pub namespace: String,
    /// The required directions it lacks, which the default-deny covers.
    pub missing: Directions,
    /// The namespace's mode: only `enforce` writes; `warn` and `dry-run`
    /// log and count what would have been created.
    pub mode: Mode,
    /// In the order to create them: the baseline allowances first (a
    /// policy with rules isolates the pods it selects, so it never opens
    /// anything), then the default-deny, whose appearance is what
    /// reviews wait for.
    pub policies: Vec<NetworkPolicy>,
}

impl Generated {
    /// Are these to be created, or only logged and counted?
    pub fn writes(&self) -> bool {
        self.mode == Mode::Enforce
    }

    /// The policies' names, in order.
    pub fn names(&self) -> Vec<&str> {
        self.policies
            .iter()
            .filter_map(|p| p.metadata.name.as_deref())
            .collect()
    }
}

impl fmt::Display for Generated {
    /// `NetworkPolicies shop/palisade-baseline, shop/palisade-default-deny
    /// (default-deny for Ingress and Egress)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self
            .names()
            .iter()
            .map(|n| format!("{}/{n}", self.namespace))
            .collect();
        let noun = if names.len() == 1 {
            "NetworkPolicy"
        } else {
            "NetworkPolicies"
        };
        write!(
            f,
            "{noun} {} (default-deny for {})",
            names.join(", "),
            self.missing
        )
    }
}

/// What generation does for one namespace.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Nothing, for this reason.
    Skip(Skip),
    /// These policies.
    Generate(Generated),
}

/// What generation gives the namespace of `view`, whose age is `age`.
pub fn plan(cfg: &Config, view: &NamespaceView, age: Age) -> Plan {
    let g = &cfg.generate;
    if !g.enabled {
        return Plan::Skip(Skip::Off);
    }
    if cfg.is_exempt(&view.name) {
        return Plan::Skip(Skip::Exempt);
    }
    let Some(info) = &view.namespace else {
        return Plan::Skip(Skip::Unseen);
    };
    if info.terminating {
        return Plan::Skip(Skip::Terminating);
    }
    if posture::opted_out_of_generation(&info.labels) {
        return Plan::Skip(Skip::OptedOut);
    }
    if age == Age::Existing && !g.existing {
        return Plan::Skip(Skip::Existing);
    }
    // A dev namespace is no exception: dev permits allow-all policies,
    // not the absence of a default-deny.
    let missing = view.missing_default_deny(cfg);
    if missing.is_empty() {
        return Plan::Skip(Skip::Fenced);
    }
    let ns = view.name.as_str();
    let policies = g
        .baseline
        .as_ref()
        .and_then(|b| baseline(b, ns, missing))
        .into_iter()
        .chain([default_deny(&g.name, ns, missing)])
        .collect();
    Plan::Generate(Generated {
        namespace: ns.to_owned(),
        missing,
        mode: Posture::of(cfg, ns, &info.labels).mode,
        policies,
    })
}

fn metadata(name: &ObjectName, namespace: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(namespace.to_owned()),
        labels: Some(BTreeMap::from([(
            MANAGED_BY_LABEL.to_owned(),
            MANAGED_BY.to_owned(),
        )])),
        ..ObjectMeta::default()
    }
}

fn types(directions: Directions) -> Option<Vec<String>> {
    Some(directions.iter().map(|d| d.as_str().to_owned()).collect())
}

/// The default-deny for exactly `missing`: every pod, no rules.
fn default_deny(name: &ObjectName, namespace: &str, missing: Directions) -> NetworkPolicy {
    NetworkPolicy {
        metadata: metadata(name, namespace),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector::default()),
            policy_types: types(missing),
            ingress: None,
            egress: None,
        }),
    }
}

/// The allowances of the directions being fenced; none when the baseline
/// has no rule for any of them (a direction the namespace fences itself
/// keeps its own allowances).
fn baseline(b: &Baseline, namespace: &str, missing: Directions) -> Option<NetworkPolicy> {
    let mut with = Directions::NONE;
    let ingress = (missing.contains(Direction::Ingress) && !b.ingress.is_empty()).then(|| {
        with.insert(Direction::Ingress);
        b.ingress.clone()
    });
    let egress = (missing.contains(Direction::Egress) && !b.egress.is_empty()).then(|| {
        with.insert(Direction::Egress);
        b.egress.clone()
    });
    (!with.is_empty()).then(|| NetworkPolicy {
        metadata: metadata(&b.name, namespace),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector::default()),
            policy_types: types(with),
            ingress,
            egress,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netpol::{Policy, PolicyFacts};
    use crate::posture::NamespaceInfo;
    use crate::selector::Labels;

    fn on() -> Config {
        let mut c = Config::embedded().unwrap();
        c.generate.enabled = true;
        c
    }

    fn view(name: &str, labels: &[(&str, &str)], policies: &[Directions]) -> NamespaceView {
        NamespaceView {
            name: name.into(),
            namespace: Some(NamespaceInfo {
                labels: labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<Labels>(),
                terminating: false,
                created: Some(1_000_000),
            }),
            policies: policies
                .iter()
                .enumerate()
                .map(|(i, d)| PolicyFacts {
                    name: format!("own-{i}"),
                    default_deny: *d,
                    allow_all: Directions::NONE,
                })
                .collect(),
            ..Default::default()
        }
    }

    /// (names, missing, mode) of a plan, or why none.
    fn summary(p: &Plan) -> Result<(Vec<String>, Directions, Mode), Skip> {
        match p {
            Plan::Skip(s) => Err(*s),
            Plan::Generate(g) => Ok((
                g.names().iter().map(|n| n.to_string()).collect(),
                g.missing,
                g.mode,
            )),
        }
    }

    const BOTH: &[&str] = &["palisade-baseline", "palisade-default-deny"];
    const DD: &[&str] = &["palisade-default-deny"];

    /// The truth table of generation.
    #[test]
    fn who_gets_what() {
        let ing = Directions::only(Direction::Ingress);
        let egr = Directions::only(Direction::Egress);
        let all = Directions::BOTH;
        let terminating = {
            let mut v = view("shop", &[], &[]);
            if let Some(i) = v.namespace.as_mut() {
                i.terminating = true;
            }
            v
        };
        let generates = |names: &[&str], missing, mode| {
            Ok((names.iter().map(|n| n.to_string()).collect(), missing, mode))
        };
        let mut off = on();
        off.generate.enabled = false;
        let mut existing_too = on();
        existing_too.generate.existing = true;
        let mut no_baseline = on();
        no_baseline.generate.baseline = None;
        let new = Age::New;
        let old = Age::Existing;
        type Row<'a> = (
            &'a str,
            &'a Config,
            NamespaceView,
            Age,
            Result<(Vec<String>, Directions, Mode), Skip>,
        );
        let c = on();
        let cases: Vec<Row> = vec![
            (
                "a new, unfenced namespace: both policies",
                &c,
                view("shop", &[], &[]),
                new,
                generates(BOTH, all, Mode::Enforce),
            ),
            (
                "generation off",
                &off,
                view("shop", &[], &[]),
                new,
                Err(Skip::Off),
            ),
            (
                "exempt",
                &c,
                view("kube-system", &[], &[]),
                new,
                Err(Skip::Exempt),
            ),
            (
                "not seen by the view yet",
                &c,
                NamespaceView::unknown("shop"),
                new,
                Err(Skip::Unseen),
            ),
            ("terminating", &c, terminating, new, Err(Skip::Terminating)),
            (
                "opted out",
                &c,
                view("shop", &[("palisade.io/generate", "disabled")], &[]),
                new,
                Err(Skip::OptedOut),
            ),
            (
                "any other value of the label is no opt-out",
                &c,
                view("shop", &[("palisade.io/generate", "off")], &[]),
                new,
                generates(BOTH, all, Mode::Enforce),
            ),
            (
                "existing, existing: false",
                &c,
                view("shop", &[], &[]),
                old,
                Err(Skip::Existing),
            ),
            (
                "existing, existing: true",
                &existing_too,
                view("shop", &[], &[]),
                old,
                generates(BOTH, all, Mode::Enforce),
            ),
            (
                "already fenced",
                &c,
                view("shop", &[], &[all]),
                new,
                Err(Skip::Fenced),
            ),
            (
                "fenced by two policies",
                &c,
                view("shop", &[], &[ing, egr]),
                new,
                Err(Skip::Fenced),
            ),
            (
                "fenced for egress only: ingress, no baseline (its rules are egress)",
                &c,
                view("shop", &[], &[egr]),
                new,
                generates(DD, ing, Mode::Enforce),
            ),
            (
                "fenced for ingress only: egress and the DNS baseline",
                &c,
                view("shop", &[], &[ing]),
                new,
                generates(BOTH, egr, Mode::Enforce),
            ),
            (
                "no baseline configured",
                &no_baseline,
                view("shop", &[], &[]),
                new,
                generates(DD, all, Mode::Enforce),
            ),
            (
                "dev is no exception",
                &c,
                view("shop", &[("environment", "dev")], &[]),
                new,
                generates(BOTH, all, Mode::Enforce),
            ),
            (
                "warn: planned, not written",
                &c,
                view("shop", &[("palisade.io/mode", "warn")], &[]),
                new,
                generates(BOTH, all, Mode::Warn),
            ),
            (
                "dry-run: planned, not written",
                &c,
                view("shop", &[("palisade.io/mode", "dry-run")], &[]),
                new,
                generates(BOTH, all, Mode::DryRun),
            ),
        ];
        for (what, cfg, v, age, want) in cases {
            assert_eq!(summary(&plan(cfg, &v, age)), want, "{what}");
        }
        let mut warn = on();
        warn.mode = Mode::Warn;
        let Plan::Generate(g) = plan(&warn, &view("shop", &[], &[]), new) else {
            panic!("planned");
        };
        assert!(
            !g.writes(),
            "the config's mode governs unlabelled namespaces"
        );
        let mut only_ingress = on();
        only_ingress.require_default_deny = ing;
        assert_eq!(
            summary(&plan(&only_ingress, &view("shop", &[], &[]), new)),
            generates(DD, ing, Mode::Enforce),
            "only the required directions"
        );
        only_ingress.require_default_deny = Directions::NONE;
        assert_eq!(
            summary(&plan(&only_ingress, &view("shop", &[], &[]), new)),
            Err(Skip::Fenced),
            "nothing required, nothing missing"
        );
    }

    /// A cluster-wide baseline that denies a direction to every namespace
    /// fences it as a NetworkPolicy would: generation writes only what is
    /// left, as `require-default-deny` asks for only that.
    #[test]
    fn a_cluster_wide_baseline_counts() {
        use crate::cluster_policy::{ClusterKind, ClusterPolicies, read};
        let banp = |rules: serde_json::Value| {
            let mut v = serde_json::json!({
                "apiVersion": "policy.networking.k8s.io/v1alpha1",
                "kind": "BaselineAdminNetworkPolicy",
                "metadata": {"name": "default"},
                "spec": {"subject": {"namespaces": {}}}
            });
            for (k, r) in rules.as_object().into_iter().flatten() {
                v["spec"][k] = r.clone();
            }
            let p =
                read::from_value(ClusterKind::BaselineAdminNetworkPolicy, "v1alpha1", &v).unwrap();
            std::sync::Arc::new(ClusterPolicies::new([p]))
        };
        let under = |set| NamespaceView {
            cluster_policies: set,
            ..view("shop", &[], &[])
        };
        let deny_egress = banp(serde_json::json!({"egress": [{"action": "Deny",
            "to": [{"namespaces": {}}, {"networks": ["0.0.0.0/0", "::/0"]}]}]}));
        let deny_ingress = banp(serde_json::json!({"ingress": [{"action": "Deny",
            "from": [{"namespaces": {}}]}]}));
        let mut count_ingress = on();
        count_ingress.cluster_policies.count_ingress_deny = true;
        let ing = Directions::only(Direction::Ingress);
        let egr = Directions::only(Direction::Egress);
        let dd = |p: &Plan| summary(p).map(|(n, m, _)| (n, m));
        let only_dd = vec!["palisade-default-deny".to_owned()];
        assert_eq!(
            dd(&plan(&on(), &under(deny_egress.clone()), Age::New)),
            Ok((only_dd.clone(), ing)),
            "egress denied cluster-wide: only the ingress default-deny, and no DNS baseline (egress is not palisade's to open)"
        );
        assert_eq!(
            dd(&plan(&on(), &under(deny_ingress.clone()), Age::New)),
            Ok((
                vec![
                    "palisade-baseline".to_owned(),
                    "palisade-default-deny".to_owned()
                ],
                Directions::BOTH
            )),
            "a cluster-wide ingress deny does not count by default (it cannot deny outside traffic)"
        );
        assert_eq!(
            dd(&plan(&count_ingress, &under(deny_ingress), Age::New)),
            Ok((
                vec![
                    "palisade-baseline".to_owned(),
                    "palisade-default-deny".to_owned()
                ],
                egr
            )),
            "countIngressDeny: true counts it"
        );
    }

    #[test]
    fn the_policies_are_plain_and_labelled() {
        let Plan::Generate(g) = plan(&on(), &view("shop", &[], &[]), Age::New) else {
            panic!("planned");
        };
        let got = serde_json::to_value(&g.policies).unwrap();
        let labels = serde_json::json!({"app.kubernetes.io/managed-by": "palisade"});
        assert_eq!(
            got,
            serde_json::json!([
                {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                 "metadata": {"name": "palisade-baseline", "namespace": "shop", "labels": labels},
                 "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{
                     "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                             "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                     "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]}},
                {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                 "metadata": {"name": "palisade-default-deny", "namespace": "shop", "labels": labels},
                 "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}},
            ])
        );
        assert_eq!(
            g.to_string(),
            "NetworkPolicies shop/palisade-baseline, shop/palisade-default-deny (default-deny for Ingress and Egress)"
        );
        // What the plan creates fences the namespace, by palisade's own reading.
        let facts: Vec<PolicyFacts> = g
            .policies
            .iter()
            .map(|p| Policy::from_k8s(p, "shop").unwrap().facts())
            .collect();
        let after = NamespaceView {
            policies: facts,
            ..view("shop", &[], &[])
        };
        assert!(after.missing_default_deny(&on()).is_empty());
        assert_eq!(
            plan(&on(), &after, Age::New),
            Plan::Skip(Skip::Fenced),
            "generating is done once"
        );
    }

    #[test]
    fn new_means_created_since_palisade_started_less_a_grace() {
        let s = Scope::started_at(10_000);
        assert_eq!(s.age(Some(10_500)), Age::New);
        assert_eq!(s.age(Some(10_000 - NEW_GRACE_SECONDS)), Age::New);
        assert_eq!(s.age(Some(10_000 - NEW_GRACE_SECONDS - 1)), Age::Existing);
        assert_eq!(s.age(None), Age::New, "a manifest not created yet");
        assert_eq!(s.age_of(&NamespaceView::unknown("x")), Age::New);
        assert_eq!(s.age_of(&view("x", &[], &[])), Age::New);
        assert_eq!(
            Scope::started_at(2_000_000).age_of(&view("x", &[], &[])),
            Age::Existing
        );
    }
}
