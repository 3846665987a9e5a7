//! Pods named by the workload a user wrote, through the public API: from
//! manifests that include the owners (in any order), from live metadata,
//! and `PodSummary::shown_as` over the owner table (whose full truth table
//! is beside it, in src/reach/owners.rs).

use std::path::Path;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use palisade::manifest::{self, Manifests};
use palisade::reach::{Intermediate, ModelBuilder, Owners, PodSummary};

fn docs(yaml: &str) -> Manifests {
    let mut m = Manifests::default();
    manifest::read_text(Path::new("t.yaml"), yaml, &mut m);
    assert!(m.skipped.is_empty(), "{:?}", m.skipped);
    m
}

/// As `kubectl get rs -o yaml` shows a Deployment's ReplicaSet.
const RS_OF_WEB: &str = "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: web-85854c6447\n  namespace: shop\n  uid: uid-rs\n  labels: {app: web, pod-template-hash: 85854c6447}\n  ownerReferences: [{apiVersion: apps/v1, kind: Deployment, name: web, uid: uid-web, controller: true, blockOwnerDeletion: true}]\nspec:\n  selector: {matchLabels: {app: web, pod-template-hash: 85854c6447}}\n  template:\n    metadata: {labels: {app: web, pod-template-hash: 85854c6447}}\n    spec: {containers: [{name: c, image: x, ports: [{containerPort: 8080}]}]}\n";
/// One of its pods, as the ReplicaSet controller makes it.
const POD_OF_WEB: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web-85854c6447-x1\n  namespace: shop\n  labels: {app: web, pod-template-hash: 85854c6447}\n  ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: web-85854c6447, uid: uid-rs, controller: true, blockOwnerDeletion: true}]\nspec: {containers: [{name: c, image: x, ports: [{containerPort: 8080}]}]}\n";
/// The Deployment, relabelled since.
const DEPLOYMENT_WEB: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web2}}\n    spec: {containers: [{name: c, image: x}]}\n";

fn names(b: &ModelBuilder) -> Vec<String> {
    b.build()
        .workloads()
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// A ReplicaSet in the files names its pods' workload, in either order,
/// and its own template is the Deployment's.
#[test]
fn manifests_that_include_the_owners_name_the_deployment() {
    for yaml in [
        format!("{RS_OF_WEB}---\n{POD_OF_WEB}"),
        format!("{POD_OF_WEB}---\n{RS_OF_WEB}"),
    ] {
        let mut b = ModelBuilder::new();
        b.documents(&docs(&yaml)).unwrap();
        assert_eq!(names(&b), ["shop/web[Deployment]"]);
        let m = b.build();
        assert_eq!(m.find("web").len(), 1);
        // The pod and the ReplicaSet's template look alike.
        assert_eq!(m.shapes(&m.workloads()[0]).len(), 1);
    }
    // Without the ReplicaSet, the pod keeps its controller's name.
    let mut b = ModelBuilder::new();
    b.documents(&docs(POD_OF_WEB)).unwrap();
    assert_eq!(names(&b), ["shop/web-85854c6447[ReplicaSet]"]);
}

/// A workload's own manifest says what its pods are: the running pods and
/// the ReplicaSet template it would roll away are left out.
#[test]
fn a_workload_manifest_stands_for_its_pods() {
    let mut b = ModelBuilder::new();
    b.documents(&docs(&format!(
        "{RS_OF_WEB}---\n{POD_OF_WEB}---\n{DEPLOYMENT_WEB}"
    )))
    .unwrap();
    let m = b.build();
    assert_eq!(m.workloads().len(), 1);
    let shapes = m.shapes(&m.workloads()[0]);
    assert_eq!(shapes.len(), 1);
    assert_eq!(shapes[0].labels["app"], "web2", "the Deployment's template");

    // Live metadata and live pods, then the manifest on top: the same.
    let rs: ObjectMeta =
        serde_json::from_value(docs(RS_OF_WEB).documents[0].value["metadata"].clone()).unwrap();
    let mut b = ModelBuilder::new();
    b.owner(Intermediate::ReplicaSet, &rs);
    b.documents(&docs(POD_OF_WEB)).unwrap();
    assert_eq!(names(&b), ["shop/web[Deployment]"]);
    b.documents(&docs(DEPLOYMENT_WEB)).unwrap();
    let m = b.build();
    assert_eq!(m.shapes(&m.workloads()[0])[0].labels["app"], "web2");
    // Forgetting the ReplicaSet brings back its name for the pod, beside
    // the Deployment the manifest defines.
    b.remove_owner(Intermediate::ReplicaSet, "shop", "web-85854c6447");
    assert_eq!(
        names(&b),
        ["shop/web[Deployment]", "shop/web-85854c6447[ReplicaSet]"]
    );
}

/// `PodSummary::shown_as`, the one naming path of the model, the preview
/// and `audit`, agrees with the truth table's rows.
#[test]
fn summaries_are_shown_as_their_top_level_owner() {
    let mut owners = Owners::new();
    let meta = |yaml: &str| -> ObjectMeta { serde_saphyr::from_str(yaml).unwrap() };
    owners.put(
        Intermediate::ReplicaSet,
        &meta("{name: web-85854c6447, namespace: shop, uid: uid-rs, ownerReferences: [{apiVersion: apps/v1, kind: Deployment, name: web, uid: d, controller: true}]}"),
        "default",
    );
    owners.put(
        Intermediate::Job,
        &meta("{name: backup-29034720, namespace: shop, uid: uid-job, ownerReferences: [{apiVersion: batch/v1, kind: CronJob, name: backup, uid: c, controller: true}]}"),
        "default",
    );
    let shown = |owner: &str| -> String {
        let pod: Pod = serde_saphyr::from_str(&format!(
            "metadata: {{name: p, namespace: shop, ownerReferences: [{owner}]}}\nspec: {{containers: []}}"
        ))
        .unwrap();
        PodSummary::from_pod(&pod, "default")
            .shown_as(&owners)
            .to_string()
    };
    let rows = [
        (
            "{apiVersion: apps/v1, kind: ReplicaSet, name: web-85854c6447, uid: uid-rs, controller: true}",
            "shop/web[Deployment]",
        ),
        (
            "{apiVersion: batch/v1, kind: Job, name: backup-29034720, uid: uid-job, controller: true}",
            "shop/backup[CronJob]",
        ),
        (
            "{apiVersion: apps/v1, kind: ReplicaSet, name: web-85854c6447, uid: other, controller: true}",
            "shop/web-85854c6447[ReplicaSet]",
        ),
        (
            "{apiVersion: apps/v1, kind: ReplicaSet, name: api-5d9f8b7c6d, uid: u, controller: true}",
            "shop/api-5d9f8b7c6d[ReplicaSet]",
        ),
        (
            "{apiVersion: apps/v1, kind: ReplicaSet, name: web-85854c6447, uid: uid-rs}",
            "shop/p[Pod]",
        ),
        (
            "{apiVersion: v1, kind: Node, name: n1, uid: n, controller: true}",
            "shop/p[Pod]",
        ),
        (
            "{apiVersion: apps/v1, kind: StatefulSet, name: db, uid: s, controller: true}",
            "shop/db[StatefulSet]",
        ),
    ];
    for (owner, want) in rows {
        assert_eq!(shown(owner), want, "{owner}");
    }
}
