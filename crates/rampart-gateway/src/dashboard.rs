//! `GET /_rampart/ui`: the live security dashboard, one page embedded in the binary (no CDN, no
//! external font). It signs in with an admin token kept in `sessionStorage` (never a URL or a
//! cookie), reads the event stream with `fetch` (so the token travels in a header), and shows
//! the feed, the nodes and request rates.

use http::Response;
use http::header::{CONTENT_TYPE, HeaderValue};
use rampart_net::{Body, full};

const PAGE: &str = include_str!("dashboard.html");
const SCRIPT: &str = include_str!("dashboard.js");
const STYLE: &str = include_str!("dashboard.css");
const ICON: &str = "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'><path d='M8 1l6 3v4c0 4-3 6-6 7-3-1-6-3-6-7V4z' fill='#2b6cb0'/></svg>";

/// A dashboard asset by path (`/ui`, `/ui.js`, `/ui.css`, `/ui.svg`); they hold no data, so no sign-in is
/// needed to load them, and the strict CSP allows only these same-origin files.
/// Whether `path` (the whole request path) is one of the dashboard's files below, which are
/// served even to a banned source (they hold no data).
pub fn is_page(path: &str) -> bool {
    path.strip_prefix("/_rampart")
        .is_some_and(|rest| matches!(rest, "/ui" | "/ui.js" | "/ui.css" | "/ui.svg"))
}

pub fn asset(path: &str) -> Option<Response<Body>> {
    let (body, content_type) = match path {
        "/ui" => (PAGE, "text/html; charset=utf-8"),
        "/ui.js" => (SCRIPT, "text/javascript; charset=utf-8"),
        "/ui.css" => (STYLE, "text/css; charset=utf-8"),
        "/ui.svg" => (ICON, "image/svg+xml"),
        _ => return None,
    };
    let mut r = Response::new(full(body));
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    Some(r)
}
