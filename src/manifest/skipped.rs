//! The one rule every command that reads manifests (`check`, `simulate`,
//! `audit --state`, `serve --state`) applies to what is not a manifest: a
//! file that cannot be read, binary or malformed text, a JSON array, a
//! Helm template, a `kustomization.yaml` or any document without
//! `apiVersion` and `kind`. Each is noted on stderr with its file,
//! document, line and reason, and skipped; with `--strict` any of them
//! makes the command fail with exit code 2, after every one was noted.

use thiserror::Error;

use super::Skipped;

/// The note for one skipped file or document, as printed on stderr.
pub fn note(s: &Skipped) -> String {
    format!("note: skipped {s}")
}

/// `--strict` and some files or documents are not manifests.
#[derive(Debug, Error)]
#[error("{} not Kubernetes manifests (--strict): {}", count(.0.len()), list(.0))]
pub struct NotManifests(pub Vec<Skipped>);

fn count(n: usize) -> String {
    if n == 1 {
        "1 file or document is".to_owned()
    } else {
        format!("{n} files or documents are")
    }
}

fn list(skipped: &[Skipped]) -> String {
    skipped
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// What the rule makes of the skipped entries once every one was noted:
/// nothing without `--strict`, an error with it.
pub fn verdict(skipped: Vec<Skipped>, strict: bool) -> Result<(), NotManifests> {
    if strict && !skipped.is_empty() {
        Err(NotManifests(skipped))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn s(index: Option<usize>, line: Option<usize>) -> Skipped {
        Skipped {
            source: PathBuf::from("k8s/out.json"),
            index,
            line,
            reason: "a list (array), not a Kubernetes object".into(),
        }
    }

    #[test]
    fn notes_name_file_line_document_and_reason() {
        assert_eq!(
            note(&s(Some(0), Some(1))),
            "note: skipped k8s/out.json:1 (document 0): a list (array), not a Kubernetes object"
        );
        assert_eq!(
            note(&s(None, None)),
            "note: skipped k8s/out.json: a list (array), not a Kubernetes object"
        );
    }

    #[test]
    fn only_strict_turns_them_into_an_error() {
        assert!(verdict(vec![s(None, None)], false).is_ok());
        assert!(verdict(vec![], true).is_ok());
        let e = verdict(vec![s(Some(2), Some(9)), s(None, None)], true).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("2 files or documents are not Kubernetes manifests (--strict): k8s/out.json:9 (document 2)"),
            "{e}"
        );
    }
}
