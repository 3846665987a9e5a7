//! The reachability preview at admission: for a change to a NetworkPolicy
//! or a cluster-wide policy (AdminNetworkPolicy, ...) that is a
//! server-side dry run, or governed by warn or dry-run mode, warnings list
//! the connections it opens and closes, so
//! `kubectl apply --dry-run=server -f policy.yaml` is a preview.

use super::request::{Object, Operation, Request};
use super::verdict::Verdict;
use crate::mode::Mode;
use crate::netpol::Policy;
use crate::reach::{self, Model, PolicyChange};

/// Connections listed per direction of change before "... and N more".
pub const PREVIEW_LIMIT: usize = 10;

/// Does this request get a preview? A NetworkPolicy or cluster-wide
/// policy CREATE, UPDATE or DELETE that is a dry run or governed by warn or
/// dry-run mode, and was decided at all (not exempt).
pub fn wants_preview(req: &Request, verdict: &Verdict) -> bool {
    let is_policy = (req.kind.group == "networking.k8s.io" && req.kind.kind == "NetworkPolicy")
        || super::is_cluster_policy(req);
    let op = matches!(
        req.operation,
        Operation::Create | Operation::Update | Operation::Delete
    );
    is_policy && op && verdict.skipped.is_none() && (req.dry_run || verdict.mode != Mode::Enforce)
}

/// The preview warnings for `req` against `model`, or `None` when the
/// request carries no readable policy. `ns` is the namespace of a
/// NetworkPolicy (none for a cluster-wide policy).
pub fn preview_warnings(req: &Request, ns: Option<&str>, model: &Model) -> Option<Vec<String>> {
    if super::is_cluster_policy(req) {
        return cluster_preview_warnings(req, model);
    }
    let ns = ns?;
    let read = |o: &Option<Object>| match o {
        Some(Object::NetworkPolicy(np)) => Policy::from_k8s(np, ns).ok(),
        _ => None,
    };
    let new = read(&req.object);
    let old = read(&req.old_object);
    let change = PolicyChange::from_parts(old, new).ok()?;
    let (pns, pname) = change.key()?;
    let p = reach::preview(model, &change);
    Some(warnings(&format!("NetworkPolicy {pns}/{pname}"), &p))
}

fn warnings(what: &str, p: &reach::Preview) -> Vec<String> {
    let head = format!(
        "palisade preview of {what}: opens {} and closes {} connections",
        p.opened.len(),
        p.closed.len()
    );
    std::iter::once(head)
        .chain(p.warnings(PREVIEW_LIMIT))
        .collect()
}

fn cluster_preview_warnings(req: &Request, model: &Model) -> Option<Vec<String>> {
    let read = |o: &Option<Object>| match o {
        Some(Object::ClusterPolicy(c)) => c.read().ok(),
        _ => None,
    };
    let new = read(&req.object);
    let old = read(&req.old_object);
    let p = new.as_ref().or(old.as_ref())?;
    let what = format!("{} {}", p.kind, p.name);
    let preview = reach::preview_cluster(model, old.as_ref(), new.as_ref());
    Some(warnings(&what, &preview))
}
