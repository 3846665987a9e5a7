//! Serving certificates that follow their files without a restart.
//!
//! cert-manager, a rotation job or the kubelet (for a Secret volume) replace
//! `tls.crt`/`tls.key` under a running pod. [`CertReloader`] is the rustls
//! certificate resolver: every handshake takes the current key from an
//! [`ArcSwap`], and a watcher swaps in a new one when the files change and the
//! new pair is valid. A bad or half-written pair never replaces a good one.

use std::collections::hash_map::DefaultHasher;
use std::fmt;
use std::hash::{Hash as _, Hasher as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use notify::Watcher as _;
use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::mpsc;

/// ALPN protocols offered, in order of preference: the API server speaks
/// HTTP/2 when it can, and HTTP/1.1 keeps curl and older clients working.
pub const ALPN_PROTOCOLS: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Events come in bursts (a Secret update is several renames and a symlink
/// swap); wait this long after the first one so we read the finished state.
const DEBOUNCE: Duration = Duration::from_millis(100);

/// Floor for the poll interval: a zero interval would make tokio panic, and
/// anything shorter only burns CPU re-reading unchanged files.
const MIN_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Why the certificate or key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file could not be read (missing, unreadable, a dangling symlink).
    #[error("cannot read {what} file {}: {source}", path.display())]
    Read {
        /// "certificate" or "private key".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid PEM.
    #[error("{what} file {} is not valid PEM: {source}", path.display())]
    Pem {
        /// "certificate" or "private key".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What the PEM parser said.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// The certificate file holds no `CERTIFICATE` block.
    #[error("no certificate found in {}", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The key file holds no private key block.
    #[error("no private key found in {}", path.display())]
    NoPrivateKey {
        /// The file.
        path: PathBuf,
    },
    /// The key is of a type the ring provider cannot sign with.
    #[error("unsupported private key in {}: {source}", path.display())]
    UnsupportedKey {
        /// The file.
        path: PathBuf,
        /// What rustls said.
        #[source]
        source: rustls::Error,
    },
    /// The leaf certificate cannot be parsed.
    #[error("invalid certificate in {}: {source}", path.display())]
    InvalidCertificate {
        /// The file.
        path: PathBuf,
        /// What rustls said.
        #[source]
        source: rustls::Error,
    },
    /// The key is not the one the certificate was issued for.
    #[error("private key {} does not match certificate {}", key.display(), cert.display())]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// rustls refused the server configuration.
    #[error("building the TLS server configuration: {0}")]
    Config(#[source] rustls::Error),
}

/// The certificate every handshake is answered with, swapped whole when a
/// new valid pair arrives (from files or from the certificate Secret). It
/// may start empty: until a pair is installed, handshakes fail and the
/// server is not ready.
pub struct ServingCert {
    current: ArcSwapOption<CertifiedKey>,
    /// Also serialises installs: two sources firing together could
    /// otherwise record one pair's hash next to another pair's key.
    state: Mutex<Option<LoadedState>>,
}

#[derive(Debug, Clone, Copy)]
struct LoadedState {
    hash: u64,
    not_after: Option<i64>,
}

/// One successfully parsed pair.
pub struct ParsedPair {
    /// The certificate chain, leaf first.
    pub cert_chain: Vec<CertificateDer<'static>>,
    key: CertifiedKey,
    not_after: Option<i64>,
}

impl fmt::Debug for ServingCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServingCert")
            .field("not_after", &self.not_after())
            .finish_non_exhaustive()
    }
}

impl ServingCert {
    /// Nothing to serve yet.
    pub fn empty() -> Arc<Self> {
        Arc::new(ServingCert {
            current: ArcSwapOption::empty(),
            state: Mutex::new(None),
        })
    }

    /// Installs the pair if its content differs from what is served and it
    /// parses and matches; the labels name where each part came from in
    /// errors. `Ok(true)`: now served; `Ok(false)`: unchanged; `Err`: the
    /// previous pair (if any) is still served.
    pub fn install_pem(
        &self,
        cert_label: &Path,
        cert_pem: &[u8],
        key_label: &Path,
        key_pem: &[u8],
    ) -> Result<bool, TlsError> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let hash = content_hash(cert_pem, key_pem);
        if state.is_some_and(|s| s.hash == hash) {
            return Ok(false);
        }
        let parsed = parse_pem_pair(cert_label, cert_pem, key_label, key_pem)?;
        self.current.store(Some(Arc::new(parsed.key)));
        *state = Some(LoadedState {
            hash,
            not_after: parsed.not_after,
        });
        Ok(true)
    }

    /// The served leaf's notAfter in unix seconds; `None` before a pair is
    /// installed or if it could not be read from the certificate.
    pub fn not_after(&self) -> Option<i64> {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .and_then(|s| s.not_after)
    }

    /// The served chain, leaf first; empty before a pair is installed.
    pub fn chain(&self) -> Vec<CertificateDer<'static>> {
        self.current
            .load_full()
            .map(|k| k.cert.clone())
            .unwrap_or_default()
    }

    /// A rustls server configuration that resolves certificates through
    /// this holder, offering HTTP/2 and HTTP/1.1 by ALPN.
    ///
    /// The ring provider is named explicitly rather than taken from the
    /// process default, so the server never depends on which provider some
    /// other crate installed (see CRATES.md pitfall 1).
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<ServerConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for ServingCert {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.load_full()
    }
}

/// A certificate resolver that re-reads its files when they change.
pub struct CertReloader {
    cert_path: PathBuf,
    key_path: PathBuf,
    serving: Arc<ServingCert>,
}

impl fmt::Debug for CertReloader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertReloader")
            .field("cert_path", &self.cert_path)
            .field("key_path", &self.key_path)
            .field("not_after", &self.not_after())
            .finish_non_exhaustive()
    }
}

impl CertReloader {
    /// Loads the certificate chain (leaf first) and its private key.
    ///
    /// Fails with an error naming the file when either is missing, holds no
    /// PEM block of the right kind, or when the key does not belong to the
    /// certificate.
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<Self>, TlsError> {
        let serving = ServingCert::empty();
        let (cert_pem, key_pem) = read_files(cert, key)?;
        serving.install_pem(cert, &cert_pem, key, &key_pem)?;
        Ok(Arc::new(Self {
            cert_path: cert.to_path_buf(),
            key_path: key.to_path_buf(),
            serving,
        }))
    }

    /// What the server presents.
    pub fn serving(&self) -> &Arc<ServingCert> {
        &self.serving
    }

    /// The certificate file this resolver follows.
    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    /// The key file this resolver follows.
    pub fn key_path(&self) -> &Path {
        &self.key_path
    }

    /// Re-reads both files and swaps in the new pair when their content
    /// changed and both parse and match.
    ///
    /// Returns `Ok(true)` when a new pair is now served, `Ok(false)` when the
    /// files are unchanged, and an error (with the old pair still served)
    /// when the new content is unusable, e.g. half-written.
    pub fn reload(&self) -> Result<bool, TlsError> {
        let (cert_pem, key_pem) = read_files(&self.cert_path, &self.key_path)?;
        self.serving
            .install_pem(&self.cert_path, &cert_pem, &self.key_path, &key_pem)
    }

    /// The served leaf's notAfter in unix seconds, for an expiry metric; `None`
    /// if it could not be read from the certificate.
    pub fn not_after(&self) -> Option<i64> {
        self.serving.not_after()
    }

    /// A rustls server configuration that serves this reloader's pair (see
    /// [`ServingCert::server_config`]).
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<ServerConfig>, TlsError> {
        self.serving.server_config()
    }

    /// Follows the files until the returned task is aborted.
    ///
    /// Watches the directories that hold the files (Kubernetes updates a
    /// Secret volume by swapping a `..data` symlink there, which a watch on
    /// the file itself would miss), and also re-reads every `interval`
    /// because change events are not delivered on every file system (NFS,
    /// some overlay setups) and a watch can be lost when its directory is
    /// replaced. Reads are cheap: an unchanged hash is a no-op. `interval`
    /// is raised to 100 ms if shorter.
    pub fn spawn_watcher(self: Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        let interval = interval.max(MIN_POLL_INTERVAL);
        // Capacity 1: one pending "something changed" is as good as many.
        let (tx, mut rx) = mpsc::channel::<()>(1);
        // Registered before returning, not inside the task: a change made
        // right after this call must not slip in before the watch exists.
        let watcher = match self.watch_dirs(tx) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    interval_ms = interval.as_millis() as u64,
                    "cannot watch the certificate directory; falling back to polling"
                );
                None
            }
        };
        tokio::spawn(async move {
            // Owned by the task: dropping it would end the watch.
            let watcher = watcher;
            let mut events_open = watcher.is_some();
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last_error: Option<String> = None;
            // The first tick is immediate, so the loop starts with a reload:
            // it catches a change made between `load` and the watch above.
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    event = rx.recv(), if events_open => {
                        if event.is_none() {
                            events_open = false;
                            continue;
                        }
                        tokio::time::sleep(DEBOUNCE).await;
                        while rx.try_recv().is_ok() {}
                    }
                }
                // File reads block; keep them off the runtime's few worker
                // threads in case the volume is slow (a network file system).
                let this = Arc::clone(&self);
                match tokio::task::spawn_blocking(move || this.reload()).await {
                    Ok(outcome) => self.log_reload(outcome, &mut last_error),
                    Err(e) => tracing::error!(error = %e, "certificate reload task failed"),
                }
            }
        })
    }

    fn log_reload(&self, outcome: Result<bool, TlsError>, last_error: &mut Option<String>) {
        match outcome {
            Ok(true) => {
                *last_error = None;
                tracing::info!(
                    cert = %self.cert_path.display(),
                    key = %self.key_path.display(),
                    not_after = self.not_after(),
                    "reloaded TLS certificate"
                );
            }
            Ok(false) => *last_error = None,
            Err(e) => {
                let msg = e.to_string();
                // A broken pair stays broken until someone fixes it; say so
                // once at warn, not on every poll.
                if last_error.as_deref() == Some(msg.as_str()) {
                    tracing::debug!(error = %msg, "TLS certificate still not reloadable");
                } else {
                    tracing::warn!(
                        error = %msg,
                        "failed to reload TLS certificate; still serving the previous one"
                    );
                    *last_error = Some(msg);
                }
            }
        }
    }

    fn watch_dirs(&self, tx: mpsc::Sender<()>) -> notify::Result<notify::RecommendedWatcher> {
        let mut watcher =
            notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
                match res {
                    Ok(event) if is_change(&event.kind) => {
                        tracing::trace!(?event, "certificate directory changed");
                        // Full means a reload is already pending; closed means the
                        // task is gone. Neither needs handling.
                        let _ = tx.try_send(());
                    }
                    Ok(_) => {}
                    Err(e) => tracing::debug!(error = %e, "certificate directory watch error"),
                }
            })?;
        let mut dirs: Vec<PathBuf> = [&self.cert_path, &self.key_path]
            .into_iter()
            .map(|p| parent_dir(p))
            .collect();
        dirs.dedup();
        for dir in dirs {
            watcher.watch(&dir, notify::RecursiveMode::NonRecursive)?;
        }
        Ok(watcher)
    }
}

/// Our own reads open the files, and inotify reports opens; reacting to those
/// would make every reload trigger the next one.
fn is_change(kind: &notify::EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode};
    match kind {
        notify::EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        notify::EventKind::Access(_) => false,
        _ => true,
    }
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn content_hash(cert: &[u8], key: &[u8]) -> u64 {
    // Change detection only, not integrity: a collision would at worst delay a
    // reload until the next change.
    let mut h = DefaultHasher::new();
    cert.hash(&mut h);
    key.hash(&mut h);
    h.finish()
}

fn read_files(cert: &Path, key: &Path) -> Result<(Vec<u8>, Vec<u8>), TlsError> {
    let read = |what, path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            what,
            path: path.to_path_buf(),
            source,
        })
    };
    Ok((read("certificate", cert)?, read("private key", key)?))
}

/// Parses a PEM certificate chain and its key and checks they belong
/// together; the paths (or labels) name the parts in errors.
pub fn parse_pem_pair(
    cert_path: &Path,
    cert_pem: &[u8],
    key_path: &Path,
    key_pem: &[u8],
) -> Result<ParsedPair, TlsError> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem {
            what: "certificate",
            path: cert_path.to_path_buf(),
            source,
        })?;
    let Some(leaf) = chain.first() else {
        return Err(TlsError::NoCertificate {
            path: cert_path.to_path_buf(),
        });
    };
    let not_after = x509_parser::parse_x509_certificate(leaf)
        .ok()
        .map(|(_, c)| c.validity().not_after.timestamp());

    let key_der = PrivateKeyDer::from_pem_slice(key_pem).map_err(|source| match source {
        rustls_pki_types::pem::Error::NoItemsFound => TlsError::NoPrivateKey {
            path: key_path.to_path_buf(),
        },
        source => TlsError::Pem {
            what: "private key",
            path: key_path.to_path_buf(),
            source,
        },
    })?;
    let signing_key =
        rustls::crypto::ring::sign::any_supported_type(&key_der).map_err(|source| {
            TlsError::UnsupportedKey {
                path: key_path.to_path_buf(),
                source,
            }
        })?;

    let certified = CertifiedKey::new(chain.clone(), signing_key);
    match certified.keys_match() {
        // Unknown: the key type cannot report its public half; the handshake
        // would still fail loudly if it were wrong.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(_)) => {
            return Err(TlsError::KeyMismatch {
                cert: cert_path.to_path_buf(),
                key: key_path.to_path_buf(),
            });
        }
        Err(source) => {
            return Err(TlsError::InvalidCertificate {
                path: cert_path.to_path_buf(),
                source,
            });
        }
    }
    Ok(ParsedPair {
        cert_chain: chain,
        key: certified,
        not_after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::{CertSpec, generate};

    fn bundle() -> crate::certs::CertBundle {
        generate(&CertSpec {
            service: "palisade".into(),
            namespace: "palisade-system".into(),
            dns: vec![],
            ips: vec![],
            validity_days: 10,
        })
        .unwrap()
    }

    fn write(dir: &Path, cert: &str, key: &str) -> (PathBuf, PathBuf) {
        let (c, k) = (dir.join("tls.crt"), dir.join("tls.key"));
        std::fs::write(&c, cert).unwrap();
        std::fs::write(&k, key).unwrap();
        (c, k)
    }

    #[test]
    fn load_reads_a_generated_pair_and_its_expiry() {
        let tmp = tempfile::tempdir().unwrap();
        let b = bundle();
        let (c, k) = write(tmp.path(), &b.cert_pem, &b.key_pem);
        let r = CertReloader::load(&c, &k).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let not_after = r.not_after().unwrap();
        assert!((not_after - now - 10 * 86_400).abs() < 120, "{not_after}");
        assert!(r.server_config().is_ok());
    }

    #[test]
    fn load_errors_name_the_file_and_the_problem() {
        let tmp = tempfile::tempdir().unwrap();
        let b = bundle();
        let other = bundle();

        let missing = tmp.path().join("nope.crt");
        let err = CertReloader::load(&missing, &missing).unwrap_err();
        assert!(matches!(err, TlsError::Read { .. }));
        assert!(err.to_string().contains("nope.crt"), "{err}");

        let (c, k) = write(tmp.path(), "hello\n", &b.key_pem);
        let err = CertReloader::load(&c, &k).unwrap_err();
        assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");
        assert!(err.to_string().contains("tls.crt"), "{err}");

        let (c, k) = write(tmp.path(), &b.cert_pem, "garbage");
        let err = CertReloader::load(&c, &k).unwrap_err();
        assert!(matches!(err, TlsError::NoPrivateKey { .. }), "{err}");
        assert!(err.to_string().contains("tls.key"), "{err}");

        let truncated = &b.cert_pem[..b.cert_pem.len() / 2];
        let (c, k) = write(tmp.path(), truncated, &b.key_pem);
        let err = CertReloader::load(&c, &k).unwrap_err();
        assert!(matches!(err, TlsError::Pem { .. }), "{err}");

        let (c, k) = write(tmp.path(), &b.cert_pem, &other.key_pem);
        let err = CertReloader::load(&c, &k).unwrap_err();
        assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");
        assert!(err.to_string().contains("does not match"), "{err}");
    }

    #[test]
    fn reload_swaps_only_on_a_changed_valid_pair() {
        let tmp = tempfile::tempdir().unwrap();
        let b = bundle();
        let (c, k) = write(tmp.path(), &b.cert_pem, &b.key_pem);
        let r = CertReloader::load(&c, &k).unwrap();
        let first = r.serving.current.load_full().unwrap();
        assert!(!r.reload().unwrap(), "unchanged files are not a reload");

        // Half a rotation: new certificate, old key. Keep serving the old pair.
        let b2 = bundle();
        std::fs::write(&c, &b2.cert_pem).unwrap();
        assert!(matches!(r.reload(), Err(TlsError::KeyMismatch { .. })));
        assert!(Arc::ptr_eq(&first, &r.serving.current.load_full().unwrap()));

        std::fs::write(&k, &b2.key_pem).unwrap();
        assert!(r.reload().unwrap());
        assert!(!Arc::ptr_eq(
            &first,
            &r.serving.current.load_full().unwrap()
        ));
        assert!(!r.reload().unwrap());

        // A vanished file is an error, not a panic, and changes nothing.
        let served = r.serving.current.load_full().unwrap();
        std::fs::remove_file(&k).unwrap();
        assert!(matches!(r.reload(), Err(TlsError::Read { .. })));
        assert!(Arc::ptr_eq(
            &served,
            &r.serving.current.load_full().unwrap()
        ));
    }
}
