//! What watches a connection hyper serves: the connection's clock ([`crate::conn`]) says when
//! it idled past the idle timeout (it is then shut gracefully), when a request head trickles
//! (cut), when the request line ran past the URI limit (cut), and, for HTTP/1.1, when it idled
//! long enough to let go of its buffers ([`crate::http1`]); the accept layer's `stop` shuts
//! it gracefully.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::watch;

use crate::conn::{ConnClock, Verdict, Watched};
use crate::serve::{Answer, ServeLimits, TlsStream};

/// How long an HTTP/1.1 keep-alive connection idles before its buffers are let go of: long
/// enough that a client sending request after request never pays for new ones.
pub(crate) const PARK_AFTER: Duration = Duration::from_millis(200);

/// How one watched stretch of serving ended.
#[derive(Debug)]
pub(crate) enum Round {
    /// hyper is done with the connection; `parked` when it was asked to stop for the buffers'
    /// sake (the stream is then open and reusable).
    Ended { result: hyper::Result<()>, parked: bool },
    /// A request head did not arrive within the header timeout.
    SlowHead,
    /// The request line ran past the URI limit.
    Cut,
}

/// A hyper connection as the watchdog drives it.
pub(crate) trait Served {
    /// Serves until hyper is done; the stream is not shut down (so HTTP/1.1 can go on).
    fn poll_served(&mut self, cx: &mut Context<'_>) -> Poll<hyper::Result<()>>;
    /// Asks hyper to finish what is in flight and stop.
    fn shut(&mut self);
}

impl Served for Box<http1::Connection<TokioIo<crate::http1::Stream>, Answer>> {
    fn poll_served(&mut self, cx: &mut Context<'_>) -> Poll<hyper::Result<()>> {
        self.poll_without_shutdown(cx)
    }
    fn shut(&mut self) {
        Pin::new(&mut **self).graceful_shutdown();
    }
}

impl Served for Pin<Box<http2::Connection<TokioIo<Watched<Box<TlsStream>>>, Answer, TokioExecutor>>> {
    fn poll_served(&mut self, cx: &mut Context<'_>) -> Poll<hyper::Result<()>> {
        self.as_mut().poll(cx)
    }
    fn shut(&mut self) {
        self.as_mut().graceful_shutdown();
    }
}

/// Serves `conn` under `clock` until it ends, is cut, or (`http1`, once `stopping` is not
/// set) has idled [`PARK_AFTER`]. `stopping` is set once it was shut for good.
pub(crate) async fn round(
    conn: &mut impl Served,
    clock: &ConnClock,
    limits: &ServeLimits,
    stop: &mut watch::Receiver<bool>,
    http1: bool,
    stopping: &mut bool,
) -> Round {
    let mut parking = false;
    // A round lasts at least PARK_AFTER: one resumed for bytes waiting reads them first.
    let earliest_park = Instant::now() + PARK_AFTER;
    loop {
        let mut wake = match clock.verdict(limits.idle_timeout, limits.header_read_timeout, http1) {
            Verdict::Wait(at) => at,
            Verdict::Idle if !*stopping => {
                *stopping = true;
                conn.shut();
                continue;
            }
            Verdict::Idle => Instant::now() + limits.drain_timeout,
            Verdict::SlowHead => return Round::SlowHead,
        };
        if http1 && !*stopping {
            // Looked at again at least every PARK_AFTER: neither an answer nor a head's start
            // wakes the watchdog (a request costs it nothing), and a head is timed from when
            // it started at the next look.
            let now = Instant::now();
            wake = wake.min(now + PARK_AFTER);
            if !parking {
                match clock.park_at(PARK_AFTER).map(|at| at.max(earliest_park)) {
                    Some(at) if at <= now => {
                        parking = true;
                        conn.shut();
                        continue;
                    }
                    Some(at) => wake = wake.min(at),
                    None => {}
                }
            }
        }
        tokio::select! {
            result = poll_fn(|cx| conn.poll_served(cx)) => return Round::Ended { result, parked: parking },
            changed = stop.changed(), if !*stopping => {
                if changed.is_err() || *stop.borrow() {
                    *stopping = true;
                    conn.shut();
                }
            }
            () = tokio::time::sleep_until(wake.into()) => {}
            () = clock.cut.notified() => return Round::Cut,
        }
    }
}
