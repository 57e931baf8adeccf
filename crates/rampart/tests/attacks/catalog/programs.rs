//! Executables as services: what reaches a program (no environment of the node's, no
//! `HTTP_PROXY` from a `Proxy:` header, no forged principal), names that try to leave the
//! folder, and programs that exhaust output, time or processes, bounded by the node's limits.

use super::{Attack, Case, Cred, Expect, Seen, Target, curl, run};
use crate::support::{Network, folder, install, program_node_args};

/// GET `path` as the admin; 200 only if the answer holds none of `absent` and all of `present`.
fn answer_is(
    path: &'static str,
    args: &'static [&'static str],
    present: &'static [&'static str],
    absent: &'static [&'static str],
) -> Attack {
    Attack::Custom(Box::new(move |net, from| {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let seen = super::call_curl(&net.home, &net.url, from, &Cred::Admin, &args, path);
        let holds = present.iter().all(|p| seen.text.lines().any(|l| l == *p))
            && !absent.iter().any(|a| seen.text.contains(a));
        Seen { status: seen.status.filter(|_| holds), ..seen }
    }))
}

#[test]
fn programs() {
    let mut net = Network::start(0, &[]);
    let dir = folder(&net);
    let args = program_node_args(&dir, 65536, 4, &["--service", "hello"]);
    let limits: Vec<&str> = args.iter().map(String::as_str).collect();
    net.add_node("n1", &limits);
    install(&dir, "env", "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\nenv\n");
    install(&dir, "flood", "#!/bin/sh\nexec yes\n");
    install(&dir, "hang", "#!/bin/sh\nsleep 1001\n");
    install(&dir, "forks", "#!/bin/sh\nf() { f | f & }\nf\nsleep 5\n");
    install(&dir, "crash", "#!/bin/sh\necho partial\nexit 3\n");
    install(&dir, "chatty", "#!/bin/sh\necho secret-on-stderr >&2\necho ok\n");
    install(&dir, "badhead", "#!/bin/sh\nprintf 'Status: banana\\n\\nbody'\n");
    install(&dir, ".hidden", "#!/bin/sh\necho hidden\n");
    std::fs::write(dir.join("notexec"), "#!/bin/sh\necho ran\n").unwrap();
    assert!(net.eventually(std::time::Duration::from_secs(5), || net.call("/env", &[]).status.success()));

    let cases = vec![
        Case::new(
            "the node's environment",
            answer_is(
                "/env",
                &[],
                &["RAMPART_SERVICE=env"],
                &["HOME=", "RAMPART_HOME", "RUST_", "CARGO", "USER=root"],
            ),
            Expect::Status(200),
            None,
        ),
        Case::new(
            "httpoxy: a Proxy header as HTTP_PROXY",
            answer_is("/env", &["-H", "Proxy: http://evil.example:1"], &[], &["HTTP_PROXY", "evil.example"]),
            Expect::Status(200),
            None,
        ),
        Case::new(
            "a forged principal",
            answer_is(
                "/env",
                &["-H", "Rampart-Principal: user/mallory"],
                &["RAMPART_PRINCIPAL=spiffe://local/admin/admin"],
                &["mallory"],
            ),
            Expect::Status(200),
            None,
        ),
        Case::new(
            "a forged principal with underscores (CGI reads _ as -)",
            answer_is(
                "/env",
                &["-H", "Rampart_Principal: user/mallory", "-H", "X_Forwarded_For: 10.6.6.6"],
                &["RAMPART_PRINCIPAL=spiffe://local/admin/admin"],
                &["mallory", "10.6.6.6"],
            ),
            Expect::Status(200),
            None,
        ),
        Case::new(
            "a name climbing out of the folder",
            curl(Cred::Admin, "/..%2f..%2fbin%2fsh", &[]),
            Expect::Status(404),
            None,
        ),
        Case::new(
            "a hidden file as a service",
            curl(Cred::Admin, "/.hidden", &[]),
            Expect::Status(404),
            None,
        ),
        Case::new(
            "a file that is not executable",
            curl(Cred::Admin, "/notexec", &[]),
            Expect::Status(404),
            None,
        ),
        Case::new(
            "output without end",
            curl(Cred::Admin, "/flood", &[]),
            Expect::Status(502),
            Some("program_failed"),
        ),
        Case::new(
            "a program that never ends",
            curl(Cred::Admin, "/hang", &[]),
            Expect::Status(504),
            Some("program_failed"),
        ),
        Case::new(
            "a fork bomb",
            curl(Cred::Admin, "/forks", &[]),
            Expect::Status(504),
            Some("program_failed"),
        ),
        Case::new(
            "a crash after partial output",
            curl(Cred::Admin, "/crash", &[]),
            Expect::Status(502),
            Some("program_failed"),
        ),
        Case::new(
            "its stderr in the answer",
            answer_is("/chatty", &[], &["ok"], &["secret-on-stderr"]),
            Expect::Status(200),
            None,
        ),
        Case::new(
            "a CGI head that does not parse",
            curl(Cred::Admin, "/badhead", &[]),
            Expect::Status(502),
            Some("program_failed"),
        ),
        Case::new(
            "a body over the program's cap",
            curl(Cred::Admin, "/env", &["--data-binary", &"x".repeat(4096)]),
            Expect::Status(413),
            None,
        ),
    ];
    run("programs", 10, &Target::new(&net, &[]), cases);
}
