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

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

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

/// An object's uid: a UUID (what the API server gives every object) held
/// in 16 bytes, or, from hand-written manifests, any text.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Uid {
    Uuid(u128),
    Text(Arc<str>),
}

impl Uid {
    fn new(s: &str) -> Option<Uid> {
        if s.is_empty() {
            return None;
        }
        Some(uuid(s).map_or_else(|| Uid::Text(s.into()), Uid::Uuid))
    }

    fn is(&self, s: &str) -> bool {
        match self {
            Uid::Uuid(u) => uuid(s) == Some(*u),
            Uid::Text(t) => **t == *s,
        }
    }
}

/// `8-4-4-4-12` lowercase hex digits, as a number.
fn uuid(s: &str) -> Option<u128> {
    let b = s.as_bytes();
    if b.len() != 36 || [8, 13, 18, 23].iter().any(|&i| b[i] != b'-') {
        return None;
    }
    let hex: String = s.chars().filter(|&c| c != '-').collect();
    if !hex
        .bytes()
        .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
    {
        return None;
    }
    u128::from_str_radix(&hex, 16).ok()
}

/// What is known of one ReplicaSet or Job that has a controller.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Known {
    uid: Option<Uid>,
    /// Its controller's kind and name (shared among the ReplicaSets of one
    /// Deployment, and the Jobs of one CronJob).
    controller: (Arc<str>, Arc<str>),
}

/// The ReplicaSets (or Jobs) of one namespace, by name.
type ByName = BTreeMap<Box<str>, Known>;

/// ReplicaSets and Jobs by namespace and name, each with its uid and its
/// own controller: the second step of every owner chain. One without a
/// controller is not kept: its pods are shown as it, as are those of one
/// never seen.
#[derive(Debug, Clone, Default)]
pub struct Owners {
    // One map per kind: namespace -> name -> what is known.
    known: [BTreeMap<Box<str>, ByName>; 2],
    // Controller kinds, held once ("Deployment", "CronJob", ...).
    kinds: Vec<Arc<str>>,
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
        // A reference without a kind names nothing that can be shown.
        let Some(c) = controller(meta).filter(|c| !c.kind.is_empty() && !c.name.is_empty()) else {
            self.remove(kind, ns, name);
            return;
        };
        let controller_kind = match self.kinds.iter().find(|k| ***k == *c.kind) {
            Some(k) => Arc::clone(k),
            None => {
                let k: Arc<str> = c.kind.as_str().into();
                self.kinds.push(Arc::clone(&k));
                k
            }
        };
        let names = self.known[kind.slot()].entry(ns.into()).or_default();
        // The ReplicaSets of one Deployment sort side by side (`web-<hash>`):
        // a neighbour with the same controller lends its name.
        let mut before = names.range::<str, _>((Bound::Unbounded, Bound::Excluded(name)));
        let after = names.range::<str, _>((Bound::Excluded(name), Bound::Unbounded));
        let neighbours = before.next_back().into_iter().chain(after.take(1));
        let controller_name = neighbours
            .map(|(_, k)| &k.controller.1)
            .find(|n| ***n == *c.name)
            .map_or_else(|| Arc::from(c.name.as_str()), Arc::clone);
        let known = Known {
            uid: meta.uid.as_deref().and_then(Uid::new),
            controller: (controller_kind, controller_name),
        };
        names.insert(name.into(), known);
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

    /// `(namespace, name)` of every ReplicaSet or Job of `kind` known.
    pub fn keys(&self, kind: Intermediate) -> Vec<(String, String)> {
        self.known[kind.slot()]
            .iter()
            .flat_map(|(ns, names)| names.keys().map(move |n| (ns.to_string(), n.to_string())))
            .collect()
    }

    /// How many ReplicaSets and Jobs with a controller are known.
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

    /// The controller (kind, name) of the ReplicaSet or Job `kind`
    /// `namespace/name`, if the table knows the object and it has one.
    /// `uid` is what the referring owner reference says: when both it and
    /// the table carry one and they differ, the table's object is another
    /// one of the same name, and nothing is known. Any other `kind` (a
    /// StatefulSet, a Pod) is never followed: `None`.
    pub fn controller_of(
        &self,
        namespace: &str,
        kind: &str,
        name: &str,
        uid: Option<&str>,
    ) -> Option<(&Arc<str>, &Arc<str>)> {
        let known = self.known[Intermediate::from_kind(kind)?.slot()]
            .get(namespace)?
            .get(name)?;
        if let (Some(have), Some(want)) = (&known.uid, uid)
            && !have.is(want)
        {
            return None;
        }
        Some((&known.controller.0, &known.controller.1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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

    /// `ns/name[Kind]` as the model shows the pod (what
    /// `PodSummary::shown_as` does; tests/owners.rs checks the two agree).
    fn shown(owners: &Owners, p: &Pod) -> String {
        match controller(&p.metadata) {
            None => format!("shop/{}[Pod]", p.metadata.name.as_deref().unwrap_or("")),
            Some(c) => match owners.controller_of("shop", &c.kind, &c.name, Some(&c.uid)) {
                Some((kind, name)) => format!("shop/{name}[{kind}]"),
                None => format!("shop/{}[{}]", c.name, c.kind),
            },
        }
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
        // Of the three Jobs, the bare one was never kept.
        assert_eq!(o.len(), before - 2);
        assert!(o.keys(job).is_empty());
        assert_eq!(o.keys(rs).len(), 1, "{:?}", o.keys(rs));
    }

    /// UUIDs are held as numbers, anything else as text; both compare as
    /// the API server's strings do.
    #[test]
    fn uids_of_either_form_are_matched_exactly() {
        let a = "b4e6a8c0-2d1f-4b3a-9c5e-7f0a2b4d6e81";
        let u = Uid::new(a).unwrap();
        assert!(matches!(u, Uid::Uuid(_)));
        assert!(u.is(a));
        assert!(!u.is("b4e6a8c0-2d1f-4b3a-9c5e-7f0a2b4d6e82"));
        assert!(
            !u.is("B4E6A8C0-2D1F-4B3A-9C5E-7F0A2B4D6E81"),
            "uids are compared as written"
        );
        let t = Uid::new("uid-rs").unwrap();
        assert!(matches!(t, Uid::Text(_)));
        assert!(t.is("uid-rs") && !t.is("uid-rs2"));
        assert!(Uid::new("").is_none());
        assert_eq!(uuid("b4e6a8c0-2d1f-4b3a-9c5e-7f0a2b4d6e8"), None);
        assert_eq!(uuid("b4e6a8c0x2d1f-4b3a-9c5e-7f0a2b4d6e81"), None);
        assert_eq!(uuid("g4e6a8c0-2d1f-4b3a-9c5e-7f0a2b4d6e81"), None);
    }

    /// The ReplicaSets of one Deployment share its name.
    #[test]
    fn siblings_share_their_controllers_name() {
        let mut o = Owners::new();
        for h in ["5d9f8b7c6d", "85854c6447", "6b9d7f6c8d"] {
            o.put(
                Intermediate::ReplicaSet,
                &meta(&format!("web-{h}"), "", Some(("Deployment", "web"))),
                "default",
            );
        }
        let a = o
            .controller_of("shop", "ReplicaSet", "web-5d9f8b7c6d", None)
            .unwrap();
        let b = o
            .controller_of("shop", "ReplicaSet", "web-85854c6447", None)
            .unwrap();
        let c = o
            .controller_of("shop", "ReplicaSet", "web-6b9d7f6c8d", None)
            .unwrap();
        assert!(Arc::ptr_eq(a.1, b.1) && Arc::ptr_eq(b.1, c.1));
        assert!(Arc::ptr_eq(a.0, c.0));
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
}
