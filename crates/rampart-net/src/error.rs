//! The one error type of the network crate.

/// Why a TLS endpoint could not be set up or a request could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// Certificates, keys or TLS settings are unusable.
    #[error("TLS: {0}")]
    Tls(String),
    /// A request to a peer failed.
    #[error("request to {url} failed: {reason}")]
    Request {
        /// Where it went.
        url: String,
        /// Why it failed.
        reason: String,
    },
    /// The peer answered with an error status.
    #[error("{url} answered {status}: {body}")]
    Status {
        /// Where it went.
        url: String,
        /// The status.
        status: u16,
        /// The start of the body.
        body: String,
    },
}

/// Shorthand for results of this crate.
pub type Result<T, E = NetError> = std::result::Result<T, E>;
