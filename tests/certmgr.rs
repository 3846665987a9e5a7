//! Self-managed certificates and leader election against the API's own
//! request and response shapes: a real `kube::Client` talks HTTP to a
//! local stand-in of the API server (tests/common/api_store.rs), which
//! answers as the API server does, 409 Conflicts and all. No mocked client.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::api_store::ApiStore;
use common::managed::{
    MUTATING, NS, VALIDATING, api_server_client, bundle_of, deploy_webhooks, readyz, replica,
    review, without_bundles,
};
use palisade::certmgr::plan::Policy;
use palisade::leader::lease::{self, LeaseConfig};
use palisade::leader::{Leadership, Role};
use serde_json::json;

const LEASES: &str = "apis/coordination.k8s.io/v1/namespaces/palisade-system/leases";
const SECRETS: &str = "api/v1/namespaces/palisade-system/secrets";

fn fast_lease(identity: &str) -> LeaseConfig {
    LeaseConfig {
        // Whole seconds: leaseDurationSeconds is an integer.
        duration: Duration::from_secs(2),
        renew_deadline: Duration::from_millis(1000),
        retry_period: Duration::from_millis(100),
        ..LeaseConfig::new(NS, identity.to_owned())
    }
}

async fn until(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn holder(api: &ApiStore) -> Option<String> {
    api.get(LEASES, lease::LEASE_NAME)
        .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_owned))
}

fn transitions(api: &ApiStore) -> i64 {
    api.get(LEASES, lease::LEASE_NAME)
        .and_then(|l| l["spec"]["leaseTransitions"].as_i64())
        .unwrap_or(-1)
}

fn count(api: &ApiStore, method: &str, path: &str, status: u16) -> usize {
    api.seen()
        .iter()
        .filter(|s| s.method == method && s.uri.contains(path) && s.status == status)
        .count()
}

/// Acquire (create, 201), renew (update, 200), lose a round to a 409,
/// lose the Lease to another holder, take it back when that holder stops
/// renewing, and release it on stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_is_acquired_renewed_lost_and_taken_back() {
    let api = ApiStore::start().await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let (l, task) = lease::spawn(api.client(), fast_lease("a"), stopped);
    until("a to lead", Duration::from_secs(5), || l.is_leader()).await;
    assert_eq!(count(&api, "POST", "/leases", 201), 1, "{:#?}", api.seen());
    assert_eq!(holder(&api).as_deref(), Some("a"));
    assert_eq!(transitions(&api), 0);
    until("renewals", Duration::from_secs(5), || {
        count(&api, "PUT", "/leases/palisade-leader", 200) >= 3
    })
    .await;

    // Another replica writes just before our renewal: ours is refused with
    // a Conflict, and the Lease is now theirs.
    api.race_next_write(LEASES, lease::LEASE_NAME, |l| {
        l["spec"]["holderIdentity"] = json!("b");
        l["spec"]["renewTime"] = json!("2026-01-01T00:00:00.000000Z");
    });
    until("a to step down", Duration::from_secs(5), || !l.is_leader()).await;
    assert!(count(&api, "PUT", "/leases/palisade-leader", 409) >= 1);
    assert_eq!(holder(&api).as_deref(), Some("b"));
    // "b" never renews: after its duration (2 s, measured from when "a"
    // first saw that record, not from the time "b" wrote) "a" takes over.
    let lost = Instant::now();
    until("a to take over", Duration::from_secs(5), || l.is_leader()).await;
    assert!(
        lost.elapsed() >= Duration::from_millis(1800),
        "{:?}",
        lost.elapsed()
    );
    assert_eq!(holder(&api).as_deref(), Some("a"));
    assert_eq!(transitions(&api), 1, "a change of hands is counted");

    stop.send_replace(true);
    task.await.expect("elector");
    let released = api.get(LEASES, lease::LEASE_NAME).expect("lease");
    assert!(released["spec"]["holderIdentity"].is_null(), "{released}");
    assert_eq!(released["spec"]["leaseDurationSeconds"], 1);
}

/// Two replicas: never two leaders at once; when the leader stops, it
/// releases the Lease and the other leads without waiting out the duration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_among_replicas_and_a_fast_handover() {
    let api = ApiStore::start().await;
    let (stop_a, a_stopped) = tokio::sync::watch::channel(false);
    let (stop_b, b_stopped) = tokio::sync::watch::channel(false);
    // A long lease: the handover below must come from the release, not
    // from the lease running out.
    let slow = |id: &str| LeaseConfig {
        duration: Duration::from_secs(6),
        renew_deadline: Duration::from_secs(4),
        ..fast_lease(id)
    };
    let (a, a_task) = lease::spawn(api.client(), slow("a"), a_stopped);
    let (b, b_task) = lease::spawn(api.client(), slow("b"), b_stopped);
    until("a leader", Duration::from_secs(5), || {
        a.is_leader() || b.is_leader()
    })
    .await;
    for _ in 0..50 {
        assert!(!(a.is_leader() && b.is_leader()), "two leaders");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (leader, follower, stop, task, stop_other, other_task): (
        &Leadership,
        &Leadership,
        _,
        _,
        _,
        _,
    ) = if a.is_leader() {
        (&a, &b, stop_a, a_task, stop_b, b_task)
    } else {
        (&b, &a, stop_b, b_task, stop_a, a_task)
    };
    assert!(matches!(
        follower.role(),
        Role::Follower { leader: Some(_) }
    ));
    stop.send_replace(true);
    task.await.expect("elector");
    assert!(!leader.is_leader());
    let handover = Instant::now();
    until("the other to lead", Duration::from_secs(5), || {
        follower.is_leader()
    })
    .await;
    assert!(
        handover.elapsed() < Duration::from_secs(3),
        "a released Lease is taken at once, not after its 6 s: {:?}",
        handover.elapsed()
    );
    stop_other.send_replace(true);
    other_task.await.expect("elector");
}

fn secret_data(api: &ApiStore, key: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let s = api.get(SECRETS, palisade::certmgr::SECRET)?;
    s["data"][key].as_str().map(|b| {
        base64::engine::general_purpose::STANDARD
            .decode(b)
            .expect("base64")
    })
}

/// First install: no Secret, the webhooks as deploy/ declares them. The
/// leader creates the Secret, patches only `caBundle` into both
/// configurations (strategic merge, by webhook name, guarded by the
/// resourceVersion read), the replica serves the certificate it reads back
/// through its watch, and turns ready; the API server (a client trusting
/// the caBundle) gets its review answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_install_creates_the_secret_patches_both_bundles_and_turns_ready() {
    let api = ApiStore::start().await;
    deploy_webhooks(&api);
    let declared =
        [VALIDATING, MUTATING].map(|c| without_bundles(api.get(c, "palisade").expect("declared")));
    let r = replica(&api, Policy::default()).await;
    let (status, text) = readyz(r.server.metrics_addr).await;
    if status == 200 {
        // The stand-in answers at once, so on a busy machine the whole
        // first install may be done before this first look: ready must
        // then mean both configurations already trust the certificate.
        assert!(
            !bundle_of(&api, VALIDATING).is_empty() && !bundle_of(&api, MUTATING).is_empty(),
            "ready before both caBundles were written: {text}"
        );
    } else {
        assert_eq!(status, 503, "not ready before the certificate: {text}");
    }

    until("ready", Duration::from_secs(10), || {
        !bundle_of(&api, VALIDATING).is_empty() && !bundle_of(&api, MUTATING).is_empty()
    })
    .await;
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, text) = readyz(r.server.metrics_addr).await;
        if status == 200 {
            break;
        }
        assert!(Instant::now() < end, "never ready: {text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(count(&api, "POST", "/secrets", 201), 1, "{:#?}", api.seen());
    // One patch per configuration; a patch sent from a view older than the
    // store (the other configuration's watch event arrived first) may be
    // refused with a Conflict, never applied.
    let patches: Vec<_> = api
        .seen()
        .into_iter()
        .filter(|s| s.method == "PATCH")
        .collect();
    assert!(
        patches
            .iter()
            .all(|p| p.content_type == "application/strategic-merge-patch+json"),
        "{patches:#?}"
    );
    for kind in [
        "validatingwebhookconfigurations",
        "mutatingwebhookconfigurations",
    ] {
        let applied = patches
            .iter()
            .filter(|p| p.uri.contains(kind) && p.status == 200)
            .count();
        assert_eq!(applied, 1, "{kind}: {patches:#?}");
    }
    assert!(
        patches.iter().all(|p| p.status == 200 || p.status == 409),
        "{patches:#?}"
    );
    // Only caBundle changed: failurePolicy, selectors, rules as declared.
    for (c, before) in [VALIDATING, MUTATING].iter().zip(declared) {
        assert_eq!(
            without_bundles(api.get(c, "palisade").expect("configuration")),
            before,
            "{c}"
        );
    }
    // The bundle is the Secret's CA.
    assert_eq!(
        Some(bundle_of(&api, VALIDATING)),
        secret_data(&api, "ca.crt")
    );

    let client = api_server_client(&api, r.server.https_addr);
    review(&client, r.server.https_addr, "first")
        .await
        .expect("the API server's call");
    let metrics = reqwest::get(format!("http://{}/metrics", r.server.metrics_addr))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(metrics.contains("palisade_leader 1"), "{metrics}");
    assert!(metrics.contains("palisade_ready 1"), "{metrics}");
    assert!(
        metrics.contains("palisade_watch_sync_age_seconds{resource=\"secrets\"}"),
        "{metrics}"
    );
    r.managed.stop(Duration::from_secs(2)).await;
}

/// Writes that lose a race are re-planned from what won: a Secret created
/// by another replica between our read and our create (409 AlreadyExists)
/// is adopted, not overwritten; an update refused for a stale
/// resourceVersion (409 Conflict) is redone on the new version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_writes_that_lose_a_race_are_planned_again() {
    let api = ApiStore::start().await;
    deploy_webhooks(&api);
    // Another replica's Secret appears just before our create.
    let theirs = palisade::certs::generate(&palisade::certs::CertSpec {
        service: "palisade".into(),
        namespace: NS.into(),
        dns: vec![],
        ips: vec![],
        validity_days: 365,
    })
    .expect("certs");
    let their_ca = theirs.ca_pem.clone();
    api.race_next_write(SECRETS, palisade::certmgr::SECRET, move |s| {
        *s = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": palisade::certmgr::SECRET, "namespace": NS},
            "type": "Opaque",
            "data": {"tls.crt": b64(&theirs.cert_pem), "tls.key": b64(&theirs.key_pem), "ca.crt": b64(&theirs.ca_pem)},
        });
    });
    let r = replica(&api, Policy::default()).await;
    // (A second create may meet the same 409 if it goes before the watch
    // delivers their Secret; either way nothing is overwritten blindly.)
    until("the create to lose", Duration::from_secs(10), || {
        count(&api, "POST", "/secrets", 409) >= 1
    })
    .await;
    // Their Secret lacks ca.key: no usable CA, so ours bootstraps over it
    // with an update on their resourceVersion, not a second create.
    until("an update", Duration::from_secs(10), || {
        count(&api, "PUT", "/secrets/palisade-certs", 200) >= 1
    })
    .await;
    assert_ne!(secret_data(&api, "ca.crt"), Some(their_ca.into_bytes()));

    // A forced serving rotation whose first update meets a Conflict.
    let before = secret_data(&api, "tls.crt");
    let ca_before = secret_data(&api, "ca.crt");
    api.race_next_write(SECRETS, palisade::certmgr::SECRET, |s| {
        s["metadata"]["labels"] = json!({"touched-by": "someone-else"});
    });
    api.modify(SECRETS, palisade::certmgr::SECRET, |s| {
        s["metadata"]["annotations"]["palisade.io/rotate"] = json!("serving");
    });
    until("the rotation", Duration::from_secs(10), || {
        secret_data(&api, "tls.crt") != before
    })
    .await;
    assert!(
        count(&api, "PUT", "/secrets/palisade-certs", 409) >= 1,
        "{:#?}",
        api.seen()
    );
    let s = api.get(SECRETS, palisade::certmgr::SECRET).expect("secret");
    assert!(
        s["metadata"]["annotations"]["palisade.io/rotate"].is_null(),
        "the request is consumed: {s}"
    );
    assert_eq!(
        s["metadata"]["labels"]["touched-by"], "someone-else",
        "the other writer's change survives"
    );
    assert_eq!(
        secret_data(&api, "ca.crt"),
        ca_before,
        "a serving rotation keeps the CA"
    );
    r.managed.stop(Duration::from_secs(2)).await;
}

fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
}

/// Rotation under load: two replicas serve while clients call them the way
/// the API server does (trusting exactly the webhook configuration's
/// current caBundle; a new client, so new connections, when it changes;
/// every third request on a new connection anyway). The serving
/// certificate is rotated, then the CA, through every step (new CA beside
/// the old, the switch, the old CA dropped): no review fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_under_load_fails_no_review() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let api = ApiStore::start().await;
    deploy_webhooks(&api);
    let policy = Policy {
        settle: Duration::from_millis(1500),
        propagation: Duration::from_secs(2),
        ..Policy::default()
    };
    let replicas = [replica(&api, policy).await, replica(&api, policy).await];
    let addrs: Vec<SocketAddr> = replicas.iter().map(|r| r.server.https_addr).collect();
    for r in &replicas {
        let end = Instant::now() + Duration::from_secs(20);
        while readyz(r.server.metrics_addr).await.0 != 200 {
            assert!(Instant::now() < end, "replica never ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let load: Vec<_> = (0..6)
        .map(|c| {
            let (api, addrs, stop, ok) = (
                api.clone(),
                addrs.clone(),
                Arc::clone(&stop),
                Arc::clone(&ok),
            );
            tokio::spawn(async move {
                let addr = addrs[c % addrs.len()];
                let mut failures = Vec::new();
                let mut current: Option<(Vec<u8>, reqwest::Client)> = None;
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let bundle = bundle_of(&api, VALIDATING);
                    if current.as_ref().is_none_or(|(b, _)| *b != bundle) || n % 3 == 0 {
                        current = Some((bundle, api_server_client(&api, addr)));
                    }
                    let uid = format!("load-{c}-{n}");
                    n += 1;
                    let client = &current.as_ref().expect("client").1;
                    match review(client, addr, &uid).await {
                        Ok(()) => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => failures.push(format!("{uid}: {e}")),
                    }
                }
                failures
            })
        })
        .collect();

    // The serving certificate, same CA.
    until("the load to run", Duration::from_secs(10), || {
        ok.load(Ordering::Relaxed) > 20
    })
    .await;
    let ca0 = secret_data(&api, "ca.crt");
    let leaf0 = secret_data(&api, "tls.crt");
    api.modify(SECRETS, palisade::certmgr::SECRET, |s| {
        s["metadata"]["annotations"]["palisade.io/rotate"] = json!("serving");
    });
    until("a new serving certificate", Duration::from_secs(20), || {
        secret_data(&api, "tls.crt") != leaf0
    })
    .await;
    assert_eq!(secret_data(&api, "ca.crt"), ca0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let served_after_serving = ok.load(Ordering::Relaxed);

    // The CA: a new one beside the old, then the switch, then the old one goes.
    let leaf1 = secret_data(&api, "tls.crt");
    api.modify(SECRETS, palisade::certmgr::SECRET, |s| {
        s["metadata"]["annotations"]["palisade.io/rotate"] = json!("ca");
    });
    until("a new CA beside the old", Duration::from_secs(20), || {
        secret_data(&api, "ca-previous.crt") == ca0
    })
    .await;
    until("the switch to the new CA", Duration::from_secs(30), || {
        secret_data(&api, "tls.crt") != leaf1
    })
    .await;
    until("the old CA dropped", Duration::from_secs(30), || {
        secret_data(&api, "ca-previous.crt").is_none()
    })
    .await;
    let ca1 = secret_data(&api, "ca.crt");
    assert_ne!(ca1, ca0);
    until("the bundles to follow", Duration::from_secs(20), || {
        Some(bundle_of(&api, VALIDATING)) == ca1 && Some(bundle_of(&api, MUTATING)) == ca1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    stop.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    for t in load {
        failures.extend(t.await.expect("load client"));
    }
    let total = ok.load(Ordering::Relaxed);
    assert!(
        failures.is_empty(),
        "{} of {} failed: {failures:#?}",
        failures.len(),
        total + failures.len()
    );
    assert!(
        served_after_serving > 0 && total > served_after_serving,
        "load ran through both rotations: {served_after_serving} then {total}"
    );
    // Only the new CA is trusted now, and both replicas still answer.
    for addr in &addrs {
        review(&api_server_client(&api, *addr), *addr, "after")
            .await
            .expect("after the rotation");
    }
    for r in replicas {
        r.managed.stop(Duration::from_secs(2)).await;
    }
}
