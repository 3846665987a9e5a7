//! Reading Kubernetes manifests from files and directories, the way
//! `kubectl apply -f PATH -R` does: `.yaml`, `.yml` and `.json` files,
//! multi-document YAML, `kind: List` and typed lists (`PodList`, ...).
//!
//! A file that is not a manifest (a JSON array, a YAML document without
//! `apiVersion`/`kind`, unparsable text) is not fatal here: it is returned
//! as a [`Skipped`] entry, and each command decides whether that is an
//! error (`check`, `simulate --strict`) or a note on stderr.

use std::fmt;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::cluster_policy::ClusterPolicyError;
use crate::decide::Gvk;
use crate::netpol::PolicyError;

/// One Kubernetes object read from a file.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// The file it came from.
    pub source: PathBuf,
    /// Its position among the documents of the file (0-based; list items
    /// share their list's index).
    pub index: usize,
    /// Its kind.
    pub gvk: Gvk,
    /// The object as JSON.
    pub value: serde_json::Value,
}

impl Document {
    /// `metadata.name`, or `""`.
    pub fn name(&self) -> &str {
        self.value
            .pointer("/metadata/name")
            .and_then(|v| v.as_str())
            .unwrap_or("")
    }

    /// `metadata.namespace`, if set.
    pub fn namespace(&self) -> Option<&str> {
        self.value
            .pointer("/metadata/namespace")
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
    }

    /// `file#index` for messages.
    pub fn origin(&self) -> String {
        format!("{}#{}", self.source.display(), self.index)
    }

    /// This document does not parse as its declared kind.
    pub fn bad_object(&self, e: impl fmt::Display) -> DocumentError {
        DocumentError::BadObject {
            origin: self.origin(),
            kind: self.gvk.kind.clone(),
            message: e.to_string(),
        }
    }

    /// This document is a NetworkPolicy Kubernetes would reject.
    pub fn bad_policy(&self, e: PolicyError) -> DocumentError {
        DocumentError::BadPolicy {
            origin: self.origin(),
            source: Box::new(e),
        }
    }

    /// This document is a cluster-wide policy (AdminNetworkPolicy, ...)
    /// Kubernetes would reject.
    pub fn bad_cluster_policy(&self, e: ClusterPolicyError) -> DocumentError {
        DocumentError::BadClusterPolicy {
            origin: self.origin(),
            source: Box::new(e),
        }
    }
}

/// A document that reads as a manifest but not as the object it declares.
/// Shared by every consumer of manifests (`--state`, `check`, `simulate`),
/// so the same bad file gets the same message from each.
#[derive(Debug, Error)]
pub enum DocumentError {
    /// The document does not parse as its kind.
    #[error("{origin}: not a valid {kind}: {message}")]
    BadObject {
        /// `file#document`.
        origin: String,
        /// The kind.
        kind: String,
        /// What is wrong.
        message: String,
    },
    /// A NetworkPolicy Kubernetes would reject.
    #[error("{origin}: {source}")]
    BadPolicy {
        /// `file#document`, or where the policy came from.
        origin: String,
        /// What is wrong.
        source: Box<PolicyError>,
    },
    /// A cluster-wide policy Kubernetes would reject.
    #[error("{origin}: {source}")]
    BadClusterPolicy {
        /// `file#document`.
        origin: String,
        /// What is wrong.
        source: Box<ClusterPolicyError>,
    },
}

/// Why a file or document was not read as a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The file.
    pub source: PathBuf,
    /// The document index, when the problem is in one document.
    pub index: Option<usize>,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            Some(i) => write!(
                f,
                "{} (document {i}): {}",
                self.source.display(),
                self.reason
            ),
            None => write!(f, "{}: {}", self.source.display(), self.reason),
        }
    }
}

/// A path that cannot be read at all.
#[derive(Debug, Error)]
#[error("cannot read {path}: {source}")]
pub struct ReadError {
    /// The path.
    pub path: PathBuf,
    /// The I/O error.
    pub source: std::io::Error,
}

/// What was read from a set of paths.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Manifests {
    /// Objects, in path order then document order.
    pub documents: Vec<Document>,
    /// Files and documents that were not manifests.
    pub skipped: Vec<Skipped>,
}

/// The path that means standard input, as with `kubectl apply -f -`.
pub const STDIN: &str = "-";

/// Reads every manifest under `paths` (files, or directories walked
/// recursively in name order; `-` reads standard input).
pub fn read_paths<P: AsRef<Path>>(paths: &[P]) -> Result<Manifests, ReadError> {
    let mut out = Manifests::default();
    for file in files(paths)? {
        if file.as_os_str() == STDIN {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).map_err(|source| {
                ReadError {
                    path: file.clone(),
                    source,
                }
            })?;
            read_text(Path::new("<stdin>"), &text, &mut out);
        } else {
            read_file_into(&file, &mut out)?;
        }
    }
    Ok(out)
}

/// The files `read_paths` would read, in order: named files whatever
/// their extension (as kubectl does), and `.yaml`, `.yml`, `.json` files
/// found by walking named directories.
pub fn files<P: AsRef<Path>>(paths: &[P]) -> Result<Vec<PathBuf>, ReadError> {
    let mut out = Vec::new();
    for p in paths {
        let p = p.as_ref();
        if p.as_os_str() == STDIN {
            out.push(p.to_owned());
            continue;
        }
        let meta = std::fs::metadata(p).map_err(|source| ReadError {
            path: p.to_owned(),
            source,
        })?;
        if meta.is_dir() {
            out.extend(walk(p)?);
        } else {
            out.push(p.to_owned());
        }
    }
    Ok(out)
}

/// Reads the manifests of one file.
pub fn read_file(path: &Path) -> Result<Manifests, ReadError> {
    let mut out = Manifests::default();
    read_file_into(path, &mut out)?;
    Ok(out)
}

fn walk(dir: &Path) -> Result<Vec<PathBuf>, ReadError> {
    let err = |source| ReadError {
        path: dir.to_owned(),
        source,
    };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(err)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(err)?;
    entries.sort();
    let mut files = Vec::new();
    for e in entries {
        if e.is_dir() {
            files.extend(walk(&e)?);
        } else if matches!(
            e.extension().and_then(|x| x.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            files.push(e);
        }
    }
    Ok(files)
}

fn read_file_into(path: &Path, out: &mut Manifests) -> Result<(), ReadError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReadError {
        path: path.to_owned(),
        source,
    })?;
    read_text(path, &text, out);
    Ok(())
}

/// Reads manifests from text (`source` names it in messages).
pub fn read_text(source: &Path, text: &str, out: &mut Manifests) {
    let skip = |index: Option<usize>, reason: String| Skipped {
        source: source.to_owned(),
        index,
        reason,
    };
    let is_json = source.extension().and_then(|x| x.to_str()) == Some("json")
        || text.trim_start().starts_with(['{', '[']);
    let docs: Vec<(usize, Result<serde_json::Value, String>)> = if is_json {
        vec![(0, serde_json::from_str(text).map_err(|e| e.to_string()))]
    } else {
        split_yaml(text)
            .into_iter()
            .enumerate()
            .filter(|(_, d)| !is_blank_yaml(d))
            .map(|(i, d)| {
                let options = serde_saphyr::options! { strict_booleans: true };
                (
                    i,
                    serde_saphyr::from_str_with_options(d, options)
                        .map_err(|e: serde_saphyr::Error| e.to_string()),
                )
            })
            .collect()
    };
    for (index, doc) in docs {
        match doc {
            Err(reason) => out.skipped.push(skip(
                Some(index),
                format!("not valid YAML or JSON: {reason}"),
            )),
            Ok(serde_json::Value::Null) => {}
            Ok(value) => add_object(source, index, value, None, out),
        }
    }
}

fn add_object(
    source: &Path,
    index: usize,
    mut value: serde_json::Value,
    item_of: Option<(&str, &str)>,
    out: &mut Manifests,
) {
    let skip = |reason: String| Skipped {
        source: source.to_owned(),
        index: Some(index),
        reason,
    };
    let Some(obj) = value.as_object_mut() else {
        let what = match &value {
            serde_json::Value::Array(_) => "a list (array), not a Kubernetes object",
            _ => "not a Kubernetes object",
        };
        out.skipped.push(skip(what.to_owned()));
        return;
    };
    // Items of a typed list may omit apiVersion and kind.
    if let Some((api_version, kind)) = item_of {
        obj.entry("apiVersion")
            .or_insert_with(|| serde_json::Value::String(api_version.to_owned()));
        obj.entry("kind")
            .or_insert_with(|| serde_json::Value::String(kind.to_owned()));
    }
    let api_version = obj
        .get("apiVersion")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_owned();
    let kind = obj
        .get("kind")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_owned();
    if api_version.is_empty() || kind.is_empty() {
        out.skipped.push(skip(
            "no apiVersion or kind: not a Kubernetes object".to_owned(),
        ));
        return;
    }
    if let Some(item_kind) = kind.strip_suffix("List") {
        let items = obj
            .remove("items")
            .unwrap_or(serde_json::Value::Array(Vec::new()));
        let serde_json::Value::Array(items) = items else {
            out.skipped
                .push(skip(format!("{kind}.items is not a list")));
            return;
        };
        // `kind: List` items carry their own kind; `PodList` items may not.
        let item_of = (!item_kind.is_empty()).then_some((api_version.as_str(), item_kind));
        for item in items {
            add_object(source, index, item, item_of, out);
        }
        return;
    }
    out.documents.push(Document {
        source: source.to_owned(),
        index,
        gvk: Gvk::from_api_version(&api_version, &kind),
        value,
    });
}

/// Splits multi-document YAML on `---` lines, as kubectl's YAML reader does.
fn split_yaml(text: &str) -> Vec<&str> {
    let mut docs = Vec::new();
    let mut start = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_end();
        if trimmed == "---" || trimmed.starts_with("--- ") {
            docs.push(&text[start..offset]);
            start = offset + line.len();
        }
        offset += line.len();
    }
    docs.push(&text[start..]);
    docs
}

fn is_blank_yaml(doc: &str) -> bool {
    doc.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with('#') || l == "..."
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(name: &str, text: &str) -> Manifests {
        let mut out = Manifests::default();
        read_text(Path::new(name), text, &mut out);
        out
    }

    #[test]
    fn multi_document_yaml_with_indexes() {
        let m = read(
            "a.yaml",
            "# comment\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d, namespace: a}\n",
        );
        assert!(m.skipped.is_empty(), "{:?}", m.skipped);
        assert_eq!(m.documents.len(), 2);
        assert_eq!(m.documents[0].gvk, Gvk::new("", "v1", "Namespace"));
        assert_eq!(m.documents[0].index, 1);
        assert_eq!(m.documents[1].index, 3);
        assert_eq!(m.documents[1].namespace(), Some("a"));
        assert_eq!(m.documents[1].origin(), "a.yaml#3");
    }

    #[test]
    fn lists_and_typed_lists() {
        let m = read(
            "l.json",
            r#"{"apiVersion":"v1","kind":"NamespaceList","items":[{"metadata":{"name":"x"}},{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"y"}}]}"#,
        );
        assert_eq!(m.documents.len(), 2);
        assert!(m.documents.iter().all(|d| d.gvk.kind == "Namespace"));
        let m = read(
            "l.yaml",
            "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: p}\n",
        );
        assert_eq!(m.documents[0].gvk.kind, "Pod");
    }

    #[test]
    fn non_manifests_are_skipped_with_a_reason() {
        let m = read("out.json", "[{\"src\": 1}]");
        assert!(m.documents.is_empty());
        assert!(
            m.skipped[0]
                .to_string()
                .contains("out.json (document 0): a list (array)"),
            "{}",
            m.skipped[0]
        );
        let m = read(
            "x.yaml",
            "foo: bar\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: p}\n---\na: [b\n",
        );
        assert_eq!(m.documents.len(), 1);
        assert_eq!(m.skipped.len(), 2);
        assert_eq!(m.skipped[0].index, Some(0));
        assert!(
            m.skipped[1].reason.contains("not valid YAML"),
            "{}",
            m.skipped[1]
        );
        assert_eq!(m.skipped[1].index, Some(2));
    }

    #[test]
    fn yes_and_no_stay_strings() {
        let m = read(
            "x.yaml",
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n  labels: {flag: yes}\n",
        );
        assert_eq!(m.documents[0].value["metadata"]["labels"]["flag"], "yes");
    }

    #[test]
    fn directories_are_walked_recursively_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sub")).unwrap();
        std::fs::write(
            dir.path().join("b.yaml"),
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("sub/a.yml"),
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not read").unwrap();
        let m = read_paths(&[dir.path()]).unwrap();
        let names: Vec<&str> = m.documents.iter().map(Document::name).collect();
        assert_eq!(names, vec!["b", "a"]);
        assert!(read_paths(&[dir.path().join("missing")]).is_err());
    }
}
