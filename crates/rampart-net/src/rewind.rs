//! A stream whose first bytes were already read (a ClientHello, to learn its server name), put
//! back in front: reads return them first, then the stream's own; writes go straight through.
//! Written here because tokio and hyper keep theirs private.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// `inner`, with `prefix` read first.
#[derive(Debug)]
pub struct Rewind<T> {
    prefix: Bytes,
    inner: T,
}

impl<T> Rewind<T> {
    /// `inner` with `prefix` put back in front of it.
    pub fn new(prefix: Bytes, inner: T) -> Self {
        Rewind { prefix, inner }
    }

    /// The stream itself (what is left of the prefix is dropped).
    pub fn into_inner(self) -> T {
        self.inner
    }

    /// The stream itself, borrowed.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// Whether bytes put back are still to be read.
    pub fn has_prefix(&self) -> bool {
        !self.prefix.is_empty()
    }

    /// Puts `bytes` back in front of what is still to be read. Empty ones are dropped: an empty
    /// slice of a buffer would keep the whole buffer.
    pub fn put_back(&mut self, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        self.prefix =
            if self.prefix.is_empty() { bytes } else { [bytes, self.prefix.clone()].concat().into() };
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Rewind<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Rewind<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn the_prefix_comes_first_then_the_stream_and_writes_pass_through() {
        let (mut far, near) = tokio::io::duplex(64);
        let mut rewound = Rewind::new(Bytes::from_static(b"hello "), near);
        far.write_all(b"world").await.unwrap();
        drop(far.shutdown().await);
        let mut small = [0u8; 4];
        rewound.read_exact(&mut small).await.unwrap();
        assert_eq!(&small, b"hell");
        let mut rest = String::new();
        let (mut far2, near2) = tokio::io::duplex(64);
        let mut other = Rewind::new(Bytes::new(), near2);
        other.write_all(b"ping").await.unwrap();
        let mut got = [0u8; 4];
        far2.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"ping");
        drop(far);
        rewound.put_back(Bytes::from_static(b"say "));
        rewound.put_back(Bytes::from_static(b"I "));
        rewound.read_to_string(&mut rest).await.unwrap();
        assert_eq!(rest, "I say o world");
    }
}
