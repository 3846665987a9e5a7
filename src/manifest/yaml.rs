//! YAML manifests, one document at a time: split on `---` lines the way
//! kubectl's YAML reader splits them, each document parsed by
//! serde-saphyr (YAML 1.2, strict booleans) with the line where its object
//! and each item of a list start.

use std::io::BufRead;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use serde_saphyr::Spanned;

use super::flow_tabs::untab_flow_lines;

/// One document of a YAML stream, as text.
pub(super) struct RawDocument {
    /// 0-based position among the file's documents.
    pub index: usize,
    /// 1-based line of the document's first line in the file.
    pub first_line: usize,
    /// Its text, or why it is not text.
    pub text: Result<String, String>,
}

/// Why a YAML stream stopped early.
pub(super) enum SplitStop {
    /// A `---` line followed by something other than a comment, which
    /// kubectl refuses for the whole file.
    BadSeparator {
        /// 1-based line.
        line: usize,
        /// What followed `---`.
        rest: String,
    },
    /// Reading failed.
    Io(std::io::Error),
}

/// Calls `f` with each document of the stream, holding one document at a
/// time. A `---` line (optionally followed by spaces and a comment)
/// separates documents, as in kubectl.
pub(super) fn split<R: BufRead>(
    mut r: R,
    mut first_line: usize,
    mut f: impl FnMut(RawDocument) -> bool,
) -> Result<(), SplitStop> {
    let mut doc: Vec<u8> = Vec::new();
    let mut line: Vec<u8> = Vec::new();
    let mut index = 0;
    let mut line_no = first_line;
    let mut emit = |doc: &mut Vec<u8>, index: &mut usize, first_line: usize| {
        let bytes = std::mem::take(doc);
        let text = String::from_utf8(bytes).map_err(|e| {
            format!(
                "not text (invalid UTF-8 at byte {} of the document): a binary file?",
                e.utf8_error().valid_up_to()
            )
        });
        let keep_going = f(RawDocument {
            index: *index,
            first_line,
            text,
        });
        *index += 1;
        keep_going
    };
    loop {
        line.clear();
        let n = r.read_until(b'\n', &mut line).map_err(SplitStop::Io)?;
        if n == 0 {
            break;
        }
        if let Some(rest) = line.strip_prefix(b"---") {
            let rest = String::from_utf8_lossy(rest);
            let rest = rest.trim();
            if rest.is_empty() || rest.starts_with('#') {
                if !emit(&mut doc, &mut index, first_line) {
                    return Ok(());
                }
                line_no += 1;
                first_line = line_no;
                continue;
            }
            return Err(SplitStop::BadSeparator {
                line: line_no,
                rest: rest.to_owned(),
            });
        }
        doc.extend_from_slice(&line);
        line_no += 1;
    }
    emit(&mut doc, &mut index, first_line);
    Ok(())
}

/// A parsed YAML document's top level.
pub(super) enum Top {
    /// Empty, or only comments.
    Empty,
    /// A mapping: its fields other than `items`, and `items` when it is a
    /// sequence, each item with its 1-based line in the document.
    Object {
        /// 1-based line within the document.
        line: usize,
        /// Every field but a sequence `items`.
        fields: Map<String, Value>,
        /// `items`, when a sequence.
        items: Option<Vec<(usize, Value)>>,
        /// 1-based lines (within the document) of the fields findings
        /// point at: `metadata.labels`, `spec.ingress[N]`, `spec.egress[N]`.
        field_lines: Vec<(String, usize)>,
    },
    /// A sequence.
    Array,
    /// A scalar.
    Scalar,
}

/// Why a document is not YAML.
#[derive(Debug)]
pub(super) struct ParseError {
    /// 1-based line within the document, when the parser knows it.
    pub line: Option<usize>,
    /// The parser's message.
    pub message: String,
}

/// Parses one document.
pub(super) fn parse(text: &str) -> Result<Top, ParseError> {
    match parse_once(text) {
        Ok(t) => Ok(t),
        Err(first) => match untab_flow_lines(text) {
            Some(fixed) => parse_once(&fixed).map_err(|_| first),
            None => Err(first),
        },
    }
}

fn parse_once(text: &str) -> Result<Top, ParseError> {
    let options = serde_saphyr::options! { strict_booleans: true };
    let top: Option<Spanned<TopValue>> = serde_saphyr::from_str_with_options(text, options)
        .map_err(|e: serde_saphyr::Error| ParseError {
            line: e.location().map(|l| l.line() as usize).filter(|l| *l > 0),
            message: message_of(&e.to_string()),
        })?;
    Ok(match top {
        None => Top::Empty,
        Some(Spanned {
            value, referenced, ..
        }) => match value {
            TopValue::Null => Top::Empty,
            TopValue::Array => Top::Array,
            TopValue::Scalar => Top::Scalar,
            TopValue::Object {
                fields,
                items,
                field_lines,
            } => Top::Object {
                line: referenced.line() as usize,
                fields,
                items,
                field_lines,
            },
        },
    })
}

/// serde-saphyr's message without its `error: line N column M:` prefix
/// (the note gives the line in the file) and the source snippet after it.
fn message_of(message: &str) -> String {
    let first = message.lines().next().unwrap_or(message).trim();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    match first.strip_prefix("line ").and_then(|r| r.split_once(": ")) {
        Some((position, rest)) => match position.split_once(' ') {
            Some((_, column)) => format!("{rest} ({column})"),
            None => rest.to_owned(),
        },
        None => first.to_owned(),
    }
}

enum TopValue {
    Null,
    Array,
    Scalar,
    Object {
        fields: Map<String, Value>,
        items: Option<Vec<(usize, Value)>>,
        field_lines: Vec<(String, usize)>,
    },
}

impl<'de> Deserialize<'de> for TopValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TopVisitor)
    }
}

struct TopVisitor;

impl<'de> Visitor<'de> for TopVisitor {
    type Value = TopValue;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a Kubernetes object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TopValue, A::Error> {
        let mut fields = Map::new();
        let mut items = None;
        let mut field_lines = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if key == "items" {
                match map.next_value::<Items>()? {
                    Items::Seq(v) => items = Some(v),
                    Items::Other(v) => {
                        fields.insert(key, v);
                    }
                }
            } else if key == "metadata" || key == "spec" {
                let v = map.next_value_seed(Tracked {
                    path: &key,
                    lines: &mut field_lines,
                })?;
                fields.insert(key, v);
            } else {
                let v: Value = map.next_value()?;
                fields.insert(key, v);
            }
        }
        Ok(TopValue::Object {
            fields,
            items,
            field_lines,
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TopValue, A::Error> {
        while seq.next_element::<de::IgnoredAny>()?.is_some() {}
        Ok(TopValue::Array)
    }

    fn visit_unit<E>(self) -> Result<TopValue, E> {
        Ok(TopValue::Null)
    }

    fn visit_none<E>(self) -> Result<TopValue, E> {
        Ok(TopValue::Null)
    }

    fn visit_bool<E>(self, _: bool) -> Result<TopValue, E> {
        Ok(TopValue::Scalar)
    }

    fn visit_i64<E>(self, _: i64) -> Result<TopValue, E> {
        Ok(TopValue::Scalar)
    }

    fn visit_u64<E>(self, _: u64) -> Result<TopValue, E> {
        Ok(TopValue::Scalar)
    }

    fn visit_f64<E>(self, _: f64) -> Result<TopValue, E> {
        Ok(TopValue::Scalar)
    }

    fn visit_str<E>(self, _: &str) -> Result<TopValue, E> {
        Ok(TopValue::Scalar)
    }
}

/// The value under `path` (`metadata`, `spec`), noting on the way the
/// lines of the fields findings point at, in the same single parse.
struct Tracked<'a> {
    path: &'a str,
    lines: &'a mut Vec<(String, usize)>,
}

/// Is `path` a field whose line a finding may point at, or one whose
/// items are?
fn tracked(path: &str) -> (bool, bool) {
    match path {
        "metadata.labels" => (true, false),
        "spec.ingress" | "spec.egress" => (false, true),
        _ => (false, false),
    }
}

/// The visits that rebuild a scalar as a JSON value, for visitors that
/// look closer only at some collections.
macro_rules! rebuild_scalars {
    () => {
        fn visit_unit<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
        fn visit_none<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
        fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
            Ok(v.into())
        }
        fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
            Ok(v.into())
        }
        fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
            Ok(v.into())
        }
        fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
            Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
        }
        fn visit_str<E>(self, v: &str) -> Result<Value, E> {
            Ok(v.into())
        }
    };
}

impl<'de> DeserializeSeed<'de> for Tracked<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Tracked<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let child = format!("{}.{key}", self.path);
            let v = match tracked(&child) {
                (true, _) => {
                    let s: Spanned<Value> = map.next_value()?;
                    self.lines.push((child, s.referenced.line() as usize));
                    s.value
                }
                (_, true) => map.next_value_seed(TrackedItems {
                    path: &child,
                    lines: self.lines,
                })?,
                _ => map.next_value()?,
            };
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Value, A::Error> {
        Value::deserialize(de::value::SeqAccessDeserializer::new(seq))
    }

    rebuild_scalars!();
}

/// A sequence under `path` whose items' lines are noted (`path[N]`).
struct TrackedItems<'a> {
    path: &'a str,
    lines: &'a mut Vec<(String, usize)>,
}

impl<'de> DeserializeSeed<'de> for TrackedItems<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TrackedItems<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a list")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Value>>()? {
            self.lines.push((
                format!("{}[{}]", self.path, out.len()),
                item.referenced.line() as usize,
            ));
            out.push(item.value);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Value, A::Error> {
        Value::deserialize(de::value::MapAccessDeserializer::new(map))
    }

    rebuild_scalars!();
}

/// `items`: a sequence whose items keep their lines, or anything else.
enum Items {
    Seq(Vec<(usize, Value)>),
    Other(Value),
}

impl<'de> Deserialize<'de> for Items {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Items;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of objects")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Items, A::Error> {
                let mut out = Vec::new();
                while let Some(item) = seq.next_element::<Spanned<Value>>()? {
                    out.push((item.referenced.line() as usize, item.value));
                }
                Ok(Items::Seq(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Items, A::Error> {
                Value::deserialize(de::value::MapAccessDeserializer::new(map)).map(Items::Other)
            }
            fn visit_unit<E>(self) -> Result<Items, E> {
                Ok(Items::Other(Value::Null))
            }
            fn visit_none<E>(self) -> Result<Items, E> {
                Ok(Items::Other(Value::Null))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Items, E> {
                Ok(Items::Other(v.into()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Items, E> {
                Ok(Items::Other(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Items, E> {
                Ok(Items::Other(v.into()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Items, E> {
                Ok(Items::Other(v.into()))
            }
            fn visit_str<E>(self, v: &str) -> Result<Items, E> {
                Ok(Items::Other(v.into()))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs(text: &str) -> Vec<(usize, usize, String)> {
        let mut out = Vec::new();
        let r = split(text.as_bytes(), 1, |d| {
            out.push((d.index, d.first_line, d.text.unwrap()));
            true
        });
        assert!(r.is_ok());
        out
    }

    #[test]
    fn splits_like_kubectl_with_comments_after_the_separator() {
        let d = docs("a: 1\n--- # second\nb: 2\n---\r\nc: 3\n");
        assert_eq!(
            d,
            vec![
                (0, 1, "a: 1\n".to_owned()),
                (1, 3, "b: 2\n".to_owned()),
                (2, 5, "c: 3\n".to_owned())
            ]
        );
        let r = split("a: 1\n--- b: 2\n".as_bytes(), 1, |_| true);
        assert!(matches!(r, Err(SplitStop::BadSeparator { line: 2, .. })));
    }

    #[test]
    fn objects_and_list_items_keep_their_lines() {
        let Top::Object {
            line,
            fields,
            items,
            ..
        } = parse("# c\n\napiVersion: v1\nkind: List\nitems:\n- kind: A\n-   kind: B\n").unwrap()
        else {
            panic!("an object")
        };
        assert_eq!(line, 3);
        assert_eq!(fields["kind"], "List");
        let lines: Vec<usize> = items.unwrap().iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, vec![6, 7]);
        assert!(matches!(parse("[1, 2]"), Ok(Top::Array)));
        let Ok(Top::Object { field_lines, .. }) = parse(
            "kind: NetworkPolicy\nmetadata:\n  name: x\n  labels: {a: b}\nspec:\n  egress:\n  - to: []\n  -   ports: []\n  ingress: [{}]\n",
        ) else {
            panic!("an object")
        };
        assert_eq!(
            field_lines,
            vec![
                ("metadata.labels".to_owned(), 4),
                ("spec.egress[0]".to_owned(), 7),
                ("spec.egress[1]".to_owned(), 8),
                ("spec.ingress[0]".to_owned(), 9),
            ]
        );
        assert!(matches!(parse("# only\n"), Ok(Top::Empty)));
        assert!(matches!(parse("x"), Ok(Top::Scalar)));
        let e = parse("a: 1\nb: [c\n").err().unwrap();
        assert_eq!(e.line, Some(2), "the unclosed `[`: {}", e.message);
        assert!(!e.message.starts_with("error"), "{}", e.message);
    }
}
