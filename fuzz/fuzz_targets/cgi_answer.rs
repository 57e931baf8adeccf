//! A program's CGI answer (its standard output) as the node reads it, and the environment a
//! program is given for a request read from the same bytes (`METHOD TARGET` and header lines):
//! an answer writes back as a header block that reads the same, and no environment ever holds
//! a variable a client could pass for the gateway's (`HTTP_RAMPART_*`), an `HTTP_PROXY`
//! (httpoxy) or the caller's credential.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_node::Call;
use rampart_node::program::cgi::{answer, environment};

fuzz_target!(|data: &[u8]| {
    if let Ok(a) = answer(data.to_vec()) {
        let lines = a.headers.len() + 2;
        let longest = a.headers.iter().map(|(n, v)| n.as_str().len() + v.len()).max().unwrap_or(0);
        if lines < 100 && longest < 8000 && a.content_type.len() < 8000 {
            let mut again =
                format!("Status: {}\r\nContent-Type: {}\r\n", a.status.as_u16(), a.content_type).into_bytes();
            for (name, value) in &a.headers {
                again.extend_from_slice(format!("{name}: ").as_bytes());
                again.extend_from_slice(value.as_bytes());
                again.extend_from_slice(b"\r\n");
            }
            again.extend_from_slice(b"\r\n");
            again.extend_from_slice(&a.body);
            let b = answer(again).expect("an answer written back reads");
            assert_eq!(
                (b.status, &b.content_type, &b.headers, &b.body),
                (a.status, &a.content_type, &a.headers, &a.body)
            );
        }
    }
    let Some(req) = rampart_fuzz::request(data) else { return };
    // What the node checks before a service is called.
    let (Ok(method), Ok(uri)) = (http::Method::from_bytes(&req.method), http::Uri::try_from(req.target))
    else {
        return;
    };
    if rampart_net::wire::check_method(&method).is_err() {
        return;
    }
    let Ok(path) = rampart_net::wire::normalize_path(uri.path()) else { return };
    let call = Call {
        method: &method,
        path: &path,
        query: uri.query(),
        headers: &req.headers,
        principal: "user/alice",
        role: "user",
        client: "203.0.113.1",
        idempotency_key: None,
        body: Vec::new(),
    };
    for (name, value) in environment(&call, "env") {
        assert!(!name.starts_with("HTTP_RAMPART_"), "{name}={value}");
        assert!(name != "HTTP_PROXY" && name != "HTTP_AUTHORIZATION", "{name}={value}");
        assert!(!name.contains(['=', '\0']) && !value.contains('\0'), "{name:?}={value:?}");
    }
});
