//! Fuzzing with proptest: mutated AdmissionReview bodies through parsing,
//! both decisions and the response; mutated manifests through reading,
//! loading into a cluster and `check`'s decision.
//!
//! The default case count suits CI; `PALISADE_FUZZ_CASES=1000000 cargo test
//! --release --test fuzz -- --nocapture` runs a million per property and
//! prints counts and time.
//!
//! What must hold, for every input:
//! - nothing panics;
//! - a body the one-pass reading (`review::parse_in_one_pass`) takes is
//!   read the same by the captured reading (`review::parse_captured`),
//!   which answers everything else;
//! - a body `review::parse` accepts is a valid review by an independent
//!   reading of the wire format (`oracle` below: the AdmissionReview schema
//!   over `serde_json::Value`, objects checked against their k8s-openapi
//!   types), with the same uid; so every body that is not one gets `Err`,
//!   which the server answers with 400 (checked over HTTPS in
//!   `bodies_are_answered_400_or_a_review_with_their_uid`);
//! - when a mutation keeps the body well-formed JSON, the converse holds
//!   too: what the oracle calls valid is accepted;
//! - every accepted review, decided by either webhook against a cluster,
//!   yields a response that parses as an AdmissionReview with the same uid,
//!   `allowed` as decided, a 403 status with a message when denied, and a
//!   base64 JSON Patch only from the mutating webhook;
//! - manifests: reading never fails on text (bad documents are skipped),
//!   loading either works or reports an error, and `check`'s decision of
//!   every document is consistent (a denial names a violated rule).

mod common;

use std::path::Path;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use base64::Engine as _;
use palisade::admit::{self, Webhook};
use palisade::check;
use palisade::cluster::static_dir::StaticCluster;
use palisade::config::Config;
use palisade::decide::{Decision, User};
use palisade::manifest::{self, Manifests};
use palisade::review;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config as RunnerConfig, TestRunner};
use serde_json::Value;

/// Cases per property: `PALISADE_FUZZ_CASES`, default 2,000.
fn cases() -> u32 {
    std::env::var("PALISADE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000)
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(RunnerConfig {
        cases,
        // Failures print their minimal input; no regression files in the tree.
        failure_persistence: None,
        ..RunnerConfig::default()
    })
}

struct Fixture {
    name: String,
    value: Value,
    compact: Vec<u8>,
}

fn fixtures() -> &'static [Fixture] {
    static F: OnceLock<Vec<Fixture>> = OnceLock::new();
    F.get_or_init(|| {
        common::fixture_names("")
            .into_iter()
            .map(|name| {
                let value = common::fixture(&name);
                let compact = serde_json::to_vec(&value).expect("serialize");
                Fixture {
                    name,
                    value,
                    compact,
                }
            })
            .collect()
    })
}

fn config() -> &'static Config {
    static C: OnceLock<Config> = OnceLock::new();
    C.get_or_init(common::default_config)
}

const STATE: &str = "\
apiVersion: v1\nkind: Namespace\nmetadata: {name: fx-apps, labels: {environment: prod, palisade.io/proxy: enabled}}\n---\n\
apiVersion: v1\nkind: Namespace\nmetadata: {name: fx-plain, labels: {environment: dev}}\n---\n\
apiVersion: v1\nkind: Namespace\nmetadata: {name: kcm-test}\nstatus: {phase: Terminating}\n---\n\
apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: fx-apps}\nspec: {podSelector: {}, policyTypes: [Ingress, Egress]}\n---\n\
apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: open, namespace: fx-plain}\nspec: {podSelector: {}, ingress: [{}]}\n";

fn cluster() -> &'static StaticCluster {
    static C: OnceLock<StaticCluster> = OnceLock::new();
    C.get_or_init(|| common::state(STATE))
}

// ---------------------------------------------------------------- inputs

/// Keys of the Kubernetes vocabulary, so random objects often reach the
/// typed parsers' interesting paths instead of being ignored.
const KEYS: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "name",
    "namespace",
    "labels",
    "annotations",
    "spec",
    "template",
    "containers",
    "initContainers",
    "image",
    "podSelector",
    "namespaceSelector",
    "matchLabels",
    "matchExpressions",
    "policyTypes",
    "ingress",
    "egress",
    "from",
    "to",
    "ports",
    "port",
    "endPort",
    "protocol",
    "ipBlock",
    "cidr",
    "except",
    "hostNetwork",
    "deletionTimestamp",
    "status",
    "phase",
    "uid",
    "operation",
    "object",
    "oldObject",
    "userInfo",
    "groups",
    "username",
    "dryRun",
    "request",
    "items",
    "jobTemplate",
    "serviceAccountName",
];

fn arb_key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(KEYS).prop_map(str::to_owned),
        1 => "[a-zA-Z/.~-]{0,12}",
    ]
}

fn arb_string() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z0-9.-]{0,20}",
        2 => prop::sample::select(&[
            "", "Pod", "v1", "apps", "CREATE", "UPDATE", "DELETE", "CONNECT", "fx-apps",
            "enforce", "dry-run", "warn", "Ingress", "Egress", "TCP", "0.0.0.0/0", "::/0",
            "10.0.0.0/8", "dev", "Terminating", "system:masters", "Always", "null", "~",
            "a/b", "~1", "{}", "\u{0}", "é", "\u{202e}",
        ][..])
        .prop_map(str::to_owned),
        1 => ".{0,40}",
    ]
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (0u32..70_000).prop_map(Value::from),
        {
            use prop::num::f64::{NEGATIVE, NORMAL, POSITIVE, SUBNORMAL, ZERO};
            // Finite values only: JSON has no NaN or infinity.
            (POSITIVE | NEGATIVE | NORMAL | SUBNORMAL | ZERO)
                .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number))
        },
        arb_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((arb_key(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// A change to one JSON value.
#[derive(Debug, Clone)]
enum Edit {
    Replace(Value),
    /// Object to array of its values, array to object, string to number...
    SwapType,
    Huge(usize, char),
    Empty,
    Deep(usize, bool),
    /// Removes a child of the target (an object's key or an array's item).
    Remove(Index),
    Add(String, Value),
}

fn arb_edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => arb_json().prop_map(Edit::Replace),
        3 => Just(Edit::SwapType),
        1 => (0usize..200_000, prop::sample::select(&['a', 'é', '"', '\\', '\u{0}', '💥'][..]))
            .prop_map(|(n, c)| Edit::Huge(n, c)),
        2 => Just(Edit::Empty),
        1 => (1usize..1_000, any::<bool>()).prop_map(|(d, a)| Edit::Deep(d, a)),
        3 => any::<Index>().prop_map(Edit::Remove),
        2 => (arb_key(), arb_json()).prop_map(|(k, v)| Edit::Add(k, v)),
    ]
}

/// A change to a whole body.
#[derive(Debug, Clone)]
enum Mutation {
    None,
    Truncate(Index),
    Flip(Vec<(Index, u8)>),
    Insert(Index, Vec<u8>),
    /// Opening brackets without end, far past the parser's depth limit.
    DeepBytes(Index, usize, bool),
    /// An edit at a random path from the root.
    AtRoot(Vec<Index>, Edit),
    /// An edit at a random path inside `request`, where the fields are.
    InRequest(Vec<Index>, Edit),
    /// `request.object` (or `oldObject`) replaced by any JSON.
    Object(bool, Value),
    /// The declared kind changed, the object kept.
    Kind(Index),
    Both(Box<Mutation>, Box<Mutation>),
}

impl Mutation {
    /// Does the mutation keep the body a JSON document without duplicate
    /// keys? Then the oracle's verdict must match the parser's both ways.
    fn structural(&self) -> bool {
        match self {
            Mutation::None
            | Mutation::AtRoot(..)
            | Mutation::InRequest(..)
            | Mutation::Object(..)
            | Mutation::Kind(_) => true,
            Mutation::Both(a, b) => a.structural() && b.structural(),
            _ => false,
        }
    }
}

fn arb_path() -> impl Strategy<Value = Vec<Index>> {
    prop::collection::vec(any::<Index>(), 0..8)
}

/// Mutations of the raw bytes.
fn arb_byte_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        2 => any::<Index>().prop_map(Mutation::Truncate),
        3 => prop::collection::vec((any::<Index>(), 1u8..=255), 1..4).prop_map(Mutation::Flip),
        2 => (any::<Index>(), prop::collection::vec(
            prop_oneof![any::<u8>(), prop::sample::select(&b"{}[]\",:0-e\\ntu"[..])],
            1..8,
        ))
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        1 => (any::<Index>(), 100usize..50_000, any::<bool>())
            .prop_map(|(i, n, a)| Mutation::DeepBytes(i, n, a)),
    ]
}

fn arb_mutation() -> impl Strategy<Value = Mutation> {
    let one = prop_oneof![
        1 => Just(Mutation::None),
        8 => arb_byte_mutation(),
        4 => (arb_path(), arb_edit()).prop_map(|(p, e)| Mutation::AtRoot(p, e)),
        8 => (arb_path(), arb_edit()).prop_map(|(p, e)| Mutation::InRequest(p, e)),
        3 => (any::<bool>(), arb_json()).prop_map(|(old, v)| Mutation::Object(old, v)),
        2 => any::<Index>().prop_map(Mutation::Kind),
    ];
    prop_oneof![
        6 => one.clone(),
        1 => (one.clone(), one).prop_map(|(a, b)| Mutation::Both(Box::new(a), Box::new(b))),
    ]
}

/// The value a path leads to; stops early at a leaf or an empty container.
fn target<'a>(v: &'a mut Value, path: &[Index]) -> &'a mut Value {
    let Some((first, rest)) = path.split_first() else {
        return v;
    };
    let len = match &*v {
        Value::Object(m) => m.len(),
        Value::Array(a) => a.len(),
        _ => 0,
    };
    if len == 0 {
        return v;
    }
    match v {
        Value::Object(m) => {
            let key = m.keys().nth(first.index(len)).cloned().unwrap_or_default();
            match m.get_mut(&key) {
                Some(child) => target(child, rest),
                None => unreachable!("key taken from the map"),
            }
        }
        Value::Array(a) => target(&mut a[first.index(len)], rest),
        other => other,
    }
}

fn nested(depth: usize, array: bool) -> Value {
    let mut v = Value::Null;
    for _ in 0..depth {
        v = if array {
            Value::Array(vec![v])
        } else {
            Value::Object([("a".to_owned(), v)].into_iter().collect())
        };
    }
    v
}

fn apply_edit(v: &mut Value, edit: &Edit) {
    match edit {
        Edit::Replace(with) => *v = with.clone(),
        Edit::SwapType => {
            *v = match std::mem::take(v) {
                Value::Object(m) => Value::Array(m.into_iter().map(|(_, v)| v).collect()),
                Value::Array(a) => Value::Object(
                    a.into_iter()
                        .enumerate()
                        .map(|(i, v)| (i.to_string(), v))
                        .collect(),
                ),
                Value::String(s) => match s.parse::<f64>() {
                    Ok(f) => {
                        serde_json::Number::from_f64(f).map_or(Value::Bool(true), Value::Number)
                    }
                    Err(_) => Value::from(s.len()),
                },
                Value::Number(n) => Value::String(n.to_string()),
                Value::Bool(b) => Value::String(b.to_string()),
                Value::Null => Value::Object(Default::default()),
            }
        }
        Edit::Huge(n, c) => *v = Value::String(std::iter::repeat_n(*c, *n).collect()),
        Edit::Empty => {
            *v = match v {
                Value::Object(_) => Value::Object(Default::default()),
                Value::Array(_) => Value::Array(Vec::new()),
                _ => Value::String(String::new()),
            }
        }
        Edit::Deep(depth, array) => *v = nested(*depth, *array),
        Edit::Remove(i) => match v {
            Value::Object(m) if !m.is_empty() => {
                let key = m.keys().nth(i.index(m.len())).cloned().unwrap_or_default();
                m.remove(&key);
            }
            Value::Array(a) if !a.is_empty() => {
                a.remove(i.index(a.len()));
            }
            _ => *v = Value::Null,
        },
        Edit::Add(k, with) => match v {
            Value::Object(m) => {
                m.insert(k.clone(), with.clone());
            }
            Value::Array(a) => a.push(with.clone()),
            _ => *v = Value::Object([(k.clone(), with.clone())].into_iter().collect()),
        },
    }
}

const KINDS: &[(&str, &str, &str)] = &[
    ("", "v1", "Pod"),
    ("networking.k8s.io", "v1", "NetworkPolicy"),
    ("", "v1", "Namespace"),
    ("apps", "v1", "Deployment"),
    ("apps", "v1", "StatefulSet"),
    ("apps", "v1", "DaemonSet"),
    ("apps", "v1", "ReplicaSet"),
    ("batch", "v1", "Job"),
    ("batch", "v1", "CronJob"),
    ("", "v1", "ReplicationController"),
    ("", "v1", "ConfigMap"),
    ("example.com", "v1", "Pod"),
];

/// Applies the value-level parts of a mutation.
fn mutate_value(v: &mut Value, m: &Mutation) {
    match m {
        Mutation::AtRoot(path, edit) => apply_edit(target(v, path), edit),
        Mutation::InRequest(path, edit) => match v.get_mut("request") {
            Some(r) => apply_edit(target(r, path), edit),
            None => apply_edit(target(v, path), edit),
        },
        Mutation::Object(old, with) => {
            if let Some(r) = v.get_mut("request").and_then(Value::as_object_mut) {
                r.insert(
                    if *old { "oldObject" } else { "object" }.to_owned(),
                    with.clone(),
                );
            }
        }
        Mutation::Kind(i) => {
            let (group, version, kind) = KINDS[i.index(KINDS.len())];
            if let Some(r) = v.get_mut("request").and_then(Value::as_object_mut) {
                r.insert(
                    "kind".to_owned(),
                    serde_json::json!({"group": group, "version": version, "kind": kind}),
                );
            }
        }
        Mutation::Both(a, b) => {
            mutate_value(v, a);
            mutate_value(v, b);
        }
        _ => {}
    }
}

fn mutate_bytes(bytes: &mut Vec<u8>, m: &Mutation) {
    match m {
        Mutation::Truncate(i) if !bytes.is_empty() => bytes.truncate(i.index(bytes.len())),
        Mutation::Flip(flips) if !bytes.is_empty() => {
            for (i, x) in flips {
                let n = bytes.len();
                bytes[i.index(n)] ^= x;
            }
        }
        Mutation::Insert(i, b) => {
            let at = i.index(bytes.len() + 1);
            bytes.splice(at..at, b.iter().copied());
        }
        Mutation::DeepBytes(i, n, array) => {
            let at = i.index(bytes.len() + 1);
            let open: &[u8] = if *array { b"[" } else { b"{\"a\":" };
            let deep: Vec<u8> = open.repeat(*n);
            bytes.splice(at..at, deep);
        }
        Mutation::Both(a, b) => {
            mutate_bytes(bytes, a);
            mutate_bytes(bytes, b);
        }
        _ => {}
    }
}

/// Is any byte-level part present?
fn has_bytes(m: &Mutation) -> bool {
    match m {
        Mutation::Truncate(_)
        | Mutation::Flip(_)
        | Mutation::Insert(..)
        | Mutation::DeepBytes(..) => true,
        Mutation::Both(a, b) => has_bytes(a) || has_bytes(b),
        _ => false,
    }
}

fn has_value_part(m: &Mutation) -> bool {
    match m {
        Mutation::AtRoot(..)
        | Mutation::InRequest(..)
        | Mutation::Object(..)
        | Mutation::Kind(_) => true,
        Mutation::Both(a, b) => has_value_part(a) || has_value_part(b),
        _ => false,
    }
}

/// The fixture, compacted as the API server sends it, with `m` applied.
fn body(fixture: &Fixture, m: &Mutation) -> Vec<u8> {
    let mut bytes = if has_value_part(m) {
        let mut v = fixture.value.clone();
        mutate_value(&mut v, m);
        serde_json::to_vec(&v).unwrap_or_default()
    } else {
        fixture.compact.clone()
    };
    if has_bytes(m) {
        mutate_bytes(&mut bytes, m);
    }
    bytes
}

// ---------------------------------------------------------------- oracle

/// The oracle's answer for a body beyond its reader's limits.
const UNREADABLE: &str = "beyond what the oracle reads";

/// An independent reading of what a valid `admission.k8s.io/v1`
/// AdmissionReview request is, as far as palisade needs one; returns its
/// uid, or why it is not one.
///
/// `serde_json::Value` decodes every byte: it stops at 128 levels of
/// nesting, rejects lone surrogates (`"\uD800"`) and numbers beyond
/// `f64` (`1e400`). palisade's parser skips the fields it ignores (and the
/// objects of kinds it does not decide) without decoding them: no depth
/// limit, since skipping does not recurse, no surrogate check, no number
/// range. Such bodies are still JSON by RFC 8259's grammar, and the API
/// server never sends them (Go's encoder writes valid UTF-8 and finite
/// numbers). The oracle answers [`UNREADABLE`] for them: only the other
/// properties are checked. (The 10^6-case runs found the number case once
/// in about five million.)
fn oracle(body: &[u8]) -> Result<String, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        let e = e.to_string();
        if e.starts_with("recursion limit exceeded")
            || e.starts_with("invalid unicode code point")
            || e.starts_with("lone leading surrogate")
            || e.starts_with("unexpected end of hex escape")
            || e.starts_with("number out of range")
        {
            UNREADABLE.to_owned()
        } else {
            format!("not JSON: {e}")
        }
    })?;
    let top = v.as_object().ok_or("not a JSON object")?;
    if top.get("apiVersion").and_then(Value::as_str) != Some("admission.k8s.io/v1") {
        return Err("apiVersion".into());
    }
    if top.get("kind").and_then(Value::as_str) != Some("AdmissionReview") {
        return Err("kind".into());
    }
    let r = top
        .get("request")
        .and_then(Value::as_object)
        .ok_or("request is not an object")?;
    let uid = r
        .get("uid")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
        .ok_or("no uid")?;
    let gvk = r
        .get("kind")
        .and_then(Value::as_object)
        .ok_or("request.kind is not an object")?;
    let field = |m: &serde_json::Map<String, Value>, k: &str| -> Result<String, String> {
        match m.get(k) {
            None => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(format!("{k} is not a string")),
        }
    };
    let group = field(gvk, "group")?;
    field(gvk, "version")?;
    let kind = field(gvk, "kind")?;
    for k in ["subResource", "name", "namespace"] {
        if !matches!(r.get(k), None | Some(Value::Null) | Some(Value::String(_))) {
            return Err(format!("request.{k}"));
        }
    }
    if !matches!(
        r.get("operation").and_then(Value::as_str),
        Some("CREATE" | "UPDATE" | "DELETE" | "CONNECT")
    ) {
        return Err("operation".into());
    }
    match r.get("userInfo") {
        None => {}
        Some(Value::Object(u)) => {
            field(u, "username")?;
            match u.get("groups") {
                None => {}
                Some(Value::Array(g)) if g.iter().all(Value::is_string) => {}
                Some(_) => return Err("userInfo.groups".into()),
            }
        }
        Some(_) => return Err("userInfo is not an object".into()),
    }
    if !matches!(
        r.get("dryRun"),
        None | Some(Value::Null) | Some(Value::Bool(_))
    ) {
        return Err("dryRun".into());
    }
    for k in ["object", "oldObject"] {
        match r.get(k) {
            None | Some(Value::Null) => {}
            Some(o) => object_valid(&group, &kind, o).map_err(|e| format!("{k}: {e}"))?,
        }
    }
    Ok(uid.to_owned())
}

/// The object parses as its declared kind's k8s-openapi type, as far as
/// palisade reads it (kinds palisade does not decide are not looked at).
///
/// palisade decodes only the members its rules read (`src/prune.rs` says
/// why); what else an object holds is no reason to reject a review, as
/// long as it is JSON. The members read are listed again here, in the
/// oracle's own terms, and the rest removed before the typed parse.
fn object_valid(group: &str, kind: &str, o: &Value) -> Result<(), String> {
    use k8s_openapi::api::{apps::v1 as apps, batch::v1 as batch, core::v1 as core};
    use serde_json::from_value as from;
    const META: &str =
        "metadata.{name,generateName,namespace,labels,annotations,deletionTimestamp}";
    const SPEC: &[&str] = &[
        "containers.*.{name,image,ports,restartPolicy}",
        "initContainers.*.{name,image,ports,restartPolicy}",
        "ephemeralContainers.*.name",
        "volumes.*.name",
        "{hostNetwork,serviceAccountName,serviceAccount}",
    ];
    let top = ["apiVersion", "kind", META].map(str::to_owned).to_vec();
    let pod = |prefix: &str| -> Vec<String> {
        let mut p = vec![format!("{prefix}{META}")];
        p.extend(SPEC.iter().map(|s| format!("{prefix}spec.{s}")));
        p
    };
    let workload = |template: &str| [top.clone(), pod(template)].concat();
    let paths = match (group, kind) {
        ("", "Pod") => [top.clone(), pod("")].concat(),
        ("", "Namespace") | ("networking.k8s.io", "NetworkPolicy") => {
            [top.clone(), vec!["spec".into(), "status".into()]].concat()
        }
        ("batch", "CronJob") => workload("spec.jobTemplate.spec.template."),
        ("", "ReplicationController")
        | ("apps", "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet")
        | ("batch", "Job") => workload("spec.template."),
        _ => return Ok(()),
    };
    let o = keep_only(o, &paths.iter().map(String::as_str).collect::<Vec<_>>());
    let r = match (group, kind) {
        ("", "Pod") => from::<core::Pod>(o).map(drop),
        ("", "Namespace") => from::<core::Namespace>(o).map(drop),
        ("", "ReplicationController") => from::<core::ReplicationController>(o).map(drop),
        ("networking.k8s.io", "NetworkPolicy") => {
            from::<k8s_openapi::api::networking::v1::NetworkPolicy>(o).map(drop)
        }
        ("apps", "Deployment") => from::<apps::Deployment>(o).map(drop),
        ("apps", "StatefulSet") => from::<apps::StatefulSet>(o).map(drop),
        ("apps", "DaemonSet") => from::<apps::DaemonSet>(o).map(drop),
        ("apps", "ReplicaSet") => from::<apps::ReplicaSet>(o).map(drop),
        ("batch", "Job") => from::<batch::Job>(o).map(drop),
        ("batch", "CronJob") => from::<batch::CronJob>(o).map(drop),
        _ => Ok(()),
    };
    r.map_err(|e| e.to_string())
}

/// `v` with only the members named by `paths`: dotted member names, `*`
/// for every item of an array, `{a,b}` for several members. Where a path
/// expects an object or an array and finds something else, the value is
/// kept whole, for the typed parse to judge.
fn keep_only(v: &Value, paths: &[&str]) -> Value {
    fn split(path: &str) -> (&str, Option<&str>) {
        // `{a,b}` is one step; a dot inside it does not split.
        let end = if path.starts_with('{') {
            path.find('}').map_or(path.len(), |i| i + 1)
        } else {
            path.find('.').unwrap_or(path.len())
        };
        (&path[..end], path.get(end + 1..).filter(|r| !r.is_empty()))
    }
    let steps: Vec<(&str, Option<&str>)> = paths.iter().map(|p| split(p)).collect();
    match v {
        Value::Array(items) if steps.iter().all(|(s, _)| *s == "*") => {
            let rest: Vec<&str> = steps.iter().filter_map(|(_, r)| *r).collect();
            if steps.iter().any(|(_, r)| r.is_none()) {
                return v.clone();
            }
            Value::Array(items.iter().map(|i| keep_only(i, &rest)).collect())
        }
        Value::Object(members) if steps.iter().all(|(s, _)| *s != "*") => {
            let mut out = serde_json::Map::new();
            for (name, value) in members {
                let mut whole = false;
                let mut rest = Vec::new();
                for (step, r) in &steps {
                    let names: Vec<&str> = step
                        .trim_matches(|c| c == '{' || c == '}')
                        .split(',')
                        .collect();
                    if names.contains(&name.as_str()) {
                        match r {
                            None => whole = true,
                            Some(r) => rest.push(*r),
                        }
                    }
                }
                if whole {
                    out.insert(name.clone(), value.clone());
                } else if !rest.is_empty() {
                    out.insert(name.clone(), keep_only(value, &rest));
                }
            }
            Value::Object(out)
        }
        _ => v.clone(),
    }
}

// ---------------------------------------------------------------- checks

/// Decides an accepted review with both webhooks and checks each response.
fn decide_and_respond(
    req: &palisade::decide::Request,
    metrics: &palisade::server::metrics::Metrics,
) {
    for webhook in [Webhook::Validate, Webhook::Mutate] {
        let (verdict, confirmation) =
            futures::executor::block_on(admit::admit(config(), cluster(), webhook, req));
        // The per-request work of the route, logs and metrics included.
        metrics.record(webhook, req, &verdict, confirmation, 0.0);
        palisade::server::log::decision(webhook, req, &verdict, confirmation, Default::default());
        let out = review::respond(&req.uid, &verdict, webhook == Webhook::Mutate);
        let v: Value = serde_json::from_slice(&out).expect("the response is JSON");
        assert_eq!(v["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(v["kind"], "AdmissionReview");
        let r = &v["response"];
        assert_eq!(r["uid"].as_str(), Some(req.uid.as_str()), "uid echoed");
        assert_eq!(r["allowed"].as_bool(), Some(verdict.allowed()));
        if !verdict.allowed() {
            assert_eq!(r["status"]["code"], 403);
            assert!(!r["status"]["message"].as_str().unwrap_or("").is_empty());
        }
        match r.get("patch") {
            None => assert!(r.get("patchType").is_none()),
            Some(p) => {
                assert_eq!(webhook, Webhook::Mutate, "validating webhooks never patch");
                assert_eq!(r["patchType"], "JSONPatch");
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(p.as_str().expect("patch is a string"))
                    .expect("patch is base64");
                let ops: Value = serde_json::from_slice(&bytes).expect("patch is JSON");
                assert!(ops.as_array().is_some_and(|a| !a.is_empty()));
            }
        }
        if let Some(w) = r.get("warnings") {
            for w in w.as_array().expect("warnings is a list") {
                let w = w.as_str().expect("warning is a string");
                assert!(!w.chars().any(char::is_control), "header-safe: {w:?}");
            }
        }
    }
}

/// Logs go through the JSON formatter (to nowhere), so the fields the
/// binary formats for every decision are computed here too.
fn init_logs() {
    // The writer's thread is kept for the whole test process.
    std::mem::forget(palisade::server::log::init_with_writer(
        std::io::sink(),
        false,
    ));
    common::init();
}

#[test]
fn review_bodies_never_panic_and_bad_ones_are_rejected() {
    init_logs();
    let n = cases();
    let metrics = palisade::server::metrics::Metrics::new();
    let (accepted, rejected) = (AtomicU64::new(0), AtomicU64::new(0));
    let started = Instant::now();
    let strategy = (any::<Index>(), arb_mutation());
    let fx = fixtures();
    runner(n)
        .run(&strategy, |(i, m)| {
            let f = &fx[i.index(fx.len())];
            let bytes = body(f, &m);
            let parsed = review::parse(&bytes);
            // The one-pass reading takes a body only where the captured
            // reading gives the same request.
            if let Some(once) = review::parse_in_one_pass(&bytes) {
                match review::parse_captured(&bytes) {
                    Ok(twice) => prop_assert_eq!(once, twice),
                    Err(e) => {
                        return Err(TestCaseError::fail(format!(
                            "{}: read in one pass, rejected in two ({e}): {}",
                            f.name,
                            String::from_utf8_lossy(&bytes[..bytes.len().min(2000)])
                        )));
                    }
                }
            }
            let expected = oracle(&bytes);
            match &parsed {
                Ok(req) if expected.as_ref().is_err_and(|e| e == UNREADABLE) => {
                    decide_and_respond(req, &metrics);
                    accepted.fetch_add(1, Ordering::Relaxed);
                }
                Ok(req) => {
                    let uid = expected.as_ref().map_err(|why| {
                        TestCaseError::fail(format!(
                            "{}: parse accepted a body the oracle rejects ({why}): {}",
                            f.name,
                            String::from_utf8_lossy(&bytes[..bytes.len().min(2000)])
                        ))
                    })?;
                    prop_assert_eq!(&req.uid, uid);
                    decide_and_respond(req, &metrics);
                    accepted.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    if m.structural()
                        && let Ok(uid) = &expected
                    {
                        return Err(TestCaseError::fail(format!(
                            "{}: a valid review (uid {uid}) was rejected: {e}: {}",
                            f.name,
                            String::from_utf8_lossy(&bytes[..bytes.len().min(2000)])
                        )));
                    }
                    prop_assert!(!e.to_string().is_empty());
                    rejected.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let (a, r) = (accepted.into_inner(), rejected.into_inner());
    eprintln!(
        "review bodies: {} cases in {:.1} s: {a} accepted and decided by both webhooks, {r} rejected",
        a + r,
        started.elapsed().as_secs_f64()
    );
    assert!(a > 0 && r > 0, "the mutations reach both outcomes");
}

#[test]
fn unmutated_fixtures_are_all_valid() {
    init_logs();
    let metrics = palisade::server::metrics::Metrics::new();
    for f in fixtures() {
        let uid = oracle(&f.compact).unwrap_or_else(|e| panic!("{}: {e}", f.name));
        let req = review::parse(&f.compact).unwrap_or_else(|e| panic!("{}: {e}", f.name));
        assert_eq!(req.uid, uid);
        decide_and_respond(&req, &metrics);
    }
}

/// The oracle and the parser agree on where the line between read and
/// unread runs: a wrong type in a member palisade reads is rejected by
/// both, one in a member it skips by neither.
#[test]
fn read_fields_are_judged_and_unread_ones_are_not() {
    let f = fixtures()
        .iter()
        .find(|f| f.name == "mutating-pod-create-with-labels.json")
        .expect("fixture");
    let base: Value = serde_json::from_slice(&f.compact).expect("JSON");
    let with = |pointer: &str, value: Value| {
        let mut v = base.clone();
        *v.pointer_mut(pointer)
            .unwrap_or_else(|| panic!("{pointer}")) = value;
        serde_json::to_vec(&v).expect("JSON")
    };
    let o = "/request/object";
    for (pointer, read) in [
        (format!("{o}/spec/containers/0/image"), true),
        (format!("{o}/spec/containers/0/name"), true),
        (format!("{o}/metadata/labels"), true),
        (
            format!("{o}/spec/containers/0/terminationMessagePath"),
            false,
        ),
        (format!("{o}/spec/restartPolicy"), false),
        (format!("{o}/metadata/managedFields"), false),
        (format!("{o}/spec/volumes/0/projected"), false),
        (format!("{o}/status"), false),
    ] {
        let body = with(&pointer, Value::from(7));
        assert_eq!(oracle(&body).is_ok(), !read, "oracle on {pointer}");
        assert_eq!(review::parse(&body).is_ok(), !read, "parse on {pointer}");
    }
}

/// What the fuzzer found palisade's parser accepts and `serde_json::Value`
/// does not: content it skips without decoding. Kept as a regression, so a
/// change in that behaviour is noticed.
#[test]
fn skipped_content_is_not_decoded() {
    init_logs();
    let metrics = palisade::server::metrics::Metrics::new();
    let f = fixtures()
        .iter()
        .find(|f| f.name == "validating-pod-create-generate-name.json")
        .expect("fixture");
    let body = String::from_utf8(f.compact.clone()).expect("UTF-8");
    for (what, unknown) in [
        ("a number beyond f64", "1e400"),
        ("a lone leading surrogate", "\"\\ud800\""),
        ("a lone trailing surrogate", "\"\\udc00\""),
        (
            "nesting past 128",
            &format!("{}{}", "[".repeat(200), "]".repeat(200)),
        ),
    ] {
        let mutated = body.replacen(
            "\"spec\":{",
            &format!("\"spec\":{{\"x-unknown\":{unknown},"),
            1,
        );
        let verdict = oracle(mutated.as_bytes());
        assert!(
            verdict.as_ref().is_err_and(|e| e == UNREADABLE),
            "{what}: {verdict:?}"
        );
        let req = review::parse(mutated.as_bytes()).unwrap_or_else(|e| panic!("{what}: {e}"));
        decide_and_respond(&req, &metrics);
    }
}

/// Mutated bodies over HTTPS: 400 with a reason exactly when `parse`
/// rejects the body, else 200 with a review for the same uid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_are_answered_400_or_a_review_with_their_uid() {
    init_logs();
    let server = common::TestServer::start(common::default_config(), common::state(STATE)).await;
    let mut runner = runner(1);
    let strategy = (any::<Index>(), arb_mutation());
    let fx = fixtures();
    let n = cases().clamp(50, 300);
    let (mut ok, mut bad) = (0, 0);
    for k in 0..n {
        let (i, m) = strategy.new_tree(&mut runner).expect("generate").current();
        let f = &fx[i.index(fx.len())];
        let bytes = body(f, &m);
        let parsed = review::parse(&bytes);
        let path = if k % 2 == 0 { "/validate" } else { "/mutate" };
        let (status, text) = server.post(path, bytes).await;
        match parsed {
            Ok(req) => {
                assert_eq!(status, 200, "{}: {text}", f.name);
                let v: Value = serde_json::from_str(&text).expect("review JSON");
                assert_eq!(v["response"]["uid"].as_str(), Some(req.uid.as_str()));
                ok += 1;
            }
            Err(e) => {
                assert_eq!(status, 400, "{}: {m:?}", f.name);
                assert_eq!(text.trim_end(), e.to_string());
                bad += 1;
            }
        }
    }
    eprintln!("over HTTPS: {ok} answered 200, {bad} answered 400");
    assert!(ok > 0 && bad > 0);
}

// ---------------------------------------------------------------- manifests

/// Manifests as people write them, to mutate.
fn manifest_corpus() -> &'static [(String, String)] {
    static M: OnceLock<Vec<(String, String)>> = OnceLock::new();
    M.get_or_init(|| {
        let mut out = vec![
            ("state.yaml".to_owned(), STATE.to_owned()),
            (
                "list.yaml".to_owned(),
                "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Namespace\n  metadata: {name: shop, labels: {environment: prod}}\n- apiVersion: networking.k8s.io/v1\n  kind: NetworkPolicy\n  metadata: {name: deny, namespace: shop}\n  spec: {podSelector: {}, policyTypes: [Ingress, Egress]}\n- apiVersion: apps/v1\n  kind: Deployment\n  metadata: {name: web, namespace: shop}\n  spec:\n    selector: {matchLabels: {app: web}}\n    template:\n      metadata: {labels: {app: web}}\n      spec: {containers: [{name: web, image: nginx}]}\n".to_owned(),
            ),
            (
                // `kubectl get -o json`: items streamed before `kind`.
                "export.json".to_owned(),
                "{\n    \"apiVersion\": \"v1\",\n    \"items\": [\n        {\"apiVersion\": \"v1\", \"kind\": \"Namespace\", \"metadata\": {\"name\": \"shop\", \"labels\": {\"environment\": \"prod\"}}},\n        {\"apiVersion\": \"networking.k8s.io/v1\", \"kind\": \"NetworkPolicy\", \"metadata\": {\"name\": \"deny\", \"namespace\": \"shop\"}, \"spec\": {\"podSelector\": {}, \"policyTypes\": [\"Ingress\", \"Egress\"]}},\n        {\"metadata\": {\"name\": \"p\", \"namespace\": \"shop\"}, \"spec\": {\"containers\": [{\"name\": \"c\", \"image\": \"x\", \"args\": [\"-listen\", \":8080\"]}]}}\n    ],\n    \"kind\": \"PodList\",\n    \"metadata\": {\"resourceVersion\": \"\"}\n}\n".to_owned(),
            ),
            (
                "cron.yaml".to_owned(),
                "# a comment\napiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: nightly\n  namespace: shop\n  labels: &l {app: backup}\nspec:\n  schedule: '@daily'\n  jobTemplate:\n    spec:\n      template:\n        metadata: {labels: *l}\n        spec:\n          restartPolicy: OnFailure\n          containers:\n          - name: pg\n            image: postgres:16\n            ports: [{containerPort: 5432}]\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: egress, namespace: shop}\nspec:\n  podSelector: {matchLabels: {app: backup}}\n  egress:\n  - to: [{ipBlock: {cidr: 0.0.0.0/0, except: [169.254.169.254/32]}}]\n    ports: [{port: 443, endPort: 8443}]\n".to_owned(),
            ),
        ];
        for f in fixtures() {
            for k in ["object", "oldObject"] {
                let o = &f.value["request"][k];
                if o.is_object() {
                    let stem = f.name.trim_end_matches(".json");
                    out.push((
                        format!("{stem}-{k}.json"),
                        serde_json::to_string_pretty(o).expect("serialize"),
                    ));
                    out.push((
                        format!("{stem}-{k}.yaml"),
                        serde_saphyr::to_string(o).expect("serialize"),
                    ));
                }
            }
        }
        out
    })
}

#[derive(Debug, Clone)]
enum TextMutation {
    Bytes(Mutation),
    /// YAML's own syntax dropped in at random.
    Yaml(Index, &'static str),
    /// The document mutated as a value, written out as YAML.
    AsYaml(Vec<Index>, Edit),
}

fn arb_text_mutation() -> impl Strategy<Value = TextMutation> {
    const YAML: &[&str] = &[
        "&a ",
        "*a",
        "*nope",
        "!!binary ",
        "!!str ",
        "!custom ",
        "---\n",
        "...\n",
        "{",
        "}",
        "[",
        "]",
        ": ",
        "\t",
        "- ",
        "? ",
        "|\n",
        ">-\n",
        "%YAML 1.2\n",
        "<<: *a\n",
        "'",
        "\"",
        "#",
        "\n  ",
        "~",
        "yes",
        "0x1F",
        "1e999",
        ".inf",
        "kind: List\n",
        "items: 7\n",
    ];
    prop_oneof![
        3 => arb_byte_mutation().prop_map(TextMutation::Bytes),
        3 => (any::<Index>(), prop::sample::select(YAML)).prop_map(|(i, s)| TextMutation::Yaml(i, s)),
        3 => (arb_path(), arb_edit()).prop_map(|(p, e)| TextMutation::AsYaml(p, e)),
    ]
}

/// The mutated file's name and text.
fn manifest_text(source: &str, text: &str, m: &TextMutation) -> (String, String) {
    let text = match m {
        TextMutation::Bytes(b) => {
            let mut bytes = text.as_bytes().to_vec();
            mutate_bytes(&mut bytes, b);
            String::from_utf8_lossy(&bytes).into_owned()
        }
        TextMutation::Yaml(i, s) => {
            let mut at = i.index(text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            format!("{}{s}{}", &text[..at], &text[at..])
        }
        TextMutation::AsYaml(path, edit) => {
            let mut docs = Manifests::default();
            manifest::read_text(Path::new(source), text, &mut docs);
            let mut out = String::new();
            for d in docs.documents {
                let mut v = d.value;
                apply_edit(target(&mut v, path), edit);
                out.push_str("---\n");
                out.push_str(&serde_saphyr::to_string(&v).unwrap_or_default());
            }
            // Written as YAML now, whatever the original was.
            return (format!("{source}.yaml"), out);
        }
    };
    (source.to_owned(), text)
}

#[test]
fn manifests_never_panic_and_decisions_are_consistent() {
    init_logs();
    let n = cases();
    let started = Instant::now();
    let (docs_seen, decided, loaded) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    let corpus = manifest_corpus();
    let user = User {
        username: "ci".into(),
        groups: vec!["system:authenticated".into()],
    };
    runner(n)
        .run(&(any::<Index>(), arb_text_mutation()), |(i, m)| {
            let (source, text) = &corpus[i.index(corpus.len())];
            let (source, text) = manifest_text(source, text, &m);
            let mut docs = Manifests::default();
            manifest::read_text(Path::new(&source), &text, &mut docs);
            for d in &docs.documents {
                prop_assert!(!d.gvk.kind.is_empty());
            }
            docs_seen.fetch_add(docs.documents.len() as u64, Ordering::Relaxed);
            let mut state = StaticCluster::new();
            if state.apply_all(&docs).is_ok() {
                loaded.fetch_add(1, Ordering::Relaxed);
            }
            for d in &docs.documents {
                for view in [&state, cluster()] {
                    if let Ok(r) = check::decide_document(config(), view, d, &user) {
                        prop_assert_eq!(r.allowed, r.decision != Decision::Deny);
                        if !r.allowed {
                            prop_assert!(!r.violations.is_empty(), "a denial names its rule");
                        }
                        decided.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let (docs_seen, loaded, decided) = (
        docs_seen.into_inner(),
        loaded.into_inner(),
        decided.into_inner(),
    );
    eprintln!(
        "manifests: {n} cases in {:.1} s: {docs_seen} documents read, {loaded} states loaded whole, {decided} decisions",
        started.elapsed().as_secs_f64(),
    );
    // The properties above hold only over what was read and decided: a
    // mutation that broke every document would pass them vacuously.
    assert!(
        docs_seen > 0 && loaded > 0 && decided > 0,
        "the corpus was never read or decided"
    );
}

/// Hostile YAML in files `check` and `--state` read: alias bombs and deep
/// nesting end in a skipped document, not in memory or stack exhaustion.
#[test]
fn hostile_yaml_is_skipped_not_expanded() {
    let mut bomb = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    let mut prev = 'a';
    for c in 'b'..='k' {
        bomb.push_str(&format!(
            "{c}: &{c} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"
        ));
        prev = c;
    }
    bomb.push_str("apiVersion: v1\nkind: Namespace\nmetadata: {name: boom}\n");
    let deep = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {}x{}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    for (name, text) in [("bomb.yaml", bomb), ("deep.yaml", deep)] {
        let mut m = Manifests::default();
        manifest::read_text(Path::new(name), &text, &mut m);
        assert!(m.documents.is_empty(), "{name}: {:?}", m.documents.len());
        assert_eq!(m.skipped.len(), 1, "{name}");
    }
}
