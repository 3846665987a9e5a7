//! Rendering `simulate verify`: text (people), json (the contract in
//! docs/simulate.md), md (a pull request or an incident note). Every
//! format says the same things: what was read, the gaps with `eval`'s
//! explanation, the rules' unused allowances with a narrowing to review,
//! coverage, and what could not be compared.

use std::io::{self, Write};

use serde::Serialize;

use super::conn::Endpoint;
use super::flow_read::ReadStats;
use super::model::Model;
use super::narrow::proposal_yaml;
use super::output::{EndpointJson, PortsJson, md};
use super::verify::{Gap, Peer, Report, RuleUse, Seen};
use crate::addresses::AddrSet;

/// The outputs of `verify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum VerifyFormat {
    /// For people.
    #[default]
    Text,
    /// The JSON contract.
    Json,
    /// Markdown.
    Md,
}

/// How many unused pairs text and Markdown list per rule (JSON lists all).
const SHOW: usize = 10;

/// What a snapshot cannot say, said in every format.
pub const SNAPSHOT_NOTE: &str = "addresses are named by the pods of the cluster snapshot (--state or --cluster, read now): \
an address a pod held during the window and no pod holds now reads as outside the cluster, \
unless the source says it was a pod (Hubble, the proxy's own end)";

/// Renders `report` (of flows read as `stats` said) against `model`.
pub fn write_verify(
    report: &Report,
    stats: &ReadStats,
    model: &Model,
    format: VerifyFormat,
    out: &mut impl Write,
) -> io::Result<()> {
    match format {
        VerifyFormat::Json => json(report, stats, model, out),
        VerifyFormat::Text => text(report, stats, model, out),
        VerifyFormat::Md => markdown(report, stats, model, out),
    }
}

fn peer_endpoint(p: &Peer) -> Endpoint {
    match p {
        Peer::Workload(w) => Endpoint::Workload(w.clone()),
        Peer::External(ip) => Endpoint::External(AddrSet::from_ip(*ip)),
    }
}

fn window(s: &Seen) -> String {
    match (s.first, s.last) {
        (Some(a), Some(b)) => format!("{a} .. {b}"),
        _ => "no times".to_owned(),
    }
}

fn unresolved_total(r: &Report) -> u64 {
    r.not_compared.unresolved.values().map(|s| s.flows).sum()
}

fn summary(r: &Report, s: &ReadStats) -> String {
    format!(
        "{} flows read ({}): {} compared, {} allowed, {} denied; {} unresolved; {} outside the cluster at both ends",
        r.seen.flows,
        window(&r.seen),
        r.compared,
        r.allowed,
        r.compared - r.allowed,
        unresolved_total(r),
        r.not_compared.outside,
    ) + &if s.before_since > 0 {
        format!("; {} before --since left out", s.before_since)
    } else {
        String::new()
    }
}

fn skipped_line(s: &ReadStats) -> Option<String> {
    let parts: Vec<String> = s
        .skipped
        .iter()
        .map(|(k, n)| format!("{n} {}", k.as_str()))
        .collect();
    (!parts.is_empty()).then(|| format!("records set aside: {}", parts.join(", ")))
}

fn flows(n: u64) -> String {
    format!("{n} flow{}", if n == 1 { "" } else { "s" })
}

/// When every unused pair's far end is a peer flows did use, narrowing the
/// rule's peers cannot drop them: they are pairs of pods the policy
/// itself selects, and its `podSelector` is what would narrow.
fn own_pods_note(u: &RuleUse) -> Option<String> {
    if u.unused_count == 0 || u.unused_count > u.unused_pairs.len() {
        return None;
    }
    let mut own = std::collections::BTreeSet::new();
    for (src, dst) in &u.unused_pairs {
        let (peer, selected) = match u.direction {
            crate::netpol::Direction::Ingress => (src, dst),
            crate::netpol::Direction::Egress => (dst, src),
        };
        if !u.used.contains_key(&Peer::Workload(peer.clone())) {
            return None;
        }
        own.insert(selected.to_string());
    }
    Some(format!(
        "every peer of the unused pairs was used by other pods: the pairs unused are of pods the policy selects ({}); narrowing the peers cannot drop them, narrowing spec.podSelector can",
        own.into_iter().collect::<Vec<_>>().join(", ")
    ))
}

fn rule_name(u: &RuleUse) -> String {
    format!("{} {}[{}]", u.policy, u.direction.field(), u.rule)
}

fn unused_line(u: &RuleUse) -> String {
    let mut parts = Vec::new();
    if u.unused_count > 0 {
        parts.push(format!(
            "{} of {} workload pair{} unused",
            u.unused_count,
            u.admitted_pairs,
            if u.admitted_pairs == 1 { "" } else { "s" }
        ));
    }
    if !u.unused_addresses.is_empty() {
        parts.push(format!(
            "no flow from or to its outside addresses ({})",
            u.unused_addresses.join(", ")
        ));
    }
    if u.used.is_empty() {
        parts.push(
            "no flow used it: remove it, unless it is for traffic the window did not see"
                .to_owned(),
        );
    }
    parts.join("; ")
}

fn text(r: &Report, s: &ReadStats, model: &Model, out: &mut impl Write) -> io::Result<()> {
    writeln!(out, "{}", summary(r, s))?;
    if let Some(l) = skipped_line(s) {
        writeln!(out, "{l}")?;
    }
    if s.malformed > 0 {
        writeln!(out, "malformed lines: {} (not compared)", s.malformed)?;
        for b in &s.malformed_lines {
            writeln!(out, "  {}:{}: {}", b.file, b.line, b.reason)?;
        }
        if s.malformed > s.malformed_lines.len() as u64 {
            writeln!(
                out,
                "  ... and {} more",
                s.malformed - s.malformed_lines.len() as u64
            )?;
        }
    }
    writeln!(out)?;
    writeln!(
        out,
        "GAPS: {} connection{} seen that the policies deny",
        r.gaps.len(),
        if r.gaps.len() == 1 { "" } else { "s" }
    )?;
    for g in &r.gaps {
        writeln!(
            out,
            "  {} -> {} on {} {}: {}, {}",
            g.src,
            g.dst,
            g.protocol,
            g.port,
            flows(g.seen.flows),
            window(&g.seen)
        )?;
        for line in g.explanation.to_string().lines() {
            writeln!(out, "    {line}")?;
        }
    }
    let unused: Vec<&RuleUse> = r.rules.iter().filter(|u| u.has_unused()).collect();
    writeln!(out)?;
    writeln!(
        out,
        "UNUSED ALLOWANCES: {} of {} rule{} admit what no flow used",
        unused.len(),
        r.rules.len(),
        if r.rules.len() == 1 { "" } else { "s" }
    )?;
    for u in unused {
        writeln!(out, "  {}: {}", rule_name(u), unused_line(u))?;
        for (a, b) in u.unused_pairs.iter().take(SHOW) {
            writeln!(out, "    unused: {a} -> {b}")?;
        }
        if u.unused_count > SHOW {
            writeln!(out, "    ... and {} more", u.unused_count - SHOW)?;
        }
        for (p, (ports, seen)) in &u.used {
            writeln!(out, "    used:   {p} on {ports} ({})", flows(seen.flows))?;
        }
        if let Some(n) = own_pods_note(u) {
            writeln!(out, "    note: {n}")?;
        }
        if let Some(yaml) = proposal_yaml(model, u) {
            writeln!(out, "    proposed:")?;
            for line in yaml.lines() {
                writeln!(out, "      {line}")?;
            }
        }
    }
    writeln!(out)?;
    writeln!(
        out,
        "COVERAGE: {} of {} allowed workload pairs carried traffic ({:.1} %)",
        r.coverage.used_pairs,
        r.coverage.allowed_pairs,
        r.coverage.percent()
    )?;
    if !r.not_compared.unresolved.is_empty() {
        writeln!(out)?;
        writeln!(
            out,
            "UNRESOLVED: {} flows not compared",
            unresolved_total(r)
        )?;
        for (why, seen) in &r.not_compared.unresolved {
            writeln!(out, "  {} flows: {why}", seen.flows)?;
        }
    }
    writeln!(out)?;
    for n in &r.notes {
        writeln!(out, "note: {n}")?;
    }
    writeln!(out, "note: {SNAPSHOT_NOTE}")
}

fn markdown(r: &Report, s: &ReadStats, model: &Model, out: &mut impl Write) -> io::Result<()> {
    writeln!(out, "### palisade simulate verify")?;
    writeln!(out)?;
    writeln!(out, "{}.", summary(r, s))?;
    if let Some(l) = skipped_line(s) {
        writeln!(out, "{l}.")?;
    }
    if s.malformed > 0 {
        writeln!(out, "**{} malformed lines** (not compared):", s.malformed)?;
        writeln!(out)?;
        for b in &s.malformed_lines {
            writeln!(out, "- `{}:{}`: {}", b.file, b.line, b.reason)?;
        }
    }
    writeln!(out)?;
    writeln!(
        out,
        "#### Gaps: {} (seen, but the policies deny them)",
        r.gaps.len()
    )?;
    writeln!(out)?;
    if !r.gaps.is_empty() {
        writeln!(out, "| Source | Destination | Port | Flows | Seen |")?;
        writeln!(out, "| --- | --- | --- | --- | --- |")?;
        for g in &r.gaps {
            writeln!(
                out,
                "| {} | {} | {} {} | {} | {} |",
                md(&g.src.to_string()),
                md(&g.dst.to_string()),
                g.protocol,
                g.port,
                g.seen.flows,
                md(&window(&g.seen))
            )?;
        }
        writeln!(out)?;
        for g in &r.gaps {
            writeln!(out, "```")?;
            write!(out, "{}", g.explanation)?;
            writeln!(out, "```")?;
        }
        writeln!(out)?;
    }
    let unused: Vec<&RuleUse> = r.rules.iter().filter(|u| u.has_unused()).collect();
    writeln!(
        out,
        "#### Unused allowances: {} of {} rules",
        unused.len(),
        r.rules.len()
    )?;
    writeln!(out)?;
    for u in unused {
        writeln!(out, "- **{}**: {}", md(&rule_name(u)), unused_line(u))?;
        for (a, b) in u.unused_pairs.iter().take(SHOW) {
            writeln!(
                out,
                "  - unused: {} -> {}",
                md(&a.to_string()),
                md(&b.to_string())
            )?;
        }
        if u.unused_count > SHOW {
            writeln!(out, "  - ... and {} more", u.unused_count - SHOW)?;
        }
        if let Some(n) = own_pods_note(u) {
            writeln!(out, "  - note: {}", md(&n))?;
        }
        if let Some(yaml) = proposal_yaml(model, u) {
            writeln!(out)?;
            writeln!(out, "  ```yaml")?;
            for line in yaml.lines() {
                writeln!(out, "  {line}")?;
            }
            writeln!(out, "  ```")?;
        }
    }
    writeln!(out)?;
    writeln!(
        out,
        "#### Coverage: {:.1} % ({} of {} allowed workload pairs carried traffic)",
        r.coverage.percent(),
        r.coverage.used_pairs,
        r.coverage.allowed_pairs
    )?;
    if !r.not_compared.unresolved.is_empty() {
        writeln!(out)?;
        writeln!(out, "#### Unresolved: {} flows", unresolved_total(r))?;
        writeln!(out)?;
        for (why, seen) in &r.not_compared.unresolved {
            writeln!(out, "- {} flows: {}", seen.flows, md(&why.to_string()))?;
        }
    }
    writeln!(out)?;
    for n in &r.notes {
        writeln!(out, "_Note: {}._", md(n))?;
    }
    writeln!(out, "_Note: {SNAPSHOT_NOTE}._")
}

// ---- JSON ----------------------------------------------------------

#[derive(Serialize)]
struct VerifyJson<'a> {
    window: WindowJson,
    flows: FlowsJson,
    malformed: Vec<BadLineJson<'a>>,
    gaps: Vec<GapJson<'a>>,
    rules: Vec<RuleJson<'a>>,
    coverage: CoverageJson,
    unresolved: Vec<UnresolvedJson>,
    notes: Vec<&'a str>,
}

#[derive(Serialize)]
struct WindowJson {
    first: Option<String>,
    last: Option<String>,
}

impl From<&Seen> for WindowJson {
    fn from(s: &Seen) -> Self {
        WindowJson {
            first: s.first.map(|t| t.to_string()),
            last: s.last.map(|t| t.to_string()),
        }
    }
}

#[derive(Serialize)]
struct FlowsJson {
    read: u64,
    compared: u64,
    allowed: u64,
    denied: u64,
    unresolved: u64,
    outside: u64,
    before_since: u64,
    skipped: std::collections::BTreeMap<&'static str, u64>,
    malformed: u64,
}

#[derive(Serialize)]
struct BadLineJson<'a> {
    file: &'a str,
    line: usize,
    reason: &'a str,
}

#[derive(Serialize)]
struct GapJson<'a> {
    src: EndpointJson<'a>,
    dst: EndpointJson<'a>,
    protocol: &'static str,
    port: u16,
    flows: u64,
    first: Option<String>,
    last: Option<String>,
    denied_by: Vec<&'static str>,
    explanation: String,
}

#[derive(Serialize)]
struct UsedJson<'a> {
    peer: EndpointJson<'a>,
    ports: PortsJson<'a>,
    flows: u64,
}

#[derive(Serialize)]
struct PairJson<'a> {
    src: EndpointJson<'a>,
    dst: EndpointJson<'a>,
}

#[derive(Serialize)]
struct RuleJson<'a> {
    policy: &'a str,
    direction: &'static str,
    rule: usize,
    admitted_pairs: usize,
    unused_count: usize,
    used: Vec<UsedJson<'a>>,
    unused: Vec<PairJson<'a>>,
    unused_external: &'a [String],
    proposal: Option<String>,
}

#[derive(Serialize)]
struct CoverageJson {
    allowed_pairs: usize,
    used_pairs: usize,
    percent: f64,
}

#[derive(Serialize)]
struct UnresolvedJson {
    reason: String,
    flows: u64,
}

/// Endpoints the JSON borrows: built once, kept alive while serializing.
struct Ends {
    gaps: Vec<(Endpoint, Endpoint)>,
    used: Vec<Vec<Endpoint>>,
    unused: Vec<Vec<(Endpoint, Endpoint)>>,
}

fn json(r: &Report, s: &ReadStats, model: &Model, out: &mut impl Write) -> io::Result<()> {
    let ends = Ends {
        gaps: r
            .gaps
            .iter()
            .map(|g| (peer_endpoint(&g.src), peer_endpoint(&g.dst)))
            .collect(),
        used: r
            .rules
            .iter()
            .map(|u| u.used.keys().map(peer_endpoint).collect())
            .collect(),
        unused: r
            .rules
            .iter()
            .map(|u| {
                u.unused_pairs
                    .iter()
                    .map(|(a, b)| (Endpoint::Workload(a.clone()), Endpoint::Workload(b.clone())))
                    .collect()
            })
            .collect(),
    };
    let doc = VerifyJson {
        window: WindowJson::from(&r.seen),
        flows: FlowsJson {
            read: r.seen.flows,
            compared: r.compared,
            allowed: r.allowed,
            denied: r.compared - r.allowed,
            unresolved: unresolved_total(r),
            outside: r.not_compared.outside,
            before_since: s.before_since,
            skipped: s.skipped.iter().map(|(k, n)| (k.key(), *n)).collect(),
            malformed: s.malformed,
        },
        malformed: s
            .malformed_lines
            .iter()
            .map(|b| BadLineJson {
                file: &b.file,
                line: b.line,
                reason: &b.reason,
            })
            .collect(),
        gaps: r
            .gaps
            .iter()
            .zip(&ends.gaps)
            .map(|(g, e)| gap_json(g, e))
            .collect(),
        rules: r
            .rules
            .iter()
            .zip(ends.used.iter().zip(&ends.unused))
            .map(|(u, (used, unused))| RuleJson {
                policy: &u.policy,
                direction: u.direction.as_str(),
                rule: u.rule,
                admitted_pairs: u.admitted_pairs,
                unused_count: u.unused_count,
                used: u
                    .used
                    .values()
                    .zip(used)
                    .map(|((ports, seen), peer)| UsedJson {
                        peer: EndpointJson(peer),
                        ports: PortsJson(ports),
                        flows: seen.flows,
                    })
                    .collect(),
                unused: unused
                    .iter()
                    .map(|(a, b)| PairJson {
                        src: EndpointJson(a),
                        dst: EndpointJson(b),
                    })
                    .collect(),
                unused_external: &u.unused_addresses,
                proposal: if u.has_unused() {
                    proposal_yaml(model, u)
                } else {
                    None
                },
            })
            .collect(),
        coverage: CoverageJson {
            allowed_pairs: r.coverage.allowed_pairs,
            used_pairs: r.coverage.used_pairs,
            percent: (r.coverage.percent() * 10.0).round() / 10.0,
        },
        unresolved: r
            .not_compared
            .unresolved
            .iter()
            .map(|(why, seen)| UnresolvedJson {
                reason: why.to_string(),
                flows: seen.flows,
            })
            .collect(),
        notes: r
            .notes
            .iter()
            .map(String::as_str)
            .chain([SNAPSHOT_NOTE])
            .collect(),
    };
    serde_json::to_writer_pretty(&mut *out, &doc)?;
    writeln!(out)
}

fn gap_json<'a>(g: &'a Gap, (src, dst): &'a (Endpoint, Endpoint)) -> GapJson<'a> {
    GapJson {
        src: EndpointJson(src),
        dst: EndpointJson(dst),
        protocol: g.protocol.as_str(),
        port: g.port,
        flows: g.seen.flows,
        first: g.seen.first.map(|t| t.to_string()),
        last: g.seen.last.map(|t| t.to_string()),
        denied_by: [
            ("egress", &g.explanation.egress),
            ("ingress", &g.explanation.ingress),
        ]
        .into_iter()
        .filter(|(_, side)| !side.allows())
        .map(|(d, _)| d)
        .collect(),
        explanation: g.explanation.to_string(),
    }
}
