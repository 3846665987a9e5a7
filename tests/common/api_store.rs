//! A local stand-in for the Kubernetes API server that keeps objects and
//! takes writes, for a real `kube::Client` to talk to over HTTP: get, list
//! (with a `metadata.name` field selector; across namespaces for a
//! namespaced resource; metadata-only when asked with
//! `Accept: ...;as=PartialObjectMetadataList`), watch, create, update and
//! patch of the few resources palisade writes or watches, answering with
//! the shapes the API server uses. (For large, paged lists and bookmarks,
//! see `fake_api.rs`.) Built from the API reference and apimachinery's
//! error constructors, not from guesses:
//!
//! - errors are `Status` objects: `NotFound` (404, "`resource "name" not
//!   found`"), `AlreadyExists` (409, "`... already exists`"), `Conflict`
//!   (409, "`Operation cannot be fulfilled on RESOURCE "name": the object
//!   has been modified; please apply your changes to the latest version
//!   and try again`"), with `details {name, group, kind}`;
//! - an update (PUT) whose `metadata.resourceVersion` is not the stored
//!   one is a Conflict, as is a patch that carries a stale one;
//! - list items carry no `kind`/`apiVersion`; the list has the collection
//!   `resourceVersion`; watch events are newline-delimited
//!   `{"type": "ADDED"|"MODIFIED"|"DELETED", "object": ...}` with the
//!   object's new `resourceVersion`;
//! - a strategic merge patch merges the `webhooks` list of a webhook
//!   configuration by `name` (its `patchMergeKey`), everything else as a
//!   JSON merge patch;
//! - a create whose `metadata.name` is not a lowercase RFC 1123 subdomain
//!   is `Invalid` (422, `NewInvalid`: "`KIND.GROUP "name" is invalid:
//!   metadata.name: Invalid value: ...`", one `FieldValueInvalid` cause);
//! - a create in a namespace being deleted is `Forbidden` (403, from the
//!   NamespaceLifecycle admission plugin: "`... is forbidden: unable to
//!   create new content in namespace NS because it is being terminated`",
//!   cause `NamespaceTerminating`);
//! - a verb a test [`ApiStore::forbid`]s is RBAC's `Forbidden` (403,
//!   "`RESOURCE.GROUP is forbidden: User "..." cannot VERB resource ...`").
//!
//! A test can make watches of a resource deliver late ([`ApiStore::lag`]),
//! as a busy API server or a slow network does.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::broadcast;

/// One request as the server saw it, and what it answered.
#[derive(Debug, Clone)]
pub struct Seen {
    /// GET, POST, PUT, PATCH, DELETE.
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// `Content-Type`, for patches.
    pub content_type: String,
    /// The status answered.
    pub status: u16,
}

#[derive(Debug, Clone)]
struct Change {
    collection: String,
    name: String,
    kind: &'static str,
    object: Value,
    rv: u64,
}

type Race = Box<dyn FnOnce(&mut Value) + Send>;

#[derive(Default)]
struct Store {
    rv: u64,
    objects: BTreeMap<(String, String), Value>,
    log: Vec<Change>,
    seen: Vec<Seen>,
    /// Writers that get in just before the next write to (collection, name).
    races: Vec<((String, String), Race)>,
    /// (verb, resource) pairs RBAC refuses.
    forbidden: Vec<(String, String)>,
    /// How late watches of a resource deliver each event.
    lags: BTreeMap<String, std::time::Duration>,
}

/// The running stand-in.
#[derive(Clone)]
pub struct ApiStore {
    /// Where it listens (plain HTTP).
    pub addr: SocketAddr,
    store: Arc<Mutex<Store>>,
    changes: broadcast::Sender<Change>,
}

/// The user every request is from, as RBAC names it in a 403.
pub const USER: &str = "system:serviceaccount:palisade-system:palisade";

/// The resources it serves: (path segment, group, version, kind, namespaced).
const RESOURCES: [(&str, &str, &str, &str, bool); 6] = [
    ("secrets", "", "v1", "Secret", true),
    ("leases", "coordination.k8s.io", "v1", "Lease", true),
    (
        "validatingwebhookconfigurations",
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingWebhookConfiguration",
        false,
    ),
    (
        "mutatingwebhookconfigurations",
        "admissionregistration.k8s.io",
        "v1",
        "MutatingWebhookConfiguration",
        false,
    ),
    ("namespaces", "", "v1", "Namespace", false),
    (
        "networkpolicies",
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        true,
    ),
];

struct Target {
    collection: String,
    name: Option<String>,
    namespace: Option<String>,
    resource: &'static str,
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    namespaced: bool,
}

impl Target {
    /// Does a list or watch of this target take in objects kept under
    /// `collection`? A namespaced resource listed without a namespace
    /// takes in every namespace's.
    fn covers(&self, collection: &str) -> bool {
        if collection == self.collection {
            return true;
        }
        let prefix = if self.group.is_empty() {
            "api/v1".to_owned()
        } else {
            format!("apis/{}/{}", self.group, self.version)
        };
        self.namespaced
            && self.namespace.is_none()
            && collection
                .strip_prefix(&format!("{prefix}/namespaces/"))
                .and_then(|rest| rest.split_once('/'))
                .is_some_and(|(_, r)| r == self.resource)
    }

    fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.resource.to_owned()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }
    fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

fn parse_path(path: &str) -> Option<Target> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let rest = match parts.as_slice() {
        ["api", "v1", rest @ ..] => rest,
        ["apis", _group, _version, rest @ ..] => rest,
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, r, rest @ ..] if RESOURCES.iter().any(|x| x.0 == *r) => {
            (Some(ns.to_string()), {
                let mut v = vec![*r];
                v.extend(rest);
                v
            })
        }
        r => (None, r.to_vec()),
    };
    let (resource, name) = match rest.as_slice() {
        [r] => (*r, None),
        [r, n] => (*r, Some(n.to_string())),
        _ => return None,
    };
    let (res, group, version, kind, namespaced) = RESOURCES.iter().find(|x| x.0 == resource)?;
    let prefix = if group.is_empty() {
        "api/v1".to_owned()
    } else {
        format!("apis/{group}/{version}")
    };
    let collection = match &namespace {
        Some(ns) => format!("{prefix}/namespaces/{ns}/{res}"),
        None => format!("{prefix}/{res}"),
    };
    Some(Target {
        collection,
        name,
        namespace,
        resource: res,
        group,
        version,
        kind,
        namespaced: *namespaced,
    })
}

/// apimachinery's `Status` for an error, with its `details`.
fn status_with(code: u16, reason: &str, message: String, details: Value) -> Response {
    let body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": details,
        "code": code,
    });
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// `StatusDetails`: `name` (left out when empty, as for a create RBAC
/// refuses), `group`, `kind` (a resource, or a Kind for `Invalid`), `causes`.
fn details(name: &str, kind: &str, t: &Target, causes: Value) -> Value {
    let mut d = json!({"kind": kind});
    if !name.is_empty() {
        d["name"] = json!(name);
    }
    if !t.group.is_empty() {
        d["group"] = json!(t.group);
    }
    if !causes.is_null() {
        d["causes"] = causes;
    }
    d
}

/// apimachinery's `Status` for an error.
fn status(code: u16, reason: &str, message: String, name: &str, t: &Target) -> Response {
    status_with(
        code,
        reason,
        message,
        details(name, t.resource, t, Value::Null),
    )
}

fn not_found(name: &str, t: &Target) -> Response {
    status(
        404,
        "NotFound",
        format!("{} \"{name}\" not found", t.qualified()),
        name,
        t,
    )
}

/// apimachinery's `NewInvalid` for a bad `metadata.name`, as the
/// registry's validation words it for a DNS-1123 subdomain.
fn invalid_name(name: &str, t: &Target) -> Response {
    let detail = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', \
                  and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation \
                  is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
    let body_msg = format!("Invalid value: {name:?}: {detail}");
    let qualified_kind = if t.group.is_empty() {
        t.kind.to_owned()
    } else {
        format!("{}.{}", t.kind, t.group)
    };
    let causes =
        json!([{"reason": "FieldValueInvalid", "message": body_msg, "field": "metadata.name"}]);
    status_with(
        422,
        "Invalid",
        format!("{qualified_kind} {name:?} is invalid: metadata.name: {body_msg}"),
        details(name, t.kind, t, causes),
    )
}

/// apimachinery's `IsDNS1123Subdomain`.
fn is_dns_subdomain(name: &str) -> bool {
    let part = |p: &str| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !p.starts_with('-')
            && !p.ends_with('-')
    };
    !name.is_empty() && name.len() <= 253 && name.split('.').all(part)
}

/// RBAC's 403 (`responsewriters.Forbidden`): a create carries no name.
fn rbac_forbidden(verb: &str, t: &Target) -> Response {
    let scope = match &t.namespace {
        Some(ns) => format!("in the namespace {ns:?}"),
        None => "at the cluster scope".to_owned(),
    };
    status_with(
        403,
        "Forbidden",
        format!(
            "{} is forbidden: User {USER:?} cannot {verb} resource {:?} in API group {:?} {scope}",
            t.qualified(),
            t.resource,
            t.group
        ),
        details("", t.resource, t, Value::Null),
    )
}

/// NamespaceLifecycle's 403 for a create in a namespace being deleted.
fn namespace_terminating(name: &str, ns: &str, t: &Target) -> Response {
    let causes = json!([{"reason": "NamespaceTerminating",
        "message": format!("namespace {ns} is being terminated"), "field": "metadata.namespace"}]);
    status_with(
        403,
        "Forbidden",
        format!(
            "{} {name:?} is forbidden: unable to create new content in namespace {ns} because it is being terminated",
            t.qualified()
        ),
        details(name, t.resource, t, causes),
    )
}

/// An object as a metadata-only client asked for it.
fn metadata_only(v: &Value) -> Value {
    json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": v["metadata"]})
}

fn conflict(name: &str, t: &Target) -> Response {
    status(
        409,
        "Conflict",
        format!(
            "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
            t.qualified()
        ),
        name,
        t,
    )
}

fn ok(code: StatusCode, v: &Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

/// A strategic merge patch, as far as palisade's objects need it: lists
/// under `webhooks` merge by `name`; everything else merges as RFC 7386.
fn strategic_merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, pv) in p {
                if pv.is_null() {
                    t.remove(k);
                } else if k == "webhooks" && pv.is_array() {
                    let list = t.entry(k.clone()).or_insert_with(|| json!([]));
                    let Value::Array(items) = list else { continue };
                    for pitem in pv.as_array().into_iter().flatten() {
                        let name = &pitem["name"];
                        match items.iter_mut().find(|i| &i["name"] == name) {
                            Some(existing) => strategic_merge(existing, pitem),
                            None => items.push(pitem.clone()),
                        }
                    }
                } else {
                    let slot = t.entry(k.clone()).or_insert(Value::Null);
                    if slot.is_object() && pv.is_object() {
                        strategic_merge(slot, pv);
                    } else {
                        *slot = pv.clone();
                    }
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

fn query(uri: &axum::http::Uri) -> BTreeMap<String, String> {
    uri.query().map(url_pairs).unwrap_or_default()
}

fn url_pairs(q: &str) -> BTreeMap<String, String> {
    q.split('&')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn selected_name(q: &BTreeMap<String, String>) -> Option<String> {
    q.get("fieldSelector")
        .and_then(|f| f.strip_prefix("metadata.name="))
        .map(str::to_owned)
}

impl ApiStore {
    /// Starts serving on 127.0.0.1:0.
    pub async fn start() -> Self {
        let (changes, _) = broadcast::channel(1024);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let me = ApiStore {
            addr,
            store: Arc::new(Mutex::new(Store::default())),
            changes,
        };
        let app = Router::new().fallback(handle).with_state(me.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        me
    }

    /// A `kube::Client` for it.
    pub fn client(&self) -> kube::Client {
        let uri: axum::http::Uri = format!("http://{}", self.addr).parse().expect("uri");
        let mut config = kube::Config::new(uri);
        config.default_namespace = "palisade-system".into();
        kube::Client::try_from(config).expect("client")
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores `object` (JSON with apiVersion, kind, metadata) as if created.
    pub fn put(&self, object: Value) {
        let path = collection_of(&object);
        let mut s = self.lock();
        let name = object["metadata"]["name"]
            .as_str()
            .expect("name")
            .to_owned();
        let exists = s.objects.contains_key(&(path.clone(), name.clone()));
        self.commit(
            &mut s,
            &path,
            &name,
            if exists { "MODIFIED" } else { "ADDED" },
            object,
        );
    }

    /// The stored object, if any.
    pub fn get(&self, collection: &str, name: &str) -> Option<Value> {
        self.lock()
            .objects
            .get(&(collection.to_owned(), name.to_owned()))
            .cloned()
    }

    /// Changes a stored object as another client would (a new resourceVersion, a watch event).
    pub fn modify(&self, collection: &str, name: &str, f: impl FnOnce(&mut Value)) {
        let mut s = self.lock();
        let mut obj = s
            .objects
            .get(&(collection.to_owned(), name.to_owned()))
            .cloned()
            .expect("object to modify");
        f(&mut obj);
        self.commit(&mut s, collection, name, "MODIFIED", obj);
    }

    /// Before the next write to (collection, name), another writer changes
    /// the object: that write then meets a Conflict.
    pub fn race_next_write(
        &self,
        collection: &str,
        name: &str,
        f: impl FnOnce(&mut Value) + Send + 'static,
    ) {
        self.lock()
            .races
            .push(((collection.to_owned(), name.to_owned()), Box::new(f)));
    }

    /// From now on, RBAC refuses `verb` on `resource` (e.g. `create`,
    /// `networkpolicies`) in every namespace.
    pub fn forbid(&self, verb: &str, resource: &str) {
        self.lock()
            .forbidden
            .push((verb.to_owned(), resource.to_owned()));
    }

    /// From now on, watches of `resource` deliver each event `by` late.
    pub fn lag(&self, resource: &str, by: std::time::Duration) {
        self.lock().lags.insert(resource.to_owned(), by);
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.lock().seen.clone()
    }

    fn commit(
        &self,
        s: &mut Store,
        collection: &str,
        name: &str,
        kind: &'static str,
        mut object: Value,
    ) {
        s.rv += 1;
        let rv = s.rv;
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        if object["metadata"]["uid"].is_null() {
            object["metadata"]["uid"] = json!(format!("uid-{rv}"));
        }
        if object["metadata"]["creationTimestamp"].is_null() {
            // Whole seconds, as the API server writes it.
            let now = k8s_openapi::jiff::Timestamp::now().as_second();
            let stamp = k8s_openapi::jiff::Timestamp::from_second(now).expect("a time");
            object["metadata"]["creationTimestamp"] = json!(stamp.to_string());
        }
        if kind == "DELETED" {
            s.objects.remove(&(collection.to_owned(), name.to_owned()));
        } else {
            s.objects
                .insert((collection.to_owned(), name.to_owned()), object.clone());
        }
        let change = Change {
            collection: collection.to_owned(),
            name: name.to_owned(),
            kind,
            object,
            rv,
        };
        s.log.push(change.clone());
        let _ = self.changes.send(change);
    }

    fn run_race(&self, s: &mut Store, collection: &str, name: &str) {
        let key = (collection.to_owned(), name.to_owned());
        if let Some(i) = s.races.iter().position(|(k, _)| *k == key) {
            let (_, f) = s.races.remove(i);
            // Null when the object does not exist yet: the racer may create it.
            let existed = s.objects.get(&key).cloned();
            let mut obj = existed.clone().unwrap_or(Value::Null);
            f(&mut obj);
            if !obj.is_null() {
                let kind = if existed.is_some() {
                    "MODIFIED"
                } else {
                    "ADDED"
                };
                self.commit(s, collection, name, kind, obj);
            }
        }
    }
}

/// The collection path of an object, from its apiVersion, kind, namespace.
pub fn collection_of(object: &Value) -> String {
    let kind = object["kind"].as_str().expect("kind");
    let (res, group, version, _, namespaced) = RESOURCES
        .iter()
        .find(|x| x.3 == kind)
        .expect("a kind the fake serves");
    let prefix = if group.is_empty() {
        "api/v1".to_owned()
    } else {
        format!("apis/{group}/{version}")
    };
    if *namespaced {
        let ns = object["metadata"]["namespace"].as_str().expect("namespace");
        format!("{prefix}/namespaces/{ns}/{res}")
    } else {
        format!("{prefix}/{res}")
    }
}

fn header_text(req: &Request, name: header::HeaderName) -> String {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

async fn handle(State(api): State<ApiStore>, req: Request) -> Response {
    let method = req.method().clone();
    let uri = req.uri().clone();
    let content_type = header_text(&req, header::CONTENT_TYPE);
    let meta = header_text(&req, header::ACCEPT).contains("as=PartialObjectMetadata");
    let body = axum::body::to_bytes(req.into_body(), 16 << 20)
        .await
        .unwrap_or_default();
    let resp = answer(&api, &method, &uri, &content_type, meta, body).await;
    api.lock().seen.push(Seen {
        method: method.to_string(),
        uri: uri.to_string(),
        content_type,
        status: resp.status().as_u16(),
    });
    resp
}

/// The RBAC verb of a request.
fn verb(method: &Method, t: &Target, q: &BTreeMap<String, String>) -> &'static str {
    match (method.as_str(), &t.name) {
        ("GET", None) if q.get("watch").map(String::as_str) == Some("true") => "watch",
        ("GET", None) => "list",
        ("GET", Some(_)) => "get",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", _) => "delete",
        _ => "",
    }
}

/// Is the stored Namespace `ns` being deleted?
fn terminating(s: &Store, ns: &str) -> bool {
    s.objects
        .get(&("api/v1/namespaces".to_owned(), ns.to_owned()))
        .is_some_and(|n| {
            !n["metadata"]["deletionTimestamp"].is_null() || n["status"]["phase"] == "Terminating"
        })
}

async fn answer(
    api: &ApiStore,
    method: &Method,
    uri: &axum::http::Uri,
    content_type: &str,
    meta: bool,
    body: Bytes,
) -> Response {
    let Some(t) = parse_path(uri.path()) else {
        return (StatusCode::NOT_FOUND, "no such path").into_response();
    };
    let q = query(uri);
    let v = verb(method, &t, &q);
    let refused = {
        let s = api.lock();
        s.forbidden
            .iter()
            .any(|(fv, fr)| fv == v && fr == t.resource)
    };
    if refused {
        return rbac_forbidden(v, &t);
    }
    match (method.as_str(), &t.name) {
        ("GET", None) if q.get("watch").map(String::as_str) == Some("true") => {
            watch(api, &t, &q, meta)
        }
        ("GET", None) => {
            let s = api.lock();
            let wanted = selected_name(&q);
            let items: Vec<Value> = s
                .objects
                .iter()
                .filter(|((c, n), _)| t.covers(c) && wanted.as_ref().is_none_or(|w| w == n))
                .map(|(_, v)| {
                    if meta {
                        return metadata_only(v);
                    }
                    let mut v = v.clone();
                    if let Some(o) = v.as_object_mut() {
                        o.remove("kind");
                        o.remove("apiVersion");
                    }
                    v
                })
                .collect();
            let (kind, api_version) = if meta {
                (
                    "PartialObjectMetadataList".to_owned(),
                    "meta.k8s.io/v1".to_owned(),
                )
            } else {
                (format!("{}List", t.kind), t.api_version())
            };
            ok(
                StatusCode::OK,
                &json!({
                    "kind": kind,
                    "apiVersion": api_version,
                    "metadata": {"resourceVersion": s.rv.to_string()},
                    "items": items,
                }),
            )
        }
        ("GET", Some(name)) => match api.get(&t.collection, name) {
            Some(v) if meta => ok(StatusCode::OK, &metadata_only(&v)),
            Some(v) => ok(StatusCode::OK, &v),
            None => not_found(name, &t),
        },
        ("POST", None) => {
            let Ok(mut obj) = serde_json::from_slice::<Value>(&body) else {
                return (StatusCode::BAD_REQUEST, "bad body").into_response();
            };
            let name = obj["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let mut s = api.lock();
            if let Some(ns) = &t.namespace
                && terminating(&s, ns)
            {
                return namespace_terminating(&name, ns, &t);
            }
            api.run_race(&mut s, &t.collection, &name);
            if s.objects
                .contains_key(&(t.collection.clone(), name.clone()))
            {
                return status(
                    409,
                    "AlreadyExists",
                    format!("{} \"{name}\" already exists", t.qualified()),
                    &name,
                    &t,
                );
            }
            if !is_dns_subdomain(&name) {
                return invalid_name(&name, &t);
            }
            obj["kind"] = json!(t.kind);
            obj["apiVersion"] = json!(t.api_version());
            if let Some(ns) = &t.namespace {
                obj["metadata"]["namespace"] = json!(ns);
            }
            api.commit(&mut s, &t.collection, &name, "ADDED", obj);
            let stored = s.objects[&(t.collection.clone(), name)].clone();
            ok(StatusCode::CREATED, &stored)
        }
        ("PUT", Some(name)) => {
            let Ok(mut obj) = serde_json::from_slice::<Value>(&body) else {
                return (StatusCode::BAD_REQUEST, "bad body").into_response();
            };
            let mut s = api.lock();
            api.run_race(&mut s, &t.collection, name);
            let key = (t.collection.clone(), name.clone());
            let Some(current) = s.objects.get(&key).cloned() else {
                return not_found(name, &t);
            };
            let sent_rv = obj["metadata"]["resourceVersion"].as_str().unwrap_or("");
            // An update without a resourceVersion is unconditional; with
            // one, it must be the stored one.
            if !sent_rv.is_empty()
                && sent_rv
                    != current["metadata"]["resourceVersion"]
                        .as_str()
                        .unwrap_or("")
            {
                return conflict(name, &t);
            }
            obj["kind"] = json!(t.kind);
            obj["apiVersion"] = json!(t.api_version());
            obj["metadata"]["uid"] = current["metadata"]["uid"].clone();
            obj["metadata"]["creationTimestamp"] = current["metadata"]["creationTimestamp"].clone();
            api.commit(&mut s, &t.collection, name, "MODIFIED", obj);
            ok(StatusCode::OK, &s.objects[&key].clone())
        }
        ("PATCH", Some(name)) => {
            let Ok(patch) = serde_json::from_slice::<Value>(&body) else {
                return (StatusCode::BAD_REQUEST, "bad body").into_response();
            };
            let mut s = api.lock();
            api.run_race(&mut s, &t.collection, name);
            let key = (t.collection.clone(), name.clone());
            let Some(mut obj) = s.objects.get(&key).cloned() else {
                return not_found(name, &t);
            };
            if let Some(rv) = patch["metadata"]["resourceVersion"].as_str()
                && rv != obj["metadata"]["resourceVersion"].as_str().unwrap_or("")
            {
                return conflict(name, &t);
            }
            match content_type {
                "application/strategic-merge-patch+json" => strategic_merge(&mut obj, &patch),
                "application/merge-patch+json" => json_patch::merge(&mut obj, &patch),
                other => {
                    return status(
                        415,
                        "UnsupportedMediaType",
                        format!(
                            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {other})"
                        ),
                        name,
                        &t,
                    );
                }
            }
            api.commit(&mut s, &t.collection, name, "MODIFIED", obj);
            ok(StatusCode::OK, &s.objects[&key].clone())
        }
        ("DELETE", Some(name)) => {
            let mut s = api.lock();
            let key = (t.collection.clone(), name.clone());
            let Some(obj) = s.objects.get(&key).cloned() else {
                return not_found(name, &t);
            };
            api.commit(&mut s, &t.collection, name, "DELETED", obj.clone());
            ok(StatusCode::OK, &obj)
        }
        _ => (StatusCode::METHOD_NOT_ALLOWED, "unsupported").into_response(),
    }
}

fn watch(api: &ApiStore, t: &Target, q: &BTreeMap<String, String>, meta: bool) -> Response {
    let from: u64 = q
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let wanted = selected_name(q);
    let target = Target {
        collection: t.collection.clone(),
        name: None,
        namespace: t.namespace.clone(),
        ..*t
    };
    let matches = move |c: &Change| {
        target.covers(&c.collection) && wanted.as_ref().is_none_or(|w| *w == c.name)
    };
    // Subscribe under the lock, so nothing falls between the backlog and the live feed.
    let (backlog, mut rx) = {
        let s = api.lock();
        let rx = api.changes.subscribe();
        let backlog: Vec<Change> = s
            .log
            .iter()
            .filter(|c| c.rv > from && matches(c))
            .cloned()
            .collect();
        (backlog, rx)
    };
    let line = move |c: &Change| {
        let object = if meta {
            metadata_only(&c.object)
        } else {
            c.object.clone()
        };
        Bytes::from(format!("{}\n", json!({"type": c.kind, "object": object})))
    };
    let (tx, mut out) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    let store = Arc::clone(&api.store);
    let resource = t.resource;
    tokio::spawn(async move {
        for c in &backlog {
            if tx.send(Ok(line(c))).await.is_err() {
                return;
            }
        }
        loop {
            match rx.recv().await {
                Ok(c) if c.rv > from && matches(&c) => {
                    let lag = store
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .lags
                        .get(resource)
                        .copied();
                    if let Some(lag) = lag {
                        tokio::time::sleep(lag).await;
                    }
                    if tx.send(Ok(line(&c))).await.is_err() {
                        return;
                    }
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    let stream = futures::stream::poll_fn(move |cx| out.poll_recv(cx));
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response()
}
