//! The serving shell: TLS with hot-reloaded certificates and the accept loops.

pub mod tls;
