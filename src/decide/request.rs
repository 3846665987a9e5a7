//! An admission request as the decision functions see it: plain typed data,
//! whether it came over the wire (`serve`) or from a manifest (`check`).

use std::fmt;

use serde::{Deserialize, Serialize};

pub use crate::object::{ClusterObject, Gvk, Object, Workload, WorkloadKind};

/// The admission operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Operation {
    /// CREATE.
    Create,
    /// UPDATE.
    Update,
    /// DELETE.
    Delete,
    /// CONNECT.
    Connect,
}

impl Operation {
    /// As the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
            Operation::Connect => "CONNECT",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who is asking.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// `username`.
    #[serde(default)]
    pub username: String,
    /// `groups`.
    #[serde(default)]
    pub groups: Vec<String>,
}

/// An admission request, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Echoed in the response.
    pub uid: String,
    /// The object's kind.
    pub kind: Gvk,
    /// `status`, `scale`, ... when the request is for a subresource.
    pub sub_resource: Option<String>,
    /// What is being done.
    pub operation: Operation,
    /// The namespace (for a Namespace: its own name).
    pub namespace: Option<String>,
    /// The object's name; absent on CREATE with `generateName`.
    pub name: Option<String>,
    /// Who is asking.
    pub user: User,
    /// A server-side dry run: decided exactly like a real request.
    pub dry_run: bool,
    /// The object after the operation (absent on DELETE).
    pub object: Option<Object>,
    /// The object before it (UPDATE, DELETE).
    pub old_object: Option<Object>,
}

impl Request {
    /// The name to print: the request's, the object's, or its
    /// `generateName` with a `*`.
    pub fn display_name(&self) -> String {
        if let Some(n) = self.name.as_deref().filter(|n| !n.is_empty()) {
            return n.to_owned();
        }
        let meta = self
            .object
            .as_ref()
            .or(self.old_object.as_ref())
            .and_then(Object::metadata);
        match meta {
            Some(m) => match (&m.name, &m.generate_name) {
                (Some(n), _) if !n.is_empty() => n.clone(),
                (_, Some(g)) => format!("{g}*"),
                _ => "<unnamed>".into(),
            },
            None => "<unnamed>".into(),
        }
    }

    /// `Kind namespace/name` for messages, e.g. `Pod fx-apps/web`.
    pub fn subject(&self) -> String {
        let kind = &self.kind.kind;
        match self.namespace.as_deref() {
            Some(ns) if self.kind.kind != "Namespace" => {
                format!("{kind} {ns}/{}", self.display_name())
            }
            _ => format!("{kind} {}", self.display_name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_decode_to_their_types() {
        let d = Object::from_wire(
            &Gvk::new("apps", "v1", "Deployment"),
            r#"{"metadata":{"name":"web"},"spec":{"selector":{},"template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"c","image":"nginx"}]}}}}"#,
        )
        .unwrap();
        let Object::Workload(w) = d else {
            panic!("{d:?}")
        };
        assert_eq!(w.kind, WorkloadKind::Deployment);
        assert_eq!(w.template.metadata.unwrap().labels.unwrap()["app"], "web");

        let c = Object::from_value(
            &Gvk::new("batch", "v1", "CronJob"),
            serde_json::json!({"metadata":{"name":"nightly"},"spec":{"schedule":"@daily","jobTemplate":{"spec":{"template":{"spec":{"containers":[{"name":"c","image":"busybox"}]}}}}}}),
        )
        .unwrap();
        let Object::Workload(w) = c else { panic!() };
        assert_eq!(w.kind, WorkloadKind::CronJob);
        assert_eq!(
            w.template.spec.unwrap().containers[0].image.as_deref(),
            Some("busybox")
        );

        assert_eq!(
            Object::from_wire(&Gvk::new("", "v1", "ConfigMap"), "{}").unwrap(),
            Object::Other(Gvk::new("", "v1", "ConfigMap"))
        );
        // Same kind name in another group is not ours.
        assert!(matches!(
            Object::from_wire(&Gvk::new("example.com", "v1", "Deployment"), "{}").unwrap(),
            Object::Other(_)
        ));
        assert!(Object::from_wire(&Gvk::new("", "v1", "Pod"), r#"{"spec": 3}"#).is_err());
    }

    #[test]
    fn gvk_from_api_version() {
        assert_eq!(
            Gvk::from_api_version("apps/v1", "Deployment"),
            Gvk::new("apps", "v1", "Deployment")
        );
        assert_eq!(
            Gvk::from_api_version("v1", "Pod"),
            Gvk::new("", "v1", "Pod")
        );
    }
}
