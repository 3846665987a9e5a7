//! How connectivity changes between two states (e.g. the manifests of the
//! main branch and of a pull request): connections added, removed, or
//! changed (ports before and after), and workloads added or removed.

use std::collections::{BTreeMap, BTreeSet};

use super::compute::{Reach, reach_all};
use super::conn::{Change, Endpoint};
use super::external::{ExtMap, compare};
use super::model::{Model, WorkloadId};
use crate::netpol::Direction;
use crate::ports::PortSet;

/// The difference between two states.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    /// Connections that differ, sorted by source then destination.
    pub changes: Vec<Change>,
    /// Workloads only in the new state.
    pub workloads_added: Vec<WorkloadId>,
    /// Workloads only in the old state.
    pub workloads_removed: Vec<WorkloadId>,
}

impl Diff {
    /// Does the new state allow anything the old did not (a connection
    /// added, or more ports on one)?
    pub fn opens(&self) -> bool {
        self.changes.iter().any(|c| !c.opened().is_empty())
    }
}

/// Compares every connection of two models.
pub fn diff(before: &Model, after: &Model) -> Diff {
    let b = reach_all(before);
    let a = reach_all(after);
    let old: BTreeSet<&WorkloadId> = before.workloads.iter().collect();
    let new: BTreeSet<&WorkloadId> = after.workloads.iter().collect();
    Diff {
        changes: changes(&b, &before.workloads, &a, &after.workloads),
        workloads_added: new.difference(&old).map(|w| (*w).clone()).collect(),
        workloads_removed: old.difference(&new).map(|w| (*w).clone()).collect(),
    }
}

/// The connections that differ between two partial or full results,
/// matched by workload identity.
fn changes(
    before: &Reach,
    before_ids: &[WorkloadId],
    after: &Reach,
    after_ids: &[WorkloadId],
) -> Vec<Change> {
    let keyed = |r: &Reach, ids: &[WorkloadId]| -> BTreeMap<(WorkloadId, WorkloadId), PortSet> {
        r.pairs
            .iter()
            .map(|(&(s, d), p)| {
                (
                    (ids[s as usize].clone(), ids[d as usize].clone()),
                    p.clone(),
                )
            })
            .collect()
    };
    let mut pb = keyed(before, before_ids);
    let pa = keyed(after, after_ids);
    let mut out = Vec::new();
    for ((s, d), a) in pa {
        let b = pb.remove(&(s.clone(), d.clone()));
        if b.as_ref() != Some(&a) {
            out.push(Change {
                src: Endpoint::Workload(s),
                dst: Endpoint::Workload(d),
                before: b,
                after: Some(a),
            });
        }
    }
    for ((s, d), b) in pb {
        out.push(Change {
            src: Endpoint::Workload(s),
            dst: Endpoint::Workload(d),
            before: Some(b),
            after: None,
        });
    }
    external_changes(before, before_ids, after, after_ids, &mut out);
    out.sort_by(|x, y| (&x.src, &x.dst).cmp(&(&y.src, &y.dst)));
    out
}

/// Both sides index one workload table (a preview): pairs are compared by
/// index, and ids cloned only for what differs. Workloads are sorted, so
/// index order is id order.
pub(crate) fn changes_same_ids(before: &Reach, after: &Reach, ids: &[WorkloadId]) -> Vec<Change> {
    let mut keys: Vec<(u32, u32)> = before
        .pairs
        .keys()
        .chain(after.pairs.keys())
        .copied()
        .collect();
    keys.sort_unstable();
    keys.dedup();
    let wl = |i: u32| Endpoint::Workload(ids[i as usize].clone());
    let out: Vec<Change> = keys
        .into_iter()
        .filter_map(|k| {
            let (b, a) = (before.pairs.get(&k), after.pairs.get(&k));
            (b != a).then(|| Change {
                src: wl(k.0),
                dst: wl(k.1),
                before: b.cloned(),
                after: a.cloned(),
            })
        })
        .collect();
    let mut ext = Vec::new();
    external_changes(before, ids, after, ids, &mut ext);
    if ext.is_empty() {
        return out;
    }
    // Few external changes against possibly many pair changes: merge the
    // two sorted lists rather than sort them all again.
    ext.sort_by(|x, y| (&x.src, &x.dst).cmp(&(&y.src, &y.dst)));
    let mut merged = Vec::with_capacity(out.len() + ext.len());
    let mut ext = ext.into_iter().peekable();
    for c in out {
        while let Some(e) = ext.next_if(|e| (&e.src, &e.dst) < (&c.src, &c.dst)) {
            merged.push(e);
        }
        merged.push(c);
    }
    merged.extend(ext);
    merged
}

/// The changes of external connectivity, per workload and direction.
fn external_changes(
    before: &Reach,
    before_ids: &[WorkloadId],
    after: &Reach,
    after_ids: &[WorkloadId],
    out: &mut Vec<Change>,
) {
    for dir in Direction::ALL {
        let keyed = |r: &Reach, ids: &[WorkloadId]| -> BTreeMap<WorkloadId, ExtMap> {
            r.external[dir.index()]
                .iter()
                .map(|(&w, m)| (ids[w as usize].clone(), m.clone()))
                .collect()
        };
        let eb = keyed(before, before_ids);
        let ea = keyed(after, after_ids);
        let ws: BTreeSet<&WorkloadId> = eb.keys().chain(ea.keys()).collect();
        let none = ExtMap::none();
        for w in ws {
            let b = eb.get(w).unwrap_or(&none);
            let a = ea.get(w).unwrap_or(&none);
            for (addrs, pb, pa) in compare(b, a) {
                let ext = Endpoint::External(addrs);
                let wl = Endpoint::Workload(w.clone());
                let (src, dst) = match dir {
                    Direction::Ingress => (ext, wl),
                    Direction::Egress => (wl, ext),
                };
                out.push(Change {
                    src,
                    dst,
                    before: pb,
                    after: pa,
                });
            }
        }
    }
}
