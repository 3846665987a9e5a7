//! `simulate diff --output sarif | junit`: what a change opens, where CI
//! reviewers look. SARIF has one result per connection opened (added, or
//! widened to more ports), at the policy that admits it; JUnit has one
//! test case per connection change, failing for those that open something
//! when `--fail-on open` is given.

use super::diff::Diff;
use super::model::Model;
use super::sources::Sources;
use crate::ports::PortSet;
use crate::sarif::{self, Finding, Level, Rule};

/// The rule id of an opened connection.
pub const OPENED_RULE: &str = "connection-opened";

fn rules() -> Vec<Rule> {
    vec![Rule {
        id: OPENED_RULE.to_owned(),
        summary: "The change allows a connection, or ports on one, that were not allowed before"
            .to_owned(),
        help: "The change allows a connection, or ports on one, that were not allowed before (computed from every NetworkPolicy before and after, as Kubernetes evaluates them). Fix: if the connection is not meant to be open, narrow the policy rule the result points at to the peers and ports that are needed; if it is, accept it in review.".to_owned(),
        level: Level::Error,
    }]
}

fn side(p: &Option<PortSet>) -> String {
    p.as_ref()
        .map_or_else(|| "none".to_owned(), ToString::to_string)
}

/// One finding per connection the change opens.
pub fn findings(d: &Diff, after: &Model, sources: &Sources, fail_on_open: bool) -> Vec<Finding> {
    d.changes
        .iter()
        .filter(|c| !c.opened().is_empty())
        .map(|c| Finding {
            rule: OPENED_RULE.to_owned(),
            level: if fail_on_open {
                Level::Error
            } else {
                Level::Warning
            },
            message: format!(
                "{} => {}: opens {} (before: {}; after: {})",
                c.src,
                c.dst,
                c.opened(),
                side(&c.before),
                side(&c.after)
            ),
            place: sources.place_of(after, c),
        })
        .collect()
}

/// The diff as a SARIF log.
pub fn sarif(d: &Diff, after: &Model, sources: &Sources, fail_on_open: bool) -> sarif::Log {
    sarif::log(&rules(), &findings(d, after, sources, fail_on_open))
}

/// The diff as JUnit XML: one test case per connection change, named
/// `SRC => DST`, with its kind (added, removed, changed) as class name.
pub fn junit(
    d: &Diff,
    after: &Model,
    sources: &Sources,
    fail_on_open: bool,
) -> Result<String, quick_junit::SerializeError> {
    use quick_junit::{NonSuccessKind, TestCase, TestCaseStatus, TestSuite};
    let mut suite = TestSuite::new("palisade simulate diff");
    for c in &d.changes {
        let opened = c.opened();
        let detail = format!("before: {}; after: {}", side(&c.before), side(&c.after));
        let status = if fail_on_open && !opened.is_empty() {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
            s.set_message(format!("opens {opened}"));
            s.set_type(OPENED_RULE);
            let at = sources
                .place_of(after, c)
                .map(|(f, l)| format!("\nadmitted at {f}:{l}"))
                .unwrap_or_default();
            s.set_description(format!(
                "{} => {}: opens {opened} ({detail}){at}",
                c.src, c.dst
            ));
            s
        } else {
            TestCaseStatus::success()
        };
        let mut case = TestCase::new(format!("{} => {}", c.src, c.dst), status);
        case.set_classname(c.kind());
        case.set_system_out(detail);
        suite.add_test_case(case);
    }
    let mut report = quick_junit::Report::new("palisade");
    report.add_test_suite(suite);
    report.to_string()
}
