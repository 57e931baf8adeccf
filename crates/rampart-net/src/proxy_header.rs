//! The PROXY protocol (HAProxy's; v1 text, v2 binary) on a front listener: a load balancer in
//! front of the gateway sends the client's own address ahead of the TLS handshake, so that
//! admission, bans and events see the client and not the balancer. Only the configured
//! forwarders may send the header, and they must; from anyone else a header is an attempt to
//! forge an address, and refused.
//!
//! The header is parsed by the `ppp` crate. It is read here byte-exactly — never a byte past
//! it, since the TLS handshake follows on the same stream — and bounded in size; the caller
//! bounds it in time.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpStream;

/// The v2 header's first 12 bytes.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// The longest v1 header, CRLF included (the protocol's own limit).
const V1_MAX: usize = 107;
/// The most address and TLV bytes a v2 header may carry here: addresses take at most 216
/// (UNIX), and the TLVs balancers add (a connection id, the TLS SNI…) a few hundred more.
const V2_MAX_BODY: usize = 1024;

/// Which sources must send a PROXY protocol header (and only they may). Empty: none.
#[derive(Clone, Debug, Default)]
pub struct ProxyProtocol {
    from: Arc<[IpNet]>,
}

/// Why a connection's PROXY protocol header was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProxyRefusal {
    /// A trusted forwarder's connection did not start with a header.
    #[error("a connection from a trusted forwarder came without a PROXY protocol header")]
    Missing,
    /// A header from a source that is not a trusted forwarder.
    #[error("a PROXY protocol header from a source that is not a trusted forwarder")]
    Untrusted,
    /// A header that does not parse, is too long, or stops short.
    #[error("a malformed PROXY protocol header: {0}")]
    Malformed(String),
}

impl ProxyProtocol {
    /// Headers required from (and allowed from) these networks only.
    pub fn new(from: Vec<IpNet>) -> Self {
        ProxyProtocol { from: from.into() }
    }

    /// Whether any source is trusted to send headers.
    pub fn is_enabled(&self) -> bool {
        !self.from.is_empty()
    }

    /// Whether `ip` is a trusted forwarder.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.from.iter().any(|net| net.contains(&ip))
    }

    /// The client's address: from the header on a trusted forwarder's connection (the
    /// forwarder's own for a health check, `LOCAL`, or an unknown family), else the peer's,
    /// once it is clear that the peer sent no header.
    pub async fn client_addr(
        &self,
        tcp: &mut TcpStream,
        peer: SocketAddr,
    ) -> Result<SocketAddr, ProxyRefusal> {
        if !self.is_enabled() {
            return Ok(peer);
        }
        if self.trusts(peer.ip()) {
            return read_header(tcp).await.map(|client| client.unwrap_or(peer));
        }
        let mut first = [0u8; 5];
        match tcp.peek(&mut first).await {
            // A TLS handshake starts with 0x16; "P" or "\r" first can only be a header.
            Ok(n)
                if n > 0 && (b"PROXY".starts_with(&first[..n]) || V2_SIGNATURE.starts_with(&first[..n])) =>
            {
                Err(ProxyRefusal::Untrusted)
            }
            _ => Ok(peer),
        }
    }
}

/// Reads one header; `None` when it names no client (`LOCAL`, `UNKNOWN`, UNIX sockets). Public
/// for the fuzz targets (`fuzz/`), not an API.
#[doc(hidden)]
pub async fn read_header<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<SocketAddr>, ProxyRefusal> {
    let cut = |e: std::io::Error| ProxyRefusal::Malformed(format!("the connection ended inside it ({e})"));
    let mut buf = vec![0u8; 5];
    r.read_exact(&mut buf).await.map_err(cut)?;
    if buf == b"PROXY" {
        // v1: one line, read a byte at a time so as not to read into the TLS handshake.
        while !buf.ends_with(b"\r\n") {
            if buf.len() >= V1_MAX {
                return Err(ProxyRefusal::Malformed(format!("a v1 line longer than {V1_MAX} bytes")));
            }
            buf.push(r.read_u8().await.map_err(cut)?);
        }
        let header = ppp::v1::Header::try_from(buf.as_slice())
            .map_err(|e| ProxyRefusal::Malformed(format!("v1: {e}")))?;
        return Ok(match header.addresses {
            ppp::v1::Addresses::Tcp4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
            ppp::v1::Addresses::Tcp6(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
            ppp::v1::Addresses::Unknown => None,
        });
    }
    if !V2_SIGNATURE.starts_with(&buf) {
        return Err(ProxyRefusal::Missing);
    }
    buf.resize(16, 0);
    r.read_exact(&mut buf[5..]).await.map_err(cut)?;
    if &buf[..12] != V2_SIGNATURE {
        return Err(ProxyRefusal::Malformed("not a v2 signature".into()));
    }
    let len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if len > V2_MAX_BODY {
        return Err(ProxyRefusal::Malformed(format!("a v2 header of {len} bytes, over {V2_MAX_BODY}")));
    }
    buf.resize(16 + len, 0);
    r.read_exact(&mut buf[16..]).await.map_err(cut)?;
    let header =
        ppp::v2::Header::try_from(buf.as_slice()).map_err(|e| ProxyRefusal::Malformed(format!("v2: {e}")))?;
    if header.command == ppp::v2::Command::Local {
        return Ok(None);
    }
    Ok(match header.addresses {
        ppp::v2::Addresses::IPv4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        ppp::v2::Addresses::IPv6(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        ppp::v2::Addresses::Unspecified | ppp::v2::Addresses::Unix(_) => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(bytes: &[u8]) -> (Result<Option<SocketAddr>, ProxyRefusal>, Vec<u8>) {
        let mut r = bytes;
        let result = read_header(&mut r).await;
        (result, r.to_vec())
    }

    fn v2(command: u8, family: u8, body: &[u8]) -> Vec<u8> {
        let mut out = V2_SIGNATURE.to_vec();
        out.extend([0x20 | command, family]);
        out.extend(u16::try_from(body.len()).unwrap_or(u16::MAX).to_be_bytes());
        out.extend(body);
        out
    }

    #[tokio::test]
    async fn v1_and_v2_give_the_client_and_leave_the_rest_unread() {
        let (r, rest) = parse(b"PROXY TCP4 203.0.113.7 10.0.0.1 51234 8443\r\n\x16\x03\x01").await;
        assert_eq!(r, Ok(Some("203.0.113.7:51234".parse().unwrap())));
        assert_eq!(rest, b"\x16\x03\x01");
        let (r, _) = parse(b"PROXY TCP6 2001:db8::7 2001:db8::1 51234 8443\r\n").await;
        assert_eq!(r, Ok(Some("[2001:db8::7]:51234".parse().unwrap())));
        assert_eq!(parse(b"PROXY UNKNOWN\r\n\x16").await, (Ok(None), b"\x16".to_vec()));

        let body = [203, 0, 113, 8, 10, 0, 0, 1, 0xc8, 0x22, 0x20, 0xfb];
        let (r, rest) = parse(&[v2(1, 0x11, &body), b"\x16".to_vec()].concat()).await;
        assert_eq!(r, Ok(Some("203.0.113.8:51234".parse().unwrap())));
        assert_eq!(rest, b"\x16");
        assert_eq!(parse(&v2(0, 0x00, &[])).await.0, Ok(None), "LOCAL: a health check");
    }

    #[tokio::test]
    async fn bad_headers_are_refused_with_a_reason() {
        assert_eq!(parse(b"\x16\x03\x01\x02\x00").await.0, Err(ProxyRefusal::Missing));
        let bad = |r: Result<Option<SocketAddr>, ProxyRefusal>| matches!(r, Err(ProxyRefusal::Malformed(_)));
        assert!(bad(parse(b"PROXY TCP4 nonsense\r\n").await.0));
        assert!(bad(parse(&[b"PROXY TCP4 ".as_slice(), &[b'1'; 200], b"\r\n"].concat()).await.0), "too long");
        assert!(bad(parse(b"PROXY TCP4 203.0.113.7").await.0), "cut short");
        assert!(bad(parse(&v2(1, 0x11, &[1, 2, 3])).await.0), "addresses too short");
        let mut huge = v2(1, 0x11, &[]);
        huge[14..16].copy_from_slice(&60_000u16.to_be_bytes());
        assert!(bad(parse(&huge).await.0), "a declared length over the bound is refused before reading");
        assert!(bad(parse(b"\r\n\r\n\0\r\nQUIX\n\x21\x11\x00\x00").await.0));
    }

    #[test]
    fn only_configured_networks_are_trusted() {
        let p = ProxyProtocol::new(vec!["10.0.0.0/8".parse().unwrap(), "2001:db8::/32".parse().unwrap()]);
        assert!(p.trusts("10.1.2.3".parse().unwrap()));
        assert!(p.trusts("::ffff:10.1.2.3".parse().unwrap()), "IPv4-mapped counts as IPv4");
        assert!(p.trusts("2001:db8::9".parse().unwrap()));
        assert!(!p.trusts("192.0.2.1".parse().unwrap()));
        assert!(!ProxyProtocol::default().is_enabled());
    }
}
