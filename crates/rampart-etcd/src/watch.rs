//! Watches that survive a failover: a task reads etcd's watch stream and forwards events; when
//! the stream breaks (member killed, leader lost, connection reset) it opens a new one, on the
//! next member, from the revision after the last one it forwarded, so no event is missed or
//! forwarded twice. etcd sends all the events of one revision in one response, so resuming at
//! a revision boundary is exact.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use etcd_client::{EventType, GetOptions, WatchOptions, WatchStream};
use rampart_store::{Event, EventKind, Result, Revision, StoreError, Watch};
use tokio::sync::mpsc;

use crate::Inner;
use crate::endpoints::Failure;
use crate::kv::rev;

/// Events buffered for a slow watcher; past that the task waits (and etcd with it).
const BUFFER: usize = 1024;
/// Pause between attempts to reopen a broken watch while no member answers.
const REOPEN_PAUSE: Duration = Duration::from_millis(100);

/// What opening a watch found.
enum Opened {
    Stream(Box<WatchStream>),
    /// The start revision is compacted; etcd's oldest available revision.
    Compacted(Revision),
}

pub(crate) async fn watch(inner: Arc<Inner>, prefix: &str, from: Option<Revision>) -> Result<Watch> {
    let key = inner.full(prefix);
    let start = match from {
        Some(r) => r.max(1),
        None => inner.revision().await? + 1,
    };
    if from.is_some() && start <= inner.endpoints.seen() {
        check_not_compacted(&inner, &key, start).await?;
    }
    let (stream, epoch) = match open(&inner, &key, start).await? {
        (Opened::Stream(s), epoch) => (s, epoch),
        (Opened::Compacted(oldest), _) => return Err(StoreError::Compacted { requested: start, oldest }),
    };
    let (tx, rx) = mpsc::channel(BUFFER);
    let lagged = Arc::new(AtomicBool::new(false));
    tokio::spawn(pump(inner, key, start, (stream, epoch), tx, lagged.clone()));
    Ok(Watch::new(rx, lagged))
}

/// A read at the start revision fails when it is compacted (etcd reports that on a watch only
/// after creating it, too late for `watch` to return the error).
async fn check_not_compacted(inner: &Inner, key: &[u8], start: Revision) -> Result<()> {
    let at = i64::try_from(start).unwrap_or(i64::MAX);
    let key = key.to_vec();
    let ran = inner
        .endpoints
        .run("watch (history check)", |mut c| {
            let key = key.clone();
            async move { c.client.get(key, Some(GetOptions::new().with_revision(at).with_count_only())).await }
        })
        .await;
    match ran {
        Ok(_) => Ok(()),
        Err(Failure::Refused { status, .. }) if status.message().contains("compacted") => {
            match open(inner, &key, start).await?.0 {
                Opened::Compacted(oldest) => Err(StoreError::Compacted { requested: start, oldest }),
                Opened::Stream(_) => Err(StoreError::Compacted { requested: start, oldest: start + 1 }),
            }
        }
        Err(f) => Err(inner.failed(f, "", None)),
    }
}

/// Opens a watch stream from `start` on some member and waits for etcd to confirm it; with the
/// epoch of the connection it runs on.
async fn open(inner: &Inner, key: &[u8], start: Revision) -> Result<(Opened, u64)> {
    let opts = WatchOptions::new()
        .with_prefix()
        .with_prev_key()
        .with_start_revision(i64::try_from(start).unwrap_or(i64::MAX));
    let ran = inner
        .endpoints
        .run("watch", |mut c| {
            let (key, opts) = (key.to_vec(), opts.clone());
            let epoch = c.epoch();
            async move {
                let mut stream = c.client.watch(key, Some(opts)).await?;
                loop {
                    let Some(resp) = stream.message().await? else {
                        return Err(etcd_client::Error::WatchError("stream closed".into()));
                    };
                    if resp.compact_revision() > 0 {
                        return Ok((Opened::Compacted(rev(resp.compact_revision())), epoch));
                    }
                    if resp.canceled() {
                        let why = format!("watch refused: {}", resp.cancel_reason());
                        return Err(etcd_client::Error::WatchError(why));
                    }
                    if resp.created() {
                        return Ok((Opened::Stream(Box::new(stream)), epoch));
                    }
                }
            }
        })
        .await
        .map_err(|f| inner.failed(f, "", None))?;
    Ok(ran.value)
}

/// Forwards events until the watcher is dropped, reopening the stream whenever it breaks.
async fn pump(
    inner: Arc<Inner>,
    key: Vec<u8>,
    mut next: Revision,
    (mut stream, mut epoch): (Box<WatchStream>, u64),
    tx: mpsc::Sender<Event>,
    lagged: Arc<AtomicBool>,
) {
    loop {
        let msg = tokio::select! {
            () = tx.closed() => return,
            msg = stream.message() => msg,
        };
        match msg {
            Ok(Some(resp)) if resp.compact_revision() > 0 => {
                // History needed to resume is gone: the watcher must re-read.
                lagged.store(true, Ordering::Release);
                return;
            }
            Ok(Some(resp)) if !resp.canceled() => {
                for ev in resp.events() {
                    let Some(event) = event(&inner, ev) else { continue };
                    let r = event.kv.mod_revision;
                    if r < next {
                        continue; // already forwarded before a reopen
                    }
                    if tx.send(event).await.is_err() {
                        return;
                    }
                }
                if let Some(last) = resp.events().last().and_then(|e| e.kv()) {
                    next = next.max(rev(last.mod_revision()) + 1);
                }
                continue;
            }
            Ok(_) | Err(_) => tracing::debug!(next, "etcd watch broke; reopening on another member"),
        }
        // The stream broke: drop this member and reopen from `next` until it works.
        inner.endpoints.drop_connection(epoch).await;
        (stream, epoch) = loop {
            match open(&inner, &key, next).await {
                Ok((Opened::Stream(s), e)) => break (s, e),
                Ok((Opened::Compacted(_), _)) => {
                    lagged.store(true, Ordering::Release);
                    return;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "reopening etcd watch failed; retrying");
                    tokio::select! {
                        () = tx.closed() => return,
                        () = tokio::time::sleep(REOPEN_PAUSE) => {}
                    }
                }
            }
        };
    }
}

/// A store event from an etcd one (a delete carries the key as it was, emptied, at the
/// delete's revision, as the embedded store does).
fn event(inner: &Inner, ev: &etcd_client::Event) -> Option<Event> {
    let kv = ev.kv()?;
    match ev.event_type() {
        EventType::Put => inner.kv(kv).ok().map(|kv| Event { kind: EventKind::Put, kv }),
        EventType::Delete => {
            let mut out = match ev.prev_kv().and_then(|p| inner.kv(p).ok()) {
                Some(prev) => prev,
                None => inner.kv(kv).ok()?,
            };
            out.value = Vec::new();
            out.mod_revision = rev(kv.mod_revision());
            Some(Event { kind: EventKind::Delete, kv: out })
        }
    }
}
