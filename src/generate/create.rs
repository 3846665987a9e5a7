//! Create-if-absent of one generated policy: a `POST`, and nothing else.
//! palisade never updates or deletes a NetworkPolicy, so it can never
//! change one it did not create: a policy of the same name that is already
//! there (`409 AlreadyExists`) is left exactly as it is, and counts as done.

use std::fmt;
use std::time::Duration;

use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, PostParams};

/// The field manager named on palisade's writes.
pub const FIELD_MANAGER: &str = "palisade";

/// How long one create may take before it counts as failed (and is tried
/// again later): the client's own read timeout is sized for watches.
pub const CREATE_TIMEOUT: Duration = Duration::from_secs(10);

/// What became of one policy generation planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// `201 Created`.
    Created,
    /// `409 AlreadyExists`: a policy of that name is there (palisade's
    /// from an earlier round, or someone else's); left untouched.
    Exists,
    /// `403 Forbidden` from RBAC: palisade may not create NetworkPolicies
    /// (deploy/components/generate grants it).
    Forbidden,
    /// `422 Invalid`: the API server refused the object.
    Invalid,
    /// The namespace is being deleted or is gone (`403` with cause
    /// `NamespaceTerminating`, or `404`): nothing left to fence.
    Gone,
    /// Anything else (a server error, no answer): tried again later.
    Failed,
    /// Not created, because the namespace's mode is `warn` or `dry-run`.
    WouldCreate,
}

impl Outcome {
    /// Every outcome, in the order metrics list them.
    pub const ALL: [Outcome; 7] = [
        Outcome::Created,
        Outcome::Exists,
        Outcome::Forbidden,
        Outcome::Invalid,
        Outcome::Gone,
        Outcome::Failed,
        Outcome::WouldCreate,
    ];

    /// The metric label and log value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Exists => "exists",
            Outcome::Forbidden => "forbidden",
            Outcome::Invalid => "invalid",
            Outcome::Gone => "gone",
            Outcome::Failed => "failed",
            Outcome::WouldCreate => "would-create",
        }
    }

    /// Is the policy there now (or, in warn and dry-run, meant not to be)?
    pub fn is_done(self) -> bool {
        matches!(
            self,
            Outcome::Created | Outcome::Exists | Outcome::WouldCreate
        )
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The cause the API server's NamespaceLifecycle admission adds to the
/// 403 it answers for a create in a namespace being deleted.
const NAMESPACE_TERMINATING_CAUSE: &str = "NamespaceTerminating";

/// The outcome of a create the API server answered with an error (pure).
pub fn outcome_of_error(e: &kube::Error) -> Outcome {
    let kube::Error::Api(status) = e else {
        return Outcome::Failed;
    };
    let terminating = status.details.as_ref().is_some_and(|d| {
        d.causes
            .iter()
            .any(|c| c.reason == NAMESPACE_TERMINATING_CAUSE)
    });
    if status.is_already_exists() {
        Outcome::Exists
    } else if terminating || status.is_not_found() {
        Outcome::Gone
    } else if status.is_forbidden() {
        Outcome::Forbidden
    } else if status.is_invalid() {
        Outcome::Invalid
    } else {
        Outcome::Failed
    }
}

/// Creates `policy` in its namespace unless a policy of its name exists;
/// the outcome, and the API server's message when it said no.
pub async fn create(client: &kube::Client, policy: &NetworkPolicy) -> (Outcome, Option<String>) {
    let ns = policy.metadata.namespace.as_deref().unwrap_or_default();
    let api: Api<NetworkPolicy> = Api::namespaced(client.clone(), ns);
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PostParams::default()
    };
    match tokio::time::timeout(CREATE_TIMEOUT, api.create(&params, policy)).await {
        Err(_) => (
            Outcome::Failed,
            Some(format!(
                "no answer from the API server within {CREATE_TIMEOUT:?}"
            )),
        ),
        Ok(Ok(_)) => (Outcome::Created, None),
        Ok(Err(e)) => (outcome_of_error(&e), Some(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::{Status, response::StatusCause, response::StatusDetails};

    fn api(code: u16, reason: &str, causes: &[&str]) -> kube::Error {
        let mut s = Status::failure("m", reason).with_code(code);
        if !causes.is_empty() {
            s = s.with_details(StatusDetails {
                name: String::new(),
                group: String::new(),
                kind: String::new(),
                uid: String::new(),
                causes: causes
                    .iter()
                    .map(|r| StatusCause {
                        reason: (*r).into(),
                        message: String::new(),
                        field: "metadata.namespace".into(),
                    })
                    .collect(),
                retry_after_seconds: 0,
            });
        }
        kube::Error::Api(s.boxed())
    }

    #[test]
    fn answers_map_to_outcomes() {
        let cases = [
            (api(409, "AlreadyExists", &[]), Outcome::Exists),
            (api(403, "Forbidden", &[]), Outcome::Forbidden),
            (
                api(403, "Forbidden", &["NamespaceTerminating"]),
                Outcome::Gone,
            ),
            (api(404, "NotFound", &[]), Outcome::Gone),
            (
                api(422, "Invalid", &["FieldValueInvalid"]),
                Outcome::Invalid,
            ),
            (api(500, "InternalError", &[]), Outcome::Failed),
            (api(409, "Conflict", &[]), Outcome::Failed),
            (
                kube::Error::LinesCodecMaxLineLengthExceeded,
                Outcome::Failed,
            ),
        ];
        for (e, want) in cases {
            assert_eq!(outcome_of_error(&e), want, "{e}");
        }
        let done: Vec<&str> = Outcome::ALL
            .iter()
            .filter(|o| o.is_done())
            .map(|o| o.as_str())
            .collect();
        assert_eq!(done, ["created", "exists", "would-create"]);
    }
}
