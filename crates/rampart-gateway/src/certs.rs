//! Certificates that nobody has to remember. The gateway presents what its files hold, read
//! again when they change (`rampart pki renew`, or its own renewal); a gateway that holds its
//! network's CA renews its own certificate at two thirds of its lifetime, and signs the
//! renewals nodes ask for (`POST /_rampart/internal/renew`: a CSR for a key the node made,
//! over mutual TLS with the certificate it replaces). Every renewal, failed or done, is an
//! event, and the metrics show when each certificate expires.

use std::sync::Arc;
use std::time::Duration;

use rampart_events::EventKind;
use rampart_net::tls::LiveIdentity;
use rampart_pki::{EntityName, Pki, PkiError};
use time::OffsetDateTime;

use crate::State;

/// How often the certificate files are looked at.
const FOLLOW_EVERY: Duration = Duration::from_secs(1);

/// The gateway's own certificate, and the CA it may hold.
#[derive(Debug)]
pub struct Certificates {
    /// What the gateway presents (its front door, its client to nodes and peers).
    pub(crate) identity: LiveIdentity,
    /// Its name in the CA's index (`gateway` for the home's gateways).
    pub(crate) name: EntityName,
    /// The home's PKI, when it holds this domain's CA: then the gateway renews its own
    /// certificate and signs nodes' renewals.
    pub(crate) ca: Option<Pki>,
}

impl Certificates {
    /// The certificates of a gateway presenting `identity` (issued as `name`); `ca`: the PKI
    /// holding the CA, if this gateway's home does.
    pub fn new(identity: LiveIdentity, name: EntityName, ca: Option<Pki>) -> Self {
        Certificates { identity, name, ca }
    }
}

/// Follows the gateway's certificate files (and renews the certificate when the CA is here),
/// until the task is dropped.
pub(crate) async fn follow(state: Arc<State>, certs: Arc<Certificates>) {
    let metrics = state.clone();
    let files = certs.identity.clone().follow(FOLLOW_EVERY, move |leaf| {
        metrics.metrics.certificate_expires("gateway", leaf.as_ref());
    });
    if certs.ca.is_none() {
        return files.await;
    }
    tokio::join!(files, renew_own(state, certs));
}

/// Renews the gateway's certificate when two thirds of its lifetime have passed, with the CA
/// of its home; a failure is an event, tried again at a twentieth of the lifetime (at least
/// every second, at most every five minutes: `rampart_pki::lifetime::retry_after`).
async fn renew_own(state: Arc<State>, certs: Arc<Certificates>) {
    let Some(pki) = certs.ca.clone() else { return };
    loop {
        // The file is the truth: another gateway of this home may have renewed it already.
        let held =
            certs.identity.files().and_then(|(cert, _)| rampart_pki::inspect::read_cert_file(cert).ok());
        let Some(held) = held else {
            tokio::time::sleep(Duration::from_secs(60)).await;
            continue;
        };
        let due = rampart_pki::lifetime::renewal_due(held.not_before, held.not_after);
        let now = OffsetDateTime::now_utc();
        if now < due {
            tokio::time::sleep(rampart_pki::lifetime::wait_for(due, now)).await;
            continue;
        }
        let (domain, name) = (state.domain.clone(), certs.name.clone());
        let pki = pki.clone();
        let renewed = tokio::task::spawn_blocking(move || pki.open(&domain)?.renew(&name, None, None)).await;
        match renewed {
            Ok(Ok(issued)) => {
                let why = format!(
                    "the gateway's certificate renewed by its CA (serial {}, valid until {})",
                    issued.record.serial, issued.record.not_after
                );
                own_event(&state, EventKind::CertificateRenewed, &certs.name, &why);
            }
            outcome => {
                let why = match outcome {
                    Ok(Err(e)) => e.to_string(),
                    _ => "the renewal stopped".to_owned(),
                };
                let why = format!("renewing the gateway's certificate (expires {}): {why}", held.not_after);
                own_event(&state, EventKind::CertificateRenewalFailed, &certs.name, &why);
                tokio::time::sleep(rampart_pki::lifetime::retry_after(held.not_before, held.not_after)).await;
            }
        }
    }
}

/// An event of the gateway's own certificate (its source: the gateway itself).
fn own_event(state: &State, kind: EventKind, name: &EntityName, why: &str) {
    let mut event = rampart_events::NewEvent::new(kind, "gateway", why);
    event.principal = Some(format!("spiffe://{}/gateway/{name}", state.domain));
    state.events.record(event);
}

/// Why a node's renewal was not signed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RenewalError {
    /// This gateway's home holds no CA.
    #[error("this gateway holds no CA of its network: renew through the gateway whose home holds it")]
    NoCa,
    /// The caller presented no certificate (or one that does not parse).
    #[error("a renewal needs the certificate it replaces")]
    NoCertificate,
    /// The CSR or the certificate was refused.
    #[error(transparent)]
    Refused(PkiError),
    /// Signing failed (the CA's files).
    #[error("the CA could not sign: {0}")]
    Failed(PkiError),
    /// The signing task stopped before it finished (the gateway is stopping).
    #[error("the signing was interrupted")]
    Interrupted,
}

/// Signs a node's renewal: the CSR's key certified for the identity, names and lifetime of
/// the certificate `presented` (DER, verified by the handshake), which must be the node's
/// current one. The new certificate, PEM.
pub(crate) async fn sign_renewal(
    state: &State,
    certs: &Certificates,
    presented: Option<&[u8]>,
    csr: &[u8],
) -> Result<(String, OffsetDateTime), RenewalError> {
    let pki = certs.ca.clone().ok_or(RenewalError::NoCa)?;
    let presented = presented
        .and_then(|der| rampart_pki::inspect::cert_from_der(der).ok())
        .ok_or(RenewalError::NoCertificate)?;
    let csr = rampart_pki::csr::CheckedCsr::parse(csr).map_err(RenewalError::Refused)?;
    let domain = state.domain.clone();
    let signed = tokio::task::spawn_blocking(move || {
        let ca = pki.open(&domain).map_err(RenewalError::Failed)?;
        ca.renew_for(&presented, &csr).map_err(|e| match e {
            PkiError::NotCurrent { .. }
            | PkiError::RenewalTooEarly { .. }
            | PkiError::BadCsr(_)
            | PkiError::OutlivesCa { .. } => RenewalError::Refused(e),
            other => RenewalError::Failed(other),
        })
    })
    .await
    .map_err(|_| RenewalError::Interrupted)??;
    Ok((rampart_pki::inspect::cert_pem(&signed.cert.der), signed.record.not_after))
}
