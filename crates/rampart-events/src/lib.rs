//! Security events (DESIGN.md "Security rules"): every rejection and every health change is an
//! [`Event`] `{time, severity, kind, source, principal, service, reason, gateway|node}`,
//! appended to `audit.jsonl` (one JSON object a line, never a secret), counted by kind for the
//! metrics, kept in a bounded in-memory ring for the admin API, and broadcast to live
//! subscribers (the dashboard's stream). Ids are sequential per log, so a stream can resume
//! after a given id (`Last-Event-ID`).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod kind;
pub use kind::EventKind;

use std::collections::{BTreeMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

/// Events kept in memory for the admin API and resuming streams.
pub const RING: usize = 2_000;

/// How bad it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Routine (a node rejoined).
    Info,
    /// A refusal or a degradation (a bad token, a node ejected).
    Warning,
    /// Likely an attack or an outage (a ban, a revoked certificate used).
    Critical,
}

/// One security event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Sequence number in this log, from 1.
    pub id: u64,
    /// When, RFC 3339 UTC.
    pub time: String,
    /// How bad.
    pub severity: Severity,
    /// What happened, serialised as a stable snake_case name (`token_expired`, …).
    pub kind: EventKind,
    /// Where it came from: a client address, or a node's name.
    pub source: String,
    /// The immediate peer, when it is not the client: the load balancer or proxy the client
    /// came through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// Who, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// Which service, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Why, in a sentence.
    pub reason: String,
    /// The gateway that saw it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// The node that saw it (events nodes report).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// What a caller reports; the log fills in id, time, severity (from the kind) and gateway.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NewEvent {
    /// How bad, for a kind this version does not know (a known kind's severity is its own).
    #[serde(default)]
    pub severity: Option<Severity>,
    /// What happened.
    pub kind: EventKind,
    /// Where from.
    pub source: String,
    /// Through which forwarder, when the client did not connect directly.
    #[serde(default)]
    pub peer: Option<String>,
    /// Who.
    #[serde(default)]
    pub principal: Option<String>,
    /// Which service.
    #[serde(default)]
    pub service: Option<String>,
    /// Why.
    pub reason: String,
    /// The node that saw it.
    #[serde(default)]
    pub node: Option<String>,
}

impl NewEvent {
    /// An event of `kind` from `source`, for `reason`; the other fields empty.
    pub fn new(kind: EventKind, source: impl Into<String>, reason: impl Into<String>) -> Self {
        NewEvent {
            severity: None,
            kind,
            source: source.into(),
            peer: None,
            principal: None,
            service: None,
            reason: reason.into(),
            node: None,
        }
    }

    /// The event with each text cut to a length the log and the dashboard can hold (`reason`
    /// 512 bytes, the others 256), on a character's boundary: a node's report is another
    /// process's word and may be of any length.
    pub fn bounded(mut self) -> Self {
        cut(&mut self.reason, 512);
        cut(&mut self.source, 256);
        let named = [&mut self.peer, &mut self.principal, &mut self.service, &mut self.node];
        for text in named.into_iter().flatten() {
            cut(text, 256);
        }
        self
    }

    /// How bad it is: its kind's severity, or for an unknown kind what the reporter said.
    pub fn severity(&self) -> Severity {
        match (&self.kind, self.severity) {
            (EventKind::Other(_), Some(s)) => s,
            (kind, _) => kind.severity(),
        }
    }
}

/// Cuts `text` to at most `max` bytes, back to the start of the character that crosses it
/// (`str::floor_char_boundary` is newer than the toolchain this builds with).
fn cut(text: &mut String, max: usize) {
    if text.len() > max {
        let at = (0..=max).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
        text.truncate(at);
    }
}

/// Why the log could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("audit log {path}: {source}")]
pub struct EventLogError {
    /// The file.
    pub path: PathBuf,
    /// The cause.
    #[source]
    pub source: std::io::Error,
}

struct Inner {
    file: File,
    ring: VecDeque<Event>,
    next_id: u64,
    counts: BTreeMap<String, u64>,
}

/// The audit log of one gateway.
pub struct EventLog {
    gateway: String,
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Event>,
}

impl std::fmt::Debug for EventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLog").field("gateway", &self.gateway).finish_non_exhaustive()
    }
}

impl EventLog {
    /// Opens (or creates, 0600) the log at `path`; ids continue after the file's last event,
    /// and the last [`RING`] events are loaded for the admin API.
    pub fn open(path: &Path, gateway: &str) -> Result<Self, EventLogError> {
        let err = |source| EventLogError { path: path.to_owned(), source };
        let mut ring = VecDeque::new();
        let mut next_id = 1;
        if let Ok(f) = File::open(path) {
            for line in BufReader::new(f).lines().map_while(Result::ok) {
                if let Ok(e) = serde_json::from_str::<Event>(&line) {
                    next_id = next_id.max(e.id + 1);
                    if ring.len() == RING {
                        ring.pop_front();
                    }
                    ring.push_back(e);
                }
            }
        }
        let file = OpenOptions::new().create(true).append(true).mode(0o600).open(path).map_err(err)?;
        let (tx, _) = broadcast::channel(1024);
        Ok(EventLog {
            gateway: gateway.to_owned(),
            inner: Mutex::new(Inner { file, ring, next_id, counts: BTreeMap::new() }),
            tx,
        })
    }

    /// Records an event: appended to the file, counted, kept, broadcast.
    pub fn record(&self, new: NewEvent) -> Event {
        let time = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let event = Event {
            id: inner.next_id,
            time,
            severity: new.severity(),
            kind: new.kind,
            source: new.source,
            peer: new.peer,
            principal: new.principal,
            service: new.service,
            reason: new.reason,
            gateway: Some(self.gateway.clone()),
            node: new.node,
        };
        inner.next_id += 1;
        if let Ok(mut line) = serde_json::to_vec(&event) {
            line.push(b'\n');
            // One write per line on an O_APPEND file: lines never interleave. Not fsync'd per
            // event (a flood must not turn into a disk flood); the OS flushes within seconds.
            let _ = inner.file.write_all(&line);
        }
        match inner.counts.get_mut(event.kind.as_str()) {
            Some(n) => *n += 1,
            None => {
                inner.counts.insert(event.kind.as_str().to_owned(), 1);
            }
        }
        self.keep(inner, event)
    }

    /// Keeps `event` in the ring (dropping the oldest beyond [`RING`]) and broadcasts it.
    fn keep(&self, mut inner: std::sync::MutexGuard<'_, Inner>, event: Event) -> Event {
        if inner.ring.len() == RING {
            inner.ring.pop_front();
        }
        inner.ring.push_back(event.clone());
        drop(inner);
        let _ = self.tx.send(event.clone());
        event
    }

    /// The name of the gateway this log belongs to.
    pub fn gateway(&self) -> &str {
        &self.gateway
    }

    /// Shows an event another gateway of the network recorded (it stays in that gateway's audit
    /// file, not this one's, and is not counted here): it gets the next id of this log, keeps its
    /// time and gateway, and joins the kept events and the live stream.
    pub fn relay(&self, mut event: Event) -> Event {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        event.id = inner.next_id;
        inner.next_id += 1;
        self.keep(inner, event)
    }

    /// Events with an id above `after` (all kept ones with `None`), oldest first, at most
    /// `limit`.
    pub fn since(&self, after: Option<u64>, limit: usize) -> Vec<Event> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let after = after.unwrap_or(0);
        let matching: Vec<&Event> = inner.ring.iter().filter(|e| e.id > after).collect();
        let skip = matching.len().saturating_sub(limit);
        matching.into_iter().skip(skip).cloned().collect()
    }

    /// Live events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }

    /// Events counted by kind since this process started.
    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).counts.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: EventKind) -> NewEvent {
        NewEvent::new(kind, "127.0.0.1:1", "test")
    }

    #[test]
    fn a_report_of_any_length_is_cut_on_a_character() {
        let mut long = NewEvent::new(EventKind::PolicyDenied, "é".repeat(200), "ü".repeat(300));
        long.principal = Some("€".repeat(100));
        let cut = long.bounded();
        assert_eq!((cut.reason.len(), cut.source.len()), (512, 256));
        assert_eq!(cut.principal.as_deref(), Some("€".repeat(85).as_str()), "255 bytes: no half of a €");
        let short = ev(EventKind::PolicyDenied).bounded();
        assert_eq!((short.source.as_str(), short.reason.as_str()), ("127.0.0.1:1", "test"));
    }

    #[test]
    fn events_are_appended_counted_and_resumable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        {
            let log = EventLog::open(&path, "gw").unwrap();
            let mut live = log.subscribe();
            assert_eq!(log.record(ev(EventKind::TokenExpired)).id, 1);
            let denied = log.record(ev(EventKind::PolicyDenied));
            assert_eq!((denied.id, denied.severity), (2, Severity::Warning));
            assert_eq!(live.try_recv().unwrap().kind, EventKind::TokenExpired);
            assert_eq!(log.counts()["policy_denied"], 1);
            assert_eq!(log.since(Some(1), 10).len(), 1);
        }
        let log = EventLog::open(&path, "gw").unwrap();
        let banned = log.record(ev(EventKind::Banned));
        assert_eq!(banned.id, 3, "ids continue across restarts");
        assert_eq!(banned.severity, Severity::Critical, "the kind decides");
        let mut reported = ev(EventKind::named("from_a_newer_node"));
        reported.severity = Some(Severity::Info);
        assert_eq!(
            log.record(reported).severity,
            Severity::Info,
            "an unknown kind keeps its reporter's word"
        );
        let lines = std::fs::read_to_string(&path).unwrap();
        assert_eq!(lines.lines().count(), 4);
        for l in lines.lines() {
            let e: Event = serde_json::from_str(l).unwrap();
            assert_eq!(e.gateway.as_deref(), Some("gw"));
        }
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
