//! Every allowed connection, as Kubernetes defines it: a pod is isolated
//! for a direction iff some policy selecting it has that type; an isolated
//! pod's traffic in that direction must be admitted by some rule of some
//! such policy, on ports of the destination; a connection is allowed iff
//! the source's egress and the destination's ingress both allow it.
//! Traffic from outside the cluster is subject to ingress only, traffic to
//! outside to egress only. A workload's connections to itself are left out.
//! Cluster-wide policies (AdminNetworkPolicy, ...) decide around what
//! NetworkPolicies allow, per direction ([`super::tiers`]).

use std::collections::{BTreeMap, HashMap};

use super::conn::{Conn, Endpoint};
use super::eval::{PeerSets, View};
use super::external::ExtMap;
use super::model::{GroupId, Model, WlId};
use super::tiers::Far;
use crate::addresses::AddrSet;
use crate::netpol::Direction;
use crate::ports::{ContainerPort, PortSet};

/// The ports one side allows: for `Egress`, what group `selected` may send
/// to group `other`; for `Ingress`, what `selected` may receive from
/// `other`. `dst` are the destination's container ports, against which
/// named ports resolve.
pub(crate) fn side_ports(
    view: &View<'_, '_>,
    d: Direction,
    selected: GroupId,
    other: GroupId,
    dst: &[ContainerPort],
) -> PortSet {
    let netpol = netpol_ports(view, d, selected, other, dst);
    let tiers = view.sets().tiers();
    if tiers.governs(d, selected) {
        tiers.side(d, selected, Far::Group(other), dst, netpol)
    } else {
        netpol.unwrap_or_else(PortSet::all)
    }
}

/// What NetworkPolicies alone allow on one side (see [`side_ports`]):
/// `None` when none selects `selected` for `d`.
pub(crate) fn netpol_ports(
    view: &View<'_, '_>,
    d: Direction,
    selected: GroupId,
    other: GroupId,
    dst: &[ContainerPort],
) -> Option<PortSet> {
    let pols = view.selecting(d, selected);
    if pols.is_empty() {
        return None;
    }
    let mut acc: Option<PortSet> = None;
    for &p in pols {
        let scope = view.policy_ns(p);
        for r in view.rules(p, d) {
            if !view.sets().admits(r, scope, other) {
                continue;
            }
            let ports = r.ports_on(dst);
            let next = match acc {
                None => ports.into_owned(),
                Some(a) => a.union(&ports),
            };
            if next.is_all() {
                return Some(next);
            }
            acc = Some(next);
        }
    }
    Some(acc.unwrap_or_default())
}

/// The ports group `s` may open to group `d`: its egress and `d`'s
/// ingress, both on `d`'s ports.
pub(crate) fn pair_ports(view: &View<'_, '_>, s: GroupId, d: GroupId) -> PortSet {
    let dst = &view.model().group(d).shape.ports;
    let e = side_ports(view, Direction::Egress, s, d, dst);
    if e.is_empty() {
        return e;
    }
    let i = side_ports(view, Direction::Ingress, d, s, dst);
    if e.is_all() {
        i
    } else if i.is_all() {
        e
    } else {
        e.intersect(&i)
    }
}

/// For group `g`: with `Egress`, the external addresses it may send to;
/// with `Ingress`, those it may receive from; with their ports. Named
/// ports resolve against `g` for ingress and admit nothing for egress (an
/// address has no container ports).
pub(crate) fn external_map(view: &View<'_, '_>, d: Direction, g: GroupId) -> ExtMap {
    let netpol = netpol_external_map(view, d, g);
    let tiers = view.sets().tiers();
    // Ingress from outside is never decided by cluster-wide policies.
    if d == Direction::Egress && tiers.governs(d, g) {
        tiers.egress_external(g, netpol)
    } else {
        netpol.unwrap_or_else(|| ExtMap::everywhere(PortSet::all()))
    }
}

/// What NetworkPolicies alone allow with the outside (see
/// [`external_map`]): `None` when none selects `g` for `d`.
fn netpol_external_map(view: &View<'_, '_>, d: Direction, g: GroupId) -> Option<ExtMap> {
    let pols = view.selecting(d, g);
    if pols.is_empty() {
        return None;
    }
    let dst: &[ContainerPort] = match d {
        Direction::Ingress => &view.model().group(g).shape.ports,
        Direction::Egress => &[],
    };
    let parts: Vec<(AddrSet, PortSet)> = pols
        .iter()
        .flat_map(|&p| view.rules(p, d))
        .filter(|r| !r.addresses.is_empty())
        .map(|r| (r.addresses.clone(), r.ports_on(dst).into_owned()))
        .collect();
    Some(ExtMap::from_parts(&parts))
}

/// Connections keyed by workload index: what a full listing or the rows
/// and columns a preview looks at produce.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Reach {
    /// `(source, destination)` workload indexes to ports.
    pub(crate) pairs: HashMap<(WlId, WlId), PortSet>,
    /// Per workload: external sources (Ingress) and destinations (Egress).
    pub(crate) external: [BTreeMap<WlId, ExtMap>; 2],
}

impl Reach {
    /// Adds the connection of workload `ws` to workload `wd` (same-workload
    /// pairs are never passed in).
    pub(crate) fn add_pair(&mut self, ws: WlId, wd: WlId, ports: PortSet) {
        if ports.is_empty() {
            return;
        }
        match self.pairs.entry((ws, wd)) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(ports);
            }
            std::collections::hash_map::Entry::Occupied(mut o) => {
                let merged = o.get().union(&ports);
                o.insert(merged);
            }
        }
    }

    /// Adds a group's external map to its workload's.
    pub(crate) fn add_external(&mut self, d: Direction, w: WlId, map: ExtMap) {
        let slot = &mut self.external[d.index()];
        match slot.get(&w) {
            None => {
                slot.insert(w, map);
            }
            Some(prev) => {
                let merged = prev.union(&map);
                slot.insert(w, merged);
            }
        }
    }

    /// Sorted connections, naming workloads from `model`.
    pub(crate) fn to_conns(&self, model: &Model) -> Vec<Conn> {
        let wl = |i: WlId| Endpoint::Workload(model.workloads[i as usize].id.clone());
        let mut out: Vec<Conn> = self
            .pairs
            .iter()
            .map(|(&(s, d), p)| Conn {
                src: wl(s),
                dst: wl(d),
                ports: p.clone(),
            })
            .collect();
        for d in Direction::ALL {
            for (&w, map) in &self.external[d.index()] {
                for (addrs, ports) in map.entries() {
                    let ext = Endpoint::External(addrs.clone());
                    let (src, dst) = match d {
                        Direction::Ingress => (ext, wl(w)),
                        Direction::Egress => (wl(w), ext),
                    };
                    out.push(Conn {
                        src,
                        dst,
                        ports: ports.clone(),
                    });
                }
            }
        }
        out.sort_by(|a, b| (&a.src, &a.dst).cmp(&(&b.src, &b.dst)));
        out
    }
}

/// Connections from group `s` (as source) to every group, in `view`.
pub(crate) fn add_row(view: &View<'_, '_>, s: GroupId, out: &mut Reach) {
    let m = view.model();
    let ws = m.group(s).workload;
    let row = view.row(Direction::Egress, s);
    let col = view.col(Direction::Ingress, s);
    for d in row.iter_and(&col) {
        let d = d as GroupId;
        let wd = m.group(d).workload;
        if wd != ws {
            out.add_pair(ws, wd, pair_ports(view, s, d));
        }
    }
}

/// What a group's external connectivity depends on: direction, selecting
/// NetworkPolicies, container ports, selecting cluster-wide policies.
type ExtKey = (usize, Vec<u32>, Vec<ContainerPort>, Vec<usize>);

/// Every allowed connection of the model.
pub(crate) fn reach_all(model: &Model) -> Reach {
    reach_with(&PeerSets::new(model))
}

/// Every allowed connection of the model `sets` evaluates (with the
/// cluster-wide policies it holds).
pub(crate) fn reach_with(sets: &PeerSets<'_>) -> Reach {
    let model = sets.model();
    let view = View::dense(sets);
    let mut out = Reach::default();
    // Groups with the same policies and (for ingress) ports have the same
    // external connectivity; namespaces full of alike pods are common.
    let mut cache: HashMap<ExtKey, ExtMap> = HashMap::new();
    for g in model.group_ids() {
        add_row(&view, g, &mut out);
        let group = model.group(g);
        for d in Direction::ALL {
            let ports = match d {
                Direction::Ingress => group.shape.ports.clone(),
                Direction::Egress => Vec::new(),
            };
            let mut pols = view.selecting(d, g).to_vec();
            pols.sort_unstable();
            let key = (d.index(), pols, ports, sets.tiers().key(d, g));
            let map = match cache.get(&key) {
                Some(m) => m.clone(),
                None => {
                    let m = external_map(&view, d, g);
                    cache.insert(key, m.clone());
                    m
                }
            };
            out.add_external(d, group.workload, map);
        }
    }
    out
}

/// Every allowed connection between workloads, and between workloads and
/// addresses outside the cluster, sorted by source then destination.
pub fn connections(model: &Model) -> Vec<Conn> {
    reach_all(model).to_conns(model)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reach::model::ModelBuilder;

    fn model(yaml: &str) -> Model {
        let mut m = crate::manifest::Manifests::default();
        crate::manifest::read_text(std::path::Path::new("t.yaml"), yaml, &mut m);
        assert!(m.skipped.is_empty(), "{:?}", m.skipped);
        let mut b = ModelBuilder::new();
        for d in &m.documents {
            b.document(d).unwrap();
        }
        b.build()
    }

    fn lines(m: &Model) -> Vec<String> {
        connections(m).iter().map(ToString::to_string).collect()
    }

    const PODS: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: a, labels: {app: web}}\nspec: {containers: [{name: c, ports: [{name: http, containerPort: 8080}]}]}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: db, namespace: a, labels: {app: db}}\nspec: {containers: [{name: c, ports: [{name: sql, containerPort: 5432}]}]}\n";

    #[test]
    fn no_policy_means_everything_is_open() {
        assert_eq!(
            lines(&model(PODS)),
            vec![
                "a/db[Pod] => a/web[Pod] : all ports",
                "a/db[Pod] => 0.0.0.0/0,::/0[External] : all ports",
                "a/web[Pod] => a/db[Pod] : all ports",
                "a/web[Pod] => 0.0.0.0/0,::/0[External] : all ports",
                "0.0.0.0/0,::/0[External] => a/db[Pod] : all ports",
                "0.0.0.0/0,::/0[External] => a/web[Pod] : all ports",
            ]
        );
    }

    #[test]
    fn both_sides_must_allow_and_named_ports_resolve_on_the_destination() {
        let m = model(&format!(
            "{PODS}---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: db-in, namespace: a}}\nspec:\n  podSelector: {{matchLabels: {{app: db}}}}\n  ingress: [{{from: [{{podSelector: {{matchLabels: {{app: web}}}}}}], ports: [{{port: sql}}, {{port: 9999}}]}}]\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: web-out, namespace: a}}\nspec:\n  podSelector: {{matchLabels: {{app: web}}}}\n  policyTypes: [Egress]\n  egress:\n  - to: [{{podSelector: {{}}}}]\n    ports: [{{port: sql}}, {{port: http}}]\n  - to: [{{ipBlock: {{cidr: 10.0.0.0/8}}}}]\n    ports: [{{port: sql}}, {{port: 443}}]\n"
        ));
        assert_eq!(
            lines(&m),
            vec![
                "a/db[Pod] => a/web[Pod] : all ports",
                "a/db[Pod] => 0.0.0.0/0,::/0[External] : all ports",
                // 9999 is admitted by db's ingress but not web's egress; sql
                // resolves on db; http names no port of db.
                "a/web[Pod] => a/db[Pod] : TCP 5432",
                // Named ports admit nothing towards an address.
                "a/web[Pod] => 10.0.0.0/8[External] : TCP 443",
                "0.0.0.0/0,::/0[External] => a/web[Pod] : all ports",
            ]
        );
    }
}
