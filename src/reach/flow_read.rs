//! Reading flow files for `simulate verify` (the shell around
//! [`super::flow_formats`]): files, directories (recursively, in name
//! order), `-` for standard input, gzip recognised by its magic bytes
//! whatever the name. Streamed line by line: memory does not grow with
//! the input. A line that is no record is counted and, up to a limit,
//! kept with its file and line number for the report; never a panic,
//! never dropped unsaid.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use k8s_openapi::jiff::Timestamp;
use thiserror::Error;

use super::flow_formats::{CsvColumns, LineOutcome, Skipped, is_json, parse_json_line};
use super::flows::Flow;

/// How many malformed lines are kept with their place (all are counted).
pub const KEEP_MALFORMED: usize = 50;

/// A flow input that cannot be read at all.
#[derive(Debug, Error)]
pub enum FlowReadError {
    /// A path does not exist or cannot be opened.
    #[error("cannot read flows from {path}: {source}")]
    Open {
        /// As given.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Reading failed part way (a truncated gzip stream, an I/O error).
    #[error("cannot read flows from {path} after line {line}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The last line read.
        line: usize,
        /// Why.
        source: io::Error,
    },
}

/// A line that is no record of any source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    /// The file (`-` for standard input).
    pub file: String,
    /// 1-based line number.
    pub line: usize,
    /// Why.
    pub reason: String,
}

/// What reading found besides the flows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Files read.
    pub files: usize,
    /// Lines read.
    pub lines: u64,
    /// Flows handed on.
    pub flows: u64,
    /// Flows before `--since`, left out.
    pub before_since: u64,
    /// Records set aside, by kind.
    pub skipped: BTreeMap<Skipped, u64>,
    /// Lines that are no record.
    pub malformed: u64,
    /// The first [`KEEP_MALFORMED`] of them.
    pub malformed_lines: Vec<BadLine>,
}

impl ReadStats {
    fn malformed(&mut self, file: &str, line: usize, reason: String) {
        self.malformed += 1;
        if self.malformed_lines.len() < KEEP_MALFORMED {
            self.malformed_lines.push(BadLine {
                file: file.to_owned(),
                line,
                reason,
            });
        }
    }
}

/// Reads every path in order (`-`: `stdin`), handing each flow at or after
/// `since` to `sink`.
pub fn read_flows(
    paths: &[PathBuf],
    stdin: &mut dyn Read,
    since: Option<Timestamp>,
    sink: &mut dyn FnMut(&Flow),
) -> Result<ReadStats, FlowReadError> {
    let mut stats = ReadStats::default();
    for p in paths {
        if p.as_os_str() == "-" {
            read_one("-", &mut *stdin, since, &mut stats, sink).map_err(|(line, source)| {
                FlowReadError::Read {
                    path: p.clone(),
                    line,
                    source,
                }
            })?;
            continue;
        }
        for file in files_under(p)? {
            let f = File::open(&file).map_err(|source| FlowReadError::Open {
                path: file.clone(),
                source,
            })?;
            read_one(&file.display().to_string(), f, since, &mut stats, sink).map_err(
                |(line, source)| FlowReadError::Read {
                    path: file.clone(),
                    line,
                    source,
                },
            )?;
        }
    }
    Ok(stats)
}

/// `path` itself, or every file under it, sorted.
fn files_under(path: &Path) -> Result<Vec<PathBuf>, FlowReadError> {
    let open_err = |source| FlowReadError::Open {
        path: path.to_owned(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(open_err)?;
    if !meta.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(open_err)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(|source| FlowReadError::Open {
            path: path.to_owned(),
            source,
        })?;
    entries.sort();
    let mut out = Vec::new();
    for e in entries {
        out.extend(files_under(&e)?);
    }
    Ok(out)
}

/// Reads one stream, gzip or not. Errors carry the last line read.
fn read_one(
    name: &str,
    input: impl Read,
    since: Option<Timestamp>,
    stats: &mut ReadStats,
    sink: &mut dyn FnMut(&Flow),
) -> Result<(), (usize, io::Error)> {
    stats.files += 1;
    let mut buffered = BufReader::with_capacity(1 << 16, input);
    let gz = buffered
        .fill_buf()
        .map_err(|e| (0, e))?
        .starts_with(&[0x1f, 0x8b]);
    let mut reader: Box<dyn BufRead> = if gz {
        Box::new(BufReader::with_capacity(
            1 << 16,
            MultiGzDecoder::new(buffered),
        ))
    } else {
        Box::new(buffered)
    };
    let mut buf = Vec::with_capacity(1024);
    let mut csv: Option<CsvColumns> = None;
    let mut first = true;
    let mut n = 0usize;
    loop {
        buf.clear();
        let read = reader.read_until(b'\n', &mut buf).map_err(|e| (n, e))?;
        if read == 0 {
            return Ok(());
        }
        n += 1;
        stats.lines += 1;
        let Ok(line) = std::str::from_utf8(&buf) else {
            stats.malformed(name, n, "not UTF-8 text".to_owned());
            continue;
        };
        if first && !line.trim().is_empty() {
            first = false;
            if !is_json(line) && !line.trim_start().starts_with('[') {
                match CsvColumns::from_header(line) {
                    Ok(c) => {
                        csv = Some(c);
                        *stats.skipped.entry(Skipped::Blank).or_default() += 1;
                    }
                    Err(e) => stats.malformed(name, n, e.to_string()),
                }
                continue;
            }
        }
        let outcome = match &csv {
            Some(c) => c.parse(line),
            None => parse_json_line(line),
        };
        match outcome {
            Ok(LineOutcome::Flow(f)) => {
                if since.is_some_and(|s| f.time.is_some_and(|t| t < s)) {
                    stats.before_since += 1;
                    continue;
                }
                stats.flows += 1;
                sink(&f);
            }
            Ok(LineOutcome::Skip(k)) => *stats.skipped.entry(k).or_default() += 1,
            Err(e) => stats.malformed(name, n, e.to_string()),
        }
    }
}
