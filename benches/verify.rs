//! `cargo bench --bench verify`: `palisade simulate verify` over one
//! million flow records, run as users run it (the release binary, a state
//! directory, a gzip'd flow file), timed and with its peak RSS (the
//! child's own `ru_maxrss`, from `wait4`). Targets: < 10 s and < 256 MiB.
//!
//! The cluster: 100 namespaces of 10 Deployments with 2 pods each (2,000
//! pods with IPs, their ReplicaSets), a default-deny per namespace, an
//! ingress rule per workload (from the previous workload, TCP 8080),
//! egress within the namespace on 8080 and DNS to anywhere.
//!
//! The flows, in one gzip'd file mixing the three sources line by line:
//! 40 % the access proxy's JSON log, 40 % Hubble JSON (each with the
//! fields a real export adds), 20 % plain JSON lines. Of the connections,
//! most are allowed, 1 % are gaps (a rule's reverse direction), 3 % come
//! from outside addresses a rule admits, 1 % from addresses no pod holds
//! and no rule admits (gaps from outside: one per address and workload,
//! ~10,000 in all), and one line in 10,000 is malformed.
//!
//! `VERIFY_FLOWS=N` changes the count (the default is 1,000,000).

use std::io::{BufWriter, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::{Value, json};

const NAMESPACES: usize = 100;
const WORKLOADS: usize = 10;
const PODS: usize = 2;

#[path = "support/rng.rs"]
mod rng;
use rng::Rng;

fn ip(ns: usize, w: usize, p: usize) -> String {
    format!("10.{}.{}.{}", 100 + ns / 100, ns % 100, w * PODS + p + 1)
}

/// The cluster, written item by item to `out` as a `kind: List`, so that
/// this process never grows (see [`run_measured`]).
fn write_state(out: &mut impl Write) -> std::io::Result<()> {
    write!(
        out,
        "{{\"apiVersion\": \"v1\", \"kind\": \"List\", \"items\": ["
    )?;
    let mut first = true;
    let mut items = Items {
        out,
        first: &mut first,
    };
    for ns in 0..NAMESPACES {
        let n = format!("ns-{ns:03}");
        items.push(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}}));
        items.push(
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "default-deny", "namespace": n},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}}),
        );
        items.push(
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "egress", "namespace": n},
            "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": [
                {"to": [{"podSelector": {}}], "ports": [{"port": 8080}]},
                {"ports": [{"port": 53, "protocol": "UDP"}]}]}}),
        );
        for w in 0..WORKLOADS {
            let app = format!("app-{w}");
            let prev = format!("app-{}", (w + WORKLOADS - 1) % WORKLOADS);
            items.push(json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": {"name": format!("{app}-ingress"), "namespace": n},
                "spec": {"podSelector": {"matchLabels": {"app": app}}, "policyTypes": ["Ingress"],
                    "ingress": [
                        {"from": [{"podSelector": {"matchLabels": {"app": prev}}}], "ports": [{"port": 8080}]},
                        {"from": [{"ipBlock": {"cidr": "203.0.113.0/24"}}], "ports": [{"port": 8080}]}]}}));
            let rs = format!("{app}-5d9f7c6b8");
            items.push(json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": rs, "namespace": n, "uid": format!("rs-{ns}-{w}"),
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": app,
                        "uid": format!("d-{ns}-{w}"), "controller": true}]},
                "spec": {"selector": {"matchLabels": {"app": app}},
                    "template": {"metadata": {"labels": {"app": app}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}}));
            for p in 0..PODS {
                items.push(json!({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": format!("{rs}-{p}"), "namespace": n,
                        "labels": {"app": app, "pod-template-hash": "5d9f7c6b8"},
                        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs,
                            "uid": format!("rs-{ns}-{w}"), "controller": true}]},
                    "spec": {"containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 8080}]}]},
                    "status": {"phase": "Running", "podIP": ip(ns, w, p), "podIPs": [{"ip": ip(ns, w, p)}],
                        "startTime": "2026-12-06T00:00:00Z"}}));
            }
        }
    }
    write!(out, "]}}")
}

/// Writes each item as it is pushed.
struct Items<'a, W: Write> {
    out: &'a mut W,
    first: &'a mut bool,
}

impl<W: Write> Items<'_, W> {
    fn push(&mut self, v: Value) {
        let sep = if *self.first { "" } else { "," };
        *self.first = false;
        write!(self.out, "{sep}{v}").expect("write the state");
    }
}

/// One flow record in one of the three formats.
fn record(rng: &mut Rng, i: usize) -> String {
    let ns = rng.below(NAMESPACES);
    let w = rng.below(WORKLOADS);
    let time = format!(
        "2026-12-06T{:02}:{:02}:{:02}.{:03}Z",
        10 + i / 3_600_000 % 10,
        i / 60_000 % 60,
        i / 1000 % 60,
        i % 1000
    );
    let dst = ip(ns, w, rng.below(PODS));
    let roll = rng.below(100);
    let src = match roll {
        // A gap: the next workload back, which no rule admits.
        0 => ip(ns, (w + 1) % WORKLOADS, rng.below(PODS)),
        1..=3 => format!("203.0.113.{}", rng.below(250) + 1),
        4 => format!("10.250.0.{}", rng.below(250) + 1),
        _ => ip(ns, (w + WORKLOADS - 1) % WORKLOADS, rng.below(PODS)),
    };
    if i % 10_000 == 9_999 {
        return "{\"start_time\":\"2026-12-06T10:00:00Z\",\"downstream_remote_address\":"
            .to_owned();
    }
    match i % 5 {
        0 | 1 => format!(
            "{{\"start_time\":\"{time}\",\"downstream_remote_address\":\"{src}\",\"downstream_local_address\":\"{dst}\",\"downstream_local_port\":8080,\"peer_uri_san\":\"spiffe://cluster.local/ns/ns-{ns:03}/sa/default\",\"bytes_received\":517,\"bytes_sent\":4120,\"duration_ms\":84,\"connection_id\":{i},\"response_flags\":\"-\"}}"
        ),
        2 | 3 => format!(
            "{{\"flow\":{{\"time\":\"{time}\",\"uuid\":\"5f7d3c1e-9a4b-4c55-8b3e-{i:012}\",\"verdict\":\"FORWARDED\",\"ethernet\":{{\"source\":\"62:6b:d0:a4:c5:63\",\"destination\":\"6e:d0:ea:78:fc:0a\"}},\"IP\":{{\"source\":\"{src}\",\"destination\":\"{dst}\",\"ipVersion\":\"IPv4\"}},\"l4\":{{\"TCP\":{{\"source_port\":51234,\"destination_port\":8080,\"flags\":{{\"SYN\":true}}}}}},\"source\":{{\"identity\":18070,\"labels\":[\"k8s:io.kubernetes.pod.namespace=ns-{ns:03}\"]}},\"destination\":{{\"identity\":10337,\"labels\":[\"k8s:io.kubernetes.pod.namespace=ns-{ns:03}\"]}},\"Type\":\"L3_L4\",\"node_name\":\"kind-worker\",\"event_type\":{{\"type\":4}},\"traffic_direction\":\"INGRESS\",\"is_reply\":false,\"Summary\":\"TCP Flags: SYN\"}},\"node_name\":\"kind-worker\",\"time\":\"{time}\"}}"
        ),
        _ => format!(
            "{{\"time\":\"{time}\",\"src_ip\":\"{src}\",\"dst_ip\":\"{dst}\",\"dst_port\":8080,\"protocol\":\"TCP\",\"action\":\"ACCEPT\"}}"
        ),
    }
}

/// Runs `cmd` to its end with its standard output in `out_file`,
/// returning its exit status, standard error and its own peak RSS in KiB
/// (`ru_maxrss` from `wait4` on that child).
///
/// The child is spawned sharing this process's memory until it execs
/// (posix_spawn's vfork), and Linux counts that memory's peak in the
/// child's `ru_maxrss`: so this process keeps small (the state is written
/// item by item, outputs go to a file and are read after), and the figure
/// includes its few MiB.
// The child is reaped by the wait4 below, which also gives its rusage.
#[allow(clippy::zombie_processes)]
fn run_measured(cmd: &mut Command, out_file: &Path) -> (i32, Vec<u8>, i64) {
    let out = std::fs::File::create(out_file).expect("output file");
    let mut child = cmd
        .stdout(Stdio::from(out))
        .stderr(Stdio::piped())
        .spawn()
        .expect("palisade runs");
    let mut stderr = child.stderr.take().expect("stderr");
    let err = std::thread::spawn(move || {
        let mut b = Vec::new();
        stderr.read_to_end(&mut b).map(|_| b)
    });
    let pid = libc::pid_t::try_from(child.id()).expect("a pid");
    let mut status = 0;
    // SAFETY: wait4 writes only the status and the rusage it is given;
    // the child is not waited for anywhere else.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::wait4(pid, &mut status, 0, &mut u);
        u
    };
    let err = err.join().expect("reader").expect("stderr");
    (libc::WEXITSTATUS(status), err, usage.ru_maxrss)
}

/// The parts of `--output json` printed here, read without holding the
/// rest.
#[derive(serde::Deserialize)]
struct Summary {
    flows: Value,
    gaps: Vec<serde::de::IgnoredAny>,
    rules: Vec<serde::de::IgnoredAny>,
    coverage: Value,
}

fn main() {
    let flows: usize = std::env::var("VERIFY_FLOWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let state = dir.path().join("state");
    std::fs::create_dir(&state).expect("state dir");
    {
        let mut f =
            BufWriter::new(std::fs::File::create(state.join("cluster.json")).expect("state"));
        write_state(&mut f).expect("state");
        f.flush().expect("state");
    }
    let flow_file = dir.path().join("flows.jsonl.gz");
    let started = Instant::now();
    {
        let f = std::fs::File::create(&flow_file).expect("flow file");
        let mut gz = flate2::write::GzEncoder::new(BufWriter::new(f), flate2::Compression::fast());
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for i in 0..flows {
            writeln!(gz, "{}", record(&mut rng, i)).expect("write");
        }
        gz.finish().expect("gzip").flush().expect("flush");
    }
    let size = std::fs::metadata(&flow_file).map_or(0, |m| m.len());
    println!(
        "generated {flows} flow records ({:.1} MB gzip'd) in {:.2} s",
        size as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    run(&state, &flow_file, "json");
    run(&state, &flow_file, "text");
}

fn run(state: &Path, flows: &Path, output: &str) {
    let out_file = state.with_file_name(format!("report.{output}"));
    let started = Instant::now();
    let (code, err, rss) = run_measured(
        Command::new(env!("CARGO_BIN_EXE_palisade"))
            .args(["simulate", "verify", "--output", output, "--state"])
            .arg(state)
            .arg(flows),
        &out_file,
    );
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(code, 0, "verify failed: {}", String::from_utf8_lossy(&err));
    let size = std::fs::metadata(&out_file).map_or(0, |m| m.len());
    println!(
        "verify --output {output:4}  {secs:>6.2} s (target < 10 s)  peak RSS {:>6.1} MiB (target < 256 MiB)  output {:.1} MB",
        rss as f64 / 1024.0,
        size as f64 / 1e6
    );
    let f = std::io::BufReader::new(std::fs::File::open(&out_file).expect("output"));
    if output == "text" {
        let first = std::io::BufRead::lines(f)
            .next()
            .and_then(Result::ok)
            .unwrap_or_default();
        println!("  {first}");
    } else {
        let v: Summary = serde_json::from_reader(f).expect("json");
        println!(
            "  flows {}  gaps {}  rules {}  coverage {} %",
            v.flows,
            v.gaps.len(),
            v.rules.len(),
            v.coverage["percent"]
        );
    }
}
