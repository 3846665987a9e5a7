//! The flow sources `simulate verify` reads, one line at a time (pure: a
//! line in, a [`Flow`] or the reason it is not one out):
//!
//! - the access proxy's log: JSON lines with `start_time`,
//!   `downstream_remote_address`, `downstream_local_address`,
//!   `downstream_local_port` (the format set in
//!   `policies/sidecars/access-proxy-config.example.yaml`);
//! - Hubble: `hubble observe -o json` (`{"flow": {...}, "node_name", "time"}`)
//!   or bare flow objects, as Cilium's `flow.Flow` proto renders to JSON;
//! - plain JSON lines or CSV with a header, with `time`, `src_ip`,
//!   `dst_ip`, `dst_port`, `protocol` (any other column is ignored).
//!
//! JSON lines say which source they are by their fields, so files may mix
//! them; a file whose first line is not JSON is CSV, its first line the
//! header. Fields a source adds that palisade does not read are skipped.

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;

use k8s_openapi::jiff::Timestamp;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use super::flows::{Flow, FlowEnd};
use crate::ports::Protocol;

/// What one line is.
// Returned by value and consumed at once, a million times a run: boxing
// the flow would cost an allocation per record to save stack bytes.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineOutcome {
    /// A connection seen.
    Flow(Flow),
    /// A record that is not a connection to compare, and why.
    Skip(Skipped),
}

/// Records read and set aside, by kind: counted, never compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Skipped {
    /// A blank line, or the CSV header.
    Blank,
    /// Hubble: a reply (`is_reply: true`): the connection is its request.
    Reply,
    /// Hubble: the network dropped it (`DROPPED`, `ERROR`): enforced, not
    /// traffic that flowed.
    Dropped,
    /// Hubble: not an L4 flow with a destination port (ICMP, L7-only
    /// events, agent events).
    NotL4,
    /// A line of the proxy's own log (Envoy's `[time][thread][level]`),
    /// which `kubectl logs` interleaves with the access log.
    ProxyLog,
}

impl Skipped {
    /// The key in `verify --output json`'s `flows.skipped`.
    pub fn key(self) -> &'static str {
        match self {
            Skipped::Blank => "blank",
            Skipped::Reply => "reply",
            Skipped::Dropped => "dropped",
            Skipped::NotL4 => "not_l4",
            Skipped::ProxyLog => "proxy_log",
        }
    }

    /// For the report.
    pub fn as_str(self) -> &'static str {
        match self {
            Skipped::Blank => "blank or header",
            Skipped::Reply => "reply (Hubble is_reply)",
            Skipped::Dropped => "dropped by the network (Hubble verdict DROPPED/ERROR)",
            Skipped::NotL4 => "no L4 destination port (ICMP, L7-only, agent events)",
            Skipped::ProxyLog => "the proxy's own log line",
        }
    }
}

/// Why a line is not a record of any known source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub String);

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn bad(msg: impl Into<String>) -> Malformed {
    Malformed(msg.into())
}

/// The columns of a CSV file, from its header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvColumns {
    time: Option<usize>,
    src_ip: usize,
    dst_ip: usize,
    dst_port: usize,
    protocol: Option<usize>,
}

impl CsvColumns {
    /// Reads a header line: `src_ip`, `dst_ip` and `dst_port` are needed,
    /// `time` and `protocol` (TCP when absent) optional; others ignored.
    pub fn from_header(line: &str) -> Result<CsvColumns, Malformed> {
        let names: Vec<String> = split_csv(line)
            .map(|c| c.trim().to_ascii_lowercase())
            .collect();
        let find = |n: &str| names.iter().position(|c| c == n);
        let need = |n: &str| {
            find(n).ok_or_else(|| {
                bad(format!(
                    "a CSV header needs src_ip, dst_ip and dst_port (and may have time, protocol); no {n} in {line:?}"
                ))
            })
        };
        Ok(CsvColumns {
            time: find("time"),
            src_ip: need("src_ip")?,
            dst_ip: need("dst_ip")?,
            dst_port: need("dst_port")?,
            protocol: find("protocol"),
        })
    }

    /// Reads one data line.
    pub fn parse(&self, line: &str) -> Result<LineOutcome, Malformed> {
        if line.trim().is_empty() {
            return Ok(LineOutcome::Skip(Skipped::Blank));
        }
        let cells: Vec<&str> = split_csv(line).collect();
        let cell = |i: usize| -> Result<&str, Malformed> {
            cells
                .get(i)
                .copied()
                .ok_or_else(|| bad(format!("{} fields, the header names more", cells.len())))
        };
        let time = match self.time {
            Some(i) => time(cell(i)?)?,
            None => None,
        };
        let protocol = match self.protocol {
            Some(i) => protocol(cell(i)?)?,
            None => Protocol::Tcp,
        };
        Ok(LineOutcome::Flow(Flow {
            time,
            src: FlowEnd::ip(ip(cell(self.src_ip)?, "src_ip")?),
            dst: FlowEnd::ip(ip(cell(self.dst_ip)?, "dst_ip")?),
            protocol,
            port: port(cell(self.dst_port)?)?,
        }))
    }
}

/// Fields of a CSV line, with surrounding quotes taken off (no quoted
/// commas: none of the columns read can hold one).
fn split_csv(line: &str) -> impl Iterator<Item = &str> {
    line.trim_end_matches(['\r', '\n'])
        .split(',')
        .map(|c| c.trim().trim_matches('"'))
}

/// Is this line JSON (as opposed to a CSV header or row)?
pub fn is_json(line: &str) -> bool {
    line.trim_start().starts_with('{')
}

/// Reads one JSON line of any source.
pub fn parse_json_line(line: &str) -> Result<LineOutcome, Malformed> {
    let trimmed = line.trim();
    if trimmed.is_empty() {
        return Ok(LineOutcome::Skip(Skipped::Blank));
    }
    if trimmed.starts_with('[') && trimmed.contains("][") {
        return Ok(LineOutcome::Skip(Skipped::ProxyLog));
    }
    let rec: Line<'_> =
        serde_json::from_str(trimmed).map_err(|e| bad(format!("not a JSON flow record: {e}")))?;
    if let Some(addr) = &rec.downstream_remote_address {
        return proxy(&rec, addr);
    }
    if rec.src_ip.is_some() || rec.dst_ip.is_some() {
        return plain(&rec);
    }
    match rec.flow {
        Some(inner) => hubble(&inner, rec.time.as_deref()),
        None if rec.verdict.is_some() || rec.ip.is_some() || rec.l4.is_some() => hubble(&rec, None),
        None if rec.node_name.is_some() => Ok(LineOutcome::Skip(Skipped::NotL4)),
        None => Err(bad(
            "a JSON object of no known flow source (no downstream_remote_address, src_ip/dst_ip, or Hubble flow)",
        )),
    }
}

/// Every field any JSON source has that palisade reads; one pass of
/// serde over the line whatever its source. Hubble's response wraps the
/// flow (`flow`), whose fields are these same ones.
#[derive(Deserialize)]
struct Line<'a> {
    // The proxy.
    #[serde(borrow)]
    start_time: Option<Cow<'a, str>>,
    #[serde(borrow)]
    downstream_remote_address: Option<Cow<'a, str>>,
    #[serde(borrow)]
    downstream_local_address: Option<Cow<'a, str>>,
    downstream_local_port: Option<Num>,
    // Plain records (and Hubble's `time`).
    #[serde(borrow)]
    time: Option<Cow<'a, str>>,
    #[serde(borrow)]
    src_ip: Option<Cow<'a, str>>,
    #[serde(borrow)]
    dst_ip: Option<Cow<'a, str>>,
    dst_port: Option<Num>,
    #[serde(borrow)]
    protocol: Option<Cow<'a, str>>,
    // Hubble.
    #[serde(borrow)]
    flow: Option<Box<Line<'a>>>,
    #[serde(borrow)]
    verdict: Option<Cow<'a, str>>,
    #[serde(rename = "IP", borrow)]
    ip: Option<HubbleIp<'a>>,
    l4: Option<HubbleL4>,
    #[serde(borrow)]
    source: Option<HubbleEndpoint<'a>>,
    #[serde(borrow)]
    destination: Option<HubbleEndpoint<'a>>,
    is_reply: Option<bool>,
    #[serde(borrow)]
    node_name: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct HubbleIp<'a> {
    #[serde(borrow)]
    source: Option<Cow<'a, str>>,
    #[serde(borrow)]
    destination: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct HubbleL4 {
    #[serde(rename = "TCP")]
    tcp: Option<HubblePorts>,
    #[serde(rename = "UDP")]
    udp: Option<HubblePorts>,
    #[serde(rename = "SCTP")]
    sctp: Option<HubblePorts>,
}

#[derive(Deserialize)]
struct HubblePorts {
    destination_port: Option<u32>,
    flags: Option<TcpFlags>,
}

#[derive(Deserialize)]
#[allow(non_snake_case)]
struct TcpFlags {
    SYN: Option<bool>,
    ACK: Option<bool>,
}

#[derive(Deserialize)]
struct HubbleEndpoint<'a> {
    #[serde(borrow)]
    namespace: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pod_name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    labels: Option<Vec<Cow<'a, str>>>,
    #[serde(borrow)]
    workloads: Option<Vec<HubbleWorkload<'a>>>,
}

#[derive(Deserialize)]
struct HubbleWorkload<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow)]
    kind: Cow<'a, str>,
}

/// A number written as a JSON number or string (`8080`, `"8080"`); `-`
/// (Envoy's "not set") and other text read as `None`.
struct Num(Option<u64>);

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Num;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a port number")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Num, E> {
                Ok(Num(Some(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Num, E> {
                Ok(Num(u64::try_from(v).ok()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Num, E> {
                Ok(Num((v.fract() == 0.0 && v >= 0.0).then_some(v as u64)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Num, E> {
                Ok(Num(v.trim().parse().ok()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Num, E> {
                Ok(Num(None))
            }
        }
        d.deserialize_any(V)
    }
}

fn proxy(rec: &Line<'_>, remote: &str) -> Result<LineOutcome, Malformed> {
    let local = rec
        .downstream_local_address
        .as_deref()
        .ok_or_else(|| bad("proxy record without downstream_local_address"))?;
    let port = rec
        .downstream_local_port
        .as_ref()
        .and_then(|n| n.0)
        .ok_or_else(|| bad("proxy record without a numeric downstream_local_port"))?;
    let port = u16::try_from(port)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| bad(format!("downstream_local_port {port} is not a port")))?;
    Ok(LineOutcome::Flow(Flow {
        time: time_opt(rec.start_time.as_deref())?,
        src: FlowEnd::ip(ip(strip_port(remote), "downstream_remote_address")?),
        // The proxy runs in the destination pod: its own end is a pod.
        dst: FlowEnd {
            is_pod: true,
            ..FlowEnd::ip(ip(strip_port(local), "downstream_local_address")?)
        },
        protocol: Protocol::Tcp,
        port,
    }))
}

/// `10.0.0.5:443` or `[fd00::5]:443` to the address (the `_WITHOUT_PORT`
/// operators give it bare already).
fn strip_port(addr: &str) -> &str {
    if let Some(rest) = addr.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match addr.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.parse::<u16>().is_ok() => host,
        _ => addr,
    }
}

fn plain(rec: &Line<'_>) -> Result<LineOutcome, Malformed> {
    let need = |v: &Option<Cow<'_, str>>, name: &str| -> Result<IpAddr, Malformed> {
        ip(
            v.as_deref()
                .ok_or_else(|| bad(format!("record without {name}")))?,
            name,
        )
    };
    let port_num = rec
        .dst_port
        .as_ref()
        .and_then(|n| n.0)
        .ok_or_else(|| bad("record without a numeric dst_port"))?;
    Ok(LineOutcome::Flow(Flow {
        time: time_opt(rec.time.as_deref())?,
        src: FlowEnd::ip(need(&rec.src_ip, "src_ip")?),
        dst: FlowEnd::ip(need(&rec.dst_ip, "dst_ip")?),
        protocol: match rec.protocol.as_deref() {
            Some(p) => protocol(p)?,
            None => Protocol::Tcp,
        },
        port: port(&port_num.to_string())?,
    }))
}

fn hubble(f: &Line<'_>, outer_time: Option<&str>) -> Result<LineOutcome, Malformed> {
    if let Some("DROPPED" | "ERROR") = f.verdict.as_deref() {
        return Ok(LineOutcome::Skip(Skipped::Dropped));
    }
    if f.is_reply == Some(true) {
        return Ok(LineOutcome::Skip(Skipped::Reply));
    }
    let Some(l4) = &f.l4 else {
        return Ok(LineOutcome::Skip(Skipped::NotL4));
    };
    let (protocol, ports) = match (&l4.tcp, &l4.udp, &l4.sctp) {
        (Some(p), _, _) => (Protocol::Tcp, p),
        (_, Some(p), _) => (Protocol::Udp, p),
        (_, _, Some(p)) => (Protocol::Sctp, p),
        _ => return Ok(LineOutcome::Skip(Skipped::NotL4)),
    };
    // A SYN-ACK is the answer to a connection: when Hubble could not tell
    // (no is_reply), the flags can.
    if f.is_reply.is_none()
        && let Some(flags) = &ports.flags
        && flags.SYN == Some(true)
        && flags.ACK == Some(true)
    {
        return Ok(LineOutcome::Skip(Skipped::Reply));
    }
    let port = ports
        .destination_port
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p > 0)
        .ok_or_else(|| bad("Hubble flow without a destination_port"))?;
    let addrs = f.ip.as_ref();
    let end = |e: Option<&HubbleEndpoint<'_>>, a: Option<&Cow<'_, str>>, which: &str| {
        let ip = a.map(|a| ip(a, which)).transpose()?;
        let Some(e) = e else {
            return Ok::<_, Malformed>(FlowEnd {
                ip,
                ..FlowEnd::default()
            });
        };
        let ns = e.namespace.as_deref().filter(|n| !n.is_empty());
        let labels = e.labels.as_deref().unwrap_or_default();
        let is_node = labels
            .iter()
            .any(|l| l == "reserved:host" || l == "reserved:remote-node");
        Ok(FlowEnd {
            ip,
            pod: ns
                .zip(e.pod_name.as_deref().filter(|n| !n.is_empty()))
                .map(|(n, p)| (n.to_owned(), p.to_owned())),
            workload: ns
                .zip(e.workloads.as_ref().and_then(|w| w.first()))
                .map(|(n, w)| (n.to_owned(), w.name.to_string(), w.kind.to_string())),
            is_pod: false,
            is_node,
        })
    };
    let src = end(
        f.source.as_ref(),
        addrs.and_then(|a| a.source.as_ref()),
        "IP.source",
    )?;
    let dst = end(
        f.destination.as_ref(),
        addrs.and_then(|a| a.destination.as_ref()),
        "IP.destination",
    )?;
    Ok(LineOutcome::Flow(Flow {
        time: time_opt(f.time.as_deref().or(outer_time))?,
        src,
        dst,
        protocol,
        port,
    }))
}

fn ip(s: &str, field: &str) -> Result<IpAddr, Malformed> {
    s.trim()
        .parse()
        .map_err(|_| bad(format!("{field} {s:?} is not an IP address")))
}

fn port(s: &str) -> Result<u16, Malformed> {
    s.trim()
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| bad(format!("port {s:?} is not 1-65535")))
}

/// `TCP`, `udp`, `SCTP`, or the IANA numbers cloud flow logs use (6, 17,
/// 132).
fn protocol(s: &str) -> Result<Protocol, Malformed> {
    match s.trim() {
        "6" => Ok(Protocol::Tcp),
        "17" => Ok(Protocol::Udp),
        "132" => Ok(Protocol::Sctp),
        other => other
            .to_ascii_uppercase()
            .parse()
            .map_err(|_| bad(format!("protocol {s:?} is not TCP, UDP or SCTP"))),
    }
}

fn time_opt(s: Option<&str>) -> Result<Option<Timestamp>, Malformed> {
    match s {
        None => Ok(None),
        Some(s) => time(s),
    }
}

/// RFC 3339, or Unix seconds (cloud flow logs); empty or `-` is no time.
fn time(s: &str) -> Result<Option<Timestamp>, Malformed> {
    let s = s.trim();
    if s.is_empty() || s == "-" {
        return Ok(None);
    }
    if let Ok(secs) = s.parse::<i64>() {
        return Timestamp::from_second(secs)
            .map(Some)
            .map_err(|e| bad(format!("time {s:?}: {e}")));
    }
    s.parse::<Timestamp>()
        .map(Some)
        .map_err(|e| bad(format!("time {s:?} is not RFC 3339: {e}")))
}

/// Parses `--since`: an RFC 3339 time, or a duration back from `now`
/// (`90m`, `24h`, `7d`, `1h30m`).
pub fn since(s: &str, now: Timestamp) -> Result<Timestamp, Malformed> {
    if let Ok(t) = s.parse::<Timestamp>() {
        return Ok(t);
    }
    let bad_since = || {
        bad(format!(
            "--since {s:?}: expected an RFC 3339 time (2026-12-01T00:00:00Z) or a duration (90m, 24h, 7d)"
        ))
    };
    let mut secs: i64 = 0;
    let mut num = String::new();
    for c in s.trim().chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: i64 = num.parse().map_err(|_| bad_since())?;
        num.clear();
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3_600,
            'd' => 86_400,
            _ => return Err(bad_since()),
        };
        secs = n
            .checked_mul(unit)
            .and_then(|x| secs.checked_add(x))
            .ok_or_else(bad_since)?;
    }
    if !num.is_empty() || secs == 0 {
        return Err(bad_since());
    }
    now.checked_sub(k8s_openapi::jiff::SignedDuration::from_secs(secs))
        .map_err(|_| bad_since())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_is_a_time_or_a_duration_back_from_now() {
        let now: Timestamp = "2026-12-07T12:00:00Z".parse().unwrap();
        let at = |s: &str| since(s, now).map(|t| t.to_string());
        assert_eq!(at("2026-12-01T00:00:00Z").unwrap(), "2026-12-01T00:00:00Z");
        assert_eq!(at("90m").unwrap(), "2026-12-07T10:30:00Z");
        assert_eq!(at("1h30m").unwrap(), "2026-12-07T10:30:00Z");
        assert_eq!(at("7d").unwrap(), "2026-11-30T12:00:00Z");
        for bad in ["", "90", "1w", "h", "yesterday", "0m"] {
            assert!(at(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn addresses_with_ports_protocol_numbers_and_unix_times() {
        assert_eq!(strip_port("10.0.0.5:443"), "10.0.0.5");
        assert_eq!(strip_port("[fd00::5]:443"), "fd00::5");
        assert_eq!(strip_port("fd00::5"), "fd00::5");
        assert_eq!(protocol("17").unwrap(), Protocol::Udp);
        assert_eq!(protocol("sctp").unwrap(), Protocol::Sctp);
        assert!(protocol("1").is_err());
        assert_eq!(
            time("1796551200").unwrap().unwrap().to_string(),
            "2026-12-06T10:00:00Z"
        );
        assert_eq!(time("-").unwrap(), None);
        assert!(port("0").is_err() && port("65536").is_err());
    }
}
