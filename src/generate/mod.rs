//! Every new namespace starts fenced: palisade creates the default-deny
//! NetworkPolicy (and the baseline allowances) of a namespace that lacks
//! one, instead of only refusing its workloads.
//!
//! The decision is pure: [`plan`] (which namespace gets which policies).
//! The shell acts: [`create`] (one create-if-absent), [`writer`] (the
//! leader's loop over the watch cache, per [`crate::leader`]). Reviews that
//! would be denied only for lack of a default-deny generation is about to
//! create wait for it in [`crate::admit`], so no pod is admitted before its
//! namespace is fenced, and a `kubectl apply` of a new Namespace with its
//! Deployment succeeds.

use crate::leader::Leadership;

pub mod create;
pub mod plan;
pub mod writer;

/// Generation as the webhook sees it while it runs on this replica.
#[derive(Debug, Clone)]
pub struct Generating {
    /// Which namespaces count as new: reviews there wait for generation.
    pub scope: plan::Scope,
    /// Whether this replica is the one that writes (for `palisade_leader`).
    pub leadership: Leadership,
}
