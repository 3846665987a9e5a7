//! `simulate list` and `simulate diff` against every case of
//! `../shared/fixtures/connectivity/` and of
//! `../shared/fixtures/cluster-policies/` (AdminNetworkPolicy and
//! BaselineAdminNetworkPolicy with NetworkPolicies): real cases with known
//! answers from an established analyzer's test suite
//! (np-guard/netpol-analyzer).
//!
//! Compared by meaning, not text:
//! - between workloads: the same (source, destination) pairs with the
//!   same port sets;
//! - with external addresses: for each workload and direction, which IPv4
//!   addresses get which ports. The expected files cut the address space
//!   at other places (the analyzer cuts at every ipBlock boundary of the
//!   whole cluster, palisade per workload), so both sides are turned into
//!   piecewise functions over IPv4 and compared as functions.
//!
//! Why IPv4 only: the fixtures speak IPv4 only (`0.0.0.0-255.255.255.255`
//! is the whole outside world for them), while palisade also reports the
//! IPv6 space (`::/0`), which Kubernetes ipBlocks may name too. Dropping
//! palisade's IPv6 ranges compares exactly what the fixtures assert.

#[path = "common/shared.rs"]
mod shared;
use shared::shared_fixtures;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use palisade::ports::{PortSet, Protocol};
use palisade::reach::output::Format;
use palisade::reach::{DiffFormat, SimulateCommand, run};
use serde_json::Value;

/// The NetworkPolicy cases.
fn connectivity() -> PathBuf {
    shared_fixtures("connectivity")
}

/// The cases with cluster-wide policies.
fn cluster_policies() -> PathBuf {
    shared_fixtures("cluster-policies")
}

/// Which side of a workload the outside world is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Dir {
    /// External source, workload destination.
    In,
    /// Workload source, external destination.
    Out,
}

/// A piecewise function over IPv4: sorted, disjoint, merged pieces.
type Pieces<T> = Vec<(u32, u32, T)>;
/// Ports before and after a change (`None`: no connection).
type BeforeAfter = (Option<PortSet>, Option<PortSet>);
/// Labelled IPv4 ranges per workload and direction, before normalizing.
type Raw<T> = BTreeMap<(String, Dir), Vec<(u32, u32, T)>>;

/// The meaning of a connection list.
#[derive(Debug, Default, PartialEq)]
struct Meaning {
    pairs: BTreeMap<(String, String), PortSet>,
    external: BTreeMap<(String, Dir), Pieces<PortSet>>,
}

/// The meaning of a diff.
#[derive(Debug, Default, PartialEq)]
struct DiffMeaning {
    pairs: BTreeMap<(String, String), BeforeAfter>,
    external: BTreeMap<(String, Dir), Pieces<BeforeAfter>>,
}

/// Turns overlapping labelled IPv4 ranges into a piecewise function;
/// overlapping values are combined with `join`, `keep` drops pieces.
fn normalize<T: Clone + PartialEq>(
    items: Vec<(u32, u32, T)>,
    join: impl Fn(&T, &T) -> T,
    keep: impl Fn(&T) -> bool,
) -> Pieces<T> {
    let mut bounds: Vec<u64> = Vec::new();
    for (s, e, _) in &items {
        bounds.push(u64::from(*s));
        bounds.push(u64::from(*e) + 1);
    }
    bounds.sort_unstable();
    bounds.dedup();
    let mut out: Pieces<T> = Vec::new();
    for w in bounds.windows(2) {
        let (s, e) = (w[0], w[1] - 1);
        let mut v: Option<T> = None;
        for (is, ie, t) in &items {
            if u64::from(*is) <= s && e <= u64::from(*ie) {
                v = Some(match v {
                    None => t.clone(),
                    Some(prev) => join(&prev, t),
                });
            }
        }
        let Some(v) = v.filter(&keep) else { continue };
        let (s, e) = (s as u32, e as u32);
        match out.last_mut() {
            Some(last) if last.2 == v && u64::from(last.1) + 1 == u64::from(s) => last.1 = e,
            _ => out.push((s, e, v)),
        }
    }
    out
}

// ---- the expected text -------------------------------------------------

enum End {
    Workload(String),
    External(u32, u32),
}

fn parse_end(s: &str) -> End {
    let s = s.trim();
    if let Some(r) = s.strip_suffix("[External]") {
        let (a, b) = r.split_once('-').unwrap_or((r, r));
        let a: Ipv4Addr = a.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
        let b: Ipv4Addr = b.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
        End::External(a.into(), b.into())
    } else {
        End::Workload(s.to_owned())
    }
}

/// `All Connections`, `No Connections`, `TCP 8080,9090-9099,UDP 53`.
fn parse_conn(s: &str) -> Option<PortSet> {
    let s = s.trim();
    match s {
        "All Connections" => return Some(PortSet::all()),
        "No Connections" => return None,
        _ => {}
    }
    let mut out = PortSet::none();
    let mut proto = None;
    for item in s.split(',') {
        let item = item.trim();
        let ports = match item.split_once(' ') {
            Some((p, rest)) => {
                proto = Some(p.parse::<Protocol>().unwrap_or_else(|e| panic!("{s}: {e}")));
                rest
            }
            None if item.parse::<Protocol>().is_ok() => {
                proto = item.parse().ok();
                "1-65535"
            }
            None => item,
        };
        let proto = proto.unwrap_or_else(|| panic!("no protocol in {s}"));
        let (a, b) = ports.split_once('-').unwrap_or((ports, ports));
        out.insert(
            proto,
            a.parse().unwrap_or_else(|e| panic!("{s}: {e}")),
            b.parse().unwrap_or_else(|e| panic!("{s}: {e}")),
        );
    }
    Some(out)
}

fn expected_list(text: &str) -> Meaning {
    let mut m = Meaning::default();
    let mut ext: Raw<PortSet> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (ends, conn) = line
            .split_once(" : ")
            .unwrap_or_else(|| panic!("bad line {line}"));
        let (src, dst) = ends
            .split_once(" => ")
            .unwrap_or_else(|| panic!("bad line {line}"));
        let ports = parse_conn(conn).unwrap_or_else(|| panic!("no ports in {line}"));
        match (parse_end(src), parse_end(dst)) {
            (End::Workload(s), End::Workload(d)) => {
                m.pairs.insert((s, d), ports);
            }
            (End::External(a, b), End::Workload(w)) => {
                ext.entry((w, Dir::In)).or_default().push((a, b, ports))
            }
            (End::Workload(w), End::External(a, b)) => {
                ext.entry((w, Dir::Out)).or_default().push((a, b, ports))
            }
            _ => panic!("external to external: {line}"),
        }
    }
    m.external = ext
        .into_iter()
        .map(|(k, v)| (k, normalize(v, PortSet::union, |p| !p.is_empty())))
        .collect();
    m
}

fn expected_diff(text: &str) -> DiffMeaning {
    let mut m = DiffMeaning::default();
    let mut ext: Raw<BeforeAfter> = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("diff-type:")) {
        let field = |name: &str, next: Option<&str>| -> String {
            let start = line
                .find(&format!("{name}: "))
                .unwrap_or_else(|| panic!("{name} in {line}"))
                + name.len()
                + 2;
            let rest = &line[start..];
            let end = next
                .and_then(|n| rest.find(&format!(", {n}: ")))
                .unwrap_or(rest.len());
            rest[..end].to_owned()
        };
        let src = field("source", Some("destination"));
        let dst = field("destination", Some("ref1"));
        let before = parse_conn(&field("ref1", Some("ref2")));
        let after = parse_conn(&field("ref2", Some("workloads-diff-info")));
        match (parse_end(&src), parse_end(&dst)) {
            (End::Workload(s), End::Workload(d)) => {
                m.pairs.insert((s, d), (before, after));
            }
            (End::External(a, b), End::Workload(w)) => {
                ext.entry((w, Dir::In))
                    .or_default()
                    .push((a, b, (before, after)))
            }
            (End::Workload(w), End::External(a, b)) => ext
                .entry((w, Dir::Out))
                .or_default()
                .push((a, b, (before, after))),
            _ => panic!("external to external: {line}"),
        }
    }
    m.external = ext
        .into_iter()
        .map(|(k, v)| (k, normalize(v, |a, _| a.clone(), |(b, a)| b != a)))
        .collect();
    m
}

// ---- palisade's JSON ---------------------------------------------------

enum JEnd {
    Workload(String),
    /// IPv4 ranges only.
    External(Vec<(u32, u32)>),
}

fn json_end(v: &Value) -> JEnd {
    if let Some(list) = v.get("external") {
        let ranges = list
            .as_array()
            .unwrap_or_else(|| panic!("{v}"))
            .iter()
            .filter_map(|r| {
                let r = r.as_str().unwrap_or_else(|| panic!("{v}"));
                if r.contains(':') {
                    return None; // IPv6: see the module comment
                }
                Some(if let Some((a, p)) = r.split_once('/') {
                    let a: u32 = a.parse::<Ipv4Addr>().unwrap().into();
                    let p: u32 = p.parse().unwrap();
                    let size = if p == 0 {
                        u64::from(u32::MAX)
                    } else {
                        (1u64 << (32 - p)) - 1
                    };
                    (a, (u64::from(a) + size) as u32)
                } else {
                    let (a, b) = r.split_once('-').unwrap_or((r, r));
                    (
                        a.parse::<Ipv4Addr>().unwrap().into(),
                        b.parse::<Ipv4Addr>().unwrap().into(),
                    )
                })
            })
            .collect();
        JEnd::External(ranges)
    } else {
        let s = |k: &str| {
            v[k].as_str()
                .unwrap_or_else(|| panic!("{k} in {v}"))
                .to_owned()
        };
        JEnd::Workload(format!("{}/{}[{}]", s("namespace"), s("name"), s("kind")))
    }
}

fn json_ports(v: &Value) -> Option<PortSet> {
    match v {
        Value::Null => None,
        Value::String(s) if s == "all" => Some(PortSet::all()),
        Value::Object(m) => {
            let mut out = PortSet::none();
            for (proto, list) in m {
                let proto: Protocol = proto.parse().unwrap();
                for r in list.as_array().unwrap() {
                    let r = r.as_str().unwrap();
                    let (a, b) = r.split_once('-').unwrap_or((r, r));
                    out.insert(proto, a.parse().unwrap(), b.parse().unwrap());
                }
            }
            Some(out)
        }
        other => panic!("bad ports {other}"),
    }
}

fn actual_list(json: &Value) -> Meaning {
    let mut m = Meaning::default();
    let mut ext: Raw<PortSet> = BTreeMap::new();
    for c in json["connections"].as_array().unwrap() {
        let ports = json_ports(&c["ports"]).unwrap();
        assert!(!ports.is_empty(), "empty ports in {c}");
        match (json_end(&c["src"]), json_end(&c["dst"])) {
            (JEnd::Workload(s), JEnd::Workload(d)) => {
                assert_ne!(s, d, "self-connection listed: {c}");
                assert!(m.pairs.insert((s, d), ports).is_none(), "pair twice: {c}");
            }
            (JEnd::External(rs), JEnd::Workload(w)) => {
                for (a, b) in rs {
                    ext.entry((w.clone(), Dir::In))
                        .or_default()
                        .push((a, b, ports.clone()));
                }
            }
            (JEnd::Workload(w), JEnd::External(rs)) => {
                for (a, b) in rs {
                    ext.entry((w.clone(), Dir::Out))
                        .or_default()
                        .push((a, b, ports.clone()));
                }
            }
            _ => panic!("external to external: {c}"),
        }
    }
    m.external = ext
        .into_iter()
        .map(|(k, v)| (k, normalize(v, PortSet::union, |p| !p.is_empty())))
        .filter(|(_, v)| !v.is_empty())
        .collect();
    m
}

fn actual_diff(json: &Value) -> DiffMeaning {
    let mut m = DiffMeaning::default();
    let mut ext: Raw<BeforeAfter> = BTreeMap::new();
    for c in json["changes"].as_array().unwrap() {
        let v = (json_ports(&c["before"]), json_ports(&c["after"]));
        assert_ne!(v.0, v.1, "a change that changes nothing: {c}");
        match (json_end(&c["src"]), json_end(&c["dst"])) {
            (JEnd::Workload(s), JEnd::Workload(d)) => {
                m.pairs.insert((s, d), v);
            }
            (JEnd::External(rs), JEnd::Workload(w)) => {
                for (a, b) in rs {
                    ext.entry((w.clone(), Dir::In))
                        .or_default()
                        .push((a, b, v.clone()));
                }
            }
            (JEnd::Workload(w), JEnd::External(rs)) => {
                for (a, b) in rs {
                    ext.entry((w.clone(), Dir::Out))
                        .or_default()
                        .push((a, b, v.clone()));
                }
            }
            _ => panic!("external to external: {c}"),
        }
    }
    m.external = ext
        .into_iter()
        .map(|(k, v)| (k, normalize(v, |a, _| a.clone(), |(b, a)| b != a)))
        .filter(|(_, v)| !v.is_empty())
        .collect();
    m
}

// ---- running palisade --------------------------------------------------

fn simulate(cmd: SimulateCommand) -> Value {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run(cmd, &mut out, &mut err).unwrap_or_else(|e| panic!("simulate failed: {e}"));
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&err));
    serde_json::from_slice(&out).unwrap_or_else(|e| panic!("not JSON: {e}"))
}

fn list_json(case: &Path) -> Value {
    simulate(SimulateCommand::List {
        state: None,
        cluster: false,
        focus: None,
        output: Format::Json,
        strict: false,
        paths: vec![case.join("manifests")],
    })
}

/// Differences, in words, between two meanings of a list.
fn describe<K: Ord + std::fmt::Debug, V: PartialEq + std::fmt::Debug>(
    what: &str,
    want: &BTreeMap<K, V>,
    got: &BTreeMap<K, V>,
) -> Vec<String> {
    let keys: BTreeSet<&K> = want.keys().chain(got.keys()).collect();
    keys.into_iter()
        .filter_map(|k| match (want.get(k), got.get(k)) {
            (Some(w), Some(g)) if w == g => None,
            (w, g) => Some(format!("{what} {k:?}: expected {w:?}, got {g:?}")),
        })
        .collect()
}

fn cases(root: &Path) -> Vec<PathBuf> {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("manifests").is_dir())
        .collect();
    cases.sort();
    cases
}

#[test]
fn list_agrees_with_every_connections_txt() {
    list_agrees(&connectivity());
}

#[test]
fn list_agrees_with_every_cluster_policy_case() {
    list_agrees(&cluster_policies());
}

#[test]
fn diff_agrees_with_every_file_in_diffs() {
    diff_agrees(&connectivity());
}

#[test]
fn diff_agrees_with_every_cluster_policy_diff() {
    diff_agrees(&cluster_policies());
}

fn list_agrees(root: &Path) {
    let mut failures = Vec::new();
    let mut checked = 0;
    for case in cases(root) {
        let expected = case.join("connections.txt");
        if !expected.exists() {
            continue; // a case used only as one side of a diff
        }
        checked += 1;
        let want = expected_list(&std::fs::read_to_string(&expected).unwrap());
        let got = actual_list(&list_json(&case));
        let mut problems = describe("pair", &want.pairs, &got.pairs);
        problems.extend(describe("external", &want.external, &got.external));
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        println!(
            "{name}: {} pairs, {} external maps: {}",
            want.pairs.len(),
            want.external.len(),
            if problems.is_empty() {
                "ok"
            } else {
                "MISMATCH"
            }
        );
        if !problems.is_empty() {
            failures.push(format!("{name}:\n  {}", problems.join("\n  ")));
        }
    }
    assert!(checked > 0, "no case found under {}", root.display());
    // A case without connections.txt must at least be a side of a diff.
    let diffs: Vec<String> = std::fs::read_dir(root.join("diffs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for case in cases(root) {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            case.join("connections.txt").exists()
                || diffs.iter().any(|d| d
                    .split("__to__")
                    .any(|side| side.trim_end_matches(".txt") == name)),
            "{name} is checked by nothing"
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn diff_agrees(root: &Path) {
    let mut failures = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("diffs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty());
    for f in files {
        let stem = f.file_stem().unwrap().to_string_lossy().into_owned();
        let (old, new) = stem
            .split_once("__to__")
            .unwrap_or_else(|| panic!("{stem}"));
        let got = actual_diff(&simulate(SimulateCommand::Diff {
            output: DiffFormat::Json,
            fail_on: None,
            strict: false,
            base: None,
            cluster: false,
            state: None,
            prune: false,
            paths: vec![
                root.join(old).join("manifests"),
                root.join(new).join("manifests"),
            ],
        }));
        let want = expected_diff(&std::fs::read_to_string(&f).unwrap());
        let mut problems = describe("pair", &want.pairs, &got.pairs);
        problems.extend(describe("external", &want.external, &got.external));
        println!(
            "{stem}: {} changes: {}",
            want.pairs.len() + want.external.len(),
            if problems.is_empty() {
                "ok"
            } else {
                "MISMATCH"
            }
        );
        if !problems.is_empty() {
            failures.push(format!("{stem}:\n  {}", problems.join("\n  ")));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_comparison_itself_notices_differences() {
    // Same meaning, other cuts.
    let a = expected_list(
        "x/a[Pod] => 0.0.0.0-9.255.255.255[External] : TCP 53\nx/a[Pod] => 10.0.0.0-255.255.255.255[External] : UDP 53,TCP 53\n",
    );
    let b = expected_list(
        "x/a[Pod] => 0.0.0.0-255.255.255.255[External] : TCP 53\nx/a[Pod] => 10.0.0.0-255.255.255.255[External] : UDP 53\n",
    );
    assert_eq!(a, b);
    // Other meaning.
    let c = expected_list("x/a[Pod] => 0.0.0.0-255.255.255.255[External] : TCP 53\n");
    assert_ne!(a, c);
    assert_eq!(
        parse_conn("TCP 8080,9090-9099,UDP 53").unwrap().to_string(),
        "TCP 8080,9090-9099; UDP 53"
    );
}
