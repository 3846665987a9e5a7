//! Which workload a user wrote, for a pod: its controller, followed one
//! step further when that controller was itself made by one. A Deployment
//! makes ReplicaSets and a CronJob makes Jobs, so a pod of ReplicaSet
//! `web-85854c6447` controlled by Deployment `web` is shown as
//! `web[Deployment]`, a name that survives every rollout.
//!
//! [`Owners`] holds what is known of ReplicaSets and Jobs (uid and
//! controller), from manifests that include them or from a live
//! metadata-only list or watch. Owner references are the only truth:
//! - a pod whose controller the table does not know (not yet seen, or
//!   never given, as in the connectivity fixtures) is shown as that
//!   controller; nothing is guessed from names;
//! - the `pod-template-hash` convention (`<deployment>-<hash>`) is never
//!   trusted alone: a ReplicaSet adopted by another Deployment belongs to
//!   the Deployment its own owner reference names, whatever its name says;
//! - when the pod's reference and the table both carry a uid, they must
//!   agree (a ReplicaSet deleted and made again under the same name is
//!   another object).
//!
//! Owner references never cross namespaces, so the top-level workload is
//! in the pod's namespace.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::model::{PodShape, PodSummary, WorkloadId};

/// The kinds whose own controller is followed: what controllers make
/// between the workload a user wrote and its pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Intermediate {
    /// apps/v1 ReplicaSet (made by a Deployment, or written bare).
    ReplicaSet,
    /// batch/v1 Job (made by a CronJob, or written bare).
    Job,
}

impl Intermediate {
    /// Both kinds.
    pub const ALL: [Intermediate; 2] = [Intermediate::ReplicaSet, Intermediate::Job];

    /// The kind's name.
    pub fn kind(self) -> &'static str {
        match self {
            Intermediate::ReplicaSet => "ReplicaSet",
            Intermediate::Job => "Job",
        }
    }

    /// The kind named `kind`, if it is one of these.
    pub fn from_kind(kind: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.kind() == kind)
    }

    fn slot(self) -> usize {
        match self {
            Intermediate::ReplicaSet => 0,
            Intermediate::Job => 1,
        }
    }
}

/// The owner reference with `controller: true` (the API server allows at
/// most one), unless it is a Node: the mirror pod of a static pod is
/// controlled by its Node and belongs to no workload.
pub fn controller(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .filter(|o| o.kind != "Node")
}

/// What is known of one ReplicaSet or Job.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Known {
    uid: Option<Arc<str>>,
    /// Its controller's kind and name, if it has one.
    controller: Option<(Arc<str>, Arc<str>)>,
}

/// ReplicaSets and Jobs by namespace and name, each with its uid and its
/// own controller: the second step of every owner chain.
#[derive(Debug, Clone, Default)]
pub struct Owners {
    // One map per kind: namespace -> name -> what is known.
    known: [BTreeMap<String, BTreeMap<String, Known>>; 2],
}

fn non_empty(s: &str) -> Option<Arc<str>> {
    (!s.is_empty()).then(|| Arc::from(s))
}

impl Owners {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a ReplicaSet's or Job's metadata (all a metadata-only watch
    /// gives), replacing what was known of the object of that name.
    pub fn put(&mut self, kind: Intermediate, meta: &ObjectMeta, default_namespace: &str) {
        let Some(name) = meta.name.as_deref().filter(|n| !n.is_empty()) else {
            return;
        };
        let ns = meta
            .namespace
            .as_deref()
            .filter(|n| !n.is_empty())
            .unwrap_or(default_namespace);
        let known = Known {
            uid: meta.uid.as_deref().and_then(non_empty),
            // A reference without a kind names nothing that can be shown.
            controller: controller(meta)
                .filter(|c| !c.kind.is_empty() && !c.name.is_empty())
                .map(|c| (Arc::from(c.kind.as_str()), Arc::from(c.name.as_str()))),
        };
        self.known[kind.slot()]
            .entry(ns.to_owned())
            .or_default()
            .insert(name.to_owned(), known);
    }

    /// Forgets a ReplicaSet or Job, if known.
    pub fn remove(&mut self, kind: Intermediate, namespace: &str, name: &str) {
        let map = &mut self.known[kind.slot()];
        if let Some(names) = map.get_mut(namespace) {
            names.remove(name);
            if names.is_empty() {
                map.remove(namespace);
            }
        }
    }

    /// Forgets every object of `kind`: what a watch does before it lists
    /// again.
    pub fn clear(&mut self, kind: Intermediate) {
        self.known[kind.slot()].clear();
    }

    /// How many ReplicaSets and Jobs are known.
    pub fn len(&self) -> usize {
        self.known
            .iter()
            .flat_map(|m| m.values())
            .map(BTreeMap::len)
            .sum()
    }

    /// Is nothing known?
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The workload `direct` is shown as. `direct` is what an object's
    /// controller reference names (or a workload manifest itself), `uid`
    /// the uid that reference carries. A ReplicaSet or Job the table knows
    /// is shown as its own controller, or as itself when it has none;
    /// anything else, and anything unknown, is `direct`.
    pub fn top_level(&self, direct: &WorkloadId, uid: Option<&str>) -> WorkloadId {
        let Some(kind) = Intermediate::from_kind(&direct.kind) else {
            return direct.clone();
        };
        let known = self.known[kind.slot()]
            .get(&*direct.namespace)
            .and_then(|names| names.get(&*direct.name));
        match known {
            Some(Known {
                uid: Some(have),
                controller: _,
            }) if uid.is_some_and(|want| want != &**have) => direct.clone(),
            Some(Known {
                controller: Some((kind, name)),
                ..
            }) => WorkloadId {
                namespace: Arc::clone(&direct.namespace),
                name: Arc::clone(name),
                kind: Arc::clone(kind),
            },
            _ => direct.clone(),
        }
    }

    /// Every pod shape under the workload it is shown as. `pods` are what
    /// pods and watches gave; `templates` the pod templates of workload
    /// manifests. A workload whose own manifest is given (a Deployment,
    /// a bare ReplicaSet, ...) is what that manifest says its pods are:
    /// its running pods, and the templates of ReplicaSets or Jobs it
    /// controls, are left out, as a rollout of the manifest replaces them.
    pub fn name_all<'a>(
        &'a self,
        pods: impl Iterator<Item = &'a PodSummary> + 'a,
        templates: impl Iterator<Item = &'a PodSummary> + 'a,
    ) -> impl Iterator<Item = (WorkloadId, &'a PodShape)> + 'a {
        let templates: Vec<(WorkloadId, &PodSummary)> = templates
            .map(|s| (self.top_level(&s.workload, s.workload_uid.as_deref()), s))
            .collect();
        let defined: BTreeSet<WorkloadId> = templates
            .iter()
            .filter(|(w, s)| *w == s.workload)
            .map(|(w, _)| w.clone())
            .collect();
        let lower = pods.map(|s| (self.top_level(&s.workload, s.workload_uid.as_deref()), s));
        let (top, rest): (Vec<_>, Vec<_>) =
            templates.into_iter().partition(|(w, s)| *w == s.workload);
        top.into_iter().map(|(w, s)| (w, &s.shape)).chain(
            rest.into_iter()
                .chain(lower)
                .filter(move |(w, _)| !defined.contains(w))
                .map(|(w, s)| (w, &s.shape)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reach::ModelBuilder;
    use k8s_openapi::api::core::v1::Pod;

    /// Metadata of a ReplicaSet or Job, with an optional controller.
    fn meta(name: &str, uid: &str, controller: Option<(&str, &str)>) -> ObjectMeta {
        serde_json::from_value(serde_json::json!({
            "name": name, "namespace": "shop", "uid": uid,
            "ownerReferences": controller.map(|(kind, owner)| vec![serde_json::json!({
                "apiVersion": if kind == "CronJob" { "batch/v1" } else { "apps/v1" },
                "kind": kind, "name": owner, "uid": format!("uid-{owner}"),
                "controller": true, "blockOwnerDeletion": true
            })]),
        }))
        .unwrap()
    }

    /// A pod as the ReplicaSet or Job controller makes it (the shape of
    /// `mutating-pod-create-replicaset-controller.json`), or a bare one.
    fn pod(name: &str, labels: serde_json::Value, owner: Option<(&str, &str, &str)>) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": name, "namespace": "shop", "labels": labels,
                "ownerReferences": owner.map(|(kind, owner, uid)| vec![serde_json::json!({
                    "apiVersion": if kind == "Job" { "batch/v1" } else { "apps/v1" },
                    "kind": kind, "name": owner, "uid": uid,
                    "controller": true, "blockOwnerDeletion": true
                })]),
            },
            "spec": {"containers": [{"name": "c", "image": "x"}]}
        }))
        .unwrap()
    }

    fn shown(owners: &Owners, p: &Pod) -> String {
        let s = PodSummary::from_pod(p, "default");
        owners
            .top_level(&s.workload, s.workload_uid.as_deref())
            .to_string()
    }

    /// The truth table of the issue: each row is what is known of the
    /// owner chain, and the name the pod is shown by.
    #[test]
    fn owner_chains_truth_table() {
        let rs = Intermediate::ReplicaSet;
        let job = Intermediate::Job;
        let hashed = serde_json::json!({"app": "web", "pod-template-hash": "85854c6447"});
        let web_pod = pod(
            "web-85854c6447-x1",
            hashed.clone(),
            Some(("ReplicaSet", "web-85854c6447", "uid-rs")),
        );

        // Deployment -> ReplicaSet -> Pod.
        let mut o = Owners::new();
        o.put(
            rs,
            &meta("web-85854c6447", "uid-rs", Some(("Deployment", "web"))),
            "default",
        );
        assert_eq!(shown(&o, &web_pod), "shop/web[Deployment]");

        // CronJob -> Job -> Pod.
        o.put(
            job,
            &meta("backup-29034720", "uid-job", Some(("CronJob", "backup"))),
            "default",
        );
        let job_pod = pod(
            "backup-29034720-q8z",
            serde_json::json!({"job-name": "backup-29034720"}),
            Some(("Job", "backup-29034720", "uid-job")),
        );
        assert_eq!(shown(&o, &job_pod), "shop/backup[CronJob]");

        // A bare ReplicaSet (and a bare Job) is the workload.
        o.put(rs, &meta("cache", "uid-cache", None), "default");
        let cache_pod = pod(
            "cache-7vq",
            serde_json::json!({"app": "cache"}),
            Some(("ReplicaSet", "cache", "uid-cache")),
        );
        assert_eq!(shown(&o, &cache_pod), "shop/cache[ReplicaSet]");
        o.put(job, &meta("migrate", "uid-migrate", None), "default");
        let migrate_pod = pod(
            "migrate-2xk",
            serde_json::json!({}),
            Some(("Job", "migrate", "uid-migrate")),
        );
        assert_eq!(shown(&o, &migrate_pod), "shop/migrate[Job]");

        // An orphaned pod: the garbage collector removed its owner
        // reference when its ReplicaSet was deleted with
        // propagationPolicy=Orphan. It is its own workload.
        let orphan = pod("web-85854c6447-x2", hashed.clone(), None);
        assert_eq!(shown(&o, &orphan), "shop/web-85854c6447-x2[Pod]");

        // Owner not yet seen (a watch event still on its way, or a file
        // set that does not include it): shown as its direct controller,
        // with no guess from the pod-template-hash naming convention.
        let early = pod(
            "api-5d9f8b7c6d-z9",
            serde_json::json!({"app": "api", "pod-template-hash": "5d9f8b7c6d"}),
            Some(("ReplicaSet", "api-5d9f8b7c6d", "uid-api-rs")),
        );
        assert_eq!(shown(&o, &early), "shop/api-5d9f8b7c6d[ReplicaSet]");
        // ... and named by its Deployment once the ReplicaSet is seen.
        o.put(
            rs,
            &meta("api-5d9f8b7c6d", "uid-api-rs", Some(("Deployment", "api"))),
            "default",
        );
        assert_eq!(shown(&o, &early), "shop/api[Deployment]");

        // A ReplicaSet adopted by another Deployment (its selector matched
        // after the first was deleted with --cascade=orphan): the owner
        // reference wins over the name's `web-` prefix and the pod's
        // pod-template-hash, which match the convention for `web`.
        o.put(
            rs,
            &meta("web-85854c6447", "uid-rs", Some(("Deployment", "web-v2"))),
            "default",
        );
        assert_eq!(shown(&o, &web_pod), "shop/web-v2[Deployment]");

        // A ReplicaSet orphaned from its Deployment is bare again.
        o.put(rs, &meta("web-85854c6447", "uid-rs", None), "default");
        assert_eq!(shown(&o, &web_pod), "shop/web-85854c6447[ReplicaSet]");

        // Same name, another object: the pod's reference names uid-rs, the
        // table knows a ReplicaSet made again under that name.
        o.put(
            rs,
            &meta("web-85854c6447", "uid-other", Some(("Deployment", "web"))),
            "default",
        );
        assert_eq!(shown(&o, &web_pod), "shop/web-85854c6447[ReplicaSet]");
        // Without a uid on either side the name is all there is.
        o.put(
            rs,
            &meta("web-85854c6447", "", Some(("Deployment", "web"))),
            "default",
        );
        assert_eq!(shown(&o, &web_pod), "shop/web[Deployment]");

        // Only ReplicaSets and Jobs are followed: a StatefulSet's pods are
        // the StatefulSet, whatever else is known.
        let ss_pod = pod(
            "db-0",
            serde_json::json!({"app": "db"}),
            Some(("StatefulSet", "db", "uid-db")),
        );
        assert_eq!(shown(&o, &ss_pod), "shop/db[StatefulSet]");
        // A Job and a ReplicaSet of one name are different objects.
        o.put(
            job,
            &meta("twin", "uid-twin-job", Some(("CronJob", "nightly"))),
            "default",
        );
        let twin = pod(
            "twin-1",
            serde_json::json!({}),
            Some(("ReplicaSet", "twin", "uid-twin-rs")),
        );
        assert_eq!(shown(&o, &twin), "shop/twin[ReplicaSet]");

        // Deleted and re-listed.
        o.remove(rs, "shop", "api-5d9f8b7c6d");
        assert_eq!(shown(&o, &early), "shop/api-5d9f8b7c6d[ReplicaSet]");
        let before = o.len();
        o.clear(job);
        assert_eq!(shown(&o, &job_pod), "shop/backup-29034720[Job]");
        assert_eq!(o.len(), before - 3);
    }

    /// Owner references are per namespace: a ReplicaSet of the same name
    /// elsewhere says nothing about this pod.
    #[test]
    fn owners_are_looked_up_in_the_pods_namespace() {
        let mut o = Owners::new();
        let mut other = meta("web-85854c6447", "", Some(("Deployment", "web")));
        other.namespace = Some("staging".into());
        o.put(Intermediate::ReplicaSet, &other, "default");
        let p = pod(
            "web-85854c6447-x1",
            serde_json::json!({}),
            Some(("ReplicaSet", "web-85854c6447", "u")),
        );
        assert_eq!(shown(&o, &p), "shop/web-85854c6447[ReplicaSet]");
    }

    fn docs(yaml: &str) -> crate::manifest::Manifests {
        let mut m = crate::manifest::Manifests::default();
        crate::manifest::read_text(std::path::Path::new("t.yaml"), yaml, &mut m);
        assert!(m.skipped.is_empty(), "{:?}", m.skipped);
        m
    }

    const RS_OF_WEB: &str = "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: web-85854c6447\n  namespace: shop\n  uid: uid-rs\n  labels: {app: web, pod-template-hash: 85854c6447}\n  ownerReferences: [{apiVersion: apps/v1, kind: Deployment, name: web, uid: uid-web, controller: true}]\nspec:\n  selector: {matchLabels: {app: web, pod-template-hash: 85854c6447}}\n  template:\n    metadata: {labels: {app: web, pod-template-hash: 85854c6447}}\n    spec: {containers: [{name: c, image: x, ports: [{containerPort: 8080}]}]}\n";
    const POD_OF_WEB: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web-85854c6447-x1\n  namespace: shop\n  labels: {app: web, pod-template-hash: 85854c6447}\n  ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: web-85854c6447, uid: uid-rs, controller: true}]\nspec: {containers: [{name: c, image: x, ports: [{containerPort: 8080}]}]}\n";
    const DEPLOYMENT_WEB: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web2}}\n    spec: {containers: [{name: c, image: x}]}\n";

    /// From manifests: a ReplicaSet in the files names its pods' workload
    /// (in either order), and its own template is the Deployment's.
    #[test]
    fn manifests_that_include_the_owners_name_the_deployment() {
        for yaml in [
            format!("{RS_OF_WEB}---\n{POD_OF_WEB}"),
            format!("{POD_OF_WEB}---\n{RS_OF_WEB}"),
        ] {
            let m = ModelBuilder::new().documents(&docs(&yaml)).unwrap().build();
            let names: Vec<String> = m.workloads().iter().map(ToString::to_string).collect();
            assert_eq!(names, ["shop/web[Deployment]"]);
            assert_eq!(m.find("web").len(), 1);
            // The pod and the ReplicaSet's template look alike.
            assert_eq!(m.shapes(&m.workloads()[0]).len(), 1);
        }
        // Without the ReplicaSet, the pod keeps its controller's name.
        let m = ModelBuilder::new()
            .documents(&docs(POD_OF_WEB))
            .unwrap()
            .build();
        assert_eq!(
            m.workloads()[0].to_string(),
            "shop/web-85854c6447[ReplicaSet]"
        );
    }

    /// A workload's own manifest says what its pods are: the running pods
    /// and the ReplicaSet's template it would roll away are left out.
    #[test]
    fn a_workload_manifest_stands_for_its_pods() {
        let yaml = format!("{RS_OF_WEB}---\n{POD_OF_WEB}---\n{DEPLOYMENT_WEB}");
        let m = ModelBuilder::new().documents(&docs(&yaml)).unwrap().build();
        assert_eq!(m.workloads().len(), 1);
        let shapes = m.shapes(&m.workloads()[0]);
        assert_eq!(shapes.len(), 1);
        assert_eq!(shapes[0].labels["app"], "web2", "the Deployment's template");

        // Live metadata and live pods, then the manifest on top: the same.
        let mut b = ModelBuilder::new();
        let rs: ObjectMeta =
            serde_json::from_value(docs(RS_OF_WEB).documents[0].value["metadata"].clone()).unwrap();
        b.owner(Intermediate::ReplicaSet, &rs);
        b.documents(&docs(POD_OF_WEB)).unwrap();
        assert_eq!(b.build().workloads()[0].to_string(), "shop/web[Deployment]");
        b.documents(&docs(DEPLOYMENT_WEB)).unwrap();
        let m = b.build();
        assert_eq!(m.shapes(&m.workloads()[0])[0].labels["app"], "web2");
    }
}
