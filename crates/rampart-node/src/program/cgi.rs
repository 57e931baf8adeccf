//! The CGI side of a program run (RFC 3875): the environment it gets, made only of what it
//! is allowed to know, and the answer read back from its standard output.

use std::borrow::Cow;

use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, StatusCode};

use crate::service::{Answer, Call};

/// The environment of a run: nothing of the node's own, only the request. Headers become
/// `HTTP_*`, except `Authorization` (the credential is the gateway's business), `Proxy`
/// (httpoxy: never an `HTTP_PROXY`), `Rampart-*` (only what the node sets itself) and names with
/// an underscore (`Rampart_Principal` would become `HTTP_RAMPART_PRINCIPAL` too).
pub fn environment(call: &Call<'_>, service: &str) -> Vec<(String, String)> {
    let mut env = vec![
        ("GATEWAY_INTERFACE".to_owned(), "CGI/1.1".to_owned()),
        ("SERVER_PROTOCOL".to_owned(), "HTTP/1.1".to_owned()),
        ("SERVER_SOFTWARE".to_owned(), "rampart".to_owned()),
        ("REQUEST_METHOD".to_owned(), call.method.as_str().to_owned()),
        ("PATH_INFO".to_owned(), call.path.to_owned()),
        ("QUERY_STRING".to_owned(), call.query.unwrap_or("").to_owned()),
        ("CONTENT_LENGTH".to_owned(), call.body.len().to_string()),
        ("REMOTE_USER".to_owned(), call.principal.to_owned()),
        ("REMOTE_ADDR".to_owned(), call.client.to_owned()),
        ("RAMPART_PRINCIPAL".to_owned(), call.principal.to_owned()),
        ("RAMPART_ROLE".to_owned(), call.role.to_owned()),
        ("RAMPART_SERVICE".to_owned(), service.to_owned()),
        ("PATH".to_owned(), "/usr/local/bin:/usr/bin:/bin".to_owned()),
        ("LANG".to_owned(), "C.UTF-8".to_owned()),
    ];
    if let Some(ct) = call.headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) {
        env.push(("CONTENT_TYPE".to_owned(), ct.to_owned()));
    }
    for (name, value) in call.headers {
        let skip = name == http::header::AUTHORIZATION
            || name == http::header::CONTENT_TYPE
            || name == http::header::CONTENT_LENGTH
            || name.as_str() == "proxy"
            || rampart_net::contract::header::is_rampart(name)
            || rampart_net::contract::header::has_underscore(name);
        let Ok(value) = value.to_str() else { continue };
        if !skip {
            let var = format!("HTTP_{}", name.as_str().to_ascii_uppercase().replace('-', "_"));
            env.push((var, value.to_owned()));
        }
    }
    env
}

/// The answer a program wrote: a CGI header block (`Name: value` lines, then an empty line)
/// sets status and headers when stdout begins with one; otherwise all of stdout is the body.
/// A header block whose `Status` is no status is the program's fault: why, as an error.
pub fn answer(stdout: Vec<u8>) -> Result<Answer, String> {
    match header_block(&stdout) {
        Some((head, body_at)) => {
            let mut status = StatusCode::OK;
            let mut content_type: Cow<'static, str> = "text/plain; charset=utf-8".into();
            let mut headers = HeaderMap::new();
            for (name, value) in head {
                let text = value.to_str().unwrap_or("");
                if name.as_str() == "status" {
                    let code = text.split_whitespace().next().and_then(|c| c.parse::<u16>().ok());
                    match code.and_then(|c| StatusCode::from_u16(c).ok()) {
                        Some(s) => status = s,
                        None => return Err(format!("Status: {text:?} is not a status")),
                    }
                } else if name == http::header::CONTENT_TYPE {
                    content_type = text.to_owned().into();
                } else {
                    headers.append(name, value);
                }
            }
            let body = stdout[body_at..].to_vec();
            let mut a = Answer::new(status, content_type, body);
            a.headers = headers;
            Ok(a)
        }
        None => Ok(Answer::new(StatusCode::OK, "text/plain; charset=utf-8", stdout)),
    }
}

/// The header block at the start of `out` and where the body begins, if `out` starts with one:
/// every line up to an empty line must be `Name: value` (a valid header), else there is none.
fn header_block(out: &[u8]) -> Option<(Vec<(HeaderName, HeaderValue)>, usize)> {
    let mut at = 0;
    let mut head = Vec::new();
    // At most 100 lines, each at most 8 KiB: a block larger is taken as body.
    for _ in 0..100 {
        let rest = &out[at..];
        let end = rest.iter().position(|b| *b == b'\n')?;
        let line = rest[..end].strip_suffix(b"\r").unwrap_or(&rest[..end]);
        at += end + 1;
        if line.is_empty() {
            return (!head.is_empty()).then_some((head, at));
        }
        if line.len() > 8192 {
            return None;
        }
        let text = std::str::from_utf8(line).ok()?;
        let (name, value) = text.split_once(':')?;
        let name = HeaderName::from_bytes(name.trim().as_bytes()).ok()?;
        let value = HeaderValue::from_str(value.trim()).ok()?;
        head.push((name, value));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_block_sets_status_and_headers_else_everything_is_body() {
        let a = answer(
            b"Status: 201 Created\r\nContent-Type: application/json\r\nX-Made-By: sh\r\n\r\n{}".to_vec(),
        )
        .unwrap();
        assert_eq!(
            (a.status, a.content_type.as_ref(), a.body.as_slice()),
            (StatusCode::CREATED, "application/json", &b"{}"[..])
        );
        assert_eq!(a.headers["x-made-by"], "sh");
        let text = b"Hello: this is a sentence\nnot a header block\n";
        let plain = answer(text.to_vec()).unwrap();
        assert_eq!(
            (plain.status, plain.body.as_slice()),
            (StatusCode::OK, &text[..]),
            "no empty line: all body"
        );
        let words = answer(b"just words\n\nmore".to_vec()).unwrap();
        assert_eq!(words.body, b"just words\n\nmore");
        assert!(answer(b"Status: nope\n\n".to_vec()).is_err());
        assert_eq!(answer(Vec::new()).unwrap().status, StatusCode::OK);
    }

    #[test]
    fn the_environment_holds_no_header_that_could_pass_for_the_gateways() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("rampart-principal", "user/mallory"),
            ("rampart_principal", "user/mallory"),
            ("x_forwarded_for", "10.6.6.6"),
            ("proxy", "http://evil.example"),
            ("authorization", "Bearer secret"),
            ("x-asked-for", "kept"),
        ] {
            headers.append(HeaderName::from_static(name), HeaderValue::from_static(value));
        }
        let call = Call {
            method: &http::Method::GET,
            path: "/",
            query: None,
            headers: &headers,
            principal: "user/alice",
            role: "",
            client: "127.0.0.1",
            idempotency_key: None,
            body: Vec::new(),
        };
        let env = environment(&call, "env");
        let http: Vec<_> = env.iter().filter(|(k, _)| k.starts_with("HTTP_")).collect();
        assert_eq!(http, [&("HTTP_X_ASKED_FOR".to_owned(), "kept".to_owned())]);
        let principal = env.iter().find(|(k, _)| k == "RAMPART_PRINCIPAL").map(|(_, v)| v.as_str());
        assert_eq!(principal, Some("user/alice"));
    }
}
