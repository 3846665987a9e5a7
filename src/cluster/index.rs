//! The per-namespace summary both cluster views keep: namespace labels,
//! phase and creation time, and for each NetworkPolicy only its name and two facts. A
//! decision reads one namespace's entry, so its cost does not grow with the
//! cluster, and 100,000 policies fit in a few megabytes.
//!
//! The cluster-wide policies are kept once, read ([`ClusterPolicies`]),
//! behind an `Arc` every view shares: there are few of them, and a
//! namespace's default-deny from them is a walk over their rules with the
//! namespace's labels, done when a decision asks.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use super::{ClusterScope, NamespaceSummary, NamespaceView, ViewStats};
use crate::cluster_policy::{ClusterKind, ClusterPolicies, ClusterPolicy};
use crate::netpol::{Directions, PolicyFacts};
use crate::posture::NamespaceInfo;
use crate::selector::Labels;

/// What is kept of one policy with facts: default-deny and allow-all
/// directions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Facts {
    default_deny: Directions,
    allow_all: Directions,
}

/// One namespace's policies. Most policies carry no fact the rules read;
/// they are kept as a hash of their name, enough to count them and to
/// tell an update from a create, so that 100,000 policies cost 8 bytes
/// each rather than a name and a map entry.
#[derive(Debug, Default)]
struct Policies {
    /// Policies with facts, by name.
    with_facts: Vec<(Box<str>, Facts)>,
    /// Hashes of the other policies' names, sorted.
    plain: Vec<u64>,
}

impl Policies {
    fn len(&self) -> usize {
        self.with_facts.len() + self.plain.len()
    }

    /// Removes `name`; was it there?
    fn remove(&mut self, name: &str) -> bool {
        if let Some(i) = self.with_facts.iter().position(|(n, _)| &**n == name) {
            self.with_facts.swap_remove(i);
            return true;
        }
        match self.plain.binary_search(&name_hash(name)) {
            Ok(i) => {
                self.plain.remove(i);
                true
            }
            Err(_) => false,
        }
    }

    /// Adds or replaces `name`; was it new?
    fn put(&mut self, name: &str, facts: Facts) -> bool {
        let existed = self.remove(name);
        if facts == Facts::default() {
            let h = name_hash(name);
            if let Err(i) = self.plain.binary_search(&h) {
                self.plain.insert(i, h);
            }
        } else {
            self.with_facts.push((name.into(), facts));
        }
        !existed
    }
}

/// A policy name's hash. Names are unique within a namespace; two names
/// of one namespace sharing a 64-bit hash would only miscount them.
fn name_hash(name: &str) -> u64 {
    let mut h = DefaultHasher::new();
    name.hash(&mut h);
    h.finish()
}

/// A namespace's labels and phase as the index keeps them: label keys
/// shared across namespaces (most namespaces carry the same few keys),
/// values in one boxed slice rather than a tree of nodes.
#[derive(Debug)]
struct StoredNamespace {
    labels: Box<[(std::sync::Arc<str>, Box<str>)]>,
    terminating: bool,
    created: Option<i64>,
}

impl StoredNamespace {
    /// The labels and phase as decisions read them.
    fn info(&self) -> NamespaceInfo {
        NamespaceInfo {
            labels: self
                .labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Labels>(),
            terminating: self.terminating,
            created: self.created,
        }
    }
}

/// Namespaces and policy facts, indexed by namespace.
#[derive(Debug, Default)]
pub struct Index {
    namespaces: HashMap<Box<str>, StoredNamespace>,
    /// Label keys in use, shared by every namespace that has them.
    keys: HashMap<Box<str>, std::sync::Arc<str>>,
    policies: HashMap<Box<str>, Policies>,
    policy_count: usize,
    cluster: Arc<ClusterPolicies>,
}

impl Index {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    fn store(&mut self, info: NamespaceInfo) -> StoredNamespace {
        let labels = info
            .labels
            .into_iter()
            .map(|(k, v)| {
                let key = match self.keys.get(k.as_str()) {
                    Some(shared) => std::sync::Arc::clone(shared),
                    None => {
                        let shared: std::sync::Arc<str> = k.as_str().into();
                        self.keys
                            .insert(k.into_boxed_str(), std::sync::Arc::clone(&shared));
                        shared
                    }
                };
                (key, v.into_boxed_str())
            })
            .collect();
        StoredNamespace {
            labels,
            terminating: info.terminating,
            created: info.created,
        }
    }

    /// Label keys no namespace holds any more are let go.
    fn drop_unused_keys(&mut self) {
        self.keys
            .retain(|_, shared| std::sync::Arc::strong_count(shared) > 1);
    }

    /// Adds or replaces a namespace.
    pub fn put_namespace(&mut self, name: &str, info: NamespaceInfo) {
        let stored = self.store(info);
        self.namespaces.insert(name.into(), stored);
    }

    /// Forgets a namespace (its policies go with their own delete events).
    pub fn remove_namespace(&mut self, name: &str) {
        if self.namespaces.remove(name).is_some() {
            self.drop_unused_keys();
        }
    }

    /// Adds or replaces a policy's facts.
    pub fn put_policy(&mut self, namespace: &str, facts: &PolicyFacts) {
        let f = Facts {
            default_deny: facts.default_deny,
            allow_all: facts.allow_all,
        };
        let ns = match self.policies.get_mut(namespace) {
            Some(ns) => ns,
            None => self.policies.entry(namespace.into()).or_default(),
        };
        if ns.put(&facts.name, f) {
            self.policy_count += 1;
        }
    }

    /// Forgets a policy.
    pub fn remove_policy(&mut self, namespace: &str, name: &str) {
        let Some(ns) = self.policies.get_mut(namespace) else {
            return;
        };
        if ns.remove(name) {
            self.policy_count -= 1;
        }
        if ns.len() == 0 {
            self.policies.remove(namespace);
        }
    }

    /// Replaces everything (a watch restarted and re-listed).
    pub fn replace_namespaces(&mut self, all: impl IntoIterator<Item = (String, NamespaceInfo)>) {
        self.namespaces.clear();
        for (name, info) in all {
            let stored = self.store(info);
            self.namespaces.insert(name.into_boxed_str(), stored);
        }
        self.namespaces.shrink_to_fit();
        self.drop_unused_keys();
    }

    /// Replaces every policy (a watch restarted and re-listed).
    pub fn replace_policies(&mut self, all: impl IntoIterator<Item = (String, PolicyFacts)>) {
        self.policies.clear();
        self.policy_count = 0;
        for (ns, f) in all {
            self.put_policy(&ns, &f);
        }
        for ns in self.policies.values_mut() {
            ns.plain.shrink_to_fit();
            ns.with_facts.shrink_to_fit();
        }
        self.policies.shrink_to_fit();
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
            .map(|(name, stored)| NamespaceSummary {
                name: name.to_string(),
                info: stored.info(),
                default_deny: self
                    .policies
                    .get(name)
                    .into_iter()
                    .flat_map(|ns| &ns.with_facts)
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
            .flat_map(|ns| &ns.with_facts)
            .map(|(n, f)| PolicyFacts {
                name: n.to_string(),
                default_deny: f.default_deny,
                allow_all: f.allow_all,
            })
            .collect();
        // Insertion order would make messages that list policies unstable.
        policies.sort_by(|a, b| a.name.cmp(&b.name));
        NamespaceView {
            name: name.to_owned(),
            namespace: self.namespaces.get(name).map(StoredNamespace::info),
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

    #[test]
    fn an_update_that_gains_or_loses_facts_is_still_one_policy() {
        let mut i = Index::new();
        i.put_policy("a", &facts("p", Directions::NONE, Directions::NONE));
        i.put_policy("a", &facts("p", Directions::BOTH, Directions::NONE));
        assert_eq!(i.stats().policies, 1);
        assert_eq!(i.view("a").policies.len(), 1);
        i.put_policy("a", &facts("p", Directions::NONE, Directions::NONE));
        assert_eq!(i.stats().policies, 1);
        assert!(i.view("a").policies.is_empty());
        i.remove_policy("a", "p");
        assert_eq!(i.stats().policies, 0);
    }

    #[test]
    fn namespaces_come_back_as_they_were_put_and_unused_keys_go() {
        let mut i = Index::new();
        let info = |pairs: &[(&str, &str)], terminating| NamespaceInfo {
            labels: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            terminating,
            created: Some(1_700_000_000),
        };
        let shop = info(&[("team", "x"), ("environment", "prod")], true);
        i.put_namespace("shop", shop.clone());
        i.put_namespace("other", info(&[("team", "y"), ("rare", "1")], false));
        assert_eq!(i.view("shop").namespace, Some(shop));
        assert_eq!(i.keys.len(), 3);
        i.remove_namespace("other");
        assert_eq!(i.keys.len(), 2, "a key no namespace has is let go");
        assert!(i.view("other").namespace.is_none());
    }
}
