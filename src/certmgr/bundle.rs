//! Which CAs the webhooks must trust, and whether a certificate would be
//! accepted under a `caBundle` (pure).
//!
//! The bundle is the current CA plus, during a CA rotation, the previous
//! one: replicas still serving a certificate of the old CA keep being
//! trusted while the new one spreads. Acceptance is checked the way the API
//! server checks a webhook: the served chain must verify against the
//! bundle, for the Service's DNS name, at the given time.

use std::collections::BTreeSet;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

/// The `caBundle` the webhooks must carry: the current CA, then the
/// previous one if a rotation is under way, PEM, each once.
pub fn desired(current_ca_pem: &str, previous_ca_pem: Option<&str>) -> String {
    let mut out = String::new();
    let mut seen = BTreeSet::new();
    for pem in std::iter::once(current_ca_pem).chain(previous_ca_pem) {
        for der in ders(pem.as_bytes()) {
            if seen.insert(der.to_vec()) {
                out.push_str(&to_pem(&der));
            }
        }
    }
    out
}

/// The certificates (DER) in a PEM bundle; unparseable blocks are skipped.
pub fn ders(pem: &[u8]) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .collect()
}

fn to_pem(der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// Does `have` (a webhook's `caBundle`) hold exactly the certificates of
/// `want`? Order and formatting do not matter; an extra CA does, since a
/// CA left behind after a rotation is one more key that could sign for
/// palisade.
pub fn same_certificates(have: &[u8], want: &[u8]) -> bool {
    let set = |pem: &[u8]| -> BTreeSet<Vec<u8>> { ders(pem).iter().map(|d| d.to_vec()).collect() };
    let want = set(want);
    !want.is_empty() && set(have) == want
}

/// Would a client trusting only `bundle` (PEM) accept `chain` (leaf first)
/// from a server named `server_name` at unix time `now`? `Err` says why not.
pub fn accepts(
    bundle: &[u8],
    chain: &[CertificateDer<'_>],
    server_name: &str,
    now: i64,
) -> Result<(), String> {
    let mut roots = rustls::RootCertStore::empty();
    for der in ders(bundle) {
        // A block that is no usable trust anchor only narrows the bundle.
        let _ = roots.add(der);
    }
    if roots.is_empty() {
        return Err("the caBundle holds no CA certificate".into());
    }
    let Some((leaf, intermediates)) = chain.split_first() else {
        return Err("no certificate is served".into());
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| format!("cannot build a verifier: {e}"))?;
    let name = ServerName::try_from(server_name.to_owned())
        .map_err(|e| format!("invalid server name {server_name}: {e}"))?;
    let at = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
        u64::try_from(now).unwrap_or(0),
    ));
    verifier
        .verify_server_cert(leaf, intermediates, &name, &[], at)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::{CertSpec, generate_ca, issue_serving};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    const NAME: &str = "palisade.palisade-system.svc";

    fn spec() -> CertSpec {
        CertSpec {
            service: "palisade".into(),
            namespace: "palisade-system".into(),
            dns: vec![],
            ips: vec![],
            validity_days: 1,
        }
    }

    fn unix(t: SystemTime) -> i64 {
        t.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
    }

    #[test]
    fn the_bundle_holds_current_then_previous_each_once() {
        let now = SystemTime::now();
        let day = now + Duration::from_secs(86_400);
        let a = generate_ca("a", now, day).unwrap();
        let b = generate_ca("b", now, day).unwrap();
        let both = desired(&b.cert_pem, Some(&a.cert_pem));
        let got: Vec<Vec<u8>> = ders(both.as_bytes()).iter().map(|d| d.to_vec()).collect();
        let want: Vec<Vec<u8>> = [&b, &a]
            .iter()
            .map(|c| ders(c.cert_pem.as_bytes())[0].to_vec())
            .collect();
        assert_eq!(got, want);
        assert_eq!(
            desired(&a.cert_pem, Some(&a.cert_pem)),
            desired(&a.cert_pem, None)
        );
        // What we write re-reads as the same certificates, whatever the text.
        assert!(same_certificates(
            both.as_bytes(),
            format!("{}{}", a.cert_pem, b.cert_pem).as_bytes()
        ));
        assert!(
            !same_certificates(both.as_bytes(), a.cert_pem.as_bytes()),
            "an extra CA is a difference"
        );
        assert!(
            !same_certificates(b"", b""),
            "nothing wanted is never satisfied"
        );
    }

    /// Acceptance, as the API server judges a webhook's certificate.
    #[test]
    fn accepts_truth_table() {
        let now = SystemTime::now();
        let (t, day) = (unix(now), now + Duration::from_secs(86_400));
        let old_ca = generate_ca("old", now, day).unwrap();
        let new_ca = generate_ca("new", now, day).unwrap();
        let old_leaf = issue_serving(&old_ca, &spec(), now, day).unwrap();
        let new_leaf = issue_serving(&new_ca, &spec(), now, day).unwrap();
        let chain = |k: &crate::certs::KeyedCert| ders(k.cert_pem.as_bytes());
        let both = desired(&new_ca.cert_pem, Some(&old_ca.cert_pem));
        type Case<'a> = (
            &'a str,
            &'a [u8],
            Vec<CertificateDer<'static>>,
            &'a str,
            i64,
            bool,
        );
        let cases: Vec<Case> = vec![
            (
                "its own CA",
                old_ca.cert_pem.as_bytes(),
                chain(&old_leaf),
                NAME,
                t,
                true,
            ),
            (
                "another CA",
                new_ca.cert_pem.as_bytes(),
                chain(&old_leaf),
                NAME,
                t,
                false,
            ),
            (
                "old leaf, both CAs (mid-rotation)",
                both.as_bytes(),
                chain(&old_leaf),
                NAME,
                t,
                true,
            ),
            (
                "new leaf, both CAs (mid-rotation)",
                both.as_bytes(),
                chain(&new_leaf),
                NAME,
                t,
                true,
            ),
            (
                "the wrong name",
                old_ca.cert_pem.as_bytes(),
                chain(&old_leaf),
                "evil.example",
                t,
                false,
            ),
            (
                "the short Service name is in it",
                old_ca.cert_pem.as_bytes(),
                chain(&old_leaf),
                "palisade.palisade-system",
                t,
                true,
            ),
            (
                "expired",
                old_ca.cert_pem.as_bytes(),
                chain(&old_leaf),
                NAME,
                t + 2 * 86_400,
                false,
            ),
            ("empty bundle", b"", chain(&old_leaf), NAME, t, false),
            (
                "nothing served",
                old_ca.cert_pem.as_bytes(),
                vec![],
                NAME,
                t,
                false,
            ),
        ];
        for (what, bundle, chain, name, at, ok) in cases {
            let got = accepts(bundle, &chain, name, at);
            assert_eq!(got.is_ok(), ok, "{what}: {got:?}");
        }
    }
}
