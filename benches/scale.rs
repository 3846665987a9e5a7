//! Scale: a generated cluster of 10,000 namespaces and 100,000
//! NetworkPolicies, loaded the way `palisade serve --state DIR` loads it.
//!
//! ```text
//! cargo bench --bench scale
//! ```
//!
//! The parent process writes states of 100, 1,000 and 10,000 namespaces
//! (ten policies each, one YAML file per namespace) to temporary
//! directories, then measures each in a fresh child process (this same
//! binary, re-run), so the memory figures are those of a process that did
//! nothing but load the state: time to load, VmRSS after the load and VmHWM
//! (the peak), then the latency of single reviews decided against the
//! state (parse, decide, respond; no network), which must not grow with
//! the number of namespaces. Last, the real binary serves the largest state
//! and its VmRSS is read once it answers.
//!
//! Then the shape of a cluster exported with `kubectl get ns,netpol,pods -A
//! -o json` (issue 19): one JSON `List` of 10,000 namespaces, 100,000
//! NetworkPolicies and 50,000 pods in 5,000 namespaces, each object with
//! the metadata, `managedFields` and (for pods) spec and status a real API
//! server returns, about 350 MB, written to a temporary directory and served
//! by the real binary with `serve --state DIR`, the preview off: time until
//! it serves, VmHWM (peak) and VmRSS once settled. The file is read object
//! by object and the pods are passed over unparsed. It does not reproduce
//! the exact field mix of every real pod (one template, varied by name,
//! labels and owner).
//!
//! Knobs (environment): `PALISADE_SCALE_SIZES` (comma-separated namespace
//! counts, default `100,1000,10000`), `PALISADE_SCALE_POLICIES` (per
//! namespace, default 10), `PALISADE_SCALE_REVIEWS` (timed reviews per size,
//! default 20000), `PALISADE_SCALE_EXPORT` (`NAMESPACES,POLICIES,PODS` of the
//! export, default `10000,100000,50000`; `0` skips it).
//!
//! ```text
//! PALISADE_SCALE_SIZES=100 cargo bench --bench scale               # the export only, quickly
//! PALISADE_SCALE_EXPORT=0 cargo bench --bench scale                # the YAML layouts only
//! ```

#[path = "../tests/common/shared.rs"]
mod shared;

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use palisade::admit::{self, Webhook};
use palisade::cluster::ClusterView;
use palisade::cluster::static_dir::StaticCluster;
use palisade::config::Config;
use palisade::review;

/// The binary's allocator, so that the state's memory here is what it is there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CHILD_ENV: &str = "PALISADE_SCALE_CHILD";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Namespace `i` of the generated cluster.
fn namespace_name(i: usize) -> String {
    const TEAMS: [&str; 8] = [
        "payments", "checkout", "search", "ledger", "identity", "media", "ads", "ml",
    ];
    format!("{}-svc-{i:05}", TEAMS[i % TEAMS.len()])
}

/// One namespace's manifests: the Namespace and `policies` NetworkPolicies
/// in the proportions of a real fleet. Every namespace but one in twenty
/// has a default-deny; one in twenty is a dev namespace with an allow-all;
/// the rest are app-to-app rules, namespaceSelector rules, DNS egress,
/// ipBlock egress and monitoring scrapes.
fn namespace_yaml(i: usize, policies: usize) -> String {
    let ns = namespace_name(i);
    let dev = i % 20 == 7;
    let env = if dev {
        "dev"
    } else if i.is_multiple_of(3) {
        "staging"
    } else {
        "prod"
    };
    let team = ns.split('-').next().unwrap_or("x");
    let mut y = String::with_capacity(policies * 420 + 300);
    let _ = write!(
        y,
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n  labels:\n    environment: {env}\n    team: {team}\n{}",
        if i.is_multiple_of(4) {
            "    palisade.io/proxy: enabled\n"
        } else {
            ""
        }
    );
    let apps = ["web", "api", "worker", "db", "cache", "auth"];
    for p in 0..policies {
        let head = format!(
            "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  namespace: {ns}\n"
        );
        y.push_str(&head);
        let body = match p {
            0 if i % 20 != 3 => "  name: default-deny\nspec:\n  podSelector: {}\n  policyTypes: [Ingress, Egress]\n".to_owned(),
            1 => "  name: allow-dns\nspec:\n  podSelector: {}\n  policyTypes: [Egress]\n  egress:\n  - to:\n    - namespaceSelector:\n        matchLabels: {kubernetes.io/metadata.name: kube-system}\n      podSelector:\n        matchLabels: {k8s-app: kube-dns}\n    ports: [{port: 53, protocol: UDP}, {port: 53, protocol: TCP}]\n".to_owned(),
            2 if dev => "  name: allow-all-ingress\nspec:\n  podSelector: {}\n  ingress: [{}]\n".to_owned(),
            3 => format!(
                "  name: from-team-{team}\nspec:\n  podSelector:\n    matchLabels: {{app: api}}\n  ingress:\n  - from:\n    - namespaceSelector:\n        matchLabels: {{team: {team}}}\n    ports: [{{port: 8443}}]\n"
            ),
            4 => "  name: egress-internal\nspec:\n  podSelector:\n    matchLabels: {app: worker}\n  policyTypes: [Egress]\n  egress:\n  - to:\n    - ipBlock: {cidr: 10.0.0.0/8, except: [10.96.0.0/12]}\n    ports: [{port: 443}]\n".to_owned(),
            5 => "  name: monitoring\nspec:\n  podSelector: {}\n  ingress:\n  - from:\n    - namespaceSelector:\n        matchLabels: {kubernetes.io/metadata.name: monitoring}\n      podSelector:\n        matchLabels: {app.kubernetes.io/name: prometheus}\n    ports: [{port: metrics}]\n".to_owned(),
            _ => {
                let to = apps[p % apps.len()];
                let from = apps[(p + 1) % apps.len()];
                format!(
                    "  name: {from}-to-{to}-{p}\nspec:\n  podSelector:\n    matchLabels: {{app: {to}}}\n  policyTypes: [Ingress]\n  ingress:\n  - from:\n    - podSelector:\n        matchLabels: {{app: {from}}}\n    ports: [{{port: {}, protocol: TCP}}]\n",
                    8000 + p
                )
            }
        };
        y.push_str(&body);
    }
    y
}

fn generate(dir: &Path, namespaces: usize, policies: usize) -> u64 {
    let mut bytes = 0u64;
    for i in 0..namespaces {
        let text = namespace_yaml(i, policies);
        bytes += text.len() as u64;
        std::fs::write(dir.join(format!("{}.yaml", namespace_name(i))), text).expect("write");
    }
    bytes
}

/// `VmRSS` and `VmHWM` of this process, in KiB.
fn memory_kib(pid: &str) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A pod CREATE review for namespace `ns`, from the captured fixture.
fn pod_review(ns: &str, uid: usize) -> Vec<u8> {
    let path = shared::shared_fixtures("admission-reviews/validating-pod-create-with-labels.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("JSON");
    v["request"]["namespace"] = ns.into();
    v["request"]["object"]["metadata"]["namespace"] = ns.into();
    v["request"]["uid"] = format!("scale-{uid}").into();
    serde_json::to_vec(&v).expect("serialize")
}

/// Child: load `dir`, report memory and time, then decide reviews.
fn child(dir: &Path, namespaces: usize) {
    let (rss_before, _) = memory_kib("self");
    let started = Instant::now();
    let (cluster, skipped) = StaticCluster::load(&[dir]).expect("state loads");
    let load = started.elapsed();
    let (rss, hwm) = memory_kib("self");
    assert!(skipped.is_empty(), "{skipped:?}");
    let stats = cluster.stats();

    let config = Config::embedded().expect("config");
    let cluster: Arc<dyn ClusterView> = Arc::new(cluster);
    let n: usize = env_or("PALISADE_SCALE_REVIEWS", 20_000usize).max(100);
    // 512 namespaces spread over the whole state, visited in turn, so the
    // lookups do not all hit one warm cache line.
    let bodies: Vec<Vec<u8>> = (0..512)
        .map(|k| pod_review(&namespace_name((k * 7919) % namespaces), k))
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let (mut decide, mut lookup) = rt.block_on(async {
        let mut decide = Vec::with_capacity(n);
        let mut lookup = Vec::with_capacity(n);
        let mut denied = 0usize;
        for i in 0..n {
            let body = &bodies[i % bodies.len()];
            let t = Instant::now();
            let req = review::parse(body).expect("review parses");
            let (verdict, _) =
                admit::admit(&config, cluster.as_ref(), Webhook::Validate, &req).await;
            let out = review::respond(&req.uid, &verdict, false);
            decide.push(t.elapsed());
            denied += usize::from(!verdict.allowed());
            std::hint::black_box(out);
            let ns = req.namespace.as_deref().unwrap_or("");
            let t = Instant::now();
            std::hint::black_box(cluster.namespace(ns));
            lookup.push(t.elapsed());
        }
        // Pods in the namespaces without default-deny are denied.
        assert!(denied > 0 && denied < n, "the mix has denials: {denied}");
        (decide, lookup)
    });
    decide.sort_unstable();
    lookup.sort_unstable();
    println!(
        "{:>6} namespaces {:>7} policies  load {:>7.2} s  VmRSS {:>6.1} MiB (before load {:.1})  VmHWM {:>6.1} MiB  review p50 {:>6.1} µs p99 {:>6.1} µs  namespace view p50 {:>5.2} µs p99 {:>5.2} µs",
        stats.namespaces,
        stats.policies,
        load.as_secs_f64(),
        mib(rss),
        mib(rss_before),
        mib(hwm),
        percentile(&decide, 50.0).as_secs_f64() * 1e6,
        percentile(&decide, 99.0).as_secs_f64() * 1e6,
        percentile(&lookup, 50.0).as_secs_f64() * 1e6,
        percentile(&lookup, 99.0).as_secs_f64() * 1e6,
    );
}

/// One item of a `kubectl get -o json` List, indented as kubectl writes
/// items (eight spaces), with the metadata an API server adds.
fn export_meta(name: &str, ns: Option<&str>, uid: usize, labels: &str, extra: &str) -> String {
    let ns = ns
        .map(|n| format!("\n                \"namespace\": \"{n}\","))
        .unwrap_or_default();
    format!(
        r#"
                "creationTimestamp": "2026-11-02T10:{m:02}:{s:02}Z",
                "generation": 1,
                "labels": {{{labels}}},
                "managedFields": [
                    {{
                        "apiVersion": "v1",
                        "fieldsType": "FieldsV1",
                        "fieldsV1": {{"f:metadata": {{"f:labels": {{".": {{}}, "f:app": {{}}}}}}, "f:spec": {{".": {{}}}}}},
                        "manager": "kubectl-client-side-apply",
                        "operation": "Update",
                        "time": "2026-11-02T10:{m:02}:{s:02}Z"
                    }}
                ],
                "name": "{name}",{ns}{extra}
                "resourceVersion": "{rv}",
                "uid": "{uid:08x}-5f1c-4b7e-9a1d-{uid:012x}""#,
        m = uid % 60,
        s = (uid / 60) % 60,
        rv = 100_000 + uid,
    )
}

/// Writes the export to `path` item by item (never held whole); returns
/// its size in bytes.
fn write_export(path: &Path, namespaces: usize, policies: usize, pods: usize) -> u64 {
    use std::io::Write;
    let file = std::fs::File::create(path).expect("create");
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut uid = 0usize;
    let mut next_uid = || {
        uid += 1;
        uid
    };
    let mut first = true;
    let mut item = |w: &mut std::io::BufWriter<std::fs::File>, body: String| {
        let sep = if first { "" } else { "," };
        first = false;
        write!(w, "{sep}\n        {{{body}\n        }}").expect("write");
    };
    write!(w, "{{\n    \"apiVersion\": \"v1\",\n    \"items\": [").expect("write");
    for i in 0..namespaces {
        let ns = namespace_name(i);
        let env = if i % 20 == 7 { "dev" } else { "prod" };
        let meta = export_meta(
            &ns,
            None,
            next_uid(),
            &format!("\"environment\": \"{env}\", \"kubernetes.io/metadata.name\": \"{ns}\""),
            "",
        );
        item(
            &mut w,
            format!(
                "\n            \"apiVersion\": \"v1\",\n            \"kind\": \"Namespace\",\n            \"metadata\": {{{meta}\n            }},\n            \"spec\": {{\"finalizers\": [\"kubernetes\"]}},\n            \"status\": {{\"phase\": \"Active\"}}"
            ),
        );
    }
    let per_ns = policies / namespaces.max(1);
    for i in 0..namespaces {
        let ns = namespace_name(i);
        for p in 0..per_ns {
            let (name, spec) = if p == 0 && i % 20 != 3 {
                (
                    "default-deny".to_owned(),
                    r#"{"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}"#.to_owned(),
                )
            } else {
                (
                    format!("allow-{p}"),
                    format!(
                        r#"{{"ingress": [{{"from": [{{"podSelector": {{"matchLabels": {{"app": "api-{p}"}}}}}}], "ports": [{{"port": {}, "protocol": "TCP"}}]}}], "podSelector": {{"matchLabels": {{"app": "web"}}}}, "policyTypes": ["Ingress"]}}"#,
                        8000 + p
                    ),
                )
            };
            let meta = export_meta(&name, Some(&ns), next_uid(), "", "");
            item(
                &mut w,
                format!(
                    "\n            \"apiVersion\": \"networking.k8s.io/v1\",\n            \"kind\": \"NetworkPolicy\",\n            \"metadata\": {{{meta}\n            }},\n            \"spec\": {spec}"
                ),
            );
        }
    }
    let pod_namespaces = (namespaces / 2).max(1);
    for k in 0..pods {
        let ns = namespace_name(k % pod_namespaces);
        let app = format!("app-{}", (k / pod_namespaces) % 10);
        let name = format!("{app}-7d9f8b6c5-{k:05}");
        let owner = format!(
            r#"
                "generateName": "{app}-7d9f8b6c5-",
                "ownerReferences": [{{"apiVersion": "apps/v1", "blockOwnerDeletion": true, "controller": true, "kind": "ReplicaSet", "name": "{app}-7d9f8b6c5", "uid": "0000-{k}"}}],"#
        );
        let meta = export_meta(
            &name,
            Some(&ns),
            next_uid(),
            &format!("\"app\": \"{app}\", \"pod-template-hash\": \"7d9f8b6c5\""),
            &owner,
        );
        item(
            &mut w,
            format!(
                "\n            \"apiVersion\": \"v1\",\n            \"kind\": \"Pod\",\n            \"metadata\": {{{meta}\n            }},{POD_BODY}"
            ),
        );
    }
    write!(w, "\n    ],\n    \"kind\": \"List\",\n    \"metadata\": {{\n        \"resourceVersion\": \"\"\n    }}\n}}\n").expect("write");
    w.flush().expect("flush");
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// A pod's spec and status as the API server returns them (defaults
/// filled in, one container with env, probes, mounts; conditions and
/// container statuses).
const POD_BODY: &str = r#"
            "spec": {
                "containers": [
                    {
                        "env": [{"name": "LOG_LEVEL", "value": "info"}, {"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}}, {"name": "POD_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}}],
                        "image": "registry.example.com/shop/app:v1.42.7",
                        "imagePullPolicy": "IfNotPresent",
                        "livenessProbe": {"failureThreshold": 3, "httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"}, "periodSeconds": 10, "successThreshold": 1, "timeoutSeconds": 1},
                        "name": "app",
                        "ports": [{"containerPort": 8080, "name": "http", "protocol": "TCP"}, {"containerPort": 9090, "name": "metrics", "protocol": "TCP"}],
                        "readinessProbe": {"failureThreshold": 3, "httpGet": {"path": "/ready", "port": 8080, "scheme": "HTTP"}, "periodSeconds": 5, "successThreshold": 1, "timeoutSeconds": 1},
                        "resources": {"limits": {"cpu": "1", "memory": "512Mi"}, "requests": {"cpu": "100m", "memory": "128Mi"}},
                        "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}, "readOnlyRootFilesystem": true, "runAsNonRoot": true},
                        "terminationMessagePath": "/dev/termination-log",
                        "terminationMessagePolicy": "File",
                        "volumeMounts": [{"mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "name": "kube-api-access-x7k2p", "readOnly": true}, {"mountPath": "/etc/app", "name": "config", "readOnly": true}]
                    }
                ],
                "dnsPolicy": "ClusterFirst",
                "enableServiceLinks": true,
                "nodeName": "node-17.example.internal",
                "preemptionPolicy": "PreemptLowerPriority",
                "priority": 0,
                "restartPolicy": "Always",
                "schedulerName": "default-scheduler",
                "securityContext": {"fsGroup": 2000, "runAsUser": 1000},
                "serviceAccount": "default",
                "serviceAccountName": "default",
                "terminationGracePeriodSeconds": 30,
                "tolerations": [{"effect": "NoExecute", "key": "node.kubernetes.io/not-ready", "operator": "Exists", "tolerationSeconds": 300}, {"effect": "NoExecute", "key": "node.kubernetes.io/unreachable", "operator": "Exists", "tolerationSeconds": 300}],
                "volumes": [{"configMap": {"defaultMode": 420, "name": "app-config"}, "name": "config"}, {"name": "kube-api-access-x7k2p", "projected": {"defaultMode": 420, "sources": [{"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}, {"configMap": {"items": [{"key": "ca.crt", "path": "ca.crt"}], "name": "kube-root-ca.crt"}}, {"downwardAPI": {"items": [{"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}, "path": "namespace"}]}}]}}]
            },
            "status": {
                "conditions": [
                    {"lastProbeTime": null, "lastTransitionTime": "2026-11-02T10:00:01Z", "status": "True", "type": "PodReadyToStartContainers"},
                    {"lastProbeTime": null, "lastTransitionTime": "2026-11-02T10:00:00Z", "status": "True", "type": "Initialized"},
                    {"lastProbeTime": null, "lastTransitionTime": "2026-11-02T10:00:09Z", "status": "True", "type": "Ready"},
                    {"lastProbeTime": null, "lastTransitionTime": "2026-11-02T10:00:09Z", "status": "True", "type": "ContainersReady"},
                    {"lastProbeTime": null, "lastTransitionTime": "2026-11-02T10:00:00Z", "status": "True", "type": "PodScheduled"}
                ],
                "containerStatuses": [
                    {"containerID": "containerd://4f1d2c3b4a5968778695a4b3c2d1e0f9e8d7c6b5a4938271605f4e3d2c1b0a99", "image": "registry.example.com/shop/app:v1.42.7", "imageID": "registry.example.com/shop/app@sha256:9b2a1c0d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b", "lastState": {}, "name": "app", "ready": true, "restartCount": 0, "started": true, "state": {"running": {"startedAt": "2026-11-02T10:00:02Z"}}, "volumeMounts": [{"mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "name": "kube-api-access-x7k2p", "readOnly": true, "recursiveReadOnly": "Disabled"}]}
                ],
                "hostIP": "10.0.17.4",
                "hostIPs": [{"ip": "10.0.17.4"}],
                "phase": "Running",
                "podIP": "10.244.17.93",
                "podIPs": [{"ip": "10.244.17.93"}],
                "qosClass": "Burstable",
                "startTime": "2026-11-02T10:00:00Z"
            }"#;

/// The real binary on the state: its VmRSS once it serves.
fn serve_rss(state: &Path) {
    let certs = tempfile::tempdir().expect("tempdir");
    let bundle = palisade::certs::generate(&palisade::certs::CertSpec {
        service: "palisade".into(),
        namespace: "palisade-system".into(),
        dns: vec![],
        ips: vec![],
        validity_days: 1,
    })
    .expect("certificates");
    bundle.write_to(certs.path()).expect("write");
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .arg("serve")
        .arg("--config")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/policies/palisade.yaml"
        ))
        .arg("--state")
        .arg(state)
        .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
        .arg("--tls-cert")
        .arg(certs.path().join(palisade::certs::CERT_FILE))
        .arg("--tls-key")
        .arg(certs.path().join(palisade::certs::KEY_FILE))
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("palisade serve");
    let pid = child.id().to_string();
    let stderr = child.stderr.take().expect("stderr");
    let mut serving = false;
    let mut metrics_addr = String::new();
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        if line.contains("palisade is serving") {
            serving = true;
            metrics_addr = serde_json::from_str::<serde_json::Value>(&line)
                .ok()
                .and_then(|v| v["metrics_addr"].as_str().map(str::to_owned))
                .unwrap_or_default();
            break;
        }
    }
    let ready = started.elapsed();
    // Let the runtime settle (listeners spawned, watcher registered, the
    // allocator's freed pages given back).
    std::thread::sleep(Duration::from_millis(env_or(
        "PALISADE_SCALE_SETTLE_MS",
        3000u64,
    )));
    let (rss, hwm) = memory_kib(&pid);
    let held = cache_objects(&metrics_addr);
    // SAFETY: kill(2) with a pid we spawned and still own.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let status = child.wait().expect("wait");
    println!(
        "palisade serve --state (binary): serving after {:.2} s: {serving}, holding {held}; settled VmRSS {:.1} MiB ({:.1} s after), peak VmHWM {:.1} MiB; exit after SIGTERM: {status}",
        ready.as_secs_f64(),
        mib(rss),
        env_or("PALISADE_SCALE_SETTLE_MS", 3000u64) as f64 / 1000.0,
        mib(hwm),
    );
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        let (n, dir) = spec.split_once(':').expect("N:DIR");
        child(Path::new(dir), n.parse().expect("namespace count"));
        return;
    }
    let sizes: Vec<usize> = std::env::var("PALISADE_SCALE_SIZES")
        .unwrap_or_else(|_| "100,1000,10000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let policies: usize = env_or("PALISADE_SCALE_POLICIES", 10usize);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "palisade scale bench: {policies} NetworkPolicies per namespace, one YAML file per namespace; load average {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let exe = std::env::current_exe().expect("own path");
    let mut largest: Option<(usize, tempfile::TempDir)> = None;
    for &n in &sizes {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = Instant::now();
        let bytes = generate(dir.path(), n, policies);
        println!(
            "generated {n} namespaces, {} policies, {:.1} MiB of YAML in {:.2} s",
            n * policies,
            bytes as f64 / (1024.0 * 1024.0),
            t.elapsed().as_secs_f64()
        );
        let status = Command::new(&exe)
            .env(CHILD_ENV, format!("{n}:{}", dir.path().display()))
            .status()
            .expect("child");
        assert!(status.success(), "child for {n} namespaces: {status}");
        if largest.as_ref().is_none_or(|(m, _)| n > *m) {
            largest = Some((n, dir));
        }
    }
    if let Some((_, dir)) = largest {
        serve_rss(&PathBuf::from(dir.path()));
    }
    export_bench();
}

/// `palisade_cache_objects` from the metrics port: what the server holds.
fn cache_objects(addr: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut conn) = std::net::TcpStream::connect(addr) else {
        return "? (no metrics)".into();
    };
    let _ = conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n");
    let mut body = String::new();
    let _ = conn.read_to_string(&mut body);
    body.lines()
        .filter(|l| l.starts_with("palisade_cache_objects{"))
        .map(|l| l.trim_start_matches("palisade_cache_objects"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `serve --state` on a `kubectl get ns,netpol,pods -A -o json` export.
fn export_bench() {
    let spec =
        std::env::var("PALISADE_SCALE_EXPORT").unwrap_or_else(|_| "10000,100000,50000".into());
    let parts: Vec<usize> = spec
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let [namespaces, policies, pods] = parts[..] else {
        return;
    };
    if namespaces == 0 {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("cluster.json");
    let t = Instant::now();
    let bytes = write_export(&file, namespaces, policies, pods);
    println!(
        "export (kubectl get ns,netpol,pods -A -o json shape): {namespaces} namespaces, {policies} NetworkPolicies, {pods} pods, one List of {:.0} MB, written in {:.1} s",
        bytes as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    println!(
        "rerun: PALISADE_SCALE_SIZES=100 PALISADE_SCALE_EXPORT={namespaces},{policies},{pods} cargo bench --bench scale"
    );
    serve_rss(dir.path());
}
