//! `palisade check`: the webhook's decisions over manifest files, for CI.
//!
//! Every object is decided as an admission CREATE by the same functions
//! `serve` calls ([`admit::decide_with`]), against a cluster made of
//! `--state` plus the Namespaces and NetworkPolicies of the files
//! themselves, as they would be after `kubectl apply` (and, with generation
//! on, with what palisade would generate in the namespaces they create).
//! Workloads also show what their pods would get from the mutating webhook.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::Pod;
use serde::Serialize;
use thiserror::Error;

use crate::admit::{self, Webhook};
use crate::cluster::ClusterView;
use crate::cluster::static_dir::{StateError, StaticCluster};
use crate::config::Config;
use crate::decide::{Decision, Gvk, Object, Operation, Request, RuleId, User, Verdict};
use crate::generate::plan::{Age, Plan, plan};
use crate::manifest::skipped::{self, NotManifests};
use crate::manifest::{self, Document, Entry, FieldLines, Skipped};
use crate::mode::Mode;
use crate::netpol::Policy;

/// Why `check` could not run (exit code 2).
#[derive(Debug, Error)]
pub enum CheckError {
    /// A path could not be read.
    #[error(transparent)]
    Read(#[from] manifest::ReadError),
    /// `--strict`, and some files or documents are not manifests.
    #[error(transparent)]
    NotManifests(#[from] NotManifests),
    /// A document does not parse as its kind.
    #[error(transparent)]
    Document(#[from] manifest::DocumentError),
    /// The state or a policy in the set is invalid.
    #[error(transparent)]
    State(#[from] StateError),
    /// Both the live cluster and a state directory were given.
    #[error("the cluster before the files is either the live cluster or --state DIR, not both")]
    TwoStates,
}

/// One violated rule, as reported.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReportedViolation {
    /// The rule's name.
    pub rule: RuleId,
    /// What, where, why and how to fix it.
    pub message: String,
    /// The 1-based line of the field it is about (the labels, the rule of
    /// a policy), where the reader knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
}

/// What the mutating webhook would do to the object's pods.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Mutation {
    /// In words.
    pub changes: Vec<String>,
    /// The JSON Patch (for a workload: against a pod of its template).
    pub patch: Vec<json_patch::PatchOperation>,
    /// Sent to the API server (false in dry-run mode).
    pub applied: bool,
}

/// Where an object was read.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Origin {
    /// `file#document`.
    pub source: String,
    /// The file.
    pub file: String,
    /// The 1-based line where the object starts.
    pub line: usize,
    /// The lines of its fields, where the reader knows them.
    #[serde(skip)]
    pub fields: FieldLines,
}

impl Origin {
    /// Where `d` was read.
    pub fn of(d: &Document) -> Self {
        Origin {
            source: d.origin(),
            file: d.source.display().to_string(),
            line: d.line,
            fields: d.field_lines.clone(),
        }
    }

    /// The line a finding's `message` under `rule` is about: the field it
    /// names (the labels for the label rules, `spec.ingress[N]` or
    /// `spec.egress[N]` when the message names one) where known.
    pub fn field_line(&self, rule: Option<RuleId>, message: &str) -> Option<usize> {
        match rule {
            Some(
                RuleId::TrustedLabels
                | RuleId::ValidModeLabel
                | RuleId::AllowAllStaysDev
                | RuleId::OwnedRoleLabel,
            ) => self.fields.get("metadata.labels"),
            _ => self.fields.rule_named_in(message),
        }
    }
}

/// The decision for one object.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ObjectResult {
    /// Where it was read.
    #[serde(flatten)]
    pub origin: Origin,
    /// The namespace (a Namespace's own name; empty for other cluster-scoped kinds).
    pub namespace: String,
    /// The kind.
    pub kind: String,
    /// The name.
    pub name: String,
    /// The governing mode.
    pub mode: Mode,
    /// Would the API server admit it?
    pub allowed: bool,
    /// allow, deny, would-deny, skip.
    pub decision: Decision,
    /// Rules broken.
    pub violations: Vec<ReportedViolation>,
    /// Warnings the client would see.
    pub warnings: Vec<String>,
    /// What the mutating webhook would change, if anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mutation: Option<Mutation>,
}

/// The whole report.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    /// Counts.
    pub summary: Summary,
    /// One entry per object, in file order.
    pub results: Vec<ObjectResult>,
    /// Files and documents that were not manifests (each also noted on
    /// stderr).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<SkippedEntry>,
}

/// A file or document that was not read, in the JSON report.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SkippedEntry {
    /// The file.
    pub file: String,
    /// The 1-based line, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// The document index, when the problem is in one document.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document: Option<usize>,
    /// Why.
    pub reason: String,
}

impl From<&Skipped> for SkippedEntry {
    fn from(s: &Skipped) -> Self {
        SkippedEntry {
            file: s.source.display().to_string(),
            line: s.line,
            document: s.index,
            reason: s.reason.clone(),
        }
    }
}

/// Counts over the report.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    /// Objects read.
    pub objects: usize,
    /// Denied (enforce).
    pub denied: usize,
    /// Allowed only because of warn or dry-run mode.
    pub would_deny: usize,
    /// Allowed with warnings.
    pub warned: usize,
    /// With a mutation.
    pub mutated: usize,
    /// Kinds or operations palisade has no rule for.
    pub not_decided: usize,
}

impl Report {
    /// Exit code: 1 when something would be denied, else 0.
    pub fn exit_code(&self) -> u8 {
        u8::from(self.summary.denied > 0)
    }
}

/// Options of `check`.
#[derive(Debug, Clone)]
pub struct Options {
    /// Files and directories to check.
    pub paths: Vec<PathBuf>,
    /// The cluster before the files are applied.
    pub state: Option<PathBuf>,
    /// Namespace for namespaced objects that name none.
    pub namespace: String,
    /// Who the requests come from (trusted groups matter for namespace labels).
    pub user: User,
    /// A file or document that is not a manifest is an error, not a note.
    pub strict: bool,
}

/// Reads the files, builds the cluster, decides every object. Each file
/// or document that is not a manifest is handed to `note` as it is met
/// (the CLI prints it on stderr) and skipped; with `--strict` they make
/// the run fail once all are noted.
pub fn run(
    cfg: &Config,
    opts: &Options,
    note: &mut dyn FnMut(&Skipped),
) -> Result<Report, CheckError> {
    run_seeded(cfg, opts, None, note)
}

/// [`run`], against `seed` as the cluster before the files (the live
/// cluster's namespaces and policies, for `check --cluster`) instead of
/// `opts.state`; `opts.state` must then be unset.
pub fn run_seeded(
    cfg: &Config,
    opts: &Options,
    seed: Option<StaticCluster>,
    note: &mut dyn FnMut(&Skipped),
) -> Result<Report, CheckError> {
    let mut skipped = Vec::new();
    let cluster = match (seed, &opts.state) {
        (Some(_), Some(_)) => return Err(CheckError::TwoStates),
        (Some(c), None) => c,
        (None, Some(dir)) => {
            let mut c = StaticCluster::new();
            c.stream(&[dir], &mut |s| {
                note(&s);
                skipped.push(s);
            })?;
            c
        }
        (None, None) => StaticCluster::new(),
    };
    let mut docs = Vec::new();
    manifest::stream_paths(&opts.paths, &manifest::all_kinds, &mut |e| {
        match e {
            Entry::Document(d) => docs.push(d),
            Entry::Skipped(s) => {
                note(&s);
                skipped.push(s);
            }
        }
        Ok::<(), CheckError>(())
    })?;
    let entries: Vec<SkippedEntry> = skipped.iter().map(SkippedEntry::from).collect();
    skipped::verdict(skipped, opts.strict)?;
    let mut report = check_documents(cfg, cluster, docs, &opts.namespace, &opts.user)?;
    report.skipped = entries;
    Ok(report)
}

/// Applies `docs` to `cluster` (namespaced objects without a namespace go
/// to `namespace`), then decides each of them.
pub fn check_documents(
    cfg: &Config,
    mut cluster: StaticCluster,
    docs: Vec<Document>,
    namespace: &str,
    user: &User,
) -> Result<Report, CheckError> {
    let docs: Vec<Document> = docs
        .into_iter()
        .map(|d| with_namespace(d, namespace))
        .collect();
    let existed: BTreeSet<String> = cluster.namespace_names().into_iter().collect();
    for d in &docs {
        cluster.apply(d)?;
    }
    generate_into(cfg, &mut cluster, &existed);
    let results = docs
        .iter()
        .map(|d| decide_document(cfg, &cluster, d, user))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(report(results))
}

/// What generation would create once the files are applied, applied too:
/// a namespace the files create is new, one of the state before them
/// existing. Only what would be written (`enforce` mode) goes in.
fn generate_into(cfg: &Config, cluster: &mut StaticCluster, existed: &BTreeSet<String>) {
    if !cfg.generate.enabled {
        return;
    }
    for ns in cluster.namespace_names() {
        let age = if existed.contains(&ns) {
            Age::Existing
        } else {
            Age::New
        };
        let Plan::Generate(g) = plan(cfg, &cluster.namespace(&ns), age) else {
            continue;
        };
        if !g.writes() {
            continue;
        }
        for p in &g.policies {
            // Built by palisade from a config it validated: readable.
            if let Ok(p) = Policy::from_k8s(p, &ns) {
                cluster.insert_policy(&p);
            }
        }
    }
}

/// Puts namespaced objects without a namespace into `ns`, as
/// `kubectl apply -n ns` would.
fn with_namespace(mut d: Document, ns: &str) -> Document {
    let cluster_scoped = is_cluster_scoped(&d.gvk);
    if !cluster_scoped
        && d.namespace().is_none()
        && let Some(meta) = d.value.get_mut("metadata").and_then(|m| m.as_object_mut())
    {
        meta.insert("namespace".into(), serde_json::Value::String(ns.to_owned()));
    }
    d
}

/// Kinds that live outside namespaces (the common ones; anything else is
/// treated as namespaced, as most custom resources are).
fn is_cluster_scoped(gvk: &Gvk) -> bool {
    matches!(
        gvk.kind.as_str(),
        "Namespace"
            | "AdminNetworkPolicy"
            | "BaselineAdminNetworkPolicy"
            | "ClusterNetworkPolicy"
            | "Node"
            | "PersistentVolume"
            | "StorageClass"
            | "CustomResourceDefinition"
            | "ClusterRole"
            | "ClusterRoleBinding"
            | "PriorityClass"
            | "IngressClass"
            | "RuntimeClass"
            | "ValidatingWebhookConfiguration"
            | "MutatingWebhookConfiguration"
            | "ValidatingAdmissionPolicy"
            | "ValidatingAdmissionPolicyBinding"
            | "APIService"
            | "CSIDriver"
            | "VolumeAttachment"
    )
}

/// Decides one manifest as an admission CREATE.
pub fn decide_document(
    cfg: &Config,
    cluster: &dyn ClusterView,
    d: &Document,
    user: &User,
) -> Result<ObjectResult, CheckError> {
    let object = Object::from_value(&d.gvk, d.value.clone()).map_err(|e| d.bad_object(e))?;
    let req = create_request(
        &d.gvk,
        d.namespace(),
        d.name(),
        user,
        object,
        format!("check-{}", d.origin()),
    );
    let mut r = decide_request(cfg, cluster, &req, Origin::of(d));
    for v in &mut r.violations {
        v.line = r.origin.field_line(Some(v.rule), &v.message);
    }
    Ok(r)
}

/// The CREATE request `kubectl apply` would send for `object`.
pub fn create_request(
    gvk: &Gvk,
    namespace: Option<&str>,
    name: &str,
    user: &User,
    object: Object,
    uid: String,
) -> Request {
    let is_namespace = gvk.group.is_empty() && gvk.kind == "Namespace";
    Request {
        uid,
        kind: gvk.clone(),
        sub_resource: None,
        operation: Operation::Create,
        namespace: if is_namespace {
            Some(name.to_owned())
        } else {
            namespace.map(str::to_owned)
        },
        name: (!name.is_empty()).then(|| name.to_owned()),
        user: user.clone(),
        dry_run: false,
        object: Some(object),
        old_object: None,
    }
}

/// Decides one request with both webhooks, the way the API server would
/// call them: mutating first, validating on the mutated object.
pub fn decide_request(
    cfg: &Config,
    cluster: &dyn ClusterView,
    req: &Request,
    origin: Origin,
) -> ObjectResult {
    let ns = crate::decide::request_namespace(req).unwrap_or_default();
    let view = cluster.namespace(&ns);
    let mutation = mutation_of(cfg, req, &view);
    let mutated = match (&mutation, &req.object) {
        (Some(m), Some(Object::Pod(pod))) if m.applied => {
            patched_pod(pod, &m.patch).map(|p| Request {
                object: Some(Object::Pod(Box::new(p))),
                ..req.clone()
            })
        }
        _ => None,
    };
    let validated = if crate::decide::is_cluster_policy(req) {
        admit::decide_in(cfg, Webhook::Validate, req, cluster)
    } else {
        admit::decide_with(
            cfg,
            Webhook::Validate,
            mutated.as_ref().unwrap_or(req),
            &view,
        )
    };
    ObjectResult {
        origin,
        namespace: ns,
        kind: req.kind.kind.clone(),
        name: req.display_name(),
        mode: validated.mode,
        allowed: validated.allowed(),
        decision: validated.decision(),
        violations: validated
            .violations
            .iter()
            .map(|v| ReportedViolation {
                rule: v.rule,
                message: v.message.clone(),
                line: None,
            })
            .collect(),
        warnings: validated.client_warnings(),
        mutation,
    }
}

/// What the mutating webhook does to the object, or to a pod of a
/// workload's template.
fn mutation_of(
    cfg: &Config,
    req: &Request,
    view: &crate::cluster::NamespaceView,
) -> Option<Mutation> {
    let pod_req = match &req.object {
        Some(Object::Pod(_)) => req.clone(),
        Some(Object::Workload(w)) => {
            let pod = Pod {
                metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                    namespace: req.namespace.clone(),
                    generate_name: Some(format!("{}-", req.display_name())),
                    labels: w.template.metadata.as_ref().and_then(|m| m.labels.clone()),
                    annotations: w
                        .template
                        .metadata
                        .as_ref()
                        .and_then(|m| m.annotations.clone()),
                    ..Default::default()
                },
                spec: w.template.spec.clone(),
                status: None,
            };
            Request {
                kind: Gvk::new("", "v1", "Pod"),
                name: None,
                object: Some(Object::Pod(Box::new(pod))),
                ..req.clone()
            }
        }
        _ => return None,
    };
    let v: Verdict = admit::decide_with(cfg, Webhook::Mutate, &pod_req, view);
    if v.patch.is_empty() && v.changes.is_empty() && v.violations.is_empty() {
        return None;
    }
    let mut changes = v.changes.clone();
    changes.extend(
        v.violations
            .iter()
            .map(|x| format!("[{}] {}", x.rule, x.summary())),
    );
    Some(Mutation {
        changes,
        applied: !v.effective_patch().is_empty(),
        patch: v.patch,
    })
}

/// The pod after the mutating webhook's patch. `None` if the patch does
/// not apply, which the mutating tests rule out; validation then sees the
/// pod as written.
fn patched_pod(pod: &Pod, patch: &[json_patch::PatchOperation]) -> Option<Pod> {
    let mut doc = serde_json::to_value(pod).ok()?;
    json_patch::patch(&mut doc, patch).ok()?;
    serde_json::from_value(doc).ok()
}

fn report(results: Vec<ObjectResult>) -> Report {
    let mut s = Summary {
        objects: results.len(),
        ..Summary::default()
    };
    for r in &results {
        match r.decision {
            Decision::Deny => s.denied += 1,
            Decision::WouldDeny => s.would_deny += 1,
            Decision::Skip => s.not_decided += 1,
            _ => {}
        }
        if !r.warnings.is_empty() {
            s.warned += 1;
        }
        if r.mutation.as_ref().is_some_and(|m| !m.patch.is_empty()) {
            s.mutated += 1;
        }
    }
    Report {
        summary: s,
        results,
        skipped: Vec::new(),
    }
}

/// The report as text: grouped by namespace, namespaces with denials first,
/// and within each, denials first, each with its fix.
pub fn render_text(r: &Report) -> String {
    let mut out = String::new();
    let s = &r.summary;
    let _ = writeln!(
        out,
        "palisade check: {} objects, {} denied, {} would be denied in enforce mode, {} with warnings, {} mutated, {} of kinds palisade does not decide",
        s.objects, s.denied, s.would_deny, s.warned, s.mutated, s.not_decided
    );
    let mut groups: BTreeMap<&str, Vec<&ObjectResult>> = BTreeMap::new();
    for res in r
        .results
        .iter()
        .filter(|x| x.decision != Decision::Skip || x.mutation.is_some())
    {
        groups.entry(res.namespace.as_str()).or_default().push(res);
    }
    let rank = |x: &ObjectResult| match x.decision {
        Decision::Deny => 0,
        Decision::WouldDeny => 1,
        _ if !x.warnings.is_empty() => 2,
        _ if x.mutation.is_some() => 3,
        Decision::Skip => 5,
        _ => 4,
    };
    let mut ordered: Vec<(&str, Vec<&ObjectResult>)> = groups.into_iter().collect();
    ordered.sort_by_key(|(ns, items)| {
        (
            items.iter().map(|x| rank(x)).min().unwrap_or(5),
            ns.to_string(),
        )
    });
    for (ns, mut items) in ordered {
        items.sort_by_key(|x| rank(x));
        let _ = writeln!(out);
        let label = if ns.is_empty() {
            "(cluster-scoped)"
        } else {
            ns
        };
        let _ = writeln!(out, "namespace {label}");
        for x in items {
            let tag = match x.decision {
                Decision::Deny => "DENY ",
                Decision::WouldDeny if x.mode == Mode::Warn => "WARN ",
                Decision::WouldDeny => "DRY  ",
                Decision::Skip => "skip ",
                _ if !x.warnings.is_empty() => "WARN ",
                _ => "ok   ",
            };
            let _ = writeln!(
                out,
                "  {tag} {} {} ({}:{})",
                x.kind, x.name, x.origin.file, x.origin.line
            );
            for v in &x.violations {
                if let Some(l) = v.line.filter(|l| *l != x.origin.line) {
                    let _ = writeln!(out, "          at {}:{l}", x.origin.file);
                }
                for line in v.message.lines() {
                    let _ = writeln!(out, "          {line}");
                }
            }
            if x.violations.is_empty() {
                for w in &x.warnings {
                    let _ = writeln!(out, "          warning: {w}");
                }
            }
            if let Some(m) = &x.mutation {
                let how = if m.applied {
                    "injects"
                } else {
                    "would inject (dry-run)"
                };
                let _ = writeln!(
                    out,
                    "          mutating webhook {how}: {}",
                    m.changes.join("; ")
                );
            }
        }
    }
    out
}
