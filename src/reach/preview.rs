//! What one NetworkPolicy change (create, update, delete) opens and
//! closes, computed at admission time. A policy selects pods of its own
//! namespace only, so only connections from the pods it selects (their
//! egress) and to them (their ingress) can change; those rows and columns
//! are evaluated before and after, nothing else.

use super::bits::BitSet;
use super::change::PolicyChange;
use super::compute::{Reach, add_row, external_map, pair_ports};
use super::conn::{Change, Conn};
use super::diff::changes_same_ids;
use super::eval::{self, PeerSets, View};
use super::model::{GroupId, Model, NsId, PolicyId};
use crate::netpol::Direction;

/// What a policy change opens and closes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Preview {
    /// Connections, or ports of them, allowed after but not before; the
    /// ports are the ones newly allowed.
    pub opened: Vec<Conn>,
    /// Connections, or ports of them, allowed before but not after; the
    /// ports are the ones no longer allowed.
    pub closed: Vec<Conn>,
    /// The same changes with ports before and after, as `diff` reports.
    pub changes: Vec<Change>,
}

impl Preview {
    /// Nothing opens or closes.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Admission warnings: `opens: a => b : TCP 80` for the first `limit`
    /// opened connections, then `... and N more opened`, and the same for
    /// closed ones; a single line when nothing changes.
    pub fn warnings(&self, limit: usize) -> Vec<String> {
        if self.is_empty() {
            return vec!["this change opens and closes no connection".to_owned()];
        }
        let mut out = Vec::new();
        for (verb, conns) in [("opens", &self.opened), ("closes", &self.closed)] {
            for c in conns.iter().take(limit) {
                out.push(format!("{verb}: {c}"));
            }
            if conns.len() > limit {
                let past = if verb == "opens" { "opened" } else { "closed" };
                out.push(format!("... and {} more {past}", conns.len() - limit));
            }
        }
        out
    }
}

/// What `change` would open and close in `model`. The model's current
/// version of the policy (if any) is the "before", whatever `change.old`
/// says, so a slightly stale admission request cannot skew the preview.
pub fn preview(model: &Model, change: &PolicyChange) -> Preview {
    let Some((ns, name)) = change.key() else {
        return Preview::default();
    };
    let existing = model.policy_id(ns, name);
    let (body, extra) = match &change.new {
        Some(p) => {
            let (body, extra) = model.intern.lookup(p);
            (Some(body), extra)
        }
        None => (None, Vec::new()),
    };
    let sets = PeerSets::with_extra(model, extra);
    let namespace = model.ns_id(ns);
    // A policy selects pods of its own namespace only: the groups it
    // selects, before or after, are among that namespace's.
    let candidates: &[GroupId] = namespace.map_or(&[], |n| &model.namespaces[n as usize].groups);
    // A new policy takes an index no policy has.
    let slot = existing.unwrap_or(PolicyId::MAX);
    let selecting: Vec<(GroupId, [Vec<PolicyId>; 2])> = candidates
        .iter()
        .filter_map(|&g| {
            let group = model.group(g);
            let before = group.selecting.iter().any(|l| l.contains(&slot));
            let after = body
                .as_ref()
                .is_some_and(|b| b.pod_selector.matches(&group.shape.labels));
            (before || after).then(|| {
                let lists = Direction::ALL.map(|d| {
                    let mut v: Vec<PolicyId> = group.selecting[d.index()]
                        .iter()
                        .copied()
                        .filter(|&p| p != slot)
                        .collect();
                    if after && body.as_ref().is_some_and(|b| b.types.contains(d)) {
                        v.push(slot);
                    }
                    v
                });
                (g, lists)
            })
        })
        .collect::<std::collections::BTreeMap<_, _>>()
        .into_iter()
        .collect();
    let changed_groups: Vec<GroupId> = selecting.iter().map(|(g, _)| *g).collect();
    let base = View::new(&sets);
    let overlay = View::changed(
        &sets,
        eval::Change {
            slot,
            namespace: namespace.unwrap_or(NsId::MAX),
            body,
            selecting,
        },
    );

    // Every group of every workload with a changed group: a workload's
    // connections are the union over its groups.
    let mut affected = BitSet::empty(model.group_capacity());
    for g in changed_groups {
        for &x in &model.workloads[model.group(g).workload as usize].groups {
            affected.insert(x as usize);
        }
    }
    let before = partial(&base, &affected);
    let after = partial(&overlay, &affected);
    Preview::from_changes(changes_same_ids(&before, &after, model))
}

impl Preview {
    /// The preview of these changes: what each opens and closes.
    pub(crate) fn from_changes(changes: Vec<Change>) -> Preview {
        let pick = |f: fn(&Change) -> crate::ports::PortSet| -> Vec<Conn> {
            changes
                .iter()
                .filter_map(|c| {
                    let ports = f(c);
                    (!ports.is_empty()).then(|| Conn {
                        src: c.src.clone(),
                        dst: c.dst.clone(),
                        ports,
                    })
                })
                .collect()
        };
        Preview {
            opened: pick(Change::opened),
            closed: pick(Change::closed),
            changes,
        }
    }
}

/// The connections from and to the `affected` groups in `view`.
pub(crate) fn partial(view: &View<'_, '_>, affected: &BitSet) -> Reach {
    let m = view.model();
    let mut out = Reach::default();
    for g in affected.iter() {
        let g = g as GroupId;
        add_row(view, g, &mut out);
        let wd = m.group(g).workload;
        let row = view.row(Direction::Ingress, g);
        let col = view.col(Direction::Egress, g);
        for s in row.iter_and(&col) {
            // Pairs with an affected source were counted in its row.
            if affected.contains(s) {
                continue;
            }
            let s = s as GroupId;
            out.add_pair(m.group(s).workload, wd, pair_ports(view, s, g));
        }
        for d in Direction::ALL {
            out.add_external(d, wd, external_map(view, d, g));
        }
    }
    out
}
