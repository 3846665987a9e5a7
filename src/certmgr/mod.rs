//! Self-managed certificates: palisade keeps its own CA and serving
//! certificate in a Secret, serves from it on every replica, and keeps its
//! webhook configurations' `caBundle` in step, so an install needs no
//! certificate ceremony and rotation needs no operator.
//!
//! The pure parts decide: [`material`] (what the Secret says), [`plan`]
//! (what to write next, and when to renew), [`bundle`] (which CAs the
//! webhooks must trust; would a certificate be accepted). The shell acts:
//! [`replica`] (every replica: watch the Secret and the webhook
//! configurations, serve the certificate, say when ready), [`writer`] (the
//! leader alone, per [`crate::leader`]: write the Secret, patch `caBundle`).

use crate::certs::CertSpec;

pub mod bundle;
pub mod material;
pub mod plan;
pub mod replica;
pub mod writer;

/// The Service the API server calls.
pub const SERVICE: &str = "palisade";
/// The Secret palisade keeps its certificates in (deploy/ ships it empty).
pub const SECRET: &str = "palisade-certs";
/// The name of both webhook configurations.
pub const WEBHOOK_CONFIGURATION: &str = "palisade";

/// Where palisade's objects are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// palisade's namespace: the Service, the Secret, the Lease.
    pub namespace: String,
    /// The Service's name.
    pub service: String,
    /// The Secret's name.
    pub secret: String,
    /// The ValidatingWebhookConfiguration's and the
    /// MutatingWebhookConfiguration's name.
    pub webhook_configuration: String,
}

impl Names {
    /// The standard names in `namespace`.
    pub fn new(namespace: &str) -> Self {
        Names {
            namespace: namespace.to_owned(),
            service: SERVICE.to_owned(),
            secret: SECRET.to_owned(),
            webhook_configuration: WEBHOOK_CONFIGURATION.to_owned(),
        }
    }

    /// The name the API server verifies: `SERVICE.NAMESPACE.svc`.
    pub fn server_name(&self) -> String {
        format!("{}.{}.svc", self.service, self.namespace)
    }

    /// What serving certificates are issued for.
    pub fn cert_spec(&self) -> CertSpec {
        CertSpec {
            service: self.service.clone(),
            namespace: self.namespace.clone(),
            dns: Vec::new(),
            ips: Vec::new(),
            // Unused: the writer gives explicit validity.
            validity_days: 1,
        }
    }
}

/// Unix seconds now.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Self-managed certificates, running: the replica's watches and the
/// leader's writer, and the election when it is theirs alone.
pub struct Managed {
    /// What the server serves from and reports.
    pub replica: std::sync::Arc<replica::Replica>,
    /// This replica's role, for whoever else needs a single writer.
    pub leadership: crate::leader::Leadership,
    election: Option<crate::leader::lease::Election>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Managed {
    /// Starts electing, watching and (when leading) writing in `names.namespace`.
    pub fn start(client: kube::Client, names: Names, policy: plan::Policy) -> Self {
        let election = crate::leader::lease::Election::start(client.clone(), &names.namespace);
        let mut me = Self::start_with(client, names, policy, election.leadership.clone());
        me.election = Some(election);
        me
    }

    /// Starts watching and (when `leadership` says so) writing, under an
    /// election the caller runs and shares with its other writers.
    pub fn start_with(
        client: kube::Client,
        names: Names,
        policy: plan::Policy,
        leadership: crate::leader::Leadership,
    ) -> Self {
        let (replica, mut tasks) =
            replica::Replica::start(client.clone(), names, Some(leadership.clone()));
        tasks.push(tokio::spawn(writer::run(
            client,
            std::sync::Arc::clone(&replica),
            policy,
            leadership.clone(),
        )));
        Managed {
            replica,
            leadership,
            election: None,
            tasks,
        }
    }

    /// Stops writing and, when the election is its own, gives the Lease
    /// up (waiting at most `within`), so another replica takes over at once
    /// rather than after the Lease expires.
    pub async fn stop(self, within: std::time::Duration) {
        for t in &self.tasks {
            t.abort();
        }
        if let Some(e) = self.election {
            e.stop(within).await;
        }
    }
}
