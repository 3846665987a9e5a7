//! The binary as a user runs it: `palisade certs`, then `palisade serve
//! --state DIR ...` answered with `curl --cacert`, and `/metrics` counting.

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};

use common::Running;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_palisade");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn curl(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "5"])
        .args(args)
        .output()
        .expect("curl is installed (see .ci/run)");
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn wait_ready(metrics: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ok = Command::new("curl")
            .args([
                "-sf",
                "--max-time",
                "1",
                &format!("http://{metrics}/readyz"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ok {
            return;
        }
        assert!(Instant::now() < deadline, "server did not become ready");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn serve_with_state_answers_curl_and_counts_decisions() {
    let tmp = tempfile::tempdir().unwrap();
    let certs = tmp.path().join("certs");
    let out = Command::new(BIN)
        .args(["certs", "--out"])
        .arg(&certs)
        .args([
            "--service",
            "palisade",
            "--namespace",
            "palisade-system",
            "--dns",
            "localhost",
            "--ip",
            "127.0.0.1",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).unwrap();
    let ca = std::fs::read(certs.join("ca.crt")).unwrap();
    use base64::Engine;
    let bundle = base64::engine::general_purpose::STANDARD.encode(&ca);
    assert!(
        printed.lines().any(|l| l == bundle),
        "certs prints the caBundle:\n{printed}"
    );

    let state = tmp.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(
        state.join("cluster.yaml"),
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: fx-apps, labels: {environment: prod}}\n",
    )
    .unwrap();

    let (https, metrics) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/palisade.yaml");
    let _server = Running(
        Command::new(BIN)
            .arg("serve")
            .arg("--state")
            .arg(&state)
            .arg("--config")
            .arg(&config)
            .args(["--listen", &https, "--metrics-listen", &metrics])
            .arg("--tls-cert")
            .arg(certs.join("tls.crt"))
            .arg("--tls-key")
            .arg(certs.join("tls.key"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_ready(&metrics);

    let fixture =
        common::shared_fixtures("admission-reviews/validating-pod-create-with-labels.json");
    let body = curl(&[
        "--cacert",
        certs.join("ca.crt").to_str().unwrap(),
        "-H",
        "Content-Type: application/json",
        "--data-binary",
        &format!("@{}", fixture.display()),
        &format!("https://{https}/validate"),
    ]);
    let resp: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(resp["response"]["allowed"], false, "{body}");
    assert_eq!(
        resp["response"]["uid"],
        "072c3eac-3a87-4a49-b092-f41bd9aa5474"
    );
    assert!(
        resp["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .contains("no default-deny")
    );

    let text = curl(&[&format!("http://{metrics}/metrics")]);
    assert!(
        text.contains(r#"palisade_decisions_total{webhook="validate",kind="Pod",operation="CREATE",decision="deny",mode="enforce"} 1"#),
        "{text}"
    );
    assert!(
        text.contains("palisade_cache_objects{resource=\"namespaces\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("palisade_certificate_expiry_timestamp_seconds"),
        "{text}"
    );
}

#[test]
fn bad_config_is_exit_2_naming_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("palisade.yaml");
    std::fs::write(
        &cfg,
        "apiVersion: palisade.io/v1alpha1\nkind: PalisadeConfig\nmodee: warn\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--state"])
        .arg(tmp.path())
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown field `modee`") && err.contains("line 3"),
        "{err}"
    );

    let out = Command::new(BIN)
        .args(["serve", "--config", "/nonexistent.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent.yaml"));
}

/// `palisade certs --out DIR --service palisade --namespace palisade-system`
/// writes a CA and a serving certificate whose SANs cover the Service's DNS
/// names: a TLS handshake by each name succeeds against a server using them.
#[tokio::test]
async fn certs_command_output_verifies_by_the_service_names() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["certs", "--out"])
        .arg(tmp.path())
        .args(["--service", "palisade", "--namespace", "palisade-system"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reloader = palisade::server::tls::CertReloader::load(
        &tmp.path().join("tls.crt"),
        &tmp.path().join("tls.key"),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
    let server = tokio::spawn(palisade::server::listen::serve_https(
        listener,
        reloader.server_config().unwrap(),
        app,
        Default::default(),
        async move {
            let _ = stopped.await;
        },
    ));
    let ca =
        reqwest::Certificate::from_pem(&std::fs::read(tmp.path().join("ca.crt")).unwrap()).unwrap();
    for (host, ok) in [
        ("palisade.palisade-system.svc", true),
        ("palisade.palisade-system.svc.cluster.local", true),
        ("palisade.other-namespace.svc", false),
    ] {
        let client = reqwest::Client::builder()
            .tls_certs_only([ca.clone()])
            .resolve(host, addr)
            .no_proxy()
            .build()
            .unwrap();
        let got = client
            .get(format!("https://{host}:{}/", addr.port()))
            .send()
            .await
            .map_err(|e| common::error_chain(&e));
        if ok {
            assert!(got.is_ok(), "{host}: {got:?}");
        } else {
            // Refused for its name, not for anything else that can fail.
            let err = got.expect_err(host);
            assert!(err.contains("invalid peer certificate"), "{host}: {err}");
        }
    }
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

/// The README's first command, `palisade serve --demo`: every `curl` line it
/// prints, run by a shell exactly as printed, gets the answer the demo
/// describes. The demo writes its certificate and reviews under the system
/// temp dir, so `TMPDIR` points at a fresh one; the working directory holds
/// no `policies/`, so the embedded config is what answers.
#[test]
fn serve_demo_prints_curl_lines_that_work_as_printed() {
    use std::io::{BufRead, BufReader};

    let tmp = tempfile::tempdir().unwrap();
    let (https, metrics) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--demo",
            "--listen",
            &https,
            "--metrics-listen",
            &metrics,
        ])
        .current_dir(tmp.path())
        .env("TMPDIR", tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _server = Running(child);

    // The banner is printed once the server listens; the metrics line ends it.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut commands = Vec::new();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the demo prints its curl lines");
        if let Some(cmd) = line.trim_start().strip_prefix("curl ") {
            commands.push(format!("curl {cmd}"));
            if cmd.contains("/metrics") {
                break;
            }
        }
    }
    assert_eq!(commands.len(), 4, "{commands:#?}");
    wait_ready(&metrics);

    let run = |cmd: &str| -> String {
        let out = Command::new("sh").args(["-c", cmd]).output().unwrap();
        assert!(
            out.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let review = |cmd: &str| -> serde_json::Value {
        let body = run(cmd);
        let v: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{cmd}: {e}: {body}"));
        v["response"].clone()
    };

    // A pod in fx-apps, which lacks default-deny: denied with the fix, as
    // the README shows.
    let r = review(&commands[0]);
    assert_eq!(r["uid"], "072c3eac-3a87-4a49-b092-f41bd9aa5474");
    assert_eq!(r["allowed"], false);
    assert_eq!(r["status"]["code"], 403);
    let msg = r["status"]["message"].as_str().unwrap();
    assert!(
        msg.starts_with(
            "[require-default-deny] Pod fx-apps/web: namespace fx-apps has no default-deny"
        ) && msg.contains("kind: NetworkPolicy"),
        "{msg}"
    );

    // An allow-all policy in a prod namespace: denied.
    let r = review(&commands[1]);
    assert_eq!(r["allowed"], false);
    assert!(
        r["status"]["message"]
            .as_str()
            .unwrap()
            .contains("[no-allow-all]"),
        "{r}"
    );

    // The same pod at the mutating webhook: the patch, applied to the pod
    // as sent, gives a Pod with its role label and the sidecar.
    let r = review(&commands[2]);
    assert_eq!(r["allowed"], true, "{r}");
    assert_eq!(r["patchType"], "JSONPatch");
    use base64::Engine;
    let patch = base64::engine::general_purpose::STANDARD
        .decode(r["patch"].as_str().unwrap())
        .unwrap();
    let patch: json_patch::Patch = serde_json::from_slice(&patch).unwrap();
    let sent: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("palisade-demo/reviews/mutate-pod.json")).unwrap(),
    )
    .unwrap();
    let mut pod = sent["request"]["object"].clone();
    json_patch::patch(&mut pod, &patch).unwrap();
    let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(pod).unwrap();
    let labels = pod.metadata.labels.unwrap_or_default();
    assert_eq!(
        labels.get("palisade.io/role").map(String::as_str),
        Some("frontend")
    );
    let spec = pod.spec.unwrap();
    let proxies = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .filter(|c| c.name == "access-proxy")
        .count();
    assert_eq!(proxies, 1);

    // The decisions above, counted.
    let text = run(&commands[3]);
    assert!(
        text.contains(r#"palisade_decisions_total{webhook="validate",kind="Pod",operation="CREATE",decision="deny",mode="enforce"} 1"#)
            && text.contains(r#"webhook="mutate",kind="Pod",operation="CREATE",decision="patch""#),
        "{text}"
    );
}
