//! Connectivity with the world outside the cluster: for one workload and
//! direction, which addresses get which ports. The address space is cut
//! wherever an ipBlock (or its `except`) starts or ends, so each piece has
//! uniform connectivity; pieces with equal ports are then joined, so a
//! map has one entry per distinct port set.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::addresses::AddrSet;
use crate::ports::PortSet;

/// A piece of address space: family (4 or 6) and an inclusive range of
/// addresses as integers.
type Piece = (u8, u128, u128);

fn pieces(set: &AddrSet) -> Vec<Piece> {
    set.ranges()
        .into_iter()
        .map(|(s, e)| match (s, e) {
            (IpAddr::V4(s), IpAddr::V4(e)) => {
                (4, u128::from(u32::from(s)), u128::from(u32::from(e)))
            }
            (IpAddr::V6(s), IpAddr::V6(e)) => (6, u128::from(s), u128::from(e)),
            // AddrSet::ranges never mixes families in one range.
            _ => (0, 1, 0),
        })
        .filter(|p| p.0 != 0)
        .collect()
}

fn to_set(p: Piece) -> AddrSet {
    let ip = |v: u128| -> IpAddr {
        if p.0 == 4 {
            IpAddr::V4(Ipv4Addr::from(v as u32))
        } else {
            IpAddr::V6(Ipv6Addr::from(v))
        }
    };
    AddrSet::from_range(ip(p.1), ip(p.2)).unwrap_or_default()
}

/// The address space cut at every boundary of every input: each returned
/// piece lies wholly inside or wholly outside each input, and comes with
/// the indexes of the inputs holding it. Pieces no input holds are left
/// out.
fn cut(inputs: &[Vec<Piece>]) -> Vec<(Piece, Vec<usize>)> {
    let mut out = Vec::new();
    for fam in [4u8, 6] {
        let mut bounds: Vec<u128> = Vec::new();
        let mut reaches_top = false;
        for input in inputs {
            for &(f, s, e) in input {
                if f != fam {
                    continue;
                }
                bounds.push(s);
                match e.checked_add(1) {
                    Some(next) if fam == 6 || next <= u128::from(u32::MAX) => bounds.push(next),
                    _ => reaches_top = true,
                }
            }
        }
        bounds.sort_unstable();
        bounds.dedup();
        let top = if fam == 4 {
            u128::from(u32::MAX)
        } else {
            u128::MAX
        };
        for (i, &start) in bounds.iter().enumerate() {
            let end = match bounds.get(i + 1) {
                Some(next) => next - 1,
                None if reaches_top => top,
                None => continue,
            };
            let holders: Vec<usize> = inputs
                .iter()
                .enumerate()
                .filter(|(_, ps)| contains(ps, fam, start))
                .map(|(i, _)| i)
                .collect();
            if !holders.is_empty() {
                out.push(((fam, start, end), holders));
            }
        }
    }
    out
}

fn contains(pieces: &[Piece], fam: u8, addr: u128) -> bool {
    pieces
        .iter()
        .any(|&(f, s, e)| f == fam && s <= addr && addr <= e)
}

/// Joins pieces that carry equal values into one address set per value,
/// in the order values first appear (pieces come sorted, IPv4 first).
fn join<T: Eq + std::hash::Hash + Clone>(pieces: Vec<(Piece, T)>) -> Vec<(AddrSet, T)> {
    let mut order: Vec<T> = Vec::new();
    let mut groups: HashMap<T, Vec<Piece>> = HashMap::new();
    for (p, v) in pieces {
        groups
            .entry(v.clone())
            .or_insert_with(|| {
                order.push(v);
                Vec::new()
            })
            .push(p);
    }
    order
        .into_iter()
        .map(|v| {
            let ps = groups.remove(&v).unwrap_or_default();
            let set = ps
                .into_iter()
                .fold(AddrSet::none(), |acc, p| acc.union(&to_set(p)));
            (set, v)
        })
        .collect()
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
        let inputs: Vec<Vec<Piece>> = parts.iter().map(|(a, _)| pieces(a)).collect();
        let cut = cut(&inputs)
            .into_iter()
            .map(|(piece, holders)| {
                let ports = holders
                    .iter()
                    .fold(PortSet::none(), |acc, &i| acc.union(&parts[i].1));
                (piece, ports)
            })
            .collect();
        ExtMap { entries: join(cut) }
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
    let nb = before.entries.len();
    let inputs: Vec<Vec<Piece>> = before
        .entries
        .iter()
        .chain(&after.entries)
        .map(|(a, _)| pieces(a))
        .collect();
    let diffs = cut(&inputs)
        .into_iter()
        .filter_map(|(piece, holders)| {
            let b = holders
                .iter()
                .find(|&&i| i < nb)
                .map(|&i| before.entries[i].1.clone());
            let a = holders
                .iter()
                .find(|&&i| i >= nb)
                .map(|&i| after.entries[i - nb].1.clone());
            (b != a).then_some((piece, (b, a)))
        })
        .collect();
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
