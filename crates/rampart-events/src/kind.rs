//! Every kind of security event, with its stable snake_case name (what the audit log, the
//! metrics and the dashboard show) and its severity, decided here and nowhere else.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Severity;

/// Declares [`EventKind`]: each variant with its name and its severity.
macro_rules! kinds {
    ($($(#[$doc:meta])* $variant:ident = $name:literal, $severity:ident;)+) => {
        /// What happened. Serialised as its name; a name this version does not know (from a
        /// newer peer, or an old audit log) is kept as [`EventKind::Other`].
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum EventKind {
            $($(#[$doc])* $variant,)+
            /// A kind this version does not know, by its name.
            Other(String),
        }

        impl EventKind {
            /// Every known kind.
            pub const ALL: &[EventKind] = &[$(EventKind::$variant),+];

            /// Its stable name.
            pub fn as_str(&self) -> &str {
                match self {
                    $(EventKind::$variant => $name,)+
                    EventKind::Other(name) => name,
                }
            }

            /// How bad it is. An unknown kind is a warning.
            pub fn severity(&self) -> Severity {
                match self {
                    $(EventKind::$variant => Severity::$severity,)+
                    EventKind::Other(_) => Severity::Warning,
                }
            }

            /// The kind named `name` (an [`EventKind::Other`] when it is none of the known ones).
            pub fn named(name: &str) -> Self {
                match name {
                    $($name => EventKind::$variant,)+
                    other => EventKind::Other(other.to_owned()),
                }
            }
        }
    };
}

kinds! {
    // Admission.
    /// A source over the per-source rate, or a principal over the per-principal rate.
    RateLimited = "rate_limited", Warning;
    /// A request URI over the limit (414).
    UriTooLong = "uri_too_long", Warning;
    /// A request head over the size or count limit (431).
    HeaderTooLarge = "header_too_large", Warning;
    /// A client too slow with its handshake, head or body.
    SlowClient = "slow_client", Warning;
    /// A request body over the limit (413).
    TooLarge = "too_large", Warning;
    /// A request that did not parse as HTTP (answered 400, the connection closed): ambiguous
    /// framing such as a smuggling attempt, a bad header or version.
    MalformedRequest = "malformed_request", Warning;
    /// An HTTP/2 connection closed (GOAWAY) for breaking or flooding the protocol: rapid
    /// resets, a header block that never ends, frames out of order.
    ProtocolAbuse = "protocol_abuse", Warning;
    /// A method not written in upper case.
    BadMethod = "bad_method", Warning;
    /// A path that climbs, hides a separator or is badly encoded.
    BadPath = "bad_path", Warning;
    /// A source banned for failing authentication.
    Banned = "banned", Critical;
    /// A ban lifted by an administrator.
    BanLifted = "ban_lifted", Info;
    // Authentication.
    /// Neither a certificate nor a token.
    Unauthenticated = "unauthenticated", Warning;
    /// A wrong password for a token.
    BadPassword = "bad_password", Warning;
    /// An `Authorization` header that is not a bearer token.
    TokenMalformed = "token_malformed", Warning;
    /// A token nobody issued.
    TokenUnknown = "token_unknown", Warning;
    /// A token whose secret does not match.
    TokenInvalid = "token_invalid", Warning;
    /// A revoked token.
    TokenRevoked = "token_revoked", Warning;
    /// A token of a removed user.
    TokenUserRemoved = "token_user_removed", Warning;
    /// An expired token.
    TokenExpired = "token_expired", Warning;
    /// A token used outside its scope.
    TokenOutOfScope = "token_out_of_scope", Warning;
    /// A token that could not be checked (the registry out of reach).
    TokenUnverifiable = "token_unverifiable", Warning;
    // TLS and the PROXY protocol.
    /// No client certificate on a listener that requires one.
    TlsNoCertificate = "tls_no_certificate", Warning;
    /// A certificate from another CA.
    TlsUnknownCa = "tls_unknown_ca", Warning;
    /// A certificate of another trust domain.
    TlsOtherDomain = "tls_other_domain", Warning;
    /// A revoked certificate: somebody holds a key they should not use.
    TlsRevoked = "tls_revoked", Critical;
    /// An expired certificate.
    TlsExpired = "tls_expired", Warning;
    /// A certificate not valid yet.
    TlsNotYetValid = "tls_not_yet_valid", Warning;
    /// A certificate whose role may not connect here: a key misused.
    TlsWrongRole = "tls_wrong_role", Critical;
    /// A certificate without a usable rampart identity.
    TlsBadIdentity = "tls_bad_identity", Warning;
    /// Any other handshake failure.
    TlsHandshakeFailed = "tls_handshake_failed", Warning;
    /// A trusted forwarder's connection without its PROXY header.
    ProxyHeaderMissing = "proxy_header_missing", Warning;
    /// A PROXY header from a peer that may not send one (an address forged).
    ProxyHeaderUntrusted = "proxy_header_untrusted", Warning;
    /// A malformed PROXY header.
    ProxyHeaderBad = "proxy_header_bad", Warning;
    // Authorisation.
    /// Refused by policy (default deny).
    PolicyDenied = "policy_denied", Warning;
    /// A non-administrator at the admin API.
    AdminForbidden = "admin_forbidden", Warning;
    /// A non-node at the internal API.
    InternalForbidden = "internal_forbidden", Warning;
    /// A registry operation outside the caller's grants.
    RegistryForbidden = "registry_forbidden", Warning;
    /// A malformed registry operation.
    RegistryBadRequest = "registry_bad_request", Warning;
    /// A malformed node registration.
    BadRegistration = "bad_registration", Warning;
    // Nodes.
    /// An ejected node is back in the pool.
    NodeRejoined = "node_rejoined", Info;
    /// A node taken out of the pool.
    NodeEjected = "node_ejected", Warning;
    /// A node deregistered and drained.
    NodeLeft = "node_left", Info;
    /// A node stopped heartbeating.
    LeaseExpired = "lease_expired", Warning;
    /// Somebody answered at a node's address with a certificate that is not the node's.
    NodeCertificateRefused = "node_certificate_refused", Critical;
    /// A node refused a connection (not a gateway of its domain).
    NodeRefusedCaller = "node_refused_caller", Critical;
    // Jobs.
    /// A job submitted.
    JobSubmitted = "job_submitted", Info;
    /// A job's task claimed again after its worker died or lost its claim.
    JobTaskReclaimed = "job_task_reclaimed", Warning;
    /// A job done.
    JobDone = "job_done", Info;
    /// A job failed (its input could not be read).
    JobFailed = "job_failed", Warning;
    /// An upload refused at submission: over the size limit, or an image whose header promises
    /// more than the limits (a decompression bomb) or does not read.
    JobRefused = "job_refused", Warning;
    // Passthrough.
    /// A ClientHello naming no passthrough route nor the listener's own names (or none where
    /// only names are relayed).
    SniRefused = "sni_refused", Warning;
    /// A ClientHello not finished in time, too large, or not TLS at all.
    ClientHelloRefused = "client_hello_refused", Warning;
    /// No node of a passthrough route could be reached before the client got a byte.
    PassthroughUnavailable = "passthrough_unavailable", Warning;
    /// A request on a passthrough route's connection for another name than its SNI (421), or
    /// to a passthrough route's service through the gateway's own TLS.
    MisdirectedRequest = "misdirected_request", Warning;
    // Envelopes.
    /// An envelope that did not open.
    EnvelopeRefused = "envelope_refused", Warning;
    /// An envelope seen before: a replay.
    EnvelopeReplayed = "envelope_replayed", Critical;
    /// The replay guard is full: encrypted requests are refused until claims expire.
    ReplayGuardFull = "replay_guard_full", Critical;
    /// A service program of a node failed: it exited non-zero, died by a signal, ran past its
    /// timeout or its output cap.
    ProgramFailed = "program_failed", Warning;
    /// A file in a node's services folder was not taken as a service (world-writable, owned by
    /// someone else, a bad name).
    ProgramRefused = "program_refused", Warning;
    // Certificates.
    /// A certificate renewed by its holder before it expired (a node through a gateway, or a
    /// gateway with the CA it holds).
    CertificateRenewed = "certificate_renewed", Info;
    /// A renewal that failed: it is tried again, and the certificate still expires.
    CertificateRenewalFailed = "certificate_renewal_failed", Warning;
    /// A renewal refused: not the holder's current certificate, or a bad request.
    CertificateRenewalRefused = "certificate_renewal_refused", Warning;
    // Federation.
    /// A peer network's gateway stopped answering its catalog (or answered too late).
    PeerDown = "peer_down", Warning;
    /// A peer network's gateway answers its catalog again.
    PeerUp = "peer_up", Info;
    /// A peer gateway's assertion of its caller was missing, malformed, not signed by it,
    /// for another network or request, or expired.
    AssertionRefused = "assertion_refused", Warning;
    /// A peer gateway's assertion seen before: a replay.
    AssertionReplayed = "assertion_replayed", Critical;
    /// A forwarded request that already passed this network, or too many networks.
    FederationLoop = "federation_loop", Warning;
    /// A peer asked for a service not exported to it (or not hosted here).
    PeerNotExported = "peer_not_exported", Warning;
    /// A request for a service only peer networks serve, none of them up: 503.
    PeerUnavailable = "peer_unavailable", Warning;
    /// One gateway of a peer network kept failing and was taken out of the pool.
    PeerGatewayEjected = "peer_gateway_ejected", Warning;
    /// An ejected gateway of a peer network answers again.
    PeerGatewayRejoined = "peer_gateway_rejoined", Info;
    /// A peer network's gateway presented a certificate its bundle does not verify.
    PeerCertificateRefused = "peer_certificate_refused", Critical;
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for EventKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Ok(EventKind::named(&name))
    }
}

impl PartialEq<&str> for EventKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_by_its_name_and_unknown_names_are_kept() {
        let mut names = std::collections::HashSet::new();
        for kind in EventKind::ALL {
            assert!(names.insert(kind.as_str()), "{kind} named twice");
            assert_eq!(&EventKind::named(kind.as_str()), kind);
            let json = serde_json::to_string(kind).unwrap_or_default();
            assert_eq!(json, format!("\"{kind}\""));
        }
        let later: EventKind = serde_json::from_str("\"from_a_newer_peer\"").unwrap_or(EventKind::Banned);
        assert_eq!(later, EventKind::Other("from_a_newer_peer".into()));
        assert_eq!(later.severity(), Severity::Warning);
        assert_eq!(EventKind::TlsRevoked.severity(), Severity::Critical);
        assert_eq!(EventKind::NodeRejoined.severity(), Severity::Info);
    }
}
