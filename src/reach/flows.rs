//! An observed flow, as `simulate verify` reads it from any source (the
//! access proxy's log, Hubble, a plain CSV or JSON export): one type, so
//! that every source is compared with the model the same way.

use std::fmt;
use std::net::IpAddr;

use k8s_openapi::jiff::Timestamp;

use crate::ports::Protocol;

/// One end of a flow: what the source says of it. Sources that know the
/// pod (Hubble) name it; the proxy knows that its own end is a pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlowEnd {
    /// The address, when given.
    pub ip: Option<IpAddr>,
    /// `(namespace, pod name)`, when the source names the pod.
    pub pod: Option<(String, String)>,
    /// The top-level workload `(namespace, name, kind)` the source names
    /// (Hubble's `workloads`): used when the pod itself is not in the
    /// snapshot (a state of workload manifests, or a pod replaced since).
    pub workload: Option<(String, String, String)>,
    /// The source says this end is a pod even without naming it (the
    /// proxy's own end): if no pod of the snapshot holds the address, it
    /// is a pod that is gone, not an address outside the cluster.
    pub is_pod: bool,
    /// The source says this end is a node (Hubble's `reserved:host` and
    /// `reserved:remote-node` identities).
    pub is_node: bool,
}

impl FlowEnd {
    /// An end known only by its address.
    pub fn ip(ip: IpAddr) -> FlowEnd {
        FlowEnd {
            ip: Some(ip),
            ..FlowEnd::default()
        }
    }
}

impl fmt::Display for FlowEnd {
    /// `ns/pod (10.0.0.5)`, `10.0.0.5`, or `ns/pod`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.pod, &self.ip) {
            (Some((ns, name)), Some(ip)) => write!(f, "{ns}/{name} ({ip})"),
            (Some((ns, name)), None) => write!(f, "{ns}/{name}"),
            (None, Some(ip)) => write!(f, "{ip}"),
            (None, None) => f.write_str("(unnamed)"),
        }
    }
}

/// A connection seen: who opened it to whom, on which port of the
/// destination. Replies are not flows (sources drop them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    /// When it was seen, if the source says.
    pub time: Option<Timestamp>,
    /// Who opened it.
    pub src: FlowEnd,
    /// To whom.
    pub dst: FlowEnd,
    /// Its protocol.
    pub protocol: Protocol,
    /// The destination port.
    pub port: u16,
}
