//! What every replica does with self-managed certificates: watch the
//! certificate Secret through the API and serve what it holds, watch both
//! webhook configurations, and be ready only while the API server would
//! accept the certificate served (its chain verifies against every
//! webhook's `caBundle`, for the Service's name).
//!
//! Reading the Secret through a watch, not a mounted volume, is what lets
//! a new replica serve within seconds of the Secret changing (the kubelet
//! refreshes Secret volumes only every minute or so) and lets palisade run
//! outside the cluster against a kubeconfig exactly as inside.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::Secret;
use kube::Resource;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::material::{TLS_CERT, TLS_KEY};
use super::{Names, bundle, unix_now};
use crate::leader::Leadership;
use crate::server::routes::CertificateStatus;
use crate::server::tls::ServingCert;
use crate::watch_health::WatchHealth;

/// An object watched by name: `None` until listed, then `Some(None)` when
/// it does not exist, `Some(Some(obj))` when it does.
pub type Watched<K> = Option<Option<K>>;

/// The webhook configurations as last seen.
#[derive(Debug, Clone, Default)]
pub struct Webhooks {
    /// The ValidatingWebhookConfiguration.
    pub validating: Watched<ValidatingWebhookConfiguration>,
    /// The MutatingWebhookConfiguration.
    pub mutating: Watched<MutatingWebhookConfiguration>,
}

/// Each webhook's `caBundle`, by configuration kind and webhook name.
pub type Bundles = Vec<(&'static str, String, Vec<u8>)>;

impl Webhooks {
    /// Every webhook's `caBundle` (empty when unset); `Err` names what has
    /// not been read or does not exist.
    pub fn bundles(&self) -> Result<Bundles, String> {
        let mut out = Vec::new();
        match &self.validating {
            None => return Err("the ValidatingWebhookConfiguration has not been read yet".into()),
            Some(None) => return Err("the ValidatingWebhookConfiguration does not exist".into()),
            Some(Some(v)) => {
                for w in v.webhooks.iter().flatten() {
                    let b = w.client_config.ca_bundle.as_ref().map(|b| b.0.clone());
                    out.push((
                        "ValidatingWebhookConfiguration",
                        w.name.clone(),
                        b.unwrap_or_default(),
                    ));
                }
            }
        }
        match &self.mutating {
            None => return Err("the MutatingWebhookConfiguration has not been read yet".into()),
            Some(None) => return Err("the MutatingWebhookConfiguration does not exist".into()),
            Some(Some(m)) => {
                for w in m.webhooks.iter().flatten() {
                    let b = w.client_config.ca_bundle.as_ref().map(|b| b.0.clone());
                    out.push((
                        "MutatingWebhookConfiguration",
                        w.name.clone(),
                        b.unwrap_or_default(),
                    ));
                }
            }
        }
        Ok(out)
    }
}

/// Would the API server accept `chain` on every webhook of `webhooks`?
/// (pure; the readiness rule.)
pub fn trusted_everywhere(
    chain: &[rustls_pki_types::CertificateDer<'_>],
    webhooks: &Webhooks,
    server_name: &str,
    now: i64,
) -> Result<(), String> {
    if chain.is_empty() {
        return Err("no serving certificate loaded yet".into());
    }
    for (kind, name, b) in webhooks.bundles()? {
        bundle::accepts(&b, chain, server_name, now).map_err(|e| {
            format!("{kind} webhook {name} does not trust the served certificate: {e}")
        })?;
    }
    Ok(())
}

/// One replica's view of the certificate Secret and the webhooks.
pub struct Replica {
    names: Names,
    serving: Arc<ServingCert>,
    secret: watch::Sender<Watched<Secret>>,
    webhooks: watch::Sender<Webhooks>,
    health: [(&'static str, Arc<WatchHealth>); 3],
    leadership: Option<Leadership>,
}

impl Replica {
    /// Starts the three watches; the returned tasks run until aborted.
    /// `leadership` is reported in metrics when given.
    pub fn start(
        client: kube::Client,
        names: Names,
        leadership: Option<Leadership>,
    ) -> (Arc<Self>, Vec<JoinHandle<()>>) {
        let me = Arc::new(Replica {
            serving: ServingCert::empty(),
            secret: watch::channel(None).0,
            webhooks: watch::channel(Webhooks::default()).0,
            health: [
                ("secrets", Arc::new(WatchHealth::new())),
                (
                    "validatingwebhookconfigurations",
                    Arc::new(WatchHealth::new()),
                ),
                (
                    "mutatingwebhookconfigurations",
                    Arc::new(WatchHealth::new()),
                ),
            ],
            names,
            leadership,
        });
        let by_name =
            |name: &str| watcher::Config::default().fields(&format!("metadata.name={name}"));
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &me.names.namespace);
        let tasks = vec![
            tokio::spawn(watch_one(
                secrets,
                by_name(&me.names.secret),
                Arc::clone(&me.health[0].1),
                {
                    let me = Arc::clone(&me);
                    move |s: Watched<Secret>| me.on_secret(s)
                },
            )),
            tokio::spawn(watch_one(
                Api::<ValidatingWebhookConfiguration>::all(client.clone()),
                by_name(&me.names.webhook_configuration),
                Arc::clone(&me.health[1].1),
                {
                    let me = Arc::clone(&me);
                    move |v| me.webhooks.send_modify(|w| w.validating = v)
                },
            )),
            tokio::spawn(watch_one(
                Api::<MutatingWebhookConfiguration>::all(client),
                by_name(&me.names.webhook_configuration),
                Arc::clone(&me.health[2].1),
                {
                    let me = Arc::clone(&me);
                    move |m| me.webhooks.send_modify(|w| w.mutating = m)
                },
            )),
        ];
        (me, tasks)
    }

    /// What the server presents.
    pub fn serving(&self) -> &Arc<ServingCert> {
        &self.serving
    }

    /// The names watched.
    pub fn names(&self) -> &Names {
        &self.names
    }

    /// The certificate Secret as last seen, and its changes.
    pub fn secret(&self) -> watch::Receiver<Watched<Secret>> {
        self.secret.subscribe()
    }

    /// The webhook configurations as last seen, and their changes.
    pub fn webhooks(&self) -> watch::Receiver<Webhooks> {
        self.webhooks.subscribe()
    }

    fn on_secret(&self, secret: Watched<Secret>) {
        if let Some(Some(s)) = &secret {
            self.install(s);
        }
        self.secret.send_replace(secret);
    }

    /// Serves the Secret's `tls.crt`/`tls.key` if they are a new valid pair.
    fn install(&self, s: &Secret) {
        let data: BTreeMap<String, Vec<u8>> = s
            .data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect();
        let (Some(cert), Some(key)) = (data.get(TLS_CERT), data.get(TLS_KEY)) else {
            return;
        };
        let label = |key: &str| {
            format!(
                "secret {}/{} key {key}",
                self.names.namespace, self.names.secret
            )
        };
        match self.serving.install_pem(
            Path::new(&label(TLS_CERT)),
            cert,
            Path::new(&label(TLS_KEY)),
            key,
        ) {
            Ok(true) => tracing::info!(
                secret = %self.names.secret,
                not_after = self.serving.not_after(),
                "serving the certificate from the Secret"
            ),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "the Secret's certificate is unusable; still serving the previous one")
            }
        }
    }
}

impl CertificateStatus for Replica {
    fn not_ready(&self) -> Option<String> {
        let webhooks = self.webhooks.borrow().clone();
        trusted_everywhere(
            &self.serving.chain(),
            &webhooks,
            &self.names.server_name(),
            unix_now(),
        )
        .err()
    }

    fn leader(&self) -> Option<bool> {
        self.leadership.as_ref().map(Leadership::is_leader)
    }

    fn watch_sync_ages(&self) -> Vec<(&'static str, f64)> {
        let now = Instant::now();
        self.health
            .iter()
            .map(|(r, h)| (*r, h.sync_age(now).as_secs_f64()))
            .collect()
    }
}

/// Follows one object by name, calling `publish` with its state after the
/// initial list and after every change.
async fn watch_one<K>(
    api: Api<K>,
    config: watcher::Config,
    health: Arc<WatchHealth>,
    publish: impl Fn(Watched<K>) + Send + 'static,
) where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
    K::DynamicType: Default,
{
    let what = K::kind(&Default::default()).into_owned();
    let stream = watcher::watcher(api, config).default_backoff();
    futures::pin_mut!(stream);
    let mut listed: Option<K> = None;
    loop {
        match health.next(&mut stream).await {
            None => return,
            Some(Err(e)) => {
                tracing::warn!(kind = %what, error = %e, "watch error; retrying with backoff")
            }
            Some(Ok(ev)) => match ev {
                Event::Init => listed = None,
                Event::InitApply(o) => listed = Some(o),
                Event::InitDone => {
                    health.synced(Instant::now());
                    publish(Some(listed.take()));
                }
                Event::Apply(o) => publish(Some(Some(o))),
                Event::Delete(_) => publish(Some(None)),
            },
        }
    }
}
