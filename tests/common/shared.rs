//! The one way tests and benches find the shared fixtures
//! (`../shared/fixtures` beside the repository: captured AdmissionReviews,
//! connectivity and cluster-policy cases, CRDs). Included by path from
//! `tests/common`, the benches and the crate's own unit tests, so every
//! reader fails the same way, saying what to put where, when they are
//! missing.

use std::path::{Path, PathBuf};

/// The directory `sub` of the shared fixtures (`admission-reviews`,
/// `connectivity`, `cluster-policies`, `crds/network-policy-api`, or a
/// file or case inside one). `PALISADE_SHARED_FIXTURES` overrides where
/// the fixtures root is.
///
/// # Panics
///
/// When it does not exist, with a message that says where it was looked
/// for and what belongs there: a test that cannot find its data must say
/// so, not fail on a bare `NotFound` somewhere below.
pub fn shared_fixtures(sub: &str) -> PathBuf {
    let root = match std::env::var_os("PALISADE_SHARED_FIXTURES") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures"),
    };
    let path = root.join(sub);
    if !path.exists() {
        panic!(
            "the shared test fixtures are missing: {} does not exist.\n\
             palisade's tests read real captured data from a `shared/fixtures/` directory \
             checked out beside the repository (so `../shared/fixtures` from the repository \
             root), holding `admission-reviews/` (AdmissionReviews captured from a Kubernetes \
             API server), `connectivity/` and `cluster-policies/` (NetworkPolicy cases with \
             known answers) and `crds/network-policy-api/`.\n\
             Put that directory there, or set PALISADE_SHARED_FIXTURES to where it is.",
            path.display()
        );
    }
    path
}
