//! `simulate verify --cluster`: the pods' addresses come from the live
//! list (a local server answering as the API server does,
//! tests/common/fake_api.rs, to the real kube client in the binary), and
//! the report is the one the same cluster exported as `--state` gives.

mod common;

use common::fake_api::{Collection, FakeApi};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_palisade");
const STATE: &str = "docs/simulate-example/verify/state";
const FLOWS: &str = "docs/simulate-example/verify/flows";

/// The worked example's snapshot, served as typed lists (items without
/// `apiVersion` and `kind`, as the API server lists them).
fn collections() -> Vec<Collection> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let list: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join(STATE).join("cluster.json")).unwrap(),
    )
    .unwrap();
    Collection::from_export(list["items"].as_array().unwrap())
}

fn run(args: &[&str], kubeconfig: Option<&std::path::Path>) -> std::process::Output {
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("KUBERNETES_SERVICE_HOST");
    if let Some(k) = kubeconfig {
        cmd.env("KUBECONFIG", k);
    }
    cmd.output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_against_the_live_cluster_equals_the_export() {
    let api = FakeApi::start(collections()).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, api.kubeconfig()).unwrap();
    let live = tokio::task::spawn_blocking(move || {
        run(
            &["simulate", "verify", "--cluster", "--fail-on", "gap", FLOWS],
            Some(&kubeconfig),
        )
    })
    .await
    .unwrap();
    let off = run(
        &[
            "simulate",
            "verify",
            "--state",
            STATE,
            "--fail-on",
            "gap",
            FLOWS,
        ],
        None,
    );
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    assert_eq!(live.status.code(), Some(1), "{}", text(&live.stderr));
    assert_eq!(off.status.code(), Some(1));
    assert_eq!(text(&live.stdout), text(&off.stdout));
    assert!(
        text(&live.stdout).contains("shop/report[Deployment] -> shop/db[StatefulSet] on TCP 15443"),
        "{}",
        text(&live.stdout)
    );
}
