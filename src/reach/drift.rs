//! Drift: a cluster with manifests applied on top, as `kubectl apply`
//! would leave it, for `palisade simulate diff --cluster PATH...` (and
//! `--state DIR`, a directory standing in for the cluster).
//!
//! Objects in the files replace those of the same kind, namespace and
//! name, and a workload manifest replaces the running pods of that
//! workload: the model shows a workload whose manifest is given by that
//! manifest's template alone. Nothing is deleted unless the
//! files are the whole truth for the namespaces they mention
//! ([`Prune::Mentioned`]): then every NetworkPolicy, pod and workload of
//! those namespaces that the files do not hold is gone. Namespaces
//! themselves are never deleted.

use std::collections::BTreeSet;

use super::model::{ModelBuilder, ModelError};
use crate::cluster::static_dir::DEFAULT_NAMESPACE;
use crate::manifest::{Document, Manifests};

/// What applying the files deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Prune {
    /// Nothing: objects the files do not hold stay as they are.
    #[default]
    Nothing,
    /// The files are the whole truth for the namespaces they mention: the
    /// namespace's NetworkPolicies, pods and workloads are only those of
    /// the files.
    Mentioned,
}

/// The namespace a document speaks for, if it is a kind simulation reads:
/// a Namespace's own name, or the namespace of a Pod, workload or
/// NetworkPolicy (`default` when it names none). Other kinds (Services,
/// ConfigMaps, cluster-scoped objects) mention no namespace: a Service
/// alone does not make the files the truth for its namespace.
pub fn mentioned_namespace(d: &Document) -> Option<String> {
    match d.gvk.decided_kind()? {
        "Namespace" => Some(d.name().to_owned()).filter(|n| !n.is_empty()),
        _ => Some(d.namespace().unwrap_or(DEFAULT_NAMESPACE).to_owned()),
    }
}

/// Applies documents on top of a cluster's builder, one at a time (so
/// files can be read one by one).
#[derive(Debug)]
pub struct OnTop<'a> {
    cluster: &'a mut ModelBuilder,
    prune: Prune,
    // Namespaces already emptied of the cluster's objects.
    pruned: BTreeSet<String>,
}

impl<'a> OnTop<'a> {
    /// Starts applying onto `cluster`.
    pub fn new(cluster: &'a mut ModelBuilder, prune: Prune) -> Self {
        OnTop {
            cluster,
            prune,
            pruned: BTreeSet::new(),
        }
    }

    /// Applies one document. With [`Prune::Mentioned`], the first
    /// document of a namespace first empties it of the cluster's objects;
    /// later documents of the files then fill it.
    pub fn document(&mut self, d: &Document) -> Result<(), ModelError> {
        if self.prune == Prune::Mentioned
            && let Some(ns) = mentioned_namespace(d)
            && !self.pruned.contains(&ns)
        {
            self.cluster.forget_namespace(&ns);
            self.pruned.insert(ns);
        }
        self.cluster.document(d)?;
        Ok(())
    }

    /// Applies every document of `m`, in order.
    pub fn documents(&mut self, m: &Manifests) -> Result<(), ModelError> {
        m.documents.iter().try_for_each(|d| self.document(d))
    }

    /// The namespaces emptied so far.
    pub fn pruned(&self) -> &BTreeSet<String> {
        &self.pruned
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::reach::{Change, connections, diff};

    fn docs(yaml: &str) -> Manifests {
        let mut m = Manifests::default();
        crate::manifest::read_text(Path::new("t.yaml"), yaml, &mut m);
        assert!(m.skipped.is_empty(), "{:?}", m.skipped);
        m
    }

    /// The cluster: `web` (pods of a Deployment's ReplicaSet) may reach
    /// `db` on 5432, and a hand-made policy lets `debug` in on every port.
    const LIVE: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: web-85854c6447
  namespace: shop
  uid: rs-uid
  ownerReferences: [{apiVersion: apps/v1, kind: Deployment, name: web, uid: d-uid, controller: true}]
spec:
  selector: {matchLabels: {app: web}}
---
apiVersion: v1
kind: Pod
metadata:
  name: web-85854c6447-abcde
  namespace: shop
  labels: {app: web, pod-template-hash: 85854c6447}
  ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: web-85854c6447, uid: rs-uid, controller: true}]
spec: {containers: [{name: web, image: x}]}
---
apiVersion: v1
kind: Pod
metadata: {name: db-0, namespace: shop, labels: {app: db}, ownerReferences: [{apiVersion: apps/v1, kind: StatefulSet, name: db, uid: s-uid, controller: true}]}
spec: {containers: [{name: db, image: x, ports: [{containerPort: 5432}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: debug, namespace: shop, labels: {app: debug}}
spec: {containers: [{name: sh, image: x}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny, namespace: shop}
spec: {podSelector: {}, policyTypes: [Ingress, Egress]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-to-db, namespace: shop}
spec:
  podSelector: {}
  ingress: [{from: [{podSelector: {matchLabels: {app: web}}}], ports: [{port: 5432}]}]
  egress: [{to: [{podSelector: {matchLabels: {app: db}}}], ports: [{port: 5432}]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: hotfix-debug, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress: [{from: [{podSelector: {matchLabels: {app: debug}}}]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: debug-out, namespace: shop}
spec:
  podSelector: {matchLabels: {app: debug}}
  policyTypes: [Egress]
  egress: [{}]
"#;

    /// The repository: the same two policies for `shop`, with `web`'s
    /// rule widened to 5432 and 9187.
    const FILES: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny, namespace: shop}
spec: {podSelector: {}, policyTypes: [Ingress, Egress]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-to-db, namespace: shop}
spec:
  podSelector: {}
  ingress: [{from: [{podSelector: {matchLabels: {app: web}}}], ports: [{port: 5432}, {port: 9187}]}]
  egress: [{to: [{podSelector: {matchLabels: {app: db}}}], ports: [{port: 5432}, {port: 9187}]}]
"#;

    fn drift(prune: Prune, files: &str) -> Vec<String> {
        let mut live = ModelBuilder::new();
        live.documents(&docs(LIVE)).unwrap();
        let before = live.build();
        let mut after = live;
        OnTop::new(&mut after, prune)
            .documents(&docs(files))
            .unwrap();
        diff(&before, &after.build())
            .changes
            .iter()
            .map(Change::to_string)
            .collect()
    }

    #[test]
    fn files_replace_objects_of_the_same_name_and_delete_nothing() {
        assert_eq!(
            drift(Prune::Nothing, FILES),
            ["shop/web[Deployment] => shop/db[StatefulSet] : TCP 5432 -> TCP 5432,9187"]
        );
        // The same files again change nothing more.
        assert!(drift(Prune::Nothing, &format!("{FILES}---\n{FILES}")).len() == 1);
    }

    #[test]
    fn with_prune_what_the_files_do_not_hold_is_deleted_in_their_namespaces() {
        let changes = drift(Prune::Mentioned, FILES);
        // The files hold policies only: the pods and workloads of shop
        // they do not define are gone, and with them every connection.
        assert_eq!(
            changes,
            [
                "shop/debug[Pod] => shop/db[StatefulSet] : all ports -> no connection",
                "shop/debug[Pod] => 0.0.0.0/0,::/0[External] : all ports -> no connection",
                "shop/web[Deployment] => shop/db[StatefulSet] : TCP 5432 -> no connection",
            ]
        );
        // With the workloads in the files too, only the hand-made policy
        // (and debug, which no file defines) is gone.
        let workloads = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\n\
            spec: {selector: {matchLabels: {app: web}}, template: {metadata: {labels: {app: web}}, spec: {containers: [{name: web, image: x}]}}}\n---\n\
            apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db, namespace: shop}\n\
            spec: {serviceName: db, selector: {matchLabels: {app: db}}, template: {metadata: {labels: {app: db}}, spec: {containers: [{name: db, image: x, ports: [{containerPort: 5432}]}]}}}\n";
        assert_eq!(
            drift(Prune::Mentioned, &format!("{FILES}---\n{workloads}")),
            [
                "shop/debug[Pod] => shop/db[StatefulSet] : all ports -> no connection",
                "shop/debug[Pod] => 0.0.0.0/0,::/0[External] : all ports -> no connection",
                "shop/web[Deployment] => shop/db[StatefulSet] : TCP 5432 -> TCP 5432,9187",
            ]
        );
    }

    /// A namespace the files do not mention keeps everything, prune or not.
    #[test]
    fn prune_leaves_unmentioned_namespaces_alone() {
        let other = FILES.replace("namespace: shop", "namespace: other");
        let changes = drift(Prune::Mentioned, &other);
        assert!(changes.is_empty(), "{changes:?}");
        let mut live = ModelBuilder::new();
        live.documents(&docs(LIVE)).unwrap();
        let before = connections(&live.build()).len();
        let mut on_top = OnTop::new(&mut live, Prune::Mentioned);
        on_top.documents(&docs(&other)).unwrap();
        assert_eq!(on_top.pruned().iter().collect::<Vec<_>>(), ["other"]);
        assert_eq!(connections(&live.build()).len(), before);
    }

    /// A workload manifest in the files replaces the pods the cluster runs
    /// for it: the Deployment's new labels are what counts after.
    #[test]
    fn a_workload_in_the_files_replaces_its_running_pods() {
        let relabelled = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: frontend}}
    spec: {containers: [{name: web, image: x}]}
"#;
        assert_eq!(
            drift(Prune::Nothing, relabelled),
            ["shop/web[Deployment] => shop/db[StatefulSet] : TCP 5432 -> no connection"]
        );
    }

    #[test]
    fn which_documents_mention_a_namespace() {
        let m = docs(
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n\
             apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: b}\n---\n\
             apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: r}\n---\n\
             apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: c, namespace: d}\nspec: {schedule: '* * * * *', jobTemplate: {spec: {template: {spec: {containers: []}}}}}\n---\n\
             apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p}\nspec: {podSelector: {}}\n",
        );
        let got: Vec<Option<String>> = m.documents.iter().map(mentioned_namespace).collect();
        assert_eq!(
            got,
            [
                Some("a".into()),
                None,
                None,
                Some("d".into()),
                Some("default".into())
            ]
        );
    }
}
