//! Catalogs: what this network exports to a peer, served to that peer's gateway
//! ([`serve`]), and what each peer exports to us, asked for every `catalog_interval`
//! ([`follow`]). The asking is also the heartbeat: a peer whose catalog has not answered
//! within `peer_stale_after` is down ("connected" is not "healthy"), and one whose every
//! gateway refuses the connection is down at once. Going down and coming back are events.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use rampart_auth::{Credential, Principal, ServiceName};
use rampart_events::EventKind;
use rampart_net::Body;
use rampart_net::contract::{Catalog, path};
use rampart_pki::{Role, TrustDomain};

use super::{Federation, Link, lock};
use crate::upstream::{TargetEvents, Transport, Upstreams};
use crate::{State, reply};

/// Largest catalog read from a peer.
const MAX_CATALOG_BYTES: usize = 1 << 20;

/// The peer network whose gateway `principal` is (verified by the front door against that
/// network's bundle), if it is one.
pub(crate) fn peer_gateway(state: &State, principal: &Principal) -> Option<TrustDomain> {
    match principal.credential() {
        Credential::Certificate(id) if id.role == Role::Gateway && id.domain != state.domain => {
            Some(id.domain.clone())
        }
        _ => None,
    }
}

/// `GET /_rampart/federation/catalog` for a peer's gateway: the services exported to it that
/// a node here hosts (an imported service is never hosted here, so never passed on).
pub(crate) fn serve(state: &State, federation: &Federation, peer: &TrustDomain) -> Response<Body> {
    let services = federation
        .exported_to(peer)
        .into_iter()
        .filter(|s| Upstreams::knows(state.nodes.as_ref(), s))
        .collect();
    let catalog = Catalog {
        domain: state.domain.to_string(),
        services,
        bundle: state.bundle.current().map(|b| b.fingerprint().to_string()),
    };
    reply::json(StatusCode::OK, &serde_json::to_value(catalog).unwrap_or_default())
}

/// `GET /_rampart/federation/peers` (admins): each peer as this gateway sees it now — up or
/// down, when its catalog last answered, what it exports to us and we to it.
pub(crate) fn peers(federation: &Federation) -> Response<Body> {
    let mut out: Vec<serde_json::Value> = federation
        .links()
        .values()
        .map(|link| {
            let c = lock(&link.catalog);
            let exported: Vec<String> = federation.exported_to(&link.peer.domain).into_iter().collect();
            serde_json::json!({
                "name": link.peer.domain.as_str(),
                "urls": link.peer.urls,
                "fingerprint": link.peer.fingerprint,
                "up": c.up,
                "catalog_age_ms": c.answered.map(|t| u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX)),
                "imports": c.services,
                "exports": exported,
                "served_bundle": c.bundle,
            })
        })
        .collect();
    out.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    reply::json(StatusCode::OK, &serde_json::json!({"peers": out}))
}

/// Asks every peer for its catalog each `catalog_interval`, until the task is stopped.
pub(crate) async fn follow(state: Arc<State>, federation: Arc<Federation>) {
    let every = Duration::from_millis(state.config.catalog_interval_ms);
    loop {
        let next = tokio::time::sleep(every);
        ask_all(&state, &federation).await;
        next.await;
    }
}

/// Asks every peer for its catalog once, all at the same time (each ask bounded by
/// `catalog_interval`).
pub(crate) async fn ask_all(state: &Arc<State>, federation: &Arc<Federation>) {
    let every = Duration::from_millis(state.config.catalog_interval_ms);
    let stale = Duration::from_millis(state.config.peer_stale_after_ms);
    let mut asks = tokio::task::JoinSet::new();
    for link in federation.links().values() {
        let (state, federation, link) = (state.clone(), federation.clone(), link.clone());
        asks.spawn(async move { refresh(&state, &federation, &link, (every, stale)).await });
    }
    while asks.join_next().await.is_some() {}
}

/// How asking one peer went.
enum Asked {
    /// Its catalog, and the gateway URL that answered.
    Answered(Catalog, String),
    /// Every gateway refused the connection: nobody is there.
    Refused(String),
    /// Something else failed (a timeout, a bad answer): down once stale.
    Failed(String),
}

/// Asks `link`'s gateways in turn for its catalog and records what came.
async fn refresh(
    state: &State,
    federation: &Federation,
    link: &Link,
    (timeout, stale): (Duration, Duration),
) {
    let domain = link.peer.domain.as_str();
    let asked = ask(link, timeout).await;
    probed(state, federation, link, &asked);
    match record(link, asked, stale) {
        Change::None => {}
        Change::Up { services, rotated } => {
            if let Some(services) = services {
                let why = format!("peer {domain} answers; it exports to us: {}", services.join(", "));
                peer_event(state, EventKind::PeerUp, domain, &why);
            }
            if let Some((url, announced)) = rotated {
                follow_rotation(state, link, &url, &announced, timeout).await;
            }
        }
        Change::Down { why, was_up: true } => {
            peer_event(state, EventKind::PeerDown, domain, &format!("peer {domain} is down: {why}"))
        }
        // Never up yet: down without an event (it may not run yet), said in the log.
        Change::Down { why, was_up: false } => tracing::debug!("peer {domain} not reachable: {why}"),
    }
}

/// Asking for the catalog is also each gateway's health probe: the gateways asked before the
/// one that answered failed, that one passed. A gateway ejected by failed requests comes back
/// this way (two passes after its back-off), as a node does through its probes.
fn probed(state: &State, federation: &Federation, link: &Link, asked: &Asked) {
    let events = super::PeerGateways(state);
    let answered = match asked {
        Asked::Answered(_, url) => Some(url.as_str()),
        _ => None,
    };
    let pool: Vec<_> = link.targets.iter().map(|t| t.health.clone()).collect();
    for (url, target) in link.peer.urls.iter().zip(link.targets.iter()) {
        if Some(url.as_str()) == answered {
            if target.health.succeeded() {
                events.rejoined(&target.name, "answers its catalog again");
            }
            return;
        }
        if target.health.failed() && federation.board().maybe_eject(&target.health, &pool, "catalog failed") {
            events.ejected(&target.name, "its catalog failed");
        }
    }
}

/// What an answer (or its absence) changed.
enum Change {
    None,
    /// It answered: the services when it just came up, and the URL and fingerprint of a bundle
    /// it announces that we do not hold.
    Up {
        services: Option<Vec<String>>,
        rotated: Option<(String, String)>,
    },
    /// It is down now, for `why`.
    Down {
        why: String,
        was_up: bool,
    },
}

/// Records what asking `link` gave.
fn record(link: &Link, asked: Asked, stale: Duration) -> Change {
    let now = Instant::now();
    let mut c = lock(&link.catalog);
    let why = match asked {
        Asked::Answered(catalog, url) => {
            (c.services, c.bundle) = kept(catalog);
            c.answered = Some(now);
            let came_up = !std::mem::replace(&mut c.up, true);
            let rotated = c.bundle.clone().filter(|b| *b != link.peer.fingerprint).map(|b| (url, b));
            let services = came_up.then(|| c.services.iter().cloned().collect());
            return Change::Up { services, rotated };
        }
        Asked::Refused(why) => why,
        Asked::Failed(why) if c.answered.is_some_and(|t| now - t < stale) => {
            tracing::debug!("peer {}: {why}", link.peer.domain);
            return Change::None;
        }
        Asked::Failed(why) => format!("no catalog for {} ms: {why}", stale.as_millis()),
    };
    Change::Down { why, was_up: std::mem::replace(&mut c.up, false) }
}

/// What of a peer's catalog is kept: its words are shown to operators and matched against
/// requests, so only what is a service name or a fingerprint.
fn kept(catalog: Catalog) -> (std::collections::BTreeSet<String>, Option<String>) {
    let services = catalog.services.into_iter().filter(|s| ServiceName::parse(s).is_ok()).collect();
    let bundle =
        catalog.bundle.and_then(|b| rampart_pki::bundle::Fingerprint::parse(&b).ok()).map(|f| f.to_string());
    (services, bundle)
}

/// The peer announces another bundle than the one we hold (its CA rotates): fetch it from the
/// gateway at `url` over the channel the bundle we hold verifies, and keep it in the registry
/// if it is the one announced — every gateway of this network then trusts it, without a command.
async fn follow_rotation(state: &State, link: &Link, url: &str, announced: &str, timeout: Duration) {
    let domain = &link.peer.domain;
    let fetched = async {
        let req = Request::get(format!("{url}{}", path::BUNDLE)).body(rampart_net::full("")).ok()?;
        let resp = tokio::time::timeout(timeout, Transport::send(&link.client, req)).await.ok()?.ok()?;
        if resp.status() != StatusCode::OK {
            return None;
        }
        let pem = read_bytes(resp, rampart_pki::bundle::MAX_BYTES).await?;
        rampart_pki::bundle::Bundle::parse(&pem).ok()
    };
    let Some(bundle) = fetched.await else {
        tracing::warn!("peer {domain} announces the CA bundle {announced}, but {url} did not serve it");
        return;
    };
    if bundle.fingerprint().to_string() != announced {
        tracing::warn!(
            "peer {domain} announces {announced} but serves {}: kept the old one",
            bundle.fingerprint()
        );
        return;
    }
    match rampart_federation::peers::replace_bundle(state.store.as_ref(), domain, &bundle).await {
        Ok(true) => tracing::info!("peer {domain} rotated its CA bundle: now trusting {announced}"),
        Ok(false) => {}
        Err(e) => tracing::warn!("keeping peer {domain}'s new CA bundle: {e}"),
    }
}

/// One round of asking `link`'s gateways, in the order they were given.
async fn ask(link: &Link, timeout: Duration) -> Asked {
    let mut refused = Vec::new();
    let mut failed = None;
    for url in &link.peer.urls {
        let Ok(req) = Request::get(format!("{url}{}", path::CATALOG)).body(rampart_net::full("")) else {
            continue;
        };
        match tokio::time::timeout(timeout, Transport::send(&link.client, req)).await {
            Ok(Ok(resp)) if resp.status() == StatusCode::OK => match read(resp).await {
                Some(catalog) if catalog.domain == link.peer.domain.as_str() => {
                    return Asked::Answered(catalog, url.clone());
                }
                Some(catalog) => failed = Some(format!("{url} answers as {:?}", catalog.domain)),
                None => failed = Some(format!("{url}: an unreadable catalog")),
            },
            Ok(Ok(resp)) => failed = Some(format!("{url} answered {}", resp.status())),
            Ok(Err(e)) if !e.maybe_sent => refused.push(format!("{url}: {}", e.detail)),
            Ok(Err(e)) => failed = Some(format!("{url}: {}", e.detail)),
            Err(_) => failed = Some(format!("{url}: no answer within {} ms", timeout.as_millis())),
        }
    }
    match failed {
        Some(why) => Asked::Failed(why),
        None => Asked::Refused(refused.join("; ")),
    }
}

/// A catalog answer, read up to [`MAX_CATALOG_BYTES`].
async fn read(resp: Response<Body>) -> Option<Catalog> {
    serde_json::from_slice(&read_bytes(resp, MAX_CATALOG_BYTES).await?).ok()
}

/// An answer's body, `None` past `max` bytes or broken.
async fn read_bytes(resp: Response<Body>, max: usize) -> Option<Vec<u8>> {
    let mut body = resp.into_body();
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.ok()?.into_data() {
            if bytes.len() + data.len() > max {
                return None;
            }
            bytes.extend_from_slice(&data);
        }
    }
    Some(bytes)
}

/// An event about a peer network (source: its domain).
pub(crate) fn peer_event(state: &State, kind: EventKind, domain: &str, why: &str) {
    let event = rampart_events::NewEvent::new(kind, format!("peer:{domain}"), why);
    state.events.record(event);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_service_names_and_a_fingerprint_are_kept_of_a_peer_catalog() {
        let good = format!("sha256:{}", "ab".repeat(32));
        let catalog = |services: &[&str], bundle: &str| Catalog {
            domain: "west".into(),
            services: services.iter().map(|s| (*s).to_owned()).collect(),
            bundle: Some(bundle.to_owned()),
        };
        let (services, bundle) = kept(catalog(&["echo", "\u{1b}[2Jx", "a/b", "*", "_rampart", ""], &good));
        assert_eq!(services.into_iter().collect::<Vec<_>>(), ["echo"]);
        assert_eq!(bundle, Some(good));
        assert_eq!(kept(catalog(&[], "\u{1b}]0;owned\u{7}")).1, None);
    }
}
