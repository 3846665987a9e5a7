//! The opt-in watch behind admission previews (`simulate.preview: true`):
//! pod summaries (namespace, labels, container ports, owner; never whole
//! pods), NetworkPolicies and namespace labels, folded into a reachability
//! [`Model`] that is rebuilt at most every [`REBUILD_EVERY`] after a change.
//!
//! Off by default, so the webhook's memory does not grow with the number
//! of pods unless asked. It needs `list`/`watch` on pods in addition to the
//! base RBAC (see deploy/README.md).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::task::JoinHandle;

use super::static_dir::DEFAULT_NAMESPACE;
use crate::netpol::Policy;
use crate::reach::{Model, ModelBuilder, PodSummary};

/// How often, at most, the model is rebuilt after a change.
pub const REBUILD_EVERY: Duration = Duration::from_secs(2);

type Key = (String, String);

#[derive(Default)]
struct Inventory {
    namespaces: HashMap<String, Namespace>,
    policies: HashMap<Key, Policy>,
    pods: HashMap<Key, PodSummary>,
}

/// A reachability model kept up to date from watches.
pub struct ReachWatch {
    model: ArcSwapOption<Model>,
    inventory: Mutex<Inventory>,
    dirty: AtomicBool,
    synced: [AtomicBool; 3],
}

impl ReachWatch {
    /// Starts the three watches and the rebuild loop.
    pub fn start(client: kube::Client) -> (Arc<Self>, Vec<JoinHandle<()>>) {
        let me = Arc::new(ReachWatch {
            model: ArcSwapOption::empty(),
            inventory: Mutex::new(Inventory::default()),
            dirty: AtomicBool::new(false),
            synced: Default::default(),
        });
        let tasks = vec![
            tokio::spawn(Arc::clone(&me).watch(Api::<Namespace>::all(client.clone()), 0, |inv, ev| match ev {
                Change::Put(ns) => {
                    let name = ns.metadata.name.clone().unwrap_or_default();
                    inv.namespaces.insert(name, ns);
                }
                Change::Gone(ns) => {
                    inv.namespaces.remove(ns.metadata.name.as_deref().unwrap_or_default());
                }
                Change::Reset => inv.namespaces.clear(),
            })),
            tokio::spawn(Arc::clone(&me).watch(Api::<NetworkPolicy>::all(client.clone()), 1, |inv, ev| match ev {
                Change::Put(np) => {
                    match Policy::from_k8s(&np, DEFAULT_NAMESPACE) {
                        Ok(p) => {
                            inv.policies.insert((p.namespace.clone(), p.name.clone()), p);
                        }
                        Err(e) => tracing::error!(error = %e, "cannot read a NetworkPolicy for the preview model"),
                    }
                }
                Change::Gone(np) => {
                    inv.policies.remove(&key(&np.metadata));
                }
                Change::Reset => inv.policies.clear(),
            })),
            tokio::spawn(Arc::clone(&me).watch(Api::<Pod>::all(client), 2, |inv, ev| match ev {
                Change::Put(pod) => {
                    let k = key(&pod.metadata);
                    inv.pods.insert(k, PodSummary::from_pod(&pod, DEFAULT_NAMESPACE));
                }
                Change::Gone(pod) => {
                    inv.pods.remove(&key(&pod.metadata));
                }
                Change::Reset => inv.pods.clear(),
            })),
            tokio::spawn(Arc::clone(&me).rebuild_loop()),
        ];
        (me, tasks)
    }

    /// The latest model, once every watch has listed everything.
    pub fn model(&self) -> Option<Arc<Model>> {
        self.model.load_full()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inventory> {
        // Every update is one map operation: a poisoned lock is consistent.
        self.inventory.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn watch<K>(
        self: Arc<Self>,
        api: Api<K>,
        slot: usize,
        apply: fn(&mut Inventory, Change<K>),
    ) where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    {
        let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
        futures::pin_mut!(stream);
        while let Some(ev) = stream.next().await {
            let ev = match ev {
                Ok(ev) => ev,
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
            let builder = {
                let inv = self.lock();
                let mut b = ModelBuilder::new();
                for ns in inv.namespaces.values() {
                    b.namespace(ns);
                }
                for p in inv.policies.values() {
                    b.policy(p.clone());
                }
                for s in inv.pods.values() {
                    b.summary(s.clone());
                }
                b
            };
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

fn key(meta: &kube::core::ObjectMeta) -> Key {
    (
        meta.namespace
            .clone()
            .unwrap_or_else(|| DEFAULT_NAMESPACE.into()),
        meta.name.clone().unwrap_or_default(),
    )
}
