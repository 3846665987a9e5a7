//! The Lease I/O of leader election: read the Lease, then create, renew or
//! take it over with an update guarded by `resourceVersion` (a 409 Conflict
//! means someone else wrote first: this round is lost, nothing else), and
//! give it up on shutdown so the next leader need not wait for it to expire.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::decide::{Decision, LeaseRecord, Observation, decide, should_step_down};
use super::{Leadership, Role};

/// Where the Lease is and how it is held.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    /// The Lease's namespace (palisade's own).
    pub namespace: String,
    /// The Lease's name.
    pub name: String,
    /// This replica's identity, unique among the replicas.
    pub identity: String,
    /// `leaseDurationSeconds`: how long others wait after the last renewal.
    pub duration: Duration,
    /// A leader that could not renew for this long stops writing. Shorter
    /// than `duration`, so it stops before anyone may take over.
    pub renew_deadline: Duration,
    /// Time between rounds.
    pub retry_period: Duration,
}

/// The name of palisade's Lease, in palisade's namespace.
pub const LEASE_NAME: &str = "palisade-leader";

impl LeaseConfig {
    /// client-go's defaults: 15 s lease, 10 s renew deadline, 2 s rounds.
    pub fn new(namespace: &str, identity: String) -> Self {
        LeaseConfig {
            namespace: namespace.to_owned(),
            name: LEASE_NAME.to_owned(),
            identity,
            duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// A name for this replica: the pod name (the hostname in a pod), the
/// process and the start time, so a restarted container is a new holder.
pub fn identity() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "palisade".to_owned());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{host}_{}_{nanos:x}", std::process::id())
}

/// An election running in this process: its handle, and how to end it.
/// One per process: every writer (certificates, generation) shares its
/// [`Leadership`], so they all write from the same replica.
pub struct Election {
    /// This replica's role.
    pub leadership: Leadership,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Election {
    /// Starts electing on palisade's Lease in `namespace`, with client-go's
    /// timings and this replica's [`identity`].
    pub fn start(client: kube::Client, namespace: &str) -> Self {
        let (stop, stopped) = watch::channel(false);
        let (leadership, task) = spawn(client, LeaseConfig::new(namespace, identity()), stopped);
        Election {
            leadership,
            stop,
            task,
        }
    }

    /// Stops electing and gives the Lease up (waiting at most `within`),
    /// so another replica takes over at once rather than when it expires.
    pub async fn stop(self, within: Duration) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(within, self.task).await;
    }
}

/// Starts electing; the task runs until `stop` turns true (or its sender is
/// dropped), then releases the Lease if it holds it.
pub fn spawn(
    client: kube::Client,
    config: LeaseConfig,
    mut stop: watch::Receiver<bool>,
) -> (Leadership, JoinHandle<()>) {
    let (tx, rx) = watch::channel(Role::Unknown);
    let api: Api<Lease> = Api::namespaced(client, &config.namespace);
    let task = tokio::spawn(async move {
        let mut observed: Option<Observation> = None;
        let mut last_renewed: Option<Instant> = None;
        loop {
            let now = Instant::now();
            let role = match round(&api, &config, &mut observed, now).await {
                Ok(Round::Leading) => {
                    last_renewed = Some(now);
                    Role::Leader
                }
                Ok(Round::Following(leader)) => {
                    last_renewed = None;
                    Role::Follower { leader }
                }
                Err(e) => {
                    tracing::warn!(lease = %config.name, error = %e, "leader election round failed");
                    match last_renewed {
                        Some(t) if !should_step_down(t, Instant::now(), config.renew_deadline) => {
                            Role::Leader
                        }
                        _ => {
                            last_renewed = None;
                            Role::Follower { leader: None }
                        }
                    }
                }
            };
            tx.send_if_modified(|current| {
                if *current == role {
                    return false;
                }
                match &role {
                    Role::Leader => {
                        tracing::info!(identity = %config.identity, "became the leader")
                    }
                    Role::Follower { leader } if *current == Role::Leader => {
                        tracing::warn!(leader = ?leader, "no longer the leader")
                    }
                    _ => tracing::info!(leader = ?role, "following"),
                }
                *current = role;
                true
            });
            tokio::select! {
                _ = tokio::time::sleep(config.retry_period) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
        if *tx.borrow() == Role::Leader {
            tx.send_replace(Role::Follower { leader: None });
            if let Err(e) = release(&api, &config).await {
                tracing::warn!(error = %e, "could not release the leader Lease; it expires on its own");
            }
        }
    });
    (Leadership::new(rx), task)
}

enum Round {
    Leading,
    Following(Option<String>),
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

fn now_micro() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

fn record_of(lease: &Lease) -> LeaseRecord {
    let spec = lease.spec.clone().unwrap_or_default();
    LeaseRecord {
        holder: spec.holder_identity,
        duration_seconds: spec.lease_duration_seconds,
        renew_time: spec.renew_time.map(|t| t.0.to_string()),
        transitions: spec.lease_transitions.unwrap_or(0),
    }
}

fn seconds(d: Duration) -> i32 {
    i32::try_from(d.as_secs()).unwrap_or(i32::MAX)
}

/// One round of client-go's `tryAcquireOrRenew`.
async fn round(
    api: &Api<Lease>,
    config: &LeaseConfig,
    observed: &mut Option<Observation>,
    now: Instant,
) -> Result<Round, kube::Error> {
    let current = api.get_opt(&config.name).await?;
    *observed = current
        .as_ref()
        .map(|l| Observation::update(observed.take(), record_of(l), now));
    let decision = decide(observed.as_ref(), &config.identity, now, config.duration);
    let stamp = now_micro();
    let (lease, create) = match (decision, current) {
        (Decision::Follow { holder, .. }, _) => return Ok(Round::Following(Some(holder))),
        (Decision::Create, _) | (_, None) => (
            Lease {
                metadata: ObjectMeta {
                    name: Some(config.name.clone()),
                    namespace: Some(config.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(config.identity.clone()),
                    lease_duration_seconds: Some(seconds(config.duration)),
                    acquire_time: Some(stamp.clone()),
                    renew_time: Some(stamp),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            },
            true,
        ),
        (Decision::Renew, Some(mut lease)) => {
            let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
            spec.renew_time = Some(stamp);
            spec.lease_duration_seconds = Some(seconds(config.duration));
            (lease, false)
        }
        (Decision::Acquire { transitions }, Some(mut lease)) => {
            let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
            spec.holder_identity = Some(config.identity.clone());
            spec.lease_duration_seconds = Some(seconds(config.duration));
            spec.acquire_time = Some(stamp.clone());
            spec.renew_time = Some(stamp);
            spec.lease_transitions = Some(transitions);
            (lease, false)
        }
    };
    let written = if create {
        api.create(&PostParams::default(), &lease).await
    } else {
        // The read's resourceVersion rides along: the update is refused
        // (409) if anyone wrote in between.
        api.replace(&config.name, &PostParams::default(), &lease)
            .await
    };
    match written {
        Ok(l) => {
            *observed = Some(Observation::update(observed.take(), record_of(&l), now));
            Ok(Round::Leading)
        }
        Err(e) if is_conflict(&e) => {
            tracing::debug!(lease = %config.name, "another replica wrote the Lease first");
            Ok(Round::Following(None))
        }
        Err(e) => Err(e),
    }
}

/// Gives the Lease up, as client-go's ReleaseOnCancel: no holder and a
/// one-second duration, guarded by the resourceVersion just read.
async fn release(api: &Api<Lease>, config: &LeaseConfig) -> Result<(), kube::Error> {
    let Some(mut lease) = api.get_opt(&config.name).await? else {
        return Ok(());
    };
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    if spec.holder_identity.as_deref() != Some(config.identity.as_str()) {
        return Ok(());
    }
    let stamp = now_micro();
    spec.holder_identity = None;
    spec.lease_duration_seconds = Some(1);
    spec.acquire_time = Some(stamp.clone());
    spec.renew_time = Some(stamp);
    api.replace(&config.name, &PostParams::default(), &lease)
        .await
        .map(|_| tracing::info!("released the leader Lease"))
}
