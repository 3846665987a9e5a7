//! `palisade simulate verify` as users run it, on the worked example of
//! docs/simulate.md (`docs/simulate-example/verify/`: a snapshot of a shop
//! namespace with its pods' IPs, and the access proxy's log of its
//! database pod as `kubectl logs` prints it): the text report is the one
//! the docs show, the JSON keeps its documented contract, exit codes are
//! `diff`'s, and standard input (gzip'd) reads like a file.

use std::io::Write;
use std::process::{Command, Stdio};

use clap::Parser;
use palisade::reach::{SimulateCommand, SimulateError, run};
use serde_json::{Value, json};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: SimulateCommand,
}

const STATE: &str = "docs/simulate-example/verify/state";
const FLOWS: &str = "docs/simulate-example/verify/flows";

fn verify(args: &[&str]) -> (Result<i32, SimulateError>, String) {
    let argv = ["simulate", "verify"]
        .into_iter()
        .chain(args.iter().copied());
    let cli = Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{e}"));
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run(cli.cmd, &mut out, &mut err);
    (code, String::from_utf8(out).unwrap())
}

/// The report docs/simulate.md walks through, kept in
/// `docs/simulate-example/verify/report.txt` (regenerate it with the
/// command in that section when the output changes on purpose).
#[test]
fn the_worked_example_reports_what_the_docs_show() {
    let (code, out) = verify(&["--state", STATE, FLOWS]);
    assert_eq!(code.unwrap(), 0);
    let golden = std::fs::read_to_string("docs/simulate-example/verify/report.txt").unwrap();
    assert_eq!(out, golden);
    // The docs quote the gap and the proposal from it.
    let docs = std::fs::read_to_string("docs/simulate.md").unwrap();
    for line in [
        "GAPS: 1 connection seen that the policies deny",
        "  shop/report[Deployment] -> shop/db[StatefulSet] on TCP 15443: 1 flow, 2026-12-06T10:00:02.003Z .. 2026-12-06T10:00:02.003Z",
        "COVERAGE: 1 of 2 allowed workload pairs carried traffic (50.0 %)",
    ] {
        assert!(out.contains(line), "{line}");
        assert!(docs.contains(line), "docs/simulate.md lacks {line:?}");
    }
}

#[test]
fn json_keeps_its_contract() {
    let (code, out) = verify(&["--state", STATE, "--output", "json", FLOWS]);
    assert_eq!(code.unwrap(), 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["window"],
        json!({"first": "2026-12-06T10:00:01.512Z", "last": "2026-12-06T10:00:05.25Z"})
    );
    assert_eq!(
        v["flows"],
        json!({"read": 3, "compared": 3, "allowed": 2, "denied": 1, "unresolved": 0,
               "outside": 0, "before_since": 0, "malformed": 2,
               "skipped": {"blank": 1, "proxy_log": 2}})
    );
    assert_eq!(v["malformed"][0]["line"], 5);
    assert_eq!(
        v["malformed"][0]["file"],
        "docs/simulate-example/verify/flows/db-0-access-proxy.log"
    );
    let gap = &v["gaps"][0];
    assert_eq!(
        gap["src"],
        json!({"namespace": "shop", "name": "report", "kind": "Deployment"})
    );
    assert_eq!(
        gap["dst"],
        json!({"namespace": "shop", "name": "db", "kind": "StatefulSet"})
    );
    assert_eq!(
        (gap["protocol"].as_str(), gap["port"].as_u64()),
        (Some("TCP"), Some(15443))
    );
    assert_eq!(gap["denied_by"], json!(["egress"]));
    assert!(
        gap["explanation"]
            .as_str()
            .unwrap()
            .starts_with("DENIED: shop/report[Deployment] -> shop/db[StatefulSet] on TCP 15443\n")
    );
    let rules = v["rules"].as_array().unwrap();
    let names: Vec<String> = rules
        .iter()
        .map(|r| format!("{} {} {}", r["policy"], r["direction"], r["rule"]))
        .collect();
    assert_eq!(
        names,
        [
            "\"shop/app-egress\" \"Egress\" 0",
            "\"shop/db-ingress\" \"Ingress\" 0",
            "\"shop/db-ingress\" \"Ingress\" 1"
        ]
    );
    let db0 = &rules[1];
    assert_eq!(
        db0["used"],
        json!([{"peer": {"namespace": "shop", "name": "web", "kind": "Deployment"},
                "ports": {"TCP": ["15443"]}, "flows": 1}])
    );
    assert_eq!(
        db0["unused"],
        json!([{"src": {"namespace": "shop", "name": "admin", "kind": "Deployment"},
                "dst": {"namespace": "shop", "name": "db", "kind": "StatefulSet"}}])
    );
    let yaml = db0["proposal"].as_str().unwrap();
    let np: k8s_openapi::api::networking::v1::NetworkPolicy = serde_saphyr::from_str(yaml).unwrap();
    assert_eq!(np.metadata.name.as_deref(), Some("db-ingress"));
    // The outside peer of rule 1 was used: nothing unused, no proposal.
    assert_eq!(
        rules[2]["used"][0]["peer"],
        json!({"external": ["203.0.113.7/32"]})
    );
    assert_eq!(rules[2]["proposal"], Value::Null);
    assert_eq!(
        v["coverage"],
        json!({"allowed_pairs": 2, "used_pairs": 1, "percent": 50.0})
    );
    assert_eq!(v["unresolved"], json!([]));
}

#[test]
fn markdown_has_the_same_sections() {
    let (code, out) = verify(&["--state", STATE, "--format", "md", FLOWS]);
    assert_eq!(code.unwrap(), 0);
    for s in [
        "#### Gaps: 1",
        "| shop/report\\[Deployment\\] | shop/db\\[StatefulSet\\] | TCP 15443 | 1 |",
        "#### Unused allowances: 2 of 3 rules",
        "  ```yaml",
        "#### Coverage: 50.0 %",
    ] {
        assert!(out.contains(s), "{s}\n{out}");
    }
}

#[test]
fn exit_codes_are_diffs() {
    assert_eq!(
        verify(&["--state", STATE, "--fail-on", "gap", FLOWS])
            .0
            .unwrap(),
        1
    );
    // After the gap's flow, nothing denied: 0 even with --fail-on gap.
    let (code, out) = verify(&[
        "--state",
        STATE,
        "--fail-on",
        "gap",
        "--since",
        "2026-12-06T10:00:03Z",
        FLOWS,
    ]);
    assert_eq!(code.unwrap(), 0, "{out}");
    assert!(out.contains("2 before --since left out"), "{out}");
    // Malformed lines are an error with --strict, after the report.
    let (code, out) = verify(&["--state", STATE, "--strict", FLOWS]);
    let e = code.unwrap_err();
    assert!(matches!(e, SimulateError::MalformedFlows(2)), "{e}");
    assert_eq!(e.exit_code(), 2);
    assert!(out.contains("GAPS: 1"));
    // The cluster is needed, flows that do not exist are an error.
    let e = verify(&[FLOWS]).0.unwrap_err();
    assert!(e.to_string().contains("--state DIR"), "{e}");
    let e = verify(&["--state", STATE, "no/such/flows"]).0.unwrap_err();
    assert!(e.to_string().contains("no/such/flows"), "{e}");
    assert_eq!(e.exit_code(), 2);
    let e = verify(&["--state", STATE, "--since", "last week", FLOWS])
        .0
        .unwrap_err();
    assert!(e.to_string().contains("--since"), "{e}");
}

/// The real binary, reading the log gzip'd from standard input.
#[test]
fn standard_input_gzipd_reads_like_the_file() {
    let log = std::fs::read(format!("{FLOWS}/db-0-access-proxy.log")).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&log).unwrap();
    let gz = gz.finish().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args([
            "simulate",
            "verify",
            "--state",
            STATE,
            "--output",
            "json",
            "--fail-on",
            "gap",
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&gz).unwrap();
    let done = child.wait_with_output().unwrap();
    assert_eq!(
        done.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let piped: Value = serde_json::from_slice(&done.stdout).unwrap();
    let (_, file) = verify(&["--state", STATE, "--output", "json", FLOWS]);
    let mut file: Value = serde_json::from_str(&file).unwrap();
    for bad in file["malformed"].as_array_mut().unwrap() {
        bad["file"] = json!("-");
    }
    assert_eq!(piped, file);
}

/// A snapshot without pods names no address: the report says so rather
/// than calling every pod outside the cluster without a word.
#[test]
fn a_state_without_pods_is_called_out() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.yaml");
    std::fs::write(
        &state,
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: shop}\n\
         spec: {podSelector: {}, policyTypes: [Ingress]}\n",
    )
    .unwrap();
    let flows = dir.path().join("flows.csv");
    std::fs::write(
        &flows,
        "src_ip,dst_ip,dst_port\n10.244.1.17,10.244.2.9,5432\n",
    )
    .unwrap();
    let (code, out) = verify(&[
        "--state",
        state.to_str().unwrap(),
        "--output",
        "json",
        flows.to_str().unwrap(),
    ]);
    assert_eq!(code.unwrap(), 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["flows"]["outside"], 1);
    assert!(
        v["notes"][0]
            .as_str()
            .unwrap()
            .starts_with("the cluster snapshot holds no pod addresses: every address reads as outside the cluster (1 flows)"),
        "{}",
        v["notes"]
    );
}
