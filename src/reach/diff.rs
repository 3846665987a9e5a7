//! How connectivity changes between two states (e.g. the manifests of the
//! main branch and of a pull request): connections added, removed, or
//! changed (ports before and after), and workloads added or removed.

use std::collections::{BTreeMap, BTreeSet};

use super::compute::{Reach, reach_all};
use super::conn::{Change, Endpoint};
use super::external::{ExtMap, compare};
use super::model::{Model, WlId, WorkloadId};
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
    let old: BTreeSet<&WorkloadId> = before.workloads().collect();
    let new: BTreeSet<&WorkloadId> = after.workloads().collect();
    Diff {
        changes: changes(&b, before, &a, after),
        workloads_added: new.difference(&old).map(|w| (*w).clone()).collect(),
        workloads_removed: old.difference(&new).map(|w| (*w).clone()).collect(),
    }
}

/// The connections that differ between two partial or full results,
/// matched by workload identity.
fn changes(before: &Reach, before_ids: &Model, after: &Reach, after_ids: &Model) -> Vec<Change> {
    let keyed = |r: &Reach, ids: &Model| -> BTreeMap<(WorkloadId, WorkloadId), PortSet> {
        r.pairs
            .iter()
            .map(|(&(s, d), p)| ((id(ids, s), id(ids, d)), p.clone()))
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
/// index, and ids cloned only for what differs.
pub(crate) fn changes_same_ids(before: &Reach, after: &Reach, ids: &Model) -> Vec<Change> {
    let mut keys: Vec<(WlId, WlId)> = before
        .pairs
        .keys()
        .chain(after.pairs.keys())
        .copied()
        .collect();
    keys.sort_unstable();
    keys.dedup();
    let wl = |i: WlId| Endpoint::Workload(id(ids, i));
    let mut out: Vec<Change> = keys
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
    external_changes(before, ids, after, ids, &mut out);
    out.sort_by(|x, y| (&x.src, &x.dst).cmp(&(&y.src, &y.dst)));
    out
}

/// The id of workload `i` of `model`.
fn id(model: &Model, i: WlId) -> WorkloadId {
    model.workloads[i as usize].id.clone()
}

/// The changes of external connectivity, per workload and direction.
fn external_changes(
    before: &Reach,
    before_ids: &Model,
    after: &Reach,
    after_ids: &Model,
    out: &mut Vec<Change>,
) {
    for dir in Direction::ALL {
        let keyed = |r: &Reach, ids: &Model| -> BTreeMap<WorkloadId, ExtMap> {
            r.external[dir.index()]
                .iter()
                .map(|(&w, m)| (id(ids, w), m.clone()))
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
