//! The mutating webhook on the wire, over every captured `mutating-pod-*`
//! request in `../shared/fixtures/admission-reviews/`.
//!
//! Each fixture is sent as the API server sent it (only its namespace is
//! renamed to pick a cluster state), the response's patch is base64-decoded
//! and applied with `json-patch` to `request.object`, the result must be a
//! `k8s_openapi` Pod carrying the expected role label and, where expected,
//! the sidecar exactly once; and the same request carrying that result must
//! come back with no patch at all, as a re-invocation by the API server
//! would (`reinvocationPolicy: IfNeeded`).
//!
//! Everything goes through [`review`]; nothing else here knows how a review
//! travels.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use base64::Engine;
use k8s_openapi::api::core::v1::{Container, Pod};
use serde_json::{Value, json};

mod common;

use palisade::cluster::static_dir::StaticCluster;
use palisade::config::Config;
use palisade::decide::RuleId;

/// A palisade server as these tests need one: a config file from
/// `tests/data/mutating/` and the cluster state in [`state_dir`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Server {
    /// `palisade.yaml`: the proxy is appended to the pod's containers.
    Sidecar,
    /// `palisade-native.yaml`: the proxy is a native sidecar.
    Native,
}

impl Server {
    const ALL: [Server; 2] = [Server::Sidecar, Server::Native];

    fn config_path(self) -> PathBuf {
        data_dir().join(match self {
            Server::Sidecar => "palisade.yaml",
            Server::Native => "palisade-native.yaml",
        })
    }

    fn native(self) -> bool {
        self == Server::Native
    }
}

/// The transport: one AdmissionReview body to `POST /mutate` of `server`,
/// the response body as JSON. Over real HTTPS: a `palisade serve` per
/// config (started once, on 127.0.0.1:0, with the files a deployment would
/// use), and a client that trusts only its CA.
fn review(server: Server, body: &[u8]) -> Value {
    let world = world(server);
    let (status, text) = runtime().block_on(world.post("/mutate", body.to_vec()));
    assert_eq!(status, 200, "{text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("the response is not JSON: {e}"))
}

/// One runtime for every test thread: the servers live on it.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime")
    })
}

/// The server for `config`, loaded once from the files a real server would
/// be started with.
fn world(server: Server) -> &'static common::TestServer {
    static WORLDS: [OnceLock<common::TestServer>; 2] = [OnceLock::new(), OnceLock::new()];
    WORLDS[server as usize].get_or_init(|| {
        let cfg = Config::load(&server.config_path()).unwrap_or_else(|e| panic!("{e}"));
        let (cluster, _) = StaticCluster::load(&[state_dir()]).unwrap_or_else(|e| panic!("{e}"));
        runtime().block_on(common::TestServer::start(cfg, cluster))
    })
}

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/mutating")
}

fn state_dir() -> PathBuf {
    data_dir().join("state")
}

const ROLE: &str = "palisade.io/role";
const PROXY: &str = "palisade.io/proxy";
const STATUS: &str = "palisade.io/proxy-status";
const PROXY_NAME: &str = "access-proxy";
const TEMPLATE_VOLUMES: [&str; 2] = ["palisade-proxy-config", "palisade-proxy-tls"];

/// Every `mutating-pod-*` fixture, by file name.
fn fixtures() -> Vec<(String, Value)> {
    let out: Vec<(String, Value)> = common::fixture_names("mutating-pod-")
        .into_iter()
        .map(|n| (n.trim_end_matches(".json").to_owned(), common::fixture(&n)))
        .collect();
    // A moved directory or a lost capture must not shrink the matrix.
    assert!(
        out.len() >= 15,
        "expected at least the 15 captured mutating-pod fixtures, found {}",
        out.len()
    );
    out
}

/// The role the fixture's pod gets from tests/data/mutating/palisade.yaml
/// before any sidecar; `None` where only the `proxied` rule (the sidecar's
/// image) can match.
fn base_role(fixture: &str) -> Option<&'static str> {
    match fixture.trim_start_matches("mutating-pod-") {
        "create-with-labels" | "create-non-admin-user" | "create-dry-run-server" => {
            Some("frontend")
        }
        "create-with-init-container" => Some("backend"),
        "create-host-network" => Some("node-agent"),
        "create-replicaset-controller" => Some("worker"),
        "create-no-labels"
        | "create-generate-name"
        | "create-reinvocation-initial"
        | "create-reinvocation-reinvoked" => None,
        other if !other.starts_with("create-") => None,
        other => panic!("new CREATE fixture {other}: add the role it should get to base_role"),
    }
}

fn expected_role(fixture: &str, injected: bool) -> Option<&'static str> {
    base_role(fixture).or(if injected { Some("proxied") } else { None })
}

/// How the pod's proxy switch is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProxyState {
    /// The namespace label says `enabled`.
    NamespaceOn,
    /// No label, no annotation.
    NamespaceOff,
    /// The namespace label says `disabled`.
    NamespaceDisabled,
    /// No namespace label; the pod's annotation says `enabled`.
    PodOptIn,
    /// The namespace says `enabled`; the pod's annotation says `disabled`.
    PodOptOut,
}

impl ProxyState {
    const ALL: [ProxyState; 5] = [
        ProxyState::NamespaceOn,
        ProxyState::NamespaceOff,
        ProxyState::NamespaceDisabled,
        ProxyState::PodOptIn,
        ProxyState::PodOptOut,
    ];

    fn namespace_suffix(self) -> &'static str {
        match self {
            ProxyState::NamespaceOn | ProxyState::PodOptOut => "proxy-on",
            ProxyState::NamespaceOff | ProxyState::PodOptIn => "proxy-off",
            ProxyState::NamespaceDisabled => "proxy-disabled",
        }
    }

    fn annotation(self) -> Option<&'static str> {
        match self {
            ProxyState::PodOptIn => Some("enabled"),
            ProxyState::PodOptOut => Some("disabled"),
            _ => None,
        }
    }

    fn enabled(self) -> bool {
        matches!(self, ProxyState::NamespaceOn | ProxyState::PodOptIn)
    }
}

/// The role label the pod brings with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Brought {
    /// None.
    Nothing,
    /// `admin`, which no rule derives.
    Spoofed,
    /// The value palisade would set anyway.
    Expected,
}

impl Brought {
    const ALL: [Brought; 3] = [Brought::Nothing, Brought::Spoofed, Brought::Expected];
}

/// The fixture with its namespace renamed to `<namespace>-<suffix>` (or
/// replaced by `namespace`), and, on the object, the proxy annotation and
/// role label given.
fn envelope(
    fixture: &Value,
    namespace: Namespace<'_>,
    annotation: Option<&str>,
    role_label: Option<&str>,
) -> Value {
    let mut r = fixture.clone();
    let req = &mut r["request"];
    let ns = match namespace {
        Namespace::Suffix(s) => format!("{}-{s}", req["namespace"].as_str().unwrap()),
        Namespace::Exactly(n) => n.to_owned(),
    };
    req["namespace"] = json!(ns);
    for key in ["object", "oldObject"] {
        if let Some(meta) = req[key].get_mut("metadata")
            && meta.get("namespace").is_some()
        {
            meta["namespace"] = json!(ns);
        }
    }
    if req["object"].is_object() {
        if let Some(v) = annotation {
            req["object"]["metadata"]["annotations"][PROXY] = json!(v);
        }
        if let Some(v) = role_label {
            req["object"]["metadata"]["labels"][ROLE] = json!(v);
        }
    }
    r
}

#[derive(Debug, Clone, Copy)]
enum Namespace<'a> {
    Suffix(&'a str),
    Exactly(&'a str),
}

/// The same review carrying `object`, with a new uid, as the API server
/// sends a re-invocation.
fn again(body: &Value, object: Value) -> Value {
    let mut r = body.clone();
    let uid = format!("{}-again", r["request"]["uid"].as_str().unwrap());
    r["request"]["uid"] = json!(uid);
    r["request"]["object"] = object;
    r
}

fn bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

/// The response's patch, decoded, after checking the envelope around it.
fn decoded_patch(resp: &Value) -> Option<Vec<json_patch::PatchOperation>> {
    let r = &resp["response"];
    match (r.get("patch"), r.get("patchType")) {
        (None, None) => None,
        (Some(p), Some(t)) => {
            assert_eq!(t, "JSONPatch");
            let raw = base64::engine::general_purpose::STANDARD
                .decode(p.as_str().expect("patch is a base64 string"))
                .expect("patch is base64");
            Some(serde_json::from_slice(&raw).expect("patch is a JSON Patch"))
        }
        (p, t) => panic!("patch {p:?} without patchType {t:?}, or the reverse: {resp}"),
    }
}

fn assert_envelope(resp: &Value, uid: &str) {
    assert_eq!(resp["apiVersion"], "admission.k8s.io/v1", "{resp}");
    assert_eq!(resp["kind"], "AdmissionReview", "{resp}");
    assert_eq!(resp["response"]["uid"], uid, "uid not echoed: {resp}");
}

/// What the API server does to the pod between our patch and the next
/// webhook: defaults the new containers and mounts the service-account
/// token into them (apiserver-behaviour.md (c), fixture
/// validating-pod-create-after-sidecar-patch.json).
fn apiserver_defaults(pod: &mut Value) {
    let token = pod["spec"]["volumes"]
        .as_array()
        .and_then(|vs| {
            vs.iter()
                .filter_map(|v| v["name"].as_str())
                .find(|n| n.starts_with("kube-api-access-"))
        })
        .map(str::to_owned);
    for list in ["containers", "initContainers"] {
        let Some(cs) = pod["spec"][list].as_array_mut() else {
            continue;
        };
        for c in cs {
            let c = c.as_object_mut().unwrap();
            c.entry("imagePullPolicy").or_insert(json!("IfNotPresent"));
            c.entry("terminationMessagePath")
                .or_insert(json!("/dev/termination-log"));
            c.entry("resources").or_insert(json!({}));
            if let Some(token) = &token {
                let mounts = c.entry("volumeMounts").or_insert(json!([]));
                let has = mounts
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|m| m["name"] == json!(token));
                if !has {
                    mounts.as_array_mut().unwrap().push(json!({
                        "name": token, "readOnly": true,
                        "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                    }));
                }
            }
        }
    }
}

fn names(cs: &[Container]) -> Vec<&str> {
    cs.iter().map(|c| c.name.as_str()).collect()
}

/// Checks one fixture under one server, proxy state and brought label;
/// returns a line for the matrix.
fn check_case(
    name: &str,
    fixture: &Value,
    server: Server,
    state: ProxyState,
    brought: Brought,
) -> Option<String> {
    let op = fixture["request"]["operation"].as_str().unwrap();
    let create = op == "CREATE";
    let original_object = &fixture["request"]["object"];
    if original_object.is_null() && (brought != Brought::Nothing || state.annotation().is_some()) {
        // DELETE has no object to carry a label or annotation.
        return None;
    }
    let host_network = original_object["spec"]["hostNetwork"] == json!(true);
    let inject = create && state.enabled() && !host_network;
    let role = if create {
        expected_role(name, inject)
    } else {
        None
    };
    let brought_label = match brought {
        Brought::Nothing => None,
        Brought::Spoofed => Some("admin"),
        Brought::Expected => Some(role?),
    };
    let ctx = format!("{name} {server:?} {state:?} brought {brought:?}");

    let body = envelope(
        fixture,
        Namespace::Suffix(state.namespace_suffix()),
        state.annotation(),
        brought_label,
    );
    let uid = body["request"]["uid"].as_str().unwrap();
    let resp = review(server, &bytes(&body));
    assert_envelope(&resp, uid);
    let r = &resp["response"];
    assert_eq!(r["allowed"], true, "{ctx}: {resp}");
    if create && state.enabled() && host_network {
        let warned = r["warnings"].as_array().is_some_and(|ws| {
            ws.iter()
                .any(|w| w.as_str().unwrap().contains("hostNetwork"))
        });
        assert!(warned, "{ctx}: hostNetwork pod without a warning: {resp}");
    }

    let patch = decoded_patch(&resp);
    let expect_patch = create && (inject || brought_label != role);
    let Some(ops) = patch else {
        assert!(!expect_patch, "{ctx}: expected a patch: {resp}");
        if !create {
            assert_eq!(r["auditAnnotations"]["decision"], "skip", "{ctx}: {resp}");
        }
        return Some(format!("{ctx}: no patch"));
    };
    assert!(expect_patch, "{ctx}: unexpected patch {ops:?}");

    let sent = &body["request"]["object"];
    let mut doc = sent.clone();
    json_patch::patch(&mut doc, &ops)
        .unwrap_or_else(|e| panic!("{ctx}: the patch does not apply: {e}\n{ops:?}"));
    let pod: Pod = serde_json::from_value(doc.clone())
        .unwrap_or_else(|e| panic!("{ctx}: the patched object is not a Pod: {e}"));
    let before: Pod = serde_json::from_value(sent.clone()).unwrap();

    // The role label: the expected value or none; every other label kept.
    let mut labels = pod.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels.remove(ROLE).as_deref(),
        role,
        "{ctx}: role label in {labels:?}"
    );
    let mut labels_before = before.metadata.labels.clone().unwrap_or_default();
    labels_before.remove(ROLE);
    assert_eq!(labels, labels_before, "{ctx}: other labels changed");

    // The sidecar: exactly once where expected, in the right list.
    let spec = pod.spec.as_ref().unwrap();
    let spec_before = before.spec.as_ref().unwrap();
    let init = spec.init_containers.clone().unwrap_or_default();
    let init_before = spec_before.init_containers.clone().unwrap_or_default();
    let proxies = spec
        .containers
        .iter()
        .chain(&init)
        .filter(|c| c.name == PROXY_NAME)
        .count();
    assert_eq!(proxies, usize::from(inject), "{ctx}: proxy containers");
    let volumes = |s: &k8s_openapi::api::core::v1::PodSpec| -> Vec<String> {
        s.volumes.iter().flatten().map(|v| v.name.clone()).collect()
    };
    let status = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(STATUS))
        .cloned();
    let mut annotations = pod.metadata.annotations.clone().unwrap_or_default();
    annotations.remove(STATUS);
    assert_eq!(
        annotations,
        before.metadata.annotations.clone().unwrap_or_default(),
        "{ctx}: other annotations changed"
    );
    if inject {
        assert_eq!(status.as_deref(), Some("injected"), "{ctx}");
        let mut want_volumes = volumes(spec_before);
        want_volumes.extend(TEMPLATE_VOLUMES.map(String::from));
        assert_eq!(volumes(spec), want_volumes, "{ctx}: volumes");
        if server.native() {
            assert_eq!(init[0].name, PROXY_NAME, "{ctx}: native proxy first");
            assert_eq!(init[0].restart_policy.as_deref(), Some("Always"), "{ctx}");
            assert_eq!(names(&init[1..]), names(&init_before), "{ctx}");
            assert_eq!(names(&spec.containers), names(&spec_before.containers));
        } else {
            let (last, own) = spec.containers.split_last().unwrap();
            assert_eq!(last.name, PROXY_NAME, "{ctx}: proxy appended");
            assert_eq!(last.restart_policy, None, "{ctx}");
            assert_eq!(names(own), names(&spec_before.containers), "{ctx}");
            assert_eq!(names(&init), names(&init_before), "{ctx}");
        }
    } else {
        assert_eq!(status, None, "{ctx}: status annotation without a sidecar");
        assert_eq!(spec.containers, spec_before.containers, "{ctx}");
        assert_eq!(init, init_before, "{ctx}");
        assert_eq!(volumes(spec), volumes(spec_before), "{ctx}");
    }

    // The validating webhook, which sees this very pod next, accepts its
    // role label (in-process: it is a cross-check of the two decision
    // functions, not of the transport).
    validating_webhook_accepts_the_label(server, &again(&body, doc.clone()), &ctx);

    // Re-invoked with its own output (after the API server's defaulting),
    // palisade has nothing more to say.
    let mut after = doc;
    apiserver_defaults(&mut after);
    let second = again(&body, after);
    let resp2 = review(server, &bytes(&second));
    assert_envelope(&resp2, second["request"]["uid"].as_str().unwrap());
    assert_eq!(resp2["response"]["allowed"], true, "{ctx}: second run");
    assert!(
        decoded_patch(&resp2).is_none(),
        "{ctx}: the second run patched again: {resp2}"
    );
    Some(format!(
        "{ctx}: {} ops, role {role:?}, sidecar {}",
        ops.len(),
        if inject { "yes" } else { "no" }
    ))
}

fn validating_webhook_accepts_the_label(server: Server, body: &Value, ctx: &str) {
    let w = world(server);
    let (status, text) = runtime().block_on(w.post("/validate", bytes(body)));
    assert_eq!(status, 200, "{ctx}: {text}");
    let resp: Value = serde_json::from_str(&text).unwrap();
    let rules = resp["response"]["auditAnnotations"]["rules"]
        .as_str()
        .unwrap_or("");
    assert!(
        !rules
            .split(',')
            .any(|r| r == RuleId::OwnedRoleLabel.as_str()),
        "{ctx}: the validating webhook rejects the label: {resp}"
    );
}

#[test]
fn every_mutating_pod_fixture_under_every_proxy_state() {
    let mut lines = Vec::new();
    for (name, fixture) in fixtures() {
        for server in Server::ALL {
            for state in ProxyState::ALL {
                for brought in Brought::ALL {
                    lines.extend(check_case(&name, &fixture, server, state, brought));
                }
            }
        }
    }
    // `cargo test -- --nocapture` prints the matrix.
    for l in &lines {
        println!("{l}");
    }
    assert!(lines.len() > 200, "only {} cases ran", lines.len());
}

fn fixture(name: &str) -> Value {
    common::fixture(&format!("{name}.json"))
}

fn applied(body: &Value, resp: &Value) -> Value {
    let ops = decoded_patch(resp).unwrap_or_else(|| panic!("expected a patch: {resp}"));
    let mut doc = body["request"]["object"].clone();
    json_patch::patch(&mut doc, &ops).unwrap();
    doc
}

/// The API server's own re-invocation: the first call, our patch, a later
/// webhook's label (`injected-by-second`, as the captured second call
/// shows), then the call again with a new uid: nothing left to do.
#[test]
fn the_captured_reinvocation_gets_no_second_patch() {
    let initial = fixture("mutating-pod-create-reinvocation-initial");
    let reinvoked = fixture("mutating-pod-create-reinvocation-reinvoked");
    // The two captured calls differ by the uid and that label only.
    let mut expected = initial["request"]["object"].clone();
    expected["metadata"]["labels"]["injected-by-second"] = json!("yes");
    assert_eq!(reinvoked["request"]["object"], expected);

    for server in Server::ALL {
        let on = Namespace::Suffix("proxy-on");
        let body = envelope(&initial, on, None, None);
        let mut out = applied(&body, &review(server, &bytes(&body)));
        out["metadata"]["labels"]["injected-by-second"] = json!("yes");
        apiserver_defaults(&mut out);
        let mut second = envelope(&reinvoked, on, None, None);
        second["request"]["object"] = out;
        let resp = review(server, &bytes(&second));
        assert_envelope(&resp, reinvoked["request"]["uid"].as_str().unwrap());
        assert_eq!(resp["response"]["allowed"], true);
        assert!(decoded_patch(&resp).is_none(), "{server:?}: {resp}");
    }
}

#[test]
fn dry_run_mode_withholds_the_patch_and_audits_what_it_would_do() {
    let f = fixture("mutating-pod-create-with-labels");
    for server in Server::ALL {
        let body = envelope(&f, Namespace::Suffix("dry-run"), None, None);
        let resp = review(server, &bytes(&body));
        let r = &resp["response"];
        assert_envelope(&resp, f["request"]["uid"].as_str().unwrap());
        assert_eq!(r["allowed"], true);
        assert!(decoded_patch(&resp).is_none(), "{resp}");
        assert!(r.get("warnings").is_none(), "{resp}");
        let a = &r["auditAnnotations"];
        assert_eq!(a["mode"], "dry-run");
        assert_eq!(a["decision"], "would-patch");
        let inject = if server.native() {
            "inject sidecar access-proxy (native)"
        } else {
            "inject sidecar access-proxy"
        };
        assert_eq!(
            a["changes"],
            format!("set label palisade.io/role=frontend; {inject}")
        );
    }
}

#[test]
fn warn_mode_applies_the_patch() {
    let f = fixture("mutating-pod-create-with-labels");
    for server in Server::ALL {
        let body = envelope(&f, Namespace::Suffix("warn"), None, None);
        let resp = review(server, &bytes(&body));
        assert_eq!(resp["response"]["allowed"], true);
        assert_eq!(resp["response"]["auditAnnotations"]["mode"], "warn");
        let pod: Pod = serde_json::from_value(applied(&body, &resp)).unwrap();
        assert_eq!(pod.metadata.labels.unwrap()[ROLE], "frontend");
        let spec = pod.spec.unwrap();
        let all: Vec<&str> = spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .map(|c| c.name.as_str())
            .collect();
        assert!(all.contains(&PROXY_NAME), "{server:?}: {all:?}");
    }
}

/// The with-labels fixture's pod with a volume named like the template's.
fn clashing(namespace: Namespace<'_>, annotation: Option<&str>) -> Value {
    let f = fixture("mutating-pod-create-with-labels");
    let mut body = envelope(&f, namespace, annotation, None);
    let spec = &mut body["request"]["object"]["spec"];
    spec["volumes"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "palisade-proxy-tls", "emptyDir": {}}));
    spec["containers"][0]["ports"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "alt", "containerPort": 15443, "protocol": "TCP"}));
    body
}

#[test]
fn a_clash_is_denied_with_the_names_and_the_fix() {
    for server in Server::ALL {
        let body = clashing(Namespace::Suffix("proxy-on"), None);
        let resp = review(server, &bytes(&body));
        let r = &resp["response"];
        assert_eq!(r["allowed"], false, "{resp}");
        assert_eq!(r["status"]["code"], 403);
        assert_eq!(r["status"]["reason"], "Forbidden");
        assert!(decoded_patch(&resp).is_none());
        let msg = r["status"]["message"].as_str().unwrap();
        for needle in [
            "[sidecar-conflict] Pod fx-apps-proxy-on/web: cannot inject the access-proxy sidecar \"access-proxy\"",
            "the pod already has volume \"palisade-proxy-tls\", which the sidecar template also defines",
            "container \"web\" already uses port 15443/TCP, which sidecar container \"access-proxy\" listens on",
            "Fix: rename volume \"palisade-proxy-tls\", move container \"web\" off port 15443/TCP in the pod, \
             or opt the pod out of the proxy with the annotation palisade.io/proxy: disabled.",
        ] {
            assert!(msg.contains(needle), "{needle:?} not in:\n{msg}");
        }
        assert_eq!(r["auditAnnotations"]["rules"], "sidecar-conflict");

        // Following the advice works: the pod is admitted, labelled, unproxied.
        let body = clashing(Namespace::Suffix("proxy-on"), Some("disabled"));
        let resp = review(server, &bytes(&body));
        assert_eq!(resp["response"]["allowed"], true, "{resp}");
        let pod: Pod = serde_json::from_value(applied(&body, &resp)).unwrap();
        assert_eq!(pod.metadata.labels.unwrap()[ROLE], "frontend");
        assert_eq!(pod.spec.unwrap().containers.len(), 1);

        // In warn mode the pod is admitted without the sidecar, with a warning.
        let body = clashing(Namespace::Suffix("warn"), None);
        let resp = review(server, &bytes(&body));
        let r = &resp["response"];
        assert_eq!(r["allowed"], true, "{resp}");
        let warning = r["warnings"][0].as_str().unwrap();
        assert!(
            warning.starts_with("palisade would deny this in enforce mode [sidecar-conflict]"),
            "{warning}"
        );
        let pod: Pod = serde_json::from_value(applied(&body, &resp)).unwrap();
        assert_eq!(pod.metadata.labels.unwrap()[ROLE], "frontend");
        let spec = pod.spec.unwrap();
        assert_eq!(spec.containers.len(), 1);
        assert!(spec.init_containers.is_none());
    }
}

#[test]
fn exempt_namespaces_are_left_alone() {
    let f = fixture("mutating-pod-create-no-labels");
    for server in Server::ALL {
        let body = envelope(&f, Namespace::Exactly("kube-system"), None, Some("admin"));
        let resp = review(server, &bytes(&body));
        assert_eq!(resp["response"]["allowed"], true);
        assert!(decoded_patch(&resp).is_none(), "{resp}");
        assert_eq!(resp["response"]["auditAnnotations"]["decision"], "skip");
    }
}

/// The webhook is registered for pods, but whatever else reaches
/// `/mutate` (every other captured mutating request: namespaces,
/// network policies, a deployment) is allowed untouched.
#[test]
fn other_kinds_are_never_patched() {
    let mut seen = 0;
    for name in common::fixture_names("mutating-") {
        if name.starts_with("mutating-pod-") {
            continue;
        }
        let body = common::fixture(&name);
        for server in Server::ALL {
            let resp = review(server, &bytes(&body));
            assert_envelope(&resp, body["request"]["uid"].as_str().unwrap());
            assert_eq!(resp["response"]["allowed"], true, "{name}: {resp}");
            assert!(decoded_patch(&resp).is_none(), "{name}: {resp}");
            assert_eq!(
                resp["response"]["auditAnnotations"]["decision"], "skip",
                "{name}"
            );
        }
        seen += 1;
    }
    assert!(seen >= 10, "only {seen} non-pod mutating fixtures found");
}
