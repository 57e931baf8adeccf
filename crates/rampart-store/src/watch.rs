//! Fan-out of committed changes to watchers, with a bounded history so a watcher can resume
//! from a recent revision (after a reconnect) without missing or repeating an event.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::mpsc;

use crate::error::{Result, StoreError};
use crate::types::{Event, Revision, Watch};

/// Events kept for resuming watches.
const HISTORY: usize = 10_000;
/// Events buffered per watcher before it counts as lagging and is dropped.
const WATCHER_BUFFER: usize = 4_096;

struct Watcher {
    prefix: String,
    tx: mpsc::Sender<Event>,
    lagged: Arc<AtomicBool>,
}

pub(crate) struct WatchHub {
    watchers: Vec<Watcher>,
    history: VecDeque<Event>,
    /// Every event of this revision and later is in `history`.
    complete_from: Revision,
}

impl WatchHub {
    /// A hub for a store whose last committed revision is `current`.
    pub fn new(current: Revision) -> Self {
        WatchHub { watchers: Vec::new(), history: VecDeque::new(), complete_from: current + 1 }
    }

    /// Sends one committed transaction's events, in order, to every interested watcher.
    /// Called with the store's write lock held, so transactions arrive in revision order.
    pub fn publish(&mut self, events: &[Event]) {
        for ev in events {
            if self.history.len() == HISTORY
                && let Some(old) = self.history.pop_front()
            {
                self.complete_from = old.kv.mod_revision + 1;
            }
            self.history.push_back(ev.clone());
        }
        self.watchers.retain(|w| {
            for ev in events.iter().filter(|e| e.kv.key.starts_with(&w.prefix)) {
                match w.tx.try_send(ev.clone()) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        w.lagged.store(true, Ordering::Release);
                        return false;
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return false,
                }
            }
            true
        });
    }

    /// A watch on `prefix` replaying history from `from` (inclusive), then live changes.
    pub fn subscribe(&mut self, prefix: &str, from: Option<Revision>, current: Revision) -> Result<Watch> {
        let (tx, rx) = mpsc::channel(WATCHER_BUFFER);
        let lagged = Arc::new(AtomicBool::new(false));
        if let Some(from) = from
            && from <= current
        {
            if from < self.complete_from {
                return Err(StoreError::Compacted { requested: from, oldest: self.complete_from });
            }
            for ev in
                self.history.iter().filter(|e| e.kv.mod_revision >= from && e.kv.key.starts_with(prefix))
            {
                if tx.try_send(ev.clone()).is_err() {
                    lagged.store(true, Ordering::Release);
                    return Ok(Watch::new(rx, lagged));
                }
            }
        }
        self.watchers.push(Watcher { prefix: prefix.to_owned(), tx, lagged: lagged.clone() });
        Ok(Watch::new(rx, lagged))
    }
}
