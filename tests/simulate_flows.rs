//! The flow sources of `simulate verify`, read from samples in their real
//! formats (`tests/data/flows/`): the access proxy's log as `kubectl logs`
//! prints it (Envoy's own lines interleaved), Hubble's `hubble observe -o
//! json` (Cilium's flow proto as JSON, with the fields a real export adds),
//! and plain CSV and JSON lines. Files, directories, standard input and
//! gzip; malformed lines counted with their file and line number.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use palisade::ports::Protocol;
use palisade::reach::flow_formats::{Skipped, parse_json_line};
use palisade::reach::flow_read::{ReadStats, read_flows};
use palisade::reach::flows::Flow;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/flows")
        .join(name)
}

fn read(paths: &[PathBuf], stdin: &[u8]) -> (Vec<Flow>, ReadStats) {
    let mut flows = Vec::new();
    let stats = read_flows(paths, &mut &stdin[..], None, &mut |f| flows.push(f.clone())).unwrap();
    (flows, stats)
}

/// `src -> dst proto/port @time`, ends as `ns/pod`, `ns/workload[Kind]`
/// or the address, so expectations read like the flows.
fn show(f: &Flow) -> String {
    let end = |e: &palisade::reach::flows::FlowEnd| {
        let mut s = String::new();
        if let Some((ns, p)) = &e.pod {
            s.push_str(&format!("{ns}/{p}"));
        }
        if let Some((_, n, k)) = &e.workload {
            s.push_str(&format!("({n}[{k}])"));
        }
        if let Some(ip) = e.ip {
            s.push_str(&format!(" {ip}"));
        }
        if e.is_pod {
            s.push_str(" pod");
        }
        if e.is_node {
            s.push_str(" node");
        }
        s.trim().to_owned()
    };
    format!(
        "{} -> {} {}/{} @{}",
        end(&f.src),
        end(&f.dst),
        f.protocol,
        f.port,
        f.time.map_or("-".to_owned(), |t| t.to_string())
    )
}

fn bad_lines(s: &ReadStats) -> Vec<String> {
    s.malformed_lines
        .iter()
        .map(|b| {
            let file = Path::new(&b.file)
                .file_name()
                .map_or(b.file.clone(), |f| f.to_string_lossy().to_string());
            format!("{file}:{}", b.line)
        })
        .collect()
}

#[test]
fn the_proxys_log_as_kubectl_logs_prints_it() {
    let (flows, stats) = read(&[data("proxy.log")], b"");
    let shown: Vec<String> = flows.iter().map(show).collect();
    assert_eq!(
        shown,
        [
            "10.244.1.17 -> 10.244.2.9 pod TCP/15443 @2026-12-06T10:00:01.512Z",
            "10.244.3.4 -> 10.244.2.9 pod TCP/15443 @2026-12-06T10:00:02.003Z",
            "203.0.113.7 -> 10.244.2.9 pod TCP/15443 @2026-12-06T10:00:05.25Z",
        ]
    );
    assert_eq!(stats.lines, 8);
    assert_eq!(stats.skipped.get(&Skipped::ProxyLog), Some(&2));
    assert_eq!(stats.skipped.get(&Skipped::Blank), Some(&1));
    assert_eq!(stats.malformed, 2);
    assert_eq!(bad_lines(&stats), ["proxy.log:5", "proxy.log:7"]);
    assert!(
        stats.malformed_lines[0]
            .reason
            .contains("downstream_remote_address \"-\" is not an IP address"),
        "{:?}",
        stats.malformed_lines[0]
    );
}

#[test]
fn hubble_flows_keep_requests_and_set_replies_drops_and_non_l4_aside() {
    let (flows, stats) = read(&[data("hubble.jsonl")], b"");
    let shown: Vec<String> = flows.iter().map(show).collect();
    assert_eq!(
        shown,
        [
            "shop/web-5d9f7c6b8-x2x7k(web[Deployment]) 10.244.1.17 -> shop/db-0(db[StatefulSet]) 10.244.2.9 TCP/5432 @2026-12-06T10:00:01.1Z",
            "shop/web-5d9f7c6b8-x2x7k(web[Deployment]) 10.244.1.17 -> kube-system/coredns-7db6d8ff4d-abcde(coredns[Deployment]) 10.96.0.10 UDP/53 @2026-12-06T10:00:01.2Z",
            "shop/web-5d9f7c6b8-x2x7k 10.244.1.17 -> 93.184.216.34 TCP/443 @2026-12-06T10:00:03Z",
            "172.18.0.3 node -> shop/db-0 10.244.2.9 TCP/5432 @2026-12-06T10:00:04Z",
        ]
    );
    let skipped: BTreeMap<Skipped, u64> = stats.skipped.clone();
    assert_eq!(
        skipped,
        BTreeMap::from([
            (Skipped::Reply, 1),
            (Skipped::Dropped, 1),
            (Skipped::NotL4, 2),
        ])
    );
    assert_eq!(bad_lines(&stats), ["hubble.jsonl:9", "hubble.jsonl:10"]);
    assert!(stats.malformed_lines[0].reason.contains("destination_port"));
    assert!(stats.malformed_lines[1].reason.contains("10.244.1.300"));
}

#[test]
fn plain_csv_and_json_lines_with_extra_fields() {
    let (flows, stats) = read(&[data("flows.csv"), data("plain.jsonl")], b"");
    let shown: Vec<String> = flows.iter().map(show).collect();
    assert_eq!(
        shown,
        [
            "10.244.1.17 -> 10.244.2.9 TCP/5432 @2026-12-06T10:00:00Z",
            "10.244.1.17 -> 93.184.216.34 TCP/443 @2026-12-06T10:00:00Z",
            "10.244.1.17 -> 10.96.0.10 UDP/53 @2026-12-06T10:00:02Z",
            "10.244.1.17 -> 10.244.2.9 TCP/5432 @2026-12-06T10:00:00Z",
            "fd00::17 -> fd00::9 TCP/8443 @2026-12-06T10:00:01Z",
        ]
    );
    assert_eq!(
        bad_lines(&stats),
        [
            "flows.csv:5",
            "flows.csv:6",
            "plain.jsonl:3",
            "plain.jsonl:4"
        ]
    );
    let reasons: Vec<&str> = stats
        .malformed_lines
        .iter()
        .map(|b| b.reason.as_str())
        .collect();
    assert!(reasons[0].contains("port \"http\""), "{reasons:?}");
    assert!(reasons[2].contains("time \"yesterday\""), "{reasons:?}");
    assert!(reasons[3].contains("protocol \"ICMP\""), "{reasons:?}");
}

#[test]
fn directories_standard_input_and_gzip_read_alike() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("node-a");
    std::fs::create_dir(&sub).unwrap();
    let text = std::fs::read(data("proxy.log")).unwrap();
    // Compressed, under a name that does not say so.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&text).unwrap();
    std::fs::write(sub.join("access.log"), gz.finish().unwrap()).unwrap();
    std::fs::copy(data("flows.csv"), dir.path().join("b.csv")).unwrap();
    let (plain, _) = read(&[data("proxy.log"), data("flows.csv")], b"");
    let (walked, stats) = read(&[dir.path().to_owned()], b"");
    // Sorted by name: b.csv, then node-a/access.log.
    let mut expected: Vec<String> = plain.iter().map(show).collect();
    expected.rotate_left(3);
    assert_eq!(walked.iter().map(show).collect::<Vec<_>>(), expected);
    assert_eq!(stats.files, 2);
    assert_eq!(stats.malformed, 4);
    // `-` is standard input, gzip'd or not.
    let (stdin, s) = read(&[PathBuf::from("-")], &text);
    assert_eq!(stdin.len(), 3);
    assert_eq!(bad_lines(&s), ["-:5", "-:7"]);
    // A path that does not exist is an error naming it.
    let e = read_flows(&[dir.path().join("nope")], &mut &b""[..], None, &mut |_| {}).unwrap_err();
    assert!(e.to_string().contains("nope"), "{e}");
}

#[test]
fn since_leaves_out_older_flows_and_counts_them() {
    let since = "2026-12-06T10:00:02Z".parse().unwrap();
    let mut n = 0;
    let stats = read_flows(
        &[data("proxy.log")],
        &mut &b""[..],
        Some(since),
        &mut |_| n += 1,
    )
    .unwrap();
    assert_eq!((n, stats.before_since, stats.flows), (2, 1, 2));
}

/// The access log the sidecar's example configuration writes is the log
/// palisade reads: a record made from the configuration's own
/// `json_format` (each command operator replaced by a value Envoy would
/// print) parses to the flow it describes.
#[test]
fn the_example_proxy_configuration_writes_what_verify_reads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("policies/sidecars/access-proxy-config.example.yaml");
    let cm: k8s_openapi::api::core::v1::ConfigMap =
        serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let envoy: serde_json::Value = serde_saphyr::from_str(&cm.data.unwrap()["envoy.yaml"]).unwrap();
    let listener = envoy["static_resources"]["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "inbound_mtls")
        .unwrap();
    let format = &listener["access_log"][0]["typed_config"]["log_format"]["json_format"];
    let values = BTreeMap::from([
        (
            "%START_TIME%",
            serde_json::json!("2026-12-06T10:00:01.512Z"),
        ),
        (
            "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%",
            serde_json::json!("10.244.1.17"),
        ),
        (
            "%DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%",
            serde_json::json!("10.244.2.9"),
        ),
        ("%DOWNSTREAM_LOCAL_PORT%", serde_json::json!(15443)),
        (
            "%DOWNSTREAM_PEER_URI_SAN%",
            serde_json::json!("spiffe://cluster.local/ns/shop/sa/web"),
        ),
        ("%BYTES_RECEIVED%", serde_json::json!(517)),
        ("%BYTES_SENT%", serde_json::json!(4120)),
        ("%DURATION%", serde_json::json!(84)),
        ("%CONNECTION_ID%", serde_json::json!(7)),
        ("%RESPONSE_FLAGS%", serde_json::json!("-")),
    ]);
    let record: serde_json::Map<String, serde_json::Value> = format
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let op = v.as_str().unwrap();
            let value = values
                .get(op)
                .unwrap_or_else(|| panic!("{k}: {op} has no sample value here: add one"));
            (k.clone(), value.clone())
        })
        .collect();
    let line = serde_json::to_string(&record).unwrap();
    let palisade::reach::flow_formats::LineOutcome::Flow(f) = parse_json_line(&line).unwrap()
    else {
        panic!("{line} is not a flow");
    };
    assert_eq!(f.src.ip, Some("10.244.1.17".parse::<IpAddr>().unwrap()));
    assert_eq!(f.dst.ip, Some("10.244.2.9".parse::<IpAddr>().unwrap()));
    assert!(f.dst.is_pod && !f.src.is_pod);
    assert_eq!((f.protocol, f.port), (Protocol::Tcp, 15443));
    assert_eq!(f.time.unwrap().to_string(), "2026-12-06T10:00:01.512Z");
}
