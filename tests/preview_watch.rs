//! The preview's model kept from watches (`simulate.preview: true`),
//! against a local server answering list and watch calls the way the API
//! server does: changes applied in place, a re-list that drops what is
//! gone, and the memory budget that switches the preview off instead of
//! letting palisade grow into its memory limit.

mod common;

use std::time::Duration;

use common::fake_api::{Collection, FakeApi};
use common::until;
use palisade::cluster::kube::KubeCluster;
use palisade::cluster::{ClusterView, PreviewModel};
use palisade::reach::{PolicyChange, connections, preview};
use serde_json::{Value, json};

const PODS: &str = "/api/v1/pods";
const NETPOLS: &str = "/apis/networking.k8s.io/v1/networkpolicies";

fn pod(name: &str, app: &str) -> Value {
    json!({"metadata": {"name": name, "namespace": "shop", "uid": format!("uid-{name}"), "labels": {"app": app},
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{app}-5d4f8"), "uid": "rs", "controller": true}]},
        "spec": {"containers": [{"name": "c", "image": "nginx", "ports": [{"name": "http", "containerPort": 8080}]}]},
        "status": {"phase": "Running", "podIP": "10.0.0.1"}})
}

async fn api() -> FakeApi {
    FakeApi::start(vec![
        Collection::held(
            "/api/v1/namespaces",
            "v1",
            "Namespace",
            vec![json!({"metadata": {"name": "shop", "uid": "n", "labels": {"kubernetes.io/metadata.name": "shop"}}})],
        ),
        Collection::held(
            NETPOLS,
            "networking.k8s.io/v1",
            "NetworkPolicy",
            vec![json!({"metadata": {"name": "default-deny", "namespace": "shop", "uid": "p"},
                "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}})],
        ),
        Collection::held(PODS, "v1", "Pod", vec![pod("web-1", "web"), pod("db-1", "db")]),
    ])
    .await
}

fn workloads(cluster: &KubeCluster) -> Vec<String> {
    match cluster.preview_model() {
        PreviewModel::Ready(m) => m.workloads().map(ToString::to_string).collect(),
        _ => Vec::new(),
    }
}

#[tokio::test]
async fn the_model_follows_events_and_relists_in_place() {
    common::init();
    let api = api().await;
    let (cluster, tasks) = KubeCluster::start(api.client(), Some(64 << 20));
    until("the preview watches to sync", || {
        matches!(cluster.preview_model(), PreviewModel::Ready(_))
    })
    .await;
    assert_eq!(
        workloads(&cluster),
        ["shop/db-5d4f8[ReplicaSet]", "shop/web-5d4f8[ReplicaSet]"]
    );
    {
        let PreviewModel::Ready(m) = cluster.preview_model() else {
            unreachable!()
        };
        assert!(
            connections(&m)
                .iter()
                .all(|c| c.src.workload().is_none() || c.dst.workload().is_none()),
            "the default-deny leaves no connection between workloads"
        );
        let allow: k8s_openapi::api::networking::v1::NetworkPolicy = serde_json::from_value(json!({
            "metadata": {"name": "web-to-db", "namespace": "shop"},
            "spec": {"podSelector": {"matchLabels": {"app": "db"}}, "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}]}]}
        }))
        .unwrap();
        let p = preview(
            &m,
            &PolicyChange::create(palisade::netpol::Policy::from_k8s(&allow, "shop").unwrap()),
        );
        // Ingress alone opens nothing while web's egress is denied.
        assert!(p.opened.is_empty(), "{:?}", p.opened);
    }
    let (bytes, on) = cluster
        .stats()
        .preview
        .expect("the preview reports its size");
    assert!(on && bytes > 0);

    // An event after the list changes the model in place.
    until("the pod watch to open", || {
        api.seen()
            .iter()
            .any(|s| s.uri.starts_with(PODS) && s.uri.contains("watch=true"))
    })
    .await;
    api.push(PODS, "ADDED", pod("cache-1", "cache"));
    until("the new pod", || workloads(&cluster).len() == 3).await;

    // A re-list (the watch expired) keeps what is listed again and drops
    // what is not: db's pod is gone, web's is still there.
    api.set_items(PODS, vec![pod("web-1", "web"), pod("cache-1", "cache")]);
    api.expire_watches(PODS);
    until("the re-list to drop db", || {
        workloads(&cluster) == ["shop/cache-5d4f8[ReplicaSet]", "shop/web-5d4f8[ReplicaSet]"]
    })
    .await;
    for t in tasks {
        t.abort();
    }
}

#[tokio::test]
async fn past_its_budget_the_preview_switches_off_and_readiness_stays() {
    common::init();
    let api = api().await;
    let (cluster, tasks) = KubeCluster::start(api.client(), Some(1024));
    until("the preview to switch itself off", || {
        matches!(cluster.preview_model(), PreviewModel::Off(_))
    })
    .await;
    let PreviewModel::Off(why) = cluster.preview_model() else {
        unreachable!()
    };
    assert!(
        why.contains("memory budget") && why.contains("simulate.previewMemoryMiB"),
        "{why}"
    );
    assert_eq!(
        cluster.stats().preview,
        Some((0, false)),
        "the model's memory is given back"
    );
    until("the webhook's own watches to sync", || cluster.is_ready()).await;
    // The preview's watches stop: no pod watch stays open.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = api.seen().len();
    api.push(PODS, "ADDED", pod("cache-1", "cache"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(matches!(cluster.preview_model(), PreviewModel::Off(_)));
    assert!(
        !api.seen()[before..].iter().any(|s| s.uri.starts_with(PODS)),
        "no pod list or watch after switching off"
    );
    for t in tasks {
        t.abort();
    }
}
