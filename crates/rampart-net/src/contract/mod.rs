//! The wire contract between gateway, node and CLI, in one place: the headers each side sets
//! and trusts, the media types, the paths of the gateway's API, and the bodies of the internal
//! API ([`internal`]) and the store API ([`store`]). DESIGN.md describes the same contract for
//! people; a change here is a change of protocol.

pub mod internal;
pub mod store;

/// Header names, lower case as HTTP/2 sends them.
pub mod header {
    use http::HeaderName;

    /// Set by the gateway towards a node: who called (any value from outside is removed first).
    pub const PRINCIPAL: HeaderName = HeaderName::from_static("rampart-principal");
    /// Set by the gateway towards a node: the principal's role (`admin`, `user`, `peer`…), a
    /// token's user's as much as a certificate's (any value from outside is removed first).
    pub const ROLE: HeaderName = HeaderName::from_static("rampart-role");
    /// Set by the gateway towards a node: which service to run.
    pub const SERVICE: HeaderName = HeaderName::from_static("rampart-service");
    /// Set by the gateway towards a node: the client's address (behind trusted proxies, the
    /// one they named).
    pub const CLIENT: HeaderName = HeaderName::from_static("rampart-client");
    /// Set by a node on its answers: which node answered.
    pub const NODE: HeaderName = HeaderName::from_static("rampart-node");
    /// Set by a node (to `unavailable`) on an answer that failed because the registry could not
    /// be reached: the gateway passes it on without blaming the node or trying another (they
    /// share the registry).
    pub const REGISTRY: HeaderName = HeaderName::from_static("rampart-registry");
    /// Set by a node on an answer its service produced, as opposed to a refusal of the node's
    /// own (a replayed envelope, a registry out of reach, a limit): only such an answer may be
    /// recorded as the outcome of an `Idempotency-Key`. The gateway removes it.
    pub const SERVED: HeaderName = HeaderName::from_static("rampart-served");
    /// Set by the gateway on answers that took more than one attempt.
    pub const ATTEMPTS: HeaderName = HeaderName::from_static("rampart-attempts");
    /// The client's key making a non-idempotent request safe to retry.
    pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
    /// Set by the gateway on an answer replayed from a recorded outcome.
    pub const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");
    /// Set by a gateway towards a peer network's gateway: its signed assertion of the caller
    /// (`rampart_federation::assertion`). Believed only from a peer gateway's connection.
    pub const ASSERTION: HeaderName = HeaderName::from_static("rampart-assertion");

    /// Whether `name` is one of rampart's own headers (`Rampart-*`), never taken from outside.
    pub fn is_rampart(name: &HeaderName) -> bool {
        name.as_str().starts_with("rampart-")
    }

    /// Whether `name` has an underscore. CGI, WSGI, Rack and PHP turn `-` into `_` when they
    /// name a header's variable, so `Rampart_Principal` would read as `Rampart-Principal` (and
    /// `X_Forwarded_For` as `X-Forwarded-For`) to the service behind: such a header is never
    /// passed on (nginx's `underscores_in_headers off`).
    pub fn has_underscore(name: &HeaderName) -> bool {
        name.as_str().contains('_')
    }

    /// The value of `name` in `headers` as text, if it is there and is text.
    pub fn text<'a>(headers: &'a http::HeaderMap, name: &HeaderName) -> Option<&'a str> {
        headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Media types.
pub mod media {
    /// A Fernet token: a sealed payload (request or answer).
    pub const FERNET: &str = "application/fernet";
    /// JSON, which every API answer and error is.
    pub const JSON: &str = "application/json";
    /// PEM certificates (RFC 8555 §9.1): a CA bundle.
    pub const PEM_CERTIFICATES: &str = "application/pem-certificate-chain";
    /// A certificate signing request, PEM (RFC 7468 §7).
    pub const PKCS10: &str = "application/pkcs10";
}

/// Paths of the gateway's own API, under `/_rampart`.
pub mod path {
    /// The first path segment of the gateway's API.
    pub const API_SEGMENT: &str = "_rampart";
    /// Liveness and readiness (gateway and node alike).
    pub const HEALTH: &str = "/_rampart/health";
    /// The registry, under the caller's ACL.
    pub const STORE: &str = "/_rampart/store";
    /// Nodes and services (admins).
    pub const STATUS: &str = "/_rampart/status";
    /// Bans in force (admins); `DELETE /_rampart/bans/<address>` lifts one.
    pub const BANS: &str = "/_rampart/bans";
    /// The live event stream (admins).
    pub const EVENTS: &str = "/_rampart/events";
    /// Prometheus metrics (admins, or the metrics token).
    pub const METRICS: &str = "/_rampart/metrics";
    /// A token for a password (HTTP basic authentication).
    pub const TOKEN: &str = "/_rampart/token";
    /// The network's CA bundle, for anyone (a peer pins it by its fingerprint).
    pub const BUNDLE: &str = "/_rampart/bundle";
    /// What this network exports to the calling peer gateway (its catalog and heartbeat).
    pub const CATALOG: &str = "/_rampart/federation/catalog";
    /// Each peer as the gateway sees it now (admins).
    pub const PEERS: &str = "/_rampart/federation/peers";
}

/// The body of [`path::CATALOG`]'s answer.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Catalog {
    /// The answering network's trust domain.
    pub domain: String,
    /// The services it exports to the caller and hosts now, sorted.
    pub services: Vec<String>,
    /// Its CA bundle's fingerprint: when it changes, the caller fetches the bundle again over
    /// the channel the old one verified.
    pub bundle: Option<String>,
}
