//! What the leader alone does: bring both webhook configurations' `caBundle`
//! in line with the Secret, then write the Secret's next step (see
//! [`super::plan`]). It works from the replica's watches and writes with
//! the `resourceVersion` it read, so a write based on a stale view, or one
//! racing a former leader, is refused (409) and simply planned again.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::json;

use super::material::{self, ISSUED_AT_ANNOTATION, Material, PREVIOUS_CA_CERT, ROTATE_ANNOTATION};
use super::plan::{Policy, Step, plan};
use super::replica::{Replica, Webhooks};
use super::{bundle, unix_now};
use crate::certs::{self, CA_COMMON_NAME, KeyedCert};
use crate::leader::Leadership;

/// A Secret's data and annotations, as written.
type SecretContents = (BTreeMap<String, Vec<u8>>, BTreeMap<String, String>);

/// The field manager named on palisade's writes.
pub const FIELD_MANAGER: &str = "palisade";

/// How soon to try again after a failed write or read.
const RETRY: Duration = Duration::from_secs(5);

/// Why a reconcile round failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Making a certificate failed.
    #[error(transparent)]
    Certs(#[from] certs::CertsError),
    /// The API refused or failed.
    #[error("{what}: {source}")]
    Api {
        /// What was being written.
        what: String,
        /// The error.
        #[source]
        source: kube::Error,
    },
}

/// Runs until aborted: whenever this replica leads, reconcile on every
/// change of the Secret, the webhooks or the role, and when the plan's
/// next deadline comes.
pub async fn run(
    client: kube::Client,
    replica: Arc<Replica>,
    policy: Policy,
    mut leadership: Leadership,
) {
    let names = replica.names().clone();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &names.namespace);
    let validating: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let mutating: Api<MutatingWebhookConfiguration> = Api::all(client);
    let mut secret_rx = replica.secret();
    let mut webhooks_rx = replica.webhooks();
    // (the bundle, since when both configurations have carried it)
    let mut trusted: Option<(String, i64)> = None;
    loop {
        let secret = secret_rx.borrow_and_update().clone();
        let webhooks = webhooks_rx.borrow_and_update().clone();
        let wait = if !leadership.is_leader() {
            trusted = None;
            Duration::from_secs(3600)
        } else if let (Some(secret), Ok(_)) = (secret, webhooks.bundles()) {
            let round = Round {
                secrets: &secrets,
                validating: &validating,
                mutating: &mutating,
                replica: &replica,
                policy: &policy,
            };
            match round.reconcile(secret, &webhooks, &mut trusted).await {
                Ok(wait) => wait,
                Err(e) => {
                    tracing::warn!(error = %e, "certificate management: will try again");
                    RETRY
                }
            }
        } else {
            // Not listed yet (or a webhook configuration is missing, which
            // an apply of deploy/ will fix): the watches wake us.
            Duration::from_secs(60)
        };
        let next = tokio::time::Instant::now() + wait;
        tokio::select! {
            changed = leadership.changed() => if !changed { return },
            r = secret_rx.changed() => if r.is_err() { return },
            r = webhooks_rx.changed() => if r.is_err() { return },
            _ = tokio::time::sleep_until(next) => {}
        }
    }
}

struct Round<'a> {
    secrets: &'a Api<Secret>,
    validating: &'a Api<ValidatingWebhookConfiguration>,
    mutating: &'a Api<MutatingWebhookConfiguration>,
    replica: &'a Replica,
    policy: &'a Policy,
}

fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    }
}

fn api_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> WriteError {
    let what = what.into();
    move |source| WriteError::Api { what, source }
}

fn is_conflict(e: &WriteError) -> bool {
    matches!(e, WriteError::Api { source: kube::Error::Api(s), .. } if s.code == 409)
}

impl Round<'_> {
    /// One pass; returns how long until time alone makes the next one due.
    async fn reconcile(
        &self,
        secret: Option<Secret>,
        webhooks: &Webhooks,
        trusted: &mut Option<(String, i64)>,
    ) -> Result<Duration, WriteError> {
        let names = self.replica.names();
        let now = unix_now();
        let data: BTreeMap<String, Vec<u8>> = secret
            .iter()
            .flat_map(|s| s.data.iter().flatten())
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect();
        let annotations = secret
            .as_ref()
            .and_then(|s| s.metadata.annotations.clone())
            .unwrap_or_default();
        let m = Material::read(&data, &annotations, &names.server_name(), now);
        if let Some(bad) = &m.bad_force {
            tracing::warn!(value = %bad, "ignoring {ROTATE_ANNOTATION}: use serving or ca");
        }

        // The bundle follows the Secret.
        let mut in_line = false;
        if let Some(want) = m.bundle() {
            in_line = match self.patch_bundles(webhooks, &want).await {
                Ok(done) => done,
                // Our view of a configuration was older than what is stored
                // (its watch event is on the way): plan again from it.
                Err(e) if is_conflict(&e) => return Ok(Duration::from_millis(200)),
                Err(e) => return Err(e),
            };
            *trusted = match trusted.take() {
                Some((b, since)) if in_line && b == want => Some((b, since)),
                _ if in_line => Some((want, now)),
                _ => None,
            };
        }
        let step = plan(&m.facts(now, trusted.as_ref().map(|t| t.1)), self.policy);
        let write = match &step {
            Step::Idle {
                recheck_at,
                waiting_for,
            } => {
                tracing::debug!(waiting_for, recheck_at, "certificates: nothing to write");
                let secs = u64::try_from(recheck_at.saturating_sub(now)).unwrap_or(0);
                // Patched configurations come back through the watch.
                return Ok(Duration::from_secs(secs.clamp(1, 3600)).min(if in_line {
                    Duration::from_secs(3600)
                } else {
                    RETRY
                }));
            }
            step => next_secret(
                step,
                &m,
                &data,
                &annotations,
                self.replica,
                self.policy,
                now,
            )?,
        };
        tracing::info!(step = ?step, "certificates: writing the Secret");
        match self.write_secret(secret, write).await {
            Ok(()) => Ok(RETRY),
            Err(e) if is_conflict(&e) => {
                tracing::info!("the Secret changed under us; planning again from the new version");
                Ok(Duration::from_millis(200))
            }
            Err(e) => Err(e),
        }
    }

    /// Patches each configuration whose webhooks do not all carry exactly
    /// `want`; `true` when both already did.
    async fn patch_bundles(&self, webhooks: &Webhooks, want: &str) -> Result<bool, WriteError> {
        let mut in_line = true;
        let name = &self.replica.names().webhook_configuration;
        if let Some(Some(v)) = &webhooks.validating {
            let hooks: Vec<(&str, Option<&ByteString>)> = v
                .webhooks
                .iter()
                .flatten()
                .map(|w| (w.name.as_str(), w.client_config.ca_bundle.as_ref()))
                .collect();
            if let Some(patch) = bundle_patch(v.metadata.resource_version.as_deref(), &hooks, want)
            {
                in_line = false;
                self.validating
                    .patch(name, &patch_params(), &Patch::Strategic(patch))
                    .await
                    .map_err(api_err(format!(
                        "patching ValidatingWebhookConfiguration {name}"
                    )))?;
                tracing::info!(kind = "ValidatingWebhookConfiguration", "set caBundle");
            }
        }
        if let Some(Some(m)) = &webhooks.mutating {
            let hooks: Vec<(&str, Option<&ByteString>)> = m
                .webhooks
                .iter()
                .flatten()
                .map(|w| (w.name.as_str(), w.client_config.ca_bundle.as_ref()))
                .collect();
            if let Some(patch) = bundle_patch(m.metadata.resource_version.as_deref(), &hooks, want)
            {
                in_line = false;
                self.mutating
                    .patch(name, &patch_params(), &Patch::Strategic(patch))
                    .await
                    .map_err(api_err(format!(
                        "patching MutatingWebhookConfiguration {name}"
                    )))?;
                tracing::info!(kind = "MutatingWebhookConfiguration", "set caBundle");
            }
        }
        Ok(in_line)
    }

    async fn write_secret(
        &self,
        existing: Option<Secret>,
        (data, annotations): SecretContents,
    ) -> Result<(), WriteError> {
        let names = self.replica.names();
        let data = data.into_iter().map(|(k, v)| (k, ByteString(v))).collect();
        match existing {
            Some(mut s) => {
                s.data = Some(data);
                s.string_data = None;
                s.metadata.annotations = Some(annotations);
                self.secrets
                    .replace(
                        &names.secret,
                        &PostParams {
                            field_manager: Some(FIELD_MANAGER.into()),
                            ..PostParams::default()
                        },
                        &s,
                    )
                    .await
                    .map(|_| ())
                    .map_err(api_err(format!(
                        "updating Secret {}/{}",
                        names.namespace, names.secret
                    )))
            }
            None => {
                let s = Secret {
                    metadata: ObjectMeta {
                        name: Some(names.secret.clone()),
                        namespace: Some(names.namespace.clone()),
                        annotations: Some(annotations),
                        labels: Some(BTreeMap::from([(
                            "app.kubernetes.io/name".to_owned(),
                            "palisade".to_owned(),
                        )])),
                        ..ObjectMeta::default()
                    },
                    type_: Some("Opaque".into()),
                    data: Some(data),
                    ..Secret::default()
                };
                self.secrets
                    .create(
                        &PostParams {
                            field_manager: Some(FIELD_MANAGER.into()),
                            ..PostParams::default()
                        },
                        &s,
                    )
                    .await
                    .map(|_| ())
                    .map_err(api_err(format!(
                        "creating Secret {}/{}",
                        names.namespace, names.secret
                    )))
            }
        }
    }
}

/// The strategic merge patch that sets `caBundle` to `want` on every
/// webhook of a configuration (merged by webhook name, so nothing else in
/// the configuration changes), guarded by the `resourceVersion` read; `None`
/// when every webhook already carries exactly `want`.
pub fn bundle_patch(
    resource_version: Option<&str>,
    webhooks: &[(&str, Option<&ByteString>)],
    want: &str,
) -> Option<serde_json::Value> {
    let stale = webhooks.is_empty()
        || webhooks.iter().any(|(_, have)| {
            !bundle::same_certificates(have.map_or(&[][..], |b| b.0.as_slice()), want.as_bytes())
        });
    if !stale || webhooks.is_empty() {
        return None;
    }
    let b64 = base64::engine::general_purpose::STANDARD.encode(want.as_bytes());
    let entries: Vec<serde_json::Value> = webhooks
        .iter()
        .map(|(name, _)| json!({"name": name, "clientConfig": {"caBundle": b64}}))
        .collect();
    let mut patch = json!({ "webhooks": entries });
    if let Some(rv) = resource_version {
        patch["metadata"] = json!({ "resourceVersion": rv });
    }
    Some(patch)
}

fn at(unix: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::try_from(unix).unwrap_or(0))
}

fn after(now: i64, d: Duration) -> i64 {
    now.saturating_add(i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The Secret's data and annotations after `step`.
fn next_secret(
    step: &Step,
    m: &Material,
    data: &BTreeMap<String, Vec<u8>>,
    annotations: &BTreeMap<String, String>,
    replica: &Replica,
    p: &Policy,
    now: i64,
) -> Result<SecretContents, WriteError> {
    let spec = replica.names().cert_spec();
    let mut annotations = annotations.clone();
    if m.force.is_some_and(|f| step.satisfies(f)) {
        annotations.remove(ROTATE_ANNOTATION);
    }
    let new_ca = || {
        certs::generate_ca(
            &format!("{CA_COMMON_NAME} {now}"),
            at(now),
            at(after(now, p.ca_validity)),
        )
    };
    // Never past the CA: a leaf outliving its CA would fail before its time.
    let serving_from = |ca: &KeyedCert, ca_not_after: i64| {
        certs::issue_serving(
            ca,
            &spec,
            at(now),
            at(after(now, p.serving_validity).min(ca_not_after)),
        )
    };
    let ca_not_after = m.facts(now, None).ca_not_after;
    let mut issued = false;
    let data = match (step, &m.ca, ca_not_after) {
        (Step::Bootstrap { .. }, _, _) => {
            let ca = new_ca()?;
            let serving = serving_from(&ca, after(now, p.ca_validity))?;
            issued = true;
            material::data(&ca, None, &serving)
        }
        (Step::IssueServing { .. }, Some(ca), Some(ca_end)) => {
            let serving = serving_from(ca, ca_end)?;
            issued = true;
            material::data(ca, m.previous_ca.as_deref(), &serving)
        }
        (Step::RotateCa { .. }, Some(old), _) => {
            let ca = new_ca()?;
            let mut d = data.clone();
            d.insert(material::CA_CERT.into(), ca.cert_pem.into_bytes());
            d.insert(material::CA_KEY.into(), ca.key_pem.into_bytes());
            d.insert(PREVIOUS_CA_CERT.into(), old.cert_pem.clone().into_bytes());
            d
        }
        (Step::DropPreviousCa, _, _) => {
            let mut d = data.clone();
            d.remove(PREVIOUS_CA_CERT);
            d
        }
        // The plan only issues from a usable CA; nothing to do otherwise.
        _ => data.clone(),
    };
    if issued {
        annotations.insert(ISSUED_AT_ANNOTATION.into(), now.to_string());
    }
    Ok((data, annotations))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_patch_touches_only_ca_bundles_and_only_when_needed() {
        let now = SystemTime::now();
        let ca = certs::generate_ca("a", now, now + Duration::from_secs(86_400)).unwrap();
        let want = bundle::desired(&ca.cert_pem, None);
        let have = ByteString(want.clone().into_bytes());
        let old =
            ByteString(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_vec());

        assert_eq!(
            bundle_patch(Some("7"), &[("validate.palisade.io", Some(&have))], &want),
            None
        );
        assert_eq!(
            bundle_patch(Some("7"), &[], &want),
            None,
            "no webhooks, nothing to patch"
        );
        let patch = bundle_patch(
            Some("7"),
            &[
                ("a.palisade.io", Some(&have)),
                ("b.palisade.io", Some(&old)),
                ("c.palisade.io", None),
            ],
            &want,
        )
        .expect("two of three are stale");
        let b64 = base64::engine::general_purpose::STANDARD.encode(want.as_bytes());
        assert_eq!(
            patch,
            json!({
                "metadata": {"resourceVersion": "7"},
                "webhooks": [
                    {"name": "a.palisade.io", "clientConfig": {"caBundle": b64}},
                    {"name": "b.palisade.io", "clientConfig": {"caBundle": b64}},
                    {"name": "c.palisade.io", "clientConfig": {"caBundle": b64}},
                ]
            })
        );
    }
}
