//! The network-wide replay guard: a node that opened an envelope claims it here before acting
//! on it, and the claim is written to the registry (put-if-absent), so an envelope replayed to
//! any replica, through any gateway, finds it claimed.
//!
//! A claim names the idempotency scope it came with (a hash of principal, service and
//! `Idempotency-Key`): the same envelope re-sent under the same scope is a retry, and passes;
//! without a scope, or under another, it is a replay. Each claim also carries a nonce of the
//! node's request, so a claim repeated because its answer was lost is recognised as itself.
//!
//! Claims live under `envelopes/`, attached to one registry lease per 30 s of expiry, so that
//! a claim lives at least as long as its envelope could pass the TTL check, and this costs one
//! lease grant per half minute, not one per request. The claims this gateway holds are
//! counted, and past `max_envelope_claims` it refuses new ones (503) rather than forget any.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::{Response, StatusCode};
use rampart_net::Body;
use rampart_net::contract::internal::{ClaimAnswer, ClaimRequest, ClaimVerdict};
use rampart_store::{Expect, LeaseId, StoreError};
use serde::{Deserialize, Serialize};

use crate::{State, reply};

/// Where claims are kept.
pub const ENVELOPES_PREFIX: &str = "envelopes/";
/// The error kind of a claim refused because the guard is full.
pub const FULL: &str = rampart_net::contract::internal::REPLAY_GUARD_FULL;
/// Claims expiring within one window share a lease.
const WINDOW_SECS: u64 = 30;
/// Longest an envelope may be claimed for (its TTL can be no longer).
const MAX_LIFE_SECS: u64 = 86_400;

/// What is stored.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct ClaimRecord {
    scope: Option<String>,
    nonce: String,
}

/// The leases claims are attached to, by the end of their window, with how many claims each
/// holds.
#[derive(Debug, Default)]
pub struct ClaimLeases {
    windows: Mutex<BTreeMap<u64, (LeaseId, usize)>>,
    /// When the last "full" event was recorded, seconds since the Unix epoch.
    last_full_event: AtomicU64,
}

impl ClaimLeases {
    /// Drops the window of a lease that no longer exists.
    fn forget(&self, lease: LeaseId) {
        self.windows.lock().unwrap_or_else(|p| p.into_inner()).retain(|_, (l, _)| *l != lease);
    }

    /// Claims held now (windows not yet over).
    fn held(&self, now: u64) -> usize {
        let mut w = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        w.retain(|end, _| *end + WINDOW_SECS >= now);
        w.values().map(|(_, n)| n).sum()
    }
}

fn hex_of(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `POST /_rampart/internal/envelopes`: `{"claim": "fresh" | "retry" | "replayed"}`.
pub async fn claim(state: &State, node: &str, body: &[u8]) -> Response<Body> {
    let now = crate::now_secs();
    let req = match serde_json::from_slice::<ClaimRequest>(body) {
        Ok(r)
            if r.id.len() == 32
                && hex_of(&r.id, 32)
                && hex_of(&r.nonce, 64)
                && r.scope.as_deref().is_none_or(|s| hex_of(s, 64))
                && r.expires <= now + MAX_LIFE_SECS =>
        {
            r
        }
        _ => return reply::error(StatusCode::BAD_REQUEST, "bad_request", "not an envelope claim"),
    };
    if req.expires < now {
        return answer(ClaimVerdict::Expired);
    }
    if state.claim_leases.held(now) >= state.config.max_envelope_claims {
        tracing::warn!("envelope claims full ({}): refusing new ones", state.config.max_envelope_claims);
        // An event, but at most one each 10 s: a full guard refuses every encrypted request.
        if state.claim_leases.last_full_event.swap(now, Ordering::Relaxed) + 10 <= now {
            let why = format!(
                "{} unexpired envelope claims: encrypted requests are refused until some expire",
                state.config.max_envelope_claims
            );
            state.node_event(rampart_events::EventKind::ReplayGuardFull, node, &why);
        }
        let mut r = reply::error(
            StatusCode::SERVICE_UNAVAILABLE,
            FULL,
            "the replay guard is full of unexpired envelopes; try again shortly",
        );
        r.headers_mut().insert(http::header::RETRY_AFTER, http::HeaderValue::from_static("1"));
        return r;
    }
    let record = ClaimRecord { scope: req.scope, nonce: req.nonce };
    let key = format!("{ENVELOPES_PREFIX}{}", req.id.to_ascii_lowercase());
    let value = serde_json::to_vec(&record).unwrap_or_default();
    let put = |lease| state.store.compare_and_set(&key, Expect::Absent, Some(value.clone()), Some(lease));
    let result = async {
        let lease = window_lease(state, req.expires, now).await?;
        match put(lease).await {
            // The window's lease is gone (it lapsed while the registry was out of reach, say):
            // forget it and claim under a new one.
            Err(StoreError::LeaseNotFound(_)) => {
                state.claim_leases.forget(lease);
                put(window_lease(state, req.expires, now).await?).await
            }
            other => other,
        }
    }
    .await;
    match result {
        Ok(o) if o.succeeded => answer(ClaimVerdict::Fresh),
        Ok(o) => {
            let earlier: Option<ClaimRecord> =
                o.current.and_then(|kv| serde_json::from_slice(&kv.value).ok());
            match earlier {
                Some(e) if e == record => answer(ClaimVerdict::Fresh), // our own claim, repeated
                Some(e) if e.scope.is_some() && e.scope == record.scope => answer(ClaimVerdict::Retry),
                _ => answer(ClaimVerdict::Replayed),
            }
        }
        Err(e) => {
            tracing::warn!("claiming an envelope for node {node}: {e}");
            let (status, out) = rampart_net::contract::store::error_response(&e);
            reply::json(
                StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
                &serde_json::to_value(out).unwrap_or_default(),
            )
        }
    }
}

fn answer(claim: ClaimVerdict) -> Response<Body> {
    reply::json(StatusCode::OK, &serde_json::to_value(ClaimAnswer { claim }).unwrap_or_default())
}

/// The lease of the window `expires` falls in, granted the first time it is needed; counts the
/// claim.
async fn window_lease(state: &State, expires: u64, now: u64) -> Result<LeaseId, StoreError> {
    let end = expires.div_ceil(WINDOW_SECS) * WINDOW_SECS;
    if let Some((lease, n)) =
        state.claim_leases.windows.lock().unwrap_or_else(|p| p.into_inner()).get_mut(&end)
    {
        *n += 1;
        return Ok(*lease);
    }
    // Lives past the window's end: every claim in it outlives its envelope.
    let ttl = Duration::from_secs(end.saturating_sub(now) + 5);
    let lease = state.store.grant_lease(ttl).await?;
    let mut windows = state.claim_leases.windows.lock().unwrap_or_else(|p| p.into_inner());
    let (lease, n) = windows.entry(end).or_insert((lease, 0)); // a concurrent grant may have won
    *n += 1;
    Ok(*lease)
}
