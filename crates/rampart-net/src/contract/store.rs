//! `POST /_rampart/store`: one registry operation per request, and its answer. Fields mirror
//! the [`Store`](rampart_store::Store) methods' arguments; values and expected values are
//! base64.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rampart_store::{KeyValue, LeaseId, StoreError};
use serde::{Deserialize, Serialize};

/// One store operation, as sent to the gateway.
#[allow(missing_docs)]
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum StoreRequest {
    /// [`rampart_store::Store::get`].
    Get { key: String },
    /// [`rampart_store::Store::range`].
    Range { prefix: String },
    /// [`rampart_store::Store::put`] (value in base64).
    Put { key: String, value: String, lease: Option<i64> },
    /// [`rampart_store::Store::delete`].
    Delete { key: String },
    /// [`rampart_store::Store::delete_prefix`].
    DeletePrefix { prefix: String },
    /// [`rampart_store::Store::compare_and_set`].
    Cas { key: String, expect: WireExpect, value: Option<String>, lease: Option<i64> },
    /// [`rampart_store::Store::grant_lease`].
    Grant { ttl_ms: u64 },
    /// [`rampart_store::Store::keep_alive`].
    KeepAlive { lease: i64 },
    /// [`rampart_store::Store::revoke_lease`].
    Revoke { lease: i64 },
    /// [`rampart_store::Store::revision`].
    Revision,
}

/// [`rampart_store::Expect`] on the wire.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WireExpect {
    /// [`rampart_store::Expect::Absent`].
    Absent,
    /// [`rampart_store::Expect::ModRevision`].
    ModRevision(u64),
    /// [`rampart_store::Expect::Value`] in base64.
    Value(String),
}

/// [`KeyValue`] on the wire.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WireKv {
    /// The key.
    pub key: String,
    /// The value, base64.
    pub value: String,
    /// Creation revision.
    pub create_revision: u64,
    /// Last modification revision.
    pub mod_revision: u64,
    /// Modification count.
    pub version: u64,
    /// Lease id.
    pub lease: Option<i64>,
}

impl From<KeyValue> for WireKv {
    fn from(kv: KeyValue) -> Self {
        WireKv {
            key: kv.key,
            value: STANDARD.encode(&kv.value),
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
            version: kv.version,
            lease: kv.lease.map(|l| l.0),
        }
    }
}

impl TryFrom<WireKv> for KeyValue {
    type Error = StoreError;
    fn try_from(w: WireKv) -> Result<Self, StoreError> {
        Ok(KeyValue {
            value: decode(&w.value)?,
            key: w.key,
            create_revision: w.create_revision,
            mod_revision: w.mod_revision,
            version: w.version,
            lease: w.lease.map(LeaseId),
        })
    }
}

/// The answer to a [`StoreRequest`]: exactly one field set, or `error`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StoreResponse {
    /// For get.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kv: Option<WireKv>,
    /// For range.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kvs: Option<Vec<WireKv>>,
    /// For put, cas, revision.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
    /// For delete (0/1) and delete_prefix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted: Option<u64>,
    /// For cas.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub succeeded: Option<bool>,
    /// For grant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease: Option<i64>,
    /// For keep_alive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl_ms: Option<u64>,
    /// Why the operation failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The failure's kind.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<StoreErrorKind>,
}

impl StoreRequest {
    /// Whether its values are base64, as the wire says they are: checked before the request
    /// runs, so that a bad one is the caller's error (400), not the store's.
    pub fn values_are_base64(&self) -> bool {
        let ok = |v: &str| STANDARD.decode(v).is_ok();
        match self {
            StoreRequest::Put { value, .. } => ok(value),
            StoreRequest::Cas { expect, value, .. } => {
                !matches!(expect, WireExpect::Value(v) if !ok(v)) && value.as_deref().is_none_or(ok)
            }
            _ => true,
        }
    }
}

/// Base64 for the wire.
pub fn encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// From base64 on the wire.
pub fn decode(text: &str) -> Result<Vec<u8>, StoreError> {
    STANDARD.decode(text).map_err(|_| StoreError::Backend("bad base64 from the gateway".into()))
}

/// What kind of failure a store answer reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreErrorKind {
    /// The caller's grants do not cover the key (403).
    Forbidden,
    /// The lease has expired or never existed (404).
    LeaseNotFound,
    /// A key or value the store does not take (400).
    Invalid,
    /// The registry could not be reached (503).
    Unavailable,
    /// A kind this side does not know (a newer peer): taken as unavailable.
    #[serde(other)]
    Other,
}

impl StoreErrorKind {
    /// The kind of `e`, and the status it is answered with.
    pub fn of(e: &StoreError) -> (Self, u16) {
        match e {
            StoreError::Forbidden { .. } => (Self::Forbidden, 403),
            StoreError::LeaseNotFound(_) => (Self::LeaseNotFound, 404),
            StoreError::InvalidKey(_) | StoreError::ValueTooLarge(_) => (Self::Invalid, 400),
            _ => (Self::Unavailable, 503),
        }
    }
}

/// The wire answer for a store error, and its status.
pub fn error_response(e: &StoreError) -> (u16, StoreResponse) {
    let (kind, status) = StoreErrorKind::of(e);
    (status, StoreResponse { error: Some(e.to_string()), kind: Some(kind), ..Default::default() })
}
