//! Connection workers: one single-threaded tokio runtime per core, each on a thread of its
//! own, to which the accept layer hands connections in turn, as nginx hands them to its worker
//! processes. A connection, the requests on it and what they await then run on one thread:
//! no task moves between threads, no worker is woken to steal, and a request's wake-ups stay
//! in one CPU's cache. Measured against tokio's work-stealing scheduler in docs/benchmarks.md.
//!
//! A process installs its workers once ([`install`]), as it builds its runtime once; the
//! accept layer then spreads connections over them ([`spawn_connection`]). Without workers
//! (tests, tools) connections are tasks of the runtime that accepted them. What a request
//! draws on per worker, such as the pool of connections to nodes, is a [`PerWorker`]: a
//! pooled connection's task then runs where its requests do.

use std::cell::Cell;
use std::future::Future;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::runtime::{Builder, Handle};

/// A set of single-threaded runtimes, each driven by its own thread for the life of the
/// process.
#[derive(Debug)]
pub struct Workers {
    handles: Vec<Handle>,
    next: AtomicUsize,
}

impl Workers {
    /// Starts `count` workers (at least one), their threads named `<name>-<i>`.
    pub fn start(count: usize, name: &str) -> std::io::Result<Workers> {
        let mut handles = Vec::new();
        for i in 0..count.max(1) {
            let rt = Builder::new_current_thread().enable_all().build()?;
            handles.push(rt.handle().clone());
            // The thread drives the runtime for good: a worker ends with the process.
            std::thread::Builder::new().name(format!("{name}-{i}")).spawn(move || {
                WORKER.set(Some(i));
                rt.block_on(std::future::pending::<()>());
            })?;
        }
        Ok(Workers { handles, next: AtomicUsize::new(0) })
    }

    /// How many workers there are.
    pub fn count(&self) -> usize {
        self.handles.len()
    }

    /// Runs `task` on the next worker in turn.
    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        drop(self.handles[i].spawn(task));
    }
}

/// How many workers a server runs when not told: one per CPU it may use.
pub fn default_count() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

static INSTALLED: OnceLock<Workers> = OnceLock::new();

thread_local! {
    /// The index of the worker this thread drives, if it drives one.
    static WORKER: Cell<Option<usize>> = const { Cell::new(None) };
}

/// One `T` for each installed worker, and one for every other thread (the main runtime's
/// tasks: probes, followers).
#[derive(Clone, Debug)]
pub struct PerWorker<T> {
    each: Vec<T>,
    elsewhere: T,
}

impl<T> PerWorker<T> {
    /// One `make()` for each installed worker and one for elsewhere (just that one when no
    /// workers are installed).
    pub fn new(mut make: impl FnMut() -> T) -> Self {
        let count = INSTALLED.get().map_or(0, Workers::count);
        PerWorker { each: (0..count).map(|_| make()).collect(), elsewhere: make() }
    }

    /// The current thread's `T`.
    pub fn get(&self) -> &T {
        WORKER.get().and_then(|i| self.each.get(i)).unwrap_or(&self.elsewhere)
    }
}

/// Makes `workers` the ones the accept layer hands connections to, for the life of the
/// process. A second call changes nothing and says so (`false`).
pub fn install(workers: Workers) -> bool {
    INSTALLED.set(workers).is_ok()
}

/// Serves one accepted connection: `serve` gets the stream registered with the runtime it
/// runs on, a worker's when workers are installed (the stream leaves the accepting runtime's
/// reactor for the worker's), else the current runtime's.
pub(crate) fn spawn_connection<F, Fut>(tcp: tokio::net::TcpStream, serve: F)
where
    F: FnOnce(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(workers) = INSTALLED.get() else {
        tokio::spawn(serve(tcp));
        return;
    };
    let std = match tcp.into_std() {
        Ok(s) => s,
        Err(e) => return tracing::warn!("a connection could not be handed to a worker: {e}"),
    };
    workers.spawn(async move {
        match tokio::net::TcpStream::from_std(std) {
            Ok(tcp) => serve(tcp).await,
            Err(e) => tracing::warn!("a worker could not take a connection: {e}"),
        }
    });
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn tasks_go_to_each_worker_in_turn_and_run_there() {
        let workers = Workers::start(2, "test-worker").unwrap();
        assert_eq!(workers.count(), 2);
        let (tx, rx) = std::sync::mpsc::channel();
        for _ in 0..4 {
            let tx = tx.clone();
            workers.spawn(async move {
                tokio::task::yield_now().await;
                tx.send(std::thread::current().name().unwrap().to_owned()).unwrap();
            });
        }
        let seen: Vec<String> =
            (0..4).map(|_| rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap()).collect();
        let threads: BTreeSet<_> = seen.iter().map(String::as_str).collect();
        assert_eq!(threads, BTreeSet::from(["test-worker-0", "test-worker-1"]), "{seen:?}");
    }

    #[test]
    fn each_worker_has_its_own_and_other_threads_share_one() {
        let workers = Workers::start(2, "test-local").unwrap();
        let made = AtomicUsize::new(0);
        // Not installed: the worker threads still know their index, and `each` is empty, so
        // every thread gets the one made for elsewhere.
        let local = std::sync::Arc::new(PerWorker::new(|| made.fetch_add(1, Ordering::Relaxed)));
        assert_eq!(*local.get(), 0);
        let with_each = std::sync::Arc::new(PerWorker { each: vec![10, 11], elsewhere: 99 });
        let (tx, rx) = std::sync::mpsc::channel();
        for _ in 0..2 {
            let (tx, with_each) = (tx.clone(), with_each.clone());
            workers.spawn(async move { tx.send(*with_each.get()).unwrap() });
        }
        let mut got: Vec<i32> =
            (0..2).map(|_| rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap()).collect();
        got.sort_unstable();
        assert_eq!(got, [10, 11]);
        assert_eq!(*with_each.get(), 99, "a thread that drives no worker");
    }

    #[test]
    fn zero_workers_means_one() {
        assert_eq!(Workers::start(0, "test-one").unwrap().count(), 1);
    }
}
