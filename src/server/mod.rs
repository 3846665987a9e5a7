//! The thin shell around the decisions: TLS with hot-reloaded certificates,
//! accept loops, HTTP routes, metrics and logs.

pub mod json_line;
pub mod listen;
pub mod log;
pub mod log_queue;
pub mod metrics;
pub mod routes;
pub mod tls;
