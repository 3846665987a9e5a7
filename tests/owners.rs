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

fn first(m: &palisade::reach::Model) -> &palisade::reach::WorkloadId {
    m.workloads().next().expect("a workload")
}

fn names(b: &ModelBuilder) -> Vec<String> {
    b.build().workloads().map(ToString::to_string).collect()
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
        assert_eq!(m.shapes(first(&m)).len(), 1);
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
    let shapes = m.shapes(first(&m));
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
    assert_eq!(m.shapes(first(&m))[0].labels["app"], "web2");
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

/// The cluster of the order test: a Deployment's pods (two ReplicaSets
/// mid-rollout), a CronJob's, a StatefulSet whose manifest is given, and
/// policies that tell them apart.
const CLUSTER: [&str; 11] = [
    "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n",
    "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: shop}\nspec: {podSelector: {}, policyTypes: [Ingress, Egress]}\n",
    "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: to-db, namespace: shop}\nspec: {podSelector: {}, ingress: [{from: [{podSelector: {matchLabels: {app: web}}}]}], egress: [{to: [{podSelector: {matchLabels: {app: db}}}]}]}\n",
    "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {name: web-1a, namespace: shop, uid: rs1, ownerReferences: [{apiVersion: apps/v1, kind: Deployment, name: web, uid: d, controller: true}]}\nspec: {selector: {}}\n",
    "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {name: web-2b, namespace: shop, uid: rs2, ownerReferences: [{apiVersion: apps/v1, kind: Deployment, name: web, uid: d, controller: true}]}\nspec: {selector: {}}\n",
    "apiVersion: v1\nkind: Pod\nmetadata: {name: web-1a-x, namespace: shop, labels: {app: web, h: 1a}, ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: web-1a, uid: rs1, controller: true}]}\nspec: {containers: []}\n",
    "apiVersion: v1\nkind: Pod\nmetadata: {name: web-2b-y, namespace: shop, labels: {app: web, h: 2b}, ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: web-2b, uid: rs2, controller: true}]}\nspec: {containers: []}\n",
    "apiVersion: batch/v1\nkind: Job\nmetadata: {name: backup-1, namespace: shop, uid: j, ownerReferences: [{apiVersion: batch/v1, kind: CronJob, name: backup, uid: c, controller: true}]}\nspec: {template: {spec: {containers: []}}}\n",
    "apiVersion: v1\nkind: Pod\nmetadata: {name: backup-1-z, namespace: shop, labels: {app: web}, ownerReferences: [{apiVersion: batch/v1, kind: Job, name: backup-1, uid: j, controller: true}]}\nspec: {containers: []}\n",
    "apiVersion: v1\nkind: Pod\nmetadata: {name: db-0, namespace: shop, labels: {app: db, old: 'yes'}, ownerReferences: [{apiVersion: apps/v1, kind: StatefulSet, name: db, uid: s, controller: true}]}\nspec: {containers: []}\n",
    "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db, namespace: shop}\nspec: {serviceName: db, selector: {matchLabels: {app: db}}, template: {metadata: {labels: {app: db}}, spec: {containers: []}}}\n",
];

fn picture(m: &palisade::reach::Model) -> (Vec<String>, Vec<String>, Vec<String>) {
    let workloads = m.workloads().map(ToString::to_string).collect();
    let shapes = m
        .workloads()
        .flat_map(|w| {
            let mut s: Vec<String> = m
                .shapes(w)
                .iter()
                .map(|s| format!("{w} {:?}", s.labels))
                .collect();
            s.sort();
            s
        })
        .collect();
    let conns = palisade::reach::connections(m)
        .iter()
        .map(ToString::to_string)
        .collect();
    (workloads, shapes, conns)
}

fn applied(order: &[usize]) -> ModelBuilder {
    let mut b = ModelBuilder::new();
    for &i in order {
        b.documents(&docs(CLUSTER[i])).unwrap();
    }
    b
}

/// The model is changed in place as objects arrive, in whatever order a
/// watch or a file set gives them: pods before or after their
/// ReplicaSets, a manifest before or after the pods it stands for. Every
/// order ends in the same model.
#[test]
fn any_order_of_owners_pods_and_manifests_ends_in_the_same_model() {
    let n = CLUSTER.len();
    let canonical = picture(&applied(&(0..n).collect::<Vec<_>>()).build());
    assert_eq!(
        canonical.0,
        [
            "shop/backup[CronJob]",
            "shop/db[StatefulSet]",
            "shop/web[Deployment]"
        ]
    );
    assert!(
        canonical
            .2
            .contains(&"shop/web[Deployment] => shop/db[StatefulSet] : all ports".to_owned()),
        "{:?}",
        canonical.2
    );
    assert_eq!(
        canonical.1.len(),
        4,
        "two web shapes, one db (the manifest's), one backup: {:?}",
        canonical.1
    );
    let mut orders: Vec<Vec<usize>> = (0..n)
        .map(|r| (0..n).map(|i| (i + r) % n).collect())
        .collect();
    orders.extend(
        orders
            .clone()
            .into_iter()
            .map(|o| o.into_iter().rev().collect::<Vec<_>>()),
    );
    for order in orders {
        assert_eq!(picture(&applied(&order).build()), canonical, "{order:?}");
    }
}

/// Owner changes after the fact move pods, in place, to where a model
/// made afresh from the final objects has them.
#[test]
fn owner_changes_move_pods_as_a_fresh_model_would_place_them() {
    let all: Vec<usize> = (0..CLUSTER.len()).collect();
    let mut b = applied(&all);
    let fresh = |replaced: &str| {
        let mut f = ModelBuilder::new();
        for (i, d) in CLUSTER.iter().enumerate() {
            f.documents(&docs(if i == 3 { replaced } else { d }))
                .unwrap();
        }
        picture(&f.build())
    };
    // web-1a adopted by another Deployment.
    let adopted = CLUSTER[3].replace("name: web, uid: d", "name: web-v2, uid: d2");
    b.documents(&docs(&adopted)).unwrap();
    assert_eq!(picture(&b.build()), fresh(&adopted));
    assert!(
        picture(&b.build())
            .0
            .contains(&"shop/web-v2[Deployment]".to_owned())
    );
    // Adopted by the StatefulSet's name, whose manifest is given: its pods
    // are set aside, as the manifest says what db's pods are.
    let to_db = CLUSTER[3].replace(
        "kind: Deployment, name: web, uid: d",
        "kind: StatefulSet, name: db, uid: d3",
    );
    b.documents(&docs(&to_db)).unwrap();
    assert_eq!(picture(&b.build()), fresh(&to_db));
    // Orphaned and written as a bare manifest: web-1a is its own workload
    // again, and its pods come back from aside.
    let bare = "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {name: web-1a, namespace: shop, uid: rs1}\nspec: {selector: {}, template: {metadata: {labels: {app: web, h: 1a}}, spec: {containers: []}}}\n";
    b.documents(&docs(bare)).unwrap();
    let got = picture(&b.build());
    assert!(
        got.0.contains(&"shop/web-1a[ReplicaSet]".to_owned()),
        "{:?}",
        got.0
    );
    assert_eq!(got, fresh(bare));
    // Removed from the table (a watch's DELETED): the same as never seen.
    b.remove_owner(Intermediate::ReplicaSet, "shop", "web-2b");
    let got = picture(&b.build());
    assert!(
        got.0.contains(&"shop/web-2b[ReplicaSet]".to_owned()),
        "{:?}",
        got.0
    );
}
