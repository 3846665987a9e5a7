//! palisade: a Kubernetes admission webhook that keeps every namespace fenced
//! by NetworkPolicy, labels and proxies pods the way the policies expect, and
//! simulates what a policy change opens or closes.

pub mod certs;
pub mod server;
