//! Connectivity with the world outside the cluster: for one workload and
//! direction, which addresses get which ports. Overlapping ipBlocks are
//! split by address-set intersection so each piece has uniform
//! connectivity; pieces with equal ports are then joined, so a map has one
//! entry per distinct port set.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::addresses::AddrSet;
use crate::ports::PortSet;

/// Joins address sets that carry equal values into one set per value,
/// ordered by their lowest address (IPv4 first), so output is stable.
fn join<T: Eq + std::hash::Hash>(items: Vec<(AddrSet, T)>) -> Vec<(AddrSet, T)> {
    let mut groups: HashMap<T, AddrSet> = HashMap::new();
    for (a, v) in items {
        let set = groups.entry(v).or_insert_with(AddrSet::none);
        *set = set.union(&a);
    }
    let lowest = |a: &AddrSet| a.ranges().first().map(|r| r.0);
    let mut out: Vec<(AddrSet, T)> = groups.into_iter().map(|(v, a)| (a, v)).collect();
    out.sort_by_cached_key(|(a, _)| lowest(a));
    out
}

/// For one workload and direction: which external addresses get which
/// ports. Entries have disjoint addresses and distinct, non-empty ports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtMap {
    entries: Vec<(AddrSet, PortSet)>,
}

impl ExtMap {
    /// No external connection.
    pub fn none() -> Self {
        Self::default()
    }

    /// Every address (IPv4 and IPv6) on `ports`.
    pub fn everywhere(ports: PortSet) -> Self {
        if ports.is_empty() {
            return Self::none();
        }
        ExtMap {
            entries: vec![(AddrSet::all(), ports)],
        }
    }

    /// The union of overlapping parts: each address gets every port of
    /// every part that holds it.
    pub fn from_parts(parts: &[(AddrSet, PortSet)]) -> Self {
        let parts: Vec<&(AddrSet, PortSet)> = parts
            .iter()
            .filter(|(a, p)| !a.is_empty() && !p.is_empty())
            .collect();
        match parts.as_slice() {
            [] => return Self::none(),
            [one] => {
                return ExtMap {
                    entries: vec![(*one).clone()],
                };
            }
            _ => {}
        }
        // Split what is held so far wherever the next part overlaps it:
        // entries stay disjoint, and each address carries the ports of
        // every part that holds it.
        let mut entries: Vec<(AddrSet, PortSet)> = Vec::new();
        for (addrs, ports) in parts {
            let mut rest = addrs.clone();
            let mut next = Vec::with_capacity(entries.len() + 1);
            for (held, held_ports) in entries {
                let both = held.intersect(&rest);
                if both.is_empty() {
                    next.push((held, held_ports));
                    continue;
                }
                let only = held.subtract(&both);
                if !only.is_empty() {
                    next.push((only, held_ports.clone()));
                }
                rest = rest.subtract(&both);
                next.push((both, held_ports.union(ports)));
            }
            if !rest.is_empty() {
                next.push((rest, ports.clone()));
            }
            entries = next;
        }
        ExtMap {
            entries: join(entries),
        }
    }

    /// Every address of either map gets the ports of both.
    pub fn union(&self, other: &ExtMap) -> ExtMap {
        if other.entries.is_empty() {
            return self.clone();
        }
        if self.entries.is_empty() {
            return other.clone();
        }
        let parts: Vec<(AddrSet, PortSet)> =
            self.entries.iter().chain(&other.entries).cloned().collect();
        ExtMap::from_parts(&parts)
    }

    /// The entries: address sets with their ports.
    pub fn entries(&self) -> &[(AddrSet, PortSet)] {
        &self.entries
    }

    /// The ports `ip` gets.
    pub fn ports_of(&self, ip: IpAddr) -> PortSet {
        self.entries
            .iter()
            .find(|(a, _)| a.contains(ip))
            .map(|(_, p)| p.clone())
            .unwrap_or_default()
    }
}

/// Where two maps differ: address sets with the ports before and after
/// (`None`: no connection), one entry per distinct pair.
pub fn compare(
    before: &ExtMap,
    after: &ExtMap,
) -> Vec<(AddrSet, Option<PortSet>, Option<PortSet>)> {
    if before == after {
        return Vec::new();
    }
    // Both maps' entries are disjoint: every address lies in at most one
    // entry of each, so the pieces are the pairwise overlaps and what
    // each side holds alone.
    let mut diffs = Vec::new();
    for (b_addrs, b_ports) in &before.entries {
        let mut alone = b_addrs.clone();
        for (a_addrs, a_ports) in &after.entries {
            let both = b_addrs.intersect(a_addrs);
            if both.is_empty() {
                continue;
            }
            alone = alone.subtract(&both);
            if b_ports != a_ports {
                diffs.push((both, (Some(b_ports.clone()), Some(a_ports.clone()))));
            }
        }
        if !alone.is_empty() {
            diffs.push((alone, (Some(b_ports.clone()), None)));
        }
    }
    for (a_addrs, a_ports) in &after.entries {
        let alone = before
            .entries
            .iter()
            .fold(a_addrs.clone(), |rest, (b_addrs, _)| rest.subtract(b_addrs));
        if !alone.is_empty() {
            diffs.push((alone, (None, Some(a_ports.clone()))));
        }
    }
    join(diffs)
        .into_iter()
        .map(|(set, (b, a))| (set, b, a))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::Protocol;

    fn set(cidr: &str) -> AddrSet {
        AddrSet::from_cidr(cidr).unwrap()
    }

    fn tcp(port: u16) -> PortSet {
        let mut p = PortSet::none();
        p.insert(Protocol::Tcp, port, port);
        p
    }

    #[test]
    fn overlapping_parts_are_cut_and_joined() {
        let m = ExtMap::from_parts(&[
            (set("0.0.0.0/0").subtract(&set("10.0.0.0/8")), tcp(53)),
            (set("10.0.0.0/8"), tcp(80)),
            (set("10.1.0.0/16"), tcp(53)),
        ]);
        let got: Vec<(String, String)> = m
            .entries()
            .iter()
            .map(|(a, p)| (a.to_string(), p.to_string()))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "0.0.0.0-9.255.255.255,11.0.0.0-255.255.255.255".to_owned(),
                    "TCP 53".to_owned()
                ),
                (
                    "10.0.0.0-10.0.255.255,10.2.0.0-10.255.255.255".to_owned(),
                    "TCP 80".to_owned()
                ),
                ("10.1.0.0-10.1.255.255".to_owned(), "TCP 53,80".to_owned()),
            ]
        );
        assert_eq!(
            m.ports_of("10.1.2.3".parse().unwrap()),
            tcp(53).union(&tcp(80))
        );
        assert!(m.ports_of("::1".parse().unwrap()).is_empty());
    }

    #[test]
    fn the_top_of_each_family_is_kept() {
        let m = ExtMap::from_parts(&[
            (AddrSet::all(), tcp(1)),
            (set("255.255.255.255/32"), tcp(2)),
        ]);
        assert_eq!(
            m.ports_of("255.255.255.255".parse().unwrap()),
            tcp(1).union(&tcp(2))
        );
        assert_eq!(
            m.ports_of("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap()),
            tcp(1)
        );
        assert_eq!(
            ExtMap::everywhere(tcp(1)).union(&ExtMap::none()),
            ExtMap::everywhere(tcp(1))
        );
    }

    #[test]
    fn compare_reports_only_differences() {
        let before = ExtMap::everywhere(tcp(80));
        let after = ExtMap::from_parts(&[(set("0.0.0.0/1"), tcp(80)), (set("::/0"), tcp(80))]);
        let d = compare(&before, &after);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].0, set("128.0.0.0/1"));
        assert_eq!(d[0].1, Some(tcp(80)));
        assert_eq!(d[0].2, None);
        assert!(compare(&after, &after).is_empty());
    }
}
