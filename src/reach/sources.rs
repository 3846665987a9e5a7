//! Where each workload and NetworkPolicy of a simulated state was read,
//! so that a connection a change opens can be shown on the line of the
//! policy rule that admits it (or, failing that, of a workload it
//! connects): what code scanning annotates on a pull request.

use std::collections::HashMap;

use super::conn::{Change, Endpoint};
use super::explain::{Query, Side, Target, explain};
use super::model::{Model, WorkloadId};
use crate::cluster::static_dir::DEFAULT_NAMESPACE;
use crate::manifest::Document;
use crate::object::Gvk;

/// A file and a 1-based line.
pub type Place = (String, usize);

/// Places of the policies and workloads read.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    policies: HashMap<String, Place>,
    workloads: HashMap<WorkloadId, Place>,
}

/// Kinds a workload of the model can be read from.
fn is_workload(gvk: &Gvk) -> bool {
    matches!(
        (gvk.group.as_str(), gvk.kind.as_str()),
        ("", "Pod" | "ReplicationController")
            | (
                "apps",
                "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet"
            )
            | ("batch", "Job" | "CronJob")
    )
}

impl Sources {
    /// Notes where `d` was read, if it is a policy or a workload (later
    /// documents replace earlier ones, as they do in the model).
    pub fn record(&mut self, d: &Document) {
        let ns = d.namespace().unwrap_or(DEFAULT_NAMESPACE);
        let place = (d.source.display().to_string(), d.line);
        if d.gvk.group == "networking.k8s.io" && d.gvk.kind == "NetworkPolicy" {
            self.policies.insert(format!("{ns}/{}", d.name()), place);
        } else if is_workload(&d.gvk) {
            self.workloads
                .insert(WorkloadId::new(ns, d.name(), &d.gvk.kind), place);
        }
    }

    /// Where to show what `c` opens in `after`: the policy whose rule
    /// admits the first opened port (the destination's ingress first,
    /// then the source's egress), else the destination's or the source's
    /// manifest; `None` when none was read from a file.
    pub fn place_of(&self, after: &Model, c: &Change) -> Option<Place> {
        if let Some(q) = first_opened(c)
            && let Ok(e) = explain(after, &q)
        {
            for side in [&e.ingress, &e.egress] {
                if let Side::Isolated { admitted_by, .. } = side {
                    for r in admitted_by {
                        if let Some(p) = self.policies.get(&r.policy) {
                            return Some(p.clone());
                        }
                    }
                }
            }
        }
        [&c.dst, &c.src]
            .into_iter()
            .filter_map(Endpoint::workload)
            .find_map(|w| self.workloads.get(w).cloned())
    }
}

/// The connection on the first port `c` opens.
fn first_opened(c: &Change) -> Option<Query> {
    let opened = c.opened();
    let (protocol, ranges) = opened.by_protocol().next()?;
    let port = ranges.ranges().first()?.0;
    Some(Query {
        from: target(&c.src)?,
        to: target(&c.dst)?,
        protocol,
        port,
    })
}

fn target(e: &Endpoint) -> Option<Target> {
    match e {
        Endpoint::Workload(w) => Some(Target::Workload(w.clone())),
        Endpoint::External(a) => a.ranges().first().map(|(ip, _)| Target::Address(*ip)),
    }
}
