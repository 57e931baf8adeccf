//! Reading a request's body whole, under a size limit and an idle limit between frames (a slow
//! client must not hold a worker): the gateway needs it whole to send it again on a retry and
//! to record a keyed answer, a node to run its service.
//!
//! A body over the limit is refused so that the client reads the refusal: one declared too
//! long (`Content-Length`) by a client that waits on `Expect: 100-continue` is refused before
//! a byte of it is sent; any other is read on and thrown away, for a bounded time, before the
//! answer goes (as nginx's lingering close does), because a client still writing to a
//! connection closed under it sees a reset, not the 413.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;

/// How long a refused body is still read (and thrown away) so that its client reads the
/// refusal; past it the answer goes anyway.
pub const DISCARD_FOR: Duration = Duration::from_secs(10);

/// Why a body was not read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyError {
    /// Over the limit.
    TooLarge,
    /// It paused longer than allowed between frames.
    Idle,
    /// The connection broke while it was read.
    Broken,
    /// Its framing does not parse (a bad chunk size or line): a broken or hostile client.
    Malformed,
}

/// Why reading a frame failed: what the client sent does not parse (hyper's chunk decoder
/// says so with an `InvalidData` or `InvalidInput` I/O error), or else it went away.
fn frame_error(e: &(dyn std::error::Error + 'static)) -> BodyError {
    let parse = |io: &std::io::Error| {
        matches!(io.kind(), std::io::ErrorKind::InvalidData | std::io::ErrorKind::InvalidInput)
    };
    let mut cause = Some(e);
    while let Some(c) = cause {
        if c.downcast_ref::<std::io::Error>().is_some_and(parse) {
            return BodyError::Malformed;
        }
        cause = c.source();
    }
    BodyError::Broken
}

/// Reads a request's `body` whole, refusing more than `limit` bytes or a pause longer than
/// `idle`. Over the limit, the rest is read and thrown away first ([`DISCARD_FOR`] at most),
/// unless its length was declared and the client waits for `100 Continue` (`waits`): then
/// nothing of it is read.
pub async fn read_request<B>(
    body: &mut B,
    limit: usize,
    idle: Duration,
    waits: bool,
) -> Result<Bytes, BodyError>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: Into<crate::BoxError>,
{
    if waits && body.size_hint().lower() > limit as u64 {
        return Err(BodyError::TooLarge);
    }
    let read = read(body, limit, idle).await;
    if read == Err(BodyError::TooLarge) {
        discard(body, idle).await;
    }
    read
}

/// Reads `body` whole, refusing more than `limit` bytes (declared or sent) or a pause longer
/// than `idle`.
pub async fn read<B>(body: &mut B, limit: usize, idle: Duration) -> Result<Bytes, BodyError>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: Into<crate::BoxError>,
{
    if body.size_hint().lower() > limit as u64 {
        return Err(BodyError::TooLarge);
    }
    let mut buf = bytes::BytesMut::new();
    loop {
        match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => return Err(BodyError::Idle),
            Ok(None) => return Ok(buf.freeze()),
            Ok(Some(Err(e))) => return Err(frame_error(&*e.into())),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    if buf.len() + data.len() > limit {
                        return Err(BodyError::TooLarge);
                    }
                    buf.extend_from_slice(&data);
                }
            }
        }
    }
}

/// Whether a request's client waits for `100 Continue` before it sends its body (HTTP/1.1
/// only: an HTTP/2 client that is answered early is told to stop by the stream's reset).
pub fn waits_for_continue(version: http::Version, headers: &http::HeaderMap) -> bool {
    version == http::Version::HTTP_11
        && headers
            .get(http::header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

/// Reads `body` to its end and throws it away, for [`DISCARD_FOR`] at most and no longer than
/// `idle` between frames.
async fn discard<B>(body: &mut B, idle: Duration)
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: Into<crate::BoxError>,
{
    let until = Instant::now() + DISCARD_FOR;
    loop {
        let left = until.saturating_duration_since(Instant::now()).min(idle);
        match tokio::time::timeout(left, body.frame()).await {
            Ok(Some(Ok(_))) if Instant::now() < until => {}
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{Full, StreamBody};

    type Frames = tokio_stream::Iter<std::vec::IntoIter<Result<hyper::body::Frame<Bytes>, std::io::Error>>>;

    /// A body of `n` frames of `size` bytes.
    fn chunks(n: usize, size: usize) -> StreamBody<Frames> {
        let frames: Vec<_> =
            (0..n).map(|_| Ok(hyper::body::Frame::data(Bytes::from(vec![7u8; size])))).collect();
        StreamBody::new(tokio_stream::iter(frames))
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_read_to_its_end_and_refused() {
        let mut body = chunks(10, 1000);
        assert_eq!(
            read_request(&mut body, 4000, Duration::from_secs(1), false).await,
            Err(BodyError::TooLarge)
        );
        assert!(body.frame().await.is_none(), "the rest was not read");
        let mut within = chunks(4, 1000);
        assert_eq!(
            read_request(&mut within, 4000, Duration::from_secs(1), false).await.map(|b| b.len()),
            Ok(4000)
        );
    }

    #[tokio::test]
    async fn a_frame_that_does_not_parse_is_malformed_and_a_lost_client_broken() {
        for (kind, want) in [
            (std::io::ErrorKind::InvalidInput, BodyError::Malformed),
            (std::io::ErrorKind::InvalidData, BodyError::Malformed),
            (std::io::ErrorKind::ConnectionReset, BodyError::Broken),
        ] {
            let frames: Vec<Result<hyper::body::Frame<Bytes>, std::io::Error>> =
                vec![Err(std::io::Error::new(kind, "from the decoder"))];
            let mut body = StreamBody::new(tokio_stream::iter(frames));
            assert_eq!(read(&mut body, 4000, Duration::from_secs(1)).await, Err(want), "{kind:?}");
        }
    }

    #[tokio::test]
    async fn a_declared_length_over_the_limit_is_refused_unread_when_the_client_waits() {
        let mut body = Full::new(Bytes::from(vec![0u8; 5000]));
        assert_eq!(
            read_request(&mut body, 4000, Duration::from_secs(1), true).await,
            Err(BodyError::TooLarge)
        );
        assert!(body.frame().await.is_some(), "it was read");
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::EXPECT, http::HeaderValue::from_static("100-Continue"));
        assert!(waits_for_continue(http::Version::HTTP_11, &headers));
        assert!(!waits_for_continue(http::Version::HTTP_2, &headers));
        assert!(!waits_for_continue(http::Version::HTTP_11, &http::HeaderMap::new()));
    }
}
