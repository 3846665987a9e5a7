//! The live cluster: cluster-wide watches on Namespaces (metadata only),
//! NetworkPolicies and, where the cluster serves them, the cluster-wide
//! policies ([`super::cluster_policies`]), folded into the per-namespace
//! [`Index`]; never Pods.
//!
//! Whole objects are dropped as soon as their facts are taken, so memory
//! follows the number of policies times a few dozen bytes. A denial that
//! rests on this cache is confirmed by one live read ([`ClusterView::confirm`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, ListParams};
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use super::cluster_policies::{self, ClusterPolicyWatch};
use super::index::Index;
use super::reach_watch::ReachWatch;
use super::{ClusterError, ClusterScope, ClusterView, NamespaceView, Touched, ViewStats};
use crate::cluster_policy::{ClusterKind, ClusterPolicy};
use crate::netpol::{Policy, PolicyFacts};
use crate::posture::NamespaceInfo;
use crate::watch_health::WatchHealth;

/// How long the fresh read before a denial may take. The client's own read
/// timeout is sized for watches (minutes), and the API server gives the
/// whole webhook call `timeoutSeconds` (5 s in deploy/): a read still
/// pending after this counts as failed, so the review is answered on the
/// cache's word (a denial with its reason) instead of timing out, which
/// the user would see as an opaque webhook failure.
pub const CONFIRM_TIMEOUT: Duration = Duration::from_secs(2);

/// A cluster view backed by kube-runtime watches.
pub struct KubeCluster {
    client: kube::Client,
    index: Arc<RwLock<Index>>,
    namespaces_synced: Arc<AtomicBool>,
    policies_synced: Arc<AtomicBool>,
    cluster_policies: Arc<ClusterPolicyWatch>,
    preview: Option<Arc<ReachWatch>>,
    namespaces_health: Arc<WatchHealth>,
    policies_health: Arc<WatchHealth>,
    changes: broadcast::Sender<Touched>,
}

/// Changes held for a receiver that has not read them yet; one further
/// behind is told it lagged, and looks at everything again.
const CHANGES_HELD: usize = 4096;

/// Where the watches write: the index, and the announcement of what changed.
#[derive(Clone)]
struct Sink {
    index: Arc<RwLock<Index>>,
    changes: broadcast::Sender<Touched>,
}

impl Sink {
    /// Applies `f` to the index, then announces `touched` (no receiver
    /// listening is fine: nobody waits).
    fn apply(&self, touched: Touched, f: impl FnOnce(&mut Index)) {
        f(&mut write(&self.index));
        let _ = self.changes.send(touched);
    }
}

impl KubeCluster {
    /// Starts the watches on `client`; the view is ready once both have
    /// listed everything once. With `preview` (the model's memory budget
    /// in bytes), the opt-in watches behind admission previews start once
    /// these have synced (they never gate readiness).
    pub fn start(client: kube::Client, preview: Option<usize>) -> (Arc<Self>, Vec<JoinHandle<()>>) {
        let namespaces_synced = Arc::new(AtomicBool::new(false));
        let policies_synced = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        let preview = preview.map(|budget| {
            let synced = [Arc::clone(&namespaces_synced), Arc::clone(&policies_synced)];
            let after = async move {
                while !synced.iter().all(|s| s.load(Ordering::Relaxed)) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            };
            let (w, task) = ReachWatch::start(client.clone(), budget, after);
            tasks.push(task);
            w
        });
        let index = Arc::new(RwLock::new(Index::new()));
        // The preview's model keeps the cluster-wide policies too.
        let sink: Option<cluster_policies::Sink> = preview.as_ref().map(|w| {
            let w = Arc::clone(w);
            Arc::new(move |set| w.set_cluster_policies(set)) as cluster_policies::Sink
        });
        let (cluster_policies, discovery) =
            ClusterPolicyWatch::start(client.clone(), Arc::clone(&index), sink);
        tasks.push(discovery);
        let me = Arc::new(KubeCluster {
            client,
            index,
            namespaces_synced,
            policies_synced,
            cluster_policies,
            preview,
            namespaces_health: Arc::new(WatchHealth::new()),
            policies_health: Arc::new(WatchHealth::new()),
            changes: broadcast::channel(CHANGES_HELD).0,
        });
        tasks.extend([
            tokio::spawn(watch_namespaces(
                // Labels, creationTimestamp and deletionTimestamp are all
                // that is needed: on `PartialObjectMeta`, kube 5 lists and
                // watches metadata only, a fraction of the bytes.
                Api::all(me.client.clone()),
                me.sink(),
                Arc::clone(&me.namespaces_synced),
                Arc::clone(&me.namespaces_health),
            )),
            tokio::spawn(watch_policies(
                Api::all(me.client.clone()),
                me.sink(),
                Arc::clone(&me.policies_synced),
                Arc::clone(&me.policies_health),
            )),
        ]);
        (me, tasks)
    }

    fn sink(&self) -> Sink {
        Sink {
            index: Arc::clone(&self.index),
            changes: self.changes.clone(),
        }
    }

    /// The cluster-wide policies of the served kinds, read fresh.
    async fn fresh_cluster_policies(
        &self,
    ) -> Result<Option<Vec<(ClusterKind, Vec<ClusterPolicy>)>>, ClusterError> {
        let kinds = self.cluster_policies.served();
        if kinds.is_empty() {
            return Ok(None);
        }
        let objects = cluster_policies::list(&self.client, &kinds)
            .await
            .map_err(|e| ClusterError {
                what: "cluster-wide network policies".into(),
                message: e.to_string(),
            })?;
        Ok(Some(
            kinds
                .into_iter()
                .map(|k| {
                    let read = objects
                        .iter()
                        .filter(|o| o.kind == k)
                        .filter_map(|o| o.read().ok())
                        .collect();
                    (k, read)
                })
                .collect(),
        ))
    }

    fn read_index(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        // A panic while holding the lock cannot leave the index half
        // written (every update is one map operation), so a poisoned lock
        // is still a usable one.
        self.index.read().unwrap_or_else(|e| e.into_inner())
    }
}

fn write(index: &RwLock<Index>) -> std::sync::RwLockWriteGuard<'_, Index> {
    index.write().unwrap_or_else(|e| e.into_inner())
}

fn policy_facts(np: &NetworkPolicy) -> Option<(String, PolicyFacts)> {
    let ns = np.metadata.namespace.clone()?;
    match Policy::from_k8s(np, &ns) {
        Ok(p) => Some((ns, p.facts())),
        Err(e) => {
            // The API server validated it; a policy palisade cannot read
            // is a palisade bug worth a loud log, and is counted as plain.
            tracing::error!(error = %e, "cannot read a NetworkPolicy from the cluster");
            let name = np.metadata.name.clone().unwrap_or_default();
            Some((
                ns,
                PolicyFacts {
                    name,
                    default_deny: Default::default(),
                    allow_all: Default::default(),
                },
            ))
        }
    }
}

fn named(ns: &str) -> Touched {
    Touched::Namespace(ns.into())
}

async fn watch_namespaces(
    api: Api<PartialObjectMeta<Namespace>>,
    sink: Sink,
    synced: Arc<AtomicBool>,
    health: Arc<WatchHealth>,
) {
    let mut buffer: HashMap<String, NamespaceInfo> = HashMap::new();
    let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
    futures::pin_mut!(stream);
    loop {
        match health.next(&mut stream).await {
            None => return,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "namespace watch error; retrying with backoff")
            }
            Some(Ok(ev)) => match ev {
                Event::Init => buffer.clear(),
                Event::InitApply(o) => {
                    let (n, i) = NamespaceInfo::from_meta(&o.metadata, None);
                    buffer.insert(n, i);
                }
                Event::InitDone => {
                    health.synced(Instant::now());
                    sink.apply(Touched::All, |i| i.replace_namespaces(buffer.drain()));
                    if !synced.swap(true, Ordering::Relaxed) {
                        tracing::info!("namespace watch synced");
                    }
                }
                Event::Apply(o) => {
                    let (n, i) = NamespaceInfo::from_meta(&o.metadata, None);
                    sink.apply(named(&n), |x| x.put_namespace(&n, i));
                }
                Event::Delete(o) => {
                    let (n, _) = NamespaceInfo::from_meta(&o.metadata, None);
                    sink.apply(named(&n), |x| x.remove_namespace(&n));
                }
            },
        }
    }
}

async fn watch_policies(
    api: Api<NetworkPolicy>,
    sink: Sink,
    synced: Arc<AtomicBool>,
    health: Arc<WatchHealth>,
) {
    let mut buffer: Vec<(String, PolicyFacts)> = Vec::new();
    let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
    futures::pin_mut!(stream);
    loop {
        match health.next(&mut stream).await {
            None => return,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "NetworkPolicy watch error; retrying with backoff")
            }
            Some(Ok(ev)) => match ev {
                Event::Init => buffer.clear(),
                Event::InitApply(np) => buffer.extend(policy_facts(&np)),
                Event::InitDone => {
                    health.synced(Instant::now());
                    sink.apply(Touched::All, |i| i.replace_policies(buffer.drain(..)));
                    buffer.shrink_to_fit();
                    if !synced.swap(true, Ordering::Relaxed) {
                        tracing::info!("NetworkPolicy watch synced");
                    }
                }
                Event::Apply(np) => {
                    if let Some((ns, f)) = policy_facts(&np) {
                        sink.apply(named(&ns), |i| i.put_policy(&ns, &f));
                    }
                }
                Event::Delete(np) => {
                    if let (Some(ns), Some(name)) = (&np.metadata.namespace, &np.metadata.name) {
                        sink.apply(named(ns), |i| i.remove_policy(ns, name));
                    }
                }
            },
        }
    }
}

impl ClusterView for KubeCluster {
    fn namespace(&self, name: &str) -> NamespaceView {
        self.read_index().view(name)
    }

    fn confirm<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<NamespaceView, ClusterError>> {
        Box::pin(async move {
            let err = |what: &str, e: kube::Error| ClusterError {
                what: format!("{what} {name}"),
                message: e.to_string(),
            };
            let reads = async {
                let namespace = async {
                    let ns = Api::<Namespace>::all(self.client.clone())
                        .get_opt(name)
                        .await
                        .map_err(|e| err("namespace", e))?;
                    let list = Api::<NetworkPolicy>::namespaced(self.client.clone(), name)
                        .list(&ListParams::default())
                        .await
                        .map_err(|e| err("NetworkPolicies of namespace", e))?;
                    Ok::<_, ClusterError>((ns, list))
                };
                // The cluster-wide policies too (a few objects, read at the
                // same time): a baseline created a moment ago counts. If
                // they cannot be read, the cached ones stand and the
                // namespace's own read still confirms.
                let (namespace, cluster) = tokio::join!(namespace, self.fresh_cluster_policies());
                let (ns, list) = namespace?;
                let cluster = cluster.unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "could not read the cluster-wide policies fresh; the cached ones stand");
                    None
                });
                Ok::<_, ClusterError>((ns, list, cluster))
            };
            let (ns, list, cluster) = tokio::time::timeout(CONFIRM_TIMEOUT, reads)
                .await
                .map_err(|_| ClusterError {
                    what: format!("namespace {name}"),
                    message: format!("no answer from the API server within {CONFIRM_TIMEOUT:?}"),
                })??;
            let facts: Vec<PolicyFacts> = list
                .items
                .iter()
                .filter_map(policy_facts)
                .map(|(_, f)| f)
                .collect();
            // What was read fresh is better than what the cache has: keep it.
            let view = {
                let mut index = write(&self.index);
                match &ns {
                    Some(n) => {
                        let (n, info) = NamespaceInfo::from_k8s(n);
                        index.put_namespace(&n, info);
                    }
                    None => index.remove_namespace(name),
                }
                index.replace_namespace_policies(name, &facts);
                for (kind, policies) in cluster.into_iter().flatten() {
                    index.replace_cluster_policies(kind, policies);
                }
                index.view(name)
            };
            let _ = self.changes.send(named(name));
            Ok(view)
        })
    }

    fn cluster_scope(&self) -> ClusterScope {
        self.read_index().scope()
    }

    fn confirm_cluster(&self) -> BoxFuture<'_, Result<ClusterScope, ClusterError>> {
        Box::pin(async move {
            let fresh = tokio::time::timeout(CONFIRM_TIMEOUT, self.fresh_cluster_policies())
                .await
                .map_err(|_| ClusterError {
                    what: "cluster-wide network policies".into(),
                    message: format!("no answer from the API server within {CONFIRM_TIMEOUT:?}"),
                })??;
            let mut index = write(&self.index);
            for (kind, policies) in fresh.into_iter().flatten() {
                index.replace_cluster_policies(kind, policies);
            }
            Ok(index.scope())
        })
    }

    fn is_ready(&self) -> bool {
        self.namespaces_synced.load(Ordering::Relaxed)
            && self.policies_synced.load(Ordering::Relaxed)
            && self.cluster_policies.is_ready()
    }

    fn stats(&self) -> ViewStats {
        ViewStats {
            preview: self.preview.as_ref().map(|p| p.usage()),
            ..self.read_index().stats()
        }
    }

    fn preview_model(&self) -> super::PreviewModel<'_> {
        match &self.preview {
            Some(p) => p.preview_model(),
            None => super::PreviewModel::Absent,
        }
    }

    fn changes(&self) -> Option<broadcast::Receiver<Touched>> {
        Some(self.changes.subscribe())
    }

    fn namespace_names(&self) -> Vec<String> {
        self.read_index().namespace_names()
    }

    fn watch_sync_ages(&self) -> Vec<(&'static str, f64)> {
        let now = Instant::now();
        vec![
            (
                "namespaces",
                self.namespaces_health.sync_age(now).as_secs_f64(),
            ),
            (
                "networkpolicies",
                self.policies_health.sync_age(now).as_secs_f64(),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An API server that accepts connections and never answers (a
    /// partition, an overloaded etcd): the confirming read gives up in
    /// time for the review to be answered inside the webhook's timeout.
    #[tokio::test]
    async fn a_fresh_read_the_api_server_never_answers_fails_in_time() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let holder = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((conn, _)) = listener.accept().await {
                held.push(conn);
            }
        });
        let uri: hyper::Uri = format!("http://{addr}").parse().expect("uri");
        let client = kube::Client::try_from(kube::Config::new(uri)).expect("client");
        let (cluster, watches) = KubeCluster::start(client, None);

        let started = Instant::now();
        let read = tokio::time::timeout(Duration::from_secs(5), cluster.confirm("shop"))
            .await
            .expect("the read gives up inside the API server's 5 s timeoutSeconds");
        let err = read.expect_err("no answer is a failed read");
        assert_eq!(err.what, "namespace shop");
        assert_eq!(err.message, "no answer from the API server within 2s");
        assert!(started.elapsed() >= CONFIRM_TIMEOUT);
        assert!(!cluster.is_ready(), "the watches have listed nothing");
        for task in watches {
            task.abort();
        }
        holder.abort();
    }
}
