//! Our certificate and key as the running process presents them, replaceable while it serves:
//! a renewed certificate takes effect for the next handshake, on both sides (servers present
//! it, clients present it to servers), and connections in flight keep the one they began with.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::SignatureScheme;
use rustls::client::ResolvesClientCert;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::provider;
use crate::error::{NetError, Result};

/// What is presented: the certificate with its signing key, and the key's PKCS#8 bytes (the
/// gateway also signs assertions with it).
struct Held {
    certified: Arc<CertifiedKey>,
    key: PrivateKeyDer<'static>,
}

/// A certificate and key that can be replaced while serving (cheap to clone: one shared cell).
#[derive(Clone)]
pub struct LiveIdentity {
    held: Arc<ArcSwap<Held>>,
    /// Where it was read from, when it was (to be read again when the files change).
    files: Option<(PathBuf, PathBuf)>,
}

impl std::fmt::Debug for LiveIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("LiveIdentity").field("files", &self.files).finish_non_exhaustive()
    }
}

impl LiveIdentity {
    /// An identity of `chain` and `key`, refused when the key is not the certificate's.
    pub fn new(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Result<Self> {
        Ok(LiveIdentity { held: Arc::new(ArcSwap::from_pointee(held(chain, key)?)), files: None })
    }

    /// Reads the PEM files `cert` and `key`; the key's contents never appear in an error.
    pub fn load(cert: &Path, key: &Path) -> Result<Self> {
        let (chain, private) = read_pair(cert, key)?;
        let mut identity = LiveIdentity::new(chain, private)?;
        identity.files = Some((cert.to_owned(), key.to_owned()));
        Ok(identity)
    }

    /// Presents `chain` and `key` from the next handshake on (refused, and the current pair
    /// kept, when the key is not the certificate's).
    pub fn replace(&self, chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Result<()> {
        self.held.store(Arc::new(held(chain, key)?));
        Ok(())
    }

    /// A copy of what is presented now that stays as it is when this one is replaced: for a
    /// client whose connections must go on matching something else made of the same key (the
    /// gateway's assertions to peers).
    pub fn snapshot(&self) -> LiveIdentity {
        LiveIdentity { held: Arc::new(ArcSwap::new(self.held.load_full())), files: None }
    }

    /// The certificate and signing key presented now.
    pub fn certified(&self) -> Arc<CertifiedKey> {
        self.held.load().certified.clone()
    }

    /// The leaf certificate presented now.
    pub fn leaf(&self) -> CertificateDer<'static> {
        self.held.load().certified.cert[0].clone()
    }

    /// The private key presented now.
    pub fn key(&self) -> PrivateKeyDer<'static> {
        self.held.load().key.clone_key()
    }

    /// The files it was read from, if it was.
    pub fn files(&self) -> Option<(&Path, &Path)> {
        self.files.as_ref().map(|(c, k)| (c.as_path(), k.as_path()))
    }

    /// Reads the files again whenever they change (checked every `every`), until the task is
    /// dropped, and calls `changed` with each new leaf. A pair that does not load (a renewal
    /// caught between writing the key and the certificate, say) is tried again at the next
    /// check; the current one stays until then. Nothing to follow without files.
    pub async fn follow(self, every: Duration, changed: impl Fn(&CertificateDer<'static>) + Send + 'static) {
        let Some((cert, key)) = self.files.clone() else { return };
        let stamp = |cert: &Path, key: &Path| (modified(cert), modified(key));
        let mut loaded = stamp(&cert, &key);
        let mut failures = 0u32;
        loop {
            tokio::time::sleep(every).await;
            let now = stamp(&cert, &key);
            if now == loaded {
                continue;
            }
            match read_pair(&cert, &key).and_then(|(chain, private)| self.replace(chain, private)) {
                Ok(()) => {
                    loaded = now;
                    failures = 0;
                    tracing::info!("presenting the certificate now in {}", cert.display());
                    changed(&self.leaf());
                }
                Err(e) => {
                    failures += 1;
                    // Only a pair that stays broken is worth a warning.
                    if failures == 5 {
                        tracing::warn!(
                            "{} changed but does not load, keeping the previous: {e}",
                            cert.display()
                        );
                    }
                }
            }
        }
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn read_pair(cert: &Path, key: &Path) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let bad = |path: &Path, what: &str| NetError::Tls(format!("{}: not a PEM {what}", path.display()));
    let chain = vec![CertificateDer::from_pem_file(cert).map_err(|_| bad(cert, "certificate"))?];
    let private = PrivateKeyDer::from_pem_file(key).map_err(|_| bad(key, "private key"))?;
    Ok((chain, private))
}

fn held(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Result<Held> {
    let certified = CertifiedKey::from_der(chain, key.clone_key(), &provider())
        .map_err(|e| NetError::Tls(format!("the key does not go with the certificate: {e}")))?;
    Ok(Held { certified: Arc::new(certified), key })
}

impl ResolvesServerCert for LiveIdentity {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.certified())
    }
}

impl ResolvesClientCert for LiveIdentity {
    fn resolve(&self, _hints: &[&[u8]], schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        let certified = self.certified();
        certified.key.choose_scheme(schemes).is_some().then_some(certified)
    }
    fn has_certs(&self) -> bool {
        true
    }
}
