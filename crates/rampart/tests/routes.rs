//! Where TLS ends, per route and per listener: an edge route's app on loopback gets plain HTTP
//! with the caller's identity (an app elsewhere is refused at start-up, naming the route);
//! several front listeners each with its client certificate mode and certificates chosen by
//! SNI; a plain-HTTP listener that only redirects to HTTPS. `curl` and `openssl s_client` are
//! the outside clients.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;

use support::{curl, ok, spawn, subject_for};

/// An app on loopback answering every request with the head it received (bounded: at most
/// `requests` requests, then it stops).
fn head_echo(requests: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(requests) {
            let Ok(mut stream) = stream else { continue };
            let mut head = String::new();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                head.push_str(&line);
            }
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{head}",
                head.len()
            );
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    port
}

fn append(home: &Path, text: &str) {
    let path = home.join("rampart.toml");
    let mut config = std::fs::read_to_string(&path).unwrap();
    config.push_str(text);
    std::fs::write(path, config).unwrap();
}

#[test]
fn an_edge_route_sends_plain_http_with_the_callers_identity_to_its_app_on_loopback_only() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    ok(&home, &["init"]);
    let app = head_echo(16);
    append(&home, &format!("\n[routes.legacy]\nmode = \"edge\"\nupstream = \"http://127.0.0.1:{app}\"\n"));
    let gateway =
        spawn(&home, &["gateway", "--listen", "127.0.0.1:0"], "rampart gateway listening on ", "gateway");
    let url = gateway.ready.split_whitespace().nth(4).unwrap().to_owned();
    ok(&home, &["user", "add", "alice", "--no-password"]);
    let token = ok(&home, &["token", "issue", "--user", "alice"]).trim().to_owned();
    let ca = home.join("pki/local/ca.pem").display().to_string();
    let auth = format!("Authorization: Bearer {token}");

    // Default deny holds for an edge route too.
    let (_, said) = curl(&["--cacert", &ca, "-H", &auth, "-w", "%{http_code}", &format!("{url}/legacy/x")]);
    assert!(said.ends_with("403"), "{said}");
    ok(&home, &["policy", "allow", "--service", "legacy", "--principal", "user/alice"]);
    // Allowed: the app gets the path after the route, the query, and who called, from the
    // gateway (a Rampart-Principal the client sent is not passed on).
    let forged = "Rampart-Principal: admin/admin";
    let (fine, seen) = curl(&["--cacert", &ca, "-H", &auth, "-H", forged, &format!("{url}/legacy/x/y?q=1")]);
    assert!(fine, "{seen}");
    assert!(seen.starts_with("GET /x/y?q=1 HTTP/1.1"), "{seen}");
    let seen = seen.to_ascii_lowercase();
    assert!(seen.contains("rampart-principal: user/alice"), "{seen}");
    assert!(!seen.contains("admin/admin") && !seen.contains("authorization"), "{seen}");
    drop(gateway);

    // An app elsewhere than loopback: the gateway does not start, and says which route and why.
    let other = dir.path().join("other");
    ok(&other, &["init"]);
    append(&other, "\n[routes.legacy]\nmode = \"edge\"\nupstream = \"http://10.0.0.5:80\"\n");
    let out = support::run(&other, &["gateway", "--listen", "127.0.0.1:0"], "");
    let err = support::stderr(&out);
    assert!(!out.status.success());
    assert!(err.contains("[routes.legacy]") && err.contains("not on loopback"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn listeners_have_their_own_client_certificate_modes_certificates_by_sni_and_a_redirect() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    ok(&home, &["init"]);
    for (name, dns) in [("public", "public.example.test"), ("internal", "internal.example.test")] {
        ok(&home, &["pki", "issue", "--role", "gateway", "--name", name, "--dns", dns]);
    }
    append(
        &home,
        r#"
[[gateway.listeners]]
listen = "127.0.0.1:0"
client_cert = "off"
certificates = [
  { cert = "pki/local/issued/public.pem", key = "pki/local/issued/public.key" },
  { cert = "pki/local/issued/internal.pem", key = "pki/local/issued/internal.key" },
]

[[gateway.listeners]]
listen = "127.0.0.1:0"
client_cert = "required"

[[gateway.listeners]]
listen = "127.0.0.1:0"
insecure = "redirect"
"#,
    );
    let gateway =
        spawn(&home, &["gateway", "--listen", "127.0.0.1:0"], "rampart gateway listening on ", "gateway");
    let line = gateway.ready.clone();
    let url = line.split_whitespace().nth(4).unwrap().to_owned();
    let also: Vec<&str> = line
        .split_whitespace()
        .filter(|w| w.starts_with("https://") || w.starts_with("http://"))
        .skip(1)
        .collect();
    assert_eq!(also.len(), 3, "{line}");
    let (public, internal, redirect) = (also[0].trim_start_matches("https://"), also[1], also[2]);
    assert!(
        line.contains("client certificates off") && line.contains("client certificates required"),
        "{line}"
    );

    // One listener, two certificates: the client's SNI picks, the first without one.
    assert!(subject_for(public, Some("internal.example.test")).contains("CN=internal"));
    assert!(subject_for(public, Some("public.example.test")).contains("CN=public"));
    assert!(subject_for(public, None).contains("CN=public"));
    assert!(subject_for(public, Some("unknown.example.test")).contains("CN=public"));
    // The main listener presents the gateway's own.
    assert!(subject_for(url.trim_start_matches("https://"), Some("localhost")).contains("CN=gateway"));

    // Required: no certificate, no connection; the admin's certificate gets through.
    let ca = home.join("pki/local/ca.pem").display().to_string();
    let (cert, key) = (home.join("pki/local/issued/admin.pem"), home.join("pki/local/issued/admin.key"));
    let status = format!("{internal}/_rampart/status");
    let (fine, said) = curl(&["--cacert", &ca, &status]);
    assert!(!fine, "{said}");
    let (fine, said) = curl(&[
        "--cacert",
        &ca,
        "--cert",
        &cert.display().to_string(),
        "--key",
        &key.display().to_string(),
        &status,
    ]);
    assert!(fine && said.contains("\"nodes\""), "{said}");

    // The plain-HTTP listener serves nothing in clear: 308 to the same path over HTTPS.
    let (fine, said) = curl(&["-i", &format!("{redirect}/hello/x?q=1")]);
    assert!(fine, "{said}");
    let port = url.rsplit(':').next().unwrap();
    assert!(said.starts_with("HTTP/1.1 308"), "{said}");
    assert!(said.contains(&format!("location: https://127.0.0.1:{port}/hello/x?q=1")), "{said}");
    // With no Host to redirect to, a clear refusal.
    let (_, said) = curl(&["-i", "-H", "Host:", &format!("{redirect}/")]);
    assert!(said.starts_with("HTTP/1.1 400"), "{said}");
}
