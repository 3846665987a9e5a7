//! What the leader alone does: follow the cluster view, plan every
//! namespace that changed ([`plan`]), and create what the plan says
//! ([`create`]). It reads the same watch cache the webhook decides from,
//! so the policy it creates is the one a waiting review sees appear.
//!
//! Followers plan nothing: only the replica holding the Lease writes, logs
//! and counts, so a namespace is fenced once, and counted once.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::task::JoinHandle;

use super::create::{Outcome, create};
use super::plan::{Generated, Plan, Scope, plan};
use crate::cluster::{ClusterView, Touched};
use crate::config::Config;
use crate::leader::Leadership;
use crate::server::metrics::Metrics;

/// How often every namespace is planned again, whatever the watches said:
/// what a lost event or a failed create left undone is found by then.
pub const RESYNC: Duration = Duration::from_secs(600);
/// How soon a namespace whose create failed is tried again.
pub const RETRY: Duration = Duration::from_secs(30);
/// How long a namespace just fenced is left alone while the watch brings
/// its new policies (a second create would only meet `409 AlreadyExists`).
pub const SETTLE: Duration = Duration::from_secs(30);

/// Everything the writer needs.
pub struct Writer {
    /// Writes go through it.
    pub client: kube::Client,
    /// The watch cache the webhook decides from.
    pub cluster: Arc<dyn ClusterView>,
    /// The config (`generate`, the modes, the exempt namespaces).
    pub config: Arc<Config>,
    /// Which namespaces count as new.
    pub scope: Scope,
    /// Whether this replica writes.
    pub leadership: Leadership,
    /// Where outcomes are counted.
    pub metrics: Arc<Metrics>,
}

/// A namespace left alone until `until`; planned again then if `retry`.
struct Held {
    until: Instant,
    retry: bool,
}

impl Writer {
    /// Runs until aborted, or until the view or the election stops.
    pub fn spawn(self) -> JoinHandle<()> {
        tokio::spawn(self.run())
    }

    async fn run(self) {
        let Some(mut changes) = self.cluster.changes() else {
            tracing::warn!("generation needs a view that follows the cluster; it does not run");
            return;
        };
        let mut leadership = self.leadership.clone();
        // Namespaces to plan, and since when each has waited.
        let mut queue: BTreeMap<String, Instant> = BTreeMap::new();
        let mut held: HashMap<String, Held> = HashMap::new();
        let mut everything = true;
        let mut resync_at = Instant::now();
        loop {
            let leading = leadership.is_leader() && self.cluster.is_ready();
            let now = Instant::now();
            if leading {
                if everything || now >= resync_at {
                    for n in self.cluster.namespace_names() {
                        queue.entry(n).or_insert(now);
                    }
                    everything = false;
                    resync_at = now + RESYNC;
                }
                for (ns, h) in &held {
                    if h.retry && h.until <= now {
                        queue.entry(ns.clone()).or_insert(now);
                    }
                }
                while let Some((ns, queued)) = queue.pop_first() {
                    self.fence(&ns, queued, &mut held).await;
                }
            } else {
                // A new leader starts from everything it sees.
                queue.clear();
                held.clear();
                everything = true;
            }
            let wake = if leading {
                held.values()
                    .filter(|h| h.retry)
                    .map(|h| h.until)
                    .fold(resync_at, Instant::min)
            } else {
                now + RESYNC
            };
            tokio::select! {
                changed = leadership.changed() => {
                    if !changed {
                        return;
                    }
                    everything = true;
                }
                ev = changes.recv() => {
                    if !note(ev, leading, &mut queue, &mut everything) {
                        return;
                    }
                }
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
            // Take a burst in one go.
            loop {
                let ev = match changes.try_recv() {
                    Ok(t) => Ok(t),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Lagged(n)) => Err(RecvError::Lagged(n)),
                    Err(TryRecvError::Closed) => Err(RecvError::Closed),
                };
                if !note(ev, leading, &mut queue, &mut everything) {
                    return;
                }
            }
        }
    }

    /// Plans `ns` and creates what the plan says, unless it is held.
    async fn fence(&self, ns: &str, queued: Instant, held: &mut HashMap<String, Held>) {
        let now = Instant::now();
        if held.get(ns).is_some_and(|h| h.until > now) {
            return;
        }
        let view = self.cluster.namespace(ns);
        let g = match plan(&self.config, &view, self.scope.age_of(&view)) {
            Plan::Skip(why) => {
                held.remove(ns);
                tracing::debug!(namespace = ns, why = why.as_str(), "nothing to generate");
                return;
            }
            Plan::Generate(g) => g,
        };
        if !g.writes() {
            for _ in &g.policies {
                self.metrics.generated(Outcome::WouldCreate);
            }
            tracing::info!(
                namespace = ns,
                mode = g.mode.as_str(),
                outcome = Outcome::WouldCreate.as_str(),
                "generation would create {g}; in {} mode nothing is created",
                g.mode
            );
            held.insert(
                ns.to_owned(),
                Held {
                    until: now + RESYNC,
                    retry: false,
                },
            );
            return;
        }
        let Some((done, created)) = self.create_all(&g).await else {
            // No longer the leader: whoever leads now plans it afresh.
            return;
        };
        if done && created {
            self.metrics.generation_took(queued.elapsed().as_secs_f64());
        }
        held.insert(
            ns.to_owned(),
            Held {
                until: now + if done { SETTLE } else { RETRY },
                retry: !done,
            },
        );
    }

    /// Creates `g`'s policies in order, stopping at the first that is not
    /// done: whether all are, and whether any was created; `None` when
    /// leadership was lost midway.
    async fn create_all(&self, g: &Generated) -> Option<(bool, bool)> {
        let mut created = false;
        for p in &g.policies {
            if !self.leadership.is_leader() {
                return None;
            }
            let started = Instant::now();
            let (outcome, message) = create(&self.client, p).await;
            self.metrics.generated(outcome);
            let policy = p.metadata.name.as_deref().unwrap_or_default();
            let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            let message = message.unwrap_or_default();
            let (ns, outcome_str) = (g.namespace.as_str(), outcome.as_str());
            match outcome {
                Outcome::Created => tracing::info!(
                    namespace = ns,
                    policy,
                    outcome = outcome_str,
                    directions = %g.missing,
                    micros,
                    "generated NetworkPolicy {ns}/{policy}"
                ),
                Outcome::Exists | Outcome::Gone => tracing::info!(
                    namespace = ns,
                    policy,
                    outcome = outcome_str,
                    message = %message,
                    micros,
                    "NetworkPolicy {ns}/{policy} not created: {outcome_str}"
                ),
                _ => tracing::warn!(
                    namespace = ns,
                    policy,
                    outcome = outcome_str,
                    message = %message,
                    micros,
                    "could not create NetworkPolicy {ns}/{policy}; trying again in {}s",
                    RETRY.as_secs()
                ),
            }
            if !outcome.is_done() {
                return Some((false, created));
            }
            created |= outcome == Outcome::Created;
        }
        Some((true, created))
    }
}

/// Takes in one announcement: a namespace to plan (while leading), or
/// everything; `false` once the view has stopped announcing.
fn note(
    ev: Result<Touched, RecvError>,
    leading: bool,
    queue: &mut BTreeMap<String, Instant>,
    everything: &mut bool,
) -> bool {
    match ev {
        Ok(Touched::Namespace(n)) => {
            if leading {
                queue.entry(n.to_string()).or_insert_with(Instant::now);
            }
            true
        }
        // A re-list, or more changes than were held for us.
        Ok(Touched::All) | Err(RecvError::Lagged(_)) => {
            *everything = true;
            true
        }
        Err(RecvError::Closed) => false,
    }
}
