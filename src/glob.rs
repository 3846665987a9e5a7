//! Globs as role rules write them: `*` matches any run of characters, `/`
//! included (so `*/postgres:*` matches `registry.example/team/postgres:16`),
//! and `?` exactly one character. Everything else is literal.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// A compiled glob pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Glob(String);

impl Glob {
    /// A glob from its pattern text.
    pub fn new(pattern: impl Into<String>) -> Self {
        Glob(pattern.into())
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Does `text` match the whole pattern?
    pub fn matches(&self, text: &str) -> bool {
        // Iterative matching with one backtrack point: linear in practice
        // and never recursive, so hostile patterns cannot blow the stack.
        let p: Vec<char> = self.0.chars().collect();
        let t: Vec<char> = text.chars().collect();
        let (mut pi, mut ti) = (0usize, 0usize);
        let mut star: Option<(usize, usize)> = None;
        while ti < t.len() {
            match p.get(pi) {
                Some('*') => {
                    star = Some((pi, ti));
                    pi += 1;
                }
                Some(&c) if c == '?' || c == t[ti] => {
                    pi += 1;
                    ti += 1;
                }
                _ => match star {
                    Some((sp, st)) => {
                        pi = sp + 1;
                        ti = st + 1;
                        star = Some((sp, st + 1));
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
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Glob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Glob)
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
            (
                "*a",
                "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
                false,
            ),
        ];
        for (pattern, text, want) in cases {
            assert_eq!(Glob::new(pattern).matches(text), want, "{pattern} ~ {text}");
        }
    }
}
