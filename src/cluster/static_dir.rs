//! A cluster made of manifests: `--state DIR`, `check`, tests and the demo.
//!
//! Files are read one at a time and folded into the same per-namespace
//! [`Index`] the watch cache keeps, so a state of 100,000 policies never
//! sits in memory as parsed documents. It never changes under a running
//! server.

use std::path::Path;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use thiserror::Error;

use super::index::Index;
use super::{ClusterError, ClusterScope, ClusterView, NamespaceView, ViewStats};
use crate::cluster_policy::{self, ClusterKind, ClusterPolicy};
use crate::manifest::{self, Document, Entry, Manifests, Skipped};
use crate::netpol::Policy;
use crate::posture::NamespaceInfo;

/// The namespace a namespaced manifest lands in when it names none, as
/// with `kubectl apply` without `-n`.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Why a state directory cannot be used.
#[derive(Debug, Error)]
pub enum StateError {
    /// A path cannot be read.
    #[error(transparent)]
    Read(#[from] manifest::ReadError),
    /// A Namespace or NetworkPolicy document that is not a valid one.
    #[error(transparent)]
    Document(#[from] manifest::DocumentError),
}

/// A cluster state read from manifests.
#[derive(Debug, Default)]
pub struct StaticCluster {
    index: Index,
    model: Option<crate::reach::Model>,
}

impl StaticCluster {
    /// An empty cluster.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads every manifest under `paths`, one object at a time (objects
    /// of kinds the view does not keep are passed over unparsed where the
    /// format allows); returns the cluster and the files or documents that
    /// were not manifests.
    pub fn load<P: AsRef<Path>>(paths: &[P]) -> Result<(Self, Vec<Skipped>), StateError> {
        let mut c = StaticCluster::new();
        let mut skipped = Vec::new();
        c.stream(paths, &mut |s| skipped.push(s))?;
        Ok((c, skipped))
    }

    /// Applies every manifest under `paths`, one object at a time, handing
    /// each file or document that is not a manifest to `skipped` as it is
    /// met.
    pub fn stream<P: AsRef<Path>>(
        &mut self,
        paths: &[P],
        skipped: &mut dyn FnMut(Skipped),
    ) -> Result<(), StateError> {
        manifest::stream_paths(paths, &Self::keeps, &mut |e| match e {
            Entry::Document(d) => self.apply(&d),
            Entry::Skipped(s) => {
                skipped(s);
                Ok(())
            }
        })
    }

    /// The kinds a cluster view keeps: Namespaces, NetworkPolicies and the
    /// cluster-wide policies.
    pub fn keeps(gvk: &crate::object::Gvk) -> bool {
        matches!(
            (gvk.group.as_str(), gvk.kind.as_str()),
            ("", "Namespace") | ("networking.k8s.io", "NetworkPolicy")
        ) || ClusterKind::from_group_kind(&gvk.group, &gvk.kind).is_some()
    }

    /// Adds or replaces the Namespaces, NetworkPolicies and cluster-wide
    /// policies of `m`, as `kubectl apply` would; other kinds are ignored
    /// here.
    pub fn apply_all(&mut self, m: &Manifests) -> Result<(), StateError> {
        for d in &m.documents {
            self.apply(d)?;
        }
        Ok(())
    }

    /// Adds or replaces one Namespace, NetworkPolicy or cluster-wide policy.
    pub fn apply(&mut self, d: &Document) -> Result<(), StateError> {
        let bad = |e: serde_json::Error| d.bad_object(e);
        if let Some(kind) = ClusterKind::from_group_kind(&d.gvk.group, &d.gvk.kind) {
            let p = cluster_policy::read::from_value(kind, &d.gvk.version, &d.value)
                .map_err(|e| d.bad_cluster_policy(e))?;
            self.insert_cluster_policy(p);
            return Ok(());
        }
        match (d.gvk.group.as_str(), d.gvk.kind.as_str()) {
            ("", "Namespace") => {
                let ns: Namespace = serde_json::from_value(d.value.clone()).map_err(bad)?;
                self.insert_namespace(&ns);
            }
            ("networking.k8s.io", "NetworkPolicy") => {
                let np: NetworkPolicy = serde_json::from_value(d.value.clone()).map_err(bad)?;
                let p = Policy::from_k8s(&np, DEFAULT_NAMESPACE).map_err(|e| d.bad_policy(e))?;
                self.insert_policy(&p);
            }
            _ => {}
        }
        Ok(())
    }

    /// Adds or replaces a namespace.
    pub fn insert_namespace(&mut self, ns: &Namespace) {
        let (name, info) = NamespaceInfo::from_k8s(ns);
        self.index.put_namespace(&name, info);
    }

    /// Adds or replaces a policy.
    pub fn insert_policy(&mut self, p: &Policy) {
        self.index.put_policy(&p.namespace, &p.facts());
    }

    /// Removes a policy.
    pub fn remove_policy(&mut self, namespace: &str, name: &str) {
        self.index.remove_policy(namespace, name);
    }

    /// Adds or replaces a cluster-wide policy.
    pub fn insert_cluster_policy(&mut self, p: ClusterPolicy) {
        self.index.put_cluster_policy(p);
    }

    /// Keeps a reachability model for admission previews.
    pub fn set_reach_model(&mut self, model: crate::reach::Model) {
        self.model = Some(model);
    }
}

impl ClusterView for StaticCluster {
    fn namespace(&self, name: &str) -> NamespaceView {
        self.index.view(name)
    }

    fn confirm<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<NamespaceView, ClusterError>> {
        // Files do not lag behind themselves: the view is the truth.
        Box::pin(async move { Ok(self.index.view(name)) })
    }

    fn cluster_scope(&self) -> ClusterScope {
        self.index.scope()
    }

    fn is_ready(&self) -> bool {
        true
    }

    fn stats(&self) -> ViewStats {
        self.index.stats()
    }

    fn preview_model(&self) -> super::PreviewModel<'_> {
        match &self.model {
            Some(m) => super::PreviewModel::Ready(super::ModelRef::Shared(m)),
            None => super::PreviewModel::Absent,
        }
    }

    fn namespace_names(&self) -> Vec<String> {
        self.index.namespace_names()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netpol::{Direction, Directions};

    #[test]
    fn views_carry_facts_of_special_policies_only() {
        let mut m = Manifests::default();
        manifest::read_text(
            Path::new("state.yaml"),
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {environment: prod}}\n---\n\
             apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: shop}\nspec: {podSelector: {}, policyTypes: [Ingress, Egress]}\n---\n\
             apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: shop}\nspec: {podSelector: {matchLabels: {app: web}}, ingress: [{ports: [{port: 80}]}]}\n---\n\
             apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: loose}\nspec: {podSelector: {}, ingress: [{}]}\n",
            &mut m,
        );
        let mut c = StaticCluster::new();
        c.apply_all(&m).unwrap();
        let v = c.namespace("shop");
        let info = v.namespace.as_ref().unwrap();
        assert_eq!(info.labels["kubernetes.io/metadata.name"], "shop");
        assert_eq!(info.labels["environment"], "prod");
        assert_eq!(v.policies.len(), 1);
        assert_eq!(v.policies[0].default_deny, Directions::BOTH);
        let d = c.namespace(DEFAULT_NAMESPACE);
        assert!(d.namespace.is_none());
        assert_eq!(
            d.policies[0].allow_all,
            Directions::only(Direction::Ingress)
        );
        assert_eq!(
            c.stats(),
            ViewStats {
                namespaces: 1,
                policies: 3,
                cluster_policies: 0,
                preview: None,
            }
        );
        c.remove_policy("shop", "deny");
        assert!(c.namespace("shop").policies.is_empty());
    }

    #[test]
    fn bad_policies_name_their_origin() {
        let mut m = Manifests::default();
        manifest::read_text(
            Path::new("bad.yaml"),
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: x}\nspec: {podSelector: {}, ingress: [{from: [{ipBlock: {cidr: nope}}]}]}\n",
            &mut m,
        );
        let e = StaticCluster::new().apply_all(&m).unwrap_err().to_string();
        assert!(
            e.starts_with("bad.yaml#0: NetworkPolicy default/x: spec.ingress[0].from[0]"),
            "{e}"
        );
    }
}
