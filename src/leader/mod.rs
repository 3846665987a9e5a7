//! One writer among palisade's replicas: leader election on a
//! `coordination.k8s.io/v1` Lease.
//!
//! Every replica answers reviews; only the leader writes shared state
//! (today the certificate Secret and the webhooks' `caBundle`). Whoever
//! needs "am I the one who writes?" holds a [`Leadership`] and asks it, or
//! waits for it to change: the decision is [`decide`], the Lease I/O is
//! [`lease`].
//!
//! Why not a crate: of those on crates.io, kube-leader-election and
//! kube-coordinate are built for older kube majors, and kube-lease-manager
//! (kube 5) decides who holds the lock by server-side-apply field ownership
//! and releases an expired holder's lease with an unconditional patch;
//! client-go's algorithm (a read, then an update guarded by
//! `resourceVersion`) is small and is what Kubernetes' own controllers use.

use std::sync::Arc;

use tokio::sync::watch;

pub mod decide;
pub mod lease;

/// What this replica is, as last decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// The election has not finished its first round.
    Unknown,
    /// This replica holds the Lease and may write.
    Leader,
    /// Another replica holds it (or nobody could be read).
    Follower {
        /// The holder, when known.
        leader: Option<String>,
    },
}

/// A cheap, cloneable view of this replica's role, updated by the elector.
#[derive(Debug, Clone)]
pub struct Leadership {
    rx: watch::Receiver<Role>,
    // Keeps a fixed role's channel open (see [`Leadership::fixed`]).
    _sender: Option<Arc<watch::Sender<Role>>>,
}

impl Leadership {
    /// A handle on a channel the elector publishes to.
    pub fn new(rx: watch::Receiver<Role>) -> Self {
        Leadership { rx, _sender: None }
    }

    /// A role that never changes: a single process that writes alone (or
    /// never), and tests.
    pub fn fixed(role: Role) -> Self {
        let (tx, rx) = watch::channel(role);
        Leadership {
            rx,
            _sender: Some(Arc::new(tx)),
        }
    }

    /// The role now.
    pub fn role(&self) -> Role {
        self.rx.borrow().clone()
    }

    /// May this replica write now?
    pub fn is_leader(&self) -> bool {
        *self.rx.borrow() == Role::Leader
    }

    /// Waits until the role changes; `false` when the elector has stopped
    /// (the last role stays readable).
    pub async fn changed(&mut self) -> bool {
        self.rx.changed().await.is_ok()
    }

    /// Marks the current role as seen, so [`Leadership::changed`] waits for
    /// the next change.
    pub fn mark_seen(&mut self) {
        self.rx.mark_unchanged();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_handle_follows_the_elector() {
        let (tx, rx) = watch::channel(Role::Unknown);
        let mut l = Leadership::new(rx);
        assert!(!l.is_leader());
        tx.send_replace(Role::Leader);
        assert!(l.changed().await);
        assert!(l.is_leader());
        tx.send_replace(Role::Follower {
            leader: Some("b".into()),
        });
        assert!(l.changed().await);
        assert_eq!(
            l.role(),
            Role::Follower {
                leader: Some("b".into())
            }
        );
        drop(tx);
        assert!(!l.changed().await, "a stopped elector ends the wait");
    }

    #[tokio::test]
    async fn a_fixed_role_stays() {
        let mut l = Leadership::fixed(Role::Leader);
        assert!(l.is_leader());
        l.mark_seen();
        let waited = tokio::time::timeout(std::time::Duration::from_millis(20), l.changed()).await;
        assert!(waited.is_err(), "never changes, never closes");
    }
}
