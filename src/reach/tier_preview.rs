//! What one change to a cluster-wide policy (AdminNetworkPolicy,
//! BaselineAdminNetworkPolicy, ClusterNetworkPolicy) opens and closes. A
//! cluster-wide policy governs the egress and ingress of the pods its
//! subject selects, so only connections from and to those pods (before or
//! after the change) can differ: their rows and columns are evaluated with
//! the cluster-wide policies before and after, nothing else, as the
//! NetworkPolicy preview does ([`super::preview()`]).

use std::sync::Arc;

use super::bits::BitSet;
use super::compute::reach_with;
use super::diff::changes_same_ids;
use super::eval::{PeerSets, View};
use super::model::Model;
use super::preview::{Preview, partial};
use crate::cluster_policy::ClusterPolicy;

/// What replacing the model's version of a cluster-wide policy with `new`
/// (`None`: deleting it; `old` names it when there is no `new`) would open
/// and close. The model's current version is the "before", whatever `old`
/// says, so a slightly stale admission request cannot skew the preview.
pub fn preview_cluster(
    model: &Model,
    old: Option<&ClusterPolicy>,
    new: Option<&ClusterPolicy>,
) -> Preview {
    let Some((kind, name)) = new.or(old).map(|p| (p.kind, p.name.clone())) else {
        return Preview::default();
    };
    let before = Arc::clone(&model.cluster);
    let current = before.get(kind, &name);
    let mut after = (*before).clone();
    after.remove(kind, &name);
    if let Some(n) = new {
        after.put(n.clone());
    }
    // The pods either version selects, and every pod of their workloads (a
    // workload's connections are the union over its pods).
    let mut affected = BitSet::empty(model.group_capacity());
    for g in model.group_ids() {
        let group = model.group(g);
        let ns_labels = &model.namespaces[group.namespace as usize].labels;
        let selected = [current, new]
            .into_iter()
            .flatten()
            .any(|p| p.subject.selects(ns_labels, &group.shape.labels));
        if selected {
            for &x in &model.workloads[group.workload as usize].groups {
                affected.insert(x as usize);
            }
        }
    }
    let sets_before = PeerSets::with_cluster(model, Vec::new(), before);
    let sets_after = PeerSets::with_cluster(model, Vec::new(), Arc::new(after));
    // A baseline usually selects every pod: past a quarter of the groups,
    // two full listings (rows evaluated once, columns by transposing) cost
    // less than a column per group.
    let (was, will) = if affected.iter().count() * 4 > model.group_ids().count() {
        (reach_with(&sets_before), reach_with(&sets_after))
    } else {
        (
            partial(&View::new(&sets_before), &affected),
            partial(&View::new(&sets_after), &affected),
        )
    };
    Preview::from_changes(changes_same_ids(&was, &will, model))
}
