//! The opt-in watch behind admission previews (`simulate.preview: true`):
//! pod summaries (namespace, labels, container ports, owner; never whole
//! pods), NetworkPolicies and namespace labels, folded into a reachability
//! [`Model`] that is rebuilt at most every [`REBUILD_EVERY`] after a change.
//! ReplicaSets and Jobs are watched as metadata only, for their owner
//! references: pods are named by the Deployment or CronJob that made them.
//!
//! Off by default, so the webhook's memory does not grow with the number
//! of pods unless asked. It needs `list`/`watch` on pods, replicasets and
//! jobs in addition to the base RBAC (see deploy/README.md). Without the
//! last two (an RBAC from before they were needed), the preview still
//! works and names pods by their ReplicaSet or Job, and says why in the log.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::task::JoinHandle;

use super::static_dir::DEFAULT_NAMESPACE;
use crate::reach::{Intermediate, Kind, Model, ModelBuilder};

/// How often, at most, the model is rebuilt after a change.
pub const REBUILD_EVERY: Duration = Duration::from_secs(2);

/// A reachability model kept up to date from watches.
pub struct ReachWatch {
    model: ArcSwapOption<Model>,
    // What the watches have seen, as the builder of the next model.
    inventory: Mutex<ModelBuilder>,
    dirty: AtomicBool,
    synced: [AtomicBool; 5],
}

/// May the preview go on without a watch that RBAC forbids?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    /// No: a model without it would be wrong.
    Required,
    /// Yes: it only names workloads better (owner references).
    Naming,
}

impl ReachWatch {
    /// Starts the five watches and the rebuild loop.
    pub fn start(client: kube::Client) -> (Arc<Self>, Vec<JoinHandle<()>>) {
        let me = Arc::new(ReachWatch {
            model: ArcSwapOption::empty(),
            inventory: Mutex::new(ModelBuilder::new()),
            dirty: AtomicBool::new(false),
            synced: Default::default(),
        });
        let tasks = vec![
            tokio::spawn(Arc::clone(&me).watch(Api::<Namespace>::all(client.clone()), 0, Need::Required, |b, ev| match ev {
                Change::Put(ns) => {
                    b.namespace(&ns);
                }
                Change::Gone(ns) => {
                    b.remove_namespace(ns.metadata.name.as_deref().unwrap_or_default());
                }
                Change::Reset => {
                    b.clear(Kind::Namespaces);
                }
            })),
            tokio::spawn(Arc::clone(&me).watch(Api::<NetworkPolicy>::all(client.clone()), 1, Need::Required, |b, ev| match ev {
                Change::Put(np) => {
                    if let Err(e) = b.network_policy(&np) {
                        tracing::error!(error = %e, "cannot read a NetworkPolicy for the preview model");
                    }
                }
                Change::Gone(np) => {
                    let (ns, name) = key(&np.metadata);
                    b.remove_policy(ns, name);
                }
                Change::Reset => {
                    b.clear(Kind::Policies);
                }
            })),
            tokio::spawn(Arc::clone(&me).watch(Api::<Pod>::all(client.clone()), 2, Need::Required, |b, ev| match ev {
                Change::Put(pod) => {
                    b.pod(&pod);
                }
                Change::Gone(pod) => {
                    let (ns, name) = key(&pod.metadata);
                    b.remove_pod(ns, name);
                }
                Change::Reset => {
                    b.clear(Kind::Pods);
                }
            })),
            // Metadata only (`PartialObjectMeta`): owner references are
            // all that is read, a fraction of the bytes of whole objects.
            tokio::spawn(Arc::clone(&me).watch(
                Api::<PartialObjectMeta<ReplicaSet>>::all(client.clone()),
                3,
                Need::Naming,
                |b, ev| owner_change(b, Intermediate::ReplicaSet, Kind::ReplicaSets, ev),
            )),
            tokio::spawn(Arc::clone(&me).watch(
                Api::<PartialObjectMeta<Job>>::all(client),
                4,
                Need::Naming,
                |b, ev| owner_change(b, Intermediate::Job, Kind::Jobs, ev),
            )),
            tokio::spawn(Arc::clone(&me).rebuild_loop()),
        ];
        (me, tasks)
    }

    /// The latest model, once every watch has listed everything.
    pub fn model(&self) -> Option<Arc<Model>> {
        self.model.load_full()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ModelBuilder> {
        // Every update is one map operation: a poisoned lock is consistent.
        self.inventory.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn watch<K>(
        self: Arc<Self>,
        api: Api<K>,
        slot: usize,
        need: Need,
        apply: fn(&mut ModelBuilder, Change<K>),
    ) where
        K: kube::Resource<DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug
            + Send
            + 'static,
    {
        let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
        futures::pin_mut!(stream);
        while let Some(ev) = stream.next().await {
            let ev = match ev {
                Ok(ev) => ev,
                Err(e) if need == Need::Naming && is_forbidden(&e) => {
                    // Go on without: the model names these pods by their
                    // direct controller until RBAC allows the watch, which
                    // is retried with backoff.
                    if !self.synced[slot].swap(true, Ordering::Relaxed) {
                        tracing::error!(
                            error = %e,
                            "the preview cannot watch {}: pods are named by it rather than by the workload that made it; \
                             grant list/watch on it (deploy/components/preview)",
                            K::plural(&()),
                        );
                        apply(&mut self.lock(), Change::Reset);
                        self.dirty.store(true, Ordering::Relaxed);
                    }
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "preview watch error; retrying with backoff");
                    continue;
                }
            };
            match ev {
                // A re-list empties the maps before refilling them: until
                // it is done, the last model stays published rather than
                // one built from half a cluster.
                Event::Init => {
                    self.synced[slot].store(false, Ordering::Relaxed);
                    apply(&mut self.lock(), Change::Reset)
                }
                Event::InitApply(o) | Event::Apply(o) => apply(&mut self.lock(), Change::Put(o)),
                Event::Delete(o) => apply(&mut self.lock(), Change::Gone(o)),
                Event::InitDone => self.synced[slot].store(true, Ordering::Relaxed),
            }
            self.dirty.store(true, Ordering::Relaxed);
        }
    }

    async fn rebuild_loop(self: Arc<Self>) {
        let mut tick = tokio::time::interval(REBUILD_EVERY);
        loop {
            tick.tick().await;
            let synced = self.synced.iter().all(|s| s.load(Ordering::Relaxed));
            if !synced || !self.dirty.swap(false, Ordering::Relaxed) {
                continue;
            }
            let builder = self.lock().clone();
            // Building the index is CPU work for up to ~100 ms at scale:
            // keep it off the runtime's workers.
            match tokio::task::spawn_blocking(move || builder.build()).await {
                Ok(m) => self.model.store(Some(Arc::new(m))),
                Err(e) => tracing::error!(error = %e, "rebuilding the preview model failed"),
            }
        }
    }
}

enum Change<K> {
    Put(K),
    Gone(K),
    Reset,
}

/// A ReplicaSet's or Job's metadata into the owner table.
fn owner_change<K>(
    b: &mut ModelBuilder,
    kind: Intermediate,
    all: Kind,
    ev: Change<PartialObjectMeta<K>>,
) {
    match ev {
        Change::Put(o) => {
            b.owner(kind, &o.metadata);
        }
        Change::Gone(o) => {
            let (ns, name) = key(&o.metadata);
            b.remove_owner(kind, ns, name);
        }
        Change::Reset => {
            b.clear(all);
        }
    }
}

/// Did the API server answer 403 (RBAC)?
fn is_forbidden(e: &watcher::Error) -> bool {
    match e {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s)) => s.is_forbidden(),
        watcher::Error::WatchError(s) => s.is_forbidden(),
        _ => false,
    }
}

/// Namespace and name, as the builder keys pods and policies.
fn key(meta: &kube::core::ObjectMeta) -> (&str, &str) {
    (
        meta.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE),
        meta.name.as_deref().unwrap_or_default(),
    )
}
