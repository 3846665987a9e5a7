//! JSON manifests as a stream: one or more top-level values (kubectl reads
//! concatenated objects), each parsed as it is read; the `items` of a list
//! (`kubectl get -o json` writes them before `kind`) handed on one at a
//! time and never held together, so a 350 MB export is read in the memory
//! of its largest item. Each item's kind is looked at before the item is
//! parsed, so kinds nobody asked for (pods, for a webhook that reads only
//! namespaces and policies) are skipped as they stream by.

use std::cell::Cell;
use std::io::{self, Read};
use std::rc::Rc;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// What the stream hands on.
pub(super) enum Event {
    /// A top-level value that is not an object.
    NotObject {
        /// 1-based line.
        line: usize,
        /// A sequence (`[...]`), or a scalar.
        array: bool,
    },
    /// A top-level object that is not a list.
    Object {
        /// 1-based line.
        line: usize,
        /// Its fields.
        fields: Map<String, Value>,
    },
    /// A list began: its `apiVersion` and `kind` when they came before
    /// `items` (`""` when not yet).
    ListStart {
        /// `apiVersion`, or `""`.
        api_version: String,
        /// `kind`, or `""`.
        kind: String,
    },
    /// One item of the list being read.
    Item(Item),
    /// The list is complete: its fields other than `items`.
    ListEnd {
        /// Every field but `items`.
        fields: Map<String, Value>,
    },
}

/// A list item, not parsed yet.
pub(super) struct Item {
    /// 1-based line.
    pub line: usize,
    /// Its text.
    pub raw: Box<RawValue>,
}

/// The fields of an item that say what it is, read without parsing the
/// rest.
#[derive(Deserialize, Default)]
pub(super) struct Head {
    /// `apiVersion`.
    #[serde(default, rename = "apiVersion")]
    pub api_version: Option<String>,
    /// `kind`.
    #[serde(default)]
    pub kind: Option<String>,
    /// `items`, present when the item is itself a list.
    #[serde(default)]
    pub items: Option<de::IgnoredAny>,
}

impl Item {
    /// Its kind fields, or why it is not an object.
    pub(super) fn head(&self) -> Result<Head, String> {
        serde_json::from_str::<Head>(self.raw.get()).map_err(|e| e.to_string())
    }
}

/// Counts the newlines read through it: serde_json reads its input one
/// byte at a time, so when a value starts the count is that value's line.
struct LineCounter<R> {
    inner: R,
    newlines: Rc<Cell<usize>>,
}

impl<R: Read> Read for LineCounter<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let lines = buf[..n].iter().filter(|b| **b == b'\n').count();
        if lines > 0 {
            self.newlines.set(self.newlines.get() + lines);
        }
        Ok(n)
    }
}

/// Why the stream is not JSON.
#[derive(Debug)]
pub(super) struct JsonError {
    /// 1-based line, when the parser knows it.
    pub line: Option<usize>,
    /// The parser's message.
    pub message: String,
}

/// Reads every top-level value of `r` (whose first line is `first_line`),
/// calling `f` for each event; `f` returning `false` stops the reading.
/// The error is the parser's line (when it has one) and message.
pub(super) fn read<R: Read>(
    r: R,
    first_line: usize,
    f: &mut dyn FnMut(Event) -> bool,
) -> Result<(), JsonError> {
    let newlines = Rc::new(Cell::new(first_line.saturating_sub(1)));
    let counter = LineCounter {
        inner: r,
        newlines: Rc::clone(&newlines),
    };
    let mut de = serde_json::Deserializer::from_reader(counter);
    let mut stopped = false;
    loop {
        let seed = TopSeed {
            newlines: &newlines,
            f: &mut *f,
            stopped: &mut stopped,
        };
        match seed.deserialize(&mut de) {
            Ok(()) => {}
            Err(_) if stopped => return Ok(()),
            Err(e) => {
                let line = (e.line() > 0).then(|| e.line() + first_line - 1);
                return Err(JsonError {
                    line,
                    message: e.to_string(),
                });
            }
        }
        // More values after this one? `end` fails on anything but
        // whitespace, and leaves the next value's first byte to be read.
        if de.end().is_ok() {
            return Ok(());
        }
    }
}

struct TopSeed<'a> {
    newlines: &'a Rc<Cell<usize>>,
    f: &'a mut dyn FnMut(Event) -> bool,
    stopped: &'a mut bool,
}

impl TopSeed<'_> {
    fn line(&self) -> usize {
        self.newlines.get() + 1
    }

    fn send<E: de::Error>(&mut self, e: Event) -> Result<(), E> {
        if (self.f)(e) {
            Ok(())
        } else {
            *self.stopped = true;
            Err(E::custom("stopped"))
        }
    }
}

impl<'de> DeserializeSeed<'de> for TopSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TopSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a Kubernetes object")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        let line = self.line();
        let mut fields = Map::new();
        let mut list = false;
        while let Some(key) = map.next_key::<String>()? {
            if key == "items" {
                let str_field = |k: &str| {
                    fields
                        .get(k)
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned()
                };
                let seed = ItemsSeed {
                    start: Some(Event::ListStart {
                        api_version: str_field("apiVersion"),
                        kind: str_field("kind"),
                    }),
                    top: &mut self,
                };
                match map.next_value_seed(seed)? {
                    Some(v) => {
                        fields.insert(key, v);
                    }
                    None => list = true,
                }
            } else {
                let v: Value = map.next_value()?;
                fields.insert(key, v);
            }
        }
        if list {
            self.send(Event::ListEnd { fields })
        } else {
            self.send(Event::Object { line, fields })
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        let line = self.line();
        while seq.next_element::<de::IgnoredAny>()?.is_some() {}
        self.send(Event::NotObject { line, array: true })
    }

    fn visit_unit<E: de::Error>(mut self) -> Result<(), E> {
        let line = self.line();
        self.send(Event::NotObject { line, array: false })
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.visit_unit()
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.visit_unit()
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.visit_unit()
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.visit_unit()
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.visit_unit()
    }
}

/// `items`: streamed when a sequence (`None` back), else returned whole.
struct ItemsSeed<'a, 'b> {
    top: &'a mut TopSeed<'b>,
    /// Sent when `items` turns out to be a sequence.
    start: Option<Event>,
}

impl<'de> DeserializeSeed<'de> for ItemsSeed<'_, '_> {
    type Value = Option<Value>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<Value>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ItemsSeed<'_, '_> {
    type Value = Option<Value>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a list of objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<Option<Value>, A::Error> {
        if let Some(start) = self.start.take() {
            self.top.send(start)?;
        }
        loop {
            // The count is taken when serde_json has peeked the item's
            // first byte, so it is the item's line.
            let newlines = Rc::clone(self.top.newlines);
            let Some((line, raw)) = seq.next_element_seed(LinedRaw { newlines })? else {
                break;
            };
            self.top.send(Event::Item(Item { line, raw }))?;
        }
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Option<Value>, A::Error> {
        Value::deserialize(de::value::MapAccessDeserializer::new(map)).map(Some)
    }

    fn visit_unit<E>(self) -> Result<Option<Value>, E> {
        Ok(Some(Value::Null))
    }

    fn visit_bool<E>(self, v: bool) -> Result<Option<Value>, E> {
        Ok(Some(v.into()))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Option<Value>, E> {
        Ok(Some(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Option<Value>, E> {
        Ok(Some(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Option<Value>, E> {
        Ok(Some(v.into()))
    }

    fn visit_str<E>(self, v: &str) -> Result<Option<Value>, E> {
        Ok(Some(v.into()))
    }
}

/// One item's text and the line it starts on.
struct LinedRaw {
    newlines: Rc<Cell<usize>>,
}

impl<'de> DeserializeSeed<'de> for LinedRaw {
    type Value = (usize, Box<RawValue>);

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        let line = self.newlines.get() + 1;
        let raw = Box::<RawValue>::deserialize(d)?;
        Ok((line, raw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(text: &str) -> (Vec<String>, Result<(), JsonError>) {
        let mut out = Vec::new();
        let r = read(text.as_bytes(), 1, &mut |e| {
            out.push(match e {
                Event::NotObject { line, array } => format!("not-object@{line} array={array}"),
                Event::Object { line, fields } => format!("object@{line} {}", fields["kind"]),
                Event::ListStart { kind, .. } => format!("list {kind:?}"),
                Event::Item(i) => format!("item@{} {}", i.line, i.head().unwrap().kind.unwrap()),
                Event::ListEnd { fields } => format!("end {}", fields["kind"]),
            });
            true
        });
        (out, r)
    }

    #[test]
    fn lists_stream_their_items_with_lines_even_before_kind() {
        let text = "{\n    \"apiVersion\": \"v1\",\n    \"items\": [\n        {\n            \"kind\": \"Namespace\"\n        },\n        {\"kind\": \"Pod\"}\n    ],\n    \"kind\": \"List\"\n}\n";
        let (e, r) = events(text);
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(
            e,
            vec![
                "list \"\"",
                "item@4 Namespace",
                "item@7 Pod",
                "end \"List\""
            ]
        );
    }

    #[test]
    fn concatenated_objects_arrays_and_errors() {
        let (e, r) = events("{\"kind\": \"A\"}\n\n{\"kind\": \"B\"} [1,\n2]");
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(
            e,
            vec![
                "object@1 \"A\"",
                "object@3 \"B\"",
                "not-object@3 array=true"
            ]
        );
        let (e, r) = events("{\"kind\": \"A\"}\n{\"kind\": ");
        assert_eq!(e, vec!["object@1 \"A\""]);
        assert_eq!(r.unwrap_err().line, Some(2));
    }
}
