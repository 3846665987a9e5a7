//! The mutating webhook: the owned role label and the access-proxy sidecar.

use super::request::Request;
use super::validate::{governing_mode, request_namespace};
use super::verdict::{Skip, Verdict};
use crate::cluster::NamespaceView;
use crate::config::Config;

/// Decides a request for the mutating webhook.
pub fn mutate(cfg: &Config, req: &Request, view: &NamespaceView) -> Verdict {
    let Some(ns) = request_namespace(req) else {
        return Verdict::skip(cfg.mode, Skip::NotCovered);
    };
    let mode = governing_mode(cfg, req, &ns, view);
    Verdict::skip(mode, Skip::NotCovered)
}
