//! The gateway's front door before anything is forwarded, on a request read from the bytes
//! (`METHOD TARGET [PEER]` and header lines): the method rule, the path split into service and
//! rest and normalised, admission's head checks, the client behind trusted proxies, and the
//! bearer token's shape.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_gateway::admission::Admission;
use rampart_gateway::{GatewayConfig, forwarded};
use rampart_net::wire::{check_method, normalize_path};

fuzz_target!(|data: &[u8]| {
    let Some(req) = rampart_fuzz::request(data) else { return };
    if let Ok(method) = http::Method::from_bytes(&req.method)
        && check_method(&method).is_ok()
    {
        assert!(!method.as_str().bytes().any(|b| b.is_ascii_lowercase()), "{method}");
        assert!(method != http::Method::CONNECT && method != http::Method::TRACE);
    }
    if let Ok(uri) = http::Uri::try_from(req.target.as_slice()) {
        let (service, rest) = rampart_gateway::split(uri.path());
        assert!(!service.contains('/'), "{service:?}");
        if let Ok(path) = normalize_path(if rest.is_empty() { "/" } else { rest }) {
            assert_normalised(&path);
            assert_eq!(normalize_path(&path).as_deref(), Ok(&*path), "normalising twice changes {path:?}");
        }
    }
    let config = GatewayConfig { rate_per_source: 0.0, rate_per_principal: 0.0, ..GatewayConfig::default() };
    let _ = Admission::new(&config).screen(req.peer.ip(), req.target.len(), &req.headers, false);
    let trusted = ["10.0.0.0/8".parse().unwrap(), "2001:db8::/32".parse().unwrap()];
    let client = forwarded::client_of(req.peer, &req.headers, &trusted);
    if !trusted.iter().any(|n| n.contains(&req.peer.ip().to_canonical())) {
        assert_eq!(client, req.peer, "an untrusted peer's headers were believed");
    }
    if let Ok(Some(token)) = rampart_gateway::bearer(&req.headers)
        && let Some((id, secret)) = rampart_auth::tokens::parse(token.trim())
    {
        assert_eq!(format!("rpt_{id}_{secret}"), token.trim());
    }
});

/// What an accepted path never holds: a dot segment (plain or encoded), a hidden separator, a
/// control character, or a start other than `/`.
fn assert_normalised(path: &str) {
    assert!(path.starts_with('/'), "{path:?}");
    assert!(!path.bytes().any(|b| b < 0x20 || b == 0x7f || b == b'\\'), "{path:?}");
    for segment in path.split('/') {
        let lower = segment.to_ascii_lowercase();
        let dots = lower.replace("%2e", ".");
        assert!(dots != "." && dots != "..", "{path:?}");
        assert!(!lower.contains("%2f") && !lower.contains("%5c"), "{path:?}");
    }
}
