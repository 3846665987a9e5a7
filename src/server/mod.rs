//! The serving shell: TLS with hot-reloaded certificates and the accept loops.

pub mod listen;
pub mod tls;
