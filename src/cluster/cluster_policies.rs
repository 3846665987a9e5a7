//! The cluster-wide policies of a live cluster: which of the three kinds
//! the API server serves, in the versions palisade reads (discovery, at
//! start and every [`REDISCOVER_EVERY`]), and one watch per served kind,
//! read into the shared [`Index`].
//!
//! A cluster without the CRDs works exactly as one never asked: discovery
//! finds no `policy.networking.k8s.io` group, no watch starts, nothing is
//! logged but one line at start. Installing or removing the CRDs later
//! starts or stops the watches at the next discovery (a removed kind's
//! policies are forgotten). A discovery that fails is logged when it
//! starts failing and when it recovers, never once per attempt.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::TryStreamExt;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::task::{JoinHandle, JoinSet};

use super::index::Index;
use crate::cluster_policy::{ClusterKind, ClusterPolicies, ClusterPolicy, GROUP};
use crate::object::ClusterObject;

/// How often the served API versions are looked up again.
pub const REDISCOVER_EVERY: Duration = Duration::from_secs(60);

/// How long one discovery may take before it counts as failed (the
/// client's own read timeout is sized for watches).
pub const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// How soon a failed discovery is tried again (readiness waits for one
/// that answers, so a start-up blip must not cost a whole period).
pub const DISCOVERY_RETRY: Duration = Duration::from_secs(5);

/// The resource of `kind` in the version palisade reads.
pub fn api_resource(kind: ClusterKind) -> ApiResource {
    ApiResource {
        group: GROUP.to_owned(),
        version: kind.version().to_owned(),
        api_version: format!("{GROUP}/{}", kind.version()),
        kind: kind.as_str().to_owned(),
        plural: kind.plural().to_owned(),
    }
}

/// A 404 from discovery: nothing is served there.
fn not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.is_not_found() || s.code == 404)
}

/// Which of the three kinds the cluster serves in the versions palisade
/// reads (`GET /apis`, then the resources of each such version).
pub async fn served(client: &kube::Client) -> Result<Vec<ClusterKind>, kube::Error> {
    let groups = match client.list_api_groups().await {
        Ok(g) => g,
        Err(e) if not_found(&e) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let Some(group) = groups.groups.iter().find(|g| g.name == GROUP) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    let mut versions: Vec<&str> = ClusterKind::ALL.iter().map(|k| k.version()).collect();
    versions.dedup();
    for version in versions {
        if !group.versions.iter().any(|v| v.version == version) {
            continue;
        }
        // A version listed by /apis but gone a moment later: not served.
        let resources = match client
            .list_api_group_resources(&format!("{GROUP}/{version}"))
            .await
        {
            Ok(r) => r,
            Err(e) if not_found(&e) => continue,
            Err(e) => return Err(e),
        };
        for kind in ClusterKind::ALL {
            if kind.version() == version
                && resources.resources.iter().any(|r| r.name == kind.plural())
            {
                out.push(kind);
            }
        }
    }
    Ok(out)
}

/// An object as the API server sent it, ready for the rules.
pub fn object(kind: ClusterKind, o: &DynamicObject) -> Result<ClusterObject, serde_json::Error> {
    Ok(ClusterObject {
        kind,
        version: kind.version().to_owned(),
        metadata: o.metadata.clone(),
        value: serde_json::to_value(o)?,
    })
}

/// Reads one object from the API. The API server validated it: one
/// palisade cannot read is a palisade bug worth a loud log, and is left out.
fn read(kind: ClusterKind, o: &DynamicObject) -> Option<ClusterPolicy> {
    let read = object(kind, o)
        .map_err(|e| e.to_string())
        .and_then(|obj| obj.read().map_err(|e| e.to_string()));
    match read {
        Ok(p) => Some(p),
        Err(error) => {
            tracing::error!(%error, kind = kind.as_str(), "cannot read a cluster-wide policy from the cluster; it is left out");
            None
        }
    }
}

/// Every object of `kinds` (for `audit`, `simulate --cluster` and fresh
/// reads before a denial).
pub async fn list(
    client: &kube::Client,
    kinds: &[ClusterKind],
) -> Result<Vec<ClusterObject>, kube::Error> {
    let mut out = Vec::new();
    for &kind in kinds {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &api_resource(kind));
        for o in api.list(&ListParams::default()).await?.items {
            match object(kind, &o) {
                Ok(obj) => out.push(obj),
                Err(e) => {
                    tracing::error!(error = %e, kind = kind.as_str(), "cannot read a cluster-wide policy");
                }
            }
        }
    }
    Ok(out)
}

/// Told the whole set of cluster-wide policies after every change (the
/// preview's reachability model keeps its own copy).
pub type Sink = Arc<dyn Fn(Arc<ClusterPolicies>) + Send + Sync>;

/// Where a watch writes: the index, and whoever else keeps the set.
#[derive(Clone)]
struct Target {
    index: Arc<RwLock<Index>>,
    sink: Option<Sink>,
}

impl Target {
    fn update(&self, change: impl FnOnce(&mut Index)) {
        let set = {
            let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
            change(&mut index);
            index.cluster_policies()
        };
        if let Some(sink) = &self.sink {
            sink(set);
        }
    }
}

/// The discovery loop and the watches it keeps running.
pub struct ClusterPolicyWatch {
    discovered: AtomicBool,
    served: Mutex<Vec<ClusterKind>>,
    synced: HashMap<ClusterKind, Arc<AtomicBool>>,
}

impl ClusterPolicyWatch {
    /// Starts discovery (now and every [`REDISCOVER_EVERY`]) and the
    /// watches of the kinds served, folding them into `index`.
    /// `sink`, when given, is told the whole set after every change.
    pub fn start(
        client: kube::Client,
        index: Arc<RwLock<Index>>,
        sink: Option<Sink>,
    ) -> (Arc<Self>, JoinHandle<()>) {
        Self::start_every(client, index, sink, REDISCOVER_EVERY)
    }

    /// [`ClusterPolicyWatch::start`], discovering again every `every`.
    pub fn start_every(
        client: kube::Client,
        index: Arc<RwLock<Index>>,
        sink: Option<Sink>,
        every: Duration,
    ) -> (Arc<Self>, JoinHandle<()>) {
        let me = Arc::new(ClusterPolicyWatch {
            discovered: AtomicBool::new(false),
            served: Mutex::new(Vec::new()),
            synced: ClusterKind::ALL
                .into_iter()
                .map(|k| (k, Arc::new(AtomicBool::new(false))))
                .collect(),
        });
        let target = Target { index, sink };
        let task = tokio::spawn(Arc::clone(&me).supervise(client, target, every));
        (me, task)
    }

    /// The kinds the cluster served at the last discovery.
    pub fn served(&self) -> Vec<ClusterKind> {
        self.served
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Discovery has answered once, and every served kind's watch has
    /// listed everything once.
    pub fn is_ready(&self) -> bool {
        self.discovered.load(Ordering::Relaxed)
            && self
                .served()
                .iter()
                .all(|k| self.synced[k].load(Ordering::Relaxed))
    }

    async fn supervise(self: Arc<Self>, client: kube::Client, target: Target, every: Duration) {
        // Dropping the set (this task aborted) aborts every watch.
        let mut watches: JoinSet<()> = JoinSet::new();
        let mut running: HashMap<ClusterKind, tokio::task::AbortHandle> = HashMap::new();
        let mut failing = false;
        let mut last: Option<Vec<ClusterKind>> = None;
        loop {
            let found = tokio::time::timeout(DISCOVERY_TIMEOUT, served(&client))
                .await
                .unwrap_or_else(|_| {
                    Err(kube::Error::Service(
                        format!("no answer within {}s", DISCOVERY_TIMEOUT.as_secs()).into(),
                    ))
                });
            match found {
                Ok(kinds) => {
                    if failing {
                        tracing::info!("discovery of cluster-wide network policies works again");
                        failing = false;
                    }
                    if last.as_ref() != Some(&kinds) {
                        log_served(&kinds);
                    }
                    for kind in ClusterKind::ALL {
                        let want = kinds.contains(&kind);
                        match (want, running.contains_key(&kind)) {
                            (true, false) => {
                                let synced = Arc::clone(&self.synced[&kind]);
                                synced.store(false, Ordering::Relaxed);
                                let h = watches.spawn(watch(
                                    kind,
                                    client.clone(),
                                    target.clone(),
                                    synced,
                                ));
                                running.insert(kind, h);
                            }
                            (false, true) => {
                                if let Some(h) = running.remove(&kind) {
                                    h.abort();
                                }
                                target.update(|i| i.replace_cluster_policies(kind, Vec::new()));
                            }
                            _ => {}
                        }
                    }
                    *self.served.lock().unwrap_or_else(|e| e.into_inner()) = kinds.clone();
                    last = Some(kinds);
                    self.discovered.store(true, Ordering::Relaxed);
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, "cannot discover which cluster-wide network policy kinds the cluster serves; retrying every {}s", every.min(DISCOVERY_RETRY).as_secs());
                        failing = true;
                    }
                }
            }
            // Reap finished watches so the set does not grow.
            while watches.try_join_next().is_some() {}
            let wait = if failing {
                every.min(DISCOVERY_RETRY)
            } else {
                every
            };
            tokio::time::sleep(wait).await;
        }
    }
}

fn log_served(kinds: &[ClusterKind]) {
    if kinds.is_empty() {
        tracing::info!(
            "the cluster serves no cluster-wide network policy kind ({GROUP}: AdminNetworkPolicy, BaselineAdminNetworkPolicy v1alpha1, ClusterNetworkPolicy v1alpha2); NetworkPolicies alone decide"
        );
    } else {
        let names: Vec<String> = kinds
            .iter()
            .map(|k| format!("{} {}", k.as_str(), k.version()))
            .collect();
        tracing::info!(kinds = %names.join(", "), "watching cluster-wide network policies");
    }
}

async fn watch(kind: ClusterKind, client: kube::Client, target: Target, synced: Arc<AtomicBool>) {
    let api: Api<DynamicObject> = Api::all_with(client, &api_resource(kind));
    let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
    futures::pin_mut!(stream);
    let mut buffer: Vec<ClusterPolicy> = Vec::new();
    loop {
        match stream.try_next().await {
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, kind = kind.as_str(), "cluster-wide policy watch error; retrying with backoff")
            }
            Ok(Some(ev)) => match ev {
                Event::Init => buffer.clear(),
                Event::InitApply(o) => buffer.extend(read(kind, &o)),
                Event::InitDone => {
                    target.update(|i| i.replace_cluster_policies(kind, buffer.drain(..)));
                    if !synced.swap(true, Ordering::Relaxed) {
                        tracing::info!(kind = kind.as_str(), "cluster-wide policy watch synced");
                    }
                }
                // A version that cannot be read leaves the last one read.
                Event::Apply(o) => {
                    if let Some(p) = read(kind, &o) {
                        target.update(|i| i.put_cluster_policy(p));
                    }
                }
                Event::Delete(o) => {
                    let name = o.metadata.name.clone().unwrap_or_default();
                    target.update(|i| i.remove_cluster_policy(kind, &name));
                }
            },
        }
    }
}
