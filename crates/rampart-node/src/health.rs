//! The node's health for orchestrators (Kubernetes probes): plain HTTP on its own listener,
//! because the node's service listener takes gateways' client certificates only. It answers
//! `GET /_rampart/health` and nothing else: 200 while the node is registered with the network,
//! 503 while it is not (starting, or its gateways refused it), and says nothing more.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use rampart_net::contract::path;
use rampart_net::{Body, full};

/// Connections served at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 64;

fn answer(req: &Request<Incoming>, ready: &AtomicBool) -> Response<Body> {
    let (status, body) = match (req.method(), req.uri().path()) {
        (&Method::GET, path::HEALTH) if ready.load(Ordering::Relaxed) => (StatusCode::OK, "ok"),
        (&Method::GET, path::HEALTH) => (StatusCode::SERVICE_UNAVAILABLE, "not registered"),
        _ => (StatusCode::NOT_FOUND, "only GET /_rampart/health is served here"),
    };
    let mut r = Response::new(full(format!("{{\"status\":\"{body}\"}}")));
    *r.status_mut() = status;
    r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    r
}

/// Serves the health endpoint on `listener` for as long as the task runs.
pub async fn serve(listener: tokio::net::TcpListener, ready: Arc<AtomicBool>) {
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else { return };
        let Ok((tcp, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let ready = ready.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = service_fn(move |req| {
                let r = answer(&req, &ready);
                async move { Ok::<_, Infallible>(r) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(5))
                .max_buf_size(8192)
                .serve_connection(TokioIo::new(tcp), service);
            let _ = tokio::time::timeout(Duration::from_secs(30), conn).await;
        });
    }
}
