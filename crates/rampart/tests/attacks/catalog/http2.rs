//! HTTP/2 abuse, as frames written by hand (a client library would not send them): floods of
//! resets, pings and settings, header blocks that never end, too many streams, and malformed
//! requests. The gateway closes the connection (GOAWAY) or refuses the stream, stays up, and
//! serves everyone else.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use super::{Attack, Case, Expect, Seen, Target, run, tls_with};
use crate::support::Network;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

/// One frame.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut out = vec![len[1], len[2], len[3], kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A header block of literal fields (HPACK "without indexing", no Huffman coding).
fn block(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        out.push(0);
        out.extend(length(name.len()));
        out.extend_from_slice(name.as_bytes());
        out.extend(length(value.len()));
        out.extend_from_slice(value.as_bytes());
    }
    out
}

/// An HPACK string length (7-bit prefix integer).
fn length(n: usize) -> Vec<u8> {
    if n < 127 {
        return vec![u8::try_from(n).unwrap()];
    }
    let mut out = vec![127];
    let mut rest = n - 127;
    while rest >= 128 {
        out.push(u8::try_from(rest % 128).unwrap() | 0x80);
        rest /= 128;
    }
    out.push(u8::try_from(rest).unwrap());
    out
}

/// `GET path`, as the admin (the connection's certificate).
fn get(path: &str) -> Vec<u8> {
    block(&[(":method", "GET"), (":scheme", "https"), (":authority", "localhost"), (":path", path)])
}

/// The names of the frames the gateway sent, with GOAWAY and RST_STREAM reasons and the first
/// response's `:status` (from HPACK's static table, or a literal), until it closed or 5 s.
fn frames_seen(mut bytes: Vec<u8>, tls: &mut impl Read) -> Seen {
    bytes.extend(super::read_bytes(tls, Duration::from_secs(5)));
    let mut seen = Vec::new();
    let mut status = None;
    let mut i = 0;
    while i + 9 <= bytes.len() {
        let len = usize::from(bytes[i]) << 16 | usize::from(bytes[i + 1]) << 8 | usize::from(bytes[i + 2]);
        let kind = bytes[i + 3];
        let payload = bytes.get(i + 9..i + 9 + len).unwrap_or(&[]);
        match kind {
            HEADERS => {
                seen.push("HEADERS".to_owned());
                // Indexed :status of the static table (8: 200 … 14: 500).
                let code = payload.first().map(|b| b & 0x7f);
                status = status.or(match code {
                    Some(8) => Some(200),
                    Some(12) => Some(400),
                    Some(13) => Some(404),
                    _ => Some(0),
                });
            }
            RST_STREAM => seen.push(format!("RST_STREAM {}", reason(payload.get(..4)))),
            GOAWAY => seen.push(format!("GOAWAY {}", reason(payload.get(4..8)))),
            _ => {}
        }
        i += 9 + len;
    }
    Seen { status: status.filter(|s| *s != 0), text: seen.join(", ") }
}

fn reason(code: Option<&[u8]>) -> &'static str {
    let n = code.map_or(u32::MAX, |c| u32::from_be_bytes(c.try_into().unwrap_or([0xff; 4])));
    match n {
        0x0 => "NO_ERROR",
        0x1 => "PROTOCOL_ERROR",
        0x3 => "FLOW_CONTROL_ERROR",
        0x6 => "FRAME_SIZE_ERROR",
        0x7 => "REFUSED_STREAM",
        0x8 => "CANCEL",
        0x9 => "COMPRESSION_ERROR",
        0xb => "ENHANCE_YOUR_CALM",
        _ => "OTHER",
    }
}

/// An attack writing `frames()` after the preface and an empty SETTINGS frame, as the admin.
fn h2(frames: impl Fn() -> Vec<u8> + 'static) -> Attack {
    Attack::Custom(Box::new(move |net, from| {
        let admin = super::http1::admin(net);
        let Some(mut tls) = tls_with(net, from, Some(admin), &[b"h2"]) else { return Seen::default() };
        let mut out = PREFACE.to_vec();
        out.extend(frame(SETTINGS, 0, 0, &[]));
        out.extend(frames());
        // The gateway may close before all is written: what it answered still counts.
        // What the gateway answers is read between writes: once it closes, what it sent last
        // (its GOAWAY) would be lost to a reset under writes it never read.
        let start = Instant::now();
        let mut answered = Vec::new();
        let _ = tls.sock.set_read_timeout(Some(Duration::from_millis(1)));
        for chunk in out.chunks(16 << 10) {
            if tls.write_all(chunk).and_then(|()| tls.flush()).is_err()
                || start.elapsed() > Duration::from_secs(10)
            {
                break;
            }
            let mut buf = [0u8; 16384];
            while let Ok(n @ 1..) = tls.read(&mut buf) {
                answered.extend_from_slice(&buf[..n]);
            }
        }
        let _ = tls.sock.set_read_timeout(Some(Duration::from_secs(5)));
        frames_seen(answered, &mut tls)
    }))
}

#[test]
fn http2() {
    let net = Network::start(1, &[]);
    let cases = vec![
        Case::new(
            "rapid reset: 2000 streams opened and cancelled",
            h2(|| {
                (0..2000u32)
                    .flat_map(|i| {
                        let id = 2 * i + 1;
                        let mut f = frame(HEADERS, END_HEADERS | END_STREAM, id, &get("/hello"));
                        f.extend(frame(RST_STREAM, 0, id, &8u32.to_be_bytes()));
                        f
                    })
                    .collect()
            }),
            Expect::Text("GOAWAY ENHANCE_YOUR_CALM"),
            Some("protocol_abuse"),
        ),
        Case::new(
            "a header block continued for ever (CONTINUATION flood)",
            h2(|| {
                let mut out = frame(HEADERS, 0, 1, &get("/hello"));
                let filler = block(&[("x-filler", &"a".repeat(4000))]);
                for _ in 0..2000 {
                    out.extend(frame(CONTINUATION, 0, 1, &filler));
                }
                out
            }),
            Expect::Text("GOAWAY"),
            Some("protocol_abuse"),
        ),
        Case::new(
            "a PING flood",
            h2(|| (0..100_000u64).flat_map(|i| frame(PING, 0, 0, &i.to_be_bytes())).collect()),
            Expect::Absorbed,
            None,
        ),
        Case::new(
            "a SETTINGS flood",
            h2(|| (0..100_000).flat_map(|_| frame(SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100])).collect()),
            Expect::Absorbed,
            None,
        ),
        Case::new(
            "a request without :path",
            h2(|| {
                let fields = block(&[(":method", "GET"), (":scheme", "https"), (":authority", "localhost")]);
                frame(HEADERS, END_HEADERS | END_STREAM, 1, &fields)
            }),
            Expect::Text("RST_STREAM PROTOCOL_ERROR"),
            None,
        ),
        Case::new(
            "a connection-specific header",
            h2(|| {
                let mut fields = get("/hello");
                fields.extend(block(&[("connection", "keep-alive")]));
                frame(HEADERS, END_HEADERS | END_STREAM, 1, &fields)
            }),
            Expect::Text("RST_STREAM PROTOCOL_ERROR"),
            None,
        ),
        Case::new(
            "an upper-case header name",
            h2(|| {
                let mut fields = get("/hello");
                fields.extend(block(&[("X-Upper", "1")]));
                frame(HEADERS, END_HEADERS | END_STREAM, 1, &fields)
            }),
            Expect::Text("GOAWAY PROTOCOL_ERROR"),
            Some("protocol_abuse"),
        ),
        Case::new(
            "a stream id going backwards",
            h2(|| {
                let mut out = frame(HEADERS, END_HEADERS | END_STREAM, 5, &get("/hello"));
                out.extend(frame(HEADERS, END_HEADERS | END_STREAM, 3, &get("/hello")));
                out
            }),
            Expect::Text("GOAWAY PROTOCOL_ERROR"),
            Some("protocol_abuse"),
        ),
        Case::new(
            "a frame over the maximum frame size",
            h2(|| frame(HEADERS, END_HEADERS | END_STREAM, 1, &vec![0u8; 20_000])),
            Expect::Text("GOAWAY FRAME_SIZE_ERROR"),
            Some("protocol_abuse"),
        ),
        Case::new(
            "a head over the limit in HPACK",
            h2(|| {
                let mut fields = get("/hello");
                fields.extend(block(&[("x-big", &"a".repeat(12_000))]));
                frame(HEADERS, END_HEADERS | END_STREAM, 1, &fields)
            }),
            Expect::Text("HEADERS"),
            Some("header_too_large"),
        ),
        Case::new(
            "a well-formed request on the same footing",
            h2(|| frame(HEADERS, END_HEADERS | END_STREAM, 1, &get("/hello"))),
            Expect::Status(200),
            None,
        ),
    ];
    run("http2", 9, &Target::new(&net, &[]), cases);
}
