//! Admission decisions: a request, the config and a view of one namespace
//! in; a [`Verdict`] out. Pure functions, no I/O: every caller (`serve`,
//! `check`, `audit`) goes through here.

pub mod cluster_policy;
pub mod mutate;
pub mod preview;
pub mod request;
pub mod validate;
pub mod verdict;

pub use cluster_policy::{is_cluster_policy, validate_cluster_policy};
pub use mutate::mutate;
pub use request::{ClusterObject, Gvk, Object, Operation, Request, User, Workload, WorkloadKind};
pub use validate::{request_namespace, validate};
pub use verdict::{Decision, RuleId, Skip, Verdict, Violation};
