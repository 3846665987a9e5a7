//! palisade: a Kubernetes admission webhook that keeps every namespace fenced
//! by NetworkPolicy, labels and proxies pods the way the policies expect, and
//! simulates what a policy change opens or closes.

pub mod addresses;
pub mod admit;
pub mod audit;
pub mod certmgr;
pub mod certs;
pub mod check;
pub mod check_output;
pub mod cluster;
pub mod cluster_policy;
pub mod config;
pub mod decide;
pub mod generate;
pub mod git;
pub mod glob;
pub mod intervals;
pub mod leader;
pub mod log_field;
pub mod manifest;
pub mod mode;
pub mod netpol;
pub mod object;
pub mod patch;
pub mod ports;
pub mod posture;
pub mod prune;
pub mod reach;
pub mod review;
pub mod roles;
pub mod rule_help;
pub mod sarif;
pub mod selector;
pub mod serve;
pub mod server;
pub mod sidecar;
pub mod watch_health;

/// The shared fixtures, for unit tests: the same helper as the integration
/// tests and benches use.
#[cfg(test)]
#[path = "../tests/common/shared.rs"]
mod shared_fixtures;
