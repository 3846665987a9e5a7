//! What palisade knows of the cluster: namespaces and the facts of their
//! NetworkPolicies, and the cluster-wide policies (AdminNetworkPolicy, ...),
//! from a kube watch cache or from manifest files.
//!
//! Decisions read one namespace at a time through [`NamespaceView`], so a
//! decision costs what that namespace holds, whatever the cluster's size;
//! the cluster-wide policies come along as one shared summary (a cluster
//! has few), against which a namespace's labels are evaluated when asked.
//! Only a change to a cluster-wide policy reads every namespace
//! ([`ClusterScope`]).

use std::sync::Arc;

use futures::future::BoxFuture;
use thiserror::Error;
use tokio::sync::broadcast;

use crate::cluster_policy::ClusterPolicies;
use crate::config::Config;
use crate::netpol::{Directions, PolicyFacts};
use crate::posture::{DefaultDeny, NamespaceInfo};
use crate::reach::Model;

/// The reachability model behind admission previews, as a view holds it.
pub enum PreviewModel<'a> {
    /// No preview: not asked for (`simulate.preview: false`), or the
    /// watches have not listed everything yet.
    Absent,
    /// Switched off, and why: previews are answered with this one warning.
    Off(Arc<str>),
    /// The model, held for one preview.
    Ready(ModelRef<'a>),
}

/// A model held for the time of one preview: borrowed from a view that
/// never changes, or read-locked in one that a watch changes in place.
pub enum ModelRef<'a> {
    /// A model that does not change.
    Shared(&'a Model),
    /// A model a watch changes, locked for reading.
    Locked(std::sync::RwLockReadGuard<'a, Model>),
}

impl std::ops::Deref for ModelRef<'_> {
    type Target = Model;
    fn deref(&self) -> &Model {
        match self {
            ModelRef::Shared(m) => m,
            ModelRef::Locked(g) => g,
        }
    }
}
use crate::selector::Labels;

pub mod cluster_policies;
pub mod index;
pub mod kube;
pub mod reach_watch;
pub mod static_dir;

/// A failed read of the live cluster.
#[derive(Debug, Error)]
#[error("cannot read {what} from the cluster: {message}")]
pub struct ClusterError {
    /// What was being read.
    pub what: String,
    /// Why it failed.
    pub message: String,
}

/// One namespace as the decision functions see it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamespaceView {
    /// The namespace's name.
    pub name: String,
    /// The Namespace object, or `None` when the view has not seen it.
    pub namespace: Option<NamespaceInfo>,
    /// Facts of its NetworkPolicies that matter to the validating rules
    /// (default-deny, allow-all); plain policies are left out.
    pub policies: Vec<PolicyFacts>,
    /// The cluster's cluster-wide policies (shared between views).
    pub cluster_policies: Arc<ClusterPolicies>,
}

impl NamespaceView {
    /// An empty view of a namespace nobody has seen.
    pub fn unknown(name: &str) -> Self {
        NamespaceView {
            name: name.to_owned(),
            ..Default::default()
        }
    }

    /// The namespace's labels; none when the view has not seen it.
    pub fn labels(&self) -> &Labels {
        static NONE: Labels = Labels::new();
        self.namespace.as_ref().map_or(&NONE, |n| &n.labels)
    }

    /// Is the namespace being deleted?
    pub fn terminating(&self) -> bool {
        self.namespace.as_ref().is_some_and(|n| n.terminating)
    }

    /// The directions of `requireDefaultDeny` nothing here denies by
    /// default: what `require-default-deny` denies a workload for, and
    /// what generation creates. Both ask this one function, so they
    /// cannot disagree about what fences a namespace.
    pub fn missing_default_deny(&self, cfg: &Config) -> Directions {
        self.default_deny(cfg).missing(cfg.require_default_deny)
    }

    /// Where this namespace's default-deny comes from: its NetworkPolicies
    /// and the cluster-wide tiers, as its labels place it under them.
    pub fn default_deny(&self, cfg: &Config) -> DefaultDeny {
        DefaultDeny::of(cfg, &self.policies, &self.cluster_policies, self.labels())
    }
}

/// A change a view has taken in, announced to whoever waits on the view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Touched {
    /// One namespace's object or NetworkPolicies changed.
    Namespace(Arc<str>),
    /// Anything may have changed (a watch listed everything again).
    All,
}

/// One namespace as a change to a cluster-wide policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceSummary {
    /// The namespace's name.
    pub name: String,
    /// Its labels and phase.
    pub info: NamespaceInfo,
    /// The directions its NetworkPolicies deny by default.
    pub default_deny: Directions,
}

/// The whole cluster as a change to a cluster-wide policy sees it: every
/// namespace with what its NetworkPolicies deny by default, and the
/// cluster-wide policies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterScope {
    /// Every namespace the view knows, by name.
    pub namespaces: Vec<NamespaceSummary>,
    /// The cluster-wide policies.
    pub cluster_policies: Arc<ClusterPolicies>,
}

/// Sizes of what a view holds, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ViewStats {
    /// Namespaces known.
    pub namespaces: usize,
    /// NetworkPolicies seen (all of them, not only those with facts).
    pub policies: usize,
    /// Cluster-wide policies (AdminNetworkPolicy, ...).
    pub cluster_policies: usize,
    /// The preview's model, when one is kept: its estimated size in bytes,
    /// and whether the preview is still on (off once it outgrew its budget).
    pub preview: Option<(usize, bool)>,
}

/// The source of cluster state for decisions.
pub trait ClusterView: Send + Sync + 'static {
    /// The namespace as the view holds it now (cheap; no I/O).
    fn namespace(&self, name: &str) -> NamespaceView;

    /// The namespace read fresh from its source, to confirm a denial that
    /// rests on cluster state: a policy created a moment ago must not cause
    /// a false denial because a watch had not delivered it yet.
    fn confirm<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<NamespaceView, ClusterError>>;

    /// Every namespace and the cluster-wide policies, for a decision on a
    /// cluster-wide policy (no I/O). A view that keeps none has none.
    fn cluster_scope(&self) -> ClusterScope {
        ClusterScope::default()
    }

    /// The cluster scope with the cluster-wide policies read fresh, to
    /// confirm a denial that rests on them.
    fn confirm_cluster(&self) -> BoxFuture<'_, Result<ClusterScope, ClusterError>> {
        let scope = self.cluster_scope();
        Box::pin(async move { Ok(scope) })
    }

    /// Has the view caught up with its source (watch caches synced)?
    fn is_ready(&self) -> bool;

    /// What the view holds.
    fn stats(&self) -> ViewStats;

    /// The reachability model for admission previews, when the view keeps
    /// one (`simulate.preview: true`).
    fn preview_model(&self) -> PreviewModel<'_> {
        PreviewModel::Absent
    }

    /// Seconds since each of the view's watches was last known in sync, by
    /// resource; none for a view without watches.
    fn watch_sync_ages(&self) -> Vec<(&'static str, f64)> {
        Vec::new()
    }

    /// The changes the view takes in from now on, as they are applied;
    /// `None` for a view that never changes. A receiver that falls behind
    /// is told so (`Lagged`) and must then look at everything again.
    fn changes(&self) -> Option<broadcast::Receiver<Touched>> {
        None
    }

    /// Every namespace the view knows, sorted.
    fn namespace_names(&self) -> Vec<String> {
        Vec::new()
    }
}

impl<T: ClusterView + ?Sized> ClusterView for Arc<T> {
    fn namespace(&self, name: &str) -> NamespaceView {
        (**self).namespace(name)
    }
    fn confirm<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<NamespaceView, ClusterError>> {
        (**self).confirm(name)
    }
    fn cluster_scope(&self) -> ClusterScope {
        (**self).cluster_scope()
    }
    fn confirm_cluster(&self) -> BoxFuture<'_, Result<ClusterScope, ClusterError>> {
        (**self).confirm_cluster()
    }
    fn is_ready(&self) -> bool {
        (**self).is_ready()
    }
    fn stats(&self) -> ViewStats {
        (**self).stats()
    }
    fn preview_model(&self) -> PreviewModel<'_> {
        (**self).preview_model()
    }
    fn watch_sync_ages(&self) -> Vec<(&'static str, f64)> {
        (**self).watch_sync_ages()
    }
    fn changes(&self) -> Option<broadcast::Receiver<Touched>> {
        (**self).changes()
    }
    fn namespace_names(&self) -> Vec<String> {
        (**self).namespace_names()
    }
}
