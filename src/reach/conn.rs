//! What simulation reports: connections between endpoints (workloads and
//! ranges of external addresses) with the ports they allow, and changes
//! of them.

use std::cmp::Ordering;
use std::fmt;
use std::net::IpAddr;

use super::model::WorkloadId;
use crate::addresses::AddrSet;
use crate::ports::PortSet;

/// One end of a connection.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// The pods of a workload.
    Workload(WorkloadId),
    /// Addresses outside the cluster.
    External(AddrSet),
}

impl Endpoint {
    /// The workload, if this end is one.
    pub fn workload(&self) -> Option<&WorkloadId> {
        match self {
            Endpoint::Workload(w) => Some(w),
            Endpoint::External(_) => None,
        }
    }

    /// The external ranges as the JSON contract writes them: a CIDR when a
    /// range is exactly one, else `first-last`; IPv4 first.
    pub fn external_ranges(set: &AddrSet) -> Vec<String> {
        set.ranges()
            .into_iter()
            .map(|(s, e)| range_text(s, e))
            .collect()
    }
}

fn range_text(s: IpAddr, e: IpAddr) -> String {
    match AddrSet::from_range(s, e).map(|r| r.cidrs()) {
        Some(c) if c.len() == 1 => c[0].clone(),
        _ => format!("{s}-{e}"),
    }
}

impl fmt::Display for Endpoint {
    /// `ns/name[Kind]`, or `0.0.0.0/5,10.0.0.0-10.255.255.255[External]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Workload(w) => w.fmt(f),
            Endpoint::External(a) => {
                write!(f, "{}[External]", Endpoint::external_ranges(a).join(","))
            }
        }
    }
}

impl PartialOrd for Endpoint {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Endpoint {
    /// Workloads first (by id), then external sets by their first address.
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Endpoint::Workload(a), Endpoint::Workload(b)) => a.cmp(b),
            (Endpoint::Workload(_), Endpoint::External(_)) => Ordering::Less,
            (Endpoint::External(_), Endpoint::Workload(_)) => Ordering::Greater,
            (Endpoint::External(a), Endpoint::External(b)) => a.ranges().cmp(&b.ranges()),
        }
    }
}

/// An allowed connection: `src` may open connections to `dst` on `ports`
/// (ports of the destination).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Conn {
    /// Who connects.
    pub src: Endpoint,
    /// To whom.
    pub dst: Endpoint,
    /// On which ports (never empty).
    pub ports: PortSet,
}

impl fmt::Display for Conn {
    /// `src => dst : ports`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} => {} : {}", self.src, self.dst, self.ports)
    }
}

/// A connection that differs between two states.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Change {
    /// Who connects.
    pub src: Endpoint,
    /// To whom.
    pub dst: Endpoint,
    /// Ports before (`None`: no connection).
    pub before: Option<PortSet>,
    /// Ports after (`None`: no connection).
    pub after: Option<PortSet>,
}

impl Change {
    /// `added`, `removed` or `changed`.
    pub fn kind(&self) -> &'static str {
        match (&self.before, &self.after) {
            (None, Some(_)) => "added",
            (Some(_), None) => "removed",
            _ => "changed",
        }
    }

    /// Ports allowed after that were not before.
    pub fn opened(&self) -> PortSet {
        match (&self.before, &self.after) {
            (_, None) => PortSet::none(),
            (None, Some(a)) => a.clone(),
            (Some(b), Some(a)) => a.subtract(b),
        }
    }

    /// Ports allowed before that are not after.
    pub fn closed(&self) -> PortSet {
        match (&self.before, &self.after) {
            (None, _) => PortSet::none(),
            (Some(b), None) => b.clone(),
            (Some(b), Some(a)) => b.subtract(a),
        }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let side = |p: &Option<PortSet>| match p {
            Some(p) => p.to_string(),
            None => "no connection".to_owned(),
        };
        write!(
            f,
            "{} => {} : {} -> {}",
            self.src,
            self.dst,
            side(&self.before),
            side(&self.after)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_ranges_prefer_cidrs() {
        let s = AddrSet::from_cidr("0.0.0.0/0")
            .unwrap()
            .subtract(&AddrSet::from_cidr("10.0.0.0/8").unwrap())
            .subtract(&AddrSet::from_cidr("172.16.0.0/12").unwrap())
            .union(&AddrSet::from_cidr("::/0").unwrap());
        assert_eq!(
            Endpoint::external_ranges(&s),
            vec![
                "0.0.0.0-9.255.255.255",
                "11.0.0.0-172.15.255.255",
                "172.32.0.0-255.255.255.255",
                "::/0"
            ]
        );
        assert_eq!(
            Endpoint::External(AddrSet::from_cidr("0.0.0.0/5").unwrap()).to_string(),
            "0.0.0.0/5[External]"
        );
    }

    #[test]
    fn endpoints_sort_workloads_first() {
        let w = Endpoint::Workload(WorkloadId::new("a", "b", "Pod"));
        let e = Endpoint::External(AddrSet::all());
        assert!(w < e);
    }
}
