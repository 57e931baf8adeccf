//! The signed assertion a gateway makes of its caller when it forwards a request to a peer
//! network, and the peer's check of it.
//!
//! Format: a JWS in compact form (RFC 7515) with a JWT claim set (RFC 7519), signed **ES256**
//! (ECDSA P-256 with SHA-256) by the forwarding gateway's certificate key. Why: it is the
//! standard every language can check, ES256 is what rampart's gateway keys are (P-256) so no
//! second key is needed, and the verifier accepts ES256 only — the algorithm comes from this
//! code, never from the token's header (no `none`, no HMAC-with-the-public-key confusion).
//! The key is the one the TLS handshake just proved: the signer must be the connection's
//! client, so an assertion is worthless away from the peer gateway that made it.
//!
//! Claims: `iss` the gateway's identity, `sub` the caller as its network knows it, `aud` the
//! peer's trust domain, `chain` the networks passed (the origin first, the signer's last),
//! `bnd` a hash binding it to the method, path and query, `jti` a one-time id, `iat`/`exp`
//! (at most [`MAX_LIFETIME_SECS`] apart), and `dl` the caller's remaining deadline.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rampart_pki::{SpiffeId, TrustDomain};
use serde::{Deserialize, Serialize};

/// Longest an assertion may live.
pub const MAX_LIFETIME_SECS: u64 = 60;
/// How long an assertion made here lives: long enough for one forwarded request, short enough
/// that a captured one is soon worthless (replays within it are refused by id).
pub const LIFETIME_SECS: u64 = 30;
/// Clock difference tolerated between two networks.
const LEEWAY_SECS: u64 = 5;
/// The `typ` of the JWS header.
const TYP: &str = "rampart-assertion+jwt";
/// The longest assertion accepted (the header value; bounded before anything is decoded).
pub const MAX_BYTES: usize = 4096;

/// The claims.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: String,
    chain: Vec<String>,
    bnd: String,
    jti: String,
    iat: u64,
    exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dl: Option<u64>,
}

/// Why an assertion could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The gateway's key is not a P-256 key in PKCS#8.
    #[error("the gateway's key cannot sign assertions (ES256 needs a P-256 key in PKCS#8): {0}")]
    Key(String),
    /// The caller cannot be vouched for (a caller a peer vouched for is never passed on).
    #[error("{0} cannot be vouched for to a peer network")]
    NotVouchable(String),
    /// Signing failed.
    #[error("signing the assertion: {0}")]
    Sign(String),
}

/// Why a peer's assertion was refused. Each is a distinct security event.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// None came with the request.
    #[error("the forwarded request carries no assertion of its caller")]
    Missing,
    /// Not a well-formed ES256 JWS of our claims, or too long.
    #[error("malformed assertion: {0}")]
    Malformed(String),
    /// The signature does not verify under the connection's client certificate key.
    #[error("the assertion's signature does not verify under the key of the gateway that sent it")]
    BadSignature,
    /// Signed in the name of someone else than the connection's client.
    #[error("the assertion names {claimed} as its signer, but the connection's client is {client}")]
    SignerNotClient {
        /// The `iss` claim.
        claimed: String,
        /// The TLS client.
        client: String,
    },
    /// Made for another network.
    #[error("the assertion is for {0:?}, not this network")]
    WrongAudience(String),
    /// Past its expiry, or living longer than allowed.
    #[error("the assertion has expired (or claims to live longer than {MAX_LIFETIME_SECS} s)")]
    Expired,
    /// Its id was seen before.
    #[error("the assertion was seen before (a replay)")]
    Replayed,
    /// The replay guard is full: refused rather than forget an id.
    #[error("too many assertions in flight to remember; try again")]
    GuardFull,
    /// Made for another method, path or query.
    #[error("the assertion was made for another method, path or query")]
    WrongRequest,
    /// The request already passed this network.
    #[error("the request already passed this network (chain {0}): a loop")]
    Loop(String),
    /// The request passed too many networks.
    #[error("the request passed {0} networks, more than {1} allowed")]
    TooDeep(usize, usize),
}

impl Refusal {
    /// Whether the answer is 508 (a loop or too deep) rather than 401.
    pub fn is_loop(&self) -> bool {
        matches!(self, Refusal::Loop(_) | Refusal::TooDeep(..))
    }
}

/// The hash an assertion binds: method, path and query, so it cannot be spent on another call.
fn binding(method: &str, path_and_query: &str) -> String {
    let digest =
        ring::digest::digest(&ring::digest::SHA256, format!("{method}\n{path_and_query}").as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())
}

/// Makes assertions as one gateway.
pub struct Signer {
    issuer: SpiffeId,
    key: EncodingKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("issuer", &self.issuer.to_string()).finish_non_exhaustive()
    }
}

/// What one assertion says of the request it goes with.
#[derive(Clone, Copy, Debug)]
pub struct ForRequest<'a> {
    /// The caller as this network knows it (`Principal::vouchable`).
    pub subject: &'a str,
    /// The peer it is sent to.
    pub audience: &'a TrustDomain,
    /// The request's method.
    pub method: &'a str,
    /// Its path and query, as sent to the peer.
    pub path_and_query: &'a str,
    /// What is left of the caller's deadline.
    pub deadline: Option<Duration>,
}

impl Signer {
    /// A signer for the gateway `issuer` whose certificate key is `pkcs8` (DER).
    pub fn new(issuer: SpiffeId, pkcs8: &[u8]) -> Result<Self, SignError> {
        // Checked here, not at the first request: ring parses the key when signing.
        ring::signature::EcdsaKeyPair::from_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            pkcs8,
            &ring::rand::SystemRandom::new(),
        )
        .map_err(|e| SignError::Key(e.to_string()))?;
        Ok(Signer { issuer, key: EncodingKey::from_ec_der(pkcs8) })
    }

    /// The assertion for one forwarded request, made at `now` (seconds since the epoch).
    pub fn sign(&self, req: ForRequest<'_>, now: u64) -> Result<String, SignError> {
        let mut jti = [0u8; 16];
        getrandom::fill(&mut jti).map_err(|e| SignError::Sign(e.to_string()))?;
        let claims = Claims {
            iss: self.issuer.to_string(),
            sub: req.subject.to_owned(),
            aud: req.audience.to_string(),
            chain: vec![self.issuer.domain.to_string()],
            bnd: binding(req.method, req.path_and_query),
            jti: hex::encode(jti),
            iat: now,
            exp: now + LIFETIME_SECS,
            dl: req.deadline.map(|d| d.as_millis().min(u128::from(u64::MAX)) as u64),
        };
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some(TYP.to_owned());
        jsonwebtoken::encode(&header, &claims, &self.key).map_err(|e| SignError::Sign(e.to_string()))
    }
}

/// What a verified assertion says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vouched {
    /// The caller as its network knows it.
    pub subject: String,
    /// The networks the request passed, the origin first.
    pub chain: Vec<TrustDomain>,
    /// What is left of the caller's deadline.
    pub deadline: Option<Duration>,
}

/// Checks peers' assertions for one network, remembering their ids until they expire.
#[derive(Debug)]
pub struct Verifier {
    local: TrustDomain,
    max_chain: usize,
    seen: Mutex<rampart_crypto::ReplayGuard>,
    /// The public keys of the peer gateway certificates seen lately, by certificate: parsed once,
    /// not on every request of a pooled connection.
    keys: Mutex<HashMap<Vec<u8>, Vec<u8>>>,
}

/// Most certificates whose keys are remembered (a few per peer network; forgotten all at once
/// when full).
const KEYS_KEPT: usize = 64;

/// The request an assertion came with, as this gateway received it.
#[derive(Clone, Copy, Debug)]
pub struct Received<'a> {
    /// The TLS client's identity (verified by the handshake against its domain's bundle).
    pub client: &'a SpiffeId,
    /// The TLS client's end-entity certificate (DER): its key must have signed.
    pub client_cert: &'a [u8],
    /// The method.
    pub method: &'a str,
    /// The path and query.
    pub path_and_query: &'a str,
}

impl Verifier {
    /// A verifier for network `local`, refusing chains longer than `max_chain`, remembering
    /// at most `capacity` unexpired ids.
    pub fn new(local: TrustDomain, max_chain: usize, capacity: usize) -> Self {
        Verifier {
            local,
            max_chain,
            seen: Mutex::new(rampart_crypto::ReplayGuard::new(capacity)),
            keys: Mutex::default(),
        }
    }

    /// Checks `token`, sent with `req`, at `now`: the signature under the client's key (ES256
    /// only), the signer, audience, expiry, binding and loop; records its id last, so that
    /// only an assertion that passed everything else uses a place in the guard.
    pub fn verify(&self, token: &str, req: Received<'_>, now: u64) -> Result<Vouched, Refusal> {
        if token.len() > MAX_BYTES {
            return Err(Refusal::Malformed(format!("longer than {MAX_BYTES} bytes")));
        }
        let key = self.key_of(req.client_cert).ok_or(Refusal::BadSignature)?;
        let mut validation = Validation::new(Algorithm::ES256);
        // Time is checked below against the caller's `now`, not read here.
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["exp", "iat", "aud", "iss", "sub"]);
        validation.set_audience(&[self.local.as_str()]);
        let data = jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_ec_der(&key), &validation)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind as K;
                match e.kind() {
                    K::InvalidSignature | K::InvalidEcdsaKey => Refusal::BadSignature,
                    K::ExpiredSignature => Refusal::Expired,
                    K::InvalidAudience => Refusal::WrongAudience(audience_of(token)),
                    K::InvalidAlgorithm => Refusal::Malformed("only ES256 is accepted".into()),
                    _ => Refusal::Malformed(e.to_string()),
                }
            })?;
        let c = data.claims;
        if data.header.typ.as_deref() != Some(TYP) {
            return Err(Refusal::Malformed(format!("typ is not {TYP}")));
        }
        if c.iss != req.client.to_string() {
            return Err(Refusal::SignerNotClient { claimed: c.iss, client: req.client.to_string() });
        }
        let expired = now > c.exp.saturating_add(LEEWAY_SECS);
        if expired || c.exp.saturating_sub(c.iat) > MAX_LIFETIME_SECS || c.iat > now + LEEWAY_SECS {
            return Err(Refusal::Expired);
        }
        let bound = binding(req.method, req.path_and_query);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(bound.as_bytes(), c.bnd.as_bytes())) {
            return Err(Refusal::WrongRequest);
        }
        let chain = chain_of(&c.chain, &req.client.domain)?;
        if chain.contains(&self.local) {
            return Err(Refusal::Loop(c.chain.join(" → ")));
        }
        if chain.len() > self.max_chain {
            return Err(Refusal::TooDeep(chain.len(), self.max_chain));
        }
        let id = u128::from_str_radix(&c.jti, 16)
            .ok()
            .filter(|_| c.jti.len() == 32)
            .ok_or_else(|| Refusal::Malformed("jti is not 128 bits in hex".into()))?;
        let mut seen = self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        seen.check_and_record_id(id, c.exp + LEEWAY_SECS, now).map_err(|e| match e {
            rampart_crypto::CryptoError::ReplayGuardFull(_) => Refusal::GuardFull,
            _ => Refusal::Replayed,
        })?;
        Ok(Vouched { subject: c.sub, chain, deadline: c.dl.map(Duration::from_millis) })
    }
}

impl Verifier {
    /// The P-256 key of `cert`, remembered.
    fn key_of(&self, cert: &[u8]) -> Option<Vec<u8>> {
        let mut keys = self.keys.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(key) = keys.get(cert) {
            return Some(key.clone());
        }
        let key = ec_public_key(cert)?;
        if keys.len() >= KEYS_KEPT {
            keys.clear();
        }
        keys.insert(cert.to_vec(), key.clone());
        Some(key)
    }
}

/// The chain as trust domains; the signer's network must be its last.
fn chain_of(names: &[String], signer: &TrustDomain) -> Result<Vec<TrustDomain>, Refusal> {
    let chain: Vec<TrustDomain> = names
        .iter()
        .map(|d| TrustDomain::new(d).map_err(|_| Refusal::Malformed(format!("chain holds {d:?}"))))
        .collect::<Result<_, _>>()?;
    if chain.last() != Some(signer) {
        return Err(Refusal::Malformed("the chain does not end with the signer's network".into()));
    }
    Ok(chain)
}

/// The `aud` of an assertion whose audience was refused, for the event (unverified: only said).
fn audience_of(token: &str) -> String {
    let payload = token.split('.').nth(1).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v.get("aud").map(ToString::to_string))
        .unwrap_or_default()
        .chars()
        .take(100)
        .collect()
}

/// The P-256 public key (an uncompressed point) of a certificate, as ring reads it.
fn ec_public_key(cert: &[u8]) -> Option<Vec<u8>> {
    use x509_parser::oid_registry::{OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY};
    let (_, cert) = x509_parser::parse_x509_certificate(cert).ok()?;
    let spki = cert.public_key();
    let curve = spki.algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok());
    (spki.algorithm.algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY && curve == Some(OID_EC_P256))
        .then(|| spki.subject_public_key.data.to_vec())
}

#[cfg(test)]
mod tests;
