//! The generated cluster `cargo bench --bench scale` measures, as API
//! objects, one generator for every layout it is served in (a YAML file
//! per namespace, a `kubectl get -o json` export, a stand-in API server):
//! 10,000 namespaces with ten NetworkPolicies each in the proportions of a
//! real fleet, and pods: ten per workload, one workload (a Deployment's
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

/// Policy `p` of namespace `i` (ten per namespace in the benches): where a
/// namespace has no default-deny (one in twenty) or is not dev (no
/// allow-all), an app-to-app rule takes the place.
pub fn policy(i: usize, p: usize) -> Value {
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
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns, "uid": format!("np-{i}-{p}"), "resourceVersion": "1",
            "generation": 1, "creationTimestamp": "2026-11-01T10:00:00Z"},
        "spec": spec})
}

/// Pod `k` of the workload of namespace `i`: a Deployment's pod as the
/// API server returns it (defaults filled in, one container with env,
/// probes and mounts; conditions and container statuses).
pub fn pod(i: usize, k: usize) -> Value {
    let ns = namespace_name(i);
    let app = APPS[i % APPS.len()];
    let hash = format!("{:x}", 0x5d4f_8b00_u64 + i as u64);
    let rs = format!("{app}-{hash}");
    let ip = format!("10.{}.{}.{}", 16 + (i >> 8) % 200, i & 255, k + 2);
    let started = "2026-11-02T10:00:00Z";
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("{rs}-{k:05}"), "namespace": ns, "uid": format!("pod-{i}-{k}"),
            "resourceVersion": format!("{}", 200_000 + i * 16 + k), "generateName": format!("{rs}-"),
            "creationTimestamp": started,
            "labels": {"app": app, "pod-template-hash": hash, "app.kubernetes.io/part-of": team(i)},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs,
                "uid": format!("rs-{i}"), "controller": true, "blockOwnerDeletion": true}]},
        "spec": {
            "containers": [{
                "name": app, "image": format!("registry.example.com/{app}:1.42.7"), "imagePullPolicy": "IfNotPresent",
                "env": [{"name": "LOG_LEVEL", "value": "info"},
                        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
                        {"name": "POD_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}}],
                "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"},
                          {"name": "metrics", "containerPort": 9090, "protocol": "TCP"}],
                "livenessProbe": {"failureThreshold": 3, "httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"}, "periodSeconds": 10, "successThreshold": 1, "timeoutSeconds": 1},
                "readinessProbe": {"failureThreshold": 3, "httpGet": {"path": "/ready", "port": 8080, "scheme": "HTTP"}, "periodSeconds": 5, "successThreshold": 1, "timeoutSeconds": 1},
                "resources": {"limits": {"cpu": "1", "memory": "512Mi"}, "requests": {"cpu": "100m", "memory": "128Mi"}},
                "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}, "readOnlyRootFilesystem": true, "runAsNonRoot": true},
                "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
                "volumeMounts": [{"mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "name": "kube-api-access-x7k2p", "readOnly": true},
                                 {"mountPath": "/etc/app", "name": "config", "readOnly": true}]}],
            "dnsPolicy": "ClusterFirst", "enableServiceLinks": true, "nodeName": format!("node-{}.example.internal", i % 50),
            "preemptionPolicy": "PreemptLowerPriority", "priority": 0, "restartPolicy": "Always",
            "schedulerName": "default-scheduler", "securityContext": {"fsGroup": 2000, "runAsUser": 1000},
            "serviceAccount": "default", "serviceAccountName": "default", "terminationGracePeriodSeconds": 30,
            "tolerations": [{"effect": "NoExecute", "key": "node.kubernetes.io/not-ready", "operator": "Exists", "tolerationSeconds": 300},
                            {"effect": "NoExecute", "key": "node.kubernetes.io/unreachable", "operator": "Exists", "tolerationSeconds": 300}],
            "volumes": [{"configMap": {"defaultMode": 420, "name": "app-config"}, "name": "config"},
                        {"name": "kube-api-access-x7k2p", "projected": {"defaultMode": 420, "sources": [
                            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                            {"configMap": {"items": [{"key": "ca.crt", "path": "ca.crt"}], "name": "kube-root-ca.crt"}},
                            {"downwardAPI": {"items": [{"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}, "path": "namespace"}]}}]}}]},
        "status": {
            "conditions": [
                {"lastProbeTime": null, "lastTransitionTime": started, "status": "True", "type": "PodReadyToStartContainers"},
                {"lastProbeTime": null, "lastTransitionTime": started, "status": "True", "type": "Initialized"},
                {"lastProbeTime": null, "lastTransitionTime": started, "status": "True", "type": "Ready"},
                {"lastProbeTime": null, "lastTransitionTime": started, "status": "True", "type": "ContainersReady"},
                {"lastProbeTime": null, "lastTransitionTime": started, "status": "True", "type": "PodScheduled"}],
            "containerStatuses": [{"containerID": "containerd://4f1d2c3b4a5968778695a4b3c2d1e0f9e8d7c6b5a4938271605f4e3d2c1b0a99",
                "image": format!("registry.example.com/{app}:1.42.7"),
                "imageID": "registry.example.com/app@sha256:9b2a1c0d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b",
                "lastState": {}, "name": app, "ready": true, "restartCount": 0, "started": true,
                "state": {"running": {"startedAt": started}}}],
            "hostIP": "10.0.17.4", "hostIPs": [{"ip": "10.0.17.4"}], "phase": "Running",
            "podIP": ip, "podIPs": [{"ip": ip}], "qosClass": "Burstable", "startTime": started}})
}

/// The ReplicaSet of namespace `i`'s workload, owned by its Deployment.
pub fn replicaset(i: usize) -> Value {
    let app = APPS[i % APPS.len()];
    let hash = format!("{:x}", 0x5d4f_8b00_u64 + i as u64);
    json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": format!("{app}-{hash}"), "namespace": namespace_name(i), "uid": format!("rs-{i}"),
            "resourceVersion": "1", "labels": {"app": app, "pod-template-hash": hash},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": app,
                "uid": format!("deploy-{i}"), "controller": true, "blockOwnerDeletion": true}]},
        "spec": {"replicas": PODS_PER_WORKLOAD, "selector": {"matchLabels": {"app": app, "pod-template-hash": hash}}},
        "status": {"replicas": PODS_PER_WORKLOAD}})
}

/// `v` as `kubectl get -o json` writes it: with the `managedFields` the
/// API server keeps (the bulk of many exported objects' metadata).
pub fn exported(mut v: Value) -> Value {
    v["metadata"]["managedFields"] = json!([{
        "apiVersion": v["apiVersion"].clone(), "fieldsType": "FieldsV1",
        "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}}, "f:spec": {".": {}}},
        "manager": "kubectl-client-side-apply", "operation": "Update", "time": "2026-11-02T10:00:00Z"}]);
    v
}
