//! Shared by the end-to-end tests: a real `palisade serve` on 127.0.0.1:0
//! with a certificate made by the `certs` code, a client that trusts only
//! that CA and verifies the Service DNS name, the captured fixtures, and
//! cluster states written as YAML.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub mod api_store;
pub mod fake_api;
pub mod managed;
mod shared;
pub use shared::shared_fixtures;

use palisade::certs::{self, CertBundle, CertSpec};
use palisade::cluster::ClusterView;
use palisade::cluster::static_dir::StaticCluster;
use palisade::config::Config;
use palisade::generate::Generating;
use palisade::manifest::{self, Manifests};
use palisade::serve::{self, Server, Settings};
use palisade::server::listen::ListenLimits;
use palisade::server::routes::BodyLimits;
use tempfile::TempDir;

/// The name the client verifies the server's certificate against.
pub const SERVICE_HOST: &str = "palisade.palisade-system.svc";

/// Waits until `ok` holds (what a watch delivers arrives in its own
/// time), failing with `what` after 20 s: generous, as CI shares 2 cores.
pub async fn until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Installs ring as the process's crypto provider (CRATES.md pitfall 1).
pub fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A CA and a serving certificate for the Service names of
/// `palisade.palisade-system`, as `palisade certs` makes them.
pub fn bundle() -> CertBundle {
    certs::generate(&CertSpec {
        service: "palisade".into(),
        namespace: "palisade-system".into(),
        dns: vec![],
        ips: vec![],
        validity_days: 1,
    })
    .expect("generate certificates")
}

/// An error and its sources, `a: b: c`, so assertions can read the cause.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// A raw TLS connection to `addr` that trusts only `ca_pem` and verifies
/// [`SERVICE_HOST`], offering `alpn`: for tests that hold connections open
/// or misbehave byte by byte, without a client pool deciding for them.
pub async fn raw_tls(
    ca_pem: &str,
    addr: SocketAddr,
    alpn: &[u8],
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(
            rustls_pki_types::CertificateDer::from_pem_slice(ca_pem.as_bytes())
                .map_err(std::io::Error::other)?,
        )
        .map_err(std::io::Error::other)?;
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(std::io::Error::other)?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name =
        rustls_pki_types::ServerName::try_from(SERVICE_HOST).map_err(std::io::Error::other)?;
    connector.connect(name, tcp).await
}

/// A child process killed when the test ends, however it ends: a failed
/// assertion must not leave a `palisade serve` running.
pub struct Running(pub std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The captured AdmissionReview fixtures.
pub fn fixtures_dir() -> PathBuf {
    shared_fixtures("admission-reviews")
}

/// One captured fixture, parsed.
pub fn fixture(name: &str) -> serde_json::Value {
    let path = fixtures_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Names of every fixture starting with `prefix`, sorted.
pub fn fixture_names(prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixtures_dir())
        .unwrap_or_else(|e| panic!("{}: {e}", fixtures_dir().display()))
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix) && n.ends_with(".json"))
        .collect();
    // A loop over no fixtures passes whatever it asserts.
    assert!(
        !names.is_empty(),
        "no fixture named {prefix}*.json in {}",
        fixtures_dir().display()
    );
    names.sort();
    names
}

/// A cluster state from YAML manifests.
pub fn state(yaml: &str) -> StaticCluster {
    state_of(&manifests(yaml))
}

/// A cluster state from YAML manifests, keeping a reachability model of
/// them for admission previews.
pub fn state_with_model(yaml: &str) -> StaticCluster {
    let m = manifests(yaml);
    let mut c = state_of(&m);
    let model = palisade::reach::ModelBuilder::new()
        .documents(&m)
        .expect("test state models")
        .build();
    c.set_reach_model(model);
    c
}

fn manifests(yaml: &str) -> Manifests {
    let mut m = Manifests::default();
    manifest::read_text(Path::new("state.yaml"), yaml, &mut m);
    assert!(m.skipped.is_empty(), "bad test state: {:?}", m.skipped);
    m
}

fn state_of(m: &Manifests) -> StaticCluster {
    let mut c = StaticCluster::new();
    c.apply_all(m).expect("test state applies");
    c
}

/// A running server and a client for it.
pub struct TestServer {
    /// The server.
    pub server: Server,
    /// Trusts only the test CA, resolves [`SERVICE_HOST`] to the server.
    pub client: reqwest::Client,
    /// The certificate directory (kept alive with the server).
    pub dir: TempDir,
    /// The test CA.
    pub ca_pem: String,
}

impl TestServer {
    /// Starts a server on `cluster` with `config`.
    pub async fn start(config: Config, cluster: StaticCluster) -> Self {
        Self::start_with(config, cluster, BodyLimits::default()).await
    }

    /// Starts a server with explicit body limits.
    pub async fn start_with(config: Config, cluster: StaticCluster, body: BodyLimits) -> Self {
        Self::start_custom(config, Arc::new(cluster), ListenLimits::default(), body).await
    }

    /// Starts a server on any cluster view, with explicit limits.
    pub async fn start_custom(
        config: Config,
        cluster: Arc<dyn ClusterView>,
        limits: ListenLimits,
        body: BodyLimits,
    ) -> Self {
        Self::start_full(config, cluster, limits, body, None).await
    }

    /// Starts a server on any cluster view where generation runs.
    pub async fn start_generating(
        config: Config,
        cluster: Arc<dyn ClusterView>,
        generating: Generating,
    ) -> Self {
        let (limits, body) = (ListenLimits::default(), BodyLimits::default());
        Self::start_full(config, cluster, limits, body, Some(generating)).await
    }

    async fn start_full(
        config: Config,
        cluster: Arc<dyn ClusterView>,
        limits: ListenLimits,
        body: BodyLimits,
        generating: Option<Generating>,
    ) -> Self {
        init();
        let dir = tempfile::tempdir().expect("tempdir");
        let bundle = bundle();
        bundle.write_to(dir.path()).expect("write certs");
        let local: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let server = serve::start(Settings {
            config: Arc::new(config),
            cluster,
            listen: local,
            metrics_listen: local,
            tls: serve::TlsSource::Files {
                cert: dir.path().join(certs::CERT_FILE),
                key: dir.path().join(certs::KEY_FILE),
            },
            limits,
            body,
            generating,
        })
        .await
        .expect("server starts");
        let ca = reqwest::Certificate::from_pem(bundle.ca_pem.as_bytes()).expect("CA pem");
        let client = reqwest::Client::builder()
            .tls_certs_only([ca])
            .resolve(SERVICE_HOST, server.https_addr)
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client");
        TestServer {
            server,
            client,
            dir,
            ca_pem: bundle.ca_pem,
        }
    }

    /// `https://palisade.palisade-system.svc:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!(
            "https://{SERVICE_HOST}:{}{path}",
            self.server.https_addr.port()
        )
    }

    /// POSTs raw bytes; returns status and body text.
    pub async fn post(&self, path: &str, body: Vec<u8>) -> (u16, String) {
        let resp = self
            .client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request");
        let status = resp.status().as_u16();
        (status, resp.text().await.expect("body"))
    }

    /// POSTs an AdmissionReview, asserts HTTP 200 and a well-formed
    /// response review with the request's uid, and returns `response`.
    pub async fn review(&self, path: &str, review: &serde_json::Value) -> serde_json::Value {
        let body = serde_json::to_vec(review).expect("serialize");
        let (status, text) = self.post(path, body).await;
        assert_eq!(status, 200, "{text}");
        let out: serde_json::Value = serde_json::from_str(&text).expect("response is JSON");
        assert_eq!(out["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(out["kind"], "AdmissionReview");
        assert_eq!(
            out["response"]["uid"], review["request"]["uid"],
            "the response must echo the request uid"
        );
        out["response"].clone()
    }

    /// The metrics page.
    pub async fn metrics(&self) -> String {
        let url = format!("http://{}/metrics", self.server.metrics_addr);
        reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client")
            .get(url)
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics body")
    }
}

/// The embedded default config.
pub fn default_config() -> Config {
    Config::embedded().expect("embedded config")
}
