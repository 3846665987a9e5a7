//! Label selectors as Kubernetes evaluates them (`matchLabels` and
//! `matchExpressions`), over plain label maps.
//!
//! One representation serves the validating rules (does this selector match
//! every namespace?) and reachability (does it match this pod?), so the two
//! can never read a selector differently.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use thiserror::Error;

/// Labels of a pod or namespace.
pub type Labels = BTreeMap<String, String>;

/// The label every namespace carries, set by the API server to the
/// namespace's own name (immutable since Kubernetes 1.22).
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// A selector that Kubernetes would reject.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SelectorError {
    /// The operator is not In, NotIn, Exists or DoesNotExist.
    #[error(
        "matchExpressions[{index}]: unknown operator {operator:?} (expected In, NotIn, Exists or DoesNotExist)"
    )]
    UnknownOperator {
        /// Position in `matchExpressions`.
        index: usize,
        /// The operator as written.
        operator: String,
    },
    /// In and NotIn need at least one value.
    #[error(
        "matchExpressions[{index}]: operator {operator} on key {key:?} needs at least one value"
    )]
    MissingValues {
        /// Position in `matchExpressions`.
        index: usize,
        /// The operator as written.
        operator: String,
        /// The label key.
        key: String,
    },
    /// Exists and DoesNotExist take no values.
    #[error("matchExpressions[{index}]: operator {operator} on key {key:?} must not have values")]
    UnexpectedValues {
        /// Position in `matchExpressions`.
        index: usize,
        /// The operator as written.
        operator: String,
        /// The label key.
        key: String,
    },
}

/// What one requirement asks of a label.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Operator {
    /// The label is present and its value is one of these.
    In(Vec<String>),
    /// The label is absent, or its value is none of these.
    NotIn(Vec<String>),
    /// The label is present.
    Exists,
    /// The label is absent.
    DoesNotExist,
}

/// One requirement of a selector.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Requirement {
    /// The label key.
    pub key: String,
    /// What is required of it.
    pub operator: Operator,
}

impl Requirement {
    fn matches(&self, labels: &Labels) -> bool {
        let value = labels.get(&self.key);
        match &self.operator {
            Operator::In(values) => value.is_some_and(|v| values.contains(v)),
            Operator::NotIn(values) => value.is_none_or(|v| !values.contains(v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
        }
    }
}

/// A label selector: the conjunction of its requirements. No requirement
/// at all selects everything, as in Kubernetes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

impl Selector {
    /// The selector that selects everything (`{}`).
    pub fn everything() -> Self {
        Self::default()
    }

    /// A selector from `matchLabels` pairs only.
    pub fn from_labels<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self {
            requirements: pairs
                .into_iter()
                .map(|(k, v)| Requirement {
                    key: k.to_owned(),
                    operator: Operator::In(vec![v.to_owned()]),
                })
                .collect(),
        }
    }

    /// Reads a Kubernetes `LabelSelector`. An absent one is `None` here, and
    /// callers decide what absence means where they are (for a peer it
    /// differs from `{}`).
    pub fn from_k8s(selector: &LabelSelector) -> Result<Self, SelectorError> {
        let mut requirements = Vec::new();
        for (key, value) in selector.match_labels.iter().flatten() {
            requirements.push(Requirement {
                key: key.clone(),
                operator: Operator::In(vec![value.clone()]),
            });
        }
        for (index, expr) in selector.match_expressions.iter().flatten().enumerate() {
            let values = expr.values.clone().unwrap_or_default();
            let needs_values = |op: fn(Vec<String>) -> Operator| {
                if values.is_empty() {
                    Err(SelectorError::MissingValues {
                        index,
                        operator: expr.operator.clone(),
                        key: expr.key.clone(),
                    })
                } else {
                    Ok(op(values.clone()))
                }
            };
            let no_values = |op: Operator| {
                if values.is_empty() {
                    Ok(op)
                } else {
                    Err(SelectorError::UnexpectedValues {
                        index,
                        operator: expr.operator.clone(),
                        key: expr.key.clone(),
                    })
                }
            };
            let operator = match expr.operator.as_str() {
                "In" => needs_values(Operator::In)?,
                "NotIn" => needs_values(Operator::NotIn)?,
                "Exists" => no_values(Operator::Exists)?,
                "DoesNotExist" => no_values(Operator::DoesNotExist)?,
                other => {
                    return Err(SelectorError::UnknownOperator {
                        index,
                        operator: other.to_owned(),
                    });
                }
            };
            requirements.push(Requirement {
                key: expr.key.clone(),
                operator,
            });
        }
        Ok(Self { requirements })
    }

    /// The requirements, in the order written (`matchLabels` first).
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// True when the selector has no requirement and so selects everything.
    pub fn is_everything(&self) -> bool {
        self.requirements.is_empty()
    }

    /// True when every namespace satisfies the selector whatever its labels:
    /// no requirement, or only `kubernetes.io/metadata.name Exists`, a label
    /// the API server puts on every namespace.
    pub fn matches_every_namespace(&self) -> bool {
        self.requirements
            .iter()
            .all(|r| r.key == NAMESPACE_NAME_LABEL && r.operator == Operator::Exists)
    }

    /// Does the selector select an object with these labels?
    pub fn matches(&self, labels: &Labels) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }
}

impl fmt::Display for Selector {
    /// kubectl's notation: `app=web,tier in (a,b),!legacy`; `{}` for everything.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.requirements.is_empty() {
            return f.write_str("{}");
        }
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match &r.operator {
                Operator::In(v) if v.len() == 1 => write!(f, "{}={}", r.key, v[0])?,
                Operator::In(v) => write!(f, "{} in ({})", r.key, v.join(","))?,
                Operator::NotIn(v) => write!(f, "{} notin ({})", r.key, v.join(","))?,
                Operator::Exists => write!(f, "{}", r.key)?,
                Operator::DoesNotExist => write!(f, "!{}", r.key)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: if values.is_empty() {
                None
            } else {
                Some(values.iter().map(|s| s.to_string()).collect())
            },
        }
    }

    fn sel(exprs: Vec<LabelSelectorRequirement>) -> Selector {
        Selector::from_k8s(&LabelSelector {
            match_labels: None,
            match_expressions: Some(exprs),
        })
        .unwrap()
    }

    #[test]
    fn operators_truth_table() {
        let web = labels(&[("app", "web"), ("tier", "front")]);
        let bare = labels(&[]);
        let cases = [
            (expr("app", "In", &["web", "api"]), true, false),
            (expr("app", "In", &["api"]), false, false),
            (expr("app", "NotIn", &["api"]), true, true),
            (expr("app", "NotIn", &["web"]), false, true),
            (expr("app", "Exists", &[]), true, false),
            (expr("app", "DoesNotExist", &[]), false, true),
        ];
        for (e, on_web, on_bare) in cases {
            let s = sel(vec![e.clone()]);
            assert_eq!(s.matches(&web), on_web, "{e:?} on web");
            assert_eq!(s.matches(&bare), on_bare, "{e:?} on bare");
        }
    }

    #[test]
    fn match_labels_and_expressions_are_anded() {
        let s = Selector::from_k8s(&LabelSelector {
            match_labels: Some([("app".to_string(), "web".to_string())].into()),
            match_expressions: Some(vec![expr("tier", "In", &["front"])]),
        })
        .unwrap();
        assert!(s.matches(&labels(&[("app", "web"), ("tier", "front")])));
        assert!(!s.matches(&labels(&[("app", "web")])));
        assert_eq!(s.to_string(), "app=web,tier=front");
    }

    #[test]
    fn empty_forms_select_everything() {
        for s in [
            LabelSelector::default(),
            LabelSelector {
                match_labels: Some(Default::default()),
                match_expressions: Some(vec![]),
            },
        ] {
            let s = Selector::from_k8s(&s).unwrap();
            assert!(s.is_everything());
            assert!(s.matches_every_namespace());
            assert!(s.matches(&labels(&[("x", "y")])));
            assert_eq!(s.to_string(), "{}");
        }
    }

    #[test]
    fn every_namespace_truth_table() {
        let cases = [
            (vec![expr(NAMESPACE_NAME_LABEL, "Exists", &[])], true),
            (
                vec![
                    expr(NAMESPACE_NAME_LABEL, "Exists", &[]),
                    expr(NAMESPACE_NAME_LABEL, "Exists", &[]),
                ],
                true,
            ),
            (
                vec![expr(NAMESPACE_NAME_LABEL, "NotIn", &["kube-system"])],
                false,
            ),
            (vec![expr(NAMESPACE_NAME_LABEL, "In", &["a"])], false),
            (vec![expr("team", "Exists", &[])], false),
            (vec![expr("team", "DoesNotExist", &[])], false),
        ];
        for (exprs, every) in cases {
            assert_eq!(
                sel(exprs.clone()).matches_every_namespace(),
                every,
                "{exprs:?}"
            );
        }
    }

    #[test]
    fn invalid_selectors_are_rejected_with_the_index() {
        let bad = |e| {
            Selector::from_k8s(&LabelSelector {
                match_labels: None,
                match_expressions: Some(vec![expr("ok", "Exists", &[]), e]),
            })
            .unwrap_err()
        };
        assert_eq!(
            bad(expr("a", "Equals", &["x"])),
            SelectorError::UnknownOperator {
                index: 1,
                operator: "Equals".into()
            }
        );
        assert!(matches!(
            bad(expr("a", "In", &[])),
            SelectorError::MissingValues { index: 1, .. }
        ));
        assert!(matches!(
            bad(expr("a", "Exists", &["x"])),
            SelectorError::UnexpectedValues { index: 1, .. }
        ));
        assert!(
            bad(expr("a", "In", &[]))
                .to_string()
                .contains("matchExpressions[1]")
        );
    }
}
