//! The opt-in watch behind admission previews (`simulate.preview: true`):
//! pod summaries (namespace, labels, container ports, owner; never whole
//! pods), NetworkPolicies and namespace labels, applied in place to one
//! reachability [`Model`] as the events arrive: no rebuild, no second copy.
//!
//! The model has a memory budget (`simulate.previewMemoryMiB`). A cluster
//! whose model would outgrow it switches the preview off, for good, rather
//! than have palisade OOM-killed: with `failurePolicy: Fail` a webhook in
//! a crash loop stops every pod creation in the cluster. Readiness does not
//! depend on the preview, and previews are then answered with one warning
//! that says why.
//!
//! ReplicaSets and Jobs are watched as metadata only, for their owner
//! references: pods are named by the Deployment or CronJob that made them.
//!
//! Off by default, so the webhook's memory does not grow with the number
//! of pods unless asked. It needs `list`/`watch` on pods, replicasets and
//! jobs in addition to the base RBAC (see deploy/README.md). Without the
//! last two (an RBAC from before they were needed), the preview still
//! works, names pods by their ReplicaSet or Job, and says why in the log.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::static_dir::DEFAULT_NAMESPACE;
use super::{ModelRef, PreviewModel};
use crate::netpol::Policy;
use crate::posture::NamespaceInfo;
use crate::reach::{Intermediate, Model, PodSummary};

/// A reachability model kept up to date from watches.
pub struct ReachWatch {
    model: RwLock<Model>,
    synced: [AtomicBool; 5],
    budget: usize,
    /// The model's estimated size after the last change.
    bytes: AtomicUsize,
    /// Set once, when the budget is exceeded.
    off: OnceLock<Arc<str>>,
    stop: watch::Sender<bool>,
}

/// What one watch keeps: how an event of its kind changes the model.
trait Kept:
    kube::Resource<DynamicType = ()>
    + Clone
    + serde::de::DeserializeOwned
    + std::fmt::Debug
    + Send
    + 'static
{
    /// The model's key for the object.
    fn key(&self) -> (String, String);
    /// Every key of this kind the model holds.
    fn keys(m: &Model) -> Vec<(String, String)>;
    /// Adds or replaces the object.
    fn put(&self, m: &mut Model);
    /// Removes the object with `key`.
    fn remove(m: &mut Model, key: &(String, String));
    /// Can the preview go on without this watch when the API server
    /// refuses it (RBAC) or does not serve it? Only for what merely names
    /// workloads better.
    const OPTIONAL: bool = false;
    /// Objects per page of the initial list: kube's 500 by default. A page
    /// is decoded whole before its objects are handed on one by one.
    const PAGE: u32 = 500;
}

fn meta_key(meta: &kube::core::ObjectMeta) -> (String, String) {
    (
        meta.namespace
            .clone()
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned()),
        meta.name.clone().unwrap_or_default(),
    )
}

impl Kept for Namespace {
    fn key(&self) -> (String, String) {
        (
            String::new(),
            self.metadata.name.clone().unwrap_or_default(),
        )
    }
    fn keys(m: &Model) -> Vec<(String, String)> {
        m.declared_namespaces()
            .into_iter()
            .map(|n| (String::new(), n))
            .collect()
    }
    fn put(&self, m: &mut Model) {
        let (name, info) = NamespaceInfo::from_k8s(self);
        m.put_namespace(&name, info.labels);
    }
    fn remove(m: &mut Model, key: &(String, String)) {
        m.remove_namespace(&key.1);
    }
}

impl Kept for NetworkPolicy {
    fn key(&self) -> (String, String) {
        meta_key(&self.metadata)
    }
    fn keys(m: &Model) -> Vec<(String, String)> {
        m.policy_keys()
    }
    fn put(&self, m: &mut Model) {
        match Policy::from_k8s(self, DEFAULT_NAMESPACE) {
            Ok(p) => m.put_policy(&p),
            Err(e) => {
                tracing::error!(error = %e, "cannot read a NetworkPolicy for the preview model")
            }
        }
    }
    fn remove(m: &mut Model, key: &(String, String)) {
        m.remove_policy(&key.0, &key.1);
    }
}

impl Kept for Pod {
    /// A pod decodes to several KiB (spec and status); 500 of them at
    /// once made a transient peak of tens of MiB at 50,000 pods.
    const PAGE: u32 = 100;

    fn key(&self) -> (String, String) {
        meta_key(&self.metadata)
    }
    fn keys(m: &Model) -> Vec<(String, String)> {
        m.pod_keys()
    }
    fn put(&self, m: &mut Model) {
        let name = self.metadata.name.clone().unwrap_or_default();
        // No addresses: the admission preview never names the ends of
        // observed flows (`simulate verify --cluster` lists pods itself),
        // and at 50,000 pods they would cost the budget ~7 MiB.
        m.put_pod(&name, PodSummary::from_pod(self, DEFAULT_NAMESPACE));
    }
    fn remove(m: &mut Model, key: &(String, String)) {
        m.remove_pod(&key.0, &key.1);
    }
}

/// ReplicaSets' and Jobs' metadata (`PartialObjectMeta`, a fraction of the
/// bytes of whole objects): their owner references are all that is read.
macro_rules! kept_owner {
    ($k:ty, $kind:expr) => {
        impl Kept for PartialObjectMeta<$k> {
            fn key(&self) -> (String, String) {
                meta_key(&self.metadata)
            }
            fn keys(m: &Model) -> Vec<(String, String)> {
                m.owner_keys($kind)
            }
            fn put(&self, m: &mut Model) {
                m.put_owner($kind, &self.metadata);
            }
            fn remove(m: &mut Model, key: &(String, String)) {
                m.remove_owner($kind, &key.0, &key.1);
            }
            const OPTIONAL: bool = true;
        }
    };
}
kept_owner!(ReplicaSet, Intermediate::ReplicaSet);
kept_owner!(Job, Intermediate::Job);

/// Did the API server refuse the watch (403, RBAC) or not serve its kind
/// (404)?
fn refused(e: &watcher::Error) -> bool {
    let status = match e {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s)) => s,
        watcher::Error::WatchError(s) => s,
        _ => return false,
    };
    status.is_forbidden() || status.is_not_found()
}

impl ReachWatch {
    /// Starts the five watches once `after` resolves, keeping the model
    /// within `budget` bytes. The caller passes the webhook's own sync, so
    /// the preview's lists (all pods) never delay readiness: at 50,000 pods
    /// and 100,000 policies, listing both at once took readiness from 2 s
    /// to 12 s on this project's machine. One task runs them all, so
    /// aborting it stops every watch.
    pub fn start(
        client: kube::Client,
        budget: usize,
        after: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> (Arc<Self>, JoinHandle<()>) {
        let me = Arc::new(ReachWatch {
            model: RwLock::new(Model::default()),
            synced: Default::default(),
            budget,
            bytes: AtomicUsize::new(0),
            off: OnceLock::new(),
            stop: watch::channel(false).0,
        });
        let w = Arc::clone(&me);
        let task = tokio::spawn(async move {
            after.await;
            tokio::join!(
                Arc::clone(&w).watch(Api::<Namespace>::all(client.clone()), 0),
                Arc::clone(&w).watch(Api::<NetworkPolicy>::all(client.clone()), 1),
                Arc::clone(&w).watch(Api::<Pod>::all(client.clone()), 2),
                Arc::clone(&w).watch(Api::<PartialObjectMeta<ReplicaSet>>::all(client.clone()), 3),
                Arc::clone(&w).watch(Api::<PartialObjectMeta<Job>>::all(client), 4),
            );
        });
        (me, task)
    }

    /// The model for one preview, once every watch has listed everything;
    /// or why there is none.
    pub fn preview_model(&self) -> PreviewModel<'_> {
        if let Some(why) = self.off.get() {
            return PreviewModel::Off(Arc::clone(why));
        }
        if !self.synced.iter().all(|s| s.load(Ordering::Relaxed)) {
            return PreviewModel::Absent;
        }
        PreviewModel::Ready(ModelRef::Locked(self.read()))
    }

    /// Replaces the model's cluster-wide policies (kept by the discovery
    /// of [`super::cluster_policies`], which already watches them).
    pub fn set_cluster_policies(&self, set: Arc<crate::cluster_policy::ClusterPolicies>) {
        self.apply(|m| m.set_cluster_policies(set));
    }

    /// The model's estimated size in bytes, and whether the preview is on.
    pub fn usage(&self) -> (usize, bool) {
        (self.bytes.load(Ordering::Relaxed), self.off.get().is_none())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Model> {
        // Every change is applied whole under the lock: a poisoned lock
        // still holds a consistent model.
        self.model.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Model> {
        self.model.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies `change` to the model, then checks the budget. Both happen
    /// under the model's lock, as does switching off, so no change lands
    /// (or reports its size) after the model was given back.
    fn apply(&self, change: impl FnOnce(&mut Model)) {
        let mut m = self.write();
        if self.off.get().is_some() {
            return;
        }
        change(&mut m);
        let bytes = m.stats().approx_bytes();
        self.bytes.store(bytes, Ordering::Relaxed);
        if bytes > self.budget {
            self.switch_off(&mut m, bytes);
        }
    }

    fn switch_off(&self, m: &mut Model, bytes: usize) {
        let mib = |b: usize| b as f64 / (1024.0 * 1024.0);
        let why: Arc<str> = format!(
            "the preview's model of this cluster outgrew its memory budget ({:.1} MiB > {:.0} MiB, \
             simulate.previewMemoryMiB); it is off until palisade restarts with a larger budget \
             and memory limit (deploy/README.md, \"Optional: the reachability preview\")",
            mib(bytes),
            mib(self.budget)
        )
        .into();
        if self.off.set(Arc::clone(&why)).is_err() {
            return;
        }
        *m = Model::default();
        self.bytes.store(0, Ordering::Relaxed);
        tracing::error!(reason = %why, "reachability preview switched off");
        let _ = self.stop.send(true);
    }

    async fn watch<K: Kept>(self: Arc<Self>, api: Api<K>, slot: usize) {
        let mut stop = self.stop.subscribe();
        let config = watcher::Config::default().page_size(K::PAGE);
        let stream = watcher::watcher(api, config).default_backoff();
        futures::pin_mut!(stream);
        // Keys the model held when a re-list began and the list has not
        // shown again: gone once it is done.
        let mut stale: HashSet<(String, String)> = HashSet::new();
        loop {
            if self.off.get().is_some() {
                return;
            }
            let ev = tokio::select! {
                _ = stop.changed() => return,
                ev = stream.next() => ev,
            };
            let ev = match ev {
                None => return,
                Some(Ok(ev)) => ev,
                Some(Err(e)) if K::OPTIONAL && refused(&e) => {
                    // Go on without: pods are named by their direct
                    // controller until the watch is allowed, which is
                    // retried with backoff.
                    if !self.synced[slot].swap(true, Ordering::Relaxed) {
                        tracing::error!(
                            error = %e,
                            "the preview cannot watch {}: pods are named by it rather than by the workload that made it; \
                             grant list/watch on it (deploy/components/preview)",
                            K::plural(&()),
                        );
                    }
                    continue;
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "preview watch error; retrying with backoff");
                    continue;
                }
            };
            match ev {
                // A re-list changes the model in place, object by object,
                // and removes what it did not see again only at its end:
                // in between, previews read a mix of old and new state,
                // never an emptied cluster.
                Event::Init => {
                    self.synced[slot].store(false, Ordering::Relaxed);
                    stale = K::keys(&self.read()).into_iter().collect();
                }
                Event::InitApply(o) => {
                    stale.remove(&o.key());
                    self.apply(|m| o.put(m));
                }
                Event::Apply(o) => self.apply(|m| o.put(m)),
                Event::Delete(o) => self.apply(|m| K::remove(m, &o.key())),
                Event::InitDone => {
                    let gone = std::mem::take(&mut stale);
                    self.apply(|m| {
                        for key in &gone {
                            K::remove(m, key);
                        }
                    });
                    if !self.synced[slot].swap(true, Ordering::Relaxed) {
                        tracing::info!(kind = %K::kind(&()), "preview watch synced");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The watch keeps pods' summaries but not their addresses: the
    /// preview's budget holds the model of 50,000 pods only without them.
    #[test]
    fn a_watched_pod_is_kept_without_its_addresses() {
        let pod: Pod = serde_saphyr::from_str(
            "metadata: {name: web-1, namespace: shop, labels: {app: web}}\n\
             spec: {containers: []}\n\
             status: {podIP: 10.0.0.7, podIPs: [{ip: 10.0.0.7}]}\n",
        )
        .unwrap();
        let mut m = Model::default();
        pod.put(&mut m);
        assert_eq!((m.stats().pods, m.stats().addresses), (1, 0));
        <Pod as Kept>::remove(&mut m, &pod.key());
        assert_eq!(m.stats().pods, 0);
    }
}
