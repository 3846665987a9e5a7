//! Reachability: which workloads can reach which, on which ports, and what
//! a policy change opens or closes (`palisade simulate`, and warnings on a
//! server-side dry-run of a NetworkPolicy).
//!
//! Pure core: plain data in, connections out; no I/O except in [`cli`].
//! Every peer and port is read through [`crate::netpol`], the semantics the
//! validating rules use, so allow-all and default-deny mean here exactly
//! what they mean there.
//!
//! - [`model`]: namespaces, workloads (summaries of their pods), policies;
//!   [`ModelBuilder`] takes typed objects from files or a live cluster.
//! - [`owners`]: which workload a user wrote, for a pod (a Deployment
//!   rather than its ReplicaSet, a CronJob rather than its Job).
//! - `intern` (private): one copy of each distinct policy body and peer.
//! - `eval` (private): which groups a peer admits, rows and columns,
//!   evaluated on demand for one computation and remembered for its life.
//! - `tiers` (private): the cluster-wide policies (AdminNetworkPolicy, ...)
//!   around NetworkPolicies, through [`crate::cluster_policy`].
//! - [`compute`]: every allowed connection ([`connections`]).
//! - [`external`]: connectivity with addresses outside the cluster.
//! - [`diff`](mod@diff): connections added, removed and changed between two models.
//! - [`drift`]: manifests applied on top of a cluster, for `simulate diff --cluster`.
//! - [`preview`](mod@preview): what one policy change opens and closes ([`preview()`]).
//! - [`tier_preview`]: the same for a cluster-wide policy ([`preview_cluster`]).
//! - [`explain`](mod@explain): allowed or denied, and which policy and rule decide.
//! - [`output`]: text, JSON, Markdown and Graphviz renderings.
//! - [`flows`], [`flow_formats`], [`flow_read`]: observed flows, their
//!   sources (the access proxy's log, Hubble, CSV/JSON) and reading them.
//! - [`resolve`](mod@resolve): a flow's ends to pods and workloads, via
//!   [`pod_ips`] (which pod holds an address).
//! - [`verify`](mod@verify): flows held against the model: gaps, unused
//!   allowances, coverage; [`narrow`]: a narrower rule from the flows seen;
//!   [`verify_output`]: its renderings.
//! - [`cli`]: `palisade simulate list | eval | diff | verify`.

#![deny(missing_docs)]

mod bits;
pub mod change;
pub mod ci_output;
pub mod cli;
pub mod compute;
pub mod conn;
pub mod diff;
pub mod drift;
mod eval;
pub mod explain;
pub mod external;
pub mod flow_formats;
pub mod flow_read;
pub mod flows;
mod intern;
pub mod model;
pub mod narrow;
pub mod output;
pub mod owners;
pub mod pod_ips;
pub mod preview;
pub mod resolve;
pub mod sources;
pub mod tier_preview;
mod tiers;
pub mod verify;
pub mod verify_output;

pub use change::{ChangeError, PolicyChange};
pub use cli::{DiffFormat, FailOn, SimulateCommand, SimulateError, VerifyFailOn, run, run_seeded};
pub use compute::connections;
pub use conn::{Change, Conn, Endpoint};
pub use diff::{Diff, diff};
pub use explain::{Explanation, Query, Side, Target, explain};
pub use external::ExtMap;
pub use model::{
    Kind, Model, ModelBuilder, ModelError, ModelStats, ObjectError, PodShape, PodSummary,
    WorkloadId,
};
pub use owners::{Intermediate, Owners};
pub use pod_ips::PodAddrs;
pub use preview::{Preview, preview};
pub use tier_preview::preview_cluster;
