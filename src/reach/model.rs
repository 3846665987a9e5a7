//! The cluster as reachability sees it: namespaces with labels, workloads
//! reduced to the shapes of their pods (labels, container ports), and
//! NetworkPolicies. Summaries only: no whole object is kept.
//!
//! [`ModelBuilder`] takes typed objects from any source (manifest files,
//! a live cluster's lists, an admission request), so that offline and live
//! simulation read workloads the same way.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Pod, PodSpec};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::index::Index;
use crate::cluster::static_dir::DEFAULT_NAMESPACE;
use crate::decide::{Object, Workload};
use crate::manifest::Document;
use crate::netpol::{Policy, PolicyError};
use crate::ports::{ContainerPort, Protocol};
use crate::posture::NamespaceInfo;
use crate::selector::{Labels, NAMESPACE_NAME_LABEL};

/// A workload as simulation names it: `namespace/name[Kind]`. Pods with a
/// controller are shown as their controller (`[ReplicaSet]`,
/// `[DaemonSet]`, ...), a workload manifest stands for the pods of its
/// template, and a pod without controller is `[Pod]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WorkloadId {
    /// The namespace.
    pub namespace: Arc<str>,
    /// The workload's name (the controller's name for owned pods).
    pub name: Arc<str>,
    /// `Deployment`, `ReplicaSet`, `Pod`, ...
    pub kind: Arc<str>,
}

impl WorkloadId {
    /// From the three parts.
    pub fn new(namespace: &str, name: &str, kind: &str) -> Self {
        WorkloadId {
            namespace: namespace.into(),
            name: name.into(),
            kind: kind.into(),
        }
    }
}

impl fmt::Display for WorkloadId {
    /// `namespace/name[Kind]`, as the connectivity fixtures write it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}[{}]", self.namespace, self.name, self.kind)
    }
}

/// What NetworkPolicy can see of a pod: its labels and container ports.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PodShape {
    /// The pod's labels.
    pub labels: Labels,
    /// Container ports, for named ports (sorted, without duplicates).
    pub ports: Vec<ContainerPort>,
    /// `spec.hostNetwork: true`.
    pub host_network: bool,
}

impl PodShape {
    fn from_spec(labels: Option<&Labels>, spec: Option<&PodSpec>) -> PodShape {
        let mut ports = BTreeSet::new();
        if let Some(spec) = spec {
            // Native sidecars (init containers that restart) serve for the
            // pod's whole life, so their ports can be named by policies
            // like any container's.
            let sidecars = spec
                .init_containers
                .iter()
                .flatten()
                .filter(|c| c.restart_policy.as_deref() == Some("Always"));
            for c in spec.containers.iter().chain(sidecars) {
                for p in c.ports.iter().flatten() {
                    let protocol = match p.protocol.as_deref() {
                        None | Some("") => Some(Protocol::Tcp),
                        Some(other) => other.parse().ok(),
                    };
                    // A port Kubernetes would reject (0, unknown protocol)
                    // cannot be the target of a named port.
                    let (Some(protocol), Ok(port)) = (protocol, u16::try_from(p.container_port))
                    else {
                        continue;
                    };
                    if port == 0 {
                        continue;
                    }
                    ports.insert(ContainerPort {
                        name: p.name.clone().filter(|n| !n.is_empty()),
                        protocol,
                        port,
                    });
                }
            }
        }
        PodShape {
            labels: labels.cloned().unwrap_or_default(),
            ports: ports.into_iter().collect(),
            host_network: spec.and_then(|s| s.host_network).unwrap_or(false),
        }
    }
}

/// One pod, or one workload's pod template, reduced to what reachability
/// needs: which workload it belongs to and its shape. This is what a live
/// watch keeps instead of whole pods.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PodSummary {
    /// The workload it is shown as.
    pub workload: WorkloadId,
    /// Its labels and ports.
    pub shape: PodShape,
}

impl PodSummary {
    /// A pod, grouped under its controller: the ownerReference with
    /// `controller: true`, except a Node (the mirror pod of a static pod
    /// belongs to no workload). An owner reference without a kind is shown
    /// as `[Pod]`, as the reference analyzer does.
    pub fn from_pod(pod: &Pod, default_namespace: &str) -> PodSummary {
        let ns = namespace_of(&pod.metadata, default_namespace);
        let pod_name = pod.metadata.name.as_deref().unwrap_or("");
        let owner = pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true))
            .filter(|o| o.kind != "Node");
        let workload = match owner {
            Some(o) if o.kind.is_empty() => WorkloadId::new(&ns, &o.name, "Pod"),
            Some(o) => WorkloadId::new(&ns, &o.name, &o.kind),
            None => WorkloadId::new(&ns, pod_name, "Pod"),
        };
        PodSummary {
            workload,
            shape: PodShape::from_spec(pod.metadata.labels.as_ref(), pod.spec.as_ref()),
        }
    }

    /// A workload manifest: the pods its template stamps out.
    pub fn from_workload(w: &Workload, default_namespace: &str) -> PodSummary {
        let ns = namespace_of(&w.metadata, default_namespace);
        let name = w.metadata.name.as_deref().unwrap_or("");
        let labels = w.template.metadata.as_ref().and_then(|m| m.labels.as_ref());
        PodSummary {
            workload: WorkloadId::new(&ns, name, w.kind.as_str()),
            shape: PodShape::from_spec(labels, w.template.spec.as_ref()),
        }
    }
}

fn namespace_of(meta: &ObjectMeta, default_namespace: &str) -> String {
    meta.namespace
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| default_namespace.to_owned())
}

/// A document that cannot enter the model.
pub type ModelError = crate::manifest::DocumentError;

/// What [`ModelBuilder::clear`] forgets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Namespaces and their labels.
    Namespaces,
    /// Pods added with [`ModelBuilder::pod`].
    Pods,
    /// NetworkPolicies.
    Policies,
}

/// Collects namespaces, workloads and policies, then builds a [`Model`].
/// Later objects replace earlier ones of the same kind, namespace and
/// name, as `kubectl apply` would.
#[derive(Debug, Clone, Default)]
pub struct ModelBuilder {
    namespaces: BTreeMap<String, Labels>,
    pods: BTreeMap<(String, String), PodSummary>,
    templates: BTreeMap<WorkloadId, PodSummary>,
    summaries: Vec<PodSummary>,
    policies: BTreeMap<(String, String), Policy>,
}

impl ModelBuilder {
    /// An empty cluster.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a namespace (its `kubernetes.io/metadata.name`
    /// label filled in as the API server does).
    pub fn namespace(&mut self, ns: &Namespace) -> &mut Self {
        let (name, info) = NamespaceInfo::from_k8s(ns);
        self.namespaces.insert(name, info.labels);
        self
    }

    /// Adds or replaces a pod, grouped under its controller.
    pub fn pod(&mut self, pod: &Pod) -> &mut Self {
        let s = PodSummary::from_pod(pod, DEFAULT_NAMESPACE);
        let key = (
            s.workload.namespace.to_string(),
            pod.metadata.name.clone().unwrap_or_default(),
        );
        self.pods.insert(key, s);
        self
    }

    /// Adds or replaces a workload (Deployment, StatefulSet, ...).
    pub fn workload(&mut self, w: &Workload) -> &mut Self {
        let s = PodSummary::from_workload(w, DEFAULT_NAMESPACE);
        self.templates.insert(s.workload.clone(), s);
        self
    }

    /// Adds a pod summary kept by a watch (never replaced: a watch passes
    /// each live pod once).
    pub fn summary(&mut self, s: PodSummary) -> &mut Self {
        self.summaries.push(s);
        self
    }

    /// Adds or replaces a policy.
    pub fn policy(&mut self, p: Policy) -> &mut Self {
        self.policies
            .insert((p.namespace.clone(), p.name.clone()), p);
        self
    }

    /// Removes a policy, if present.
    pub fn remove_policy(&mut self, namespace: &str, name: &str) -> &mut Self {
        self.policies
            .remove(&(namespace.to_owned(), name.to_owned()));
        self
    }

    /// Removes a namespace's labels, if present (its workloads and
    /// policies stay, as in a cluster while the namespace is deleted).
    pub fn remove_namespace(&mut self, name: &str) -> &mut Self {
        self.namespaces.remove(name);
        self
    }

    /// Removes a pod added with [`ModelBuilder::pod`], if present.
    pub fn remove_pod(&mut self, namespace: &str, name: &str) -> &mut Self {
        self.pods.remove(&(namespace.to_owned(), name.to_owned()));
        self
    }

    /// Forgets every namespace, pod or policy: what a watch does before it
    /// lists its kind again.
    pub fn clear(&mut self, kind: Kind) -> &mut Self {
        match kind {
            Kind::Namespaces => self.namespaces.clear(),
            Kind::Pods => self.pods.clear(),
            Kind::Policies => self.policies.clear(),
        }
        self
    }

    /// Adds or replaces a NetworkPolicy object.
    pub fn network_policy(&mut self, np: &NetworkPolicy) -> Result<&mut Self, PolicyError> {
        let p = Policy::from_k8s(np, DEFAULT_NAMESPACE)?;
        Ok(self.policy(p))
    }

    /// Adds a typed object of any kind; kinds that do not bear on
    /// reachability (Service, ConfigMap, ...) are ignored.
    pub fn object(&mut self, obj: &Object) -> Result<&mut Self, PolicyError> {
        match obj {
            Object::Pod(p) => {
                self.pod(p);
            }
            Object::Workload(w) => {
                self.workload(w);
            }
            Object::NetworkPolicy(np) => {
                self.network_policy(np)?;
            }
            Object::Namespace(ns) => {
                self.namespace(ns);
            }
            Object::ClusterPolicy(_) | Object::Other(_) => {}
        }
        Ok(self)
    }

    /// Adds one manifest document; errors name its file and index.
    pub fn document(&mut self, d: &Document) -> Result<&mut Self, ModelError> {
        let obj = Object::from_value(&d.gvk, d.value.clone()).map_err(|e| d.bad_object(e))?;
        self.object(&obj).map_err(|e| d.bad_policy(e))
    }

    /// Adds every document of `m`, in order.
    pub fn documents(&mut self, m: &crate::manifest::Manifests) -> Result<&mut Self, ModelError> {
        for d in &m.documents {
            self.document(d)?;
        }
        Ok(self)
    }

    /// The model, with its indexes computed.
    pub fn build(&self) -> Model {
        let mut namespaces = self.namespaces.clone();
        let mut shapes: BTreeMap<WorkloadId, BTreeSet<PodShape>> = BTreeMap::new();
        let all = self
            .pods
            .values()
            .chain(self.templates.values())
            .chain(&self.summaries);
        for s in all {
            shapes
                .entry(s.workload.clone())
                .or_default()
                .insert(s.shape.clone());
        }
        // Namespaces referenced but not declared exist with the one label
        // the API server gives every namespace.
        let referenced = shapes
            .keys()
            .map(|w| w.namespace.to_string())
            .chain(self.policies.keys().map(|(ns, _)| ns.clone()))
            .collect::<Vec<_>>();
        for ns in referenced {
            namespaces
                .entry(ns.clone())
                .or_insert_with(|| Labels::from([(NAMESPACE_NAME_LABEL.to_owned(), ns.clone())]));
        }
        let namespaces: Vec<(String, Labels)> = namespaces.into_iter().collect();
        let ns_index: BTreeMap<&str, u32> = namespaces
            .iter()
            .enumerate()
            .map(|(i, (n, _))| (n.as_str(), i as u32))
            .collect();
        let mut workloads = Vec::with_capacity(shapes.len());
        let mut groups = Vec::new();
        for (w, set) in shapes {
            let wi = workloads.len() as u32;
            let ns = ns_index.get(&*w.namespace).copied().unwrap_or(0);
            for shape in set {
                groups.push(PodGroup {
                    workload: wi,
                    namespace: ns,
                    shape,
                });
            }
            workloads.push(w);
        }
        let policies: Vec<Policy> = self.policies.values().cloned().collect();
        let index = Index::build(&namespaces, &groups, &policies);
        Model {
            namespaces,
            workloads,
            groups,
            policies,
            index,
        }
    }
}

/// The pods of one workload that share one shape. Pods of a workload
/// normally all look alike; when they do not (pods of one owner with
/// different labels), each shape is simulated on its own and the
/// workload's connections are their union.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PodGroup {
    /// Index into [`Model::workloads`].
    pub(crate) workload: u32,
    /// Index into the model's namespaces.
    pub(crate) namespace: u32,
    /// The pods' labels and ports.
    pub(crate) shape: PodShape,
}

/// A cluster ready for simulation: summaries plus the indexes that make
/// listing every connection, and previewing a policy change, fast.
#[derive(Debug, Clone)]
pub struct Model {
    pub(crate) namespaces: Vec<(String, Labels)>,
    pub(crate) workloads: Vec<WorkloadId>,
    pub(crate) groups: Vec<PodGroup>,
    pub(crate) policies: Vec<Policy>,
    pub(crate) index: Index,
}

impl Model {
    /// Every workload, sorted.
    pub fn workloads(&self) -> &[WorkloadId] {
        &self.workloads
    }

    /// Every namespace (declared or referenced) with its labels, sorted.
    pub fn namespaces(&self) -> impl Iterator<Item = (&str, &Labels)> {
        self.namespaces.iter().map(|(n, l)| (n.as_str(), l))
    }

    /// The policy `namespace/name`, if present.
    pub fn policy(&self, namespace: &str, name: &str) -> Option<&Policy> {
        self.policy_index(namespace, name)
            .map(|i| &self.policies[i])
    }

    pub(crate) fn policy_index(&self, namespace: &str, name: &str) -> Option<usize> {
        self.policies
            .binary_search_by(|p| (p.namespace.as_str(), p.name.as_str()).cmp(&(namespace, name)))
            .ok()
    }

    /// The distinct pod shapes of a workload.
    pub fn shapes(&self, workload: &WorkloadId) -> Vec<&PodShape> {
        match self.workloads.binary_search(workload) {
            Ok(wi) => self.groups_of(wi).map(|g| &self.groups[g].shape).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Indexes into the groups of workload `wi` (groups are stored in
    /// workload order).
    pub(crate) fn groups_of(&self, wi: usize) -> impl Iterator<Item = usize> + '_ {
        let start = self.groups.partition_point(|g| (g.workload as usize) < wi);
        (start..self.groups.len()).take_while(move |&g| self.groups[g].workload as usize == wi)
    }

    /// The workloads a reference names: `ns/name[Kind]` exactly, `ns/name`
    /// of any kind, or `name` in any namespace.
    pub fn find(&self, reference: &str) -> Vec<&WorkloadId> {
        let (path, kind) = match reference.strip_suffix(']').and_then(|r| r.split_once('[')) {
            Some((p, k)) => (p, Some(k)),
            None => (reference, None),
        };
        let (ns, name) = match path.split_once('/') {
            Some((ns, name)) => (Some(ns), name),
            None => (None, path),
        };
        self.workloads
            .iter()
            .filter(|w| {
                &*w.name == name
                    && ns.is_none_or(|ns| &*w.namespace == ns)
                    && kind.is_none_or(|k| &*w.kind == k)
            })
            .collect()
    }

    /// Things worth knowing about how the model reads this cluster: pods
    /// of one workload that policies tell apart, and hostNetwork pods.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        for (wi, w) in self.workloads.iter().enumerate() {
            let gs: Vec<usize> = self.groups_of(wi).collect();
            if let Some((&first, rest)) = gs.split_first()
                && rest
                    .iter()
                    .any(|&g| !self.index.treated_alike(first, g, &self.groups))
            {
                notes.push(format!(
                    "pods of {w} have different labels or ports and policies treat them differently; \
                     {w} is shown with the connections of any of its pods"
                ));
            }
        }
        let host: Vec<String> = self
            .workloads
            .iter()
            .enumerate()
            .filter(|(wi, _)| {
                self.groups_of(*wi)
                    .any(|g| self.groups[g].shape.host_network)
            })
            .map(|(_, w)| w.to_string())
            .collect();
        if !host.is_empty() {
            let shown = host.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
            let more = if host.len() > 5 {
                format!(" and {} more", host.len() - 5)
            } else {
                String::new()
            };
            notes.push(format!(
                "hostNetwork pods ({shown}{more}): Kubernetes leaves NetworkPolicy for them to the \
                 network plugin; they are simulated as ordinary pods"
            ));
        }
        notes
    }

    /// The model after a policy change (create, update or delete), rebuilt
    /// whole: the slow, obviously right answer that previews (which
    /// compute only what the change touches) are tested against.
    pub fn with_change(&self, change: &super::preview::PolicyChange) -> Model {
        let mut b = self.to_builder();
        if let Some((ns, name)) = change.key() {
            b.remove_policy(ns, name);
        }
        if let Some(p) = &change.new {
            b.policy(p.clone());
        }
        b.build()
    }

    /// A builder holding this model's summaries and policies.
    pub fn to_builder(&self) -> ModelBuilder {
        let mut b = ModelBuilder::new();
        b.namespaces = self.namespaces.iter().cloned().collect();
        for g in &self.groups {
            b.summary(PodSummary {
                workload: self.workloads[g.workload as usize].clone(),
                shape: g.shape.clone(),
            });
        }
        for p in &self.policies {
            b.policy(p.clone());
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(yaml: &str) -> Pod {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn pods_are_grouped_under_their_controller() {
        let owned = pod(
            "metadata:\n  name: web-7d77fb55cc-x1\n  namespace: shop\n  labels: {app: web}\n  ownerReferences:\n  - {apiVersion: apps/v1, kind: ReplicaSet, name: web-7d77fb55cc, uid: u, controller: true}\nspec:\n  containers:\n  - name: c\n    ports: [{name: http, containerPort: 8080}, {containerPort: 53, protocol: UDP}]\n",
        );
        let s = PodSummary::from_pod(&owned, "default");
        assert_eq!(s.workload.to_string(), "shop/web-7d77fb55cc[ReplicaSet]");
        assert_eq!(
            s.shape.ports,
            vec![
                ContainerPort {
                    name: None,
                    protocol: Protocol::Udp,
                    port: 53
                },
                ContainerPort {
                    name: Some("http".into()),
                    protocol: Protocol::Tcp,
                    port: 8080
                },
            ]
        );

        // A reference that is not the controller does not group.
        let not_controller = pod(
            "metadata:\n  name: p\n  ownerReferences:\n  - {apiVersion: v1, kind: Thing, name: t, uid: u}\nspec: {containers: []}\n",
        );
        assert_eq!(
            PodSummary::from_pod(&not_controller, "default")
                .workload
                .to_string(),
            "default/p[Pod]"
        );
        // Static pods' mirror pods are owned by their Node: no workload.
        let mirror = pod(
            "metadata:\n  name: etcd-n1\n  namespace: kube-system\n  ownerReferences:\n  - {apiVersion: v1, kind: Node, name: n1, uid: u, controller: true}\nspec: {containers: []}\n",
        );
        assert_eq!(
            PodSummary::from_pod(&mirror, "default")
                .workload
                .to_string(),
            "kube-system/etcd-n1[Pod]"
        );
        // The fixture `example_pods_w_same_owner_...` writes owners without
        // a kind; the reference analyzer shows them as [Pod].
        let kindless: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "pod-1", "ownerReferences": [{"name": "internal-security", "controller": true}]},
            "spec": {"containers": []}
        }))
        .unwrap();
        assert_eq!(
            PodSummary::from_pod(&kindless, "default")
                .workload
                .to_string(),
            "default/internal-security[Pod]"
        );
    }

    #[test]
    fn shapes_keep_native_sidecar_ports_and_drop_invalid_ones() {
        let p = pod(
            "metadata: {name: p}\nspec:\n  hostNetwork: true\n  initContainers:\n  - {name: proxy, restartPolicy: Always, ports: [{name: proxy, containerPort: 15001}]}\n  - {name: init, ports: [{name: once, containerPort: 9}]}\n  containers:\n  - {name: c, ports: [{containerPort: 0}, {containerPort: 80, protocol: ICMP}]}\n",
        );
        let s = PodSummary::from_pod(&p, "default").shape;
        assert!(s.host_network);
        assert_eq!(s.ports.len(), 1);
        assert_eq!(s.ports[0].name.as_deref(), Some("proxy"));
    }

    #[test]
    fn same_shaped_pods_collapse_and_referenced_namespaces_exist() {
        let mut b = ModelBuilder::new();
        for n in ["a", "b"] {
            b.pod(&pod(&format!(
                "metadata:\n  name: {n}\n  namespace: shop\n  labels: {{app: web}}\n  ownerReferences:\n  - {{apiVersion: apps/v1, kind: ReplicaSet, name: web, uid: u, controller: true}}\nspec: {{containers: []}}\n"
            )));
        }
        let m = b.build();
        assert_eq!(m.workloads().len(), 1);
        assert_eq!(m.shapes(&m.workloads()[0]).len(), 1);
        let (name, labels) = m.namespaces().next().unwrap();
        assert_eq!(name, "shop");
        assert_eq!(labels[NAMESPACE_NAME_LABEL], "shop");
        assert_eq!(m.find("web").len(), 1);
        assert_eq!(m.find("shop/web").len(), 1);
        assert_eq!(m.find("shop/web[ReplicaSet]").len(), 1);
        assert!(m.find("shop/web[Deployment]").is_empty());
        assert!(m.find("other/web").is_empty());
    }

    /// What the preview watch does with deletions and re-lists: the model
    /// loses exactly what was removed or cleared.
    #[test]
    fn watch_events_remove_and_clear() {
        let mut b = ModelBuilder::new();
        let ns: Namespace =
            serde_saphyr::from_str("metadata: {name: shop, labels: {team: a}}").unwrap();
        b.namespace(&ns);
        for n in ["a", "b"] {
            b.pod(&pod(&format!(
                "metadata: {{name: {n}, namespace: shop, labels: {{app: {n}}}}}\nspec: {{containers: []}}\n"
            )));
        }
        let np: NetworkPolicy = serde_saphyr::from_str(
            "metadata: {name: deny, namespace: shop}\nspec: {podSelector: {}}",
        )
        .unwrap();
        b.network_policy(&np).unwrap();

        b.remove_pod("shop", "a");
        let m = b.build();
        assert_eq!(m.workloads().len(), 1);
        assert_eq!(m.workloads()[0].to_string(), "shop/b[Pod]");
        assert!(m.policy("shop", "deny").is_some());
        assert_eq!(
            m.namespaces()
                .next()
                .unwrap()
                .1
                .get("team")
                .map(String::as_str),
            Some("a")
        );

        b.remove_policy("shop", "deny").remove_namespace("shop");
        let m = b.build();
        assert!(m.policy("shop", "deny").is_none());
        // A namespace still referenced by a pod exists with its name label only.
        assert!(m.namespaces().next().unwrap().1.get("team").is_none());

        b.network_policy(&np).unwrap();
        b.clear(Kind::Pods);
        let m = b.build();
        assert!(m.workloads().is_empty());
        assert!(
            m.policy("shop", "deny").is_some(),
            "clearing pods keeps policies"
        );
        b.clear(Kind::Policies).clear(Kind::Namespaces);
        assert!(b.build().policy("shop", "deny").is_none());
    }
}
