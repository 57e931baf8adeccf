//! What a node hosts: a [`Service`] answers a [`Call`] with an [`Answer`]. The built-ins
//! (`crate::services`), apps on loopback (`crate::upstream`) and, next, executables and jobs
//! all implement it; the node registers the names of the services it holds.

use std::future::Future;
use std::pin::Pin;

use http::{HeaderMap, Method, StatusCode};
use serde_json::Value;

/// One call of a service, as the node received it (its payload opened, if it came sealed).
#[derive(Debug)]
pub struct Call<'a> {
    /// The method.
    pub method: &'a Method,
    /// The path after the service's segment, normalised (`/` at least).
    pub path: &'a str,
    /// The query, without `?`.
    pub query: Option<&'a str>,
    /// The request's headers (the gateway's word on the principal and the client included).
    pub headers: &'a HeaderMap,
    /// Who called, as the gateway vouches (`Rampart-Principal`).
    pub principal: &'a str,
    /// Its role, as the gateway vouches (`Rampart-Role`: `admin` for a certificate of that role
    /// and for a token of an admin user alike), or empty.
    pub role: &'a str,
    /// The client's address, as the gateway saw it (`Rampart-Client`), or empty.
    pub client: &'a str,
    /// The caller's `Idempotency-Key`, if any.
    pub idempotency_key: Option<&'a str>,
    /// The body (opened).
    pub body: Vec<u8>,
}

/// The answer of a service.
pub type Answering<'a> = Pin<Box<dyn Future<Output = Answer> + Send + 'a>>;

/// A service a node hosts. Object-safe: a node holds `dyn Service`s by name.
pub trait Service: Send + Sync {
    /// Answers `call`.
    fn call<'a>(&'a self, call: Call<'a>) -> Answering<'a>;

    /// How long an answer may take, when the service bounds it itself (a program's timeout):
    /// registered, so that the gateway waits that long.
    fn takes(&self) -> Option<std::time::Duration> {
        None
    }
}

/// What a service answers: status, content type, other headers and body.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: StatusCode,
    /// Content type.
    pub content_type: std::borrow::Cow<'static, str>,
    /// Other headers the service sets (a program's CGI header block); the node's own
    /// `Rampart-*` headers are never taken from here.
    pub headers: HeaderMap,
    /// Body.
    pub body: Vec<u8>,
    /// The registry could not be reached: not this node's fault, and no other node would do
    /// better (the answer carries `Rampart-Registry: unavailable` so the gateway knows).
    pub registry_down: bool,
}

impl Answer {
    /// A JSON answer.
    pub fn json(status: StatusCode, v: &Value) -> Self {
        Answer::new(status, "application/json", v.to_string().into_bytes())
    }

    /// An answer of `content_type`.
    pub fn new(
        status: StatusCode,
        content_type: impl Into<std::borrow::Cow<'static, str>>,
        body: Vec<u8>,
    ) -> Self {
        Answer {
            status,
            content_type: content_type.into(),
            headers: HeaderMap::new(),
            body,
            registry_down: false,
        }
    }

    /// 503: the registry refused or could not be reached. Only when it could not be reached
    /// is the answer marked as the registry's fault (no other node would do better); a refusal
    /// (this node no longer registered, say) may well succeed on another node.
    pub fn registry_unavailable(e: &rampart_store::StoreError) -> Self {
        let mut a = Self::error(StatusCode::SERVICE_UNAVAILABLE, "registry_unavailable", &e.to_string());
        a.registry_down = matches!(e, rampart_store::StoreError::Unavailable(_));
        a
    }

    /// A JSON error answer.
    pub fn error(status: StatusCode, kind: &str, reason: &str) -> Self {
        Self::json(status, &serde_json::json!({"error": kind, "reason": reason}))
    }
}
