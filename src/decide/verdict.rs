//! What a decision says, and how the mode turns it into an answer: allowed
//! or denied, the message, warnings, audit annotations and the patch.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::mode::Mode;

/// The rules palisade applies; stable names for logs, metrics, audit
/// annotations and `check` output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuleId {
    /// Workloads need a namespace with default-deny.
    RequireDefaultDeny,
    /// No allow-all NetworkPolicy outside dev namespaces.
    NoAllowAll,
    /// A NetworkPolicy change may not remove the last default-deny.
    KeepDefaultDeny,
    /// A namespace holding allow-all policies may not become non-dev.
    AllowAllStaysDev,
    /// Weakening namespace labels need a trusted group.
    TrustedLabels,
    /// `palisade.io/mode` must name a mode.
    ValidModeLabel,
    /// The role label is palisade's: no value a rule would not derive.
    OwnedRoleLabel,
    /// The sidecar cannot be injected without breaking the pod.
    SidecarConflict,
    /// The object could not be read.
    InvalidObject,
}

impl RuleId {
    /// The rule's name.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleId::RequireDefaultDeny => "require-default-deny",
            RuleId::NoAllowAll => "no-allow-all",
            RuleId::KeepDefaultDeny => "keep-default-deny",
            RuleId::AllowAllStaysDev => "allow-all-stays-dev",
            RuleId::TrustedLabels => "trusted-labels",
            RuleId::ValidModeLabel => "valid-mode-label",
            RuleId::OwnedRoleLabel => "owned-role-label",
            RuleId::SidecarConflict => "sidecar-conflict",
            RuleId::InvalidObject => "invalid-object",
        }
    }
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A broken rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// Which rule.
    pub rule: RuleId,
    /// What was wrong, where, and how to fix it.
    pub message: String,
    /// The violation rests on what the cluster view says (policies,
    /// namespace labels), which a watch cache may not have caught up with:
    /// re-read before denying.
    #[serde(skip)]
    pub rests_on_cluster_state: bool,
}

impl Violation {
    /// The message without its attached manifest, on one line: for
    /// warnings and annotations, which travel as HTTP headers.
    pub fn summary(&self) -> String {
        summary_of(&self.message)
    }
}

/// A violation message without its attached manifest, on one line.
pub fn summary_of(message: &str) -> String {
    let head = message.split("\n\n").next().unwrap_or_default();
    head.split('\n')
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Why a request was not decided at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Skip {
    /// The namespace is exempt.
    Exempt,
    /// palisade has no rule for this kind and operation.
    NotCovered,
}

/// How a request was answered, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decision {
    /// Allowed, nothing to say.
    Allow,
    /// Denied (enforce).
    Deny,
    /// Broke a rule, allowed because of the mode (warn, dry-run).
    WouldDeny,
    /// Allowed with a patch.
    Patch,
    /// A patch was due, withheld because of the mode (dry-run).
    WouldPatch,
    /// Not decided (exempt namespace, kind or operation not covered).
    Skip,
}

impl Decision {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
            Decision::WouldDeny => "would-deny",
            Decision::Patch => "patch",
            Decision::WouldPatch => "would-patch",
            Decision::Skip => "skip",
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of deciding one request, before it is put on the wire.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// The mode that governs the request.
    pub mode: Mode,
    /// Rules the request breaks.
    pub violations: Vec<Violation>,
    /// Things the user should know even when nothing is broken (broad
    /// rules, a sidecar skipped); shown unless the mode is dry-run.
    pub warnings: Vec<String>,
    /// JSON Patch operations to apply (mutating webhook only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub patch: Vec<json_patch::PatchOperation>,
    /// Shown to the client in every mode, dry-run included: things asked
    /// for, such as the reachability preview of a NetworkPolicy change.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// What the patch does, in words, for logs and dry-run annotations.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<String>,
    /// Set when the request was not decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<Skip>,
    /// A reachability preview is among the notes (counted in
    /// `palisade_previews_total`).
    #[serde(skip)]
    pub previewed: bool,
}

impl Verdict {
    /// A verdict with nothing to say yet, under `mode`.
    pub fn new(mode: Mode) -> Self {
        Verdict {
            mode,
            violations: Vec::new(),
            warnings: Vec::new(),
            patch: Vec::new(),
            notes: Vec::new(),
            changes: Vec::new(),
            skipped: None,
            previewed: false,
        }
    }

    /// A request palisade does not decide.
    pub fn skip(mode: Mode, why: Skip) -> Self {
        Verdict {
            skipped: Some(why),
            ..Verdict::new(mode)
        }
    }

    /// Records a broken rule.
    pub fn violate(
        &mut self,
        rule: RuleId,
        message: impl Into<String>,
        rests_on_cluster_state: bool,
    ) {
        self.violations.push(Violation {
            rule,
            message: message.into(),
            rests_on_cluster_state,
        });
    }

    /// Is the request allowed?
    pub fn allowed(&self) -> bool {
        self.mode != Mode::Enforce || self.violations.is_empty()
    }

    /// Should the caller re-read the cluster and decide again before
    /// sending this answer? Only a denial is worth the extra read.
    pub fn needs_confirmation(&self) -> bool {
        !self.allowed() && self.violations.iter().any(|v| v.rests_on_cluster_state)
    }

    /// The patch to send: none in dry-run mode, none when denied.
    pub fn effective_patch(&self) -> &[json_patch::PatchOperation] {
        if self.mode == Mode::DryRun || !self.allowed() {
            &[]
        } else {
            &self.patch
        }
    }

    /// How the request was answered.
    pub fn decision(&self) -> Decision {
        if self.skipped.is_some() {
            Decision::Skip
        } else if !self.allowed() {
            Decision::Deny
        } else if !self.violations.is_empty() {
            Decision::WouldDeny
        } else if !self.patch.is_empty() && self.mode == Mode::DryRun {
            Decision::WouldPatch
        } else if !self.patch.is_empty() {
            Decision::Patch
        } else {
            Decision::Allow
        }
    }

    /// The denial message (`status.message`), or `None` when allowed.
    pub fn denial_message(&self) -> Option<String> {
        if self.allowed() {
            return None;
        }
        Some(
            self.violations
                .iter()
                .map(|v| format!("[{}] {}", v.rule, v.message))
                .collect::<Vec<_>>()
                .join("\n\n"),
        )
    }

    /// The warnings the client sees (`kubectl` prints each as
    /// `Warning: ...`). In warn mode the violations become warnings; in
    /// dry-run mode the client sees nothing.
    pub fn client_warnings(&self) -> Vec<String> {
        let mut out: Vec<String> = match self.mode {
            Mode::DryRun => Vec::new(),
            Mode::Enforce => self.warnings.clone(),
            Mode::Warn => self
                .violations
                .iter()
                .map(|v| {
                    format!(
                        "palisade would deny this in enforce mode [{}]: {}",
                        v.rule,
                        v.summary()
                    )
                })
                .chain(self.warnings.iter().cloned())
                .collect(),
        };
        out.extend(self.notes.iter().cloned());
        out
    }

    /// Audit annotations (the API server prefixes each key with the
    /// webhook's name). Set in every mode, so the audit log shows what
    /// palisade decided and would have decided.
    pub fn audit_annotations(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        out.insert("decision".to_owned(), self.decision().as_str().to_owned());
        out.insert("mode".to_owned(), self.mode.as_str().to_owned());
        if !self.violations.is_empty() {
            let mut rules: Vec<&str> = self.violations.iter().map(|v| v.rule.as_str()).collect();
            rules.dedup();
            out.insert("rules".to_owned(), rules.join(","));
            let all: Vec<String> = self.violations.iter().map(Violation::summary).collect();
            out.insert("violation".to_owned(), truncate(&all.join(" | "), 1024));
        }
        if !self.changes.is_empty() {
            out.insert(
                "changes".to_owned(),
                truncate(&self.changes.join("; "), 512),
            );
        }
        out
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broken(mode: Mode) -> Verdict {
        let mut v = Verdict::new(mode);
        v.violate(
            RuleId::RequireDefaultDeny,
            "namespace x lacks default-deny\nfix: apply",
            true,
        );
        v.warnings.push("rule 0 is broad".into());
        v
    }

    #[test]
    fn modes_truth_table() {
        // (mode, allowed, decision, client warnings, confirm)
        let cases = [
            (Mode::Enforce, false, Decision::Deny, 1, true),
            (Mode::Warn, true, Decision::WouldDeny, 2, false),
            (Mode::DryRun, true, Decision::WouldDeny, 0, false),
        ];
        for (mode, allowed, decision, warnings, confirm) in cases {
            let v = broken(mode);
            assert_eq!(v.allowed(), allowed, "{mode}");
            assert_eq!(v.decision(), decision, "{mode}");
            assert_eq!(v.client_warnings().len(), warnings, "{mode}");
            assert_eq!(v.needs_confirmation(), confirm, "{mode}");
            assert_eq!(v.denial_message().is_some(), !allowed);
            let a = v.audit_annotations();
            assert_eq!(a["mode"], mode.as_str());
            assert_eq!(a["rules"], "require-default-deny");
            assert_eq!(a["violation"], "namespace x lacks default-deny fix: apply");
            assert_eq!(a["decision"], decision.as_str());
        }
        assert!(
            broken(Mode::Warn).client_warnings()[0]
                .starts_with("palisade would deny this in enforce mode [require-default-deny]")
        );
        assert_eq!(
            broken(Mode::Enforce).denial_message().unwrap(),
            "[require-default-deny] namespace x lacks default-deny\nfix: apply"
        );
    }

    #[test]
    fn patches_are_withheld_in_dry_run_and_on_denial() {
        let op: json_patch::PatchOperation = serde_json::from_value(
            serde_json::json!({"op": "add", "path": "/metadata/labels", "value": {}}),
        )
        .unwrap();
        for (mode, sent, decision) in [
            (Mode::Enforce, 1, Decision::Patch),
            (Mode::Warn, 1, Decision::Patch),
            (Mode::DryRun, 0, Decision::WouldPatch),
        ] {
            let mut v = Verdict::new(mode);
            v.patch.push(op.clone());
            assert_eq!(v.effective_patch().len(), sent, "{mode}");
            assert_eq!(v.decision(), decision, "{mode}");
        }
        let mut v = broken(Mode::Enforce);
        v.patch.push(op);
        assert!(v.effective_patch().is_empty());
    }

    #[test]
    fn summaries_drop_the_manifest_and_newlines() {
        let v = Violation {
            rule: RuleId::RequireDefaultDeny,
            message: "what\nwhy\nFix: apply this:\n\napiVersion: v1\nkind: X\n".into(),
            rests_on_cluster_state: true,
        };
        assert_eq!(v.summary(), "what why Fix: apply this:");
    }

    #[test]
    fn long_messages_are_cut_on_a_char_boundary() {
        let s = "é".repeat(400);
        let t = truncate(&s, 511);
        assert!(t.ends_with("...") && t.len() <= 514);
    }
}
