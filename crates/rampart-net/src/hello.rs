//! A TLS ClientHello read without ending TLS: the bytes are kept, and a copy of each is fed to
//! rustls's [`Acceptor`] (no hand-written parser) until it has the whole ClientHello, so that
//! the server name (SNI) is known while every byte can still be relayed to a node untouched,
//! or replayed into a handshake here ([`crate::rewind::Rewind`]). The read is bounded in size
//! and by the handshake's deadline: a ClientHello spread over many packets (a post-quantum
//! key share) is read whole, one never finished costs at most the deadline.

use bytes::Bytes;
use rustls::server::Acceptor;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::time::Instant;

/// The largest ClientHello read: a TLS record (16 KiB) and its header, twice over.
pub const MAX_CLIENT_HELLO: usize = 2 * (16 * 1024 + 5);

/// A ClientHello as it came.
#[derive(Clone, Debug)]
pub struct ClientHello {
    /// Every byte read, the ClientHello's record(s) and anything the client sent after them.
    pub bytes: Bytes,
    /// The server name it asks for, if any (none for a client that dialled an address).
    pub server_name: Option<String>,
}

/// Why no ClientHello was read.
#[derive(Debug, thiserror::Error)]
pub enum HelloError {
    /// More than [`MAX_CLIENT_HELLO`] bytes without a whole ClientHello.
    #[error("no whole ClientHello within {MAX_CLIENT_HELLO} bytes")]
    TooLarge,
    /// Not a TLS ClientHello.
    #[error("not a TLS ClientHello: {0}")]
    NotTls(String),
    /// The client closed before its ClientHello was whole.
    #[error("the client closed before its ClientHello was whole")]
    Closed,
    /// The deadline passed first.
    #[error("the ClientHello was not finished in time")]
    TimedOut,
    /// The connection failed.
    #[error("reading the ClientHello: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads a whole ClientHello from `io` by `deadline`.
pub async fn read_client_hello<R: AsyncRead + Unpin>(
    io: &mut R,
    deadline: Instant,
) -> Result<ClientHello, HelloError> {
    let mut acceptor = Acceptor::default();
    let mut bytes = Vec::with_capacity(2048);
    let mut chunk = [0u8; 4096];
    loop {
        let n = match tokio::time::timeout_at(deadline, io.read(&mut chunk)).await {
            Err(_) => return Err(HelloError::TimedOut),
            Ok(read) => read?,
        };
        if n == 0 {
            return Err(HelloError::Closed);
        }
        if bytes.len() + n > MAX_CLIENT_HELLO {
            return Err(HelloError::TooLarge);
        }
        bytes.extend_from_slice(&chunk[..n]);
        // A copy for the acceptor, which keeps its own.
        let mut fed = &chunk[..n];
        while !fed.is_empty() {
            // Reading from a slice fails only when the acceptor's buffer is full.
            if acceptor.read_tls(&mut fed).map_err(|_| HelloError::TooLarge)? == 0 {
                return Err(HelloError::TooLarge);
            }
        }
        match acceptor.accept() {
            Ok(Some(accepted)) => {
                let server_name = accepted.client_hello().server_name().map(str::to_owned);
                return Ok(ClientHello { bytes: Bytes::from(bytes), server_name });
            }
            Ok(None) => continue,
            Err((e, _alert)) => return Err(HelloError::NotTls(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Arc;
    use std::time::Duration;

    use rustls::pki_types::ServerName;
    use tokio::io::AsyncWriteExt;

    use super::*;

    /// The first flight of a real rustls client asking for `name`, with `alpn` offered.
    fn client_hello(name: ServerName<'static>, alpn: Vec<Vec<u8>>) -> Vec<u8> {
        let roots = rustls::RootCertStore::empty();
        let mut config = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn;
        let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let mut out = Vec::new();
        conn.write_tls(&mut out).unwrap();
        out
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(2)
    }

    #[tokio::test]
    async fn the_server_name_is_read_whole_or_one_byte_at_a_time_and_every_byte_kept() {
        let hello = client_hello(ServerName::try_from("hello.example.test").unwrap(), Vec::new());
        let read = read_client_hello(&mut hello.as_slice(), soon()).await.unwrap();
        assert_eq!(read.server_name.as_deref(), Some("hello.example.test"));
        assert_eq!(read.bytes.as_ref(), hello.as_slice());

        let (mut client, mut server) = tokio::io::duplex(64);
        let sent = hello.clone();
        tokio::spawn(async move {
            for b in sent {
                client.write_all(&[b]).await.unwrap();
                tokio::task::yield_now().await;
            }
            let _ = client.shutdown().await;
        });
        let read = read_client_hello(&mut server, soon()).await.unwrap();
        assert_eq!(read.server_name.as_deref(), Some("hello.example.test"));
        assert_eq!(read.bytes.as_ref(), hello.as_slice());
    }

    #[tokio::test]
    async fn a_large_hello_and_one_without_a_name_are_read() {
        let alpn = (0..12).map(|i| vec![b'a' + i; 200]).collect();
        let hello = client_hello(ServerName::try_from("big.example.test").unwrap(), alpn);
        assert!(hello.len() > 1500, "{} bytes", hello.len());
        let read = read_client_hello(&mut hello.as_slice(), soon()).await.unwrap();
        assert_eq!(read.server_name.as_deref(), Some("big.example.test"));
        let by_address = client_hello(ServerName::from(std::net::IpAddr::from([127, 0, 0, 1])), Vec::new());
        assert_eq!(read_client_hello(&mut by_address.as_slice(), soon()).await.unwrap().server_name, None);
    }

    #[tokio::test(start_paused = true)]
    async fn unfinished_foreign_or_endless_hellos_are_refused_at_a_bounded_cost() {
        let hello = client_hello(ServerName::try_from("hello.example.test").unwrap(), Vec::new());
        // Half of it, then nothing: refused at the deadline.
        let (mut client, mut server) = tokio::io::duplex(4096);
        client.write_all(&hello[..hello.len() / 2]).await.unwrap();
        let started = Instant::now();
        let e = read_client_hello(&mut server, Instant::now() + Duration::from_secs(3)).await.unwrap_err();
        assert!(matches!(e, HelloError::TimedOut), "{e}");
        assert_eq!(started.elapsed().as_secs(), 3);
        drop(client);
        // Half of it, then closed.
        let e = read_client_hello(&mut &hello[..hello.len() / 2], soon()).await.unwrap_err();
        assert!(matches!(e, HelloError::Closed), "{e}");
        // Plain HTTP.
        let e = read_client_hello(&mut &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..], soon()).await.unwrap_err();
        assert!(matches!(e, HelloError::NotTls(_)), "{e}");
        // A record header announcing a handshake that never ends: bounded in size.
        let mut endless = vec![0x16, 0x03, 0x01, 0x40, 0x00, 0x01, 0xff, 0xff, 0xff];
        endless.resize(MAX_CLIENT_HELLO + 100, 0);
        let e = read_client_hello(&mut endless.as_slice(), soon()).await.unwrap_err();
        assert!(matches!(e, HelloError::TooLarge | HelloError::NotTls(_)), "{e}");
    }
}
