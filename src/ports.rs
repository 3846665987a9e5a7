//! Ports and protocols as NetworkPolicy rules name them: sets of port ranges
//! per protocol, and a rule's `ports` list before and after named ports are
//! resolved against the destination's containers.

use std::fmt;
use std::str::FromStr;

use k8s_openapi::api::networking::v1::NetworkPolicyPort;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::intervals::IntervalSet;

/// The protocols NetworkPolicy knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Protocol {
    /// TCP, the default when a port names no protocol.
    #[serde(rename = "TCP")]
    Tcp,
    /// UDP.
    #[serde(rename = "UDP")]
    Udp,
    /// SCTP.
    #[serde(rename = "SCTP")]
    Sctp,
}

impl Protocol {
    /// Every protocol, in the order Kubernetes tools print them.
    pub const ALL: [Protocol; 3] = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp];

    /// The name as Kubernetes spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Protocol {
    type Err = PortError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "TCP" | "tcp" => Ok(Protocol::Tcp),
            "UDP" | "udp" => Ok(Protocol::Udp),
            "SCTP" | "sctp" => Ok(Protocol::Sctp),
            other => Err(PortError::UnknownProtocol(other.to_owned())),
        }
    }
}

/// A port entry Kubernetes would reject.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PortError {
    /// Not TCP, UDP or SCTP.
    #[error("unknown protocol {0:?} (expected TCP, UDP or SCTP)")]
    UnknownProtocol(String),
    /// Outside 1-65535.
    #[error("port {0} is outside 1-65535")]
    OutOfRange(i64),
    /// `endPort` below `port`, or given without a numeric `port`.
    #[error("endPort {end} is invalid for port {port}")]
    BadEndPort {
        /// The port as written.
        port: String,
        /// The endPort as written.
        end: i64,
    },
}

/// The lowest and highest port number.
pub const MIN_PORT: u16 = 1;
/// The highest port number.
pub const MAX_PORT: u16 = 65535;

/// A sorted set of disjoint, non-adjacent inclusive port ranges within
/// 1-65535.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct RangeSet(IntervalSet<u16>);

impl RangeSet {
    /// Every port 1-65535.
    pub fn all() -> Self {
        RangeSet(IntervalSet::range(MIN_PORT, MAX_PORT))
    }

    /// The ranges, sorted.
    pub fn ranges(&self) -> &[(u16, u16)] {
        self.0.ranges()
    }

    /// No port.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every port 1-65535.
    pub fn is_all(&self) -> bool {
        self.0.ranges() == [(MIN_PORT, MAX_PORT)]
    }

    /// Adds `start..=end` (port 0 does not exist and is left out).
    pub fn insert(&mut self, start: u16, end: u16) {
        self.0.insert(start.max(MIN_PORT), end);
    }

    /// Does the set hold `port`?
    pub fn contains(&self, port: u16) -> bool {
        self.0.contains(port)
    }

    /// The union of two sets.
    pub fn union(&self, other: &RangeSet) -> RangeSet {
        RangeSet(self.0.union(&other.0))
    }

    /// The ports in both sets.
    pub fn intersect(&self, other: &RangeSet) -> RangeSet {
        RangeSet(self.0.intersect(&other.0))
    }

    /// The ports of `self` not in `other`.
    pub fn subtract(&self, other: &RangeSet) -> RangeSet {
        RangeSet(self.0.subtract(&other.0))
    }
}

impl fmt::Display for RangeSet {
    /// `80,8080-8090`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::intervals::write_ranges(f, self.ranges())
    }
}

/// A set of ports per protocol.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct PortSet([RangeSet; 3]);

impl PortSet {
    /// No port of any protocol.
    pub fn none() -> Self {
        Self::default()
    }

    /// Every port of TCP, UDP and SCTP.
    pub fn all() -> Self {
        PortSet([RangeSet::all(), RangeSet::all(), RangeSet::all()])
    }

    /// The ranges of one protocol.
    pub fn get(&self, protocol: Protocol) -> &RangeSet {
        &self.0[protocol.index()]
    }

    /// Adds `start..=end` of `protocol`.
    pub fn insert(&mut self, protocol: Protocol, start: u16, end: u16) {
        self.0[protocol.index()].insert(start, end);
    }

    /// Adds every port of `protocol`.
    pub fn insert_protocol(&mut self, protocol: Protocol) {
        self.0[protocol.index()] = RangeSet::all();
    }

    /// No port at all.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(RangeSet::is_empty)
    }

    /// Every port of every protocol.
    pub fn is_all(&self) -> bool {
        self.0.iter().all(RangeSet::is_all)
    }

    /// Does the set admit `port`/`protocol`?
    pub fn contains(&self, protocol: Protocol, port: u16) -> bool {
        self.get(protocol).contains(port)
    }

    /// The union of two sets.
    pub fn union(&self, other: &PortSet) -> PortSet {
        PortSet(std::array::from_fn(|i| self.0[i].union(&other.0[i])))
    }

    /// The ports in both sets.
    pub fn intersect(&self, other: &PortSet) -> PortSet {
        PortSet(std::array::from_fn(|i| self.0[i].intersect(&other.0[i])))
    }

    /// The ports of `self` not in `other`.
    pub fn subtract(&self, other: &PortSet) -> PortSet {
        PortSet(std::array::from_fn(|i| self.0[i].subtract(&other.0[i])))
    }

    /// Is every port of `self` also in `other`?
    pub fn is_subset(&self, other: &PortSet) -> bool {
        self.subtract(other).is_empty()
    }

    /// Protocols with at least one port, with their ranges.
    pub fn by_protocol(&self) -> impl Iterator<Item = (Protocol, &RangeSet)> {
        Protocol::ALL
            .into_iter()
            .map(|p| (p, self.get(p)))
            .filter(|(_, r)| !r.is_empty())
    }
}

impl fmt::Display for PortSet {
    /// `all ports`, `no ports`, or `TCP 80,8080-8090; UDP 53`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_all() {
            return f.write_str("all ports");
        }
        if self.is_empty() {
            return f.write_str("no ports");
        }
        for (i, (p, r)) in self.by_protocol().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            if r.is_all() {
                write!(f, "{p} (all)")?;
            } else {
                write!(f, "{p} {r}")?;
            }
        }
        Ok(())
    }
}

/// A container port a named port may refer to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContainerPort {
    /// `ports[].name`, if any.
    pub name: Option<String>,
    /// `ports[].protocol` (TCP when absent).
    pub protocol: Protocol,
    /// `ports[].containerPort`.
    pub port: u16,
}

/// The `ports` of one rule, as written: numbers and ranges are known now,
/// names only against a destination's containers. A NetworkPolicy names a
/// port with its protocol; the cluster-wide policy API names it alone
/// (`namedPort`, `destinationNamedPort`), and the container port of that
/// name decides the protocol.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct RulePorts {
    numeric: PortSet,
    named: Vec<(Option<Protocol>, String)>,
}

impl RulePorts {
    /// A rule without `ports`: every port of every protocol.
    pub fn all() -> Self {
        RulePorts {
            numeric: PortSet::all(),
            named: Vec::new(),
        }
    }

    /// Reads a rule's `ports`. Absent or empty means every port; an entry
    /// without `protocol` is TCP; without `port`, every port of its
    /// protocol; `endPort` extends a numeric port into a range.
    pub fn from_k8s(ports: Option<&[NetworkPolicyPort]>) -> Result<Self, PortError> {
        let ports = match ports {
            None | Some([]) => return Ok(RulePorts::all()),
            Some(p) => p,
        };
        let mut out = RulePorts::default();
        for entry in ports {
            let protocol = entry
                .protocol
                .as_deref()
                .map(str::parse)
                .transpose()?
                .unwrap_or(Protocol::Tcp);
            match &entry.port {
                None => out.numeric.insert_protocol(protocol),
                Some(IntOrString::Int(n)) => {
                    let start = port_number(i64::from(*n))?;
                    let end = match entry.end_port {
                        None => start,
                        Some(e) => {
                            let end = port_number(i64::from(e))?;
                            if end < start {
                                return Err(PortError::BadEndPort {
                                    port: n.to_string(),
                                    end: i64::from(e),
                                });
                            }
                            end
                        }
                    };
                    out.numeric.insert(protocol, start, end);
                }
                Some(IntOrString::String(name)) => {
                    if let Some(e) = entry.end_port {
                        return Err(PortError::BadEndPort {
                            port: name.clone(),
                            end: i64::from(e),
                        });
                    }
                    // The API server only accepts a string that is a port
                    // name, but files read offline may quote a number.
                    match name.parse::<i64>() {
                        Ok(n) => {
                            let p = port_number(n)?;
                            out.numeric.insert(protocol, p, p);
                        }
                        Err(_) => out.named.push((Some(protocol), name.clone())),
                    }
                }
            }
        }
        Ok(out)
    }

    /// Ports given as numbers and ranges (`numeric`) and as container port
    /// names of any protocol (`names`): how the cluster-wide policy API
    /// writes them.
    pub fn from_parts(numeric: PortSet, names: impl IntoIterator<Item = String>) -> Self {
        RulePorts {
            numeric,
            named: names.into_iter().map(|n| (None, n)).collect(),
        }
    }

    /// True when the rule admits every port of TCP, UDP and SCTP whatever
    /// the destination: named ports never count, as they cover only what a
    /// destination happens to name.
    pub fn covers_all(&self) -> bool {
        self.numeric.is_all()
    }

    /// The numeric part.
    pub fn numeric(&self) -> &PortSet {
        &self.numeric
    }

    /// The named ports, with their protocol (`None`: whichever protocol
    /// the container port of that name has).
    pub fn named(&self) -> &[(Option<Protocol>, String)] {
        &self.named
    }

    /// The ports admitted on a destination with these container ports: a
    /// named port resolves to the containerPort of that name (and protocol,
    /// when the rule gives one), and to nothing when the destination has no
    /// such port.
    pub fn resolve(&self, destination: &[ContainerPort]) -> PortSet {
        let mut out = self.numeric.clone();
        for (protocol, name) in &self.named {
            for cp in destination {
                if protocol.is_none_or(|p| p == cp.protocol)
                    && cp.name.as_deref() == Some(name.as_str())
                {
                    out.insert(cp.protocol, cp.port, cp.port);
                }
            }
        }
        out
    }
}

impl fmt::Display for RulePorts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.named.is_empty() {
            return self.numeric.fmt(f);
        }
        if !self.numeric.is_empty() {
            write!(f, "{}; ", self.numeric)?;
        }
        let names: Vec<String> = self
            .named
            .iter()
            .map(|(p, n)| match p {
                Some(p) => format!("{p} {n}"),
                None => n.clone(),
            })
            .collect();
        write!(f, "named {}", names.join(", "))
    }
}

fn port_number(n: i64) -> Result<u16, PortError> {
    u16::try_from(n)
        .ok()
        .filter(|p| *p >= MIN_PORT)
        .ok_or(PortError::OutOfRange(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(
        protocol: Option<&str>,
        port: Option<IntOrString>,
        end: Option<i32>,
    ) -> NetworkPolicyPort {
        NetworkPolicyPort {
            protocol: protocol.map(str::to_owned),
            port,
            end_port: end,
        }
    }

    #[test]
    fn range_set_merges_and_subtracts() {
        let mut r = RangeSet::default();
        r.insert(80, 80);
        r.insert(8080, 8090);
        r.insert(81, 81);
        r.insert(8091, 9000);
        assert_eq!(r.ranges(), &[(80, 81), (8080, 9000)]);
        assert_eq!(r.to_string(), "80-81,8080-9000");
        let hole = RangeSet::all().subtract(&r);
        assert_eq!(hole.ranges(), &[(1, 79), (82, 8079), (9001, 65535)]);
        assert!(hole.union(&r).is_all());
        assert!(hole.intersect(&r).is_empty());
        assert_eq!(
            r.intersect(&RangeSet(IntervalSet::range(81, 8085)))
                .ranges(),
            &[(81, 81), (8080, 8085)]
        );
    }

    /// "All ports": a rule with no ports, or ports that cover every port
    /// (1-65535) of TCP, UDP and SCTP; a port without protocol is TCP.
    #[test]
    fn covers_all_truth_table() {
        use IntOrString::{Int, String as Name};
        let cases: Vec<(&str, Option<Vec<NetworkPolicyPort>>, bool)> = vec![
            ("no ports key", None, true),
            ("ports: []", Some(vec![]), true),
            (
                "TCP only (protocol defaulted)",
                Some(vec![port(None, None, None)]),
                false,
            ),
            (
                "TCP, UDP, SCTP without port",
                Some(vec![
                    port(Some("TCP"), None, None),
                    port(Some("UDP"), None, None),
                    port(Some("SCTP"), None, None),
                ]),
                true,
            ),
            (
                "three protocols by endPort 1-65535",
                Some(vec![
                    port(None, Some(Int(1)), Some(65535)),
                    port(Some("UDP"), Some(Int(1)), Some(65535)),
                    port(Some("SCTP"), Some(Int(1)), Some(65535)),
                ]),
                true,
            ),
            (
                "split ranges that meet",
                Some(vec![
                    port(None, Some(Int(1)), Some(1000)),
                    port(None, Some(Int(1001)), Some(65535)),
                    port(Some("UDP"), None, None),
                    port(Some("SCTP"), None, None),
                ]),
                true,
            ),
            (
                "a gap at 65535",
                Some(vec![
                    port(None, Some(Int(1)), Some(65534)),
                    port(Some("UDP"), None, None),
                    port(Some("SCTP"), None, None),
                ]),
                false,
            ),
            (
                "SCTP missing",
                Some(vec![
                    port(Some("TCP"), None, None),
                    port(Some("UDP"), None, None),
                ]),
                false,
            ),
            (
                "one port",
                Some(vec![port(None, Some(Int(443)), None)]),
                false,
            ),
            (
                "a named port",
                Some(vec![port(None, Some(Name("http".into())), None)]),
                false,
            ),
        ];
        for (name, ports, all) in cases {
            let rp = RulePorts::from_k8s(ports.as_deref()).unwrap();
            assert_eq!(rp.covers_all(), all, "{name}");
        }
    }

    #[test]
    fn named_ports_resolve_against_the_destination() {
        let rp = RulePorts::from_k8s(Some(&[
            port(None, Some(IntOrString::String("http".into())), None),
            port(Some("UDP"), Some(IntOrString::String("dns".into())), None),
            port(None, Some(IntOrString::Int(9090)), None),
        ]))
        .unwrap();
        let dst = [
            ContainerPort {
                name: Some("http".into()),
                protocol: Protocol::Tcp,
                port: 8080,
            },
            ContainerPort {
                name: Some("dns".into()),
                protocol: Protocol::Tcp,
                port: 53,
            },
        ];
        let got = rp.resolve(&dst);
        assert!(got.contains(Protocol::Tcp, 8080));
        assert!(got.contains(Protocol::Tcp, 9090));
        assert!(
            !got.contains(Protocol::Tcp, 53),
            "dns is TCP on the container, UDP in the rule"
        );
        assert!(!got.contains(Protocol::Udp, 53));
        assert_eq!(got.to_string(), "TCP 8080,9090");
        assert_eq!(rp.to_string(), "TCP 9090; named TCP http, UDP dns");
    }

    #[test]
    fn invalid_ports_are_errors() {
        use IntOrString::{Int, String as Name};
        assert_eq!(
            RulePorts::from_k8s(Some(&[port(Some("ICMP"), None, None)])).unwrap_err(),
            PortError::UnknownProtocol("ICMP".into())
        );
        assert_eq!(
            RulePorts::from_k8s(Some(&[port(None, Some(Int(70000)), None)])).unwrap_err(),
            PortError::OutOfRange(70000)
        );
        assert!(matches!(
            RulePorts::from_k8s(Some(&[port(None, Some(Int(90)), Some(80))])).unwrap_err(),
            PortError::BadEndPort { .. }
        ));
        assert!(matches!(
            RulePorts::from_k8s(Some(&[port(None, Some(Name("http".into())), Some(80))]))
                .unwrap_err(),
            PortError::BadEndPort { .. }
        ));
    }
}
