//! RFC 6902 JSON Patch written against the object exactly as the API server
//! sent it.
//!
//! A patch that does not apply fails the request even under
//! `failurePolicy: Ignore` (apiserver-behaviour.md (a)), so every operation
//! here is chosen by what the object holds now: a missing (or `null`) map or
//! array is created whole, and only an existing one is added into. Keys are
//! escaped as RFC 6901 asks (`~` as `~0`, `/` as `~1`): `palisade.io/role`
//! is the path segment `palisade.io~1role`.

use std::collections::{BTreeMap, BTreeSet};

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, PatchOperation, RemoveOperation, ReplaceOperation};
use serde::Serialize;
use serde_json::Value;
use thiserror::Error;

/// A value that could not be turned into JSON for a patch.
#[derive(Debug, Error)]
#[error("cannot render {what} as JSON: {source}")]
pub struct RenderError {
    /// What was being rendered (`container access-proxy`).
    pub what: String,
    /// The serializer's error.
    pub source: serde_json::Error,
}

/// Serializes `value` for a patch; `what` names it in the error.
pub fn to_value<T: Serialize>(value: &T, what: impl Into<String>) -> Result<Value, RenderError> {
    serde_json::to_value(value).map_err(|source| RenderError {
        what: what.into(),
        source,
    })
}

/// A JSON pointer from unescaped segments: `["metadata", "labels",
/// "palisade.io/role"]` is `/metadata/labels/palisade.io~1role`.
pub fn pointer<'a>(segments: impl IntoIterator<Item = &'a str>) -> PointerBuf {
    PointerBuf::from_tokens(segments)
}

/// Collects the operations of one patch.
///
/// Callers say what the object holds (`current` for a map, `len` for an
/// array); the builder remembers what it has created itself, so a second
/// entry for a map the first one created is added into it rather than
/// creating (and overwriting) it again.
#[derive(Debug, Default)]
pub struct PatchBuilder {
    ops: Vec<PatchOperation>,
    created: BTreeSet<PointerBuf>,
}

impl PatchBuilder {
    /// An empty patch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` to `value` in the string map at `map` (`["metadata",
    /// "labels"]`), whose content in the object is `current` (`None` when
    /// the map is absent or `null`). Nothing is added when the entry already
    /// holds `value`.
    pub fn set_in_map(
        &mut self,
        map: &[&str],
        current: Option<&BTreeMap<String, String>>,
        key: &str,
        value: &str,
    ) {
        let map_ptr = pointer(map.iter().copied());
        let entry = pointer(map.iter().copied().chain([key]));
        match current {
            Some(m) if m.get(key).map(String::as_str) == Some(value) => {}
            Some(m) if m.contains_key(key) => {
                self.ops.push(PatchOperation::Replace(ReplaceOperation {
                    path: entry,
                    value: Value::String(value.to_owned()),
                }));
            }
            Some(_) => self.add(entry, Value::String(value.to_owned())),
            None if self.created.contains(&map_ptr) => {
                self.add(entry, Value::String(value.to_owned()));
            }
            None => {
                let mut whole = serde_json::Map::new();
                whole.insert(key.to_owned(), Value::String(value.to_owned()));
                self.add(map_ptr.clone(), Value::Object(whole));
                self.created.insert(map_ptr);
            }
        }
    }

    /// Removes `key` from the string map at `map` when `current` holds it.
    pub fn remove_from_map(
        &mut self,
        map: &[&str],
        current: Option<&BTreeMap<String, String>>,
        key: &str,
    ) {
        if current.is_some_and(|m| m.contains_key(key)) {
            self.ops.push(PatchOperation::Remove(RemoveOperation {
                path: pointer(map.iter().copied().chain([key])),
            }));
        }
    }

    /// Appends `items` to the array at `array`, which holds `len` items in
    /// the object (0 when it is absent, `null` or empty).
    pub fn append(&mut self, array: &[&str], len: usize, items: Vec<Value>) {
        if items.is_empty() {
            return;
        }
        let ptr = pointer(array.iter().copied());
        let Some(items) = self.create_array(&ptr, len, items) else {
            return;
        };
        for item in items {
            let mut at = ptr.clone();
            at.push_back("-");
            self.add(at, item);
        }
    }

    /// Inserts `items`, in their order, before the first item of the array
    /// at `array`, which holds `len` items in the object.
    pub fn prepend(&mut self, array: &[&str], len: usize, items: Vec<Value>) {
        if items.is_empty() {
            return;
        }
        let ptr = pointer(array.iter().copied());
        let Some(items) = self.create_array(&ptr, len, items) else {
            return;
        };
        // Each add shifts what follows it, so inserting at 0, 1, 2, ...
        // keeps `items` in order ahead of what the array held.
        for (i, item) in items.into_iter().enumerate() {
            let mut at = ptr.clone();
            at.push_back(i);
            self.add(at, item);
        }
    }

    /// The operations, in the order they must be applied.
    pub fn build(self) -> Vec<PatchOperation> {
        self.ops
    }

    /// Adds the whole array when the object holds none yet: one `add`
    /// works whether the field is absent, `null` or `[]`, where `/-` or an
    /// index would fail on the first two. Gives the items back when the
    /// array exists (or this patch already created it).
    fn create_array(
        &mut self,
        ptr: &PointerBuf,
        len: usize,
        items: Vec<Value>,
    ) -> Option<Vec<Value>> {
        if len == 0 && !self.created.contains(ptr) {
            self.add(ptr.clone(), Value::Array(items));
            self.created.insert(ptr.clone());
            return None;
        }
        Some(items)
    }

    fn add(&mut self, path: PointerBuf, value: Value) {
        self.ops
            .push(PatchOperation::Add(AddOperation { path, value }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn apply(doc: &Value, b: PatchBuilder) -> (Value, Value) {
        let ops = b.build();
        let rendered = serde_json::to_value(&ops).unwrap();
        let mut out = doc.clone();
        json_patch::patch(&mut out, &ops).unwrap();
        (rendered, out)
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn keys_are_escaped() {
        assert_eq!(
            pointer(["metadata", "labels", "palisade.io/role"]).as_str(),
            "/metadata/labels/palisade.io~1role"
        );
        assert_eq!(
            pointer(["metadata", "annotations", "a~b/c~1"]).as_str(),
            "/metadata/annotations/a~0b~1c~01"
        );
    }

    #[test]
    fn a_missing_map_is_created_then_added_into() {
        for doc in [
            json!({"metadata": {}}),
            json!({"metadata": {"labels": null}}),
        ] {
            let mut b = PatchBuilder::new();
            b.set_in_map(&["metadata", "labels"], None, "palisade.io/role", "db");
            b.set_in_map(&["metadata", "labels"], None, "x~y", "1");
            let (ops, out) = apply(&doc, b);
            assert_eq!(
                ops,
                json!([
                    {"op": "add", "path": "/metadata/labels", "value": {"palisade.io/role": "db"}},
                    {"op": "add", "path": "/metadata/labels/x~0y", "value": "1"},
                ])
            );
            assert_eq!(
                out["metadata"]["labels"],
                json!({"palisade.io/role": "db", "x~y": "1"})
            );
        }
    }

    #[test]
    fn existing_entries_are_replaced_kept_or_removed() {
        let doc = json!({"metadata": {"labels": {"palisade.io/role": "admin", "app": "x"}}});
        let current = map(&[("palisade.io/role", "admin"), ("app", "x")]);
        let labels = ["metadata", "labels"];

        let mut b = PatchBuilder::new();
        b.set_in_map(&labels, Some(&current), "palisade.io/role", "db");
        let (ops, out) = apply(&doc, b);
        assert_eq!(ops[0]["op"], "replace");
        assert_eq!(out["metadata"]["labels"]["palisade.io/role"], "db");

        let mut b = PatchBuilder::new();
        b.set_in_map(&labels, Some(&current), "app", "x");
        assert!(b.build().is_empty());

        let mut b = PatchBuilder::new();
        b.remove_from_map(&labels, Some(&current), "palisade.io/role");
        b.remove_from_map(&labels, Some(&current), "absent");
        b.remove_from_map(&labels, None, "palisade.io/role");
        let (ops, out) = apply(&doc, b);
        assert_eq!(ops.as_array().unwrap().len(), 1);
        assert_eq!(out["metadata"]["labels"], json!({"app": "x"}));

        let mut b = PatchBuilder::new();
        b.set_in_map(&labels, Some(&map(&[])), "k", "v");
        let (ops, out) = apply(&json!({"metadata": {"labels": {}}}), b);
        assert_eq!(ops[0]["path"], "/metadata/labels/k");
        assert_eq!(out["metadata"]["labels"], json!({"k": "v"}));
    }

    #[test]
    fn arrays_are_created_appended_to_and_prepended_to() {
        let vols = ["spec", "volumes"];
        for doc in [
            json!({"spec": {}}),
            json!({"spec": {"volumes": null}}),
            json!({"spec": {"volumes": []}}),
        ] {
            let mut b = PatchBuilder::new();
            b.append(&vols, 0, vec![json!({"name": "a"})]);
            b.append(&vols, 0, vec![json!({"name": "b"})]);
            let (ops, out) = apply(&doc, b);
            assert_eq!(ops[0]["path"], "/spec/volumes");
            assert_eq!(ops[1]["path"], "/spec/volumes/-");
            assert_eq!(
                out["spec"]["volumes"],
                json!([{"name": "a"}, {"name": "b"}])
            );
        }

        let doc = json!({"spec": {"initContainers": [{"name": "own"}]}});
        let mut b = PatchBuilder::new();
        b.prepend(
            &["spec", "initContainers"],
            1,
            vec![json!({"name": "first"}), json!({"name": "second"})],
        );
        let (ops, out) = apply(&doc, b);
        assert_eq!(ops[0]["path"], "/spec/initContainers/0");
        assert_eq!(ops[1]["path"], "/spec/initContainers/1");
        assert_eq!(
            out["spec"]["initContainers"],
            json!([{"name": "first"}, {"name": "second"}, {"name": "own"}])
        );

        let mut b = PatchBuilder::new();
        b.append(&vols, 3, vec![]);
        b.prepend(&vols, 0, vec![]);
        assert!(b.build().is_empty());
    }
}
