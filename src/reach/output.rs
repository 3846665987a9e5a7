//! Renderings of connections and diffs: `text` (grouped by source, for
//! people), `json` (the contract in docs/simulate.md, for scripts), `md`
//! (a table for a pull-request comment) and `dot` (a Graphviz graph with
//! one cluster per namespace).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use super::conn::{Change, Conn, Endpoint};
use super::diff::Diff;
use crate::ports::PortSet;

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// One line per connection, grouped by source.
    #[default]
    Text,
    /// The JSON contract.
    Json,
    /// A Markdown table.
    Md,
    /// A Graphviz digraph; namespaces are clusters.
    Dot,
}

/// Ports as the JSON contract writes them: `"all"`, or
/// `{"TCP": ["80", "8080-8090"], "UDP": ["53"]}` (protocols in the order
/// TCP, UDP, SCTP; protocols without ports left out).
pub struct PortsJson<'a>(pub &'a PortSet);

impl Serialize for PortsJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.is_all() {
            return s.serialize_str("all");
        }
        s.collect_map(self.0.by_protocol().map(|(proto, ranges)| {
            let list: Vec<String> = ranges
                .ranges()
                .iter()
                .map(|(a, b)| crate::intervals::RangeText(a, b).to_string())
                .collect();
            (proto.as_str(), list)
        }))
    }
}

/// An endpoint as the JSON contract writes it: `{"namespace", "name",
/// "kind"}` or `{"external": ["0.0.0.0/5", "10.0.0.0-10.255.255.255"]}`.
pub struct EndpointJson<'a>(pub &'a Endpoint);

impl Serialize for EndpointJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Endpoint::Workload(w) => {
                let mut m = s.serialize_map(Some(3))?;
                m.serialize_entry("namespace", &*w.namespace)?;
                m.serialize_entry("name", &*w.name)?;
                m.serialize_entry("kind", &*w.kind)?;
                m.end()
            }
            Endpoint::External(a) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("external", &Endpoint::external_ranges(a))?;
                m.end()
            }
        }
    }
}

/// One connection of `list --output json`: `{"src", "dst", "ports"}`.
#[derive(Serialize)]
pub struct ConnJson<'a> {
    src: EndpointJson<'a>,
    dst: EndpointJson<'a>,
    ports: PortsJson<'a>,
}

impl<'a> From<&'a Conn> for ConnJson<'a> {
    fn from(c: &'a Conn) -> Self {
        ConnJson {
            src: EndpointJson(&c.src),
            dst: EndpointJson(&c.dst),
            ports: PortsJson(&c.ports),
        }
    }
}

/// One change of `diff --output json`: `{"src", "dst", "before",
/// "after"}`, `null` for no connection.
#[derive(Serialize)]
pub struct ChangeJson<'a> {
    src: EndpointJson<'a>,
    dst: EndpointJson<'a>,
    before: Option<PortsJson<'a>>,
    after: Option<PortsJson<'a>>,
}

impl<'a> From<&'a Change> for ChangeJson<'a> {
    fn from(c: &'a Change) -> Self {
        ChangeJson {
            src: EndpointJson(&c.src),
            dst: EndpointJson(&c.dst),
            before: c.before.as_ref().map(PortsJson),
            after: c.after.as_ref().map(PortsJson),
        }
    }
}

/// Writes `{"<key>": [item, ...]}` with one item per line, so that large
/// outputs stay greppable and diffable.
fn write_json_lines<T: Serialize>(
    out: &mut impl Write,
    key: &str,
    items: impl Iterator<Item = T>,
) -> io::Result<()> {
    write!(out, "{{\"{key}\": [")?;
    let mut first = true;
    for item in items {
        out.write_all(if first { b"\n  " } else { b",\n  " })?;
        serde_json::to_writer(&mut *out, &item)?;
        first = false;
    }
    if !first {
        out.write_all(b"\n")?;
    }
    out.write_all(b"]}\n")
}

/// Renders the connections of `list`.
pub fn write_list(conns: &[Conn], format: Format, out: &mut impl Write) -> io::Result<()> {
    match format {
        Format::Json => write_json_lines(out, "connections", conns.iter().map(ConnJson::from)),
        Format::Text => list_text(conns, out),
        Format::Md => {
            writeln!(out, "| Source | Destination | Ports |")?;
            writeln!(out, "| --- | --- | --- |")?;
            for c in conns {
                writeln!(
                    out,
                    "| {} | {} | {} |",
                    md(&c.src.to_string()),
                    md(&c.dst.to_string()),
                    md(&c.ports.to_string())
                )?;
            }
            Ok(())
        }
        Format::Dot => {
            let edges = conns
                .iter()
                .map(|c| (&c.src, &c.dst, c.ports.to_string(), None));
            dot(edges, out)
        }
    }
}

fn list_text(conns: &[Conn], out: &mut impl Write) -> io::Result<()> {
    if conns.is_empty() {
        return writeln!(out, "no connections allowed");
    }
    let mut by_src: BTreeMap<&Endpoint, Vec<&Conn>> = BTreeMap::new();
    for c in conns {
        by_src.entry(&c.src).or_default().push(c);
    }
    for (src, cs) in &by_src {
        writeln!(out, "{src}")?;
        let width = cs
            .iter()
            .map(|c| c.dst.to_string().len())
            .max()
            .unwrap_or(0);
        for c in cs {
            writeln!(out, "  => {:width$}  {}", c.dst.to_string(), c.ports)?;
        }
    }
    let workloads: BTreeSet<&Endpoint> = conns
        .iter()
        .flat_map(|c| [&c.src, &c.dst])
        .filter(|e| e.workload().is_some())
        .collect();
    writeln!(
        out,
        "{} connection{} involving {} workload{}",
        conns.len(),
        if conns.len() == 1 { "" } else { "s" },
        workloads.len(),
        if workloads.len() == 1 { "" } else { "s" }
    )
}

/// Renders the result of `diff`.
pub fn write_diff(d: &Diff, format: Format, out: &mut impl Write) -> io::Result<()> {
    let side = |p: &Option<PortSet>| match p {
        Some(p) => p.to_string(),
        None => "none".to_owned(),
    };
    match format {
        Format::Json => write_json_lines(out, "changes", d.changes.iter().map(ChangeJson::from)),
        Format::Text => {
            if d.changes.is_empty()
                && d.workloads_added.is_empty()
                && d.workloads_removed.is_empty()
            {
                return writeln!(out, "no change in connectivity");
            }
            for c in &d.changes {
                let mark = match c.kind() {
                    "added" => '+',
                    "removed" => '-',
                    _ => '~',
                };
                match c.kind() {
                    "changed" => writeln!(
                        out,
                        "{mark} {} => {} : {} -> {}",
                        c.src,
                        c.dst,
                        side(&c.before),
                        side(&c.after)
                    )?,
                    _ => writeln!(
                        out,
                        "{mark} {} => {} : {}",
                        c.src,
                        c.dst,
                        side(&c.before.clone().or(c.after.clone()))
                    )?,
                }
            }
            for w in &d.workloads_added {
                writeln!(out, "workload added: {w}")?;
            }
            for w in &d.workloads_removed {
                writeln!(out, "workload removed: {w}")?;
            }
            Ok(())
        }
        Format::Md => {
            writeln!(out, "| Change | Source | Destination | Before | After |")?;
            writeln!(out, "| --- | --- | --- | --- | --- |")?;
            for c in &d.changes {
                writeln!(
                    out,
                    "| {} | {} | {} | {} | {} |",
                    c.kind(),
                    md(&c.src.to_string()),
                    md(&c.dst.to_string()),
                    md(&side(&c.before)),
                    md(&side(&c.after))
                )?;
            }
            for w in &d.workloads_added {
                writeln!(out, "| workload added | {} | | | |", md(&w.to_string()))?;
            }
            for w in &d.workloads_removed {
                writeln!(out, "| workload removed | {} | | | |", md(&w.to_string()))?;
            }
            Ok(())
        }
        Format::Dot => {
            let edges = d.changes.iter().map(|c| {
                let color = match c.kind() {
                    "added" => "darkgreen",
                    "removed" => "red",
                    _ => "darkorange",
                };
                let label = format!("{} -> {}", side(&c.before), side(&c.after));
                (&c.src, &c.dst, label, Some(color))
            });
            dot(edges, out)
        }
    }
}

/// Markdown table cell text: pipes escaped, brackets kept literal.
pub(crate) fn md(s: &str) -> String {
    s.replace('|', "\\|")
        .replace('[', "\\[")
        .replace(']', "\\]")
}

/// A Graphviz double-quoted string; a newline becomes Graphviz's `\n`
/// line break.
fn quote(s: &str) -> String {
    let escaped = s
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n");
    format!("\"{escaped}\"")
}

fn dot<'a>(
    edges: impl Iterator<Item = (&'a Endpoint, &'a Endpoint, String, Option<&'static str>)>,
    out: &mut impl Write,
) -> io::Result<()> {
    let edges: Vec<_> = edges.collect();
    let mut by_ns: BTreeMap<&str, BTreeSet<&Endpoint>> = BTreeMap::new();
    let mut externals: BTreeSet<&Endpoint> = BTreeSet::new();
    for (s, d, _, _) in &edges {
        for e in [*s, *d] {
            match e {
                Endpoint::Workload(w) => {
                    by_ns.entry(&w.namespace).or_default().insert(e);
                }
                Endpoint::External(_) => {
                    externals.insert(e);
                }
            }
        }
    }
    writeln!(out, "digraph connectivity {{")?;
    writeln!(out, "  rankdir=LR;")?;
    // The classic ranker fails ("trouble in init_rank") on some graphs of
    // clusters with many cross-cluster edges; newrank handles them.
    writeln!(out, "  newrank=true;")?;
    writeln!(out, "  node [shape=box, style=rounded, fontsize=10];")?;
    writeln!(out, "  edge [fontsize=9];")?;
    for (i, (ns, nodes)) in by_ns.iter().enumerate() {
        writeln!(out, "  subgraph {} {{", quote(&format!("cluster_{i}_{ns}")))?;
        writeln!(out, "    label={};", quote(ns))?;
        for n in nodes {
            if let Some(w) = n.workload() {
                writeln!(
                    out,
                    "    {} [label={}];",
                    quote(&n.to_string()),
                    quote(&format!("{}\n[{}]", w.name, w.kind))
                )?;
            }
        }
        writeln!(out, "  }}")?;
    }
    for e in &externals {
        if let Endpoint::External(a) = e {
            let label = Endpoint::external_ranges(a).join("\n");
            writeln!(
                out,
                "  {} [label={}, shape=note];",
                quote(&e.to_string()),
                quote(&label)
            )?;
        }
    }
    for (s, d, label, color) in &edges {
        write!(
            out,
            "  {} -> {} [label={}",
            quote(&s.to_string()),
            quote(&d.to_string()),
            quote(label)
        )?;
        if let Some(c) = color {
            write!(out, ", color={c}, fontcolor={c}")?;
        }
        writeln!(out, "];")?;
    }
    writeln!(out, "}}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addresses::AddrSet;
    use crate::ports::Protocol;
    use crate::reach::model::WorkloadId;
    use serde_json::{Value, json};

    fn conn() -> Conn {
        let mut ports = PortSet::none();
        ports.insert(Protocol::Tcp, 80, 80);
        ports.insert(Protocol::Tcp, 8080, 8090);
        ports.insert(Protocol::Udp, 53, 53);
        Conn {
            src: Endpoint::Workload(WorkloadId::new("backend", "checkout", "Deployment")),
            dst: Endpoint::External(AddrSet::from_cidr("0.0.0.0/5").unwrap()),
            ports,
        }
    }

    #[test]
    fn json_follows_the_contract() {
        let mut out = Vec::new();
        write_list(&[conn()], Format::Json, &mut out).unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(
            text.contains(r#"{"src":{"namespace":"backend","name":"checkout","kind":"Deployment"},"dst":{"external":["0.0.0.0/5"]},"ports":{"TCP":["80","8080-8090"],"UDP":["53"]}}"#),
            "keys in the contract's order: {text}"
        );
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v,
            json!({"connections": [{
                "src": {"namespace": "backend", "name": "checkout", "kind": "Deployment"},
                "dst": {"external": ["0.0.0.0/5"]},
                "ports": {"TCP": ["80", "8080-8090"], "UDP": ["53"]}
            }]})
        );
        assert_eq!(
            serde_json::to_value(PortsJson(&PortSet::all())).unwrap(),
            json!("all")
        );
        let mut out = Vec::new();
        write_list(&[], Format::Json, &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "{\"connections\": []}\n");
    }

    #[test]
    fn markdown_is_a_table_and_dot_quotes() {
        let mut out = Vec::new();
        write_list(&[conn()], Format::Md, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("| Source | Destination | Ports |\n| --- | --- | --- |\n| backend/checkout\\[Deployment\\] |"), "{text}");
        let mut out = Vec::new();
        write_list(&[conn()], Format::Dot, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("subgraph \"cluster_0_backend\""), "{text}");
        assert!(
            text.contains("\"backend/checkout[Deployment]\" -> \"0.0.0.0/5[External]\""),
            "{text}"
        );
    }
}
