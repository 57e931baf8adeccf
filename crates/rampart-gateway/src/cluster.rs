//! What the gateways of one network tell each other through the registry they share (etcd):
//! their security events, so any gateway's dashboard and event stream show every gateway's,
//! and with them the bans, so a source banned at one door is banned at all of them.
//!
//! Each gateway writes its own events in batches under `events/<gateway>/<sequence>` (at most
//! four writes a second, however hard it is being hit; a batch over [`MAX_BATCH`] events keeps
//! the newest and says how many it left out) and keeps only its last [`KEEP_BATCHES`] there. It
//! watches `events/` and relays the other gateways' batches into its own live feed.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rampart_events::{Event, EventKind};
use rampart_store::EventKind as Change;
use time::format_description::well_known::Rfc3339;
use tokio::sync::broadcast::error::RecvError;

use crate::State;

/// One published batch: `events/<gateway>/<sequence>`.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Batch {
    events: Vec<Event>,
    /// Events left out of the feed (over [`MAX_BATCH`], or missed while the registry was away).
    left_out: u64,
}

impl Batch {
    fn decode(bytes: &[u8]) -> Vec<Event> {
        serde_json::from_slice::<Batch>(bytes).map(|b| b.events).unwrap_or_default()
    }
}

/// Where gateways publish their events.
pub const EVENTS_PREFIX: &str = "events/";
/// The most events in one published batch.
pub const MAX_BATCH: usize = 200;
/// How many of its batches a gateway keeps in the registry.
pub const KEEP_BATCHES: usize = 100;
const FLUSH_EVERY: Duration = Duration::from_millis(250);

fn own_prefix(state: &State) -> String {
    format!("{EVENTS_PREFIX}{}/", state.events.gateway())
}

/// Publishes this gateway's events for the others, in batches.
pub(crate) async fn publish(state: Arc<State>) {
    let mut rx = state.events.subscribe();
    let prefix = own_prefix(&state);
    let me = state.events.gateway().to_owned();
    // Continue after this gateway's batches from an earlier run, if any.
    let mut written: VecDeque<String> = VecDeque::new();
    if let Ok(kvs) = state.store.range(&prefix).await {
        written.extend(kvs.into_iter().map(|kv| kv.key));
    }
    let mut seq: u64 = written.back().and_then(|k| k.rsplit('/').next()?.parse().ok()).unwrap_or(0);
    let mut batch: Vec<Event> = Vec::new();
    let mut left_out = 0u64;
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    loop {
        tokio::select! {
            got = rx.recv() => match got {
                Ok(ev) if ev.gateway.as_deref() == Some(me.as_str()) => {
                    if batch.len() == MAX_BATCH {
                        batch.remove(0);
                        left_out += 1;
                    }
                    batch.push(ev);
                }
                Ok(_) => {} // relayed from another gateway
                Err(RecvError::Lagged(n)) => left_out += n,
                Err(RecvError::Closed) => return,
            },
            _ = tick.tick() => {
                if batch.is_empty() && left_out == 0 {
                    continue;
                }
                seq += 1;
                let key = format!("{prefix}{seq:020}");
                let body = serde_json::to_vec(&Batch { events: batch.clone(), left_out }).unwrap_or_default();
                match state.store.put(&key, body, None).await {
                    Ok(_) => {
                        batch.clear();
                        left_out = 0;
                        written.push_back(key);
                        while written.len() > KEEP_BATCHES {
                            if let Some(old) = written.pop_front() {
                                let _ = state.store.delete(&old).await;
                            }
                        }
                    }
                    // Registry out of reach: keep the batch (bounded) and try at the next tick.
                    Err(e) => tracing::debug!("publishing events: {e}"),
                }
            }
        }
    }
}

/// The other gateways' batches, oldest event first (from the registry, at start).
async fn published_events(state: &State, own: &str) -> Vec<(time::OffsetDateTime, Event)> {
    let Ok(kvs) = state.store.range(EVENTS_PREFIX).await else { return Vec::new() };
    let mut events: Vec<(time::OffsetDateTime, Event)> = kvs
        .iter()
        .filter(|kv| !kv.key.starts_with(own))
        .flat_map(|kv| Batch::decode(&kv.value))
        .filter_map(|e| Some((time::OffsetDateTime::parse(&e.time, &Rfc3339).ok()?, e)))
        .collect();
    events.sort_by_key(|(at, _)| *at);
    events
}

/// A gateway (re)starting takes on the bans the others started while it was away and that
/// still run, so an attacker gains nothing by waiting for a gateway to restart.
fn catch_up_bans(state: &State, events: &[(time::OffsetDateTime, Event)]) {
    let now = time::OffsetDateTime::now_utc();
    let ban = time::Duration::seconds(i64::try_from(state.config.ban_secs).unwrap_or(i64::MAX));
    for (at, event) in events {
        apply_ban(state, event, Duration::try_from(*at + ban - now).unwrap_or_default());
    }
}

/// Follows the other gateways' events: relayed into this one's feed, their bans applied.
pub(crate) async fn follow(state: Arc<State>) {
    let own = own_prefix(&state);
    catch_up_bans(&state, &published_events(&state, &own).await);
    let mut from = None;
    loop {
        let mut watch = match state.store.watch(EVENTS_PREFIX, from).await {
            Ok(w) => w,
            Err(e) => {
                tracing::debug!("following other gateways' events: {e}");
                if matches!(e, rampart_store::StoreError::Compacted { .. }) {
                    from = None; // what was missed is gone: pick up from now
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        while let Ok(ev) = watch.next().await {
            from = Some(ev.kv.mod_revision + 1);
            if ev.kind != Change::Put || ev.kv.key.starts_with(&own) {
                continue;
            }
            for event in Batch::decode(&ev.kv.value) {
                apply_ban(&state, &event, Duration::from_secs(state.config.ban_secs));
                state.events.relay(event);
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn source_ip(event: &Event) -> Option<IpAddr> {
    event.source.parse::<IpAddr>().ok().or_else(|| event.source.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

/// A peer's ban starts here too, for the `left` of it still to run; a peer's lifted ban is
/// lifted here too.
fn apply_ban(state: &State, event: &Event, left: Duration) {
    let Some(ip) = source_ip(event) else { return };
    match event.kind {
        EventKind::Banned if !left.is_zero() => state.admission.bans().impose(ip, left),
        EventKind::BanLifted if state.admission.bans().lift(ip) => {
            tracing::info!("ban on {ip} lifted at {:?}", event.gateway);
        }
        _ => {}
    }
}
