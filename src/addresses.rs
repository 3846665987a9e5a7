//! Address ranges outside the cluster, as `ipBlock` peers name them: sets of
//! IPv4 and IPv6 addresses that CIDRs and their `except` lists carve.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use thiserror::Error;

use crate::intervals::IntervalSet;

/// A CIDR that does not parse.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("invalid CIDR {cidr:?}: {reason}")]
pub struct CidrError {
    /// The text as written.
    pub cidr: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// The addresses of one family as integers (IPv4 in the low 32 bits).
type Ranges = IntervalSet<u128>;

const V4_MAX: u128 = u32::MAX as u128;

/// A set of IPv4 and IPv6 addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct AddrSet {
    v4: Ranges,
    v6: Ranges,
}

impl AddrSet {
    /// No address.
    pub fn none() -> Self {
        Self::default()
    }

    /// Every IPv4 and every IPv6 address.
    pub fn all() -> Self {
        AddrSet {
            v4: Ranges::range(0, V4_MAX),
            v6: Ranges::range(0, u128::MAX),
        }
    }

    /// The addresses of one CIDR (`10.0.0.0/8`, `::/0`). Host bits below the
    /// prefix are ignored, as the kernel does when it masks a route.
    pub fn from_cidr(cidr: &str) -> Result<Self, CidrError> {
        let err = |reason| CidrError {
            cidr: cidr.to_owned(),
            reason,
        };
        let (addr, prefix) = cidr.split_once('/').ok_or(err("missing /prefix"))?;
        let addr: IpAddr = addr.trim().parse().map_err(|_| err("not an IP address"))?;
        let prefix: u32 = prefix
            .trim()
            .parse()
            .map_err(|_| err("prefix is not a number"))?;
        let mut out = AddrSet::none();
        match addr {
            IpAddr::V4(a) => {
                if prefix > 32 {
                    return Err(err("IPv4 prefix above 32"));
                }
                let (s, e) = block(u128::from(u32::from(a)), 32, prefix);
                out.v4.insert(s, e);
            }
            IpAddr::V6(a) => {
                if prefix > 128 {
                    return Err(err("IPv6 prefix above 128"));
                }
                let (s, e) = block(u128::from(a), 128, prefix);
                out.v6.insert(s, e);
            }
        }
        Ok(out)
    }

    /// One address.
    pub fn from_ip(ip: IpAddr) -> Self {
        let mut out = AddrSet::none();
        match ip {
            IpAddr::V4(a) => out
                .v4
                .insert(u128::from(u32::from(a)), u128::from(u32::from(a))),
            IpAddr::V6(a) => out.v6.insert(u128::from(a), u128::from(a)),
        }
        out
    }

    /// The addresses from `start` to `end` inclusive; `None` when the two
    /// are of different families or `start` is above `end`.
    pub fn from_range(start: IpAddr, end: IpAddr) -> Option<Self> {
        let mut out = AddrSet::none();
        match (start, end) {
            (IpAddr::V4(s), IpAddr::V4(e)) if s <= e => out
                .v4
                .insert(u128::from(u32::from(s)), u128::from(u32::from(e))),
            (IpAddr::V6(s), IpAddr::V6(e)) if s <= e => out.v6.insert(u128::from(s), u128::from(e)),
            _ => return None,
        }
        Some(out)
    }

    /// No address at all.
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// Holds every IPv4 address (`0.0.0.0/0`).
    pub fn is_all_v4(&self) -> bool {
        self.v4.ranges() == [(0, V4_MAX)]
    }

    /// Holds every IPv6 address (`::/0`).
    pub fn is_all_v6(&self) -> bool {
        self.v6.ranges() == [(0, u128::MAX)]
    }

    /// Holds every address of both families.
    pub fn is_all(&self) -> bool {
        self.is_all_v4() && self.is_all_v6()
    }

    /// Does the set hold `ip`?
    pub fn contains(&self, ip: IpAddr) -> bool {
        !self.intersect(&AddrSet::from_ip(ip)).is_empty()
    }

    /// The union of two sets.
    pub fn union(&self, other: &AddrSet) -> AddrSet {
        AddrSet {
            v4: self.v4.union(&other.v4),
            v6: self.v6.union(&other.v6),
        }
    }

    /// Addresses in both sets.
    pub fn intersect(&self, other: &AddrSet) -> AddrSet {
        AddrSet {
            v4: self.v4.intersect(&other.v4),
            v6: self.v6.intersect(&other.v6),
        }
    }

    /// Addresses of `self` not in `other`.
    pub fn subtract(&self, other: &AddrSet) -> AddrSet {
        AddrSet {
            v4: self.v4.subtract(&other.v4),
            v6: self.v6.subtract(&other.v6),
        }
    }

    /// Only the IPv4 part.
    pub fn v4_only(&self) -> AddrSet {
        AddrSet {
            v4: self.v4.clone(),
            v6: Ranges::default(),
        }
    }

    /// Inclusive ranges as printable pairs, IPv4 first.
    pub fn ranges(&self) -> Vec<(IpAddr, IpAddr)> {
        let v4 = self.v4.ranges().iter().map(|&(s, e)| {
            (
                IpAddr::V4(Ipv4Addr::from(s as u32)),
                IpAddr::V4(Ipv4Addr::from(e as u32)),
            )
        });
        let v6 = self
            .v6
            .ranges()
            .iter()
            .map(|&(s, e)| (IpAddr::V6(Ipv6Addr::from(s)), IpAddr::V6(Ipv6Addr::from(e))));
        v4.chain(v6).collect()
    }

    /// The set as minimal CIDRs, IPv4 first (`0.0.0.0/5`, `10.0.0.0/8`).
    pub fn cidrs(&self) -> Vec<String> {
        let mut out = Vec::new();
        for &(s, e) in self.v4.ranges() {
            for (base, prefix) in split_cidrs(s, e, 32) {
                out.push(format!("{}/{prefix}", Ipv4Addr::from(base as u32)));
            }
        }
        for &(s, e) in self.v6.ranges() {
            for (base, prefix) in split_cidrs(s, e, 128) {
                out.push(format!("{}/{prefix}", Ipv6Addr::from(base)));
            }
        }
        out
    }
}

impl fmt::Display for AddrSet {
    /// Ranges as `a-b`, CIDR-free so that any cut reads the same way.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ranges = self.ranges();
        if ranges.is_empty() {
            return f.write_str("no addresses");
        }
        crate::intervals::write_ranges(f, &ranges)
    }
}

/// The inclusive range of a `bits`-wide address masked to `prefix`.
fn block(addr: u128, bits: u32, prefix: u32) -> (u128, u128) {
    let host_bits = bits - prefix;
    let host_mask = if host_bits >= 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    };
    let start = addr & !host_mask;
    (start, start | host_mask)
}

/// Splits `start..=end` into the fewest CIDR blocks.
fn split_cidrs(start: u128, end: u128, bits: u32) -> Vec<(u128, u32)> {
    let mut out = Vec::new();
    let mut cur = start;
    loop {
        // The largest block aligned at `cur` that stays within `end`.
        let align = if cur == 0 {
            bits
        } else {
            cur.trailing_zeros().min(bits)
        };
        let mut size_bits = align;
        while size_bits > 0 {
            let last = if size_bits >= 128 {
                u128::MAX
            } else {
                cur | ((1u128 << size_bits) - 1)
            };
            if last <= end {
                break;
            }
            size_bits -= 1;
        }
        out.push((cur, bits - size_bits));
        let last = if size_bits >= 128 {
            u128::MAX
        } else {
            cur | ((1u128 << size_bits) - 1)
        };
        if last >= end {
            break;
        }
        cur = last + 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(cidr: &str) -> AddrSet {
        AddrSet::from_cidr(cidr).unwrap()
    }

    #[test]
    fn whole_families() {
        assert!(set("0.0.0.0/0").is_all_v4());
        assert!(!set("0.0.0.0/0").is_all_v6());
        assert!(set("::/0").is_all_v6());
        assert!(!set("0.0.0.0/1").is_all_v4());
        assert!(set("0.0.0.0/1").union(&set("128.0.0.0/1")).is_all_v4());
        assert!(
            !set("0.0.0.0/0")
                .subtract(&set("169.254.169.254/32"))
                .is_all_v4()
        );
        assert!(AddrSet::all().is_all());
    }

    #[test]
    fn except_carves_holes() {
        let s = set("10.0.0.0/8").subtract(&set("10.1.0.0/16"));
        assert_eq!(
            s.to_string(),
            "10.0.0.0-10.0.255.255,10.2.0.0-10.255.255.255"
        );
        assert_eq!(
            s.cidrs(),
            vec![
                "10.0.0.0/16",
                "10.2.0.0/15",
                "10.4.0.0/14",
                "10.8.0.0/13",
                "10.16.0.0/12",
                "10.32.0.0/11",
                "10.64.0.0/10",
                "10.128.0.0/9"
            ]
        );
        assert!(s.contains("10.0.0.1".parse().unwrap()));
        assert!(!s.contains("10.1.2.3".parse().unwrap()));
        assert_eq!(set("0.0.0.0/0").cidrs(), vec!["0.0.0.0/0"]);
        assert_eq!(set("::/0").cidrs(), vec!["::/0"]);
    }

    #[test]
    fn host_bits_are_masked_and_bad_cidrs_rejected() {
        assert_eq!(set("10.1.2.3/8"), set("10.0.0.0/8"));
        assert!(AddrSet::from_cidr("10.0.0.0").is_err());
        assert!(AddrSet::from_cidr("10.0.0.0/33").is_err());
        assert!(AddrSet::from_cidr("nope/8").is_err());
        assert!(AddrSet::from_cidr("::1/129").is_err());
    }

    #[test]
    fn ranges_round_trip() {
        let s = set("10.0.0.0/8").subtract(&set("10.1.0.0/16"));
        let back = s
            .ranges()
            .into_iter()
            .map(|(a, b)| AddrSet::from_range(a, b).unwrap())
            .fold(AddrSet::none(), |acc, r| acc.union(&r));
        assert_eq!(back, s);
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        let v6: IpAddr = "::1".parse().unwrap();
        assert_eq!(AddrSet::from_range(v4, v6), None);
        assert_eq!(AddrSet::from_range(v4, "10.0.0.0".parse().unwrap()), None);
        assert_eq!(AddrSet::from_range(v6, v6), Some(AddrSet::from_ip(v6)));
    }

    #[test]
    fn ipv6_ranges() {
        let s = set("2001:db8::/32").subtract(&set("2001:db8::/48"));
        assert!(s.contains("2001:db8:1::1".parse().unwrap()));
        assert!(!s.contains("2001:db8::1".parse().unwrap()));
        assert_eq!(set("::/0").subtract(&set("::/0")), AddrSet::none());
    }
}
