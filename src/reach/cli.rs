//! `palisade simulate list | eval | diff | verify`: the thin shell over
//! the pure core. Reads manifests like `kubectl apply -f PATH -R`, notes files that
//! are not manifests on stderr (an error with `--strict`), and renders.
//! `diff --cluster` / `--state DIR` applies the files on top of the
//! cluster ([`super::drift`]) and diffs the two.
//!
//! Exit codes: 0 fine (eval: allowed); 1 eval denied, `diff --fail-on
//! open` found something opened, or `verify --fail-on gap` found a gap; 2
//! (as `Err`) usage, read or parse errors.

use std::io::{self, Write};
use std::net::IpAddr;
use std::path::PathBuf;

use thiserror::Error;

use super::ci_output;
use super::compute::connections;
use super::diff::diff;
use super::drift::{OnTop, Prune};
use super::explain::{ExplainError, Query, Target, explain};
use super::flow_formats;
use super::flow_read::{FlowReadError, read_flows};
use super::model::{Model, ModelBuilder, ModelError, WorkloadId};
use super::output::{Format, write_diff, write_list};
use super::sources::Sources;
use super::verify::Verifier;
use super::verify_output::{VerifyFormat, write_verify};
use crate::manifest::skipped::{self, NotManifests};
use crate::manifest::{self, Document, Entry, ReadError};
use crate::ports::Protocol;
use k8s_openapi::jiff::Timestamp;

/// `palisade simulate ...`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum SimulateCommand {
    /// Every allowed connection between workloads, and between workloads
    /// and addresses outside the cluster.
    List {
        /// Manifests of the cluster as it is; PATHs are applied on top.
        #[arg(long, value_name = "DIR")]
        state: Option<PathBuf>,
        /// Read the live cluster (KUBECONFIG or in-cluster; read-only:
        /// lists namespaces, pods, NetworkPolicies, and ReplicaSets and
        /// Jobs as metadata); PATHs are applied on top.
        #[arg(long, conflicts_with = "state")]
        cluster: bool,
        /// Keep only the connections of this workload (`name`, `ns/name`
        /// or `ns/name[Kind]`).
        #[arg(long, value_name = "WORKLOAD")]
        focus: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        output: Format,
        /// A file that is not a manifest is an error (exit 2), not a note.
        #[arg(long)]
        strict: bool,
        /// Manifest files or directories, read like `kubectl apply -f PATH -R`.
        #[arg(value_name = "PATH")]
        paths: Vec<PathBuf>,
    },
    /// Is one connection allowed, and which policy and rule decide.
    /// Exit 0 allowed, 1 denied.
    Eval {
        /// The source: a workload (`name`, `ns/name`, `ns/name[Kind]`) or
        /// an IP address outside the cluster.
        #[arg(long, value_name = "A")]
        from: String,
        /// The destination, as for --from.
        #[arg(long, value_name = "B")]
        to: String,
        /// `443`, `443/TCP`, `53/UDP`.
        #[arg(long, value_name = "PORT[/PROTO]")]
        port: String,
        /// Manifests of the cluster as it is; PATHs are applied on top.
        #[arg(long, value_name = "DIR")]
        state: Option<PathBuf>,
        /// Read the live cluster (KUBECONFIG or in-cluster; read-only:
        /// lists namespaces, pods, NetworkPolicies, and ReplicaSets and
        /// Jobs as metadata); PATHs are applied on top.
        #[arg(long, conflicts_with = "state")]
        cluster: bool,
        /// A file that is not a manifest is an error (exit 2), not a note.
        #[arg(long)]
        strict: bool,
        /// Manifest files or directories.
        #[arg(value_name = "PATH")]
        paths: Vec<PathBuf>,
    },
    /// How connectivity changes from OLD to NEW (e.g. the main branch's
    /// manifests and a pull request's); with --base REV, from the PATHs at
    /// the merge base of REV and HEAD to the PATHs in the working tree; or,
    /// with --cluster or --state, what applying the PATHs would change in
    /// the cluster (drift).
    Diff {
        /// Output format (sarif and junit for CI: the connections opened,
        /// and one test case per change).
        #[arg(long, value_enum, default_value_t = DiffFormat::Text)]
        output: DiffFormat,
        /// `open`: exit 1 when any connection is added or widened.
        #[arg(long, value_enum, value_name = "WHAT")]
        fail_on: Option<FailOn>,
        /// A file that is not a manifest is an error (exit 2), not a note.
        #[arg(long)]
        strict: bool,
        /// Read the old side from git: the PATHs at the merge base of REV
        /// and HEAD (what `git diff REV...` compares); every argument is
        /// then a PATH of the new side.
        #[arg(long, value_name = "REV", conflicts_with_all = ["cluster", "state"])]
        base: Option<String>,
        /// Before: the live cluster (KUBECONFIG or in-cluster; read-only:
        /// lists namespaces, pods, NetworkPolicies, and ReplicaSets and Jobs
        /// as metadata); after: the PATHs applied on top.
        #[arg(long, conflicts_with = "state")]
        cluster: bool,
        /// Before: the manifests under DIR, standing in for the cluster;
        /// after: the PATHs applied on top.
        #[arg(long, value_name = "DIR")]
        state: Option<PathBuf>,
        /// With --cluster or --state: the PATHs are the whole truth for the
        /// namespaces they mention, so NetworkPolicies, pods and workloads
        /// there that no file holds are deleted (without it nothing is).
        #[arg(long)]
        prune: bool,
        /// OLD and NEW, two manifest files or directories; with --base, the
        /// PATHs to compare; with --cluster or --state, the manifests
        /// applied on top.
        #[arg(value_name = "PATH", required = true)]
        paths: Vec<PathBuf>,
    },
    /// Observed flows held against the policies: connections seen that
    /// they deny (gaps, with eval's explanation), what rules admit that no
    /// flow used (with a narrower rule to review), and coverage. FLOWS are
    /// the access proxy's log, Hubble's `hubble observe -o json`, or plain
    /// CSV/JSON lines (time, src_ip, dst_ip, dst_port, protocol); files,
    /// directories, `-` for standard input, gzip or not.
    Verify {
        /// The cluster as a snapshot of manifests (e.g. `kubectl get
        /// namespaces,networkpolicies,pods,replicasets -A -o json`): pods
        /// with their IPs name the flows' ends.
        #[arg(long, value_name = "DIR")]
        state: Option<PathBuf>,
        /// Read the live cluster (KUBECONFIG or in-cluster; read-only, as
        /// for list).
        #[arg(long, conflicts_with = "state")]
        cluster: bool,
        /// Only flows at or after T: an RFC 3339 time or a duration back
        /// from now (`90m`, `24h`, `7d`). Flows without a time are kept.
        #[arg(long, value_name = "T")]
        since: Option<String>,
        /// Output format.
        #[arg(long, visible_alias = "format", value_enum, default_value_t = VerifyFormat::Text)]
        output: VerifyFormat,
        /// `gap`: exit 1 when some connection seen is one the policies deny.
        #[arg(long, value_enum, value_name = "WHAT")]
        fail_on: Option<VerifyFailOn>,
        /// A file of the state that is not a manifest, or a flow line that
        /// is no record, is an error (exit 2, once all are counted).
        #[arg(long)]
        strict: bool,
        /// Flow files or directories; `-` for standard input.
        #[arg(value_name = "FLOWS", required = true)]
        flows: Vec<PathBuf>,
    },
}

/// What makes `verify` fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum VerifyFailOn {
    /// A connection seen that the policies deny.
    Gap,
}

/// The outputs of `diff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DiffFormat {
    /// One line per change.
    #[default]
    Text,
    /// The JSON contract.
    Json,
    /// A Markdown table.
    Md,
    /// A Graphviz digraph.
    Dot,
    /// SARIF 2.1.0: one result per connection opened, at the policy that
    /// admits it.
    Sarif,
    /// JUnit XML: one test case per connection change.
    Junit,
}

/// What makes `diff` fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FailOn {
    /// A connection added, or ports added to one.
    Open,
}

/// Why `simulate` cannot answer (exit code 2).
#[derive(Debug, Error)]
pub enum SimulateError {
    /// Bad arguments.
    #[error("{0}")]
    Usage(String),
    /// A path cannot be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// A document cannot enter the model.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// `--strict` and some files or documents are not manifests.
    #[error(transparent)]
    NotManifests(#[from] NotManifests),
    /// No workload matches a reference.
    #[error("no workload matches {0:?}")]
    UnknownWorkload(String),
    /// A reference matches several workloads.
    #[error("{reference:?} names several workloads: {}; say which with namespace/name[Kind]", .candidates.join(", "))]
    Ambiguous {
        /// As given.
        reference: String,
        /// What it matches.
        candidates: Vec<String>,
    },
    /// eval cannot answer.
    #[error(transparent)]
    Explain(#[from] ExplainError),
    /// Writing the output failed.
    #[error("cannot write the output: {0}")]
    Output(#[from] io::Error),
    /// The old side could not be read from git.
    #[error(transparent)]
    Git(#[from] crate::git::GitError),
    /// The JUnit report could not be written.
    #[error("cannot write JUnit XML: {0}")]
    Junit(#[from] quick_junit::SerializeError),
    /// Flows could not be read.
    #[error(transparent)]
    Flows(#[from] FlowReadError),
    /// `verify --strict` and some flow lines are no records.
    #[error(
        "{0} flow line(s) are no record of any source (listed above); without --strict they are counted and left out"
    )]
    MalformedFlows(u64),
}

impl SimulateError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        2
    }
}

impl SimulateCommand {
    /// Does the command read the live cluster (`--cluster`)? The caller
    /// then lists it and passes the objects to [`run_seeded`].
    pub fn wants_cluster(&self) -> bool {
        matches!(
            self,
            SimulateCommand::List { cluster: true, .. }
                | SimulateCommand::Eval { cluster: true, .. }
                | SimulateCommand::Diff { cluster: true, .. }
                | SimulateCommand::Verify { cluster: true, .. }
        )
    }
}

/// Runs one `simulate` command; returns the exit code (0 or 1), or the
/// error to report with exit code 2. Notes go to `err`.
pub fn run(
    cmd: SimulateCommand,
    out: &mut impl Write,
    err: &mut impl Write,
) -> Result<i32, SimulateError> {
    run_seeded(cmd, None, out, err)
}

/// [`run`], starting from a model builder already holding the live
/// cluster's objects (for `--cluster`).
pub fn run_seeded(
    cmd: SimulateCommand,
    seed: Option<ModelBuilder>,
    out: &mut impl Write,
    err: &mut impl Write,
) -> Result<i32, SimulateError> {
    if cmd.wants_cluster() && seed.is_none() {
        return Err(SimulateError::Usage(
            "--cluster needs the live cluster's objects".to_owned(),
        ));
    }
    let mut seed = seed;
    match cmd {
        SimulateCommand::List {
            state,
            cluster: _,
            focus,
            output,
            strict,
            paths,
        } => {
            let model = load(seed.take(), state, &paths, strict, err)?;
            let mut conns = connections(&model);
            if let Some(f) = focus {
                let keep = model.find(&f);
                if keep.is_empty() {
                    return Err(SimulateError::UnknownWorkload(f));
                }
                conns.retain(|c| {
                    [&c.src, &c.dst]
                        .iter()
                        .any(|e| e.workload().is_some_and(|w| keep.contains(&w)))
                });
            }
            write_list(&conns, output, out)?;
            Ok(0)
        }
        SimulateCommand::Eval {
            from,
            to,
            port,
            state,
            cluster: _,
            strict,
            paths,
        } => {
            let (port, protocol) = parse_port(&port)?;
            let model = load(seed.take(), state, &paths, strict, err)?;
            let q = Query {
                from: target(&model, &from)?,
                to: target(&model, &to)?,
                protocol,
                port,
            };
            let e = explain(&model, &q)?;
            write!(out, "{e}")?;
            Ok(if e.allowed { 0 } else { 1 })
        }
        SimulateCommand::Diff {
            output,
            fail_on,
            strict,
            base,
            cluster: _,
            state,
            prune,
            paths,
        } => {
            let mut sources = Sources::default();
            let (before, after) = match (seed.take(), state) {
                (None, None) => {
                    if prune {
                        return Err(SimulateError::Usage(
                            "--prune needs --cluster or --state DIR: it says what applying the PATHs deletes"
                                .to_owned(),
                        ));
                    }
                    match &base {
                        Some(rev) => {
                            let commit = crate::git::merge_base(rev)?;
                            let files = crate::git::files_at(&commit, &paths)?;
                            let short: String = commit.chars().take(12).collect();
                            let before = load_blobs(&short, files, strict, err)?;
                            let after =
                                load_into(None, None, &paths, strict, err, Some(&mut sources))?;
                            (before, after)
                        }
                        None => {
                            let [old, new] = <[PathBuf; 2]>::try_from(paths).map_err(|p| {
                                SimulateError::Usage(format!(
                                    "diff takes OLD NEW ({} paths given); to compare a cluster with files, use --cluster or --state DIR; with git, --base REV",
                                    p.len()
                                ))
                            })?;
                            let before = load(None, None, &[old], strict, err)?;
                            let after =
                                load_into(None, None, &[new], strict, err, Some(&mut sources))?;
                            (before, after)
                        }
                    }
                }
                (seed, state) => {
                    let mut cluster = seed.unwrap_or_default();
                    read_onto(state.as_slice(), strict, err, &mut |d| {
                        cluster.document(d).map(drop)
                    })?;
                    let before = built(&cluster, err)?;
                    let prune = if prune {
                        Prune::Mentioned
                    } else {
                        Prune::Nothing
                    };
                    let mut on_top = OnTop::new(&mut cluster, prune);
                    read_onto(&paths, strict, err, &mut |d| {
                        sources.record(d);
                        on_top.document(d)
                    })?;
                    let after = built(&cluster, err)?;
                    (before, after)
                }
            };
            let d = diff(&before, &after);
            let fail_open = fail_on == Some(FailOn::Open);
            match output {
                DiffFormat::Text => write_diff(&d, Format::Text, out)?,
                DiffFormat::Json => write_diff(&d, Format::Json, out)?,
                DiffFormat::Md => write_diff(&d, Format::Md, out)?,
                DiffFormat::Dot => write_diff(&d, Format::Dot, out)?,
                DiffFormat::Sarif => {
                    let log = ci_output::sarif(&d, &after, &sources, fail_open);
                    serde_json::to_writer_pretty(&mut *out, &log).map_err(io::Error::from)?;
                    writeln!(out)?;
                }
                DiffFormat::Junit => {
                    let xml = ci_output::junit(&d, &after, &sources, fail_open)?;
                    write!(out, "{xml}")?;
                }
            }
            Ok(if fail_open && d.opens() { 1 } else { 0 })
        }
        SimulateCommand::Verify {
            state,
            cluster: _,
            since,
            output,
            fail_on,
            strict,
            flows,
        } => {
            if seed.is_none() && state.is_none() {
                return Err(SimulateError::Usage(
                    "verify needs the cluster the flows ran in: --state DIR (a snapshot with pods and their IPs) or --cluster"
                        .to_owned(),
                ));
            }
            let since = since
                .map(|s| flow_formats::since(&s, Timestamp::now()))
                .transpose()
                .map_err(|e| SimulateError::Usage(e.to_string()))?;
            let model = load(seed.take(), state, &[], strict, err)?;
            let mut verifier = Verifier::new(&model);
            let stats = read_flows(&flows, &mut io::stdin().lock(), since, &mut |f| {
                verifier.add(f)
            })?;
            let report = verifier.finish();
            write_verify(&report, &stats, &model, output, out)?;
            if strict && stats.malformed > 0 {
                return Err(SimulateError::MalformedFlows(stats.malformed));
            }
            let gaps = fail_on == Some(VerifyFailOn::Gap) && !report.gaps.is_empty();
            Ok(if gaps { 1 } else { 0 })
        }
    }
}

/// Reads `--state` then the paths into one model (later objects replace
/// earlier ones, as `kubectl apply` would).
fn load(
    seed: Option<ModelBuilder>,
    state: Option<PathBuf>,
    paths: &[PathBuf],
    strict: bool,
    err: &mut impl Write,
) -> Result<Model, SimulateError> {
    load_into(seed, state, paths, strict, err, None)
}

/// [`load`], noting in `sources` where each policy and workload was read.
fn load_into(
    seed: Option<ModelBuilder>,
    state: Option<PathBuf>,
    paths: &[PathBuf],
    strict: bool,
    err: &mut impl Write,
    mut sources: Option<&mut Sources>,
) -> Result<Model, SimulateError> {
    if seed.is_none() && state.is_none() && paths.is_empty() {
        return Err(SimulateError::Usage(
            "nothing to read: give manifest PATHs, --state DIR or --cluster".to_owned(),
        ));
    }
    let mut b = seed.unwrap_or_default();
    let files: Vec<PathBuf> = state.into_iter().chain(paths.iter().cloned()).collect();
    read_onto(&files, strict, err, &mut |d| {
        if let Some(s) = sources.as_deref_mut() {
            s.record(d);
        }
        b.document(d).map(drop)
    })?;
    built(&b, err)
}

/// The model of files read from git (`COMMIT:path` in notes).
fn load_blobs(
    rev: &str,
    files: Vec<(PathBuf, Vec<u8>)>,
    strict: bool,
    err: &mut impl Write,
) -> Result<Model, SimulateError> {
    let mut b = ModelBuilder::default();
    let mut skipped = Vec::new();
    for (path, bytes) in files {
        let source = PathBuf::from(format!("{rev}:{}", path.display()));
        manifest::stream_reader(&source, bytes.as_slice(), &manifest::all_kinds, &mut |e| {
            absorb(e, &mut skipped, err, &mut |d| b.document(d).map(drop))
        })?;
    }
    skipped::verdict(skipped, strict)?;
    built(&b, err)
}

/// Hands one object read to `add`, or notes what is not one.
fn absorb(
    e: Entry,
    skipped: &mut Vec<manifest::Skipped>,
    err: &mut impl Write,
    add: &mut dyn FnMut(&Document) -> Result<(), ModelError>,
) -> Result<(), SimulateError> {
    match e {
        Entry::Document(d) => add(&d)?,
        Entry::Skipped(s) => {
            writeln!(err, "{}", skipped::note(&s))?;
            skipped.push(s);
        }
    }
    Ok(())
}

/// Reads the paths in order, one object at a time, and hands each to
/// `add`; what is not a manifest is noted on `err` (an error with
/// `strict`, once all are noted).
fn read_onto(
    paths: &[PathBuf],
    strict: bool,
    err: &mut impl Write,
    add: &mut dyn FnMut(&Document) -> Result<(), ModelError>,
) -> Result<(), SimulateError> {
    let mut skipped = Vec::new();
    manifest::stream_paths(paths, &manifest::all_kinds, &mut |e| {
        absorb(e, &mut skipped, err, add)
    })?;
    skipped::verdict(skipped, strict)?;
    Ok(())
}

/// The model of `b`, its notes written to `err`.
fn built(b: &ModelBuilder, err: &mut impl Write) -> Result<Model, SimulateError> {
    let model = b.build();
    for n in model.notes() {
        writeln!(err, "note: {n}")?;
    }
    Ok(model)
}

/// `443`, `443/TCP`, `53/udp`.
fn parse_port(s: &str) -> Result<(u16, Protocol), SimulateError> {
    let bad = || {
        SimulateError::Usage(format!(
            "--port {s:?}: expected PORT or PORT/PROTOCOL, e.g. 443 or 53/UDP"
        ))
    };
    let (num, proto) = match s.split_once('/') {
        Some((n, p)) => (n, p.to_ascii_uppercase().parse().map_err(|_| bad())?),
        None => (s, Protocol::Tcp),
    };
    let port: u16 = num.trim().parse().map_err(|_| bad())?;
    if port == 0 {
        return Err(bad());
    }
    Ok((port, proto))
}

/// An IP address, or exactly one workload.
fn target(model: &Model, reference: &str) -> Result<Target, SimulateError> {
    if let Ok(ip) = reference.parse::<IpAddr>() {
        return Ok(Target::Address(ip));
    }
    let found: Vec<&WorkloadId> = model.find(reference);
    match found.as_slice() {
        [] => Err(SimulateError::UnknownWorkload(reference.to_owned())),
        [one] => Ok(Target::Workload((*one).clone())),
        many => Err(SimulateError::Ambiguous {
            reference: reference.to_owned(),
            candidates: many.iter().map(ToString::to_string).collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_parse_with_and_without_protocol() {
        assert_eq!(parse_port("443").unwrap(), (443, Protocol::Tcp));
        assert_eq!(parse_port("53/udp").unwrap(), (53, Protocol::Udp));
        assert_eq!(parse_port("9/SCTP").unwrap(), (9, Protocol::Sctp));
        for bad in ["", "http", "0", "70000", "80/ICMP"] {
            assert!(parse_port(bad).is_err(), "{bad}");
        }
    }

    fn diff(state: Option<&str>, prune: bool, paths: &[&str]) -> Result<i32, SimulateError> {
        let cmd = SimulateCommand::Diff {
            output: DiffFormat::Text,
            fail_on: None,
            strict: false,
            base: None,
            cluster: false,
            state: state.map(PathBuf::from),
            prune,
            paths: paths.iter().map(PathBuf::from).collect(),
        };
        run(cmd, &mut Vec::new(), &mut Vec::new())
    }

    /// `diff` compares two trees, or a cluster with files: anything else
    /// is a usage error that says which form to use.
    #[test]
    fn diff_takes_old_and_new_or_a_cluster_and_files() {
        let e = diff(None, false, &["a", "b", "c"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "diff takes OLD NEW (3 paths given); to compare a cluster with files, use --cluster or --state DIR; with git, --base REV"
        );
        let e = diff(None, true, &["a", "b"]).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("--prune needs --cluster or --state DIR"),
            "{e}"
        );
        assert_eq!(e.exit_code(), 2);
        // A state and any number of files is drift.
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.yaml"), dir.path().join("b.yaml"));
        std::fs::write(&a, "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n").unwrap();
        std::fs::write(&b, "apiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n").unwrap();
        let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
        assert_eq!(diff(Some(a), true, &[a, b, a]).unwrap(), 0);
        // --cluster without the cluster's objects cannot run.
        let cmd = SimulateCommand::Diff {
            output: DiffFormat::Text,
            fail_on: None,
            strict: false,
            base: None,
            cluster: true,
            state: None,
            prune: false,
            paths: vec![PathBuf::from(a)],
        };
        assert!(matches!(
            run(cmd, &mut Vec::new(), &mut Vec::new()),
            Err(SimulateError::Usage(_))
        ));
    }

    #[test]
    fn nothing_to_read_is_a_usage_error() {
        let e = load(None, None, &[], false, &mut Vec::new()).unwrap_err();
        assert!(matches!(e, SimulateError::Usage(_)));
        assert_eq!(e.exit_code(), 2);
    }
}
