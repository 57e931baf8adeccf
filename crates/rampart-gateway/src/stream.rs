//! `GET /_rampart/events`: recent events as JSON, or — with `Accept: text/event-stream` — a
//! Server-Sent Events stream that first replays what followed `Last-Event-ID` (or `?after=`)
//! and then follows live, with a comment every 15 s to keep proxies from closing it. A stream
//! ends when the gateway begins to stop.

use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use http::{HeaderMap, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use rampart_events::Event;
use rampart_net::Body;
use tokio::sync::broadcast::error::RecvError;

use crate::{State, reply};

fn param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?.split('&').find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
}

fn frame(e: &Event) -> Bytes {
    let data = serde_json::to_string(e).unwrap_or_default();
    Bytes::from(format!("id: {}\nevent: security\ndata: {data}\n\n", e.id))
}

/// Answers `GET /_rampart/events` (the caller is already known to be an admin).
pub fn events(state: &State, headers: &HeaderMap, query: Option<&str>) -> Response<Body> {
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .or_else(|| param(query, "after"))
        .and_then(|v| v.parse::<u64>().ok());
    let wants_stream =
        headers.get(ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/event-stream"));
    if !wants_stream {
        let limit =
            param(query, "limit").and_then(|v| v.parse().ok()).unwrap_or(200usize).min(rampart_events::RING);
        let list = state.events.since(after, limit);
        return reply::json(StatusCode::OK, &serde_json::json!({"events": list}));
    }
    // Subscribe before reading the backlog, so nothing falls between the two.
    let mut live = state.events.subscribe();
    let backlog = state.events.since(after, rampart_events::RING);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, rampart_net::BoxError>>(64);
    let mut closing = state.closing();
    tokio::spawn(async move {
        if *closing.borrow_and_update() {
            return;
        }
        let mut last = after.unwrap_or(0);
        for e in &backlog {
            last = e.id;
            if tx.send(Ok(Frame::data(frame(e)))).await.is_err() {
                return;
            }
        }
        let mut keepalive = tokio::time::interval(Duration::from_secs(15));
        loop {
            tokio::select! {
                // The gateway stops: end the stream (the client resumes elsewhere with
                // Last-Event-ID) rather than hold the drain for its whole timeout.
                _ = closing.changed() => return,
                _ = keepalive.tick() => {
                    if tx.send(Ok(Frame::data(Bytes::from_static(b": keepalive\n\n")))).await.is_err() { return; }
                }
                got = live.recv() => match got {
                    Ok(e) if e.id > last => {
                        last = e.id;
                        if tx.send(Ok(Frame::data(frame(&e)))).await.is_err() { return; }
                    }
                    Ok(_) => {}
                    // Too slow a reader: end the stream; the client resumes with Last-Event-ID.
                    Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => return,
                },
            }
        }
    });
    let mut resp = Response::new(StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx)).boxed());
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    resp
}
