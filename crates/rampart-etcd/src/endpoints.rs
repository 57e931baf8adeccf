//! Endpoint failover. etcd-client given several endpoints balances over them but does not
//! reliably stop using a dead one, so the store keeps one connection, to one member, itself:
//! when a call fails at the transport level, times out, or meets a member without a leader,
//! that member is dropped and the call is tried on the next one, round the list with a short
//! back-off, until the call's deadline (`request_timeout`). No member answering within it is
//! `StoreError::Unavailable`.
//!
//! Whether a retry is safe is the caller's to decide: [`Endpoints::run`] reports whether an
//! earlier try of the call may have been applied (`Ran::ambiguous`), so a compare-and-set can
//! settle its outcome (see `kv.rs`).

use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions, GetOptions};
use rampart_store::StoreError;
use tokio::sync::Mutex;
use tonic::Code;

/// Pause after every member failed once, doubling up to [`MAX_BACKOFF`] (an election takes a
/// few election timeouts).
const FIRST_BACKOFF: Duration = Duration::from_millis(25);
const MAX_BACKOFF: Duration = Duration::from_millis(200);

/// The members, the one in use, and the newest revision any answer carried.
pub(crate) struct Endpoints {
    urls: Vec<String>,
    options: ConnectOptions,
    /// Probed on connect (a serializable count of one key, allowed by a prefix-only role).
    probe_key: Vec<u8>,
    request_timeout: Duration,
    connect_timeout: Duration,
    current: Mutex<Option<Current>>,
    /// Where the next connection attempt starts in `urls`.
    next: AtomicUsize,
    /// Counts connections, so a failure reported late does not drop a newer connection.
    epochs: AtomicU64,
    /// The highest revision seen in any response header.
    seen: AtomicU64,
}

#[derive(Clone)]
struct Current {
    index: usize,
    epoch: u64,
    client: Client,
}

/// A connection handed to one try of a call.
#[derive(Clone)]
pub(crate) struct Conn {
    pub client: Client,
    epoch: u64,
}

impl Conn {
    /// Which connection this is, for [`Endpoints::drop_connection`].
    pub fn epoch(&self) -> u64 {
        self.epoch
    }
}

/// A call's result, and whether an earlier try of it may have been applied too.
#[derive(Debug)]
pub(crate) struct Ran<T> {
    pub value: T,
    pub ambiguous: bool,
}

/// Why a call failed for good.
#[derive(Debug)]
pub(crate) enum Failure {
    /// etcd answered with an error that retrying elsewhere would not change.
    Refused { status: tonic::Status, ambiguous: bool },
    /// A store error decided here (no member answered, bad arguments).
    Store(StoreError),
}

/// What a failed try tells about the call.
#[derive(Debug, PartialEq, Eq)]
enum Class {
    /// Not applied: never reached a member, or refused before any effect. Try the next one.
    NotApplied,
    /// May have been applied (sent, then no answer). Try the next one; the caller decides.
    Ambiguous,
    /// A definite answer.
    Final,
}

/// Why no connection could be had.
enum Connect {
    /// This member did not answer; try another.
    Failed(String),
    /// A member answered with a refusal (bad credentials, no permission on the prefix).
    Refused(etcd_client::Error),
}

fn final_failure(what: &str, e: etcd_client::Error, ambiguous: bool) -> Failure {
    match e {
        etcd_client::Error::GRpcStatus(status) => Failure::Refused { status, ambiguous },
        other => Failure::Store(StoreError::Backend(format!("{what}: {other}"))),
    }
}

fn classify(e: &etcd_client::Error) -> Class {
    use etcd_client::Error as E;
    match e {
        E::TransportError(_) => Class::NotApplied,
        E::IoError(_) | E::WatchError(_) | E::LeaseKeepAliveError(_) => Class::Ambiguous,
        E::GRpcStatus(s) => classify_status(s),
        _ => Class::Final,
    }
}

fn classify_status(s: &tonic::Status) -> Class {
    let msg = s.message();
    match s.code() {
        Code::Unavailable
            if msg.contains("no leader")
                || msg.contains("error trying to connect")
                || msg.contains("tcp connect error")
                || msg.contains("Connection refused") =>
        {
            Class::NotApplied
        }
        // An expired token: reconnecting authenticates again.
        Code::Unauthenticated if msg.contains("invalid auth token") => Class::NotApplied,
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown | Code::Aborted => {
            Class::Ambiguous
        }
        Code::Internal if !msg.starts_with("etcdserver:") => Class::Ambiguous,
        _ => Class::Final,
    }
}

impl Endpoints {
    pub fn new(
        urls: Vec<String>,
        options: ConnectOptions,
        probe_key: Vec<u8>,
        request_timeout: Duration,
        connect_timeout: Duration,
    ) -> Self {
        Endpoints {
            urls,
            options,
            probe_key,
            request_timeout,
            connect_timeout,
            current: Mutex::new(None),
            next: AtomicUsize::new(0),
            epochs: AtomicU64::new(0),
            seen: AtomicU64::new(0),
        }
    }

    /// Records a response header's revision.
    pub fn saw(&self, header: Option<&etcd_client::ResponseHeader>) -> u64 {
        let rev = header.map_or(0, |h| u64::try_from(h.revision()).unwrap_or(0));
        self.seen.fetch_max(rev, Ordering::AcqRel);
        rev
    }

    /// The highest revision any answer so far carried.
    pub fn seen(&self) -> u64 {
        self.seen.load(Ordering::Acquire)
    }

    /// The member URL the store currently uses, if connected (tests kill that one).
    pub async fn current_url(&self) -> Option<String> {
        self.current.lock().await.as_ref().map(|c| self.urls[c.index].clone())
    }

    /// Runs `op` on the current member, failing over as the module doc says, within the
    /// request timeout.
    pub async fn run<T, F, Fut>(&self, what: &str, mut op: F) -> Result<Ran<T>, Failure>
    where
        F: FnMut(Conn) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let deadline = Instant::now() + self.request_timeout;
        let mut ambiguous = false;
        let mut failures = 0usize;
        let mut backoff = FIRST_BACKOFF;
        let mut last = String::from("no member tried");
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(Failure::Store(StoreError::Unavailable(format!(
                    "{what}: no etcd member answered within {:?} ({last})",
                    self.request_timeout
                ))));
            }
            match self.connection(remaining).await {
                Err(Connect::Refused(e)) => return Err(final_failure(what, e, ambiguous)),
                Err(Connect::Failed(why)) => last = why,
                Ok(conn) => {
                    // A hung member must leave time for another: one try gets at most half the
                    // call's budget unless it is all that is left.
                    let per_try = remaining.min((self.request_timeout / 2).max(remaining / 2));
                    let epoch = conn.epoch;
                    match tokio::time::timeout(per_try, op(conn)).await {
                        Ok(Ok(value)) => return Ok(Ran { value, ambiguous }),
                        Ok(Err(e)) => match classify(&e) {
                            Class::Final => return Err(final_failure(what, e, ambiguous)),
                            class => {
                                ambiguous |= class == Class::Ambiguous;
                                last = e.to_string();
                                self.drop_connection(epoch).await;
                            }
                        },
                        Err(_) => {
                            ambiguous = true;
                            last = format!("no answer within {per_try:?}");
                            self.drop_connection(epoch).await;
                        }
                    }
                    tracing::debug!(what, error = %last, "etcd call failed on one member; failing over");
                }
            }
            failures += 1;
            if failures.is_multiple_of(self.urls.len()) {
                let pause = backoff.min(deadline.saturating_duration_since(Instant::now()));
                tokio::time::sleep(pause).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }

    /// The connection in use, or a new one to the next member in the list.
    async fn connection(&self, remaining: Duration) -> Result<Conn, Connect> {
        let mut current = tokio::time::timeout(remaining, self.current.lock())
            .await
            .map_err(|_| Connect::Failed("waiting for another call's connection attempt".to_owned()))?;
        if let Some(c) = current.as_ref() {
            return Ok(Conn { client: c.client.clone(), epoch: c.epoch });
        }
        let index = self.next.fetch_add(1, Ordering::AcqRel) % self.urls.len();
        let url = &self.urls[index];
        let limit = remaining.min(self.connect_timeout);
        match tokio::time::timeout(limit, self.connect(url)).await {
            Ok(Ok(client)) => {
                let epoch = self.epochs.fetch_add(1, Ordering::AcqRel) + 1;
                // Next time this one fails, start after it.
                self.next.store(index + 1, Ordering::Release);
                *current = Some(Current { index, epoch, client: client.clone() });
                tracing::debug!(url, "connected to etcd member");
                Ok(Conn { client, epoch })
            }
            // Refused credentials or permissions are the same on every member.
            Ok(Err(e)) if classify(&e) == Class::Final => Err(Connect::Refused(e)),
            Ok(Err(e)) => Err(Connect::Failed(format!("{url}: {e}"))),
            Err(_) => Err(Connect::Failed(format!("{url}: no connection within {limit:?}"))),
        }
    }

    /// Connects to one member and checks it answers (a local, serializable read).
    async fn connect(&self, url: &str) -> Result<Client, etcd_client::Error> {
        let mut client = Client::connect([url], Some(self.options.clone())).await?;
        let probe = GetOptions::new().with_serializable().with_count_only();
        let resp = client.get(self.probe_key.clone(), Some(probe)).await?;
        self.saw(resp.header());
        Ok(client)
    }

    /// Forgets the connection of `epoch` (if still in use) so the next try connects afresh.
    pub async fn drop_connection(&self, epoch: u64) {
        let mut current = self.current.lock().await;
        if current.as_ref().is_some_and(|c| c.epoch == epoch) {
            *current = None;
        }
    }
}
