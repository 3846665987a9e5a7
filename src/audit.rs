//! `palisade audit`: what in a running cluster palisade would not admit
//! today, and what its mutating webhook has not done to running pods.
//!
//! The findings come from the same functions the webhooks call: namespace
//! standing from `posture`, allow-all from a NetworkPolicy CREATE decided by
//! `validate`, role labels from `roles::derive`, sidecars from the mutating
//! webhook's injection plan (`sidecar::plan`).
//! Pods are named by the workload a user wrote ([`crate::reach::owners`]),
//! so a fix says which Deployment to restart rather than which hash.
//! The live part (`kube` lists) only gathers the objects.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Pod, PodSpec};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

use crate::admit::{self, Webhook};
use crate::check;
use crate::cluster::ClusterView;
use crate::cluster::static_dir::{DEFAULT_NAMESPACE, StaticCluster};
use crate::cluster_policy::ClusterKind;
use crate::config::Config;
use crate::decide::{ClusterObject, Gvk, Object, RuleId, User};
use crate::generate::plan::{Age, Plan, plan};
use crate::netpol::{self, Policy};
use crate::posture;
use crate::reach::{Intermediate, Owners, PodSummary, WorkloadId};
use crate::roles::{self, LabelPlan, PodFacts};
use crate::sidecar;

/// The objects an audit looks at.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    /// Every namespace.
    pub namespaces: Vec<Namespace>,
    /// Every NetworkPolicy.
    pub policies: Vec<NetworkPolicy>,
    /// Every pod.
    pub pods: Vec<Pod>,
    /// Every ReplicaSet's metadata (whose controller names its pods'
    /// workload).
    pub replica_sets: Vec<ObjectMeta>,
    /// Every Job's metadata.
    pub jobs: Vec<ObjectMeta>,
    /// What could not be read and what that changes (e.g. ReplicaSets
    /// forbidden: pods are named by their ReplicaSet).
    pub notes: Vec<String>,
    /// Every cluster-wide policy (AdminNetworkPolicy, ...) of the kinds
    /// the cluster serves.
    pub cluster_policies: Vec<ClusterObject>,
}

impl Inventory {
    /// The reachability model's builder over the same objects, for
    /// `simulate --cluster`.
    pub fn model_builder(&self) -> Result<crate::reach::ModelBuilder, crate::reach::ObjectError> {
        let mut b = crate::reach::ModelBuilder::new();
        for ns in &self.namespaces {
            b.namespace(ns);
        }
        for np in &self.policies {
            b.network_policy(np)?;
        }
        for c in &self.cluster_policies {
            b.cluster_policy(c.read()?);
        }
        for pod in &self.pods {
            b.pod(pod);
        }
        for (kind, meta) in self.owner_metadata() {
            b.owner(kind, meta);
        }
        Ok(b)
    }

    /// The owner table of the ReplicaSets and Jobs listed.
    pub fn owners(&self) -> Owners {
        let mut o = Owners::new();
        for (kind, meta) in self.owner_metadata() {
            o.put(kind, meta, DEFAULT_NAMESPACE);
        }
        o
    }

    fn owner_metadata(&self) -> impl Iterator<Item = (Intermediate, &ObjectMeta)> {
        let rs = self
            .replica_sets
            .iter()
            .map(|m| (Intermediate::ReplicaSet, m));
        rs.chain(self.jobs.iter().map(|m| (Intermediate::Job, m)))
    }

    /// The namespaces, NetworkPolicies and cluster-wide policies as a
    /// cluster view (what `check --cluster` decides against), and each
    /// NetworkPolicy read. A policy that cannot be read is logged and left
    /// out: the API server validated it, so that is a palisade bug, not
    /// the user's.
    pub fn static_cluster(&self) -> (StaticCluster, Vec<(&NetworkPolicy, Policy)>) {
        let mut cluster = StaticCluster::new();
        for ns in &self.namespaces {
            cluster.insert_namespace(ns);
        }
        for obj in &self.cluster_policies {
            match obj.read() {
                Ok(p) => cluster.insert_cluster_policy(p),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read a cluster-wide policy; it is left out")
                }
            }
        }
        let mut policies = Vec::new();
        for np in &self.policies {
            let ns = np
                .metadata
                .namespace
                .as_deref()
                .unwrap_or(DEFAULT_NAMESPACE);
            match Policy::from_k8s(np, ns) {
                Ok(p) => {
                    cluster.insert_policy(&p);
                    policies.push((np, p));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read a NetworkPolicy; it is left out")
                }
            }
        }
        (cluster, policies)
    }
}

/// What kind of problem a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    /// A namespace without default-deny for a required direction.
    MissingDefaultDeny,
    /// An allow-all NetworkPolicy outside a dev namespace, or an admin-tier
    /// cluster-wide policy that allows everything for non-dev namespaces.
    AllowAllOutsideDev,
    /// A pod without the role label a rule gives it.
    MissingRoleLabel,
    /// A pod whose role label no rule derives for it.
    UnderivedRoleLabel,
    /// A pod without the sidecar it should have.
    MissingSidecar,
}

impl FindingKind {
    /// The palisade rule behind the finding.
    pub fn rule(self) -> RuleId {
        match self {
            FindingKind::MissingDefaultDeny => RuleId::RequireDefaultDeny,
            FindingKind::AllowAllOutsideDev => RuleId::NoAllowAll,
            FindingKind::MissingRoleLabel | FindingKind::UnderivedRoleLabel => {
                RuleId::OwnedRoleLabel
            }
            FindingKind::MissingSidecar => RuleId::SidecarConflict,
        }
    }

    /// How serious it is, in PolicyReport terms.
    pub fn severity(self) -> &'static str {
        match self {
            FindingKind::MissingDefaultDeny | FindingKind::AllowAllOutsideDev => "high",
            FindingKind::UnderivedRoleLabel => "high",
            FindingKind::MissingRoleLabel | FindingKind::MissingSidecar => "medium",
        }
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What kind.
    pub kind: FindingKind,
    /// The namespace.
    pub namespace: String,
    /// `v1`, `networking.k8s.io/v1`.
    pub api_version: String,
    /// `Namespace`, `NetworkPolicy`, `Pod`.
    pub object_kind: String,
    /// The object's name.
    pub name: String,
    /// What is wrong and how to fix it.
    pub message: String,
    /// For a pod, the workload it belongs to (`shop/web[Deployment]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
}

/// The audit's result.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct AuditReport {
    /// Findings, by namespace then kind then name.
    pub findings: Vec<Finding>,
    /// Namespaces, policies and pods looked at.
    pub scanned: Scanned,
}

/// What was looked at.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Scanned {
    /// Namespaces (exempt ones included).
    pub namespaces: usize,
    /// NetworkPolicies.
    pub policies: usize,
    /// Pods.
    pub pods: usize,
}

impl AuditReport {
    /// Exit code: 1 when anything was found.
    pub fn exit_code(&self) -> u8 {
        u8::from(!self.findings.is_empty())
    }
}

/// Audits an inventory.
pub fn audit(cfg: &Config, inv: &Inventory) -> AuditReport {
    let (cluster, policies) = inv.static_cluster();
    let mut findings = Vec::new();
    for ns in &inv.namespaces {
        let name = ns.metadata.name.clone().unwrap_or_default();
        if cfg.is_exempt(&name) {
            continue;
        }
        let view = cluster.namespace(&name);
        let dd =
            posture::DefaultDeny::of(cfg, &view.policies, &view.cluster_policies, view.labels());
        let missing = dd.missing(cfg.require_default_deny);
        if !missing.is_empty() {
            let notes: String = dd
                .notes(cfg.require_default_deny, &view.cluster_policies)
                .iter()
                .map(|n| format!("{n}\n"))
                .collect();
            findings.push(Finding {
                kind: FindingKind::MissingDefaultDeny,
                namespace: name.clone(),
                api_version: "v1".into(),
                object_kind: "Namespace".into(),
                name: name.clone(),
                message: format!(
                    "namespace {name} has no default-deny NetworkPolicy for {missing}; new workloads there are denied.\n{notes}Fix: apply\n\n{}",
                    netpol::default_deny_manifest(&name, missing)
                ),
                workload: None,
            });
        }
    }
    let auditor = User {
        username: "palisade-audit".into(),
        groups: Vec::new(),
    };
    for (np, p) in &policies {
        if cfg.is_exempt(&p.namespace) {
            continue;
        }
        let req = check::create_request(
            &Gvk::new("networking.k8s.io", "v1", "NetworkPolicy"),
            Some(&p.namespace),
            &p.name,
            &auditor,
            Object::NetworkPolicy(Box::new((*np).clone())),
            format!("audit-{}", p.id()),
        );
        let v = admit::decide_with(
            cfg,
            Webhook::Validate,
            &req,
            &cluster.namespace(&p.namespace),
        );
        for violation in v.violations.iter().filter(|x| x.rule == RuleId::NoAllowAll) {
            findings.push(Finding {
                kind: FindingKind::AllowAllOutsideDev,
                namespace: p.namespace.clone(),
                api_version: "networking.k8s.io/v1".into(),
                object_kind: "NetworkPolicy".into(),
                name: p.name.clone(),
                message: violation.message.clone(),
                workload: None,
            });
        }
    }
    for obj in &inv.cluster_policies {
        let name = obj.metadata.name.clone().unwrap_or_default();
        let req = check::create_request(
            &Gvk::new(
                crate::cluster_policy::GROUP,
                &obj.version,
                obj.kind.as_str(),
            ),
            None,
            &name,
            &auditor,
            Object::ClusterPolicy(Box::new(obj.clone())),
            format!("audit-{}-{name}", obj.kind),
        );
        let v = admit::decide_in(cfg, Webhook::Validate, &req, &cluster);
        for violation in v.violations.iter().filter(|x| x.rule == RuleId::NoAllowAll) {
            findings.push(Finding {
                kind: FindingKind::AllowAllOutsideDev,
                namespace: String::new(),
                api_version: format!("{}/{}", crate::cluster_policy::GROUP, obj.version),
                object_kind: obj.kind.as_str().into(),
                name: name.clone(),
                message: violation.message.clone(),
                workload: None,
            });
        }
    }
    let owners = inv.owners();
    for pod in &inv.pods {
        findings.extend(audit_pod(cfg, &cluster, &owners, pod));
    }
    findings.sort_by(|a, b| (&a.namespace, a.kind, &a.name).cmp(&(&b.namespace, b.kind, &b.name)));
    AuditReport {
        findings,
        scanned: Scanned {
            namespaces: inv.namespaces.len(),
            policies: inv.policies.len(),
            pods: inv.pods.len(),
        },
    }
}

fn audit_pod(cfg: &Config, cluster: &StaticCluster, owners: &Owners, pod: &Pod) -> Vec<Finding> {
    let ns = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
    let name = pod.metadata.name.clone().unwrap_or_default();
    if cfg.is_exempt(&ns) {
        return Vec::new();
    }
    let direct = PodSummary::from_pod(pod, DEFAULT_NAMESPACE);
    let workload = direct.shown_as(owners);
    let of = if &*workload.kind == "Pod" {
        String::new()
    } else {
        format!(" (of {workload})")
    };
    let recreate = recreate(&workload, &name);
    let finding = |kind, message: String| Finding {
        kind,
        namespace: ns.clone(),
        api_version: "v1".into(),
        object_kind: "Pod".into(),
        name: name.clone(),
        message,
        workload: Some(workload.to_string()),
    };
    let mut out = Vec::new();
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    let empty = PodSpec::default();
    let spec = pod.spec.as_ref().unwrap_or(&empty);
    let key = &cfg.roles.label;
    let facts = PodFacts {
        namespace: &ns,
        labels: &labels,
        spec,
        injecting: None,
    };
    // The mutating webhook's own label plan, read as a finding: what it
    // would set or remove is what the pod lacks or wrongly carries.
    let underived = |have: &str, should: String, fix: String| {
        finding(
            FindingKind::UnderivedRoleLabel,
            format!(
                "pod {ns}/{name}{of} carries {key}={have}, which no rule derives for it; it should have {should}. It may be reached by traffic meant for that role.\nFix: {fix} (palisade admits exactly that change), or {recreate}."
            ),
        )
    };
    match roles::plan_label(cfg, &facts, labels.get(key).map(String::as_str)) {
        LabelPlan::Keep => {}
        LabelPlan::Set {
            role,
            rule,
            replacing: None,
        } => out.push(finding(
            FindingKind::MissingRoleLabel,
            format!(
                "pod {ns}/{name}{of} has no {key} label; roles.rules[{rule}] gives it {key}={role}. Policies that select the role do not apply to it.\nFix: {recreate}, so the mutating webhook labels it."
            ),
        )),
        LabelPlan::Set {
            role,
            rule,
            replacing: Some(have),
        } => out.push(underived(
            &have,
            format!("{key}={role} (roles.rules[{rule}])"),
            format!("kubectl -n {ns} label pod {name} {key}={role} --overwrite"),
        )),
        LabelPlan::Remove { value } => out.push(underived(
            &value,
            format!("no {key} label (no rule matches)"),
            format!("kubectl -n {ns} label pod {name} {key}-"),
        )),
    }
    // The mutating webhook's own plan: would it inject into this pod today?
    let ns_labels = cluster
        .namespace(&ns)
        .namespace
        .map(|n| n.labels)
        .unwrap_or_default();
    let switch = sidecar::switch(
        &cfg.proxy.label,
        &ns_labels,
        pod.metadata.annotations.as_ref(),
    );
    if let sidecar::InjectionPlan::Inject(_) = sidecar::plan(&cfg.proxy, &switch, pod) {
        out.push(finding(
            FindingKind::MissingSidecar,
            format!(
                "pod {ns}/{name}{of} should carry the {} sidecar (proxying is enabled for it) but does not.\nFix: {recreate}, so the mutating webhook injects it; check that the webhook was up and not in dry-run when it was created.",
                cfg.proxy.template.proxy_name()
            ),
        ));
    }
    out
}

/// How to have a pod made again through the workload it belongs to, so
/// that it passes the mutating webhook.
fn recreate(w: &WorkloadId, pod: &str) -> String {
    let ns = &w.namespace;
    match &*w.kind {
        "Deployment" | "StatefulSet" | "DaemonSet" => format!(
            "restart its workload: kubectl -n {ns} rollout restart {}/{}",
            w.kind.to_ascii_lowercase(),
            w.name
        ),
        "CronJob" => format!(
            "the pods of CronJob {ns}/{} get it from its next run",
            w.name
        ),
        "Pod" => {
            format!("recreate the pod (kubectl -n {ns} delete pod {pod}, then apply it again)")
        }
        _ => format!("delete the pod (kubectl -n {ns} delete pod {pod}); {w} makes it again"),
    }
}

/// The report as text, grouped by namespace.
pub fn render_text(r: &AuditReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "palisade audit: {} findings in {} namespaces, {} NetworkPolicies, {} pods",
        r.findings.len(),
        r.scanned.namespaces,
        r.scanned.policies,
        r.scanned.pods
    );
    let mut by_ns: BTreeMap<&str, Vec<&Finding>> = BTreeMap::new();
    for f in &r.findings {
        by_ns.entry(&f.namespace).or_default().push(f);
    }
    for (ns, fs) in by_ns {
        if ns.is_empty() {
            let _ = writeln!(out, "\n(cluster-scoped)");
        } else {
            let _ = writeln!(out, "\nnamespace {ns}");
        }
        for f in fs {
            let _ = writeln!(
                out,
                "  [{}] {} {}",
                serde_kind(f.kind),
                f.object_kind,
                f.name
            );
            for line in f.message.lines() {
                let _ = writeln!(out, "      {line}");
            }
        }
    }
    out
}

fn serde_kind(k: FindingKind) -> String {
    serde_json::to_value(k)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The report as `wgpolicyk8s.io/v1alpha2` PolicyReports, one per
/// namespace with findings, and a ClusterPolicyReport for findings on
/// cluster-scoped objects (cluster-wide policies), as multi-document YAML.
pub fn render_policy_reports(r: &AuditReport, now_unix: i64) -> String {
    let mut by_ns: BTreeMap<&str, Vec<&Finding>> = BTreeMap::new();
    for f in &r.findings {
        by_ns.entry(&f.namespace).or_default().push(f);
    }
    let mut docs = Vec::new();
    for (ns, fs) in by_ns {
        let results: Vec<serde_json::Value> = fs
            .iter()
            .map(|f| {
                serde_json::json!({
                    "source": "palisade",
                    "policy": "palisade",
                    "rule": f.kind.rule().as_str(),
                    "category": serde_kind(f.kind),
                    "result": "fail",
                    "severity": f.kind.severity(),
                    "scored": true,
                    "message": f.message,
                    "resources": [{"apiVersion": f.api_version, "kind": f.object_kind, "name": f.name, "namespace": f.namespace}],
                    "timestamp": {"seconds": now_unix, "nanos": 0},
                })
            })
            .collect();
        let metadata = if ns.is_empty() {
            serde_json::json!({"name": "palisade", "labels": {"app.kubernetes.io/managed-by": "palisade"}})
        } else {
            serde_json::json!({"name": "palisade", "namespace": ns, "labels": {"app.kubernetes.io/managed-by": "palisade"}})
        };
        docs.push(serde_json::json!({
            "apiVersion": "wgpolicyk8s.io/v1alpha2",
            "kind": if ns.is_empty() { "ClusterPolicyReport" } else { "PolicyReport" },
            "metadata": metadata,
            "summary": {"pass": 0, "fail": results.len(), "warn": 0, "error": 0, "skip": 0},
            "results": results,
        }));
    }
    docs.iter()
        .map(|d| serde_saphyr::to_string(d).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("---\n")
}

/// The NetworkPolicies generation would create in the audited namespaces,
/// were it on for existing namespaces too (`generate.enabled` and
/// `generate.existing`), whatever their mode: what staging reviews before
/// turning generation on. From [`plan`], as the leader
/// plans them.
pub fn fixes(cfg: &Config, inv: &Inventory) -> Vec<NetworkPolicy> {
    let mut staged = cfg.clone();
    staged.generate.enabled = true;
    staged.generate.existing = true;
    let (cluster, _) = inv.static_cluster();
    let mut names: Vec<String> = inv
        .namespaces
        .iter()
        .filter_map(|ns| ns.metadata.name.clone())
        .collect();
    names.sort();
    names
        .iter()
        .filter_map(
            |n| match plan(&staged, &cluster.namespace(n), Age::Existing) {
                Plan::Generate(g) => Some(g.policies),
                Plan::Skip(_) => None,
            },
        )
        .flatten()
        .collect()
}

/// `fixes` as one YAML stream, ready for `kubectl apply -f -`; empty when
/// there is nothing to create.
pub fn render_fixes(fixes: &[NetworkPolicy]) -> String {
    fixes
        .iter()
        .map(|p| serde_saphyr::to_string(p).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("---\n")
}

/// Lists namespaces, NetworkPolicies, pods and the cluster-wide policies of
/// the kinds the cluster serves from the live cluster, and ReplicaSets and
/// Jobs as metadata only (read-only: discovery and `list` calls).
/// ReplicaSets or Jobs that RBAC does not let it list are a note, not an
/// error: their pods are then named by their ReplicaSet or Job.
pub async fn inventory(client: kube::Client) -> Result<Inventory, kube::Error> {
    use kube::api::{Api, ListParams};
    let mut inv = policy_state(client.clone()).await?;
    inv.pods = Api::<Pod>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items;
    inv.replica_sets = owner_metadata::<ReplicaSet>(&client, &mut inv.notes).await?;
    inv.jobs = owner_metadata::<Job>(&client, &mut inv.notes).await?;
    Ok(inv)
}

/// Lists namespaces, NetworkPolicies and the cluster-wide policies of the
/// kinds the cluster serves: the state decisions need (`check --cluster`).
pub async fn policy_state(client: kube::Client) -> Result<Inventory, kube::Error> {
    use kube::api::{Api, ListParams};
    let lp = ListParams::default();
    let served = crate::cluster::cluster_policies::served(&client).await?;
    Ok(Inventory {
        namespaces: Api::<Namespace>::all(client.clone()).list(&lp).await?.items,
        policies: Api::<NetworkPolicy>::all(client.clone())
            .list(&lp)
            .await?
            .items,
        cluster_policies: crate::cluster::cluster_policies::list(&client, &served).await?,
        ..Inventory::default()
    })
}

/// The metadata of every object of kind `K` (a ReplicaSet or Job): their
/// owner references are all that is read.
async fn owner_metadata<K>(
    client: &kube::Client,
    notes: &mut Vec<String>,
) -> Result<Vec<ObjectMeta>, kube::Error>
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    use kube::api::{Api, ListParams};
    match Api::<K>::all(client.clone())
        .list_metadata(&ListParams::default())
        .await
    {
        Ok(list) => Ok(list.items.into_iter().map(|o| o.metadata).collect()),
        // Refused by RBAC, or not served: a note, as these only name
        // workloads better.
        Err(kube::Error::Api(status)) if status.is_forbidden() || status.is_not_found() => {
            let kind = K::kind(&());
            notes.push(format!(
                "cannot list {plural} ({reason}): pods are named by their {kind}, not by the workload that made it; \
                 grant get/list on {group}/{plural} (deploy/reader)",
                plural = K::plural(&()),
                group = K::group(&()),
                reason = status.message,
            ));
            Ok(Vec::new())
        }
        Err(e) => Err(e),
    }
}

/// An inventory from manifests (`--state DIR`): the same objects a live
/// list would return.
pub fn inventory_from_manifests(m: &crate::manifest::Manifests) -> Result<Inventory, String> {
    let mut inv = Inventory::default();
    for d in &m.documents {
        inv.add(d)?;
    }
    Ok(inv)
}

impl Inventory {
    /// The kinds an audit reads: Namespaces, NetworkPolicies, the
    /// cluster-wide policies and Pods, and ReplicaSets and Jobs for the
    /// owners of pods.
    pub fn keeps(gvk: &Gvk) -> bool {
        matches!(
            (gvk.group.as_str(), gvk.kind.as_str()),
            ("", "Namespace" | "Pod")
                | ("networking.k8s.io", "NetworkPolicy")
                | ("apps", "ReplicaSet")
                | ("batch", "Job")
        ) || ClusterKind::from_group_kind(&gvk.group, &gvk.kind).is_some()
    }

    /// Adds one manifest; kinds an audit does not read are ignored.
    pub fn add(&mut self, d: &crate::manifest::Document) -> Result<(), String> {
        let parse_err = |e: serde_json::Error| d.bad_object(e).to_string();
        match (d.gvk.group.as_str(), d.gvk.kind.as_str()) {
            ("", "Namespace") => self
                .namespaces
                .push(serde_json::from_value(d.value.clone()).map_err(parse_err)?),
            ("networking.k8s.io", "NetworkPolicy") => self
                .policies
                .push(serde_json::from_value(d.value.clone()).map_err(parse_err)?),
            ("", "Pod") => self
                .pods
                .push(serde_json::from_value(d.value.clone()).map_err(parse_err)?),
            ("apps", "ReplicaSet") => self
                .replica_sets
                .push(serde_json::from_value(d.value["metadata"].clone()).map_err(parse_err)?),
            ("batch", "Job") => self
                .jobs
                .push(serde_json::from_value(d.value["metadata"].clone()).map_err(parse_err)?),
            (g, k) => {
                if let Some(kind) = ClusterKind::from_group_kind(g, k) {
                    self.cluster_policies.push(ClusterObject {
                        kind,
                        version: d.gvk.version.clone(),
                        metadata: serde_json::from_value(d.value["metadata"].clone())
                            .map_err(parse_err)?,
                        value: d.value.clone(),
                    });
                }
            }
        }
        Ok(())
    }
}
