//! The thin shell around the decisions: HTTP routes, metrics and logs.

pub mod log;
pub mod metrics;
pub mod routes;
