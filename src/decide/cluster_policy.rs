//! The validating rules for cluster-wide policies (AdminNetworkPolicy,
//! BaselineAdminNetworkPolicy, ClusterNetworkPolicy): plain data in (config,
//! request, the cluster scope), a [`Verdict`] out, like [`super::validate`]
//! for namespaced objects.
//!
//! - `no-allow-all`: an admin-tier rule that allows everything overrides
//!   every NetworkPolicy of the namespaces it selects, so it is permitted
//!   only when its subject keeps to dev namespaces by the environment label
//!   (or to exempt namespaces by name). Broad rules warn.
//! - `keep-default-deny`: a create, update or delete that leaves some
//!   namespace without its only default-deny in a required direction.
//! - Policies of one tier sharing a priority warn: the API leaves their
//!   order undefined, and the warning says which palisade applies first.
//!
//! These objects are cluster-scoped: the mode is the config's default.

use super::request::{ClusterObject, Object, Operation, Request};
use super::verdict::{RuleId, Skip, Verdict};
use crate::cluster::ClusterScope;
use crate::cluster_policy::defaults::{self, ClusterDefault};
use crate::cluster_policy::{ClusterPolicies, ClusterPolicy, Subject};
use crate::config::Config;
use crate::netpol::{self, Direction, Directions};
use crate::posture::{self, DefaultDeny};
use crate::selector::{NAMESPACE_NAME_LABEL, Operator};

/// Namespaces listed by name in a message before "and N more".
pub const LIST_LIMIT: usize = 10;

/// Is the request about one of the three cluster-wide kinds?
pub fn is_cluster_policy(req: &Request) -> bool {
    crate::cluster_policy::ClusterKind::from_group_kind(&req.kind.group, &req.kind.kind).is_some()
}

/// Decides a request on a cluster-wide policy for the validating webhook.
pub fn validate_cluster_policy(cfg: &Config, req: &Request, scope: &ClusterScope) -> Verdict {
    let mut v = Verdict::new(cfg.mode);
    // Status updates come from the network plugin reporting what it did.
    if req.sub_resource.is_some() {
        return Verdict::skip(cfg.mode, Skip::NotCovered);
    }
    let old = match &req.old_object {
        Some(Object::ClusterPolicy(o)) => o.read().ok(),
        _ => None,
    };
    match (&req.object, req.operation) {
        (Some(Object::ClusterPolicy(new)), Operation::Create | Operation::Update) => {
            // An update of an object being deleted only removes finalizers.
            if req.operation == Operation::Update && new.metadata.deletion_timestamp.is_some() {
                return v;
            }
            let Some(policy) = read(req, new, &mut v) else {
                return v;
            };
            no_allow_all(cfg, req, scope, &policy, &mut v);
            for (d, i, words) in defaults::broad_rules(&policy) {
                v.warnings.push(format!(
                    "{}: spec.{}[{i}] is broad: {words}",
                    req.subject(),
                    d.field()
                ));
            }
            let mut after = (*scope.cluster_policies).clone();
            after.put(policy.clone());
            for tie in after.ties_of(policy.kind, &policy.name) {
                v.warnings.push(format!("{}: {tie}", req.subject()));
            }
            keep_default_deny(cfg, req, scope, old, Some(policy), &mut v);
        }
        (None, Operation::Delete) if old.is_some() => {
            keep_default_deny(cfg, req, scope, old, None, &mut v);
        }
        _ => return Verdict::skip(cfg.mode, Skip::NotCovered),
    }
    v
}

fn read(req: &Request, obj: &ClusterObject, v: &mut Verdict) -> Option<ClusterPolicy> {
    let mut p = super::validate::readable(req, obj.read(), v)?;
    // A CREATE with generateName has no name yet; the request may.
    if p.name.is_empty() {
        p.name = req.display_name();
    }
    Some(p)
}

/// `first, second, ... and N more`.
fn listed(names: &[String]) -> String {
    let shown = names
        .iter()
        .take(LIST_LIMIT)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > LIST_LIMIT {
        format!("{shown} and {} more", names.len() - LIST_LIMIT)
    } else {
        shown
    }
}

/// The subject keeps to exempt namespaces by name
/// (`kubernetes.io/metadata.name In [...]` of exempt ones only).
fn confined_to_exempt(cfg: &Config, subject: &Subject) -> bool {
    subject.namespaces().requirements().iter().any(|r| {
        r.key == NAMESPACE_NAME_LABEL
            && matches!(&r.operator, Operator::In(values)
                if !values.is_empty() && values.iter().all(|n| cfg.is_exempt(n)))
    })
}

fn no_allow_all(
    cfg: &Config,
    req: &Request,
    scope: &ClusterScope,
    policy: &ClusterPolicy,
    v: &mut Verdict,
) {
    let env = &cfg.environment.label;
    if defaults::confined_to_dev(&policy.subject, env, &cfg.environment.dev)
        || confined_to_exempt(cfg, &policy.subject)
    {
        return;
    }
    let non_dev: Vec<String> = scope
        .namespaces
        .iter()
        .filter(|n| {
            !cfg.is_exempt(&n.name)
                && !posture::is_dev(cfg, &n.info.labels)
                && policy.subject.selects_namespace(&n.info.labels)
        })
        .map(|n| n.name.clone())
        .collect();
    let now = if non_dev.is_empty() {
        "It selects no non-dev namespace now, but nothing in its subject keeps it to dev namespaces, so any namespace created or relabelled later can fall under it.".to_owned()
    } else {
        format!(
            "It selects {} non-dev namespace{} now: {}.",
            non_dev.len(),
            if non_dev.len() == 1 { "" } else { "s" },
            listed(&non_dev)
        )
    };
    for d in Direction::ALL {
        let Some(i) = defaults::allow_all(policy, d) else {
            continue;
        };
        let rule = &policy.rules(d)[i];
        let peers: Vec<String> = rule.peers.iter().map(ToString::to_string).collect();
        v.violate(
            RuleId::NoAllowAll,
            format!(
                "{subject} is allow-all for {d}: spec.{field}[{i}] ({label}) {verb}s {peers} on all ports, \
                 in the admin tier, where no NetworkPolicy can narrow it: it is worse than an allow-all NetworkPolicy.\n\
                 {now} Allow-all is permitted only where {env} is one of: {dev}.\n\
                 Fix: name the peers and ports that are needed, e.g. {example}; or confine the subject to dev namespaces: \
                 namespaces: {{matchLabels: {{{env}: {first_dev}}}}}.",
                subject = req.subject(),
                field = d.field(),
                label = policy.rule_label(d, i),
                verb = policy.action_word(rule.action).to_lowercase(),
                peers = peers.join(", "),
                dev = cfg.environment.dev.join(", "),
                first_dev = cfg.environment.dev.first().map(String::as_str).unwrap_or("dev"),
                example = match d {
                    Direction::Ingress => "from: [{namespaces: {matchLabels: {kubernetes.io/metadata.name: monitoring}}}] with ports: [{portNumber: {port: 9090}}]",
                    Direction::Egress => "to: [{pods: {namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}, podSelector: {matchLabels: {k8s-app: kube-dns}}}}] with ports: [{portNumber: {protocol: UDP, port: 53}}]",
                },
            ),
            false,
        );
    }
}

/// The directions a namespace with these facts and labels denies by
/// default under `set`.
fn standing(
    cfg: &Config,
    netpol: Directions,
    set: &ClusterPolicies,
    labels: &crate::selector::Labels,
) -> DefaultDeny {
    let mut dd = DefaultDeny::of(cfg, &[], set, labels);
    dd.netpol = netpol;
    dd
}

fn keep_default_deny(
    cfg: &Config,
    req: &Request,
    scope: &ClusterScope,
    old: Option<ClusterPolicy>,
    new: Option<ClusterPolicy>,
    v: &mut Verdict,
) {
    let required = cfg.require_default_deny;
    if required.is_empty() {
        return;
    }
    // The objects in the request are the truth about this policy; the scope
    // is the truth about the others.
    let mut before = (*scope.cluster_policies).clone();
    let key = new
        .as_ref()
        .or(old.as_ref())
        .map(|p| (p.kind, p.name.clone()));
    if let Some(o) = &old {
        before.put(o.clone());
    }
    let mut after = before.clone();
    if let Some((kind, name)) = &key {
        after.remove(*kind, name);
    }
    if let Some(n) = new {
        after.put(n);
    }
    if before == after {
        return;
    }
    let mut lost_in: Vec<String> = Vec::new();
    let mut lost = Directions::NONE;
    let mut considered: Vec<String> = Vec::new();
    for ns in &scope.namespaces {
        if cfg.is_exempt(&ns.name) || ns.info.terminating {
            continue;
        }
        let had = standing(cfg, ns.default_deny, &before, &ns.info.labels);
        if !had.missing(required).is_empty() {
            continue;
        }
        let has = standing(cfg, ns.default_deny, &after, &ns.info.labels);
        let missing = has.missing(required);
        if missing.is_empty() {
            continue;
        }
        lost = lost.union(missing);
        lost_in.push(ns.name.clone());
        for d in missing.iter() {
            if let ClusterDefault::Denied { by, .. } = &had.cluster[d.index()] {
                for r in by.iter().filter_map(|r| r.named(&before, d)) {
                    let text = r.to_string();
                    if !considered.contains(&text) {
                        considered.push(text);
                    }
                }
            }
        }
    }
    if lost_in.is_empty() {
        return;
    }
    let what = match (req.operation, req.object.is_some()) {
        (crate::decide::Operation::Delete, _) | (_, false) => format!("deleting {}", req.subject()),
        (crate::decide::Operation::Create, _) => format!(
            "creating {} (its rules come first and cut into the default-deny)",
            req.subject()
        ),
        _ => format!("this change to {}", req.subject()),
    };
    let first = &lost_in[0];
    v.violate(
        RuleId::KeepDefaultDeny,
        format!(
            "{what} removes the only default-deny for {lost} of {n} namespace{s}: {list}.\n\
             Their default-deny came from {considered}, and they hold no default-deny NetworkPolicy of their own.\n\
             Fix: keep a rule that denies every peer for them, or apply a default-deny NetworkPolicy in each first, e.g. for {first}:\n\n{fix}",
            n = lost_in.len(),
            s = if lost_in.len() == 1 { "" } else { "s" },
            list = listed(&lost_in),
            considered = if considered.is_empty() {
                "cluster-wide policies".to_owned()
            } else {
                considered.join(" and ")
            },
            fix = netpol::default_deny_manifest(first, lost),
        ),
        true,
    );
}
