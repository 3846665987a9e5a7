//! The certificate Secret's contents, read into what the plan needs (pure:
//! bytes and a clock in, facts out), and written back.
//!
//! Keys of the Secret (type Opaque, so it may start empty):
//! `ca.crt`/`ca.key` the CA that signs, `ca-previous.crt` the CA being
//! rotated out (only during a rotation), `tls.crt`/`tls.key` what every
//! replica serves. Annotations: `palisade.io/serving-issued-at` (unix
//! seconds, written with `tls.crt`) and `palisade.io/rotate` (`serving` or
//! `ca`, set by an operator to force a rotation; removed once done).

use std::collections::BTreeMap;

use rustls_pki_types::CertificateDer;

use super::bundle;
use super::plan::{Facts, Force, Serving};
use crate::certs::KeyedCert;

/// The CA certificate that signs serving certificates.
pub const CA_CERT: &str = "ca.crt";
/// Its private key.
pub const CA_KEY: &str = "ca.key";
/// The CA being rotated out, still trusted until the rotation completes.
pub const PREVIOUS_CA_CERT: &str = "ca-previous.crt";
/// The serving certificate.
pub const TLS_CERT: &str = "tls.crt";
/// Its private key.
pub const TLS_KEY: &str = "tls.key";
/// When `tls.crt` was written, unix seconds.
pub const ISSUED_AT_ANNOTATION: &str = "palisade.io/serving-issued-at";
/// An operator's request: `serving` or `ca`.
pub const ROTATE_ANNOTATION: &str = "palisade.io/rotate";

/// The Secret, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Material {
    /// The current CA, when its certificate and key are usable.
    pub ca: Option<KeyedCert>,
    ca_not_after: Option<i64>,
    /// The previous CA's certificate, during a rotation.
    pub previous_ca: Option<String>,
    previous_ca_not_after: Option<i64>,
    /// The serving certificate as judged at read time.
    pub serving: Serving,
    /// The operator's request.
    pub force: Option<Force>,
    /// An unknown `palisade.io/rotate` value, to be reported.
    pub bad_force: Option<String>,
}

fn text(data: &BTreeMap<String, Vec<u8>>, key: &str) -> Option<String> {
    data.get(key)
        .filter(|b| !b.is_empty())
        .map(|b| String::from_utf8_lossy(b).into_owned())
}

fn not_after(der: &[u8]) -> Option<i64> {
    x509_parser::parse_x509_certificate(der)
        .ok()
        .map(|(_, c)| c.validity().not_after.timestamp())
}

/// A CA whose key belongs to its certificate and which is valid at `now`.
fn usable_ca(cert_pem: &str, key_pem: &str, now: i64) -> Result<i64, String> {
    let der = bundle::ders(cert_pem.as_bytes())
        .into_iter()
        .next()
        .ok_or("ca.crt holds no certificate")?;
    let (_, cert) =
        x509_parser::parse_x509_certificate(&der).map_err(|e| format!("ca.crt: {e}"))?;
    let key = rcgen::KeyPair::from_pem(key_pem).map_err(|e| format!("ca.key: {e}"))?;
    if cert.public_key().raw != rcgen::PublicKeyData::subject_public_key_info(&key).as_slice() {
        return Err("ca.key does not belong to ca.crt".into());
    }
    if !cert.is_ca() {
        return Err("ca.crt is not a CA".into());
    }
    let (from, to) = (
        cert.validity().not_before.timestamp(),
        cert.validity().not_after.timestamp(),
    );
    if now < from || now >= to {
        return Err("ca.crt is not valid now".into());
    }
    Ok(to)
}

impl Material {
    /// Reads a Secret's data and annotations; `server_name` is the name the
    /// API server calls (the Service's `NAME.NAMESPACE.svc`).
    pub fn read(
        data: &BTreeMap<String, Vec<u8>>,
        annotations: &BTreeMap<String, String>,
        server_name: &str,
        now: i64,
    ) -> Self {
        let (mut ca, mut ca_not_after) = (None, None);
        if let (Some(cert_pem), Some(key_pem)) = (text(data, CA_CERT), text(data, CA_KEY)) {
            match usable_ca(&cert_pem, &key_pem, now) {
                Ok(t) => {
                    ca_not_after = Some(t);
                    ca = Some(KeyedCert { cert_pem, key_pem });
                }
                Err(e) => tracing::warn!(error = %e, "the certificate Secret's CA is unusable"),
            }
        }
        let previous_ca = text(data, PREVIOUS_CA_CERT);
        let previous_ca_not_after = previous_ca
            .as_deref()
            .and_then(|p| {
                bundle::ders(p.as_bytes())
                    .first()
                    .and_then(|d| not_after(d))
            })
            // Unreadable: treat as already expired, so it is dropped.
            .or(previous_ca.as_ref().map(|_| i64::MIN));
        let issued_at = annotations
            .get(ISSUED_AT_ANNOTATION)
            .and_then(|v| v.trim().parse::<i64>().ok());
        let serving = judge_serving(
            data,
            ca.as_ref().map(|c| c.cert_pem.as_str()),
            previous_ca.as_deref(),
            issued_at,
            server_name,
            now,
        );
        let raw_force = annotations
            .get(ROTATE_ANNOTATION)
            .map(|v| v.trim().to_owned());
        let force = match raw_force.as_deref() {
            Some("serving") => Some(Force::Serving),
            Some("ca") => Some(Force::Ca),
            _ => None,
        };
        let bad_force = raw_force.filter(|_| force.is_none());
        Material {
            ca,
            ca_not_after,
            previous_ca,
            previous_ca_not_after,
            serving,
            force,
            bad_force,
        }
    }

    /// The facts the plan needs.
    pub fn facts(&self, now: i64, webhooks_trusted_since: Option<i64>) -> Facts {
        Facts {
            now,
            ca_not_after: self.ca_not_after,
            previous_ca_not_after: self.previous_ca_not_after,
            serving: self.serving.clone(),
            force: self.force,
            webhooks_trusted_since,
        }
    }

    /// The `caBundle` the webhooks must carry; `None` without a usable CA.
    pub fn bundle(&self) -> Option<String> {
        self.ca
            .as_ref()
            .map(|ca| bundle::desired(&ca.cert_pem, self.previous_ca.as_deref()))
    }
}

fn judge_serving(
    data: &BTreeMap<String, Vec<u8>>,
    ca: Option<&str>,
    previous: Option<&str>,
    issued_at: Option<i64>,
    server_name: &str,
    now: i64,
) -> Serving {
    let (Some(cert_pem), Some(key_pem)) = (text(data, TLS_CERT), text(data, TLS_KEY)) else {
        return Serving::Missing;
    };
    let parsed = match crate::server::tls::parse_pem_pair(
        std::path::Path::new(TLS_CERT),
        cert_pem.as_bytes(),
        std::path::Path::new(TLS_KEY),
        key_pem.as_bytes(),
    ) {
        Ok(p) => p,
        Err(e) => return Serving::Unusable(e.to_string()),
    };
    let chain: &[CertificateDer<'static>] = &parsed.cert_chain;
    let Some(not_after) = chain.first().and_then(|d| not_after(d)) else {
        return Serving::Unusable("tls.crt cannot be read".into());
    };
    let under = |ca: Option<&str>| {
        ca.map_or(Err("no CA".to_owned()), |pem| {
            bundle::accepts(pem.as_bytes(), chain, server_name, now)
        })
    };
    match (under(ca), under(previous)) {
        (Ok(()), _) => Serving::Valid {
            not_after,
            issued_at,
            by_current_ca: true,
        },
        (Err(_), Ok(())) => Serving::Valid {
            not_after,
            issued_at,
            by_current_ca: false,
        },
        (Err(e), Err(_)) => Serving::Unusable(format!("not accepted for {server_name}: {e}")),
    }
}

/// The Secret data for `ca`, `previous` and `serving`, as written.
pub fn data(
    ca: &KeyedCert,
    previous: Option<&str>,
    serving: &KeyedCert,
) -> BTreeMap<String, Vec<u8>> {
    let mut d = BTreeMap::new();
    d.insert(CA_CERT.into(), ca.cert_pem.clone().into_bytes());
    d.insert(CA_KEY.into(), ca.key_pem.clone().into_bytes());
    if let Some(p) = previous {
        d.insert(PREVIOUS_CA_CERT.into(), p.as_bytes().to_vec());
    }
    d.insert(TLS_CERT.into(), serving.cert_pem.clone().into_bytes());
    d.insert(TLS_KEY.into(), serving.key_pem.clone().into_bytes());
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::{CertSpec, generate_ca, issue_serving};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    const NAME: &str = "palisade.palisade-system.svc";

    fn spec(namespace: &str) -> CertSpec {
        CertSpec {
            service: "palisade".into(),
            namespace: namespace.into(),
            dns: vec![],
            ips: vec![],
            validity_days: 1,
        }
    }

    fn now() -> (SystemTime, i64) {
        let t = SystemTime::now();
        (t, t.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64)
    }

    fn read(d: &BTreeMap<String, Vec<u8>>, a: &[(&str, &str)], at: i64) -> Material {
        let a = a
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Material::read(d, &a, NAME, at)
    }

    /// What a Secret's contents say, case by case.
    #[test]
    fn reading_the_secret() {
        let (t, unix) = now();
        let year = t + Duration::from_secs(365 * 86_400);
        let ca = generate_ca("palisade CA", t, year).unwrap();
        let other = generate_ca("palisade CA", t, year).unwrap();
        let leaf = issue_serving(&ca, &spec("palisade-system"), t, year).unwrap();
        let wrong_name = issue_serving(&ca, &spec("elsewhere"), t, year).unwrap();
        let by_other = issue_serving(&other, &spec("palisade-system"), t, year).unwrap();

        let empty = read(&BTreeMap::new(), &[], unix);
        assert_eq!(
            (empty.ca.is_none(), &empty.serving),
            (true, &Serving::Missing)
        );
        assert_eq!(empty.bundle(), None);

        let good = read(
            &data(&ca, None, &leaf),
            &[(ISSUED_AT_ANNOTATION, "42")],
            unix,
        );
        assert!(matches!(
            good.serving,
            Serving::Valid {
                by_current_ca: true,
                issued_at: Some(42),
                ..
            }
        ));
        assert_eq!(good.bundle(), Some(bundle::desired(&ca.cert_pem, None)));
        let f = good.facts(unix, None);
        assert!(f.ca_not_after.is_some_and(|n| n > unix) && f.previous_ca_not_after.is_none());

        // Mid-rotation: new CA current, the leaf still from the previous one.
        let mid = read(&data(&other, Some(&ca.cert_pem), &leaf), &[], unix);
        assert!(matches!(
            mid.serving,
            Serving::Valid {
                by_current_ca: false,
                ..
            }
        ));
        assert_eq!(
            mid.bundle(),
            Some(bundle::desired(&other.cert_pem, Some(&ca.cert_pem)))
        );

        for (what, d) in [
            ("wrong name", data(&ca, None, &wrong_name)),
            ("another CA's leaf", data(&ca, None, &by_other)),
            ("mismatched key", {
                let mut d = data(&ca, None, &leaf);
                d.insert(TLS_KEY.into(), by_other.key_pem.clone().into_bytes());
                d
            }),
        ] {
            let m = read(&d, &[], unix);
            assert!(
                matches!(m.serving, Serving::Unusable(_)),
                "{what}: {:?}",
                m.serving
            );
            assert!(m.ca.is_some(), "{what}: the CA is still fine");
        }

        let mut d = data(&ca, None, &leaf);
        d.insert(CA_KEY.into(), other.key_pem.clone().into_bytes());
        assert!(read(&d, &[], unix).ca.is_none(), "a CA key of another CA");
        let m = read(&data(&ca, None, &leaf), &[], unix + 2 * 365 * 86_400);
        assert!(m.ca.is_none(), "an expired CA");

        let mut d = data(&ca, None, &leaf);
        d.insert(PREVIOUS_CA_CERT.into(), b"garbage".to_vec());
        let m = read(&d, &[], unix);
        assert_eq!(
            m.facts(unix, None).previous_ca_not_after,
            Some(i64::MIN),
            "unreadable: drop it"
        );
    }

    #[test]
    fn the_rotate_annotation() {
        let (_, unix) = now();
        let d = BTreeMap::new();
        for (value, force, bad) in [
            ("serving", Some(Force::Serving), None),
            (" ca ", Some(Force::Ca), None),
            ("yes", None, Some("yes")),
        ] {
            let m = read(&d, &[(ROTATE_ANNOTATION, value)], unix);
            assert_eq!((m.force, m.bad_force.as_deref()), (force, bad), "{value}");
        }
        assert_eq!(read(&d, &[], unix).force, None);
    }
}
