//! Reading a body whole, under a size limit and an idle limit between frames (a slow client
//! must not hold a worker): a request's is needed whole to be sent again on a retry, and a
//! keyed answer's to be recorded.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;

/// Why a body was not read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyError {
    /// Over the limit.
    TooLarge,
    /// It paused longer than allowed between frames.
    Idle,
    /// The connection broke while it was read.
    Broken,
}

/// Reads `body` whole, refusing more than `limit` bytes or a pause longer than `idle`.
pub async fn read<B>(mut body: B, limit: usize, idle: Duration) -> Result<Bytes, BodyError>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
{
    let mut buf = bytes::BytesMut::new();
    loop {
        match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => return Err(BodyError::Idle),
            Ok(None) => return Ok(buf.freeze()),
            Ok(Some(Err(_))) => return Err(BodyError::Broken),
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
