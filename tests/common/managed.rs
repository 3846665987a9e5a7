//! A palisade replica with self-managed certificates against the local API
//! server stand-in, and clients that call it as the API server does.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use palisade::certmgr::plan::Policy;
use palisade::certmgr::{Managed, Names};
use palisade::serve::{self, Settings, TlsSource};
use palisade::server::listen::ListenLimits;
use palisade::server::routes::BodyLimits;
use serde_json::Value;

use super::api_store::ApiStore;

/// palisade's namespace.
pub const NS: &str = "palisade-system";
/// Where the fake keeps the ValidatingWebhookConfigurations.
pub const VALIDATING: &str = "apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations";
/// Where the fake keeps the MutatingWebhookConfigurations.
pub const MUTATING: &str = "apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations";

/// The webhook configurations of deploy/base, as the API server would
/// store them after `kubectl apply -k deploy/overlays/production`.
pub fn deploy_webhooks(api: &ApiStore) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let text =
        std::fs::read_to_string(root.join("deploy/base/webhooks.yaml")).expect("webhooks.yaml");
    for doc in text.split("\n---\n") {
        let v: Value = serde_saphyr::from_str(doc).expect("yaml");
        if v.is_object() {
            api.put(v);
        }
    }
}

/// A webhook configuration without its caBundles and resourceVersion: what
/// deploy/ declares.
pub fn without_bundles(mut v: Value) -> Value {
    for w in v["webhooks"].as_array_mut().into_iter().flatten() {
        w["clientConfig"]
            .as_object_mut()
            .map(|c| c.remove("caBundle"));
    }
    let m = v["metadata"].as_object_mut().expect("metadata");
    m.remove("resourceVersion");
    v
}

/// The first webhook's caBundle in a stored configuration, decoded.
pub fn bundle_of(api: &ApiStore, collection: &str) -> Vec<u8> {
    use base64::Engine as _;
    let v = api.get(collection, "palisade").expect("configuration");
    let b64 = v["webhooks"][0]["clientConfig"]["caBundle"]
        .as_str()
        .unwrap_or("");
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap_or_default()
}

/// A replica: self-managed certificates plus the server that serves them.
pub struct Replica {
    /// Certificate management.
    pub managed: Managed,
    /// The server.
    pub server: serve::Server,
}

/// Starts a replica: certificate management and a server on 127.0.0.1:0.
pub async fn replica(api: &ApiStore, policy: Policy) -> Replica {
    super::init();
    let managed = Managed::start(api.client(), Names::new(NS), policy);
    let local: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let server = serve::start(Settings {
        config: Arc::new(super::default_config()),
        cluster: Arc::new(super::state(STATE)),
        listen: local,
        metrics_listen: local,
        tls: TlsSource::Managed(Arc::clone(&managed.replica)),
        limits: ListenLimits::default(),
        body: BodyLimits::default(),
        generating: None,
    })
    .await
    .expect("server starts");
    Replica { managed, server }
}

/// The cluster the replicas decide against: fx-apps is fenced.
pub const STATE: &str = "\
apiVersion: v1\nkind: Namespace\nmetadata: {name: fx-apps, labels: {environment: prod}}\n---\n\
apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: fx-apps}\nspec: {podSelector: {}, policyTypes: [Ingress, Egress]}\n";

/// `GET /readyz`: status and body.
pub async fn readyz(addr: SocketAddr) -> (u16, String) {
    let resp = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
        .get(format!("http://{addr}/readyz"))
        .send()
        .await
        .expect("readyz");
    (
        resp.status().as_u16(),
        resp.text().await.unwrap_or_default(),
    )
}

/// A client that trusts exactly what the ValidatingWebhookConfiguration's
/// caBundle holds now, as the API server does.
pub fn api_server_client(api: &ApiStore, addr: SocketAddr) -> reqwest::Client {
    let bundle = bundle_of(api, VALIDATING);
    let cas: Vec<reqwest::Certificate> =
        reqwest::Certificate::from_pem_bundle(&bundle).expect("bundle");
    reqwest::Client::builder()
        .tls_certs_only(cas)
        .resolve(super::SERVICE_HOST, addr)
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client")
}

/// A captured pod CREATE with `uid`, answered 200 with that uid, or why not.
pub async fn review(client: &reqwest::Client, addr: SocketAddr, uid: &str) -> Result<(), String> {
    let mut v = super::fixture("validating-pod-create-with-labels.json");
    v["request"]["uid"] = uid.into();
    let resp = client
        .post(format!(
            "https://{}:{}/validate",
            super::SERVICE_HOST,
            addr.port()
        ))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&v).expect("json"))
        .send()
        .await
        .map_err(|e| super::error_chain(&e))?;
    let status = resp.status();
    let text = resp.text().await.map_err(|e| e.to_string())?;
    let out: Value =
        serde_json::from_str(&text).map_err(|e| format!("HTTP {status}: {e}: {text}"))?;
    if status != 200 || out["response"]["uid"] != uid {
        return Err(format!("HTTP {status}: {text}"));
    }
    Ok(())
}
