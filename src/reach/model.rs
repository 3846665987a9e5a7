//! The cluster as reachability sees it: namespaces with labels, workloads
//! reduced to the shapes of their pods (labels, container ports),
//! NetworkPolicies, and the cluster-wide policies around them (with the
//! nodes' addresses their `nodes` peers name). Summaries only: no whole
//! object is kept.
//!
//! [`ModelBuilder`] takes typed objects from any source (manifest files,
//! a live cluster's lists, an admission request), so that offline and live
//! simulation read workloads the same way.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use slab::Slab;

use k8s_openapi::api::core::v1::{Namespace, Node, Pod, PodSpec};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::intern::{Body, Interner};
use super::owners::{self, Intermediate, Owners};
use super::pod_ips::{PodAddrs, PodIps};
use crate::addresses::AddrSet;
use crate::cluster::static_dir::DEFAULT_NAMESPACE;
use crate::cluster_policy::{ClusterKind, ClusterPolicies, ClusterPolicy, ClusterPolicyError};
use crate::manifest::Document;
use crate::netpol::{Direction, Peer, Policy, PolicyError};
use crate::object::{Object, Workload};
use crate::ports::{ContainerPort, Protocol};
use crate::posture::NamespaceInfo;
use crate::selector::{Labels, NAMESPACE_NAME_LABEL};

/// A workload as simulation names it: `namespace/name[Kind]`. Pods with a
/// controller are shown as their controller (`[DaemonSet]`, ...), or as
/// the controller's own controller where that is known (a Deployment's
/// ReplicaSet is the Deployment, a CronJob's Job the CronJob: see
/// [`super::owners`]); a workload manifest stands for the pods of its
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
    /// Its controller (or, for a workload manifest, the workload itself).
    /// The model shows it as that object's own controller when the owner
    /// table knows one ([`PodSummary::shown_as`]).
    pub workload: WorkloadId,
    /// The uid of the object `workload` names, when known: the owner
    /// chain is followed only through that very object.
    pub workload_uid: Option<Arc<str>>,
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
        let owner = owners::controller(&pod.metadata);
        let workload = match owner {
            Some(o) if o.kind.is_empty() => WorkloadId::new(&ns, &o.name, "Pod"),
            Some(o) => WorkloadId::new(&ns, &o.name, &o.kind),
            None => WorkloadId::new(&ns, pod_name, "Pod"),
        };
        PodSummary {
            workload,
            workload_uid: owner.and_then(|o| (!o.uid.is_empty()).then(|| Arc::from(&*o.uid))),
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
            workload_uid: w
                .metadata
                .uid
                .as_deref()
                .filter(|u| !u.is_empty())
                .map(Arc::from),
            shape: PodShape::from_spec(labels, w.template.spec.as_ref()),
        }
    }

    /// The workload it is shown as: `workload`, or, when that is a
    /// ReplicaSet or Job whose own controller `owners` knows, that
    /// controller (in the same namespace: owner references never cross
    /// namespaces).
    pub fn shown_as(&self, owners: &Owners) -> WorkloadId {
        let w = &self.workload;
        match owners.controller_of(&w.namespace, &w.kind, &w.name, self.workload_uid.as_deref()) {
            Some((kind, name)) => WorkloadId {
                namespace: Arc::clone(&w.namespace),
                name: Arc::clone(name),
                kind: Arc::clone(kind),
            },
            None => w.clone(),
        }
    }

    /// The ReplicaSet or Job it names as its direct controller, if any:
    /// what its group remembers so that an owner change can move it.
    fn via(&self) -> Option<Via> {
        Some(Via {
            kind: Intermediate::from_kind(&self.workload.kind)?,
            name: Arc::clone(&self.workload.name),
            uid: self.workload_uid.clone(),
        })
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
    /// What [`ModelBuilder::owner`] recorded of ReplicaSets.
    ReplicaSets,
    /// What [`ModelBuilder::owner`] recorded of Jobs.
    Jobs,
    /// Cluster-wide policies (AdminNetworkPolicy, ...).
    ClusterPolicies,
}

/// An object that cannot enter the model.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// A NetworkPolicy Kubernetes would reject.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// A cluster-wide policy Kubernetes would reject.
    #[error(transparent)]
    ClusterPolicy(#[from] ClusterPolicyError),
}

/// Collects namespaces, workloads and policies into a [`Model`]. Later
/// objects replace earlier ones of the same kind, namespace and name, as
/// `kubectl apply` would. The builder is the model being filled in:
/// [`ModelBuilder::build`] hands out a copy, [`ModelBuilder::into_model`]
/// the model itself.
#[derive(Debug, Clone, Default)]
pub struct ModelBuilder {
    model: Model,
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
        self.model.put_namespace(&name, info.labels);
        self
    }

    /// Adds or replaces a pod, grouped under its controller.
    pub fn pod(&mut self, pod: &Pod) -> &mut Self {
        let s = PodSummary::from_pod(pod, DEFAULT_NAMESPACE);
        let name = pod.metadata.name.clone().unwrap_or_default();
        let ns = Arc::clone(&s.workload.namespace);
        self.model.put_pod(&name, s);
        self.model
            .put_pod_addrs(&ns, &name, PodAddrs::from_pod(pod));
        self
    }

    /// Adds or replaces a workload (Deployment, StatefulSet, ...). A
    /// ReplicaSet or Job also enters the owner table; one that a
    /// controller owns (a Deployment's, a CronJob's) stands for no pods of
    /// its own: its pods are its controller's.
    pub fn workload(&mut self, w: &Workload) -> &mut Self {
        if let Some(kind) = Intermediate::from_kind(w.kind.as_str()) {
            self.model.put_owner(kind, &w.metadata);
            if owners::controller(&w.metadata).is_some_and(|c| !c.kind.is_empty()) {
                return self;
            }
        }
        self.model
            .put_template(PodSummary::from_workload(w, DEFAULT_NAMESPACE));
        self
    }

    /// Records a ReplicaSet's or Job's metadata (what a metadata-only
    /// watch gives), so that its pods are shown as its controller.
    pub fn owner(&mut self, kind: Intermediate, meta: &ObjectMeta) -> &mut Self {
        self.model.put_owner(kind, meta);
        self
    }

    /// Forgets a ReplicaSet or Job recorded with [`ModelBuilder::owner`].
    pub fn remove_owner(&mut self, kind: Intermediate, namespace: &str, name: &str) -> &mut Self {
        self.model.remove_owner(kind, namespace, name);
        self
    }

    /// Forgets the pods, workloads and policies of a namespace (its labels
    /// and the owner table stay): what `simulate diff --prune` does before
    /// the files' objects for that namespace are applied.
    pub fn forget_namespace(&mut self, namespace: &str) -> &mut Self {
        self.model.forget_namespace(namespace);
        self
    }

    /// Adds a pod summary kept by a watch (never replaced: a watch passes
    /// each live pod once).
    pub fn summary(&mut self, s: PodSummary) -> &mut Self {
        self.model.add_summary(s);
        self
    }

    /// Adds or replaces a policy.
    pub fn policy(&mut self, p: Policy) -> &mut Self {
        self.model.put_policy(&p);
        self
    }

    /// Removes a policy, if present.
    pub fn remove_policy(&mut self, namespace: &str, name: &str) -> &mut Self {
        self.model.remove_policy(namespace, name);
        self
    }

    /// Removes a namespace's labels, if present (its workloads and
    /// policies stay, as in a cluster while the namespace is deleted).
    pub fn remove_namespace(&mut self, name: &str) -> &mut Self {
        self.model.remove_namespace(name);
        self
    }

    /// Removes a pod added with [`ModelBuilder::pod`], if present.
    pub fn remove_pod(&mut self, namespace: &str, name: &str) -> &mut Self {
        self.model.remove_pod(namespace, name);
        self
    }

    /// Forgets every namespace, pod or policy: what a watch does before it
    /// lists its kind again.
    pub fn clear(&mut self, kind: Kind) -> &mut Self {
        self.model.clear(kind);
        self
    }

    /// Adds or replaces a NetworkPolicy object.
    pub fn network_policy(&mut self, np: &NetworkPolicy) -> Result<&mut Self, PolicyError> {
        let p = Policy::from_k8s(np, DEFAULT_NAMESPACE)?;
        Ok(self.policy(p))
    }

    /// Adds or replaces a cluster-wide policy.
    pub fn cluster_policy(&mut self, p: ClusterPolicy) -> &mut Self {
        self.model.put_cluster_policy(p);
        self
    }

    /// Removes a cluster-wide policy, if present.
    pub fn remove_cluster_policy(&mut self, kind: ClusterKind, name: &str) -> &mut Self {
        self.model.remove_cluster_policy(kind, name);
        self
    }

    /// Adds or replaces a node: its labels and addresses, for the `nodes`
    /// peers of cluster-wide policies.
    pub fn node(&mut self, node: &Node) -> &mut Self {
        let name = node.metadata.name.clone().unwrap_or_default();
        let labels = node.metadata.labels.clone().unwrap_or_default();
        let addresses = node
            .status
            .iter()
            .flat_map(|s| s.addresses.iter().flatten())
            .filter_map(|a| a.address.parse::<std::net::IpAddr>().ok())
            .fold(AddrSet::none(), |acc, ip| acc.union(&AddrSet::from_ip(ip)));
        self.model.put_node(&name, labels, addresses);
        self
    }

    /// Adds a typed object of any kind; kinds that do not bear on
    /// reachability (Service, ConfigMap, ...) are ignored.
    pub fn object(&mut self, obj: &Object) -> Result<&mut Self, ObjectError> {
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
            Object::ClusterPolicy(c) => {
                self.cluster_policy(c.read()?);
            }
            Object::Other(_) => {}
        }
        Ok(self)
    }

    /// Adds one manifest document; errors name its file and index.
    pub fn document(&mut self, d: &Document) -> Result<&mut Self, ModelError> {
        if d.gvk.group.is_empty() && d.gvk.kind == "Node" {
            let node: Node =
                serde_json::from_value(d.value.clone()).map_err(|e| d.bad_object(e))?;
            return Ok(self.node(&node));
        }
        let obj = Object::from_value(&d.gvk, d.value.clone()).map_err(|e| d.bad_object(e))?;
        match self.object(&obj) {
            Ok(b) => Ok(b),
            Err(ObjectError::Policy(e)) => Err(d.bad_policy(e)),
            Err(ObjectError::ClusterPolicy(e)) => Err(d.bad_cluster_policy(e)),
        }
    }

    /// Adds every document of `m`, in order.
    pub fn documents(&mut self, m: &crate::manifest::Manifests) -> Result<&mut Self, ModelError> {
        for d in &m.documents {
            self.document(d)?;
        }
        Ok(self)
    }

    /// A copy of the model as it stands.
    pub fn build(&self) -> Model {
        self.model.clone()
    }

    /// The model itself.
    pub fn into_model(self) -> Model {
        self.model
    }
}

/// A namespace's index in the model.
pub(crate) type NsId = u32;
/// A workload's index in the model.
pub(crate) type WlId = u32;
/// A pod group's index in the model: its bit in every set of groups.
pub(crate) type GroupId = u32;
/// A policy's index in the model.
pub(crate) type PolicyId = u32;

/// A namespace: declared (a Namespace object was seen) or only referenced
/// by a workload or policy, in which case it exists with the one label the
/// API server gives every namespace.
#[derive(Debug, Clone)]
pub(crate) struct Ns {
    pub(crate) name: Arc<str>,
    pub(crate) labels: Labels,
    declared: bool,
    /// Its pod groups.
    pub(crate) groups: Vec<GroupId>,
    /// Its policies by name.
    pub(crate) policies: BTreeMap<Box<str>, PolicyId>,
}

impl Ns {
    fn referenced(&self) -> bool {
        self.declared || !self.groups.is_empty() || !self.policies.is_empty()
    }
}

/// A workload and its pod groups.
#[derive(Debug, Clone)]
pub(crate) struct Wl {
    pub(crate) id: WorkloadId,
    pub(crate) groups: Vec<GroupId>,
}

/// The pods of one workload that share one shape. Pods of a workload
/// normally all look alike; when they do not (pods of one owner with
/// different labels), each shape is simulated on its own and the
/// workload's connections are their union.
#[derive(Debug, Clone)]
pub(crate) struct PodGroup {
    pub(crate) workload: WlId,
    pub(crate) namespace: NsId,
    /// The pods' labels and ports.
    pub(crate) shape: PodShape,
    /// Pods, templates and summaries with this shape: the group goes with
    /// the last of them.
    sources: u32,
    /// The ReplicaSet or Job its pods name as their controller, if that is
    /// what they name: an owner change moves the group whole.
    via: Option<Via>,
    /// Per direction, the policies that select the group with that
    /// direction among their effective types.
    pub(crate) selecting: [Vec<PolicyId>; 2],
}

/// A ReplicaSet or Job that pods name as their controller.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Via {
    kind: Intermediate,
    name: Arc<str>,
    uid: Option<Arc<str>>,
}

/// A policy: where it lives, its name, and its body, shared with every
/// policy stamped from the same template.
#[derive(Debug, Clone)]
pub(crate) struct StoredPolicy {
    pub(crate) namespace: NsId,
    pub(crate) name: Box<str>,
    pub(crate) body: Arc<Body>,
}

/// A cluster ready for simulation: namespaces, workloads reduced to the
/// shapes of their pods, and policies, each kept once in compact form and
/// changed in place as a watch reports changes (no rebuild, no second
/// copy). Which pods each policy selects is kept per pod group; what the
/// rules admit is evaluated when asked ([`crate::reach::compute`],
/// [`crate::reach::preview()`], [`crate::reach::explain()`]).
#[derive(Debug, Clone, Default)]
pub struct Model {
    pub(crate) namespaces: Slab<Ns>,
    ns_by_name: BTreeMap<Arc<str>, NsId>,
    pub(crate) workloads: Slab<Wl>,
    wl_by_id: BTreeMap<WorkloadId, WlId>,
    pub(crate) groups: Slab<PodGroup>,
    pub(crate) policies: Slab<StoredPolicy>,
    pub(crate) intern: Interner,
    /// Pods by namespace and name, for replacement and removal.
    pods: HashMap<(NsId, Box<str>), GroupId>,
    /// Workload manifests' templates.
    templates: HashMap<WlId, GroupId>,
    /// What is known of ReplicaSets and Jobs: who controls them.
    owners: Owners,
    /// Pods of a workload whose own manifest is given: that manifest says
    /// what its pods are, so these are held aside (files applied on a
    /// cluster; a watch never gives manifests, so never holds any).
    hidden: HashMap<(Box<str>, Box<str>), PodSummary>,
    /// Pods' addresses, for naming the ends of observed flows.
    ips: PodIps,
    /// Bytes of names, label keys and values, and ports held: the part of
    /// the model's memory that counts alone do not tell.
    text: usize,
    /// The cluster-wide policies, in evaluation order (a cluster has few;
    /// they are kept read, not compacted).
    pub(crate) cluster: Arc<ClusterPolicies>,
    /// Known nodes' labels and addresses, for `nodes` peers.
    pub(crate) nodes: Vec<(Labels, AddrSet)>,
    /// The nodes' names, in the order of `nodes`.
    node_names: Vec<Box<str>>,
}

/// Bytes of a label map's keys and values.
fn label_text(labels: &Labels) -> usize {
    labels.iter().map(|(k, v)| k.len() + v.len()).sum()
}

/// Bytes a shape holds beyond its fixed size.
fn shape_text(shape: &PodShape) -> usize {
    label_text(&shape.labels)
        + shape
            .ports
            .iter()
            .map(|p| std::mem::size_of::<ContainerPort>() + p.name.as_ref().map_or(0, String::len))
            .sum::<usize>()
}

/// Sizes of what a model holds, for budgets and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ModelStats {
    /// Namespaces, declared or referenced.
    pub namespaces: usize,
    /// Workloads.
    pub workloads: usize,
    /// Distinct pod shapes over all workloads.
    pub groups: usize,
    /// Pods held by name (the watch's pods; templates not counted).
    pub pods: usize,
    /// Policies.
    pub policies: usize,
    /// Distinct policy bodies and peers, shared among the policies.
    pub bodies: usize,
    /// Distinct peers.
    pub peers: usize,
    /// Bytes held in label keys and values, names and ports.
    pub text_bytes: usize,
    /// ReplicaSets and Jobs whose controller is known.
    pub owners: usize,
    /// Pod addresses held (for `simulate verify`).
    pub addresses: usize,
}

impl ModelStats {
    /// About how many bytes of memory the model holds: a fixed cost per
    /// item (the maps and tables that hold it, a label map's smallest
    /// allocation) plus the text it holds. The costs were measured with
    /// `cargo bench --bench scale` (docs/performance.md) and err high, so
    /// the preview's budget is kept rather than overrun.
    pub fn approx_bytes(&self) -> usize {
        const NAMESPACE: usize = 900;
        const WORKLOAD: usize = 250;
        const GROUP: usize = 1_300;
        const POD: usize = 150;
        const POLICY: usize = 120;
        const BODY: usize = 2_000;
        const PEER: usize = 1_200;
        // A ReplicaSet's or Job's entry in the owner table: 236 bytes
        // measured for 100,000 ReplicaSets of 10,000 Deployments (VmRSS
        // before and after filling an `Owners`).
        const OWNER: usize = 300;
        // An address and its pod's entry: two map slots, the key's two
        // shared strings, the start time (estimated, not measured).
        const ADDRESS: usize = 160;
        self.namespaces * NAMESPACE
            + self.workloads * WORKLOAD
            + self.groups * GROUP
            + self.pods * POD
            + self.policies * POLICY
            + self.bodies * BODY
            + self.peers * PEER
            + self.text_bytes * 2
            + self.owners * OWNER
            + self.addresses * ADDRESS
    }
}

impl Model {
    /// Every workload, sorted.
    pub fn workloads(&self) -> impl ExactSizeIterator<Item = &WorkloadId> + '_ {
        self.wl_by_id.keys()
    }

    /// Every namespace (declared or referenced) with its labels, sorted.
    pub fn namespaces(&self) -> impl Iterator<Item = (&str, &Labels)> {
        self.ns_by_name.values().map(|&n| {
            (
                &*self.namespaces[n as usize].name,
                &self.namespaces[n as usize].labels,
            )
        })
    }

    /// The policy `namespace/name`, if present, as it was read.
    pub fn policy(&self, namespace: &str, name: &str) -> Option<Policy> {
        let p = self.policy_id(namespace, name)?;
        let sp = &self.policies[p as usize];
        Some(self.intern.policy(namespace, name, &sp.body))
    }

    /// The index of the policy `namespace/name`.
    pub(crate) fn policy_id(&self, namespace: &str, name: &str) -> Option<PolicyId> {
        let ns = self.ns_by_name.get(namespace)?;
        self.namespaces[*ns as usize].policies.get(name).copied()
    }

    /// `namespace/name` of policy `p`.
    pub(crate) fn policy_ref(&self, p: PolicyId) -> String {
        let sp = &self.policies[p as usize];
        format!(
            "{}/{}",
            self.namespaces[sp.namespace as usize].name, sp.name
        )
    }

    /// The namespace named `name`.
    pub(crate) fn ns_id(&self, name: &str) -> Option<NsId> {
        self.ns_by_name.get(name).copied()
    }

    /// The workload `id`'s index.
    pub(crate) fn wl_id(&self, id: &WorkloadId) -> Option<WlId> {
        self.wl_by_id.get(id).copied()
    }

    /// The distinct pod shapes of a workload.
    pub fn shapes(&self, workload: &WorkloadId) -> Vec<&PodShape> {
        match self.wl_by_id.get(workload) {
            Some(&w) => self.workloads[w as usize]
                .groups
                .iter()
                .map(|&g| &self.groups[g as usize].shape)
                .collect(),
            None => Vec::new(),
        }
    }

    /// One past the highest group index: the length of sets of groups.
    pub(crate) fn group_capacity(&self) -> usize {
        self.groups.capacity()
    }

    /// Every pod group, with its index.
    pub(crate) fn group_ids(&self) -> impl Iterator<Item = GroupId> + '_ {
        self.groups.iter().map(|(g, _)| g as GroupId)
    }

    /// Group `g`.
    pub(crate) fn group(&self, g: GroupId) -> &PodGroup {
        &self.groups[g as usize]
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
        self.workloads()
            .filter(|w| {
                &*w.name == name
                    && ns.is_none_or(|ns| &*w.namespace == ns)
                    && kind.is_none_or(|k| &*w.kind == k)
            })
            .collect()
    }

    /// The pod holding `ip` as of the snapshot: its namespace, name, pod
    /// group (`None` when the pod is no longer in the model) and addresses.
    pub(crate) fn pod_at(&self, ip: IpAddr) -> Option<(&str, &str, Option<GroupId>, &PodAddrs)> {
        let ((ns, name), addrs) = self.ips.holder(ip)?;
        Some((ns, name, self.pod_group(ns, name), addrs))
    }

    /// A pod group of workload `id` (its first: a workload's pods normally
    /// share one shape).
    pub(crate) fn workload_group(&self, id: &WorkloadId) -> Option<GroupId> {
        let w = self.wl_id(id)?;
        self.workloads[w as usize].groups.first().copied()
    }

    /// The pod group pod `namespace/name` is simulated as: its own, or,
    /// for a pod set aside behind its workload's manifest, the template's.
    pub(crate) fn pod_group(&self, namespace: &str, name: &str) -> Option<GroupId> {
        let n = self.ns_id(namespace);
        if let Some(g) = n.and_then(|n| self.pods.get(&(n, name.into()))) {
            return Some(*g);
        }
        let held = self.hidden.get(&(namespace.into(), name.into()))?;
        let shown = held.shown_as(&self.owners);
        let w = self.wl_id(&shown)?;
        self.templates.get(&w).copied()
    }

    /// `(namespace, name)` of every pod held by name.
    pub fn pod_keys(&self) -> Vec<(String, String)> {
        self.pods
            .keys()
            .map(|(n, name)| {
                (
                    self.namespaces[*n as usize].name.to_string(),
                    name.to_string(),
                )
            })
            .collect()
    }

    /// `(namespace, name)` of every policy.
    pub fn policy_keys(&self) -> Vec<(String, String)> {
        self.policies
            .iter()
            .map(|(_, p)| {
                (
                    self.namespaces[p.namespace as usize].name.to_string(),
                    p.name.to_string(),
                )
            })
            .collect()
    }

    /// Every namespace a Namespace object declared (not only referenced).
    pub fn declared_namespaces(&self) -> Vec<String> {
        self.namespaces
            .iter()
            .filter(|(_, n)| n.declared)
            .map(|(_, n)| n.name.to_string())
            .collect()
    }

    /// What the model holds.
    pub fn stats(&self) -> ModelStats {
        let text_bytes = self.text;
        let (bodies, peers) = self.intern.sizes();
        ModelStats {
            namespaces: self.namespaces.len(),
            workloads: self.workloads.len(),
            groups: self.groups.len(),
            pods: self.pods.len(),
            policies: self.policies.len(),
            bodies,
            peers,
            text_bytes,
            owners: self.owners.len(),
            addresses: self.ips.len(),
        }
    }

    /// Things worth knowing about how the model reads this cluster: pods
    /// of one workload that policies tell apart, hostNetwork pods, and
    /// what the cluster-wide policies leave to chance.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = self.cluster.simulation_notes(!self.nodes.is_empty());
        for w in self.workloads() {
            let gs = &self.workloads[self.wl_by_id[w] as usize].groups;
            if let Some((&first, rest)) = gs.split_first()
                && rest.iter().any(|&g| !self.treated_alike(first, g))
            {
                notes.push(format!(
                    "pods of {w} have different labels or ports and policies treat them differently; \
                     {w} is shown with the connections of any of its pods"
                ));
            }
        }
        let host: Vec<String> = self
            .workloads()
            .filter(|w| {
                self.workloads[self.wl_by_id[*w] as usize]
                    .groups
                    .iter()
                    .any(|&g| self.groups[g as usize].shape.host_network)
            })
            .map(|w| w.to_string())
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

    /// Do the policies see groups `a` and `b` (of one workload, so of one
    /// namespace) the same way: selected by the same policies, admitted by
    /// the same peers, with the same ports?
    fn treated_alike(&self, a: GroupId, b: GroupId) -> bool {
        let (ga, gb) = (&self.groups[a as usize], &self.groups[b as usize]);
        let same_set = |x: &[PolicyId], y: &[PolicyId]| {
            let mut x = x.to_vec();
            let mut y = y.to_vec();
            x.sort_unstable();
            y.sort_unstable();
            x == y
        };
        ga.shape.ports == gb.shape.ports
            && (0..2).all(|d| same_set(&ga.selecting[d], &gb.selecting[d]))
            && self.intern.peers().all(|(_, peer)| match peer {
                Peer::Pods { pods, .. } => {
                    pods.matches(&ga.shape.labels) == pods.matches(&gb.shape.labels)
                }
                Peer::Addresses { .. } => true,
            })
    }

    /// The cluster-wide policies, in evaluation order.
    pub fn cluster_policies(&self) -> &ClusterPolicies {
        &self.cluster
    }

    /// The model after a cluster-wide policy change (`old` removed, `new`
    /// added), made on a copy: what cluster previews are tested against.
    pub fn with_cluster_change(
        &self,
        old: Option<&ClusterPolicy>,
        new: Option<&ClusterPolicy>,
    ) -> Model {
        let mut m = self.clone();
        if let Some(o) = old {
            m.remove_cluster_policy(o.kind, &o.name);
        }
        if let Some(n) = new {
            m.put_cluster_policy(n.clone());
        }
        m
    }

    /// The model after a policy change (create, update or delete), made
    /// on a copy: the slow, obviously right answer that previews (which
    /// compute only what the change touches) are tested against.
    pub fn with_change(&self, change: &super::change::PolicyChange) -> Model {
        let mut m = self.clone();
        if let Some((ns, name)) = change.key() {
            m.remove_policy(ns, name);
        }
        if let Some(p) = &change.new {
            m.put_policy(p);
        }
        m
    }

    /// A builder holding this model.
    pub fn to_builder(&self) -> ModelBuilder {
        ModelBuilder {
            model: self.clone(),
        }
    }

    // ---- changes in place -------------------------------------------

    fn ns_or_insert(&mut self, name: &str) -> NsId {
        if let Some(&n) = self.ns_by_name.get(name) {
            return n;
        }
        let name: Arc<str> = name.into();
        let labels = Labels::from([(NAMESPACE_NAME_LABEL.to_owned(), name.to_string())]);
        self.text += name.len() + label_text(&labels);
        let n = self.namespaces.insert(Ns {
            name: Arc::clone(&name),
            labels,
            declared: false,
            groups: Vec::new(),
            policies: BTreeMap::new(),
        }) as NsId;
        self.ns_by_name.insert(name, n);
        n
    }

    fn drop_ns_if_unused(&mut self, n: NsId) {
        if self.namespaces[n as usize].referenced() {
            return;
        }
        let ns = self.namespaces.remove(n as usize);
        self.text -= ns.name.len() + label_text(&ns.labels);
        self.ns_by_name.remove(&ns.name);
    }

    /// Adds or replaces namespace `name` with `labels`.
    pub fn put_namespace(&mut self, name: &str, labels: Labels) {
        let n = self.ns_or_insert(name);
        let ns = &mut self.namespaces[n as usize];
        self.text = self.text + label_text(&labels) - label_text(&ns.labels);
        ns.labels = labels;
        ns.declared = true;
    }

    /// Forgets namespace `name`'s labels; it stays, with its name label
    /// only, while workloads or policies are in it.
    pub fn remove_namespace(&mut self, name: &str) {
        let Some(&n) = self.ns_by_name.get(name) else {
            return;
        };
        let ns = &mut self.namespaces[n as usize];
        ns.declared = false;
        let labels = Labels::from([(NAMESPACE_NAME_LABEL.to_owned(), name.to_owned())]);
        self.text = self.text + label_text(&labels) - label_text(&ns.labels);
        ns.labels = labels;
        self.drop_ns_if_unused(n);
    }

    /// The index of workload `id`, made if new.
    fn wl_or_insert(&mut self, id: WorkloadId) -> WlId {
        if let Some(&w) = self.wl_by_id.get(&id) {
            return w;
        }
        let w = self.workloads.insert(Wl {
            id: id.clone(),
            groups: Vec::new(),
        }) as WlId;
        self.wl_by_id.insert(id, w);
        w
    }

    /// One more pod (or template, or summary) of `s` shown as workload
    /// `shown`: the group of its shape (and of the ReplicaSet or Job it
    /// names), made if new.
    fn add_source(&mut self, shown: WorkloadId, s: PodSummary) -> GroupId {
        let n = self.ns_or_insert(&shown.namespace);
        let w = self.wl_or_insert(shown);
        let via = s.via();
        let existing = self.workloads[w as usize]
            .groups
            .iter()
            .copied()
            .find(|&g| {
                self.groups[g as usize].shape == s.shape && self.groups[g as usize].via == via
            });
        if let Some(g) = existing {
            self.groups[g as usize].sources += 1;
            return g;
        }
        let mut selecting: [Vec<PolicyId>; 2] = Default::default();
        for &p in self.namespaces[n as usize].policies.values() {
            let body = &self.policies[p as usize].body;
            if body.pod_selector.matches(&s.shape.labels) {
                for d in body.types.iter() {
                    selecting[d.index()].push(p);
                }
            }
        }
        self.text += shape_text(&s.shape);
        let g = self.groups.insert(PodGroup {
            workload: w,
            namespace: n,
            shape: s.shape,
            sources: 1,
            via,
            selecting,
        }) as GroupId;
        self.workloads[w as usize].groups.push(g);
        self.namespaces[n as usize].groups.push(g);
        g
    }

    /// One pod (or template) of group `g` fewer: the group goes with its
    /// last, the workload with its last group.
    fn release_source(&mut self, g: GroupId) {
        let group = &mut self.groups[g as usize];
        group.sources -= 1;
        if group.sources > 0 {
            return;
        }
        let group = self.groups.remove(g as usize);
        self.text -= shape_text(&group.shape);
        let wl = &mut self.workloads[group.workload as usize];
        wl.groups.retain(|&x| x != g);
        if wl.groups.is_empty() {
            let wl = self.workloads.remove(group.workload as usize);
            self.wl_by_id.remove(&wl.id);
            self.templates.remove(&group.workload);
        }
        self.namespaces[group.namespace as usize]
            .groups
            .retain(|&x| x != g);
        self.drop_ns_if_unused(group.namespace);
    }

    /// Adds or replaces pod `name` (in `s.workload`'s namespace), shown as
    /// the workload a user wrote (see [`PodSummary::shown_as`]).
    pub fn put_pod(&mut self, name: &str, s: PodSummary) {
        let shown = s.shown_as(&self.owners);
        if self.has_manifest(&shown) {
            self.drop_pod(&shown.namespace, name);
            self.hidden
                .insert((shown.namespace.as_ref().into(), name.into()), s);
            return;
        }
        self.hidden
            .remove(&(shown.namespace.as_ref().into(), name.into()));
        let n = self.ns_or_insert(&shown.namespace);
        let g = self.add_source(shown, s);
        match self.pods.insert((n, name.into()), g) {
            Some(old) => self.release_source(old),
            None => self.text += name.len(),
        }
    }

    /// Removes pod `namespace/name`, if present, with its addresses.
    pub fn remove_pod(&mut self, namespace: &str, name: &str) {
        self.ips.remove(namespace, name);
        self.drop_pod(namespace, name);
    }

    /// Records pod `namespace/name`'s addresses (after [`Model::put_pod`]);
    /// they go with it.
    pub fn put_pod_addrs(&mut self, namespace: &str, name: &str, addrs: PodAddrs) {
        self.ips.put(namespace, name, addrs);
    }

    /// Removes pod `namespace/name` from the groups, keeping its addresses
    /// (it is only being set aside or moved).
    fn drop_pod(&mut self, namespace: &str, name: &str) {
        self.hidden.remove(&(namespace.into(), name.into()));
        let Some(n) = self.ns_id(namespace) else {
            return;
        };
        if let Some(g) = self.pods.remove(&(n, name.into())) {
            self.text -= name.len();
            self.release_source(g);
        }
    }

    /// Adds or replaces a workload manifest's pod template. The manifest
    /// says what the workload's pods are: pods of it held so far are set
    /// aside (its rollout would replace them).
    pub fn put_template(&mut self, s: PodSummary) {
        let id = s.workload.clone();
        let s = PodSummary {
            workload_uid: None,
            ..s
        };
        let g = self.add_source(id.clone(), s);
        let w = self.groups[g as usize].workload;
        if let Some(old) = self.templates.insert(w, g) {
            self.release_source(old);
        }
        debug_assert_eq!(self.wl_id(&id), Some(w));
        let others: Vec<GroupId> = self.workloads[w as usize]
            .groups
            .iter()
            .copied()
            .filter(|&x| x != g)
            .collect();
        for other in others {
            self.hide_group(other);
        }
    }

    /// Adds a pod summary that is never replaced or removed.
    pub fn add_summary(&mut self, s: PodSummary) {
        let shown = s.shown_as(&self.owners);
        if !self.has_manifest(&shown) {
            self.add_source(shown, s);
        }
    }

    // ---- owners: pods shown as the workload a user wrote ------------

    /// Is workload `id` given by its own manifest?
    fn has_manifest(&self, id: &WorkloadId) -> bool {
        self.wl_id(id)
            .is_some_and(|w| self.templates.contains_key(&w))
    }

    /// Records a ReplicaSet's or Job's metadata; the pods that name it
    /// follow its controller.
    pub fn put_owner(&mut self, kind: Intermediate, meta: &ObjectMeta) {
        self.owners.put(kind, meta, DEFAULT_NAMESPACE);
        let ns = namespace_of(meta, DEFAULT_NAMESPACE);
        self.rehome(&ns, kind, meta.name.as_deref().unwrap_or_default());
    }

    /// Forgets a ReplicaSet or Job; the pods that name it are shown as it.
    pub fn remove_owner(&mut self, kind: Intermediate, namespace: &str, name: &str) {
        self.owners.remove(kind, namespace, name);
        self.rehome(namespace, kind, name);
    }

    /// `(namespace, name)` of every ReplicaSet or Job of `kind` known.
    pub fn owner_keys(&self, kind: Intermediate) -> Vec<(String, String)> {
        self.owners.keys(kind)
    }

    /// Shows the pods naming ReplicaSet or Job `kind` `ns/name` as the
    /// owner table now says: their groups move whole to that workload.
    fn rehome(&mut self, ns: &str, kind: Intermediate, name: &str) {
        let groups: Vec<GroupId> = match self.ns_id(ns) {
            Some(n) => self.namespaces[n as usize]
                .groups
                .iter()
                .copied()
                .filter(|&g| {
                    let via = &self.groups[g as usize].via;
                    via.as_ref()
                        .is_some_and(|v| v.kind == kind && &*v.name == name)
                })
                .collect(),
            None => Vec::new(),
        };
        for g in groups {
            let summary = self.summary_of(g);
            let shown = summary.shown_as(&self.owners);
            let from = self.groups[g as usize].workload;
            if self.workloads[from as usize].id == shown {
                continue;
            }
            if self.has_manifest(&shown) {
                self.hide_group(g);
                continue;
            }
            let to = self.wl_or_insert(shown);
            self.groups[g as usize].workload = to;
            self.workloads[to as usize].groups.push(g);
            let wl = &mut self.workloads[from as usize];
            wl.groups.retain(|&x| x != g);
            if wl.groups.is_empty() {
                let wl = self.workloads.remove(from as usize);
                self.wl_by_id.remove(&wl.id);
            }
        }
        // Pods set aside may now belong to a workload without manifest.
        let held: Vec<(Box<str>, PodSummary)> = self
            .hidden
            .iter()
            .filter(|((n, _), s)| {
                &**n == ns && &*s.workload.name == name && &*s.workload.kind == kind.kind()
            })
            .map(|((_, pod), s)| (pod.clone(), s.clone()))
            .collect();
        for (pod, s) in held {
            self.put_pod(&pod, s);
        }
    }

    /// What group `g`'s pods are: their controller, its uid, their shape.
    fn summary_of(&self, g: GroupId) -> PodSummary {
        let group = &self.groups[g as usize];
        let shown = &self.workloads[group.workload as usize].id;
        let (workload, workload_uid) = match &group.via {
            Some(v) => (
                WorkloadId {
                    namespace: Arc::clone(&shown.namespace),
                    name: Arc::clone(&v.name),
                    kind: v.kind.kind().into(),
                },
                v.uid.clone(),
            ),
            None => (shown.clone(), None),
        };
        PodSummary {
            workload,
            workload_uid,
            shape: group.shape.clone(),
        }
    }

    /// Sets the pods of group `g` aside: their workload's manifest says
    /// what its pods are. (Summaries, which have no name, are dropped.)
    fn hide_group(&mut self, g: GroupId) {
        let summary = self.summary_of(g);
        let ns = Arc::clone(
            &self.workloads[self.groups[g as usize].workload as usize]
                .id
                .namespace,
        );
        let pods: Vec<(NsId, Box<str>)> = self
            .pods
            .iter()
            .filter(|(_, x)| **x == g)
            .map(|(k, _)| k.clone())
            .collect();
        for key in pods {
            self.remove_pod(&ns, &key.1);
            self.hidden
                .insert((ns.as_ref().into(), key.1), summary.clone());
        }
        if self.groups.contains(g as usize) {
            // What is left are summaries: gone with the group.
            self.groups[g as usize].sources = 1;
            self.release_source(g);
        }
    }

    /// Forgets the pods, templates and policies of namespace `name`; its
    /// labels and the owner table stay.
    pub fn forget_namespace(&mut self, name: &str) {
        self.hidden.retain(|(ns, _), _| &**ns != name);
        let Some(n) = self.ns_id(name) else {
            return;
        };
        let pods: Vec<Box<str>> = self
            .pods
            .keys()
            .filter(|(x, _)| *x == n)
            .map(|(_, pod)| pod.clone())
            .collect();
        for pod in pods {
            self.remove_pod(name, &pod);
        }
        let templates: Vec<(WlId, GroupId)> = self
            .templates
            .iter()
            .filter(|(_, g)| self.groups[**g as usize].namespace == n)
            .map(|(w, g)| (*w, *g))
            .collect();
        for (w, g) in templates {
            self.templates.remove(&w);
            self.release_source(g);
        }
        let policies: Vec<Box<str>> = self.namespaces[n as usize]
            .policies
            .keys()
            .cloned()
            .collect();
        for p in policies {
            self.remove_policy(name, &p);
        }
    }

    /// Adds or replaces a policy.
    pub fn put_policy(&mut self, p: &Policy) {
        let n = self.ns_or_insert(&p.namespace);
        let body = self.intern.intern(p);
        let existing = self.namespaces[n as usize]
            .policies
            .get(p.name.as_str())
            .copied();
        let id = match existing {
            Some(id) => {
                let old = std::mem::replace(&mut self.policies[id as usize].body, body);
                self.intern.release(&old);
                id
            }
            None => {
                self.text += p.name.len();
                let id = self.policies.insert(StoredPolicy {
                    namespace: n,
                    name: p.name.as_str().into(),
                    body,
                }) as PolicyId;
                self.namespaces[n as usize]
                    .policies
                    .insert(p.name.as_str().into(), id);
                id
            }
        };
        self.reselect(n, id);
    }

    /// Removes policy `namespace/name`, if present.
    pub fn remove_policy(&mut self, namespace: &str, name: &str) {
        let Some(n) = self.ns_id(namespace) else {
            return;
        };
        let Some(id) = self.namespaces[n as usize].policies.remove(name) else {
            return;
        };
        for &g in &self.namespaces[n as usize].groups {
            for list in &mut self.groups[g as usize].selecting {
                list.retain(|&x| x != id);
            }
        }
        let sp = self.policies.remove(id as usize);
        self.text -= sp.name.len();
        self.intern.release(&sp.body);
        self.drop_ns_if_unused(n);
    }

    /// Recomputes which groups of namespace `n` policy `id` selects.
    fn reselect(&mut self, n: NsId, id: PolicyId) {
        let body = Arc::clone(&self.policies[id as usize].body);
        for &g in &self.namespaces[n as usize].groups {
            let group = &mut self.groups[g as usize];
            let selected = body.pod_selector.matches(&group.shape.labels);
            for d in Direction::ALL {
                let list = &mut group.selecting[d.index()];
                list.retain(|&x| x != id);
                if selected && body.types.contains(d) {
                    list.push(id);
                }
            }
        }
    }

    /// Replaces every cluster-wide policy.
    pub fn set_cluster_policies(&mut self, set: Arc<ClusterPolicies>) {
        self.cluster = set;
    }

    /// Adds or replaces a cluster-wide policy.
    pub fn put_cluster_policy(&mut self, p: ClusterPolicy) {
        Arc::make_mut(&mut self.cluster).put(p);
    }

    /// Removes a cluster-wide policy, if present.
    pub fn remove_cluster_policy(&mut self, kind: ClusterKind, name: &str) {
        if self.cluster.get(kind, name).is_some() {
            Arc::make_mut(&mut self.cluster).remove(kind, name);
        }
    }

    /// Adds or replaces node `name` with its labels and addresses.
    pub fn put_node(&mut self, name: &str, labels: Labels, addresses: AddrSet) {
        match self.node_names.iter().position(|n| &**n == name) {
            Some(i) => self.nodes[i] = (labels, addresses),
            None => {
                self.node_names.push(name.into());
                self.nodes.push((labels, addresses));
            }
        }
    }

    /// Forgets every namespace, pod or policy.
    pub fn clear(&mut self, kind: Kind) {
        match kind {
            Kind::ClusterPolicies => self.cluster = Arc::default(),
            Kind::Namespaces => {
                let names: Vec<Arc<str>> = self.ns_by_name.keys().cloned().collect();
                for n in names {
                    self.remove_namespace(&n);
                }
            }
            Kind::ReplicaSets | Kind::Jobs => {
                let kind = if kind == Kind::Jobs {
                    Intermediate::Job
                } else {
                    Intermediate::ReplicaSet
                };
                for (ns, name) in self.owner_keys(kind) {
                    self.remove_owner(kind, &ns, &name);
                }
            }
            Kind::Pods => {
                self.hidden.clear();
                self.ips.clear();
                let pods: Vec<((NsId, Box<str>), GroupId)> = self.pods.drain().collect();
                for ((_, name), g) in pods {
                    self.text -= name.len();
                    self.release_source(g);
                }
            }
            Kind::Policies => {
                let all: Vec<(Arc<str>, Box<str>)> = self
                    .policies
                    .iter()
                    .map(|(_, p)| {
                        (
                            Arc::clone(&self.namespaces[p.namespace as usize].name),
                            p.name.clone(),
                        )
                    })
                    .collect();
                for (ns, name) in all {
                    self.remove_policy(&ns, &name);
                }
            }
        }
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
        assert_eq!(m.shapes(m.workloads().next().unwrap()).len(), 1);
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
        assert_eq!(m.workloads().next().unwrap().to_string(), "shop/b[Pod]");
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
        assert_eq!(m.workloads().len(), 0);
        assert!(
            m.policy("shop", "deny").is_some(),
            "clearing pods keeps policies"
        );
        b.clear(Kind::Policies).clear(Kind::Namespaces);
        assert!(b.build().policy("shop", "deny").is_none());
    }
}
