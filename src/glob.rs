//! Globs as role rules write them: `*` matches any run of characters, `/`
//! included (so `*/postgres:*` matches `registry.example/team/postgres:16`),
//! and `?` exactly one character. Everything else is literal.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A compiled glob pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Glob {
    text: String,
    // The pattern as characters, decoded once: matching runs for every
    // container image against every rule on every pod admission.
    chars: Vec<char>,
}

impl Glob {
    /// A glob from its pattern text.
    pub fn new(pattern: impl Into<String>) -> Self {
        let text = pattern.into();
        let chars = text.chars().collect();
        Glob { text, chars }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Does `text` match the whole pattern?
    pub fn matches(&self, text: &str) -> bool {
        // Iterative matching with one backtrack point: linear in practice
        // and never recursive, so hostile patterns cannot blow the stack.
        // `ti` is a byte offset into `text`, always on a char boundary.
        let p = &self.chars;
        let (mut pi, mut ti) = (0usize, 0usize);
        let mut star: Option<(usize, usize)> = None;
        while let Some(c) = text[ti..].chars().next() {
            match p.get(pi) {
                Some('*') => {
                    star = Some((pi, ti));
                    pi += 1;
                }
                Some(&pc) if pc == '?' || pc == c => {
                    pi += 1;
                    ti += c.len_utf8();
                }
                _ => match star {
                    Some((sp, st)) => {
                        // Let the star swallow one more character.
                        let next = st + text[st..].chars().next().map_or(1, char::len_utf8);
                        pi = sp + 1;
                        ti = next;
                        star = Some((sp, next));
                    }
                    None => return false,
                },
            }
        }
        p[pi..].iter().all(|c| *c == '*')
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for Glob {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Glob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Glob::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_truth_table() {
        let cases = [
            ("postgres:*", "postgres:16", true),
            ("postgres:*", "postgres:", true),
            ("postgres:*", "docker.io/library/postgres:16", false),
            ("*/postgres:*", "docker.io/library/postgres:16", true),
            ("*/postgres:*", "postgres:16", false),
            ("payments-*", "payments-eu", true),
            ("payments-*", "payments", false),
            ("db", "db", true),
            ("db", "db2", false),
            ("d?", "db", true),
            ("d?", "d", false),
            ("*", "", true),
            ("", "", true),
            ("", "x", false),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("**", "anything/at/all", true),
            // `?` is one character, not one byte; backtracking steps over
            // whole characters.
            ("caf?", "café", true),
            ("caf??", "café", false),
            ("*é", "café", true),
            ("*äb", "äxäb", true),
            ("*ä", "ääb", false),
            ("?*?", "éü", true),
            (
                "*a",
                "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
                false,
            ),
        ];
        for (pattern, text, want) in cases {
            assert_eq!(Glob::new(pattern).matches(text), want, "{pattern} ~ {text}");
        }
        let g: Glob = serde_json::from_str("\"*/postgres:*\"").unwrap();
        assert_eq!(serde_json::to_string(&g).unwrap(), "\"*/postgres:*\"");
    }
}
