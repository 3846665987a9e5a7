//! Naming the ends of an observed flow: an address or a pod name to a pod
//! of the model (and so to its top-level workload), an address no pod
//! holds to the outside world, and anything the snapshot cannot vouch for
//! to "unresolved", never to a guess.

use std::fmt;
use std::net::IpAddr;

use k8s_openapi::jiff::Timestamp;

use super::flows::FlowEnd;
use super::model::{GroupId, Model, WorkloadId};

/// What one end of a flow is, as far as the model can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// A pod of the model: its pod group (and through it, its workload).
    Pod(GroupId),
    /// An address no pod of the snapshot holds, from a source that does
    /// not say it is a pod: outside the cluster.
    External(IpAddr),
    /// The model cannot say which pod it was.
    Unresolved(Unresolved),
}

/// Why an end could not be named.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Unresolved {
    /// The source names a pod the snapshot does not hold (deleted since,
    /// or the snapshot is older).
    PodGone(String),
    /// The source says this end is a pod, and no pod holds its address.
    AddressGone(IpAddr),
    /// The pod holding the address now started after the flow: at the
    /// flow's time the address was another pod's, or no one's.
    Reassigned {
        /// The address.
        ip: IpAddr,
        /// `namespace/name` of the pod holding it now.
        pod: String,
    },
    /// A node's address (hostNetwork pods share it with the node and each
    /// other): no pod or workload can be told.
    NodeAddress(IpAddr),
    /// Neither an address nor a pod name.
    Unnamed,
}

impl fmt::Display for Unresolved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unresolved::PodGone(pod) => {
                write!(f, "pod {pod} is not in the cluster snapshot (gone?)")
            }
            Unresolved::AddressGone(ip) => {
                write!(
                    f,
                    "{ip} was a pod's, and no pod of the snapshot holds it (gone?)"
                )
            }
            Unresolved::Reassigned { ip, pod } => write!(
                f,
                "{ip} is held by pod {pod}, which started after the flow: whose it was then is not knowable"
            ),
            Unresolved::NodeAddress(ip) => write!(
                f,
                "{ip} is a node's address (hostNetwork pods): no workload can be told"
            ),
            Unresolved::Unnamed => f.write_str("the record names neither an address nor a pod"),
        }
    }
}

/// Names `end` of a flow seen at `time`, against `model`. A pod the source
/// names wins over its address (the address may have changed hands since).
pub fn resolve(model: &Model, end: &FlowEnd, time: Option<Timestamp>) -> Resolved {
    let workload = || {
        let (ns, name, kind) = end.workload.as_ref()?;
        model.workload_group(&WorkloadId::new(ns, name, kind))
    };
    if let Some((ns, name)) = &end.pod {
        return match model.pod_group(ns, name).or_else(workload) {
            Some(g) => Resolved::Pod(g),
            None => Resolved::Unresolved(Unresolved::PodGone(format!("{ns}/{name}"))),
        };
    }
    if let Some(g) = workload() {
        return Resolved::Pod(g);
    }
    let Some(ip) = end.ip else {
        return Resolved::Unresolved(Unresolved::Unnamed);
    };
    if end.is_node {
        return Resolved::Unresolved(Unresolved::NodeAddress(ip));
    }
    match model.pod_at(ip) {
        Some((_, _, _, addrs)) if addrs.host_network => {
            Resolved::Unresolved(Unresolved::NodeAddress(ip))
        }
        Some((ns, name, group, addrs)) => {
            let pod = format!("{ns}/{name}");
            if let (Some(t), Some(started)) = (time, addrs.started)
                && t < started
            {
                return Resolved::Unresolved(Unresolved::Reassigned { ip, pod });
            }
            match group {
                Some(g) => Resolved::Pod(g),
                None => Resolved::Unresolved(Unresolved::PodGone(pod)),
            }
        }
        None if end.is_pod => Resolved::Unresolved(Unresolved::AddressGone(ip)),
        None => Resolved::External(ip),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reach::ModelBuilder;
    use k8s_openapi::api::core::v1::Pod;

    fn pod(yaml: &str) -> Pod {
        serde_saphyr::from_str(yaml).unwrap()
    }

    fn at(t: &str) -> Option<Timestamp> {
        Some(t.parse().unwrap())
    }

    /// Address -> pod -> the Deployment that made it (through the
    /// ReplicaSet's owner); an address no pod holds is outside; a pod
    /// named but gone, an address that changed hands after the flow, and a
    /// node's address are unresolved.
    #[test]
    fn ends_resolve_to_workloads_or_say_why_not() {
        let mut b = ModelBuilder::new();
        b.owner(
            crate::reach::Intermediate::ReplicaSet,
            &serde_saphyr::from_str(
                "name: web-5d9\nnamespace: shop\nownerReferences:\n- {apiVersion: apps/v1, kind: Deployment, name: web, uid: d1, controller: true}\n",
            )
            .unwrap(),
        );
        b.pod(&pod("metadata:\n  name: web-5d9-x\n  namespace: shop\n  labels: {app: web}\n  ownerReferences:\n  - {apiVersion: apps/v1, kind: ReplicaSet, name: web-5d9, uid: r1, controller: true}\n\
                    spec: {containers: []}\n\
                    status: {podIP: 10.0.0.5, startTime: '2026-12-01T10:00:00Z'}\n"));
        b.pod(&pod("metadata: {name: agent, namespace: kube-system}\n\
                    spec: {containers: [], hostNetwork: true}\n\
                    status: {podIP: 192.168.1.10}\n"));
        let m = b.build();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let name = |r: Resolved| match r {
            Resolved::Pod(g) => m.workloads[m.group(g).workload as usize].id.to_string(),
            other => format!("{other:?}"),
        };
        let by_ip = FlowEnd::ip(ip("10.0.0.5"));
        assert_eq!(
            name(resolve(&m, &by_ip, at("2026-12-01T11:00:00Z"))),
            "shop/web[Deployment]"
        );
        assert_eq!(name(resolve(&m, &by_ip, None)), "shop/web[Deployment]");
        assert_eq!(
            resolve(&m, &by_ip, at("2026-12-01T09:00:00Z")),
            Resolved::Unresolved(Unresolved::Reassigned {
                ip: ip("10.0.0.5"),
                pod: "shop/web-5d9-x".to_owned()
            })
        );
        let named = FlowEnd {
            pod: Some(("shop".into(), "web-5d9-x".into())),
            ..FlowEnd::default()
        };
        assert_eq!(name(resolve(&m, &named, None)), "shop/web[Deployment]");
        let gone = FlowEnd {
            ip: Some(ip("10.0.0.5")),
            pod: Some(("shop".into(), "web-5d9-old".into())),
            is_pod: true,
            ..FlowEnd::default()
        };
        // Hubble's workload names the Deployment when its pod is gone.
        let replaced = FlowEnd {
            workload: Some(("shop".into(), "web".into(), "Deployment".into())),
            ..gone.clone()
        };
        assert_eq!(name(resolve(&m, &replaced, None)), "shop/web[Deployment]");
        assert_eq!(
            resolve(&m, &gone, None),
            Resolved::Unresolved(Unresolved::PodGone("shop/web-5d9-old".into()))
        );
        assert_eq!(
            resolve(&m, &FlowEnd::ip(ip("8.8.8.8")), None),
            Resolved::External(ip("8.8.8.8"))
        );
        let proxied = FlowEnd {
            is_pod: true,
            ..FlowEnd::ip(ip("10.0.0.9"))
        };
        assert_eq!(
            resolve(&m, &proxied, None),
            Resolved::Unresolved(Unresolved::AddressGone(ip("10.0.0.9")))
        );
        assert_eq!(
            resolve(&m, &FlowEnd::ip(ip("192.168.1.10")), None),
            Resolved::Unresolved(Unresolved::NodeAddress(ip("192.168.1.10")))
        );
        // A pod removed takes its address with it.
        let mut b2 = m.to_builder();
        b2.remove_pod("shop", "web-5d9-x");
        assert_eq!(
            resolve(&b2.build(), &by_ip, None),
            Resolved::External(ip("10.0.0.5"))
        );
    }
}
