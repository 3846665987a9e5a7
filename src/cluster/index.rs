//! The per-namespace summary both cluster views keep: namespace labels and
//! phase, and for each NetworkPolicy only its name and two facts. A
//! decision reads one namespace's entry, so its cost does not grow with the
//! cluster, and 100,000 policies fit in a few megabytes.
//!
//! The cluster-wide policies are kept once, read ([`ClusterPolicies`]),
//! behind an `Arc` every view shares: there are few of them, and a
//! namespace's default-deny from them is a walk over their rules with the
//! namespace's labels, done when a decision asks.

use std::collections::HashMap;
use std::sync::Arc;

use super::{ClusterScope, NamespaceSummary, NamespaceView, ViewStats};
use crate::cluster_policy::{ClusterKind, ClusterPolicies, ClusterPolicy};
use crate::netpol::{Directions, PolicyFacts};
use crate::posture::NamespaceInfo;

/// What is kept of one policy: default-deny and allow-all directions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Facts {
    default_deny: Directions,
    allow_all: Directions,
}

/// Namespaces and policy facts, indexed by namespace.
#[derive(Debug, Default)]
pub struct Index {
    namespaces: HashMap<Box<str>, NamespaceInfo>,
    policies: HashMap<Box<str>, HashMap<Box<str>, Facts>>,
    policy_count: usize,
    cluster: Arc<ClusterPolicies>,
}

impl Index {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a namespace.
    pub fn put_namespace(&mut self, name: &str, info: NamespaceInfo) {
        self.namespaces.insert(name.into(), info);
    }

    /// Forgets a namespace (its policies go with their own delete events).
    pub fn remove_namespace(&mut self, name: &str) {
        self.namespaces.remove(name);
    }

    /// Adds or replaces a policy's facts.
    pub fn put_policy(&mut self, namespace: &str, facts: &PolicyFacts) {
        let ns = self.policies.entry(namespace.into()).or_default();
        let f = Facts {
            default_deny: facts.default_deny,
            allow_all: facts.allow_all,
        };
        if ns.insert(facts.name.as_str().into(), f).is_none() {
            self.policy_count += 1;
        }
    }

    /// Forgets a policy.
    pub fn remove_policy(&mut self, namespace: &str, name: &str) {
        let Some(ns) = self.policies.get_mut(namespace) else {
            return;
        };
        if ns.remove(name).is_some() {
            self.policy_count -= 1;
        }
        if ns.is_empty() {
            self.policies.remove(namespace);
        }
    }

    /// Replaces everything (a watch restarted and re-listed).
    pub fn replace_namespaces(&mut self, all: impl IntoIterator<Item = (String, NamespaceInfo)>) {
        self.namespaces = all
            .into_iter()
            .map(|(k, v)| (k.into_boxed_str(), v))
            .collect();
    }

    /// Replaces every policy (a watch restarted and re-listed).
    pub fn replace_policies(&mut self, all: impl IntoIterator<Item = (String, PolicyFacts)>) {
        self.policies.clear();
        self.policy_count = 0;
        for (ns, f) in all {
            self.put_policy(&ns, &f);
        }
    }

    /// Replaces the policies of one namespace (a fresh read).
    pub fn replace_namespace_policies(&mut self, namespace: &str, all: &[PolicyFacts]) {
        if let Some(old) = self.policies.remove(namespace) {
            self.policy_count -= old.len();
        }
        for f in all {
            self.put_policy(namespace, f);
        }
    }

    /// Adds or replaces a cluster-wide policy.
    pub fn put_cluster_policy(&mut self, p: ClusterPolicy) {
        Arc::make_mut(&mut self.cluster).put(p);
    }

    /// Forgets a cluster-wide policy.
    pub fn remove_cluster_policy(&mut self, kind: ClusterKind, name: &str) {
        if self.cluster.get(kind, name).is_some() {
            Arc::make_mut(&mut self.cluster).remove(kind, name);
        }
    }

    /// Replaces every cluster-wide policy of `kind` (a watch re-listed, or
    /// the cluster stopped serving the kind: `all` is empty).
    pub fn replace_cluster_policies(
        &mut self,
        kind: ClusterKind,
        all: impl IntoIterator<Item = ClusterPolicy>,
    ) {
        let mut set: ClusterPolicies = (*self.cluster).clone();
        let stale: Vec<String> = set
            .all()
            .iter()
            .filter(|p| p.kind == kind)
            .map(|p| p.name.clone())
            .collect();
        for name in stale {
            set.remove(kind, &name);
        }
        for p in all {
            set.put(p);
        }
        self.cluster = Arc::new(set);
    }

    /// The cluster-wide policies.
    pub fn cluster_policies(&self) -> Arc<ClusterPolicies> {
        Arc::clone(&self.cluster)
    }

    /// Every namespace with what its NetworkPolicies deny by default, and
    /// the cluster-wide policies.
    pub fn scope(&self) -> ClusterScope {
        let mut namespaces: Vec<NamespaceSummary> = self
            .namespaces
            .iter()
            .map(|(name, info)| NamespaceSummary {
                name: name.to_string(),
                info: info.clone(),
                default_deny: self
                    .policies
                    .get(name)
                    .into_iter()
                    .flatten()
                    .fold(Directions::NONE, |acc, (_, f)| acc.union(f.default_deny)),
            })
            .collect();
        namespaces.sort_by(|a, b| a.name.cmp(&b.name));
        ClusterScope {
            namespaces,
            cluster_policies: self.cluster_policies(),
        }
    }

    /// One namespace, as decisions see it.
    pub fn view(&self, name: &str) -> NamespaceView {
        let mut policies: Vec<PolicyFacts> = self
            .policies
            .get(name)
            .into_iter()
            .flatten()
            .filter(|(_, f)| !(f.default_deny.is_empty() && f.allow_all.is_empty()))
            .map(|(n, f)| PolicyFacts {
                name: n.to_string(),
                default_deny: f.default_deny,
                allow_all: f.allow_all,
            })
            .collect();
        // Hash order would make messages that list policies unstable.
        policies.sort_by(|a, b| a.name.cmp(&b.name));
        NamespaceView {
            name: name.to_owned(),
            namespace: self.namespaces.get(name).cloned(),
            policies,
            cluster_policies: self.cluster_policies(),
        }
    }

    /// Every namespace name, sorted.
    pub fn namespace_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.namespaces.keys().map(|k| k.to_string()).collect();
        v.sort();
        v
    }

    /// What the index holds.
    pub fn stats(&self) -> ViewStats {
        ViewStats {
            namespaces: self.namespaces.len(),
            policies: self.policy_count,
            cluster_policies: self.cluster.len(),
            preview: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netpol::Direction;

    fn facts(name: &str, dd: Directions, aa: Directions) -> PolicyFacts {
        PolicyFacts {
            name: name.into(),
            default_deny: dd,
            allow_all: aa,
        }
    }

    #[test]
    fn counts_follow_puts_and_removes() {
        let mut i = Index::new();
        i.put_policy("a", &facts("deny", Directions::BOTH, Directions::NONE));
        i.put_policy("a", &facts("plain", Directions::NONE, Directions::NONE));
        i.put_policy("a", &facts("plain", Directions::NONE, Directions::NONE));
        i.put_policy(
            "b",
            &facts(
                "open",
                Directions::NONE,
                Directions::only(Direction::Ingress),
            ),
        );
        assert_eq!(i.stats().policies, 3);
        let v = i.view("a");
        assert_eq!(v.policies.len(), 1, "plain policies are counted, not shown");
        assert_eq!(v.policies[0].name, "deny");
        i.remove_policy("a", "deny");
        i.remove_policy("a", "deny");
        i.remove_policy("zzz", "x");
        assert_eq!(i.stats().policies, 2);
        i.replace_namespace_policies("b", &[]);
        assert_eq!(i.stats().policies, 1);
        i.replace_policies(vec![(
            "c".to_string(),
            facts("x", Directions::BOTH, Directions::NONE),
        )]);
        assert_eq!(i.stats().policies, 1);
        assert!(i.view("a").policies.is_empty());
    }
}
