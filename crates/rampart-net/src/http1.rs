//! HTTP/1.1 connections that let go of their buffers while they idle. hyper holds a read and
//! a write buffer (8 KiB each) for as long as it serves a connection; with thousands of idle
//! keep-alive connections that is most of a gateway's memory. So a connection idle for
//! [`PARK_AFTER`](crate::watchdog::PARK_AFTER) is taken back from hyper (the bytes it read
//! and did not parse kept), waits for its next byte holding only its TLS session, and is then
//! served by hyper again, with new buffers. nginx lets go of an idle connection's buffers the
//! same way.

use std::time::Instant;

use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;

use crate::conn::{ConnClock, Verdict, Watched};
use crate::rewind::Rewind;
use crate::serve::{Answer, ServeLimits, TlsStream};
use crate::watchdog::{Round, round};

/// The stream hyper serves: the bytes it left unparsed put back in front.
pub(crate) type Stream = Rewind<Watched<Box<TlsStream>>>;

/// Most time a closing connection's TLS close is given.
const CLOSE_TIME: std::time::Duration = std::time::Duration::from_secs(1);

/// Serves `stream` with `builder` until the connection ends (how: as [`round`] says).
pub(crate) async fn serve(
    builder: &http1::Builder,
    mut stream: Stream,
    service: Answer,
    clock: &ConnClock,
    limits: &ServeLimits,
    stop: &mut watch::Receiver<bool>,
) -> Round {
    let mut stopping = false;
    loop {
        let mut conn = Box::new(builder.serve_connection(TokioIo::new(stream), service.clone()));
        let parked = match round(&mut conn, clock, limits, stop, true, &mut stopping).await {
            Round::Ended { result: Ok(()), parked } => parked && !stopping,
            other => return other,
        };
        let parts = conn.into_parts();
        stream = parts.io.into_inner();
        stream.put_back(parts.read_buf);
        // hyper's buffers are gone with `parts`; only the stream is held while it idles.
        tracing::trace!(parked, "HTTP/1.1 connection back from hyper");
        if !parked || !next_bytes(&stream, clock, limits, stop).await {
            let _ = tokio::time::timeout(CLOSE_TIME, stream.shutdown()).await;
            return Round::Ended { result: Ok(()), parked: false };
        }
    }
}

/// Waits until the client sends (or closes); `false` when the connection is to be closed
/// instead: idle past the idle timeout, or the server stopping.
async fn next_bytes(
    stream: &Stream,
    clock: &ConnClock,
    limits: &ServeLimits,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    if stream.has_prefix() {
        return true;
    }
    let Some(tls) = stream.get_ref().get_ref() else { return false };
    // The session holds no plaintext: hyper's last read of it was pending.
    let tcp = tls.get_ref().0.get_ref();
    loop {
        let wake = match clock.verdict(limits.idle_timeout, limits.header_read_timeout, true) {
            Verdict::Wait(at) => at,
            Verdict::Idle | Verdict::SlowHead => return false,
        };
        tokio::select! {
            ready = tcp.readable() => return ready.is_ok(),
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    return false;
                }
            }
            () = tokio::time::sleep_until(wake.max(Instant::now()).into()) => {}
        }
    }
}
