//! The live side of cluster-wide policies against a real `kube::Client`:
//! an HTTP server on 127.0.0.1 answers discovery, lists and watches the
//! way the API server does (bodies built from the Kubernetes API
//! reference: `APIGroupList`, `APIResourceList`, `<Kind>List`, and a watch
//! that stays open), and can stop or start serving the CRDs.
//!
//! What must hold: watches start only for the kinds served, in the
//! versions palisade reads; a cluster without the CRDs is asked once per
//! discovery and never again (no error, no retry loop); installing or
//! removing the CRDs is noticed at the next discovery.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use palisade::cluster::cluster_policies::ClusterPolicyWatch;
use palisade::cluster::index::Index;
use palisade::cluster_policy::ClusterKind;
use serde_json::{Value, json};

const GROUP: &str = "policy.networking.k8s.io";

/// What the fake API server serves, and what it was asked.
#[derive(Default)]
struct Api {
    /// Served versions of the group, with their resources' kinds.
    served: BTreeMap<String, Vec<&'static str>>,
    /// Objects per plural resource name.
    objects: BTreeMap<String, Vec<Value>>,
    /// Every request path (and whether it was a watch).
    requests: Vec<String>,
}

type Shared = Arc<Mutex<Api>>;

fn plural(kind: &str) -> &'static str {
    match kind {
        "AdminNetworkPolicy" => "adminnetworkpolicies",
        "BaselineAdminNetworkPolicy" => "baselineadminnetworkpolicies",
        "ClusterNetworkPolicy" => "clusternetworkpolicies",
        other => panic!("{other}"),
    }
}

async fn groups(State(api): State<Shared>) -> Response {
    let mut a = api.lock().unwrap();
    a.requests.push("/apis".into());
    let mut groups = vec![json!({
        "name": "apps",
        "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
        "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"}
    })];
    if !a.served.is_empty() {
        let versions: Vec<Value> = a
            .served
            .keys()
            .map(|v| json!({"groupVersion": format!("{GROUP}/{v}"), "version": v}))
            .collect();
        groups.push(json!({"name": GROUP, "versions": versions, "preferredVersion": versions[0]}));
    }
    axum::Json(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}))
        .into_response()
}

fn not_found(what: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("the server could not find the requested resource ({what})"),
            "reason": "NotFound", "code": 404
        })),
    )
        .into_response()
}

async fn resources(
    State(api): State<Shared>,
    Path((group, version)): Path<(String, String)>,
) -> Response {
    let mut a = api.lock().unwrap();
    a.requests.push(format!("/apis/{group}/{version}"));
    let Some(kinds) = a.served.get(&version).filter(|_| group == GROUP) else {
        return not_found(&format!("{group}/{version}"));
    };
    let resources: Vec<Value> = kinds
        .iter()
        .map(|k| {
            json!({
                "name": plural(k), "singularName": k.to_lowercase(), "namespaced": false,
                "kind": k, "verbs": ["delete", "deletecollection", "get", "list", "patch", "create", "update", "watch"]
            })
        })
        .collect();
    axum::Json(json!({
        "kind": "APIResourceList", "apiVersion": "v1",
        "groupVersion": format!("{group}/{version}"), "resources": resources
    }))
    .into_response()
}

async fn collection(
    State(api): State<Shared>,
    Path((group, version, resource)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let watch = query.as_deref().unwrap_or("").contains("watch=true");
    let mut a = api.lock().unwrap();
    let path = format!("/apis/{group}/{version}/{resource}");
    a.requests
        .push(format!("{path}{}", if watch { " (watch)" } else { "" }));
    let served = a
        .served
        .get(&version)
        .is_some_and(|ks| ks.iter().any(|k| plural(k) == resource));
    if !served {
        return not_found(&path);
    }
    if watch {
        // A watch with nothing to say yet: held open, as the API server does.
        return Response::new(Body::from_stream(futures::stream::pending::<
            Result<Bytes, Infallible>,
        >()));
    }
    let kind = a.served[&version]
        .iter()
        .find(|k| plural(k) == resource)
        .copied()
        .unwrap_or_default();
    let items = a.objects.get(&resource).cloned().unwrap_or_default();
    axum::Json(json!({
        "apiVersion": format!("{group}/{version}"), "kind": format!("{kind}List"),
        "metadata": {"resourceVersion": "100"}, "items": items
    }))
    .into_response()
}

async fn start_api(api: Shared) -> kube::Client {
    let app = Router::new()
        .route("/apis", get(groups))
        .route("/apis/{group}/{version}", get(resources))
        .route("/apis/{group}/{version}/{resource}", get(collection))
        .with_state(api);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let uri: axum::http::Uri = format!("http://{addr}").parse().expect("uri");
    kube::Client::try_from(kube::Config::new(uri)).expect("client")
}

fn anp(name: &str) -> Value {
    json!({
        "apiVersion": format!("{GROUP}/v1alpha1"), "kind": "AdminNetworkPolicy",
        "metadata": {"name": name, "uid": format!("uid-{name}"), "resourceVersion": "7"},
        "spec": {"priority": 10, "subject": {"namespaces": {}},
                 "egress": [{"name": "deny-all", "action": "Deny", "to": [{"namespaces": {}}]}]}
    })
}

fn cnp(name: &str) -> Value {
    json!({
        "apiVersion": format!("{GROUP}/v1alpha2"), "kind": "ClusterNetworkPolicy",
        "metadata": {"name": name, "uid": format!("uid-{name}"), "resourceVersion": "8"},
        "spec": {"tier": "Baseline", "priority": 1, "subject": {"namespaces": {}},
                 "ingress": [{"action": "Deny", "from": [{"namespaces": {}}]}]}
    })
}

async fn eventually(what: &str, mut ok: impl FnMut() -> bool) {
    for _ in 0..200 {
        if ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for: {what}");
}

fn names(index: &RwLock<Index>) -> Vec<String> {
    index
        .read()
        .unwrap()
        .cluster_policies()
        .all()
        .iter()
        .map(|p| format!("{}/{}", p.kind, p.name))
        .collect()
}

#[tokio::test]
async fn a_cluster_without_the_crds_is_asked_once_per_discovery_and_is_ready() {
    let api: Shared = Arc::default();
    let client = start_api(Arc::clone(&api)).await;
    let index = Arc::new(RwLock::new(Index::new()));
    let (watch, task) = ClusterPolicyWatch::start_every(
        client,
        Arc::clone(&index),
        None,
        Duration::from_secs(3600),
    );
    eventually("discovery", || watch.is_ready()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let asked = api.lock().unwrap().requests.clone();
    assert_eq!(asked, ["/apis"], "no retries, no watch: {asked:?}");
    assert!(watch.served().is_empty());
    assert!(names(&index).is_empty());
    task.abort();
}

#[tokio::test]
async fn watches_follow_the_kinds_served_and_their_objects() {
    let api: Shared = Arc::default();
    {
        let mut a = api.lock().unwrap();
        // v1alpha1 serves AdminNetworkPolicy only (no BANP CRD installed).
        a.served
            .insert("v1alpha1".into(), vec!["AdminNetworkPolicy"]);
        a.objects.insert(
            "adminnetworkpolicies".into(),
            vec![anp("deny-all"), anp("also")],
        );
        a.objects
            .insert("clusternetworkpolicies".into(), vec![cnp("baseline")]);
    }
    let client = start_api(Arc::clone(&api)).await;
    let index = Arc::new(RwLock::new(Index::new()));
    let (watch, task) = ClusterPolicyWatch::start_every(
        client,
        Arc::clone(&index),
        None,
        Duration::from_millis(200),
    );
    eventually("the ANP watch synced", || {
        watch.is_ready() && names(&index).len() == 2
    })
    .await;
    assert_eq!(watch.served(), [ClusterKind::AdminNetworkPolicy]);
    assert_eq!(
        names(&index),
        ["AdminNetworkPolicy/also", "AdminNetworkPolicy/deny-all"]
    );
    {
        let asked = api.lock().unwrap().requests.clone();
        assert!(
            !asked
                .iter()
                .any(|r| r.contains("baselineadminnetworkpolicies")
                    || r.contains("clusternetworkpolicies")),
            "only served kinds are listed: {asked:?}"
        );
        assert!(
            asked.contains(&format!(
                "/apis/{GROUP}/v1alpha1/adminnetworkpolicies (watch)"
            )),
            "{asked:?}"
        );
    }

    // The v1alpha2 CRD is installed: its watch starts at the next discovery.
    api.lock()
        .unwrap()
        .served
        .insert("v1alpha2".into(), vec!["ClusterNetworkPolicy"]);
    eventually("the CNP watch synced", || names(&index).len() == 3).await;
    assert!(names(&index).contains(&"ClusterNetworkPolicy/baseline".to_owned()));

    // The v1alpha1 CRDs are removed: their policies are forgotten.
    api.lock().unwrap().served.remove("v1alpha1");
    eventually("ANPs forgotten", || {
        names(&index) == ["ClusterNetworkPolicy/baseline"]
    })
    .await;
    eventually("ready again", || watch.is_ready()).await;
    task.abort();
}
