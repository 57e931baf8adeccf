//! Several gateways of one network, tried in turn: a node, the CLI or a client keeps talking to
//! the one that answered last and moves to the next when it does not answer at all.
//!
//! Only a request that never reached a gateway (refused, unreachable, TLS failure, connect
//! timeout) is sent again on the next one, whatever its method: no gateway could have acted on
//! it. A request that was sent and then lost its answer is the caller's to judge (an idempotent
//! one may be repeated; see [`Gateways::send_idempotent`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::Request;
use hyper::body::Incoming;

use crate::client::HttpsClient;
use crate::serve::Body;

/// Why no gateway gave an answer.
#[derive(Debug, thiserror::Error)]
pub enum GatewaysError {
    /// No gateway address was given.
    #[error("no gateway address given")]
    Empty,
    /// Every gateway was tried and none could be reached.
    #[error("no gateway answered ({0})")]
    NoneAnswered(String),
    /// The request reached a gateway but its answer was lost (it may have been acted on).
    #[error("gateway {url}: {reason} (the request may have been acted on)")]
    Lost {
        /// The gateway.
        url: String,
        /// What happened.
        reason: String,
    },
    /// The request could not be built.
    #[error("bad request: {0}")]
    Build(String),
}

/// The base URLs (`https://host:port`) of a network's gateways, with the one in use.
#[derive(Debug)]
pub struct Gateways {
    urls: Vec<String>,
    current: AtomicUsize,
}

impl Gateways {
    /// The gateways at `urls`, trying them in this order first.
    pub fn new<S: AsRef<str>>(urls: &[S]) -> Self {
        let urls = urls.iter().map(|u| u.as_ref().trim_end_matches('/').to_owned()).collect();
        Gateways { urls, current: AtomicUsize::new(0) }
    }

    /// Every gateway's base URL.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// The gateway in use now.
    pub fn current(&self) -> &str {
        let i = self.current.load(Ordering::Relaxed) % self.urls.len().max(1);
        self.urls.get(i).map_or("", String::as_str)
    }

    /// Sends `build(base)` to the gateway in use; on a connect-level failure moves on to the
    /// next, each gateway at most once. `timeout` bounds each try.
    pub async fn send(
        &self,
        client: &HttpsClient,
        timeout: Duration,
        build: impl Fn(&str) -> Result<Request<Body>, http::Error>,
    ) -> Result<(String, http::Response<Incoming>), GatewaysError> {
        self.send_inner(client, timeout, false, build).await
    }

    /// As [`Gateways::send`], but also moves on when the answer was lost after sending: for
    /// requests that are safe to repeat (reads, heartbeats, keyed writes).
    pub async fn send_idempotent(
        &self,
        client: &HttpsClient,
        timeout: Duration,
        build: impl Fn(&str) -> Result<Request<Body>, http::Error>,
    ) -> Result<(String, http::Response<Incoming>), GatewaysError> {
        self.send_inner(client, timeout, true, build).await
    }

    async fn send_inner(
        &self,
        client: &HttpsClient,
        timeout: Duration,
        repeat_lost: bool,
        build: impl Fn(&str) -> Result<Request<Body>, http::Error>,
    ) -> Result<(String, http::Response<Incoming>), GatewaysError> {
        if self.urls.is_empty() {
            return Err(GatewaysError::Empty);
        }
        let start = self.current.load(Ordering::Relaxed);
        let mut failures = Vec::new();
        for step in 0..self.urls.len() {
            let i = (start + step) % self.urls.len();
            let url = &self.urls[i];
            let req = build(url).map_err(|e| GatewaysError::Build(e.to_string()))?;
            let (reached, reason) = match tokio::time::timeout(timeout, client.request(req)).await {
                Ok(Ok(resp)) => {
                    self.current.store(i, Ordering::Relaxed);
                    return Ok((url.clone(), resp));
                }
                Ok(Err(e)) => (!e.is_connect(), crate::client::error_chain(&e)),
                Err(_) => (true, format!("no answer within {timeout:?}")),
            };
            if reached && !repeat_lost {
                return Err(GatewaysError::Lost { url: url.clone(), reason });
            }
            tracing::debug!("gateway {url} failed ({reason}); trying the next");
            failures.push(format!("{url}: {reason}"));
        }
        Err(GatewaysError::NoneAnswered(failures.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::Gateways;

    #[test]
    fn current_starts_at_the_first_and_trims_slashes() {
        let g = Gateways::new(&["https://a:1/", "https://b:2"]);
        assert_eq!(g.current(), "https://a:1");
        assert_eq!(g.urls(), ["https://a:1", "https://b:2"]);
        assert_eq!(Gateways::new::<&str>(&[]).current(), "");
    }
}
