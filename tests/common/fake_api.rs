//! A local stand-in for the Kubernetes API server's list and watch
//! endpoints, for tests and benches that drive a real `kube::Client` (or
//! the real binary through a kubeconfig) without a cluster.
//!
//! It serves what the API server serves for those calls, built from the
//! API reference (API Concepts: "Efficient detection of changes",
//! "Retrieving large results sets in chunks", "Watch bookmarks"):
//! - `GET <collection>?limit=N[&continue=T]`: a `…List` page with
//!   `metadata.resourceVersion`, and `metadata.continue` plus
//!   `remainingItemCount` while items remain; items carry no
//!   `apiVersion`/`kind`, as the API server writes typed lists;
//! - the same path under `/namespaces/NS/` for a namespaced list, and
//!   `GET <collection>/NAME` for one object (cluster-scoped), with a
//!   `Status` 404 when it is missing;
//! - `Accept: …;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1` (kube's
//!   metadata-only calls): `PartialObjectMetadataList` of
//!   `PartialObjectMetadata` items;
//! - `watch=true`: newline-delimited watch events, chunked: the events a
//!   test pushes with [`FakeApi::push`], and with
//!   `allowWatchBookmarks=true` a `BOOKMARK` at once and then every few
//!   seconds, until `timeoutSeconds` (as the API server ends a watch);
//! - anything else: the API server's `Status` 404 (`NotFound`), which is
//!   also what an API group the cluster does not serve answers;
//! - a collection a test [`FakeApi::forbid`]s: the API server's `Status`
//!   403 (`Forbidden`), as RBAC answers a client without the verb.
//!
//! What it does not reproduce: authentication, `resourceVersion`
//! semantics beyond a growing counter (no `410 Gone`), field and label
//! selectors, protobuf, HTTP/2, and the API server's own latency.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Bytes, Frame};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::sync::broadcast;

/// How often an open watch with bookmarks gets one.
const BOOKMARK_EVERY: Duration = Duration::from_secs(5);

/// The items of a collection: held, or made on demand by index (so that a
/// bench can serve 100,000 objects without holding them).
#[derive(Clone)]
pub enum Items {
    /// These objects.
    Held(Vec<Value>),
    /// `len` objects, object `i` made by the function.
    Made {
        /// How many.
        len: usize,
        /// Object `i`.
        make: Arc<dyn Fn(usize) -> Value + Send + Sync>,
    },
}

impl Items {
    fn len(&self) -> usize {
        match self {
            Items::Held(v) => v.len(),
            Items::Made { len, .. } => *len,
        }
    }

    fn get(&self, i: usize) -> Value {
        match self {
            Items::Held(v) => v[i].clone(),
            Items::Made { make, .. } => make(i),
        }
    }
}

/// One resource the fake serves, e.g. NetworkPolicies.
pub struct Collection {
    /// The cluster-wide list path, e.g. `/apis/networking.k8s.io/v1/networkpolicies`.
    pub path: String,
    /// `apiVersion` of the objects, e.g. `networking.k8s.io/v1`.
    pub api_version: String,
    /// `kind` of one object, e.g. `NetworkPolicy` (the list is `…List`).
    pub kind: String,
    /// The objects.
    pub items: Items,
}

impl Collection {
    /// A collection of held objects.
    pub fn held(path: &str, api_version: &str, kind: &str, items: Vec<Value>) -> Self {
        Collection {
            path: path.to_owned(),
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
            items: Items::Held(items),
        }
    }

    /// The items of a `kubectl get -o json` export as the typed lists the
    /// read paths ask for (Namespaces, NetworkPolicies, Pods, ReplicaSets,
    /// Jobs), each item without `apiVersion` and `kind`, as the API
    /// server lists them.
    pub fn from_export(items: &[Value]) -> Vec<Collection> {
        [
            ("/api/v1/namespaces", "v1", "Namespace"),
            (
                "/apis/networking.k8s.io/v1/networkpolicies",
                "networking.k8s.io/v1",
                "NetworkPolicy",
            ),
            ("/api/v1/pods", "v1", "Pod"),
            ("/apis/apps/v1/replicasets", "apps/v1", "ReplicaSet"),
            ("/apis/batch/v1/jobs", "batch/v1", "Job"),
        ]
        .iter()
        .map(|(path, api_version, kind)| {
            let of_kind = items
                .iter()
                .filter(|i| i["kind"] == *kind)
                .map(|i| {
                    let mut i = i.clone();
                    if let Some(o) = i.as_object_mut() {
                        o.remove("apiVersion");
                        o.remove("kind");
                    }
                    i
                })
                .collect();
            Collection::held(path, api_version, kind, of_kind)
        })
        .collect()
    }
}

/// A request the fake received: method, path and query, `Accept`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// `GET`, ...
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// The `Accept` header.
    pub accept: String,
}

struct State {
    collections: Vec<Mutex<Collection>>,
    events: HashMap<String, broadcast::Sender<Value>>,
    version: AtomicU64,
    seen: Mutex<Vec<Seen>>,
    forbidden: Mutex<HashSet<String>>,
}

/// A running fake API server on 127.0.0.1.
pub struct FakeApi {
    /// Where it listens (plain HTTP).
    pub addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeApi {
    /// Serves `collections` on a free port of 127.0.0.1.
    pub async fn start(collections: Vec<Collection>) -> FakeApi {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake API server");
        let addr = listener.local_addr().expect("local address");
        let events = collections
            .iter()
            .map(|c| (c.path.clone(), broadcast::channel(1024).0))
            .collect();
        let state = Arc::new(State {
            collections: collections.into_iter().map(Mutex::new).collect(),
            events,
            version: AtomicU64::new(1000),
            seen: Mutex::new(Vec::new()),
            forbidden: Mutex::new(HashSet::new()),
        });
        let served = Arc::clone(&state);
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let state = Arc::clone(&served);
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let state = Arc::clone(&state);
                        async move { Ok::<_, Infallible>(answer(&state, req)) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(conn), svc)
                        .await;
                });
            }
        });
        FakeApi { addr, state, task }
    }

    /// A `kube::Client` for this server.
    pub fn client(&self) -> kube::Client {
        let uri: hyper::Uri = format!("http://{}", self.addr).parse().expect("uri");
        kube::Client::try_from(kube::Config::new(uri)).expect("kube client")
    }

    /// A kubeconfig file's text that points at this server, for the real
    /// binary (`KUBECONFIG`).
    pub fn kubeconfig(&self) -> String {
        kubeconfig(self.addr)
    }

    /// Sends a watch event (`ADDED`, `MODIFIED`, `DELETED`) of `object` to
    /// every open watch of the collection at `path`.
    pub fn push(&self, path: &str, kind: &str, mut object: Value) {
        let rv = self.state.version.fetch_add(1, Ordering::Relaxed) + 1;
        object["metadata"]["resourceVersion"] = rv.to_string().into();
        if let Some(tx) = self.state.events.get(path) {
            let _ = tx.send(json!({"type": kind, "object": object}));
        }
    }

    /// From now on, every request for the collection at `path` is answered
    /// 403 Forbidden, as RBAC answers a client not granted the verb.
    pub fn forbid(&self, path: &str) {
        self.state.forbidden.lock().unwrap().insert(path.to_owned());
    }

    /// Replaces the objects the collection at `path` lists from now on
    /// (what a watch sees only after a re-list).
    pub fn set_items(&self, path: &str, items: Vec<Value>) {
        for c in &self.state.collections {
            let mut c = c.lock().unwrap();
            if c.path == path {
                c.items = Items::Held(items);
                return;
            }
        }
        panic!("no collection {path}");
    }

    /// Ends every open watch of the collection at `path` with the API
    /// server's `410 Expired` error event, as when a watch falls behind
    /// etcd's compaction: the client must list again.
    pub fn expire_watches(&self, path: &str) {
        if let Some(tx) = self.state.events.get(path) {
            let _ = tx.send(json!({"type": "ERROR", "object": {
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "too old resource version: 1 (1000)", "reason": "Expired", "code": 410}}));
        }
    }

    /// Every request received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }
}

/// A kubeconfig file's text for a plain-HTTP stand-in of the API server at
/// `addr` (this one or `api_store.rs`), for the real binary (`KUBECONFIG`).
pub fn kubeconfig(addr: SocketAddr) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster: {{server: \"http://{addr}\"}}\n\
         users:\n- name: fake\n  user: {{}}\ncontexts:\n- name: fake\n  context: {{cluster: fake, user: fake}}\n\
         current-context: fake\n"
    )
}

type Body = BoxBody<Bytes, Infallible>;

fn full(status: StatusCode, v: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(v.to_string())).boxed())
        .expect("response")
}

/// The API server's `Status` for an error.
fn status(code: u16, reason: &str, message: &str) -> Response<Body> {
    full(
        StatusCode::from_u16(code).expect("status code"),
        &json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": message, "reason": reason,
            "details": {}, "code": code
        }),
    )
}

/// RBAC's answer to an anonymous client, as the API server words it
/// (`apierrors.NewForbidden` around the authorizer's reason).
fn forbidden(path: &str, verb: &str) -> Response<Body> {
    // /api/v1/pods or /apis/GROUP/VERSION/RESOURCE.
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (group, resource) = match parts.as_slice() {
        ["apis", group, _, resource] => (*group, *resource),
        [.., resource] => ("", *resource),
        [] => ("", ""),
    };
    let qualified = if group.is_empty() {
        resource.to_owned()
    } else {
        format!("{resource}.{group}")
    };
    let message = format!(
        "{qualified} is forbidden: User \"system:anonymous\" cannot {verb} resource \"{resource}\" in API group \"{group}\" at the cluster scope"
    );
    full(
        StatusCode::FORBIDDEN,
        &json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": message, "reason": "Forbidden",
            "details": {"group": group, "kind": resource}, "code": 403
        }),
    )
}

fn query(uri: &hyper::Uri) -> HashMap<String, String> {
    uri.query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// A collection and what of it the path asks for.
enum Target {
    List(Collection, Option<String>),
    One(Collection, String),
}

impl Clone for Collection {
    fn clone(&self) -> Self {
        Collection {
            path: self.path.clone(),
            api_version: self.api_version.clone(),
            kind: self.kind.clone(),
            items: self.items.clone(),
        }
    }
}

fn route(state: &State, path: &str) -> Option<Target> {
    for c in &state.collections {
        let c = c.lock().unwrap().clone();
        if path == c.path {
            return Some(Target::List(c, None));
        }
        if let Some(name) = path.strip_prefix(&format!("{}/", c.path))
            && !name.contains('/')
        {
            let name = name.to_owned();
            return Some(Target::One(c, name));
        }
        // /api/v1/namespaces/NS/pods for /api/v1/pods.
        let (group_path, resource) = c.path.rsplit_once('/')?;
        if let Some(rest) = path.strip_prefix(&format!("{group_path}/namespaces/"))
            && let Some((ns, r)) = rest.split_once('/')
            && r == resource
        {
            let ns = ns.to_owned();
            return Some(Target::List(c, Some(ns)));
        }
    }
    None
}

fn metadata_only(v: &Value) -> Value {
    json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": v["metadata"]})
}

fn answer(state: &Arc<State>, req: Request<hyper::body::Incoming>) -> Response<Body> {
    let accept = req
        .headers()
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    state.seen.lock().unwrap().push(Seen {
        method: req.method().to_string(),
        uri: req.uri().to_string(),
        accept: accept.clone(),
    });
    let meta = accept.contains("as=PartialObjectMetadata");
    let q = query(req.uri());
    let rv = state.version.load(Ordering::Relaxed).to_string();
    let target = route(state, req.uri().path());
    if let Some(Target::List(c, _) | Target::One(c, _)) = &target
        && state.forbidden.lock().unwrap().contains(&c.path)
    {
        let watching = matches!(q.get("watch").map(String::as_str), Some("true" | "1"));
        let verb = match &target {
            Some(Target::One(..)) => "get",
            _ if watching => "watch",
            _ => "list",
        };
        return forbidden(&c.path, verb);
    }
    match target {
        None => status(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ),
        Some(Target::One(c, name)) => {
            let found = (0..c.items.len())
                .map(|i| c.items.get(i))
                .find(|o| o["metadata"]["name"] == name.as_str());
            match found {
                Some(mut o) => {
                    o["apiVersion"] = c.api_version.clone().into();
                    o["kind"] = c.kind.clone().into();
                    full(StatusCode::OK, &if meta { metadata_only(&o) } else { o })
                }
                None => status(
                    404,
                    "NotFound",
                    &format!("{}s \"{name}\" not found", c.kind.to_lowercase()),
                ),
            }
        }
        Some(Target::List(c, ns))
            if matches!(q.get("watch").map(String::as_str), Some("true" | "1")) =>
        {
            watch(state, &c, ns, meta, &q)
        }
        Some(Target::List(c, ns)) => {
            let all: Vec<usize> = (0..c.items.len())
                .filter(|&i| {
                    ns.as_deref()
                        .is_none_or(|ns| c.items.get(i)["metadata"]["namespace"] == ns)
                })
                .collect();
            let start: usize = q.get("continue").and_then(|t| t.parse().ok()).unwrap_or(0);
            let limit: usize = q
                .get("limit")
                .and_then(|l| l.parse().ok())
                .filter(|&l| l > 0)
                .unwrap_or(usize::MAX);
            let end = start.saturating_add(limit).min(all.len());
            let items: Vec<Value> = all[start.min(end)..end]
                .iter()
                .map(|&i| {
                    let o = c.items.get(i);
                    if meta { metadata_only(&o) } else { o }
                })
                .collect();
            let mut metadata = json!({"resourceVersion": rv});
            if end < all.len() {
                metadata["continue"] = end.to_string().into();
                metadata["remainingItemCount"] = (all.len() - end).into();
            }
            let (api_version, kind) = if meta {
                (
                    "meta.k8s.io/v1".to_owned(),
                    "PartialObjectMetadataList".to_owned(),
                )
            } else {
                (c.api_version.clone(), format!("{}List", c.kind))
            };
            full(
                StatusCode::OK,
                &json!({"apiVersion": api_version, "kind": kind, "metadata": metadata, "items": items}),
            )
        }
    }
}

fn watch(
    state: &Arc<State>,
    c: &Collection,
    ns: Option<String>,
    meta: bool,
    q: &HashMap<String, String>,
) -> Response<Body> {
    let bookmarks = q.get("allowWatchBookmarks").is_some_and(|v| v == "true");
    let timeout = Duration::from_secs(
        q.get("timeoutSeconds")
            .and_then(|t| t.parse().ok())
            .unwrap_or(290),
    );
    let mut rx = state.events[&c.path].subscribe();
    let state = Arc::clone(state);
    let (api_version, kind) = (c.api_version.clone(), c.kind.clone());
    let stream = async_stream(move |tx| async move {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut tick = tokio::time::interval(BOOKMARK_EVERY);
        loop {
            let line = tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return,
                _ = tick.tick(), if bookmarks => {
                    let rv = state.version.load(Ordering::Relaxed).to_string();
                    json!({"type": "BOOKMARK", "object": {
                        "apiVersion": api_version, "kind": kind,
                        "metadata": {"resourceVersion": rv}}})
                }
                ev = rx.recv() => match ev {
                    Ok(ev) if ev["type"] == "ERROR" => {
                        let _ = tx.send(Bytes::from(format!("{ev}\n"))).await;
                        return;
                    }
                    Ok(mut ev) => {
                        if ns.as_deref().is_some_and(|ns| ev["object"]["metadata"]["namespace"] != ns) {
                            continue;
                        }
                        ev["object"]["apiVersion"] = api_version.clone().into();
                        ev["object"]["kind"] = kind.clone().into();
                        if meta {
                            ev["object"] = metadata_only(&ev["object"]);
                        }
                        ev
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            };
            if tx.send(Bytes::from(format!("{line}\n"))).await.is_err() {
                return;
            }
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(StreamBody::new(stream).boxed())
        .expect("response")
}

/// A stream of body frames fed by a task through a channel.
fn async_stream<F, Fut>(
    body: F,
) -> impl futures::Stream<Item = Result<Frame<Bytes>, Infallible>> + Send + Sync + 'static
where
    F: FnOnce(tokio::sync::mpsc::Sender<Bytes>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    tokio::spawn(body(tx));
    futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok(Frame::data(b)), rx))
    })
}
