//! The generated cluster the scale benches measure, as API objects: 10,000
//! namespaces with ten NetworkPolicies each in the proportions of a real
//! fleet, and pods: ten per workload, one workload (a Deployment's
//! ReplicaSet) per namespace in the first half of the namespaces.
//!
//! Every namespace but one in twenty has a default-deny; one in twenty is a
//! dev namespace with an allow-all; the rest are app-to-app rules,
//! namespaceSelector rules, DNS egress, ipBlock egress and monitoring
//! scrapes.

use serde_json::{Value, json};

/// Pods per workload.
pub const PODS_PER_WORKLOAD: usize = 10;

const TEAMS: [&str; 8] = [
    "payments", "checkout", "search", "ledger", "identity", "media", "ads", "ml",
];
const APPS: [&str; 6] = ["web", "api", "worker", "db", "cache", "auth"];

/// Namespace `i`'s name.
pub fn namespace_name(i: usize) -> String {
    format!("{}-svc-{i:05}", TEAMS[i % TEAMS.len()])
}

fn team(i: usize) -> &'static str {
    TEAMS[i % TEAMS.len()]
}

/// Namespace `i`.
pub fn namespace(i: usize) -> Value {
    let dev = i % 20 == 7;
    let env = if dev {
        "dev"
    } else if i.is_multiple_of(3) {
        "staging"
    } else {
        "prod"
    };
    let name = namespace_name(i);
    let mut labels =
        json!({"environment": env, "team": team(i), "kubernetes.io/metadata.name": name});
    if i.is_multiple_of(4) {
        labels["palisade.io/proxy"] = "enabled".into();
    }
    json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": name, "uid": format!("ns-{i}"), "resourceVersion": "1", "labels": labels},
        "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
}

/// Policy `p` of namespace `i` (ten per namespace): where a namespace has
/// no default-deny (one in twenty) or is not dev (no allow-all), an
/// app-to-app rule takes the place. Always `Some`; an `Option` so callers
/// that count places can skip.
pub fn policy(i: usize, p: usize) -> Option<Value> {
    let ns = namespace_name(i);
    let dev = i % 20 == 7;
    let (name, spec) = match p {
        0 if i % 20 != 3 => (
            "default-deny".to_owned(),
            json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
        ),
        1 => (
            "allow-dns".to_owned(),
            json!({"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"to": [{
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}]}),
        ),
        2 if dev => (
            "allow-all-ingress".to_owned(),
            json!({"podSelector": {}, "ingress": [{}]}),
        ),
        3 => (
            format!("from-team-{}", team(i)),
            json!({"podSelector": {"matchLabels": {"app": "api"}}, "ingress": [{
                "from": [{"namespaceSelector": {"matchLabels": {"team": team(i)}}}],
                "ports": [{"port": 8443}]}]}),
        ),
        4 => (
            "egress-internal".to_owned(),
            json!({"podSelector": {"matchLabels": {"app": "worker"}}, "policyTypes": ["Egress"],
                "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.96.0.0/12"]}}],
                "ports": [{"port": 443}]}]}),
        ),
        5 => (
            "monitoring".to_owned(),
            json!({"podSelector": {}, "ingress": [{"from": [{
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
                "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}],
                "ports": [{"port": "metrics"}]}]}),
        ),
        _ => {
            let to = APPS[p % APPS.len()];
            let from = APPS[(p + 1) % APPS.len()];
            (
                format!("{from}-to-{to}-{p}"),
                json!({"podSelector": {"matchLabels": {"app": to}}, "policyTypes": ["Ingress"],
                    "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": from}}}],
                    "ports": [{"port": 8000 + p, "protocol": "TCP"}]}]}),
            )
        }
    };
    Some(
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns, "uid": format!("np-{i}-{p}"), "resourceVersion": "1",
            "generation": 1, "creationTimestamp": "2026-11-01T10:00:00Z"},
        "spec": spec}),
    )
}

/// Pod `k` of the workload of namespace `i`: a Deployment's pod as the
/// API server holds it (owner, template hash, status with IPs).
pub fn pod(i: usize, k: usize) -> Value {
    let ns = namespace_name(i);
    let app = APPS[i % APPS.len()];
    let hash = format!("{:x}", 0x5d4f_8b00_u64 + i as u64);
    let rs = format!("{app}-{hash}");
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("{rs}-{k:05}"), "namespace": ns, "uid": format!("pod-{i}-{k}"),
            "resourceVersion": "1", "generateName": format!("{rs}-"),
            "creationTimestamp": "2026-11-01T10:00:00Z",
            "labels": {"app": app, "pod-template-hash": hash, "app.kubernetes.io/part-of": team(i)},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs,
                "uid": format!("rs-{i}"), "controller": true, "blockOwnerDeletion": true}]},
        "spec": {"serviceAccountName": "default", "nodeName": format!("node-{}", i % 50),
            "containers": [{"name": app, "image": format!("registry.example.com/{app}:1.4.2"),
                "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"},
                          {"name": "metrics", "containerPort": 9090, "protocol": "TCP"}],
                "env": [{"name": "LOG_LEVEL", "value": "info"}, {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
                "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 5},
                "volumeMounts": [{"name": "kube-api-access", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true}]}],
            "volumes": [{"name": "kube-api-access", "projected": {"sources": [{"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}}]}}]},
        "status": {"phase": "Running", "podIP": format!("10.{}.{}.{}", (i >> 8) & 255, i & 255, k + 2),
            "hostIP": format!("192.168.{}.{}", (i % 50) / 250, i % 50 + 10),
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-11-01T10:00:10Z"}]}})
}
