//! The validating rules: plain data in (config, request, one namespace's
//! view), a [`Verdict`] out. `serve`, `check` and `audit` all call
//! [`validate`]; none has a rule of its own.

use k8s_openapi::api::core::v1::{Pod, PodSpec};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::request::{Object, Operation, Request};
use super::verdict::{RuleId, Skip, Verdict};
use crate::cluster::NamespaceView;
use crate::config::{Config, GENERATE_LABEL, GENERATE_OPT_OUT, MODE_LABEL};
use crate::generate::plan::{Age, Plan, plan};
use crate::mode::Mode;
use crate::netpol::{self, Direction, Directions, Peers, Policy, PolicyFacts};
use crate::posture::{self, DefaultDeny, Posture};
use crate::roles::{self, PodFacts};
use crate::selector::Labels;

/// The namespace a request is about: a Namespace's own name, or the
/// namespace of a namespaced object. `None` for other cluster-scoped kinds.
pub fn request_namespace(req: &Request) -> Option<String> {
    if req.kind.group.is_empty() && req.kind.kind == "Namespace" {
        return req
            .name
            .clone()
            .filter(|n| !n.is_empty())
            .or_else(|| meta(req).and_then(|m| m.name.clone()));
    }
    req.namespace
        .clone()
        .filter(|n| !n.is_empty())
        .or_else(|| meta(req).and_then(|m| m.namespace.clone()))
}

fn meta(req: &Request) -> Option<&ObjectMeta> {
    req.object
        .as_ref()
        .or(req.old_object.as_ref())
        .and_then(Object::metadata)
}

fn labels_of(meta: Option<&ObjectMeta>) -> Labels {
    meta.and_then(|m| m.labels.clone()).unwrap_or_default()
}

/// The mode a request is judged under. A Namespace change is judged under
/// the labels it had before (none, for a new one), so that a request can
/// never weaken its own check.
pub fn governing_mode(cfg: &Config, req: &Request, ns: &str, view: &NamespaceView) -> Mode {
    if is_namespace(req) {
        let labels = labels_of(req.old_object.as_ref().and_then(Object::metadata));
        Posture::of(cfg, ns, &labels).mode
    } else {
        Posture::of(cfg, ns, view.labels()).mode
    }
}

fn is_namespace(req: &Request) -> bool {
    req.kind.group.is_empty() && req.kind.kind == "Namespace"
}

/// Decides a request for the validating webhook. `view` is the namespace
/// the request is about (see [`request_namespace`]).
pub fn validate(cfg: &Config, req: &Request, view: &NamespaceView) -> Verdict {
    let Some(ns) = request_namespace(req) else {
        return Verdict::skip(cfg.mode, Skip::NotCovered);
    };
    let mode = governing_mode(cfg, req, &ns, view);
    if cfg.is_exempt(&ns) {
        return Verdict::skip(mode, Skip::Exempt);
    }
    if req.sub_resource.is_some() {
        return Verdict::skip(mode, Skip::NotCovered);
    }
    let mut v = Verdict::new(mode);
    // Everything is deleted from a Terminating namespace by its controller;
    // blocking any of it would leave the namespace stuck.
    if req.operation == Operation::Delete && view.terminating() {
        return v;
    }
    // An update of an object already being deleted only removes finalizers.
    if req.operation == Operation::Update
        && meta(req).is_some_and(|m| m.deletion_timestamp.is_some())
    {
        return v;
    }
    match (&req.object, &req.old_object, req.operation) {
        (Some(Object::Pod(pod)), old, Operation::Create | Operation::Update) => {
            require_default_deny(cfg, req, &ns, view, &mut v);
            let old = match old {
                Some(Object::Pod(p)) => Some(p.as_ref()),
                _ => None,
            };
            owned_role_label(cfg, req, &ns, pod, old, &mut v);
        }
        (Some(Object::Workload(_)), _, Operation::Create | Operation::Update) => {
            require_default_deny(cfg, req, &ns, view, &mut v);
        }
        (Some(Object::NetworkPolicy(np)), old, Operation::Create | Operation::Update) => {
            let Some(policy) = read_policy(req, np, &ns, &mut v) else {
                return v;
            };
            no_allow_all(cfg, req, &ns, view, &policy, &mut v);
            for b in policy.broad_rules() {
                v.warnings.push(format!(
                    "{}: spec.{}[{}] is broad: it {}",
                    req.subject(),
                    b.direction.field(),
                    b.rule,
                    b.reason
                ));
            }
            if let Some(Object::NetworkPolicy(old)) = old {
                keep_default_deny(cfg, req, &ns, view, Some(old), Some(&policy), &mut v);
            }
        }
        (None, Some(Object::NetworkPolicy(old)), Operation::Delete) => {
            keep_default_deny(cfg, req, &ns, view, Some(old), None, &mut v);
        }
        (Some(Object::Namespace(new)), old, Operation::Create | Operation::Update) => {
            let old_labels = match old {
                Some(Object::Namespace(o)) => Some(labels_of(Some(&o.metadata))),
                _ => None,
            };
            let new_labels = labels_of(Some(&new.metadata));
            namespace_labels(
                cfg,
                req,
                &ns,
                view,
                old_labels.as_ref(),
                &new_labels,
                &mut v,
            );
        }
        _ => return Verdict::skip(mode, Skip::NotCovered),
    }
    v
}

fn require_default_deny(
    cfg: &Config,
    req: &Request,
    ns: &str,
    view: &NamespaceView,
    v: &mut Verdict,
) {
    let dd = view.default_deny(cfg);
    let missing = dd.missing(cfg.require_default_deny);
    if missing.is_empty() {
        return;
    }
    let fix = netpol::default_deny_manifest(ns, missing);
    let cluster: String = dd
        .notes(cfg.require_default_deny, &view.cluster_policies)
        .iter()
        .map(|n| format!("{n}\n"))
        .collect();
    v.violate(
        RuleId::RequireDefaultDeny,
        format!(
            "{subject}: namespace {ns} has no default-deny NetworkPolicy for {missing}.\n\
             {cluster}\
             Workloads are admitted only into namespaces that deny {required} traffic by default, \
             so that every connection they make or accept is one somebody allowed on purpose.\n\
             Fix: apply this policy (kubectl apply -f -), then retry:\n\n{fix}",
            subject = req.subject(),
            required = cfg.require_default_deny,
        ),
        true,
    );
}

fn owned_role_label(
    cfg: &Config,
    req: &Request,
    ns: &str,
    pod: &Pod,
    old: Option<&Pod>,
    v: &mut Verdict,
) {
    let key = &cfg.roles.label;
    let labels = labels_of(Some(&pod.metadata));
    let value = labels.get(key);
    match req.operation {
        // Only a change is judged: an existing pod keeps what it had.
        Operation::Update => {
            let before = old
                .and_then(|o| o.metadata.labels.as_ref())
                .and_then(|l| l.get(key));
            if before == value {
                return;
            }
        }
        // A missing label is not a spoof (the mutating webhook adds it;
        // `palisade audit` reports pods without it).
        _ if value.is_none() => return,
        _ => {}
    }
    let empty = PodSpec::default();
    let spec = pod.spec.as_ref().unwrap_or(&empty);
    let derived = roles::derive(
        cfg,
        &PodFacts {
            namespace: ns,
            labels: &labels,
            spec,
            injecting: None,
        },
    );
    if value.map(String::as_str) == derived.as_ref().map(|d| d.role) {
        return;
    }
    let should = match &derived {
        Some(d) => format!(
            "{key}={} (roles.rules[{}] matches this pod)",
            d.role, d.rule
        ),
        None => format!("no {key} label (no role rule matches this pod)"),
    };
    let has = match value {
        Some(val) => format!("{key}={val}"),
        None => format!("no {key} label"),
    };
    v.violate(
        RuleId::OwnedRoleLabel,
        format!(
            "{subject}: the label {key} is owned by palisade; this pod must carry {should}, not {has}.\n\
             NetworkPolicies grant traffic by this label, so a pod may not choose its own role.\n\
             Fix: leave {key} out of the change; to give pods a role, change the role rules in palisade's config.",
            subject = req.subject(),
        ),
        false,
    );
}

fn read_policy(req: &Request, np: &NetworkPolicy, ns: &str, v: &mut Verdict) -> Option<Policy> {
    readable(req, Policy::from_k8s(np, ns), v)
}

/// The object read, or an `invalid-object` violation saying why it
/// cannot be (what the API server would reject never gets here; this is
/// for what palisade cannot read).
pub(super) fn readable<T, E: std::fmt::Display>(
    req: &Request,
    read: Result<T, E>,
    v: &mut Verdict,
) -> Option<T> {
    match read {
        Ok(p) => Some(p),
        Err(e) => {
            v.violate(
                RuleId::InvalidObject,
                format!("{}: cannot be read: {e}", req.subject()),
                false,
            );
            None
        }
    }
}

fn no_allow_all(
    cfg: &Config,
    req: &Request,
    ns: &str,
    view: &NamespaceView,
    policy: &Policy,
    v: &mut Verdict,
) {
    let labels = view.labels();
    if posture::is_dev(cfg, labels) {
        return;
    }
    let env_key = &cfg.environment.label;
    let env_now = match labels.get(env_key) {
        Some(val) => format!("it is labelled {env_key}={val}"),
        None => format!("it has no {env_key} label"),
    };
    for d in Direction::ALL {
        let Some(i) = policy.allow_all(d) else {
            continue;
        };
        let rule = &policy.rules(d)[i];
        let peer = match &rule.peers {
            Peers::Any => format!("every pod and every address ({} absent)", d.peer_field()),
            Peers::Only(peers) => peers
                .iter()
                .find(|p| p.admits_everything())
                .map(ToString::to_string)
                .unwrap_or_default(),
        };
        v.violate(
            RuleId::NoAllowAll,
            format!(
                "{subject} is allow-all for {d}: spec.{field}[{i}] admits {peer} on all ports.\n\
                 Namespace {ns} is not a dev namespace ({env_now}); allow-all policies are permitted only \
                 where {env_key} is one of: {dev}.\n\
                 Fix: name the peers and ports that are needed, e.g. {example}.",
                subject = req.subject(),
                field = d.field(),
                dev = cfg.environment.dev.join(", "),
                example = match d {
                    Direction::Ingress => "from: [{podSelector: {matchLabels: {app: frontend}}}] with ports: [{port: 8080}]",
                    Direction::Egress => "to: [{podSelector: {matchLabels: {app: backend}}}] with ports: [{port: 8080}]",
                },
            ),
            true,
        );
    }
}

/// The policies of the namespace with the one named `name` replaced by
/// `with` (or removed when `None`).
fn replacing(view: &NamespaceView, name: &str, with: Option<PolicyFacts>) -> Vec<PolicyFacts> {
    view.policies
        .iter()
        .filter(|p| p.name != name)
        .cloned()
        .chain(with.filter(|f| !f.is_plain()))
        .collect()
}

fn keep_default_deny(
    cfg: &Config,
    req: &Request,
    ns: &str,
    view: &NamespaceView,
    old: Option<&NetworkPolicy>,
    new: Option<&Policy>,
    v: &mut Verdict,
) {
    let name = req
        .name
        .clone()
        .or_else(|| old.and_then(|o| o.metadata.name.clone()))
        .unwrap_or_default();
    // The object in the request is the truth about this policy; the view
    // is the truth about the others.
    let old_facts = old
        .and_then(|o| Policy::from_k8s(o, ns).ok())
        .map(|p| p.facts());
    let before = match old_facts {
        Some(f) => replacing(view, &name, Some(f)),
        None => view.policies.clone(),
    };
    let after = replacing(view, &name, new.map(Policy::facts));
    let required = cfg.require_default_deny;
    // A namespace fenced cluster-wide loses nothing with its own policies.
    let standing = |facts: &[PolicyFacts]| {
        DefaultDeny::of(cfg, facts, &view.cluster_policies, view.labels()).directions()
    };
    let had = standing(&before);
    let has = standing(&after);
    let had_all = required.minus(had).is_empty();
    let has_all = required.minus(has).is_empty();
    if !had_all || has_all {
        return;
    }
    let lost: Directions = required.minus(has);
    let what = if new.is_some() {
        format!(
            "this change makes {} no longer default-deny for {lost}",
            req.subject()
        )
    } else {
        format!(
            "deleting {} removes its default-deny for {lost}",
            req.subject()
        )
    };
    v.violate(
        RuleId::KeepDefaultDeny,
        format!(
            "{what}, and no other policy in namespace {ns} provides it: the namespace would lose its default-deny.\n\
             Fix: apply another default-deny policy for {lost} first (below), or delete the whole namespace:\n\n{fix}",
            fix = netpol::default_deny_manifest(ns, lost),
        ),
        true,
    );
}

fn namespace_labels(
    cfg: &Config,
    req: &Request,
    ns: &str,
    view: &NamespaceView,
    old: Option<&Labels>,
    new: &Labels,
    v: &mut Verdict,
) {
    if let Some(val) = new.get(MODE_LABEL) {
        let unchanged = old.and_then(|o| o.get(MODE_LABEL)) == Some(val);
        if val.parse::<Mode>().is_err() && !unchanged {
            v.violate(
                RuleId::ValidModeLabel,
                format!(
                    "{}: {MODE_LABEL}={val} is not a mode.\nFix: use one of enforce, warn, dry-run, or remove the label to use the default ({}).",
                    req.subject(),
                    cfg.mode
                ),
                false,
            );
        }
    }
    let weakenings = posture::weakenings(cfg, old, new);
    if !weakenings.is_empty() && !cfg.is_trusted(&req.user.groups) {
        let list: Vec<String> = weakenings.iter().map(ToString::to_string).collect();
        let why: Vec<String> = weakenings
            .iter()
            .map(|w| match w {
                posture::Weakening::Mode { to } => {
                    format!("{MODE_LABEL}={to} is weaker than the default mode {}", cfg.mode)
                }
                posture::Weakening::Dev { label, to } => {
                    format!("{label}={to} makes the namespace dev, where allow-all NetworkPolicies are permitted")
                }
                posture::Weakening::GenerateOptOut => format!(
                    "{GENERATE_LABEL}={GENERATE_OPT_OUT} keeps palisade from creating the namespace's default-deny"
                ),
            })
            .collect();
        v.violate(
            RuleId::TrustedLabels,
            format!(
                "{subject}: only members of {trusted} may set {labels}; user {user} ({groups}) is not.\n\
                 Why: {why}.\n\
                 Fix: leave the label out, or ask a platform administrator to set it.",
                subject = req.subject(),
                trusted = cfg.trusted_groups.join(", "),
                labels = list.join(", "),
                user = req.user.username,
                groups = if req.user.groups.is_empty() {
                    "no groups".to_owned()
                } else {
                    format!("groups: {}", req.user.groups.join(", "))
                },
                why = why.join("; "),
            ),
            false,
        );
    }
    if let Some(val) = new.get(GENERATE_LABEL)
        && val != GENERATE_OPT_OUT
        && old.and_then(|o| o.get(GENERATE_LABEL)) != Some(val)
    {
        v.warnings.push(format!(
            "{}: {GENERATE_LABEL}={val} has no effect: only {GENERATE_LABEL}={GENERATE_OPT_OUT} opts a namespace out of generation",
            req.subject()
        ));
    }
    if req.operation == Operation::Create {
        generation_warning(cfg, req, ns, new, &view.cluster_policies, v);
    }
    if req.operation == Operation::Update
        && let Some(old) = old
    {
        relabel_keeps_default_deny(cfg, req, ns, view, old, new, v);
    }
    let was_dev = old.is_some_and(|o| posture::is_dev(cfg, o));
    if req.operation == Operation::Update && was_dev && !posture::is_dev(cfg, new) {
        let allow_all: Vec<String> = view
            .policies
            .iter()
            .filter(|p| !p.allow_all.is_empty())
            .map(|p| format!("{} ({})", p.name, p.allow_all))
            .collect();
        if !allow_all.is_empty() {
            let key = &cfg.environment.label;
            let to = new
                .get(key)
                .map(|val| format!("{key}={val}"))
                .unwrap_or_else(|| format!("no {key} label"));
            v.violate(
                RuleId::AllowAllStaysDev,
                format!(
                    "{subject}: cannot leave dev ({to}) while it holds allow-all NetworkPolicies: {list}.\n\
                     Fix: delete or narrow those policies first (kubectl -n {ns} get networkpolicy {names}), then relabel.",
                    subject = req.subject(),
                    list = allow_all.join(", "),
                    names = view
                        .policies
                        .iter()
                        .filter(|p| !p.allow_all.is_empty())
                        .map(|p| p.name.as_str())
                        .collect::<Vec<_>>()
                        .join(" "),
                ),
                true,
            );
        }
    }
}

/// A namespace created in `warn` mode where generation runs: palisade
/// says what it would create, as it says what it would deny.
fn generation_warning(
    cfg: &Config,
    req: &Request,
    ns: &str,
    labels: &Labels,
    cluster_policies: &std::sync::Arc<crate::cluster_policy::ClusterPolicies>,
    v: &mut Verdict,
) {
    let created = NamespaceView {
        name: ns.to_owned(),
        namespace: Some(posture::NamespaceInfo {
            labels: labels.clone(),
            terminating: false,
            created: None,
        }),
        policies: Vec::new(),
        cluster_policies: std::sync::Arc::clone(cluster_policies),
    };
    if let Plan::Generate(g) = plan(cfg, &created, Age::New)
        && g.mode == Mode::Warn
    {
        v.warnings.push(format!(
            "{}: palisade would create {g} in enforce mode; in warn mode it creates nothing",
            req.subject()
        ));
    }
}

/// A namespace relabelled out of the subject of the cluster-wide policy
/// that gave it default-deny, with no NetworkPolicy of its own to take
/// over, would lose it.
fn relabel_keeps_default_deny(
    cfg: &Config,
    req: &Request,
    ns: &str,
    view: &NamespaceView,
    old: &Labels,
    new: &Labels,
    v: &mut Verdict,
) {
    if view.cluster_policies.is_empty() {
        return;
    }
    let standing =
        |labels: &Labels| DefaultDeny::of(cfg, &view.policies, &view.cluster_policies, labels);
    let before = standing(old);
    let after = standing(new);
    let required = cfg.require_default_deny;
    if !before.missing(required).is_empty() || after.missing(required).is_empty() {
        return;
    }
    let lost = after.missing(required);
    let by: Vec<String> = lost
        .iter()
        .filter_map(|d| match &before.cluster[d.index()] {
            crate::cluster_policy::defaults::ClusterDefault::Denied { by, .. } => Some(
                by.iter()
                    .filter_map(|r| r.named(&view.cluster_policies, d))
                    .map(|r| format!("{} ({d})", r.policy))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            _ => None,
        })
        .collect();
    v.violate(
        RuleId::KeepDefaultDeny,
        format!(
            "{subject}: these labels take namespace {ns} out of the subject of {by}, its only default-deny for {lost}: \
             it holds no default-deny NetworkPolicy of its own.\n\
             Fix: apply a default-deny NetworkPolicy for {lost} in the namespace first (below), then relabel:\n\n{fix}",
            subject = req.subject(),
            by = by.join(" and "),
            fix = netpol::default_deny_manifest(ns, lost),
        ),
        true,
    );
}
