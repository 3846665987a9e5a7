//! `check --output sarif` and `--output junit`: the report where CI
//! reviewers look. SARIF has one rule per palisade rule and one result per
//! broken rule (and per warning), at the line where the object starts;
//! JUnit has one test case per object decided, failing when it would be
//! denied.

use crate::check::{ObjectResult, Report};
use crate::decide::Decision;
use crate::decide::verdict::summary_of;
use crate::mode::Mode;
use crate::rule_help;
use crate::sarif::{self, Finding, Level, Rule};

/// The rule id of warnings that break no rule (a broad NetworkPolicy).
pub const WARNING_RULE: &str = "palisade-warning";

/// The prefix warn mode puts before a violation it lets through; those
/// warnings repeat a violation already reported under its own rule.
const WOULD_DENY_PREFIX: &str = "palisade would deny this in enforce mode";

/// The SARIF rules `check` reports under.
pub fn sarif_rules() -> Vec<Rule> {
    rule_help::ALL
        .iter()
        .map(|r| Rule {
            id: r.as_str().to_owned(),
            summary: rule_help::summary(*r).to_owned(),
            help: format!("{}. {}", rule_help::summary(*r), rule_help::fix(*r)),
            level: Level::Error,
        })
        .chain([Rule {
            id: WARNING_RULE.to_owned(),
            summary: "Allowed, with a warning the API server passes on to the client".to_owned(),
            help: "Allowed, with a warning the API server passes on to the client, such as a NetworkPolicy rule that admits every peer on some ports. Fix: narrow the rule to the peers and ports that are needed.".to_owned(),
            level: Level::Warning,
        }])
        .collect()
}

/// The level of a result's violations: deny in enforce mode, warn in warn
/// mode, would-deny (recorded only) in dry-run mode.
fn level_of(r: &ObjectResult) -> Level {
    match (r.decision, r.mode) {
        (Decision::Deny, _) => Level::Error,
        (_, Mode::Warn) => Level::Warning,
        (_, Mode::DryRun) => Level::Note,
        _ => Level::Error,
    }
}

/// One finding per broken rule and per warning of every object.
pub fn findings(report: &Report) -> Vec<Finding> {
    let mut out = Vec::new();
    for r in &report.results {
        let place_at =
            |line: Option<usize>| Some((r.origin.file.clone(), line.unwrap_or(r.origin.line)));
        let what = format!("{} {}", r.kind, r.name);
        for v in &r.violations {
            let message = match r.decision {
                Decision::WouldDeny if r.mode == Mode::Warn => {
                    format!(
                        "{what}: allowed in warn mode; enforce mode would deny it: {}",
                        v.message
                    )
                }
                Decision::WouldDeny => {
                    format!(
                        "{what}: allowed in dry-run mode; enforce mode would deny it: {}",
                        v.message
                    )
                }
                _ => v.message.clone(),
            };
            out.push(Finding {
                rule: v.rule.as_str().to_owned(),
                level: level_of(r),
                message,
                place: place_at(v.line),
            });
        }
        for w in r
            .warnings
            .iter()
            .filter(|w| !w.starts_with(WOULD_DENY_PREFIX))
        {
            out.push(Finding {
                rule: WARNING_RULE.to_owned(),
                level: Level::Warning,
                message: format!("{what}: {w}"),
                place: place_at(r.origin.field_line(None, w)),
            });
        }
    }
    out
}

/// The report as a SARIF log.
pub fn sarif(report: &Report) -> sarif::Log {
    sarif::log(&sarif_rules(), &findings(report))
}

/// The report as JUnit XML: one test suite, one test case per object
/// palisade decides (objects of kinds it has no rule for, and in exempt
/// namespaces, are left out), named `Kind namespace/name` with the file
/// and line as its class name; a denial is a failure carrying every
/// violation's message and fix, a would-deny passes with the message in
/// its output.
pub fn junit(report: &Report) -> Result<String, quick_junit::SerializeError> {
    use quick_junit::{NonSuccessKind, TestCase, TestCaseStatus, TestSuite};
    let mut suite = TestSuite::new("palisade check");
    for r in report
        .results
        .iter()
        .filter(|r| r.decision != Decision::Skip)
    {
        let name = if r.namespace.is_empty() || r.kind == "Namespace" {
            format!("{} {}", r.kind, r.name)
        } else {
            format!("{} {}/{}", r.kind, r.namespace, r.name)
        };
        let messages = r
            .violations
            .iter()
            .map(|v| {
                let line = v.line.unwrap_or(r.origin.line);
                format!("{}:{line}: [{}] {}", r.origin.file, v.rule, v.message)
            })
            .collect::<Vec<_>>()
            .join("\n\n");
        let status = if r.decision == Decision::Deny {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
            let first = r.violations.first();
            s.set_message(
                first
                    .map(|v| format!("[{}] {}", v.rule, summary_of(&v.message)))
                    .unwrap_or_else(|| "denied".to_owned()),
            );
            s.set_type(
                r.violations
                    .iter()
                    .map(|v| v.rule.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            );
            s.set_description(messages.clone());
            s
        } else {
            TestCaseStatus::success()
        };
        let mut case = TestCase::new(name, status);
        case.set_classname(format!("{}:{}", r.origin.file, r.origin.line));
        let mut out: Vec<String> = Vec::new();
        if r.decision == Decision::WouldDeny {
            out.push(format!(
                "would be denied in enforce mode ({} mode):\n{messages}",
                r.mode
            ));
        }
        out.extend(
            r.warnings
                .iter()
                .filter(|w| !w.starts_with(WOULD_DENY_PREFIX))
                .map(|w| format!("warning: {w}")),
        );
        if let Some(m) = &r.mutation {
            out.push(format!("mutating webhook: {}", m.changes.join("; ")));
        }
        if !out.is_empty() {
            case.set_system_out(out.join("\n"));
        }
        suite.add_test_case(case);
    }
    let mut junit = quick_junit::Report::new("palisade");
    junit.add_test_suite(suite);
    junit.to_string()
}
