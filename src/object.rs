//! The Kubernetes objects palisade reads, as plain typed data: what an
//! admission request carries, what a manifest holds, what the reachability
//! model is built from. Below both the decisions and the model, so neither
//! reaches into the other for them.

use std::fmt;
use std::marker::PhantomData;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Namespace, Pod, PodTemplateSpec, ReplicationController};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::{DeserializeOwned, Deserializer, IgnoredAny};
use serde::{Deserialize, Serialize};

use crate::cluster_policy::{self, ClusterKind, ClusterPolicy, ClusterPolicyError};
use crate::prune::{self, Keep};

/// API group, version and kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Gvk {
    /// `""` for the core group.
    #[serde(default)]
    pub group: String,
    /// `v1`.
    #[serde(default)]
    pub version: String,
    /// `Pod`.
    #[serde(default)]
    pub kind: String,
}

impl Gvk {
    /// From the pieces.
    pub fn new(group: &str, version: &str, kind: &str) -> Self {
        Gvk {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
        }
    }

    /// Which of the kinds palisade decides this is (each in its own API
    /// group); `None` for any other kind.
    fn decided(&self) -> Option<Decided> {
        match (self.group.as_str(), self.kind.as_str()) {
            ("", "Pod") => Some(Decided::Pod),
            ("networking.k8s.io", "NetworkPolicy") => Some(Decided::NetworkPolicy),
            ("", "Namespace") => Some(Decided::Namespace),
            (g, k) => ClusterKind::from_group_kind(g, k)
                .map(Decided::ClusterPolicy)
                .or_else(|| WorkloadKind::from_gvk(self).map(Decided::Workload)),
        }
    }

    /// The kind's name if palisade decides objects of this kind (a Pod, a
    /// workload, a NetworkPolicy, a Namespace, each in its own API group);
    /// `None` for any other kind. Metrics are labelled by it, so their
    /// series stay bounded whatever kinds a client makes up.
    pub fn decided_kind(&self) -> Option<&'static str> {
        self.decided().map(|d| match d {
            Decided::Pod => "Pod",
            Decided::NetworkPolicy => "NetworkPolicy",
            Decided::Namespace => "Namespace",
            Decided::Workload(k) => k.as_str(),
            Decided::ClusterPolicy(k) => k.as_str(),
        })
    }

    /// From a manifest's `apiVersion` (`apps/v1`, `v1`) and `kind`.
    pub fn from_api_version(api_version: &str, kind: &str) -> Self {
        match api_version.split_once('/') {
            Some((g, v)) => Gvk::new(g, v, kind),
            None => Gvk::new("", api_version, kind),
        }
    }
}

impl fmt::Display for Gvk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() {
            write!(f, "{}/{}", self.version, self.kind)
        } else {
            write!(f, "{}/{}/{}", self.group, self.version, self.kind)
        }
    }
}

/// The kinds palisade decides: what [`Object`] reads, and what metrics
/// name.
#[derive(Debug, Clone, Copy)]
enum Decided {
    Pod,
    NetworkPolicy,
    Namespace,
    Workload(WorkloadKind),
    ClusterPolicy(ClusterKind),
}

/// The kinds whose pod template palisade checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum WorkloadKind {
    /// apps/v1 Deployment.
    Deployment,
    /// apps/v1 StatefulSet.
    StatefulSet,
    /// apps/v1 DaemonSet.
    DaemonSet,
    /// apps/v1 ReplicaSet.
    ReplicaSet,
    /// batch/v1 Job.
    Job,
    /// batch/v1 CronJob.
    CronJob,
    /// v1 ReplicationController.
    ReplicationController,
}

impl WorkloadKind {
    /// Every workload kind.
    pub const ALL: [WorkloadKind; 7] = [
        WorkloadKind::Deployment,
        WorkloadKind::StatefulSet,
        WorkloadKind::DaemonSet,
        WorkloadKind::ReplicaSet,
        WorkloadKind::Job,
        WorkloadKind::CronJob,
        WorkloadKind::ReplicationController,
    ];

    /// The kind's name.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
            WorkloadKind::ReplicaSet => "ReplicaSet",
            WorkloadKind::Job => "Job",
            WorkloadKind::CronJob => "CronJob",
            WorkloadKind::ReplicationController => "ReplicationController",
        }
    }

    /// The API group the kind lives in.
    pub fn group(self) -> &'static str {
        match self {
            WorkloadKind::Job | WorkloadKind::CronJob => "batch",
            WorkloadKind::ReplicationController => "",
            _ => "apps",
        }
    }

    /// The kind named `kind` in `group`, if it is a workload.
    pub fn from_gvk(gvk: &Gvk) -> Option<Self> {
        WorkloadKind::ALL
            .into_iter()
            .find(|k| k.as_str() == gvk.kind && k.group() == gvk.group)
    }
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A workload: metadata and the pod template it stamps out.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    /// Which kind.
    pub kind: WorkloadKind,
    /// The workload's own metadata.
    pub metadata: ObjectMeta,
    /// The pod template (`spec.jobTemplate.spec.template` for a CronJob).
    pub template: PodTemplateSpec,
}

/// A cluster-wide policy as sent or written: kept as its JSON and read into
/// a [`ClusterPolicy`] by the rules, so that what its schema rejects is an
/// `invalid-object` violation naming the field, as for NetworkPolicies.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterObject {
    /// Which kind.
    pub kind: ClusterKind,
    /// The API version it is written in (`v1alpha1`, `v1alpha2`).
    pub version: String,
    /// Its metadata.
    pub metadata: ObjectMeta,
    /// The object (apiVersion, kind, metadata, spec).
    pub value: serde_json::Value,
}

impl ClusterObject {
    /// Reads the policy.
    pub fn read(&self) -> Result<ClusterPolicy, ClusterPolicyError> {
        cluster_policy::read::from_value(self.kind, &self.version, &self.value)
    }
}

/// The object of a request, typed by kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    /// A Pod.
    Pod(Box<Pod>),
    /// A workload with a pod template.
    Workload(Box<Workload>),
    /// A NetworkPolicy.
    NetworkPolicy(Box<NetworkPolicy>),
    /// A Namespace.
    Namespace(Box<Namespace>),
    /// An AdminNetworkPolicy, BaselineAdminNetworkPolicy or
    /// ClusterNetworkPolicy.
    ClusterPolicy(Box<ClusterObject>),
    /// Anything else: palisade does not look inside.
    Other(Gvk),
}

impl Object {
    /// Reads an object of kind `gvk` from a review's JSON text: only the
    /// fields the rules read (see [`prune`]). Kinds palisade does not
    /// decide are not parsed at all.
    pub fn from_wire(gvk: &Gvk, json: &str) -> Result<Object, serde_json::Error> {
        Self::decode(gvk, Wire(json))
    }

    /// Reads an object of kind `gvk` from the value `de` is at, as
    /// [`Object::from_wire`] reads it from text: the same fields, judged
    /// the same way, without first isolating the object's text.
    pub fn from_stream<'de, D: Deserializer<'de>>(gvk: &Gvk, de: D) -> Result<Object, D::Error> {
        Self::decode(gvk, Stream(de, PhantomData))
    }

    /// Reads an object of kind `gvk` from an already-parsed JSON value, a
    /// manifest's: all of it, so a mistake anywhere in it is reported.
    pub fn from_value(gvk: &Gvk, value: serde_json::Value) -> Result<Object, serde_json::Error> {
        Self::decode(gvk, value)
    }

    fn decode<S: Source>(gvk: &Gvk, src: S) -> Result<Object, S::Error> {
        Ok(match gvk.decided() {
            Some(Decided::Pod) => Object::Pod(Box::new(src.read(&prune::POD)?)),
            Some(Decided::NetworkPolicy) => {
                Object::NetworkPolicy(Box::new(src.read(&prune::WHOLE_BUT_METADATA)?))
            }
            Some(Decided::Namespace) => {
                Object::Namespace(Box::new(src.read(&prune::WHOLE_BUT_METADATA)?))
            }
            Some(Decided::ClusterPolicy(kind)) => {
                let value: serde_json::Value = src.read(&prune::WHOLE_BUT_METADATA)?;
                // Metadata that does not parse is as bad a body as for any
                // other kind; the spec is judged by the rules.
                let metadata = match value.get("metadata") {
                    Some(m) => ObjectMeta::deserialize(m).map_err(S::custom)?,
                    None => ObjectMeta::default(),
                };
                Object::ClusterPolicy(Box::new(ClusterObject {
                    kind,
                    version: gvk.version.clone(),
                    metadata,
                    value,
                }))
            }
            None => {
                src.skip()?;
                Object::Other(gvk.clone())
            }
            Some(Decided::Workload(kind)) => {
                let keep = &prune::WORKLOAD;
                let (metadata, template) = match kind {
                    WorkloadKind::Deployment => {
                        let d: Deployment = src.read(keep)?;
                        (d.metadata, Some(d.spec.template))
                    }
                    WorkloadKind::StatefulSet => {
                        let d: StatefulSet = src.read(keep)?;
                        (d.metadata, Some(d.spec.template))
                    }
                    WorkloadKind::DaemonSet => {
                        let d: DaemonSet = src.read(keep)?;
                        (d.metadata, Some(d.spec.template))
                    }
                    WorkloadKind::ReplicaSet => {
                        let d: ReplicaSet = src.read(keep)?;
                        (d.metadata, d.spec.template)
                    }
                    WorkloadKind::Job => {
                        let d: Job = src.read(keep)?;
                        (d.metadata, d.spec.map(|s| s.template))
                    }
                    WorkloadKind::CronJob => {
                        let d: CronJob = src.read(&prune::CRON_JOB)?;
                        (d.metadata, d.spec.job_template.spec.map(|s| s.template))
                    }
                    WorkloadKind::ReplicationController => {
                        let d: ReplicationController = src.read(keep)?;
                        (d.metadata, d.spec.and_then(|s| s.template))
                    }
                };
                Object::Workload(Box::new(Workload {
                    kind,
                    metadata,
                    template: template.unwrap_or_default(),
                }))
            }
        })
    }

    /// The object's metadata, if it is a kind palisade reads.
    pub fn metadata(&self) -> Option<&ObjectMeta> {
        match self {
            Object::Pod(p) => Some(&p.metadata),
            Object::Workload(w) => Some(&w.metadata),
            Object::NetworkPolicy(n) => Some(&n.metadata),
            Object::Namespace(n) => Some(&n.metadata),
            Object::ClusterPolicy(c) => Some(&c.metadata),
            Object::Other(_) => None,
        }
    }
}

/// Where an object is read from: a review's text, of which only what the
/// rules read is decoded, or a manifest's value, decoded whole.
trait Source {
    type Error;
    /// An error of this source's kind from a message.
    fn custom(e: impl fmt::Display) -> Self::Error;
    fn read<T: DeserializeOwned>(self, keep: &'static Keep) -> Result<T, Self::Error>;
    /// Passes over an object palisade does not decide.
    fn skip(self) -> Result<(), Self::Error>;
}

struct Wire<'a>(&'a str);

impl Source for Wire<'_> {
    type Error = serde_json::Error;
    fn custom(e: impl fmt::Display) -> Self::Error {
        serde::de::Error::custom(e)
    }
    fn read<T: DeserializeOwned>(self, keep: &'static Keep) -> Result<T, Self::Error> {
        prune::from_str(self.0, keep)
    }
    fn skip(self) -> Result<(), Self::Error> {
        Ok(())
    }
}

impl Source for serde_json::Value {
    type Error = serde_json::Error;
    fn custom(e: impl fmt::Display) -> Self::Error {
        serde::de::Error::custom(e)
    }
    fn read<T: DeserializeOwned>(self, _: &'static Keep) -> Result<T, Self::Error> {
        serde_json::from_value(self)
    }
    fn skip(self) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// A value inside a document being read, consumed as it is decoded.
struct Stream<'de, D>(D, PhantomData<&'de ()>);

impl<'de, D: Deserializer<'de>> Source for Stream<'de, D> {
    type Error = D::Error;
    fn custom(e: impl fmt::Display) -> Self::Error {
        serde::de::Error::custom(e)
    }
    fn read<T: DeserializeOwned>(self, keep: &'static Keep) -> Result<T, Self::Error> {
        prune::deserialize(self.0, keep)
    }
    fn skip(self) -> Result<(), Self::Error> {
        IgnoredAny::deserialize(self.0).map(|_| ())
    }
}
