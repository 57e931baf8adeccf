//! The node's certificate, kept current by the node itself. Its files are read again when they
//! change (an operator's `rampart pki renew`); at two thirds of its lifetime the node makes a
//! new key, sends a CSR for it to a gateway over mutual TLS with the certificate it replaces
//! (`Membership::renew`), writes the key (0600) and the certificate it gets back, and presents
//! them from the next handshake on. The key never leaves the node. A failure is retried at a
//! twentieth of the lifetime, and reported as an event when no gateway could say so itself.

use std::sync::Arc;
use std::time::Duration;

use rampart_events::EventKind;
use rampart_net::tls::LiveIdentity;
use rampart_pki::files;
use rampart_pki::{EntityName, KeyType};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use time::OffsetDateTime;

use crate::registration::{Membership, RenewError};

/// Keeps `identity` (the certificate of node `name`) current until the task is dropped;
/// `tls` is the node's client config to gateways (presenting `identity`).
pub async fn maintain(
    name: EntityName,
    identity: LiveIdentity,
    membership: Arc<Membership>,
    tls: rustls::ClientConfig,
) {
    let files = identity.clone().follow(Duration::from_secs(1), |_| {});
    tokio::join!(files, renew(name, identity, membership, tls));
}

async fn renew(
    name: EntityName,
    identity: LiveIdentity,
    membership: Arc<Membership>,
    tls: rustls::ClientConfig,
) {
    let Some((cert_path, key_path)) = identity.files().map(|(c, k)| (c.to_owned(), k.to_owned())) else {
        return;
    };
    loop {
        let Ok(held) = rampart_pki::inspect::cert_from_der(identity.leaf().as_ref()) else { return };
        let due = rampart_pki::lifetime::renewal_due(held.not_before, held.not_after);
        let now = OffsetDateTime::now_utc();
        if now < due {
            tokio::time::sleep(rampart_pki::lifetime::wait_for(due, now)).await;
            continue;
        }
        // A client of its own each time: its connection presents the certificate held now.
        let client = rampart_net::client::https_client(tls.clone(), Duration::from_secs(2));
        let gateway = (&*membership, &client);
        match renew_once(&name, &identity, gateway, (&cert_path, &key_path)).await {
            Ok(not_after) => tracing::info!("renewed this node's certificate: valid until {not_after}"),
            Err(e) => {
                let why =
                    format!("renewing the certificate of node {name} (expires {}): {e}", held.not_after);
                tracing::warn!("{why}");
                // A gateway that answered recorded the event itself.
                if let Failure::Renew(RenewError::Unreachable(_)) | Failure::Local(_) = e {
                    membership.report(EventKind::CertificateRenewalFailed, "node", &why).await;
                }
                tokio::time::sleep(rampart_pki::lifetime::retry_after(held.not_before, held.not_after)).await;
            }
        }
    }
}

/// Why one renewal did not happen.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error(transparent)]
    Renew(#[from] RenewError),
    #[error("{0}")]
    Local(String),
}

/// One renewal: key and CSR made, signed by a gateway, written (key first: a pair caught in
/// between does not load and is not presented), presented.
async fn renew_once(
    name: &EntityName,
    identity: &LiveIdentity,
    (membership, client): (&Membership, &rampart_net::client::HttpsClient),
    (cert_path, key_path): (&std::path::Path, &std::path::Path),
) -> Result<OffsetDateTime, Failure> {
    let local = |e: &dyn std::fmt::Display| Failure::Local(e.to_string());
    let made = rampart_pki::csr::request(name, KeyType::P256).map_err(|e| local(&e))?;
    let cert_pem = membership.renew(client, &made.csr_pem).await?;
    let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes())
        .map_err(|_| Failure::Local("the gateway's answer is not a certificate".into()))?;
    let key = PrivateKeyDer::from_pem_slice(made.key_pem.as_bytes()).map_err(|_| local(&"the new key"))?;
    let not_after = rampart_pki::inspect::cert_from_der(cert.as_ref()).map_err(|e| local(&e))?.not_after;
    // Checked before anything is written: the certificate must be for the key just made.
    LiveIdentity::new(vec![cert.clone()], key.clone_key()).map_err(|e| local(&e))?;
    files::write_atomic(key_path, made.key_pem.as_bytes(), files::PRIVATE).map_err(|e| local(&e))?;
    files::write_atomic(cert_path, cert_pem.as_bytes(), files::PUBLIC).map_err(|e| local(&e))?;
    identity.replace(vec![cert], key).map_err(|e| local(&e))?;
    Ok(not_after)
}
