//! Membership: register with a gateway under a lease, heartbeat it, register again when it
//! lapsed (a pause, a gateway restart), and deregister on shutdown so the gateways stop
//! sending new requests before the node drains. Given several gateways of one network (they
//! share the registry), a node talks to one and moves to the next when it cannot be reached:
//! its lease lives in the shared registry, so heartbeats through another gateway renew it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use rampart_events::EventKind;
use rampart_net::client::HttpsClient;
use rampart_net::contract::internal::{
    ClaimAnswer, ClaimRequest, ClaimVerdict, Endpoint, REPLAY_GUARD_FULL, Registered, Registration,
};
use rampart_net::contract::{media, path};
use rampart_net::full;
use rampart_net::gateways::Gateways;
use tokio::sync::watch;

/// A security event for the gateway's audit log (as the gateway reads it:
/// `rampart_events::NewEvent`).
#[derive(Debug, serde::Serialize)]
pub struct Report<'a> {
    /// The event's kind (its severity follows from it).
    pub kind: EventKind,
    /// Where the refused request came from.
    pub source: &'a str,
    /// Who made it, if known.
    pub principal: Option<&'a str>,
    /// The service it was for.
    pub service: Option<&'a str>,
    /// Why it was refused.
    pub reason: &'a str,
}

/// What the network-wide replay guard said of an envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// Never seen: act on it.
    Fresh,
    /// Seen under this request's idempotency scope: a retry, act on it again.
    Retry,
    /// Seen without this request's scope: a replay.
    Replayed,
    /// Past its TTL already.
    Expired,
}

/// Why the replay guard gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    /// The gateways or their registry could not be reached.
    #[error("{0}")]
    Unavailable(String),
    /// The guard is full of unexpired claims.
    #[error("the replay guard is full")]
    Full,
}

/// Why a renewal came back without a certificate.
#[derive(Debug, thiserror::Error)]
pub enum RenewError {
    /// No gateway answered.
    #[error("no gateway answered: {0}")]
    Unreachable(String),
    /// A gateway answered, without a certificate (it said why, and recorded the event).
    #[error("{gateway} answered {status}: {reason}")]
    Refused {
        /// The gateway.
        gateway: String,
        /// Its status.
        status: u16,
        /// Its reason.
        reason: String,
    },
}

/// What a node offers: its services, and how long those that bound their answers may take (ms).
type Offered = (Vec<String>, BTreeMap<String, u64>);

/// Talks to the gateways' `/_rampart/internal/…` API.
#[derive(Clone, Debug)]
pub struct Membership {
    client: HttpsClient,
    gateways: Arc<Gateways>,
    addr: SocketAddr,
    /// The services registered, and how long those that bound their answers may take (ms);
    /// replaced when a services folder changes.
    services: Arc<arc_swap::ArcSwap<Offered>>,
    /// The services changed since the last registration: register again.
    changed: Arc<tokio::sync::Notify>,
    /// Whether the node is registered now (its readiness).
    registered: Arc<AtomicBool>,
    /// Its listener for relayed client TLS (passthrough routes), if it has one.
    public: Option<SocketAddr>,
    /// Its registration's lease (0 before the first registration).
    lease: Arc<std::sync::atomic::AtomicI64>,
    /// The passthrough routes of its services (service → server names), as the gateway said
    /// at the last registration.
    passthrough: Arc<arc_swap::ArcSwap<BTreeMap<String, Vec<String>>>>,
}

impl Membership {
    /// Membership of a node listening on `addr` with `services`, through `gateways`.
    pub fn new(
        client: HttpsClient,
        gateways: Arc<Gateways>,
        addr: SocketAddr,
        services: Vec<String>,
    ) -> Self {
        Membership {
            client,
            gateways,
            addr,
            services: Arc::new(arc_swap::ArcSwap::from_pointee((services, BTreeMap::new()))),
            changed: Arc::default(),
            registered: Arc::new(AtomicBool::new(false)),
            public: None,
            lease: Arc::default(),
            passthrough: Arc::default(),
        }
    }

    /// Its registration's lease, once registered: what its claims are attached to, so that
    /// they vanish when it dies.
    pub fn lease(&self) -> Option<rampart_store::LeaseId> {
        match self.lease.load(Ordering::Relaxed) {
            0 => None,
            id => Some(rampart_store::LeaseId(id)),
        }
    }

    /// Also registers `public`, its listener for the client TLS of passthrough routes.
    #[must_use]
    pub fn with_public(mut self, public: SocketAddr) -> Self {
        self.public = Some(public);
        self
    }

    /// Every server name of this node's passthrough routes, as the gateway said.
    pub fn passthrough_names(&self) -> Vec<String> {
        self.passthrough.load().values().flatten().cloned().collect()
    }

    /// The service whose passthrough route answers for `server_name` (in any case), if one of
    /// this node's does.
    pub fn passthrough_service(&self, server_name: &str) -> Option<String> {
        let routes = self.passthrough.load();
        routes
            .iter()
            .find(|(_, names)| names.iter().any(|n| n.eq_ignore_ascii_case(server_name)))
            .map(|(service, _)| service.clone())
    }

    /// The node now hosts `services`: registered again at once (a registration replaces the
    /// one before), so the gateways route by the new list.
    pub fn set_services(&self, services: Vec<String>, timeouts_ms: BTreeMap<String, u64>) {
        self.services.store(Arc::new((services, timeouts_ms)));
        self.changed.notify_one();
    }

    /// Whether the node is registered with the network now: its readiness.
    pub fn registered(&self) -> Arc<AtomicBool> {
        self.registered.clone()
    }

    /// The gateway in use now.
    pub fn gateway(&self) -> &str {
        self.gateways.current()
    }

    /// Every message here is safe to repeat on another gateway when its answer was lost: a
    /// repeated registration replaces the first (its lease is revoked), heartbeats and
    /// deregistrations are idempotent, and an event report at worst appears twice.
    pub(crate) async fn post(
        &self,
        endpoint: Endpoint,
        body: &impl serde::Serialize,
    ) -> Result<(StatusCode, serde_json::Value), String> {
        let body = serde_json::to_vec(body).map_err(|e| e.to_string())?;
        let (_, resp) = self
            .gateways
            .send_idempotent(&self.client, Duration::from_secs(5), |base| {
                Request::builder()
                    .method(Method::POST)
                    .uri(format!("{base}/{}{}", path::API_SEGMENT, endpoint.rest()))
                    .header(http::header::CONTENT_TYPE, media::JSON)
                    .body(full(body.clone()))
            })
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status();
        let bytes = http_body_util::Limited::new(resp.into_body(), 1 << 20)
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, serde_json::from_slice(&bytes).unwrap_or_default()))
    }

    /// Asks a gateway to renew the node's certificate for the key of `csr_pem` (the node's
    /// current certificate authenticates the connection, so `client` must be fresh: a pooled
    /// connection would present the certificate it was opened with). The new certificate, PEM.
    /// Safe to repeat on another gateway: the certificate it replaces may ask again for a while.
    pub async fn renew(&self, client: &HttpsClient, csr_pem: &str) -> Result<String, RenewError> {
        let (url, resp) = self
            .gateways
            .send_idempotent(client, Duration::from_secs(10), |base| {
                Request::builder()
                    .method(Method::POST)
                    .uri(format!("{base}/{}{}", path::API_SEGMENT, Endpoint::Renew.rest()))
                    .header(http::header::CONTENT_TYPE, media::PKCS10)
                    .body(full(csr_pem.to_owned()))
            })
            .await
            .map_err(|e| RenewError::Unreachable(e.to_string()))?;
        let status = resp.status();
        let body = http_body_util::Limited::new(resp.into_body(), 64 << 10).collect().await;
        let body = body.map_err(|e| RenewError::Unreachable(format!("{url}: {e}")))?.to_bytes();
        let text = String::from_utf8_lossy(&body).into_owned();
        if status != StatusCode::OK {
            let reason = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["reason"].as_str().map(str::to_owned))
                .unwrap_or_else(|| text.chars().take(200).collect());
            return Err(RenewError::Refused { gateway: url, status: status.as_u16(), reason });
        }
        Ok(text)
    }

    /// Reports a security event the node saw (a refused caller) to the gateway's audit log.
    pub async fn report(&self, kind: EventKind, source: &str, reason: &str) {
        self.report_event(Report { kind, source, principal: None, service: None, reason }).await;
    }

    /// Reports a security event with all its fields.
    pub async fn report_event(&self, r: Report<'_>) {
        if let Err(e) = self.post(Endpoint::Events, &r).await {
            tracing::warn!("reporting an event to {}: {e}", self.gateway());
        }
    }

    /// Claims an envelope in the network-wide replay guard (see `envelope`). Safe to repeat on
    /// another gateway: the claim carries this request's own nonce.
    pub async fn claim(&self, id: u128, expires: u64, scope: Option<&str>) -> Result<Claim, ClaimError> {
        let mut nonce = [0u8; 16];
        getrandom::fill(&mut nonce).map_err(|e| ClaimError::Unavailable(format!("no randomness: {e}")))?;
        let body = ClaimRequest {
            id: format!("{id:032x}"),
            expires,
            scope: scope.map(str::to_owned),
            nonce: hex::encode(nonce),
        };
        let (status, answer) =
            self.post(Endpoint::Envelopes, &body).await.map_err(ClaimError::Unavailable)?;
        let verdict = serde_json::from_value::<ClaimAnswer>(answer.clone()).map(|a| a.claim);
        match (status, verdict) {
            (StatusCode::OK, Ok(ClaimVerdict::Fresh)) => Ok(Claim::Fresh),
            (StatusCode::OK, Ok(ClaimVerdict::Retry)) => Ok(Claim::Retry),
            (StatusCode::OK, Ok(ClaimVerdict::Replayed)) => Ok(Claim::Replayed),
            (StatusCode::OK, Ok(ClaimVerdict::Expired)) => Ok(Claim::Expired),
            (StatusCode::SERVICE_UNAVAILABLE, _) if answer["error"] == REPLAY_GUARD_FULL => {
                Err(ClaimError::Full)
            }
            _ => Err(ClaimError::Unavailable(format!(
                "gateway answered {status}: {}",
                answer["reason"].as_str().or(answer["error"].as_str()).unwrap_or("no reason")
            ))),
        }
    }

    /// Registers; returns the heartbeat interval the gateway asks for.
    pub async fn register(&self) -> Result<Duration, String> {
        let (services, timeouts_ms) = self.services.load().as_ref().clone();
        let registration = Registration { addr: self.addr, services, timeouts_ms, public: self.public };
        let (status, body) = self.post(Endpoint::Register, &registration).await?;
        if status != StatusCode::OK {
            return Err(format!("gateway answered {status}: {body}"));
        }
        let registered: Registered =
            serde_json::from_value(body).map_err(|e| format!("gateway answered a registration with {e}"))?;
        self.passthrough.store(Arc::new(registered.passthrough));
        self.lease.store(registered.lease, Ordering::Relaxed);
        Ok(Duration::from_millis(registered.heartbeat_ms))
    }

    /// Keeps the node registered until `stop` turns true, then deregisters.
    pub async fn maintain(
        self: Arc<Self>,
        mut stop: watch::Receiver<bool>,
        ready: Option<tokio::sync::oneshot::Sender<()>>,
    ) {
        let mut ready = ready;
        let mut beat = Duration::from_millis(200);
        let (mut registered, mut ever_registered) = (false, false);
        loop {
            if *stop.borrow() {
                break;
            }
            if registered {
                match self.post(Endpoint::Heartbeat, &serde_json::json!({})).await {
                    Ok((StatusCode::OK, _)) => {}
                    // The registry cannot take writes (etcd without quorum): keep serving and
                    // keep trying; the lease is renewed once it is back.
                    Ok((StatusCode::SERVICE_UNAVAILABLE, body)) => {
                        tracing::warn!("heartbeat not recorded: {}", body["reason"]);
                    }
                    Ok((status, _)) => {
                        tracing::warn!("heartbeat refused ({status}): registering again");
                        registered = false;
                        self.registered.store(false, Ordering::Relaxed);
                    }
                    Err(e) => tracing::warn!("heartbeat failed: {e}"),
                }
            }
            if !registered {
                match self.register().await {
                    Ok(interval) => {
                        (registered, ever_registered) = (true, true);
                        self.registered.store(true, Ordering::Relaxed);
                        beat = interval;
                        tracing::info!("registered with {} as {}", self.gateway(), self.addr);
                        if let Some(tx) = ready.take() {
                            let _ = tx.send(());
                        }
                    }
                    Err(e) => {
                        tracing::warn!("registering with {} failed: {e}", self.gateway());
                        beat = Duration::from_millis(500);
                    }
                }
            }
            tokio::select! {
                _ = stop.changed() => {}
                () = tokio::time::sleep(beat) => {}
                () = self.changed.notified() => registered = false,
            }
        }
        // Also when the last heartbeat or registration was refused: the record may still be
        // there (a refusal is not a lapsed lease), and deregistering what is gone is harmless.
        self.registered.store(false, Ordering::Relaxed);
        if ever_registered {
            match self.post(Endpoint::Deregister, &serde_json::json!({})).await {
                Ok(_) => tracing::info!("deregistered from {}", self.gateway()),
                Err(e) => tracing::warn!("deregistering failed: {e}"),
            }
        }
    }
}

/// A program's failure, or a file of the services folder not run: an event in the gateway's
/// audit log (sent beside the request, which does not wait for it).
impl crate::program::Failures for Membership {
    fn failed(&self, service: &str, principal: &str, why: &str) {
        self.spawn_report(EventKind::ProgramFailed, service, Some(principal.to_owned()), why);
    }

    fn refused(&self, name: &str, why: &str) {
        self.spawn_report(EventKind::ProgramRefused, name, None, why);
    }
}

impl Membership {
    fn spawn_report(&self, kind: EventKind, service: &str, principal: Option<String>, why: &str) {
        let (m, service, why) = (self.clone(), service.to_owned(), why.to_owned());
        tokio::spawn(async move {
            let r = Report {
                kind,
                source: &service,
                principal: principal.as_deref(),
                service: Some(&service),
                reason: &why,
            };
            m.report_event(r).await;
        });
    }
}
