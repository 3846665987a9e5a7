//! Certificate generation for `palisade certs` and `serve --demo`.
//!
//! The API server calls a webhook over HTTPS and verifies it against the
//! `caBundle` of the webhook configuration, by the Service's DNS name. So we
//! make a small private CA and a serving certificate signed by it: the CA goes
//! into `caBundle`, the serving pair into the Secret the pod mounts. Keeping
//! the CA separate from the leaf means the leaf can be re-issued without
//! touching the webhook configuration as long as the CA is kept.

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// Common name of the generated CA.
pub const CA_COMMON_NAME: &str = "palisade CA";

/// File name of the CA certificate written by [`CertBundle::write_to`].
pub const CA_FILE: &str = "ca.crt";
/// File name of the serving certificate written by [`CertBundle::write_to`].
pub const CERT_FILE: &str = "tls.crt";
/// File name of the serving key written by [`CertBundle::write_to`].
pub const KEY_FILE: &str = "tls.key";

/// Clocks in a cluster drift; a certificate that starts "now" can be rejected
/// by an API server whose clock runs a little behind ours.
const BACKDATE: Duration = Duration::from_secs(60 * 60);

/// What the serving certificate must be valid for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSpec {
    /// Name of the Service in front of the webhook.
    pub service: String,
    /// Namespace of that Service.
    pub namespace: String,
    /// Extra DNS names (e.g. `localhost` for a local run).
    pub dns: Vec<String>,
    /// Extra IP addresses (e.g. `127.0.0.1` for a webhook called by URL).
    pub ips: Vec<IpAddr>,
    /// How long the CA and the serving certificate are valid, in days.
    pub validity_days: u32,
}

impl CertSpec {
    /// Every DNS name the serving certificate carries: the forms under which a
    /// Service is reachable in-cluster, then the extra names, each once, in
    /// that order (so the output is stable and readable).
    pub fn dns_names(&self) -> Vec<String> {
        let svc = &self.service;
        let ns = &self.namespace;
        let mut names: Vec<String> = Vec::with_capacity(4 + self.dns.len());
        let candidates = [
            svc.clone(),
            format!("{svc}.{ns}"),
            format!("{svc}.{ns}.svc"),
            format!("{svc}.{ns}.svc.cluster.local"),
        ];
        for name in candidates.into_iter().chain(self.dns.iter().cloned()) {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names
    }
}

/// A freshly generated CA and serving pair, all PEM.
#[derive(Clone)]
pub struct CertBundle {
    /// The CA certificate; goes into the webhook configuration's `caBundle`.
    pub ca_pem: String,
    /// The serving certificate (leaf only).
    pub cert_pem: String,
    /// The serving certificate's private key (PKCS#8).
    pub key_pem: String,
}

impl std::fmt::Debug for CertBundle {
    // The key must never end up in a log line by accident.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertBundle")
            .field("ca_pem", &self.ca_pem)
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// Why certificate generation or writing failed.
#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    /// The spec cannot produce a usable certificate.
    #[error("invalid certificate spec: {0}")]
    InvalidSpec(String),
    /// A DNS name is not acceptable in a certificate (e.g. not ASCII).
    #[error("invalid DNS name {name:?} for the certificate: {source}")]
    InvalidName {
        /// The offending name.
        name: String,
        /// What rcgen said about it.
        #[source]
        source: rcgen::Error,
    },
    /// Key generation or signing failed.
    #[error("{step}: {source}")]
    Generate {
        /// Which step failed.
        step: &'static str,
        /// What rcgen said.
        #[source]
        source: rcgen::Error,
    },
    /// A file system operation failed.
    #[error("{step} {}: {source}", path.display())]
    Io {
        /// Which operation failed.
        step: &'static str,
        /// The path it was applied to.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

fn gen_err(step: &'static str) -> impl FnOnce(rcgen::Error) -> CertsError {
    move |source| CertsError::Generate { step, source }
}

/// Generates a CA (CN [`CA_COMMON_NAME`]) and a serving certificate signed by
/// it, valid for [`CertSpec::dns_names`] and [`CertSpec::ips`].
pub fn generate(spec: &CertSpec) -> Result<CertBundle, CertsError> {
    if spec.validity_days == 0 {
        return Err(CertsError::InvalidSpec(
            "validity must be at least one day".into(),
        ));
    }
    let now = SystemTime::now();
    let lifetime = Duration::from_secs(u64::from(spec.validity_days) * 24 * 60 * 60);
    let not_after = now
        .checked_add(lifetime)
        .ok_or_else(|| CertsError::InvalidSpec("validity is too long".into()))?;
    check_names(spec)?;
    let ca = generate_ca(CA_COMMON_NAME, now, not_after)?;
    let serving = issue_serving(&ca, spec, now, not_after)?;
    Ok(CertBundle {
        ca_pem: ca.cert_pem,
        cert_pem: serving.cert_pem,
        key_pem: serving.key_pem,
    })
}

/// A certificate and its private key, both PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyedCert {
    /// The certificate.
    pub cert_pem: String,
    /// Its private key (PKCS#8).
    pub key_pem: String,
}

impl std::fmt::Debug for KeyedCert {
    // The key must never end up in a log line by accident.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedCert")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

fn check_names(spec: &CertSpec) -> Result<(), CertsError> {
    if spec.service.trim().is_empty() {
        return Err(CertsError::InvalidSpec("service name is empty".into()));
    }
    if spec.namespace.trim().is_empty() {
        return Err(CertsError::InvalidSpec("namespace is empty".into()));
    }
    Ok(())
}

/// A CA named `common_name`, valid from an hour before `now` (clocks in a
/// cluster drift) until `not_after`, that may sign leaves only.
pub fn generate_ca(
    common_name: &str,
    now: SystemTime,
    not_after: SystemTime,
) -> Result<KeyedCert, CertsError> {
    let mut ca_params = CertificateParams::default();
    ca_params.distinguished_name = name_with_cn(common_name);
    // Path length 0: this CA may sign leaves only, never another CA, so a
    // stolen serving key cannot be turned into a signer.
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params.not_before = now.checked_sub(BACKDATE).unwrap_or(now).into();
    ca_params.not_after = not_after.into();
    let ca_key = KeyPair::generate().map_err(gen_err("generating the CA key"))?;
    let ca = CertifiedIssuer::self_signed(ca_params, &ca_key)
        .map_err(gen_err("self-signing the CA certificate"))?;
    Ok(KeyedCert {
        cert_pem: ca.pem(),
        key_pem: ca_key.serialize_pem(),
    })
}

/// A serving certificate for `spec`'s names, signed by `ca`, valid from an
/// hour before `now` until `not_after`.
pub fn issue_serving(
    ca: &KeyedCert,
    spec: &CertSpec,
    now: SystemTime,
    not_after: SystemTime,
) -> Result<KeyedCert, CertsError> {
    check_names(spec)?;
    let ca_key = KeyPair::from_pem(&ca.key_pem).map_err(gen_err("reading the CA key"))?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, &ca_key)
        .map_err(gen_err("reading the CA certificate"))?;
    let dns_names = spec.dns_names();
    let mut leaf_params = CertificateParams::default();
    let common_name = format!("{}.{}.svc", spec.service, spec.namespace);
    leaf_params.distinguished_name = name_with_cn(&common_name);
    leaf_params.subject_alt_names = dns_names
        .iter()
        .map(|name| {
            name.clone()
                .try_into()
                .map(SanType::DnsName)
                .map_err(|source| CertsError::InvalidName {
                    name: name.clone(),
                    source,
                })
        })
        .chain(spec.ips.iter().map(|ip| Ok(SanType::IpAddress(*ip))))
        .collect::<Result<_, _>>()?;
    leaf_params.is_ca = IsCa::ExplicitNoCa;
    leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf_params.use_authority_key_identifier_extension = true;
    leaf_params.not_before = now.checked_sub(BACKDATE).unwrap_or(now).into();
    leaf_params.not_after = not_after.into();
    let leaf_key = KeyPair::generate().map_err(gen_err("generating the serving key"))?;
    let leaf = leaf_params
        .signed_by(&leaf_key, &issuer)
        .map_err(gen_err("signing the serving certificate"))?;
    Ok(KeyedCert {
        cert_pem: leaf.pem(),
        key_pem: leaf_key.serialize_pem(),
    })
}

fn name_with_cn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

impl CertBundle {
    /// Writes `ca.crt`, `tls.crt` and `tls.key` into `dir` (created if
    /// missing). Each file is written to a temporary name and renamed into
    /// place, so a server watching the directory never reads half a file. The
    /// key is written last-but-one and the certificate last, so a watcher sees
    /// at most one short-lived mismatched pair, which it rejects and retries.
    pub fn write_to(&self, dir: &Path) -> Result<(), CertsError> {
        fs::create_dir_all(dir).map_err(|source| CertsError::Io {
            step: "creating directory",
            path: dir.to_path_buf(),
            source,
        })?;
        write_atomic(&dir.join(CA_FILE), self.ca_pem.as_bytes(), false)?;
        write_atomic(&dir.join(KEY_FILE), self.key_pem.as_bytes(), true)?;
        write_atomic(&dir.join(CERT_FILE), self.cert_pem.as_bytes(), false)?;
        // Make the renames durable; failure here loses nothing that was
        // visible, so it is not worth failing the command over.
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// The CA certificate, base64-encoded, as a webhook configuration's
    /// `caBundle` expects it.
    pub fn ca_bundle_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.ca_pem.as_bytes())
    }
}

/// Writes `contents` to `path` via a temporary file in the same directory
/// (a rename is only atomic within one file system).
fn write_atomic(path: &Path, contents: &[u8], secret: bool) -> Result<(), CertsError> {
    let io_err = |step: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| CertsError::Io { step, path, source }
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.tmp-{}", std::process::id()));

    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(if secret { 0o600 } else { 0o644 });
    }
    let mut file = options.open(&tmp).map_err(io_err("creating", &tmp))?;
    // `mode` only applies when the file is created; a leftover temporary
    // file from a crashed run keeps its old mode, so set it explicitly
    // before the key bytes go in.
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::PermissionsExt as _;
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(io_err("setting permissions on", &tmp))?;
    }
    #[cfg(not(unix))]
    let _ = secret;
    file.write_all(contents).map_err(io_err("writing", &tmp))?;
    file.sync_all().map_err(io_err("syncing", &tmp))?;
    drop(file);
    fs::rename(&tmp, path).map_err(|source| {
        let _ = fs::remove_file(&tmp);
        CertsError::Io {
            step: "renaming into place",
            path: path.to_path_buf(),
            source,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> CertSpec {
        CertSpec {
            service: "palisade".into(),
            namespace: "palisade-system".into(),
            dns: vec![
                "localhost".into(),
                "palisade.palisade-system.svc".into(),
                "localhost".into(),
            ],
            ips: vec!["127.0.0.1".parse().unwrap()],
            validity_days: 30,
        }
    }

    #[test]
    fn dns_names_are_service_forms_then_extras_without_duplicates() {
        assert_eq!(
            spec().dns_names(),
            vec![
                "palisade",
                "palisade.palisade-system",
                "palisade.palisade-system.svc",
                "palisade.palisade-system.svc.cluster.local",
                "localhost",
            ]
        );
    }

    #[test]
    fn generate_produces_pem_for_ca_cert_and_key() {
        let b = generate(&spec()).unwrap();
        assert!(b.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(b.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(b.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert_ne!(b.ca_pem, b.cert_pem);
        assert!(!format!("{b:?}").contains("PRIVATE KEY"));
    }

    #[test]
    fn generated_certificates_carry_the_requested_attributes() {
        use rustls_pki_types::{CertificateDer, pem::PemObject};
        use x509_parser::prelude::*;

        let b = generate(&spec()).unwrap();
        let ca_der = CertificateDer::from_pem_slice(b.ca_pem.as_bytes()).unwrap();
        let leaf_der = CertificateDer::from_pem_slice(b.cert_pem.as_bytes()).unwrap();
        let (_, ca) = parse_x509_certificate(&ca_der).unwrap();
        let (_, leaf) = parse_x509_certificate(&leaf_der).unwrap();

        assert_eq!(
            ca.subject()
                .iter_common_name()
                .next()
                .unwrap()
                .as_str()
                .unwrap(),
            CA_COMMON_NAME
        );
        assert!(ca.is_ca());
        assert!(!leaf.is_ca());
        assert_eq!(leaf.issuer(), ca.subject());

        let eku = leaf.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth);

        let san = leaf.subject_alternative_name().unwrap().unwrap().value;
        let mut dns = Vec::new();
        let mut ips = Vec::new();
        for name in &san.general_names {
            match name {
                GeneralName::DNSName(d) => dns.push(d.to_string()),
                GeneralName::IPAddress(ip) => ips.push(ip.to_vec()),
                other => panic!("unexpected SAN {other:?}"),
            }
        }
        assert_eq!(dns, spec().dns_names());
        assert_eq!(ips, vec![vec![127, 0, 0, 1]]);

        let days = (leaf.validity().not_after.timestamp() - leaf.validity().not_before.timestamp())
            / 86_400;
        assert_eq!(days, 30, "30 days plus the one-hour backdate");
    }

    #[test]
    fn generate_rejects_an_unusable_spec() {
        let mut s = spec();
        s.validity_days = 0;
        assert!(matches!(generate(&s), Err(CertsError::InvalidSpec(_))));
        let mut s = spec();
        s.namespace = " ".into();
        assert!(matches!(generate(&s), Err(CertsError::InvalidSpec(_))));
        let mut s = spec();
        s.dns = vec!["bücher.example".into()];
        let err = generate(&s).unwrap_err();
        assert!(err.to_string().contains("bücher.example"), "{err}");
    }

    #[test]
    fn write_to_creates_the_directory_and_all_three_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("nested").join("certs");
        let b = generate(&spec()).unwrap();
        b.write_to(&dir).unwrap();
        assert_eq!(fs::read_to_string(dir.join(CA_FILE)).unwrap(), b.ca_pem);
        assert_eq!(fs::read_to_string(dir.join(CERT_FILE)).unwrap(), b.cert_pem);
        assert_eq!(fs::read_to_string(dir.join(KEY_FILE)).unwrap(), b.key_pem);
        let leftovers: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(dir.join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }

        // Writing again replaces the files in place.
        let b2 = generate(&spec()).unwrap();
        b2.write_to(&dir).unwrap();
        assert_eq!(fs::read_to_string(dir.join(CA_FILE)).unwrap(), b2.ca_pem);
    }

    #[test]
    fn write_to_names_the_path_that_failed() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("not-a-dir");
        fs::write(&file, "x").unwrap();
        let err = generate(&spec())
            .unwrap()
            .write_to(&file.join("sub"))
            .unwrap_err();
        assert!(err.to_string().contains("not-a-dir"), "{err}");
    }

    #[test]
    fn ca_bundle_is_base64_of_the_ca_pem() {
        let b = generate(&spec()).unwrap();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(b.ca_bundle_base64())
            .unwrap();
        assert_eq!(decoded, b.ca_pem.as_bytes());
    }
}
