//! One NetworkPolicy change (create, update, delete), as the model applies
//! it and the preview compares before and after.

use thiserror::Error;

use crate::netpol::Policy;

/// A NetworkPolicy create (`new` only), update (both) or delete (`old`
/// only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyChange {
    /// The policy before the change.
    pub old: Option<Policy>,
    /// The policy after the change.
    pub new: Option<Policy>,
}

/// A change that names no policy, or two different ones.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ChangeError {
    /// Neither old nor new policy.
    #[error("a policy change needs the old or the new policy")]
    Empty,
    /// Old and new have different namespaces or names.
    #[error("old policy {old} and new policy {new} are not the same object")]
    Mismatch {
        /// `namespace/name` of the old one.
        old: String,
        /// `namespace/name` of the new one.
        new: String,
    },
}

impl PolicyChange {
    /// A policy created.
    pub fn create(new: Policy) -> Self {
        PolicyChange {
            old: None,
            new: Some(new),
        }
    }

    /// A policy replaced.
    pub fn update(old: Policy, new: Policy) -> Result<Self, ChangeError> {
        if (&old.namespace, &old.name) != (&new.namespace, &new.name) {
            return Err(ChangeError::Mismatch {
                old: old.id(),
                new: new.id(),
            });
        }
        Ok(PolicyChange {
            old: Some(old),
            new: Some(new),
        })
    }

    /// A policy deleted.
    pub fn delete(old: Policy) -> Self {
        PolicyChange {
            old: Some(old),
            new: None,
        }
    }

    /// From an admission request's old and new objects, whichever exist.
    pub fn from_parts(old: Option<Policy>, new: Option<Policy>) -> Result<Self, ChangeError> {
        match (old, new) {
            (None, None) => Err(ChangeError::Empty),
            (None, Some(n)) => Ok(Self::create(n)),
            (Some(o), None) => Ok(Self::delete(o)),
            (Some(o), Some(n)) => Self::update(o, n),
        }
    }

    /// `(namespace, name)` of the policy.
    pub fn key(&self) -> Option<(&str, &str)> {
        self.new
            .as_ref()
            .or(self.old.as_ref())
            .map(|p| (p.namespace.as_str(), p.name.as_str()))
    }
}
