//! Manifests as they are at a git revision, for `simulate diff --base
//! REV`: the old side of a pull request read straight from the
//! repository (the merge base of REV and HEAD, as `git diff REV...`
//! compares), so a CI job or a pre-commit hook needs no second checkout.
//! Runs the `git` command in the current directory.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use thiserror::Error;

use crate::manifest::is_manifest_file_name;

/// Why the files at a revision could not be read.
#[derive(Debug, Error)]
pub enum GitError {
    /// `git` could not be run.
    #[error("cannot run git: {0}")]
    Spawn(#[source] std::io::Error),
    /// `git` said no.
    #[error("git {args}: {stderr}")]
    Failed {
        /// The arguments.
        args: String,
        /// What git printed.
        stderr: String,
    },
    /// Its output was not what git writes.
    #[error("unexpected output from git cat-file: {0}")]
    Output(String),
}

fn git(args: &[&str]) -> Result<Vec<u8>, GitError> {
    let out = Command::new("git")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(GitError::Spawn)?;
    if !out.status.success() {
        return Err(GitError::Failed {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(out.stdout)
}

/// The commit where HEAD's history left `rev`'s (`git merge-base REV
/// HEAD`).
pub fn merge_base(rev: &str) -> Result<String, GitError> {
    let out = git(&["merge-base", rev, "HEAD"])?;
    Ok(String::from_utf8_lossy(&out).trim().to_owned())
}

/// The manifest files under `paths` as they are at `commit` (paths
/// relative to the current directory, as given): named files whatever
/// their name, `.yaml`, `.yml` and `.json` files under named directories,
/// in path order. A path that did not exist at `commit` has no files.
pub fn files_at(commit: &str, paths: &[PathBuf]) -> Result<Vec<(PathBuf, Vec<u8>)>, GitError> {
    let mut wanted: Vec<(PathBuf, String)> = Vec::new();
    for p in paths {
        let arg = p.to_string_lossy().into_owned();
        let out = git(&["ls-tree", "-r", "-z", commit, "--", &arg])?;
        for entry in out.split(|b| *b == 0).filter(|e| !e.is_empty()) {
            // `<mode> SP <type> SP <object> TAB <path>`
            let entry = String::from_utf8_lossy(entry);
            let Some((meta, path)) = entry.split_once('\t') else {
                continue;
            };
            let mut meta = meta.split(' ');
            let (Some(_), Some("blob"), Some(object)) = (meta.next(), meta.next(), meta.next())
            else {
                continue;
            };
            let path = PathBuf::from(path);
            // A named file is read whatever its name, as kubectl does.
            if path == *p || is_manifest_file_name(&path) {
                wanted.push((path, object.to_owned()));
            }
        }
    }
    let blobs = cat_blobs(wanted.iter().map(|(_, o)| o.as_str()))?;
    Ok(wanted.into_iter().map(|(p, _)| p).zip(blobs).collect())
}

/// The contents of blobs, through one `git cat-file --batch`.
fn cat_blobs<'a>(objects: impl Iterator<Item = &'a str>) -> Result<Vec<Vec<u8>>, GitError> {
    let input: String = objects.map(|o| format!("{o}\n")).collect();
    if input.is_empty() {
        return Ok(Vec::new());
    }
    let mut child = Command::new("git")
        .args(["cat-file", "--batch"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(GitError::Spawn)?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| GitError::Output("no stdin".into()))?;
    // Written from another thread: git answers while it reads, and a full
    // stdout pipe would otherwise stop both.
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let mut out = Vec::new();
    child
        .stdout
        .take()
        .ok_or_else(|| GitError::Output("no stdout".into()))?
        .read_to_end(&mut out)
        .map_err(GitError::Spawn)?;
    let _ = writer.join();
    let status = child.wait().map_err(GitError::Spawn)?;
    if !status.success() {
        return Err(GitError::Failed {
            args: "cat-file --batch".into(),
            stderr: format!("exit {status}"),
        });
    }
    parse_batch(&out)
}

/// `<object> SP blob SP <size> LF <contents> LF`, repeated.
fn parse_batch(mut out: &[u8]) -> Result<Vec<Vec<u8>>, GitError> {
    let mut blobs = Vec::new();
    while !out.is_empty() {
        let nl = out
            .iter()
            .position(|b| *b == b'\n')
            .ok_or_else(|| GitError::Output("a header without an end".into()))?;
        let header = String::from_utf8_lossy(&out[..nl]).into_owned();
        let size: usize = header
            .rsplit(' ')
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| GitError::Output(header.clone()))?;
        let start = nl + 1;
        let end = start + size;
        if out.len() < end + 1 {
            return Err(GitError::Output(format!("{header}: cut short")));
        }
        blobs.push(out[start..end].to_vec());
        out = &out[end + 1..];
    }
    Ok(blobs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_output_is_split_by_sizes() {
        let out = b"abc blob 3\nx\ny\ndef blob 0\n\n";
        assert_eq!(
            parse_batch(out).unwrap(),
            vec![b"x\ny".to_vec(), Vec::new()]
        );
        assert!(parse_batch(b"abc blob 9\nshort\n").is_err());
    }
}
