//! The client behind HTTP proxies: `Forwarded` (RFC 7239) and `X-Forwarded-For` are believed
//! only from the configured trusted proxies, and then only as far back as the chain stays
//! trusted (the rightmost address that is not a trusted proxy is the client, as nginx's
//! `real_ip_recursive`). From anyone else they are ignored; either way they never reach a node
//! as sent: the gateway removes every forwarding header (and every `Rampart-*` one) and sets
//! its own.

use std::net::{IpAddr, SocketAddr};

use http::header::{FORWARDED, HeaderMap, HeaderName, HeaderValue};
use ipnet::IpNet;

/// `X-Forwarded-For`.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`.
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// The client's address, as the gateway saw it, for services.
pub const CLIENT_HEADER: HeaderName = rampart_net::contract::header::CLIENT;

/// Headers that say where a request came from: never passed on as the client sent them.
pub fn is_forwarding_header(name: &HeaderName) -> bool {
    let n = name.as_str();
    *name == FORWARDED || n.starts_with("x-forwarded-") || n == "x-real-ip" || n.starts_with("rampart-")
}

/// The client of a request that arrived from `peer`: `peer` itself unless it is a trusted
/// proxy, else the rightmost hop of `Forwarded` (or, without it, `X-Forwarded-For`) that is not
/// a trusted proxy. A hop that does not parse (`unknown`, an obfuscated name, garbage) ends the
/// walk: the last trusted hop's word is the best there is.
pub fn client_of(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpNet]) -> SocketAddr {
    let trusts = |ip: IpAddr| trusted.iter().any(|n| n.contains(&ip.to_canonical()));
    if !trusts(peer.ip()) {
        return peer;
    }
    let hops: Vec<String> = if headers.contains_key(FORWARDED) {
        headers
            .get_all(FORWARDED)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|element| forwarded_for(element).unwrap_or_default())
            .collect()
    } else {
        headers
            .get_all(&X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|hop| hop.trim().to_owned())
            .collect()
    };
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Some(addr) = parse_hop(hop) else { break };
        client = addr;
        if !trusts(addr.ip()) {
            break;
        }
    }
    client
}

/// The `for=` of one `Forwarded` element (`for=192.0.2.60;proto=http`), unquoted.
fn forwarded_for(element: &str) -> Option<String> {
    element.split(';').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        key.trim().eq_ignore_ascii_case("for").then(|| value.trim().trim_matches('"').to_owned())
    })
}

/// An address, with or without a port (`192.0.2.1`, `192.0.2.1:80`, `[2001:db8::1]:80`,
/// `2001:db8::1`, `[2001:db8::1]`); port 0 when none is given.
fn parse_hop(hop: &str) -> Option<SocketAddr> {
    if let Ok(addr) = hop.parse::<SocketAddr>() {
        return Some(addr);
    }
    let bare = hop.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(hop);
    bare.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 0))
}

/// The forwarding headers a node receives: the client as the gateway decided, over HTTPS.
pub fn set_towards_node(headers: &mut HeaderMap, client: SocketAddr) {
    let ip = client.ip().to_string();
    // Pushed rather than formatted, and the strings handed over rather than copied: this runs
    // for every request.
    let mut forwarded = String::with_capacity(ip.len() + 20);
    match client.ip() {
        IpAddr::V4(_) => forwarded.extend(["for=", &ip]),
        IpAddr::V6(_) => forwarded.extend(["for=\"[", &ip, "]\""]),
    }
    forwarded.push_str(";proto=https");
    // An address and these words are always valid header values.
    if let (Ok(addr), Ok(forwarded)) = (HeaderValue::try_from(ip), HeaderValue::try_from(forwarded)) {
        headers.insert(FORWARDED, forwarded);
        headers.insert(X_FORWARDED_FOR, addr.clone());
        headers.insert(CLIENT_HEADER, addr);
    }
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("https"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn only_trusted_proxies_are_believed_and_only_as_far_as_the_chain_is_trusted() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let proxy: SocketAddr = "10.0.0.5:4000".parse().unwrap();
        let stranger: SocketAddr = "198.51.100.9:4000".parse().unwrap();
        let ip = |a: SocketAddr| a.ip().to_string();
        // A stranger's header is ignored.
        let forged = headers(&[("x-forwarded-for", "203.0.113.1")]);
        assert_eq!(client_of(stranger, &forged, &trusted), stranger);
        // From a trusted proxy: the rightmost untrusted hop (a forged prefix stays ignored).
        let chain =
            headers(&[("x-forwarded-for", "203.0.113.1, 198.51.100.7"), ("x-forwarded-for", "10.1.1.1")]);
        assert_eq!(ip(client_of(proxy, &chain, &trusted)), "198.51.100.7");
        assert_eq!(ip(client_of(proxy, &headers(&[("x-forwarded-for", "10.2.2.2")]), &trusted)), "10.2.2.2");
        assert_eq!(client_of(proxy, &HeaderMap::new(), &trusted), proxy, "no header: the proxy itself");
        // Garbage ends the walk at the last trusted word.
        let garbage = headers(&[("x-forwarded-for", "203.0.113.1, not-an-ip, 10.1.1.1")]);
        assert_eq!(ip(client_of(proxy, &garbage, &trusted)), "10.1.1.1");
        // Forwarded wins over X-Forwarded-For; quoted IPv6 with a port; unknown stops.
        let fwd = headers(&[
            ("forwarded", "for=203.0.113.1, for=\"[2001:db8::7]:4711\";proto=https"),
            ("x-forwarded-for", "198.51.100.1"),
        ]);
        assert_eq!(client_of(proxy, &fwd, &trusted), "[2001:db8::7]:4711".parse().unwrap());
        let unknown = headers(&[("forwarded", "for=unknown, For=10.3.3.3")]);
        assert_eq!(ip(client_of(proxy, &unknown, &trusted)), "10.3.3.3");
        assert_eq!(client_of(proxy, &fwd, &[]), proxy, "no trusted proxies: nothing believed");
    }

    #[test]
    fn the_node_gets_the_gateways_word_only() {
        for name in
            ["forwarded", "x-forwarded-for", "x-forwarded-host", "x-real-ip", "rampart-client", "rampart-x"]
        {
            assert!(is_forwarding_header(&HeaderName::from_static(name)), "{name}");
        }
        assert!(!is_forwarding_header(&HeaderName::from_static("content-type")));
        let mut h = HeaderMap::new();
        set_towards_node(&mut h, "[2001:db8::7]:1".parse().unwrap());
        assert_eq!(h["forwarded"], "for=\"[2001:db8::7]\";proto=https");
        assert_eq!(h["x-forwarded-for"], "2001:db8::7");
        assert_eq!(h["rampart-client"], "2001:db8::7");
    }
}
