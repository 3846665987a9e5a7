//! Tabs at the start of a line inside a flow collection (`[ ... ]`,
//! `{ ... }`), which kubectl's YAML parser (go-yaml) reads as plain
//! separation, as YAML 1.2 allows, and serde-saphyr rejects as block
//! indentation. Found in real manifests: `args:` given as a flow sequence
//! whose continuation lines are indented with tabs.
//!
//! [`untab_flow_lines`] rewrites only the leading whitespace of lines that
//! begin inside a flow collection; whitespace there separates tokens and
//! is folded away inside multi-line scalars, so the values are unchanged.
//! It is tried only after a document failed to parse, and its result only
//! kept when it parses.

/// `text` with every tab in the leading whitespace of a line that starts
/// inside a flow collection replaced by a space, or `None` when there is
/// no such tab (nothing to retry).
pub(super) fn untab_flow_lines(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut scan = Scanner::default();
    let mut changed = false;
    for line in text.split_inclusive('\n') {
        let body = line.trim_start_matches([' ', '\t']);
        let lead = &line[..line.len() - body.len()];
        if scan.depth > 0 && scan.quote.is_none() && lead.contains('\t') {
            out.push_str(&lead.replace('\t', " "));
            changed = true;
        } else {
            out.push_str(lead);
        }
        out.push_str(body);
        scan.line(line);
    }
    changed.then_some(out)
}

/// Just enough of YAML's lexical structure to know, line by line, whether
/// a flow collection is open: quotes, comments, block scalars, and `[` or
/// `{` only where a node may start (a `[` inside a plain scalar such as
/// `image: app[1]` opens nothing).
#[derive(Default)]
struct Scanner {
    /// Open `[` and `{`.
    depth: usize,
    /// Inside a quoted scalar that spans lines.
    quote: Option<char>,
    /// Inside a block scalar: lines indented more than this belong to it.
    block_scalar_parent: Option<usize>,
}

impl Scanner {
    fn line(&mut self, line: &str) {
        let content = line.trim_end_matches(['\n', '\r']);
        let indent = content.len() - content.trim_start_matches(' ').len();
        if let Some(parent) = self.block_scalar_parent {
            if content.trim().is_empty() || indent > parent {
                return;
            }
            self.block_scalar_parent = None;
        }
        let chars: Vec<char> = content.chars().collect();
        // Where a node may start: after indentation, `- `, `? `, `: `, and
        // inside flow after `[`, `{` and `,`.
        let mut node_start = true;
        let mut prev = ' ';
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if let Some(q) = self.quote {
                if c == q {
                    if q == '\'' && chars.get(i + 1) == Some(&'\'') {
                        i += 2;
                        continue;
                    }
                    self.quote = None;
                    node_start = false;
                } else if q == '"' && c == '\\' {
                    i += 1;
                }
                prev = c;
                i += 1;
                continue;
            }
            match c {
                '#' if prev == ' ' || prev == '\t' || i == 0 => return,
                '\'' | '"' if node_start => self.quote = Some(c),
                '[' | '{' if node_start || self.depth > 0 && matches!(prev, '[' | '{' | ',') => {
                    self.depth += 1;
                    node_start = true;
                    prev = c;
                    i += 1;
                    continue;
                }
                ']' | '}' if self.depth > 0 => self.depth -= 1,
                ',' if self.depth > 0 => {
                    node_start = true;
                    prev = c;
                    i += 1;
                    continue;
                }
                '|' | '>' if node_start && self.depth == 0 => {
                    self.block_scalar_parent = Some(indent);
                    return;
                }
                ' ' | '\t' => {
                    if matches!(prev, '-' | '?' | ':') && (i == 1 || node_start_before(&chars, i)) {
                        node_start = true;
                    }
                    prev = c;
                    i += 1;
                    continue;
                }
                _ => {}
            }
            if !matches!(c, ' ' | '\t') {
                node_start = false;
            }
            prev = c;
            i += 1;
        }
    }
}

/// Is the indicator just before `i` (`-`, `?`, `:`) one that introduces a
/// node: `-` and `?` at the start of the line's content, `:` anywhere?
fn node_start_before(chars: &[char], i: usize) -> bool {
    let ind = chars[i - 1];
    if ind == ':' {
        return true;
    }
    chars[..i - 1].iter().all(|c| matches!(c, ' ' | '\t' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tabs_inside_a_flow_sequence_become_spaces() {
        let t = "args:\n  [\n\t\"-listen\",\n\t\":8080\",\n  ]\nnext: 1\n";
        assert_eq!(
            untab_flow_lines(t).as_deref(),
            Some("args:\n  [\n \"-listen\",\n \":8080\",\n  ]\nnext: 1\n")
        );
    }

    #[test]
    fn tabs_outside_flow_collections_are_left_for_the_parser_to_reject() {
        assert_eq!(untab_flow_lines("a:\n\tb: 1\n"), None);
        // A `[` inside a plain scalar, a quote or a comment opens nothing.
        assert_eq!(untab_flow_lines("image: app[1\n\tb: 1\n"), None);
        assert_eq!(untab_flow_lines("a: \"[\"\n\tb: 1\n"), None);
        assert_eq!(untab_flow_lines("a: 1 # [\n\tb: 1\n"), None);
        // Nor does one in a block scalar.
        assert_eq!(untab_flow_lines("a: |\n  [x\n\tb: 1\n"), None);
    }

    #[test]
    fn nested_and_closed_collections_are_tracked() {
        let t = "a: [x, {b: [1,\n\t2]},\n\ty]\n\tz: 1\n";
        assert_eq!(
            untab_flow_lines(t).as_deref(),
            Some("a: [x, {b: [1,\n 2]},\n y]\n\tz: 1\n")
        );
        let t = "- [a,\n\tb]\n";
        assert_eq!(untab_flow_lines(t).as_deref(), Some("- [a,\n b]\n"));
    }
}
