//! `[gateway]` as it is written: settings grouped by what they govern, durations as humans
//! write them (`"10s"`, `"500ms"`, `"1day"`). The flat keys of earlier versions
//! (`header_timeout_ms = 10000`, …) are still read, and are deprecated: a file may use either,
//! but not both for one setting. Values are checked on load, with the field named.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::GatewayConfig;

/// `[gateway]` on disk.
#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GatewayFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    listen: Option<SocketAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_cert: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    proxy_protocol_from: Option<Vec<ipnet::IpNet>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    trusted_proxies: Option<Vec<ipnet::IpNet>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    metrics_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_envelope_claims: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "human")]
    idempotency_window: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    limits: Option<Limits>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bans: Option<Bans>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retry: Option<Retry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    health: Option<Health>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    federation: Option<Federation>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    listeners: Vec<super::ListenerConfig>,
    // The flat keys of earlier versions (deprecated): read, never written.
    #[serde(default, skip_serializing)]
    lease_ttl_ms: Option<u64>,
    #[serde(default, skip_serializing)]
    heartbeat_ms: Option<u64>,
    #[serde(default, skip_serializing)]
    max_body_bytes: Option<usize>,
    #[serde(default, skip_serializing)]
    connect_timeout_ms: Option<u64>,
    #[serde(default, skip_serializing)]
    try_timeout_ms: Option<u64>,
    #[serde(default, skip_serializing)]
    deadline_ms: Option<u64>,
    #[serde(default, skip_serializing)]
    max_attempts: Option<u32>,
    #[serde(default, skip_serializing)]
    retry_ratio: Option<f64>,
    #[serde(default, skip_serializing)]
    retry_floor_per_sec: Option<f64>,
    #[serde(default, skip_serializing)]
    probe_interval_ms: Option<u64>,
    #[serde(default, skip_serializing)]
    idempotency_window_secs: Option<u64>,
    #[serde(default, skip_serializing)]
    rate_per_source: Option<f64>,
    #[serde(default, skip_serializing)]
    rate_per_principal: Option<f64>,
    #[serde(default, skip_serializing)]
    rate_burst_secs: Option<f64>,
    #[serde(default, skip_serializing)]
    max_uri_bytes: Option<usize>,
    #[serde(default, skip_serializing)]
    max_header_bytes: Option<usize>,
    #[serde(default, skip_serializing)]
    max_headers: Option<usize>,
    #[serde(default, skip_serializing)]
    header_timeout_ms: Option<u64>,
    #[serde(default, skip_serializing)]
    idle_timeout_ms: Option<u64>,
    #[serde(default, skip_serializing)]
    body_idle_timeout_ms: Option<u64>,
    #[serde(default, skip_serializing)]
    max_connections: Option<usize>,
    #[serde(default, skip_serializing)]
    ban_after_failures: Option<u32>,
    #[serde(default, skip_serializing)]
    ban_window_secs: Option<u64>,
    #[serde(default, skip_serializing)]
    ban_secs: Option<u64>,
    #[serde(default, skip_serializing)]
    ban_ipv6_prefix: Option<u8>,
}

/// `[gateway.limits]`: what one request or connection may take.
#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Limits {
    max_connections: Option<usize>,
    max_body_bytes: Option<usize>,
    max_uri_bytes: Option<usize>,
    max_header_bytes: Option<usize>,
    max_headers: Option<usize>,
    #[serde(default, with = "human")]
    header_timeout: Option<Duration>,
    #[serde(default, with = "human")]
    idle_timeout: Option<Duration>,
    #[serde(default, with = "human")]
    body_idle_timeout: Option<Duration>,
    rate_per_source: Option<f64>,
    rate_per_principal: Option<f64>,
    rate_burst_secs: Option<f64>,
}

/// `[gateway.bans]`: sources that keep failing authentication.
#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Bans {
    ban_after_failures: Option<u32>,
    #[serde(default, with = "human")]
    ban_window: Option<Duration>,
    #[serde(default, with = "human")]
    ban_duration: Option<Duration>,
    ban_ipv6_prefix: Option<u8>,
}

/// `[gateway.retry]`: trying another node.
#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Retry {
    max_attempts: Option<u32>,
    retry_ratio: Option<f64>,
    retry_floor_per_sec: Option<f64>,
    #[serde(default, with = "human")]
    connect_timeout: Option<Duration>,
    #[serde(default, with = "human")]
    try_timeout: Option<Duration>,
    #[serde(default, with = "human")]
    deadline: Option<Duration>,
}

/// `[gateway.health]`: leases and probes.
#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Health {
    #[serde(default, with = "human")]
    probe_interval: Option<Duration>,
    #[serde(default, with = "human")]
    lease_ttl: Option<Duration>,
    #[serde(default, with = "human")]
    heartbeat: Option<Duration>,
}

/// `[gateway.federation]`: peer networks.
#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Federation {
    #[serde(default, with = "human")]
    catalog_interval: Option<Duration>,
    #[serde(default, with = "human")]
    peer_stale_after: Option<Duration>,
    #[serde(default)]
    max_chain: Option<usize>,
    #[serde(default)]
    prefer_peers: Option<Vec<String>>,
}

/// Durations as humans write them, in and out.
mod human {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&humantime::format_duration(*d).to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map(Some).map_err(|e| {
            serde::de::Error::custom(format!(
                "{text:?} is not a duration ({e}); write it as \"10s\", \"500ms\" or \"1day\""
            ))
        })
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// One setting from either its grouped key or its deprecated flat key (never both).
fn one<T>(grouped: Option<T>, flat: Option<T>, names: (&str, &str)) -> Result<Option<T>, String> {
    match (grouped, flat) {
        (Some(_), Some(_)) => Err(format!(
            "gateway.{} and gateway.{} set the same thing: keep gateway.{} (the flat key is deprecated)",
            names.0, names.1, names.0
        )),
        (g, f) => Ok(g.or(f)),
    }
}

impl TryFrom<GatewayFile> for GatewayConfig {
    type Error = String;

    fn try_from(mut f: GatewayFile) -> Result<Self, String> {
        let mut c = GatewayConfig::default();
        let (l, b, r, h) = (
            f.limits.take().unwrap_or_default(),
            f.bans.take().unwrap_or_default(),
            f.retry.take().unwrap_or_default(),
            f.health.take().unwrap_or_default(),
        );
        let top = (
            f.listen.take(),
            f.client_cert.take(),
            f.proxy_protocol_from.take(),
            f.trusted_proxies.take(),
            f.metrics_token.take(),
        );
        let flat = &f;
        macro_rules! set {
            ($field:ident, $grouped:expr, $flat:expr, $names:expr) => {
                if let Some(v) = one($grouped, $flat, $names)? {
                    c.$field = v;
                }
            };
        }
        set!(listen, top.0, None, ("listen", "listen"));
        set!(client_cert, top.1, None, ("client_cert", "client_cert"));
        set!(proxy_protocol_from, top.2, None, ("proxy_protocol_from", ""));
        set!(trusted_proxies, top.3, None, ("trusted_proxies", ""));
        c.metrics_token = top.4;
        set!(max_envelope_claims, f.max_envelope_claims, None, ("max_envelope_claims", ""));
        let secs = |d: Duration| d.as_secs();
        set!(
            idempotency_window_secs,
            f.idempotency_window.map(secs),
            flat.idempotency_window_secs,
            ("idempotency_window", "idempotency_window_secs")
        );
        set!(
            max_connections,
            l.max_connections,
            flat.max_connections,
            ("limits.max_connections", "max_connections")
        );
        set!(
            max_body_bytes,
            l.max_body_bytes,
            flat.max_body_bytes,
            ("limits.max_body_bytes", "max_body_bytes")
        );
        set!(max_uri_bytes, l.max_uri_bytes, flat.max_uri_bytes, ("limits.max_uri_bytes", "max_uri_bytes"));
        set!(
            max_header_bytes,
            l.max_header_bytes,
            flat.max_header_bytes,
            ("limits.max_header_bytes", "max_header_bytes")
        );
        set!(max_headers, l.max_headers, flat.max_headers, ("limits.max_headers", "max_headers"));
        set!(
            header_timeout_ms,
            l.header_timeout.map(ms),
            flat.header_timeout_ms,
            ("limits.header_timeout", "header_timeout_ms")
        );
        set!(
            idle_timeout_ms,
            l.idle_timeout.map(ms),
            flat.idle_timeout_ms,
            ("limits.idle_timeout", "idle_timeout_ms")
        );
        set!(
            body_idle_timeout_ms,
            l.body_idle_timeout.map(ms),
            flat.body_idle_timeout_ms,
            ("limits.body_idle_timeout", "body_idle_timeout_ms")
        );
        set!(
            rate_per_source,
            l.rate_per_source,
            flat.rate_per_source,
            ("limits.rate_per_source", "rate_per_source")
        );
        set!(
            rate_per_principal,
            l.rate_per_principal,
            flat.rate_per_principal,
            ("limits.rate_per_principal", "rate_per_principal")
        );
        set!(
            rate_burst_secs,
            l.rate_burst_secs,
            flat.rate_burst_secs,
            ("limits.rate_burst_secs", "rate_burst_secs")
        );
        set!(
            ban_after_failures,
            b.ban_after_failures,
            flat.ban_after_failures,
            ("bans.ban_after_failures", "ban_after_failures")
        );
        set!(
            ban_window_secs,
            b.ban_window.map(secs),
            flat.ban_window_secs,
            ("bans.ban_window", "ban_window_secs")
        );
        set!(ban_secs, b.ban_duration.map(secs), flat.ban_secs, ("bans.ban_duration", "ban_secs"));
        set!(
            ban_ipv6_prefix,
            b.ban_ipv6_prefix,
            flat.ban_ipv6_prefix,
            ("bans.ban_ipv6_prefix", "ban_ipv6_prefix")
        );
        set!(max_attempts, r.max_attempts, flat.max_attempts, ("retry.max_attempts", "max_attempts"));
        set!(retry_ratio, r.retry_ratio, flat.retry_ratio, ("retry.retry_ratio", "retry_ratio"));
        set!(
            retry_floor_per_sec,
            r.retry_floor_per_sec,
            flat.retry_floor_per_sec,
            ("retry.retry_floor_per_sec", "retry_floor_per_sec")
        );
        set!(
            connect_timeout_ms,
            r.connect_timeout.map(ms),
            flat.connect_timeout_ms,
            ("retry.connect_timeout", "connect_timeout_ms")
        );
        set!(
            try_timeout_ms,
            r.try_timeout.map(ms),
            flat.try_timeout_ms,
            ("retry.try_timeout", "try_timeout_ms")
        );
        set!(deadline_ms, r.deadline.map(ms), flat.deadline_ms, ("retry.deadline", "deadline_ms"));
        set!(
            probe_interval_ms,
            h.probe_interval.map(ms),
            flat.probe_interval_ms,
            ("health.probe_interval", "probe_interval_ms")
        );
        set!(lease_ttl_ms, h.lease_ttl.map(ms), flat.lease_ttl_ms, ("health.lease_ttl", "lease_ttl_ms"));
        set!(heartbeat_ms, h.heartbeat.map(ms), flat.heartbeat_ms, ("health.heartbeat", "heartbeat_ms"));
        let fed = f.federation.take().unwrap_or_default();
        let (interval, stale) = (fed.catalog_interval.map(ms), fed.peer_stale_after.map(ms));
        set!(catalog_interval_ms, interval, None, ("federation.catalog_interval", ""));
        set!(peer_stale_after_ms, stale, None, ("federation.peer_stale_after", ""));
        set!(max_chain, fed.max_chain, None, ("federation.max_chain", ""));
        set!(prefer_peers, fed.prefer_peers, None, ("federation.prefer_peers", ""));
        c.listeners = std::mem::take(&mut f.listeners);
        check(&c)?;
        Ok(c)
    }
}

/// What a value must be, beyond its type.
fn check(c: &GatewayConfig) -> Result<(), String> {
    let fail = |field: &str, must: &str| Err(format!("gateway.{field}: {must}"));
    if c.max_attempts == 0 {
        return fail("retry.max_attempts", "must be at least 1 (the first attempt counts)");
    }
    if !(c.retry_ratio >= 0.0 && c.retry_floor_per_sec >= 0.0) {
        return fail("retry.retry_ratio and retry.retry_floor_per_sec", "must be 0 or more");
    }
    if c.try_timeout_ms == 0 || c.deadline_ms == 0 || c.connect_timeout_ms == 0 {
        return fail("retry.try_timeout, retry.deadline and retry.connect_timeout", "must be longer than 0");
    }
    if !(c.rate_per_source >= 0.0 && c.rate_per_principal >= 0.0 && c.rate_burst_secs >= 0.0) {
        return fail(
            "limits.rate_per_source, rate_per_principal and rate_burst_secs",
            "must be 0 (no limit) or more",
        );
    }
    if c.max_connections == 0 {
        return fail("limits.max_connections", "must be at least 1");
    }
    if !(1..=128).contains(&c.ban_ipv6_prefix) {
        return fail("bans.ban_ipv6_prefix", "must be 1 to 128");
    }
    if c.catalog_interval_ms == 0 || c.peer_stale_after_ms <= c.catalog_interval_ms {
        return fail(
            "federation.peer_stale_after",
            "must be longer than federation.catalog_interval, which must be longer than 0",
        );
    }
    if let Some(bad) = c.prefer_peers.iter().find(|s| rampart_auth::ServiceName::parse(s).is_err()) {
        return fail("federation.prefer_peers", &format!("{bad:?} is not a service name"));
    }
    if c.max_chain == 0 {
        return fail("federation.max_chain", "must be at least 1 (the network a request comes from)");
    }
    for (i, l) in c.listeners.iter().enumerate() {
        let at = format!("listeners[{i}] ({})", l.listen);
        if l.insecure.is_some() && (l.client_cert.is_some() || !l.certificates.is_empty()) {
            return fail(&at, "a plain-HTTP listener (insecure) has no certificates or client_cert");
        }
        if l.relay_only && (l.insecure.is_some() || l.client_cert.is_some() || !l.certificates.is_empty()) {
            return fail(
                &at,
                "a listener that only relays (relay_only) ends no TLS: it has no certificates, client_cert or insecure",
            );
        }
        if let Some(mode) = &l.client_cert
            && mode.parse::<rampart_net::ClientAuth>().is_err()
        {
            return fail(&at, "client_cert must be off, optional or required");
        }
    }
    if c.lease_ttl_ms == 0 || c.heartbeat_ms == 0 || c.heartbeat_ms >= c.lease_ttl_ms {
        return fail("health.heartbeat", "must be longer than 0 and shorter than health.lease_ttl");
    }
    Ok(())
}

impl From<GatewayConfig> for GatewayFile {
    fn from(c: GatewayConfig) -> Self {
        let d = Duration::from_millis;
        GatewayFile {
            listen: Some(c.listen),
            client_cert: Some(c.client_cert),
            proxy_protocol_from: (!c.proxy_protocol_from.is_empty()).then_some(c.proxy_protocol_from),
            trusted_proxies: (!c.trusted_proxies.is_empty()).then_some(c.trusted_proxies),
            metrics_token: c.metrics_token,
            max_envelope_claims: Some(c.max_envelope_claims),
            idempotency_window: Some(Duration::from_secs(c.idempotency_window_secs)),
            limits: Some(Limits {
                max_connections: Some(c.max_connections),
                max_body_bytes: Some(c.max_body_bytes),
                max_uri_bytes: Some(c.max_uri_bytes),
                max_header_bytes: Some(c.max_header_bytes),
                max_headers: Some(c.max_headers),
                header_timeout: Some(d(c.header_timeout_ms)),
                idle_timeout: Some(d(c.idle_timeout_ms)),
                body_idle_timeout: Some(d(c.body_idle_timeout_ms)),
                rate_per_source: Some(c.rate_per_source),
                rate_per_principal: Some(c.rate_per_principal),
                rate_burst_secs: Some(c.rate_burst_secs),
            }),
            bans: Some(Bans {
                ban_after_failures: Some(c.ban_after_failures),
                ban_window: Some(Duration::from_secs(c.ban_window_secs)),
                ban_duration: Some(Duration::from_secs(c.ban_secs)),
                ban_ipv6_prefix: Some(c.ban_ipv6_prefix),
            }),
            retry: Some(Retry {
                max_attempts: Some(c.max_attempts),
                retry_ratio: Some(c.retry_ratio),
                retry_floor_per_sec: Some(c.retry_floor_per_sec),
                connect_timeout: Some(d(c.connect_timeout_ms)),
                try_timeout: Some(d(c.try_timeout_ms)),
                deadline: Some(d(c.deadline_ms)),
            }),
            health: Some(Health {
                probe_interval: Some(d(c.probe_interval_ms)),
                lease_ttl: Some(d(c.lease_ttl_ms)),
                heartbeat: Some(d(c.heartbeat_ms)),
            }),
            federation: Some(Federation {
                catalog_interval: Some(d(c.catalog_interval_ms)),
                peer_stale_after: Some(d(c.peer_stale_after_ms)),
                max_chain: Some(c.max_chain),
                prefer_peers: Some(c.prefer_peers),
            }),
            listeners: c.listeners,
            ..GatewayFile::default()
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn read(text: &str) -> Result<GatewayConfig, String> {
        toml::from_str::<GatewayConfig>(text).map_err(|e| e.to_string())
    }

    #[test]
    fn the_grouped_form_round_trips_and_the_flat_keys_still_load() {
        let written = toml::to_string(&GatewayConfig::default()).unwrap();
        assert!(written.contains("[limits]") && written.contains("header_timeout = \"10s\""), "{written}");
        let back = read(&written).unwrap();
        assert_eq!(toml::to_string(&back).unwrap(), written);
        let grouped = read("[retry]\ntry_timeout = \"750ms\"\n[bans]\nban_duration = \"2m\"").unwrap();
        assert_eq!((grouped.try_timeout_ms, grouped.ban_secs), (750, 120));
        let flat = read("try_timeout_ms = 750\nban_secs = 120\nrate_per_source = 5.0").unwrap();
        assert_eq!((flat.try_timeout_ms, flat.ban_secs, flat.rate_per_source), (750, 120, 5.0));
    }

    #[test]
    fn bad_values_are_refused_naming_the_field() {
        let both = read("try_timeout_ms = 750\n[retry]\ntry_timeout = \"1s\"").unwrap_err();
        assert!(both.contains("gateway.retry.try_timeout and gateway.try_timeout_ms"), "{both}");
        let word = read("[limits]\nidle_timeout = \"soon\"").unwrap_err();
        assert!(word.contains("idle_timeout") && word.contains("not a duration"), "{word}");
        let unknown = read("[retry]\nattempts = 3").unwrap_err();
        assert!(unknown.contains("attempts"), "{unknown}");
        assert!(read("[retry]\nmax_attempts = 0").unwrap_err().contains("gateway.retry.max_attempts"));
        let beat = read("[health]\nlease_ttl = \"1s\"\nheartbeat = \"2s\"").unwrap_err();
        assert!(beat.contains("gateway.health.heartbeat"), "{beat}");
        assert!(read("[bans]\nban_ipv6_prefix = 0").unwrap_err().contains("ban_ipv6_prefix"));
        let listeners =
            read("[[listeners]]\nlisten = \"127.0.0.1:80\"\ninsecure = \"redirect\"\nclient_cert = \"off\"");
        assert!(listeners.unwrap_err().contains("listeners[0] (127.0.0.1:80)"));
        let mode =
            read("[[listeners]]\nlisten = \"127.0.0.1:443\"\nclient_cert = \"sometimes\"").unwrap_err();
        assert!(mode.contains("off, optional or required"), "{mode}");
        let fine = read("[[listeners]]\nlisten = \"127.0.0.1:80\"\ninsecure = \"redirect\"").unwrap();
        assert_eq!(fine.listeners[0].insecure, Some(super::super::Insecure::Redirect));
    }
}
