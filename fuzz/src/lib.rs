//! What the fuzz targets share: the fixed keys and certificates their seeds were made with
//! (`examples/seeds.rs` writes the seeds from these), a runtime for the async readers, and a
//! request read from bytes. Nothing here parses on the product's behalf: each target hands the
//! bytes to the product's own parsers.

#![forbid(unsafe_code)]

use std::cell::RefCell;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{HeaderMap, HeaderName, HeaderValue};
use tokio::io::{AsyncRead, ReadBuf};

/// The clock every target reads (2023-11-14T22:13:20Z): tokens and assertions in the seeds are
/// made a few seconds before it.
pub const NOW: u64 = 1_700_000_000;

/// The payload key of the `envelope` target (test-only: never a real network's).
pub const PAYLOAD_KEY: &str = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";

/// The CA certificate (DER) of trust domain `fuzz` that signed the CRL seeds of `pki_loading`.
pub const CA_DER: &[u8] = include_bytes!("../fixtures/ca.der");

/// The peer gateway whose assertions the `assertion` target checks: its identity…
pub const GATEWAY_ID: &str = "spiffe://east/gateway/gw1";
/// …its certificate (DER)…
pub const GATEWAY_CERT: &[u8] = include_bytes!("../fixtures/gateway.der");
/// …and its P-256 key (PKCS#8 DER; test-only), with which the target signs fuzzed claims.
pub const GATEWAY_KEY: &[u8] = include_bytes!("../fixtures/gateway.pk8");

/// The network that checks the assertions.
pub const LOCAL_DOMAIN: &str = "west";
/// The request the assertions are bound to.
pub const BOUND_METHOD: &str = "GET";
/// The request the assertions are bound to.
pub const BOUND_PATH: &str = "/hello/";

thread_local! {
    static RUNTIME: RefCell<Option<tokio::runtime::Runtime>> = const { RefCell::new(None) };
}

/// Runs `f` to its end on a current-thread runtime with timers (the readers take deadlines).
pub fn block_on<F: Future>(f: F) -> F::Output {
    RUNTIME.with(|rt| {
        let mut rt = rt.borrow_mut();
        let rt = rt.get_or_insert_with(|| {
            tokio::runtime::Builder::new_current_thread().enable_time().build().expect("a runtime")
        });
        rt.block_on(f)
    })
}

/// A reader that hands out at most `step` bytes a read, as a slow or fragmenting client does.
#[derive(Debug)]
pub struct Trickle<'a> {
    /// What is left to read.
    pub rest: &'a [u8],
    /// The most bytes one read returns (at least 1).
    pub step: usize,
}

impl AsyncRead for Trickle<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = self.step.max(1).min(self.rest.len()).min(buf.remaining());
        let (now, later) = self.rest.split_at(n);
        buf.put_slice(now);
        self.rest = later;
        Poll::Ready(Ok(()))
    }
}

/// A request as the fuzz input gives it:
///
/// ```text
/// METHOD TARGET [PEER]
/// Name: value
/// …
/// ```
///
/// `PEER` is the connection's remote address (default `203.0.113.1:4000`); lines end in LF or
/// CRLF; a header that is no valid name or value is left out, as the HTTP parser would have
/// refused the request.
#[derive(Debug)]
pub struct Request {
    /// The method's bytes.
    pub method: Vec<u8>,
    /// The request target's bytes.
    pub target: Vec<u8>,
    /// Who connected.
    pub peer: SocketAddr,
    /// The headers.
    pub headers: HeaderMap,
}

/// The request in `data`, if it has a request line.
pub fn request(data: &[u8]) -> Option<Request> {
    let mut lines = data.split(|b| *b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let mut first = lines.next()?.splitn(3, |b| *b == b' ');
    let method = first.next()?.to_vec();
    let target = first.next()?.to_vec();
    let peer = first
        .next()
        .and_then(|p| std::str::from_utf8(p).ok()?.parse().ok())
        .unwrap_or_else(|| SocketAddr::from(([203, 0, 113, 1], 4000)));
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some(colon) = line.iter().position(|b| *b == b':') else { continue };
        let value = line[colon + 1..].trim_ascii();
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(&line[..colon]), HeaderValue::from_bytes(value))
        {
            headers.append(name, value);
        }
    }
    Some(Request { method, target, peer, headers })
}

/// A compact JWS of `header` and `claims` (JSON as given, not checked) signed ES256 by the
/// peer gateway's key: what a peer holding a real key could send.
pub fn sign_es256(header: &[u8], claims: &[u8]) -> String {
    use base64::Engine as _;
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    static KEY: std::sync::OnceLock<EcdsaKeyPair> = std::sync::OnceLock::new();
    let rng = ring::rand::SystemRandom::new();
    let key = KEY.get_or_init(|| {
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, GATEWAY_KEY, &rng).expect("the fixed key")
    });
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let signed = format!("{}.{}", b64.encode(header), b64.encode(claims));
    let signature = key.sign(&rng, signed.as_bytes()).expect("signing");
    format!("{signed}.{}", b64.encode(signature.as_ref()))
}
