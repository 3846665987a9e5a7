//! The live cluster view against a local server that answers list and
//! watch calls the way the API server does (tests/common/fake_api.rs):
//! paged lists with `continue`, metadata-only namespaces, bookmarks, and
//! watch events after the list.

mod common;

use common::fake_api::{Collection, FakeApi, Items};
use common::until;
use palisade::cluster::ClusterView;
use palisade::cluster::kube::KubeCluster;
use palisade::netpol::Direction;
use serde_json::json;

const NETPOLS: &str = "/apis/networking.k8s.io/v1/networkpolicies";

fn namespace(name: &str) -> serde_json::Value {
    json!({"metadata": {"name": name, "uid": format!("uid-{name}"), "resourceVersion": "1",
        "labels": {"kubernetes.io/metadata.name": name}}, "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"}})
}

/// 1,200 plain policies in `shop` (three pages of kube's 500), then one
/// default-deny in `fenced`.
fn policy(i: usize) -> serde_json::Value {
    if i == 1200 {
        return json!({"metadata": {"name": "default-deny", "namespace": "fenced", "uid": "u", "resourceVersion": "1"},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}});
    }
    json!({"metadata": {"name": format!("p-{i}"), "namespace": "shop", "uid": format!("u{i}"), "resourceVersion": "1"},
        "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{"from": [{"podSelector": {}}]}]}})
}

#[tokio::test]
async fn the_watch_cache_lists_in_pages_then_follows_events() {
    common::init();
    let api = FakeApi::start(vec![
        Collection::held(
            "/api/v1/namespaces",
            "v1",
            "Namespace",
            vec![namespace("shop"), namespace("fenced")],
        ),
        Collection {
            path: NETPOLS.into(),
            api_version: "networking.k8s.io/v1".into(),
            kind: "NetworkPolicy".into(),
            items: Items::Made {
                len: 1201,
                make: std::sync::Arc::new(policy),
            },
        },
    ])
    .await;
    let (cluster, tasks) = KubeCluster::start(api.client(), None);
    until("the watches to sync", || cluster.is_ready()).await;

    assert_eq!(cluster.stats().namespaces, 2);
    assert_eq!(cluster.stats().policies, 1201, "every page was read");
    let fenced = cluster.namespace("fenced");
    assert!(fenced.namespace.is_some());
    assert_eq!(fenced.policies.len(), 1);
    assert!(fenced.policies[0].default_deny.contains(Direction::Egress));
    assert!(
        cluster.namespace("shop").policies.is_empty(),
        "plain policies keep no facts"
    );

    // The list went page by page, and namespaces were read as metadata.
    let seen = api.seen();
    let pages: Vec<_> = seen
        .iter()
        .filter(|s| s.uri.starts_with(NETPOLS) && !s.uri.contains("watch="))
        .collect();
    assert_eq!(pages.len(), 3, "{pages:?}");
    assert!(pages.iter().all(|p| p.uri.contains("limit=500")));
    assert!(pages[1].uri.contains("continue=500") && pages[2].uri.contains("continue=1000"));
    assert!(
        seen.iter()
            .filter(|s| s.uri.starts_with("/api/v1/namespaces"))
            .all(|s| s.accept.contains("as=PartialObjectMetadata")),
        "{seen:?}"
    );

    // After the list, watch events keep the cache current.
    until("the policy watch to open", || {
        api.seen()
            .iter()
            .any(|s| s.uri.starts_with(NETPOLS) && s.uri.contains("watch=true"))
    })
    .await;
    api.push(
        NETPOLS,
        "ADDED",
        json!({"metadata": {"name": "default-deny", "namespace": "shop", "uid": "new"},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}),
    );
    until("the new default-deny", || {
        !cluster.namespace("shop").policies.is_empty()
    })
    .await;
    api.push(
        NETPOLS,
        "DELETED",
        json!({"metadata": {"name": "default-deny", "namespace": "fenced", "uid": "u"},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}}),
    );
    until("the deletion", || {
        cluster.namespace("fenced").policies.is_empty()
    })
    .await;
    assert_eq!(cluster.stats().policies, 1201);
    for t in tasks {
        t.abort();
    }
}
