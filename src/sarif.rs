//! SARIF 2.1.0, the format code scanning reads (GitHub, GitLab, Azure
//! DevOps), as kube-linter, checkov and kubescape write it: one run, one
//! rule per rule id with its help and fix, one result per finding at the
//! file and line of the object it is about.
//!
//! Only the part of the schema palisade writes is modelled; the tests run
//! the official validator (`@microsoft/sarif-multitool`) over the output.

use std::path::Path;

use serde::Serialize;

/// The schema the log declares.
pub const SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

/// How serious a result is (SARIF's `level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Would be denied, or fails the pipeline.
    Error,
    /// Allowed with a warning (warn mode, broad rules).
    Warning,
    /// Recorded only (dry-run mode).
    Note,
}

/// A rule: what it checks and how to fix what it finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The stable id (`require-default-deny`).
    pub id: String,
    /// One line.
    pub summary: String,
    /// What it checks, why, and the fix.
    pub help: String,
    /// The level of its results unless a result says otherwise.
    pub level: Level,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The rule's id (one of the log's rules).
    pub rule: String,
    /// Its level.
    pub level: Level,
    /// What, where, why and the fix.
    pub message: String,
    /// The file and the 1-based line, when the finding has a place.
    pub place: Option<(String, usize)>,
}

/// A whole SARIF log.
#[derive(Debug, Serialize)]
pub struct Log {
    #[serde(rename = "$schema")]
    schema: &'static str,
    version: &'static str,
    runs: Vec<Run>,
}

#[derive(Debug, Serialize)]
struct Run {
    tool: Tool,
    results: Vec<ResultJson>,
}

#[derive(Debug, Serialize)]
struct Tool {
    driver: Driver,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Driver {
    name: &'static str,
    semantic_version: &'static str,
    rules: Vec<RuleJson>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RuleJson {
    id: String,
    name: String,
    short_description: Text,
    full_description: Text,
    help: Text,
    default_configuration: Configuration,
}

#[derive(Debug, Serialize)]
struct Configuration {
    level: Level,
}

#[derive(Debug, Serialize)]
struct Text {
    text: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ResultJson {
    rule_id: String,
    rule_index: usize,
    level: Level,
    message: Text,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    locations: Vec<Location>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Location {
    physical_location: PhysicalLocation,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PhysicalLocation {
    artifact_location: ArtifactLocation,
    region: Region,
}

#[derive(Debug, Serialize)]
struct ArtifactLocation {
    uri: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Region {
    start_line: usize,
}

/// The log of one palisade run. Findings whose rule is not among `rules`
/// are left out (a caller's mistake, not the reader's problem).
pub fn log(rules: &[Rule], findings: &[Finding]) -> Log {
    let results = findings
        .iter()
        .filter_map(|f| {
            let rule_index = rules.iter().position(|r| r.id == f.rule)?;
            Some(ResultJson {
                rule_id: f.rule.clone(),
                rule_index,
                level: f.level,
                message: Text {
                    text: f.message.clone(),
                },
                locations: f
                    .place
                    .iter()
                    .map(|(file, line)| Location {
                        physical_location: PhysicalLocation {
                            artifact_location: ArtifactLocation { uri: uri(file) },
                            region: Region {
                                start_line: (*line).max(1),
                            },
                        },
                    })
                    .collect(),
            })
        })
        .collect();
    Log {
        schema: SCHEMA,
        version: "2.1.0",
        runs: vec![Run {
            tool: Tool {
                driver: Driver {
                    name: "palisade",
                    semantic_version: env!("CARGO_PKG_VERSION"),
                    rules: rules
                        .iter()
                        .map(|r| RuleJson {
                            id: r.id.clone(),
                            name: camel(&r.id),
                            short_description: Text {
                                text: r.summary.clone(),
                            },
                            full_description: Text {
                                text: r.help.clone(),
                            },
                            help: Text {
                                text: r.help.clone(),
                            },
                            default_configuration: Configuration { level: r.level },
                        })
                        .collect(),
                },
            },
            results,
        }],
    }
}

/// `require-default-deny` -> `RequireDefaultDeny`, SARIF's convention for
/// a rule's name.
fn camel(id: &str) -> String {
    id.split('-')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_uppercase().chain(c).collect::<String>(),
                None => String::new(),
            }
        })
        .collect()
}

/// A file path as a SARIF URI: relative paths stay relative to where
/// palisade ran (the repository root in CI, where code scanning resolves
/// them), with `/` separators and `./` dropped; absolute paths become
/// `file://` URIs. Characters outside RFC 3986's unreserved set are
/// percent-encoded.
pub fn uri(file: &str) -> String {
    let path = Path::new(file);
    let parts: Vec<String> = path
        .components()
        .filter_map(|c| match c {
            std::path::Component::Normal(s) => Some(encode(&s.to_string_lossy())),
            std::path::Component::ParentDir => Some("..".to_owned()),
            _ => None,
        })
        .collect();
    let joined = parts.join("/");
    if path.is_absolute() {
        format!("file:///{joined}")
    } else {
        joined
    }
}

fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_become_relative_or_file_uris() {
        assert_eq!(uri("./k8s/app.yaml"), "k8s/app.yaml");
        assert_eq!(uri("k8s/my app.yaml"), "k8s/my%20app.yaml");
        assert_eq!(uri("/tmp/x/a.yaml"), "file:///tmp/x/a.yaml");
        assert_eq!(uri("../other/a.yaml"), "../other/a.yaml");
    }

    #[test]
    fn results_point_at_their_rule_and_line() {
        let rules = vec![Rule {
            id: "no-allow-all".into(),
            summary: "s".into(),
            help: "h".into(),
            level: Level::Error,
        }];
        let findings = vec![
            Finding {
                rule: "no-allow-all".into(),
                level: Level::Note,
                message: "m".into(),
                place: Some(("a.yaml".into(), 7)),
            },
            Finding {
                rule: "unknown".into(),
                level: Level::Error,
                message: "m".into(),
                place: None,
            },
        ];
        let v = serde_json::to_value(log(&rules, &findings)).unwrap();
        let results = v["runs"][0]["results"].as_array().unwrap();
        assert_eq!(results.len(), 1);
        assert_eq!(results[0]["ruleIndex"], 0);
        assert_eq!(results[0]["level"], "note");
        assert_eq!(
            results[0]["locations"][0]["physicalLocation"]["region"]["startLine"],
            7
        );
        assert_eq!(
            v["runs"][0]["tool"]["driver"]["rules"][0]["name"],
            "NoAllowAll"
        );
    }
}
