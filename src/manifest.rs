//! Reading Kubernetes manifests from files and directories, the way
//! `kubectl apply -f PATH -R` does: `.yaml`, `.yml` and `.json` files,
//! multi-document YAML (`---` lines, a comment allowed after them), JSON
//! streams of one or more objects, `kind: List`, typed lists (`PodList`,
//! ...) and anything with an `items` array, a byte order mark, CRLF line
//! ends, anchors and merge keys, and tabs inside flow collections.
//!
//! Files are read as streams: one YAML document, or one item of a JSON
//! list, at a time, so a state of hundreds of megabytes is never held
//! whole ([`stream_paths`]). Every object keeps the line where it starts.
//!
//! A file or document that is not a manifest (a JSON array, a YAML
//! document without `apiVersion`/`kind`, unparsable or binary text, a file
//! that cannot be read) is not fatal here: it is a [`Skipped`] entry, and
//! every command treats it by one rule ([`skipped`]): a note on stderr,
//! an error with `--strict`.

pub mod skipped;

mod flow_tabs;
mod json;
mod yaml;

use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use thiserror::Error;

use yaml::Top;

use crate::cluster_policy::ClusterPolicyError;
use crate::netpol::PolicyError;
use crate::object::Gvk;

/// One Kubernetes object read from a file.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// The file it came from.
    pub source: PathBuf,
    /// Its position among the documents of the file (0-based; list items
    /// share their list's index).
    pub index: usize,
    /// The 1-based line of the file where the object starts (for a list
    /// item, where the item starts).
    pub line: usize,
    /// Lines of the fields findings point at, where the reader knows them.
    pub field_lines: FieldLines,
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

    /// `file:line`, as editors and CI annotations read it.
    pub fn location(&self) -> String {
        format!("{}:{}", self.source.display(), self.line)
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

/// The 1-based lines of the fields findings point at (`metadata.labels`,
/// `spec.ingress[N]`, `spec.egress[N]`), as far as the reader knows them:
/// for a YAML document, not for a list item or JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldLines(Vec<(String, usize)>);

impl FieldLines {
    /// The line of `path`, if known.
    pub fn get(&self, path: &str) -> Option<usize> {
        self.0.iter().find(|(p, _)| p == path).map(|(_, l)| *l)
    }

    /// The line of the first rule (`spec.ingress[N]`, `spec.egress[N]`)
    /// that `message` names, if known.
    pub fn rule_named_in(&self, message: &str) -> Option<usize> {
        for (at, _) in message.match_indices("spec.") {
            let rest = &message[at..];
            let Some(end) = rest.find(']') else {
                continue;
            };
            let path = &rest[..=end];
            if (path.starts_with("spec.ingress[") || path.starts_with("spec.egress["))
                && let Some(line) = self.get(path)
            {
                return Some(line);
            }
        }
        None
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
    /// The 1-based line, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for Skipped {
    /// `file:line (document N): reason`, leaving out what is not known.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.source.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        if let Some(i) = self.index {
            write!(f, " (document {i})")?;
        }
        write!(f, ": {}", self.reason)
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

impl Manifests {
    /// Adds one entry.
    pub fn push(&mut self, e: Entry) {
        match e {
            Entry::Document(d) => self.documents.push(d),
            Entry::Skipped(s) => self.skipped.push(s),
        }
    }
}

/// One thing read from a file: an object, or what was not one.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    /// A Kubernetes object.
    Document(Document),
    /// A file or document that is not a manifest.
    Skipped(Skipped),
}

/// Every kind: for readers that want all objects parsed.
pub fn all_kinds(_: &Gvk) -> bool {
    true
}

/// The path that means standard input, as with `kubectl apply -f -`.
pub const STDIN: &str = "-";

/// Reads every manifest under `paths` (files, or directories walked
/// recursively in name order; `-` reads standard input).
pub fn read_paths<P: AsRef<Path>>(paths: &[P]) -> Result<Manifests, ReadError> {
    let mut out = Manifests::default();
    stream_paths(paths, &all_kinds, &mut |e| {
        out.push(e);
        Ok::<(), ReadError>(())
    })?;
    Ok(out)
}

/// Reads every manifest under `paths` one file and one object at a time,
/// handing each object whose kind `wants` accepts, and each file or
/// document that is not a manifest, to `sink`. Objects of other kinds are
/// passed over unparsed where the format allows (the items of a JSON
/// list). Nothing is held beyond the object being handed on.
///
/// A PATH that does not exist, or a directory that cannot be listed, is
/// an error; a file that cannot be read is a [`Skipped`] entry like any
/// other non-manifest.
pub fn stream_paths<P: AsRef<Path>, E: From<ReadError>>(
    paths: &[P],
    wants: &dyn Fn(&Gvk) -> bool,
    sink: &mut dyn FnMut(Entry) -> Result<(), E>,
) -> Result<(), E> {
    for file in files(paths)? {
        if file.as_os_str() == STDIN {
            let stdin = std::io::stdin();
            stream_reader(Path::new("<stdin>"), stdin.lock(), wants, sink)?;
        } else {
            stream_file(&file, wants, sink)?;
        }
    }
    Ok(())
}

/// [`stream_paths`] for one file.
pub fn stream_file<E>(
    path: &Path,
    wants: &dyn Fn(&Gvk) -> bool,
    sink: &mut dyn FnMut(Entry) -> Result<(), E>,
) -> Result<(), E> {
    match std::fs::File::open(path) {
        Ok(f) => stream_reader(path, f, wants, sink),
        Err(e) => sink(Entry::Skipped(Skipped {
            source: path.to_owned(),
            index: None,
            line: None,
            reason: format!("cannot read: {e}"),
        })),
    }
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

/// Does kubectl read this file when it walks a directory?
pub fn is_manifest_file_name(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|x| x.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

/// Reads the manifests of one file.
pub fn read_file(path: &Path) -> Result<Manifests, ReadError> {
    let mut out = Manifests::default();
    stream_file(path, &all_kinds, &mut |e| {
        out.push(e);
        Ok::<(), ReadError>(())
    })?;
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
        } else if is_manifest_file_name(&e) {
            files.push(e);
        }
    }
    Ok(files)
}

/// Reads manifests from text (`source` names it in messages).
pub fn read_text(source: &Path, text: &str, out: &mut Manifests) {
    let _ = stream_reader(source, text.as_bytes(), &all_kinds, &mut |e| {
        out.push(e);
        Ok::<(), ReadError>(())
    });
}

/// UTF-8's byte order mark, which some editors write first.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Reads manifests from a stream, as kubectl does: JSON when the first
/// byte that is not white space is `{` (one or more objects) or `[` (an
/// array, which is not an object), else YAML documents separated by `---`
/// lines. A leading byte order mark is dropped.
pub fn stream_reader<E>(
    source: &Path,
    r: impl Read,
    wants: &dyn Fn(&Gvk) -> bool,
    sink: &mut dyn FnMut(Entry) -> Result<(), E>,
) -> Result<(), E> {
    let mut r = BufReader::with_capacity(64 * 1024, r);
    let mut out = Emitter {
        source,
        wants,
        sink,
        error: None,
    };
    let first = match r.fill_buf() {
        Ok(buf) => {
            let bom = buf.starts_with(BOM);
            let rest = if bom { &buf[BOM.len()..] } else { buf };
            let first = rest.iter().find(|b| !b.is_ascii_whitespace()).copied();
            if bom {
                r.consume(BOM.len());
            }
            first
        }
        Err(e) => {
            out.skip(None, None, format!("cannot read: {e}"));
            return out.finish();
        }
    };
    match first {
        None => {}
        Some(b'{' | b'[') => read_json(r, &mut out),
        Some(_) => read_yaml(r, &mut out),
    }
    out.finish()
}

fn read_yaml<E>(r: impl BufRead, out: &mut Emitter<'_, E>) {
    let result = yaml::split(r, 1, |doc| {
        let text = match doc.text {
            Ok(t) => t,
            Err(reason) => return out.skip(Some(doc.index), Some(doc.first_line), reason),
        };
        if is_blank_yaml(&text) {
            return true;
        }
        let at = |rel: usize| doc.first_line + rel.saturating_sub(1);
        match yaml::parse(&text) {
            Err(e) => {
                // A chart's template is not a manifest until Helm renders it.
                let hint = if text.contains("{{") {
                    " (a Helm template? render it first: helm template CHART | palisade check -)"
                } else {
                    ""
                };
                out.skip(
                    Some(doc.index),
                    Some(
                        e.line
                            .map_or(doc.first_line + first_content_line(&text), at),
                    ),
                    format!("not valid YAML: {}{hint}", e.message),
                )
            }
            Ok(Top::Empty) => true,
            Ok(Top::Array) => out.skip(
                Some(doc.index),
                Some(doc.first_line + first_content_line(&text)),
                NOT_OBJECT_ARRAY.to_owned(),
            ),
            Ok(Top::Scalar) => out.skip(
                Some(doc.index),
                Some(doc.first_line + first_content_line(&text)),
                NOT_OBJECT.to_owned(),
            ),
            Ok(Top::Object {
                line,
                fields,
                items,
                field_lines,
            }) => match items {
                Some(items) => {
                    let (api_version, kind) = kind_fields(&fields);
                    let item_of = item_kind(&api_version, &kind);
                    items
                        .into_iter()
                        .all(|(l, item)| out.value(doc.index, at(l), item, item_of.as_ref()))
                }
                None => {
                    let lines = field_lines.into_iter().map(|(p, l)| (p, at(l))).collect();
                    out.object_with_lines(doc.index, at(line), fields, FieldLines(lines))
                }
            },
        }
    });
    match result {
        Ok(()) => {}
        Err(yaml::SplitStop::BadSeparator { line, rest }) => {
            out.skip(
                None,
                Some(line),
                format!(
                    "invalid YAML document separator `--- {rest}`: kubectl takes `---` followed only by a comment, and reads nothing more of this file (nor the document before the line)"
                ),
            );
        }
        Err(yaml::SplitStop::Io(e)) => {
            out.skip(None, None, format!("cannot read: {e}"));
        }
    }
}

fn read_json<E>(r: impl Read, out: &mut Emitter<'_, E>) {
    let mut index = 0;
    // The list being read: its kind fields when they came before
    // `items`, and items that name no kind until the list's own is known.
    let mut list_kind: Option<(String, String)> = None;
    let mut pending: Vec<json::Item> = Vec::new();
    let result = json::read(r, 1, &mut |event| match event {
        json::Event::NotObject { line, array } => {
            index += 1;
            let reason = if array { NOT_OBJECT_ARRAY } else { NOT_OBJECT };
            out.skip(Some(index - 1), Some(line), reason.to_owned())
        }
        json::Event::Object { line, fields } => {
            index += 1;
            out.object(index - 1, line, fields, None)
        }
        json::Event::ListStart { api_version, kind } => {
            list_kind = item_kind(&api_version, &kind);
            pending.clear();
            true
        }
        json::Event::Item(item) => {
            let head = match item.head() {
                Ok(h) => h,
                Err(_) => return out.skip(Some(index), Some(item.line), NOT_OBJECT.to_owned()),
            };
            let named = head.kind.as_deref().is_some_and(|k| !k.is_empty())
                || head.api_version.as_deref().is_some_and(|v| !v.is_empty());
            if !named && list_kind.is_none() {
                pending.push(item);
                return true;
            }
            out.raw_item(index, item, &head, list_kind.as_ref())
        }
        json::Event::ListEnd { fields } => {
            let (api_version, kind) = kind_fields(&fields);
            let item_of = item_kind(&api_version, &kind);
            let keep_going = std::mem::take(&mut pending).into_iter().all(|item| {
                let head = item.head().unwrap_or_default();
                out.raw_item(index, item, &head, item_of.as_ref())
            });
            index += 1;
            list_kind = None;
            keep_going
        }
    });
    if let Err(e) = result {
        out.skip(
            Some(index),
            e.line,
            format!("not valid JSON: {}", e.message),
        );
    }
}

const NOT_OBJECT: &str = "not a Kubernetes object";
/// `kustomization.yaml` and kustomize components: inputs of `kubectl
/// kustomize`, which the API server has no kind for.
const KUSTOMIZE_GROUP: &str = "kustomize.config.k8s.io";
const NOT_OBJECT_ARRAY: &str = "a list (array), not a Kubernetes object";

/// `apiVersion` and `kind` of an object's fields, `""` when absent.
fn kind_fields(fields: &Map<String, Value>) -> (String, String) {
    let s = |k: &str| {
        fields
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    (s("apiVersion"), s("kind"))
}

/// What the items of a list that name no kind are: `PodList` items are
/// `Pod`s; `List` items must say what they are.
fn item_kind(api_version: &str, kind: &str) -> Option<(String, String)> {
    let item = kind.strip_suffix("List")?;
    (!item.is_empty()).then(|| (api_version.to_owned(), item.to_owned()))
}

/// Hands entries to the sink, keeping the first error it returns.
struct Emitter<'a, E> {
    source: &'a Path,
    wants: &'a dyn Fn(&Gvk) -> bool,
    sink: &'a mut dyn FnMut(Entry) -> Result<(), E>,
    error: Option<E>,
}

impl<E> Emitter<'_, E> {
    fn send(&mut self, e: Entry) -> bool {
        if self.error.is_some() {
            return false;
        }
        match (self.sink)(e) {
            Ok(()) => true,
            Err(e) => {
                self.error = Some(e);
                false
            }
        }
    }

    fn finish(self) -> Result<(), E> {
        self.error.map_or(Ok(()), Err)
    }

    fn skip(&mut self, index: Option<usize>, line: Option<usize>, reason: String) -> bool {
        let s = Skipped {
            source: self.source.to_owned(),
            index,
            line,
            reason,
        };
        self.send(Entry::Skipped(s))
    }

    /// One value where an object is expected (a list item).
    fn value(
        &mut self,
        index: usize,
        line: usize,
        v: Value,
        item_of: Option<&(String, String)>,
    ) -> bool {
        match v {
            Value::Object(fields) => self.object(index, line, fields, item_of),
            Value::Array(_) => self.skip(Some(index), Some(line), NOT_OBJECT_ARRAY.to_owned()),
            _ => self.skip(Some(index), Some(line), NOT_OBJECT.to_owned()),
        }
    }

    /// One JSON list item, parsed only when its kind is wanted.
    fn raw_item(
        &mut self,
        index: usize,
        item: json::Item,
        head: &json::Head,
        item_of: Option<&(String, String)>,
    ) -> bool {
        let api_version = head.api_version.as_deref().unwrap_or("");
        let kind = head.kind.as_deref().unwrap_or("");
        let (api_version, kind) = match item_of {
            Some((a, k)) if api_version.is_empty() && kind.is_empty() => (a.as_str(), k.as_str()),
            _ => (api_version, kind),
        };
        if head.items.is_none()
            && !api_version.is_empty()
            && !kind.is_empty()
            && !(self.wants)(&Gvk::from_api_version(api_version, kind))
        {
            return true;
        }
        match serde_json::from_str::<Value>(item.raw.get()) {
            Ok(v) => self.value(index, item.line, v, item_of),
            Err(e) => self.skip(Some(index), Some(item.line), format!("not valid JSON: {e}")),
        }
    }

    /// One object, or a list of them: anything with an `items` array is a
    /// list, as kubectl decodes it, whatever its kind.
    fn object(
        &mut self,
        index: usize,
        line: usize,
        fields: Map<String, Value>,
        item_of: Option<&(String, String)>,
    ) -> bool {
        self.object_in(index, line, fields, item_of, FieldLines::default())
    }

    /// [`Emitter::object`] for a document whose field lines are known.
    fn object_with_lines(
        &mut self,
        index: usize,
        line: usize,
        fields: Map<String, Value>,
        field_lines: FieldLines,
    ) -> bool {
        self.object_in(index, line, fields, None, field_lines)
    }

    fn object_in(
        &mut self,
        index: usize,
        line: usize,
        mut fields: Map<String, Value>,
        item_of: Option<&(String, String)>,
        field_lines: FieldLines,
    ) -> bool {
        let (mut api_version, mut kind) = kind_fields(&fields);
        if let Some((a, k)) = item_of
            && api_version.is_empty()
            && kind.is_empty()
        {
            (api_version, kind) = (a.clone(), k.clone());
            fields.insert("apiVersion".into(), Value::String(api_version.clone()));
            fields.insert("kind".into(), Value::String(kind.clone()));
        }
        match fields.remove("items") {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                let item_of = item_kind(&api_version, &kind);
                return items
                    .into_iter()
                    .all(|item| self.value(index, line, item, item_of.as_ref()));
            }
            Some(_) => {
                let what = if kind.is_empty() { "list" } else { &kind };
                return self.skip(
                    Some(index),
                    Some(line),
                    format!("{what}.items is not a list"),
                );
            }
        }
        if api_version.is_empty() || kind.is_empty() {
            return self.skip(
                Some(index),
                Some(line),
                "no apiVersion or kind: not a Kubernetes object".to_owned(),
            );
        }
        let gvk = Gvk::from_api_version(&api_version, &kind);
        if gvk.group == KUSTOMIZE_GROUP {
            return self.skip(
                Some(index),
                Some(line),
                format!(
                    "a kustomize {kind}, not an object of the cluster: render it first (kubectl kustomize DIR | palisade check -)"
                ),
            );
        }
        if !(self.wants)(&gvk) {
            return true;
        }
        self.send(Entry::Document(Document {
            source: self.source.to_owned(),
            index,
            line,
            field_lines,
            gvk,
            value: Value::Object(fields),
        }))
    }
}

/// The 0-based offset of the first line of `doc` that is not blank or a
/// comment.
fn first_content_line(doc: &str) -> usize {
    doc.lines()
        .position(|l| {
            let l = l.trim();
            !(l.is_empty() || l.starts_with('#'))
        })
        .unwrap_or(0)
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
                .contains("out.json:1 (document 0): a list (array)"),
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

    /// The `args` of acs-security-demos' webapp Deployment (from
    /// np-guard/netpol-analyzer's test suite), as flow sequences indented
    /// with tabs: kubectl reads it.
    const TABBED_FLOW: &str = "# Deployment named \"webapp\"\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: webapp\n  namespace: frontend\nspec:\n  selector:\n    matchLabels: {app: webapp}\n  template:\n    metadata:\n      labels: {app: webapp}\n    spec:\n      containers:\n        - image: quay.io/vuln/rce-webapp:latest\n          command: [\"/bin/entrypoint\"]\n          args:\n            [\n\t\"-listen\",\n\t\":8080\",\n\t\"-connect\",\n            ]\n          name: webapp\n          ports:\n            - containerPort: 8080\n";

    #[test]
    fn what_kubectl_reads_palisade_reads() {
        let m = read("webapp.yaml", TABBED_FLOW);
        assert!(m.skipped.is_empty(), "{:?}", m.skipped);
        assert_eq!(
            m.documents[0].value["spec"]["template"]["spec"]["containers"][0]["args"],
            serde_json::json!(["-listen", ":8080", "-connect"])
        );
        assert_eq!(m.documents[0].line, 2, "after the comment");
        // Anchors and merge keys, `---` with a comment, CRLF, a BOM.
        let m = read(
            "merge.yaml",
            "\u{feff}apiVersion: v1\r\nkind: ConfigMap\r\nmetadata:\r\n  name: a\r\n  namespace: shop\r\n--- # the second\r\napiVersion: v1\r\nkind: ConfigMap\r\nx-base: &m\r\n  name: c\r\n  namespace: shop\r\nmetadata:\r\n  <<: *m\r\n  name: b\r\n",
        );
        assert!(m.skipped.is_empty(), "{:?}", m.skipped);
        let lines: Vec<(usize, usize, &str, Option<&str>)> = m
            .documents
            .iter()
            .map(|d| (d.index, d.line, d.name(), d.namespace()))
            .collect();
        assert_eq!(
            lines,
            vec![(0, 1, "a", Some("shop")), (1, 7, "b", Some("shop"))]
        );
        // JSON with a BOM, and concatenated JSON objects.
        let m = read(
            "two.json",
            "\u{feff}{\"apiVersion\": \"v1\", \"kind\": \"Namespace\", \"metadata\": {\"name\": \"x\"}}\n{\"apiVersion\": \"v1\", \"kind\": \"Namespace\", \"metadata\": {\"name\": \"y\"}}\n",
        );
        let got: Vec<(usize, usize, &str)> = m
            .documents
            .iter()
            .map(|d| (d.index, d.line, d.name()))
            .collect();
        assert_eq!(got, vec![(0, 1, "x"), (1, 2, "y")]);
    }

    #[test]
    fn a_kubectl_export_is_streamed_item_by_item_with_lines() {
        // `kubectl get ns,pods -o json`: items before kind, four-space indents.
        let export = "{\n    \"apiVersion\": \"v1\",\n    \"items\": [\n        {\n            \"apiVersion\": \"v1\",\n            \"kind\": \"Namespace\",\n            \"metadata\": {\"name\": \"shop\"}\n        },\n        {\n            \"apiVersion\": \"v1\",\n            \"kind\": \"Pod\",\n            \"metadata\": {\"name\": \"p\", \"namespace\": \"shop\"}\n        }\n    ],\n    \"kind\": \"List\",\n    \"metadata\": {\"resourceVersion\": \"\"}\n}\n";
        let m = read("export.json", export);
        let got: Vec<(&str, usize)> = m
            .documents
            .iter()
            .map(|d| (d.gvk.kind.as_str(), d.line))
            .collect();
        assert_eq!(got, vec![("Namespace", 4), ("Pod", 9)]);
        // Kinds nobody wants are passed over, and items are handed on as
        // they are read: the namespace arrives although the stream breaks
        // off in the middle of the pod.
        let cut = &export[..export.find("\"Pod\"").unwrap()];
        let mut seen = Vec::new();
        let _ = stream_reader(
            Path::new("cut.json"),
            cut.as_bytes(),
            &|g: &Gvk| g.kind == "Namespace",
            &mut |e| {
                seen.push(e);
                Ok::<(), ReadError>(())
            },
        );
        assert!(
            matches!(&seen[0], Entry::Document(d) if d.name() == "shop"),
            "{seen:?}"
        );
        assert!(
            matches!(&seen[1], Entry::Skipped(s) if s.reason.starts_with("not valid JSON")),
            "{seen:?}"
        );
        let m = {
            let mut out = Manifests::default();
            let _ = stream_reader(
                Path::new("export.json"),
                export.as_bytes(),
                &|g: &Gvk| g.kind == "Namespace",
                &mut |e| {
                    out.push(e);
                    Ok::<(), ReadError>(())
                },
            );
            out
        };
        assert_eq!(m.documents.len(), 1);
        assert!(m.skipped.is_empty());
        // A typed list whose kind comes after items that name none.
        let m = read(
            "pods.json",
            "{\"items\": [{\"metadata\": {\"name\": \"p\"}}], \"apiVersion\": \"v1\", \"kind\": \"PodList\"}",
        );
        assert_eq!(m.documents[0].gvk.kind, "Pod");
    }

    #[test]
    fn separators_helm_templates_and_kustomizations_are_named() {
        // kubectl stops at such a line, losing the document before it too.
        let m = read(
            "x.yaml",
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n--- {b: 1}\n",
        );
        assert_eq!(m.documents.len(), 0);
        assert!(
            m.skipped[0]
                .reason
                .contains("invalid YAML document separator"),
            "{}",
            m.skipped[0]
        );
        assert_eq!(m.skipped[0].line, Some(4));
        let m = read(
            "t.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-x\n",
        );
        assert!(
            m.skipped[0].reason.contains("Helm template"),
            "{}",
            m.skipped[0]
        );
        let m = read(
            "kustomization.yaml",
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [a.yaml]\n",
        );
        assert!(m.documents.is_empty());
        assert!(
            m.skipped[0].reason.contains("kubectl kustomize"),
            "{}",
            m.skipped[0]
        );
        let m = read("bin.yaml", "\u{0}\u{1}");
        assert_eq!(m.documents.len(), 0);
        let m = read("empty.yaml", "");
        assert_eq!(m, Manifests::default());
    }
}
