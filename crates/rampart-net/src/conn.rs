//! One served connection's clock and bytes: what tells a client that idles between keep-alive
//! requests (closed quietly after the idle timeout) from one whose request head trickles (a
//! slow client), catches an HTTP/1.1 request line over the URI limit before the head limit
//! does (so it is answered 414, not 431), and hands the connection back after hyper is done
//! with it so that a refused request can be drained before closing (a lingering close: the
//! client still sending its oversized head gets to read the answer instead of a reset).
//!
//! hyper's own header-read timer starts while a keep-alive connection waits for its next
//! request, so it cannot tell idling from trickling; this is why the clock is kept here.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::oneshot;

/// No head in progress.
const NONE: u64 = u64::MAX;

/// Shared by a connection's IO wrapper, its request handler and its watchdog.
#[derive(Debug)]
pub(crate) struct ConnClock {
    born: Instant,
    /// Longest HTTP/1.1 request line accepted (method, URI, version); 0 for HTTP/2.
    max_line: u64,
    read_total: AtomicU64,
    /// `read_total` when the last answer was produced.
    read_at_answer: AtomicU64,
    in_flight: AtomicUsize,
    /// Milliseconds since `born` of the last answer (or of the connection's start).
    last_answer_ms: AtomicU64,
    /// Milliseconds since `born` of the first byte after the last answer, or [`NONE`].
    head_started_ms: AtomicU64,
    /// Request-line bytes seen without its end since the last answer.
    line_seen: AtomicU64,
    line_done: AtomicBool,
    uri_too_long: AtomicBool,
    /// A request asked for the connection to end after its answer (HTTP/1.0, or
    /// `Connection: close`): hyper then ends an answer of unknown length by closing, so the
    /// connection is never parked.
    closing: AtomicBool,
    /// Woken when the connection must be cut (the request line ran past the URI limit). A
    /// head's start wakes nobody: the watchdog looks at a busy HTTP/1.1 connection at least
    /// every [`PARK_AFTER`](crate::watchdog::PARK_AFTER) and times the head from when it
    /// started, so that a request costs no wake-up of its watchdog.
    pub(crate) cut: tokio::sync::Notify,
}

/// What the watchdog should do now.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Nothing yet; look again at this instant.
    Wait(Instant),
    /// Idle past the idle timeout: close quietly.
    Idle,
    /// A request head started and is not complete in time: a slow client.
    SlowHead,
}

impl ConnClock {
    pub(crate) fn new(max_line: usize) -> Self {
        ConnClock {
            born: Instant::now(),
            max_line: max_line as u64,
            read_total: AtomicU64::new(0),
            read_at_answer: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            last_answer_ms: AtomicU64::new(0),
            head_started_ms: AtomicU64::new(NONE),
            line_seen: AtomicU64::new(0),
            line_done: AtomicBool::new(false),
            uri_too_long: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            cut: tokio::sync::Notify::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.born.elapsed().as_millis() as u64
    }

    /// A request was handed to the handler.
    pub(crate) fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
    }

    /// The handler produced its answer.
    pub(crate) fn request_answered(&self) {
        self.read_at_answer.store(self.read_total.load(Ordering::Acquire), Ordering::Release);
        self.last_answer_ms.store(self.now_ms(), Ordering::Release);
        self.head_started_ms.store(NONE, Ordering::Release);
        self.line_seen.store(0, Ordering::Release);
        self.line_done.store(false, Ordering::Release);
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    /// Whether the request line ran past the URI limit (the connection was cut for it).
    pub(crate) fn uri_too_long(&self) -> bool {
        self.uri_too_long.load(Ordering::Acquire)
    }

    /// Counts bytes read; `Err` when they make the request line too long (and the watchdog is
    /// told to cut the connection).
    fn read(&self, bytes: &[u8]) -> io::Result<()> {
        let before = self.read_total.fetch_add(bytes.len() as u64, Ordering::AcqRel);
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return Ok(());
        }
        if before == self.read_at_answer.load(Ordering::Acquire) {
            self.head_started_ms.store(self.now_ms(), Ordering::Release);
        }
        if self.max_line == 0 || self.line_done.load(Ordering::Acquire) {
            return Ok(());
        }
        let seen = self.line_seen.load(Ordering::Acquire);
        // Only what starts like a request line (a method in capitals) is measured: bytes of a
        // body the handler did not read are not a request line.
        if seen == 0 && !bytes.first().is_some_and(u8::is_ascii_uppercase) {
            self.line_done.store(true, Ordering::Release);
            return Ok(());
        }
        let line = match bytes.iter().position(|b| *b == b'\n') {
            Some(end) => {
                self.line_done.store(true, Ordering::Release);
                seen + end as u64
            }
            None => {
                self.line_seen.store(seen + bytes.len() as u64, Ordering::Release);
                seen + bytes.len() as u64
            }
        };
        if line > self.max_line {
            self.uri_too_long.store(true, Ordering::Release);
            self.cut.notify_one();
            return Err(io::Error::new(io::ErrorKind::InvalidData, "request line over the URI limit"));
        }
        Ok(())
    }

    /// A request asked for the connection to end after its answer.
    pub(crate) fn closing(&self) {
        self.closing.store(true, Ordering::Release);
    }

    /// When an HTTP/1.1 connection idle since its last answer may let go of its buffers
    /// (`after` then); `None` while a request is in flight or a head is arriving, and once a
    /// request asked for the connection to end.
    pub(crate) fn park_at(&self, after: Duration) -> Option<Instant> {
        let busy = self.in_flight.load(Ordering::Acquire) > 0
            || self.head_started_ms.load(Ordering::Acquire) != NONE
            || self.closing.load(Ordering::Acquire);
        let answered = Duration::from_millis(self.last_answer_ms.load(Ordering::Acquire));
        (!busy).then(|| self.born + answered + after)
    }

    /// Idle or slow, given the two timeouts. `slow_heads` is false for HTTP/2, whose control
    /// frames arrive between requests.
    pub(crate) fn verdict(&self, idle: Duration, header: Duration, slow_heads: bool) -> Verdict {
        let now = self.now_ms();
        let at = |ms: u64| self.born + Duration::from_millis(ms);
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return Verdict::Wait(at(now) + idle.min(header));
        }
        let started = self.head_started_ms.load(Ordering::Acquire);
        if slow_heads && started != NONE {
            let due = started + header.as_millis() as u64;
            return if now >= due { Verdict::SlowHead } else { Verdict::Wait(at(due)) };
        }
        let due = self.last_answer_ms.load(Ordering::Acquire) + idle.as_millis() as u64;
        if now >= due { Verdict::Idle } else { Verdict::Wait(at(due)) }
    }
}

/// The connection's stream as hyper sees it: counts what is read into the [`ConnClock`], and
/// gives the stream back (through `back`) when hyper drops it.
#[derive(Debug)]
pub(crate) struct Watched<T> {
    io: Option<T>,
    clock: Arc<ConnClock>,
    /// `T` is a box (a channel of a TLS stream itself would hold room for kilobytes for the
    /// life of every connection).
    back: Option<oneshot::Sender<T>>,
}

impl<T> Watched<T> {
    pub(crate) fn new(io: T, clock: Arc<ConnClock>) -> (Self, oneshot::Receiver<T>) {
        let (tx, rx) = oneshot::channel();
        (Watched { io: Some(io), clock, back: Some(tx) }, rx)
    }

    /// The stream, unless it was handed back.
    pub(crate) fn get_ref(&self) -> Option<&T> {
        self.io.as_ref()
    }
}

impl<T> Drop for Watched<T> {
    fn drop(&mut self) {
        if let (Some(io), Some(back)) = (self.io.take(), self.back.take()) {
            let _ = back.send(io);
        }
    }
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "connection already handed back")
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let Some(io) = this.io.as_mut() else { return Poll::Ready(Err(gone())) };
        let before = buf.filled().len();
        match Pin::new(io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => match this.clock.read(&buf.filled()[before..]) {
                Ok(()) => Poll::Ready(Ok(())),
                // The connection is being cut (the watchdog was told): hyper sees nothing
                // more, so the stream comes back as it is, to answer 414 on.
                Err(_) => {
                    buf.set_filled(before);
                    Poll::Pending
                }
            },
            other => other,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut().io.as_mut() {
            Some(io) => Pin::new(io).poll_write(cx, buf),
            None => Poll::Ready(Err(gone())),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().io.as_mut() {
            Some(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            None => Poll::Ready(Err(gone())),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.io.as_ref().is_some_and(AsyncWrite::is_write_vectored)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().io.as_mut() {
            Some(io) => Pin::new(io).poll_flush(cx),
            None => Poll::Ready(Err(gone())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().io.as_mut() {
            Some(io) => Pin::new(io).poll_shutdown(cx),
            None => Poll::Ready(Err(gone())),
        }
    }
}

/// Most time and bytes a refused connection is drained for before it is closed.
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 1 << 20;

/// Writes `answer` (if any), then reads and discards what the client is still sending (up to
/// [`LINGER_TIME`] and [`LINGER_BYTES`], or its end), and closes: so that a client refused
/// mid-request reads the refusal instead of a connection reset.
pub(crate) async fn linger_close<T: AsyncRead + AsyncWrite + Unpin>(mut io: T, answer: Option<&[u8]>) {
    let drain = async {
        if let Some(a) = answer {
            io.write_all(a).await?;
            io.flush().await?;
        }
        let mut buf = vec![0u8; 16 << 10];
        let mut drained = 0;
        while drained < LINGER_BYTES {
            match io.read(&mut buf).await? {
                0 => break,
                n => drained += n,
            }
        }
        io.shutdown().await
    };
    let _ = tokio::time::timeout(LINGER_TIME, drain).await;
}

/// The 414 answer written when the request line is over the limit (hyper never parsed it).
pub(crate) fn uri_too_long_answer() -> Vec<u8> {
    let body = r#"{"error":"uri_too_long","reason":"the request URI is too long"}"#;
    format!(
        "HTTP/1.1 414 URI Too Long\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn idle_is_not_slow_and_a_trickling_head_is() {
        let c = ConnClock::new(100);
        let (idle, header) = (Duration::from_millis(0), Duration::from_millis(0));
        assert_eq!(c.verdict(idle, header, true), Verdict::Idle);
        c.read(b"GET / HT").unwrap();
        assert_eq!(c.verdict(idle, header, true), Verdict::SlowHead);
        assert_eq!(c.verdict(idle, header, false), Verdict::Idle, "HTTP/2 frames are not heads");
        c.request_started();
        assert!(matches!(c.verdict(idle, header, true), Verdict::Wait(_)));
        c.request_answered();
        assert_eq!(c.verdict(idle, header, true), Verdict::Idle, "answered and idle again");
    }

    #[test]
    fn only_an_idle_connection_that_may_go_on_is_parked() {
        let c = ConnClock::new(100);
        let after = Duration::from_millis(200);
        assert!(c.park_at(after).is_some(), "idle since it began");
        c.read(b"GET / HTTP/1.1\r\n").unwrap();
        assert!(c.park_at(after).is_none(), "a head arriving");
        c.request_started();
        assert!(c.park_at(after).is_none(), "a request in flight");
        c.request_answered();
        let at = c.park_at(after).unwrap();
        assert!(at >= Instant::now() + Duration::from_millis(150), "200 ms after the answer");
        c.closing();
        assert!(c.park_at(after).is_none(), "a request asked for the end");
    }

    #[test]
    fn a_long_request_line_is_caught_across_reads() {
        let c = ConnClock::new(20);
        c.read(b"GET /aaaaaaaaaa").unwrap();
        assert!(c.read(b"aaaaaaaaaa").is_err());
        assert!(c.uri_too_long());
        let c = ConnClock::new(20);
        c.read(b"GET / HTTP/1.1\r\nhost: x\r\n").unwrap();
        c.read(&[b'x'; 100]).unwrap(); // headers: the head limit's business, not the URI's
        let c = ConnClock::new(20);
        c.read(&[b'{'; 100]).unwrap(); // not a request line
    }
}
