//! Services as files: executables dropped into a running node's folder answer through the
//! gateway, CGI-style, with only the variables they are allowed, under the node's limits.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use support::{Network, admin_client, folder, install, program_node_args, stderr, stdout};

/// A network whose node n1 hosts the programs of a folder as nobody, with small limits.
fn network() -> (Network, PathBuf) {
    let mut net = Network::start(0, &[]);
    let dir = folder(&net);
    let args = program_node_args(&dir, 1 << 20, 2, &[]);
    let limits: Vec<&str> = args.iter().map(String::as_str).collect();
    net.add_node("n1", &limits);
    (net, dir)
}

/// Whether some process's command line holds `marker`.
fn running(marker: &str) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
        std::fs::read(e.path().join("cmdline")).is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker))
    })
}

#[test]
fn a_dropped_file_answers_live_and_goes_when_removed() {
    let (net, dir) = network();
    install(
        &dir,
        "hello_world",
        "#!/bin/sh\nprintf 'Status: 201 Created\\nX-Made-By: sh\\n\\nhello from sh %s\\n' \"$PATH_INFO\"\n",
    );
    let answers = || net.call("/hello_world/a/b", &["-v"]);
    assert!(net.eventually(Duration::from_secs(2), || answers().status.success()), "{}", stderr(&answers()));
    let out = answers();
    assert_eq!(stdout(&out), "hello from sh /a/b\n");
    assert!(
        stderr(&out).contains("201") && stderr(&out).to_ascii_lowercase().contains("x-made-by: sh"),
        "{}",
        stderr(&out)
    );

    // Replaced: the new version answers, and the service never went away meanwhile.
    install(&dir, "hello_world", "#!/bin/sh\necho version two\n");
    let mut seen = Vec::new();
    assert!(net.eventually(Duration::from_secs(2), || {
        seen.push(stdout(&answers()));
        seen.last().unwrap() == "version two\n"
    }));
    assert!(seen.iter().all(|s| s == "hello from sh /a/b\n" || s == "version two\n"), "{seen:?}");
    // Removed: unknown within 2 s.
    std::fs::remove_file(dir.join("hello_world")).unwrap();
    assert!(net.eventually(Duration::from_secs(2), || stdout(&answers()).contains("unknown_service")));
    // Half-written files are not taken: a temporary name is passed over.
    std::fs::write(dir.join("slowcopy.tmp"), "#!/bin/sh\necho half").unwrap();
    std::fs::set_permissions(dir.join("slowcopy.tmp"), std::fs::Permissions::from_mode(0o755)).unwrap();
    // A file installed after it shows: the folder was looked at since, and the half-written one
    // is still no service.
    install(&dir, "after", "#!/bin/sh\necho after\n");
    assert!(net.eventually(Duration::from_secs(2), || net.call("/after", &[]).status.success()));
    assert!(stdout(&net.call("/slowcopy.tmp", &[])).contains("unknown_service"));
    // A file anyone may write is refused, with an event.
    install(&dir, "open", "#!/bin/sh\necho open\n");
    std::fs::set_permissions(dir.join("open"), std::fs::Permissions::from_mode(0o777)).unwrap();
    let events = || std::fs::read_to_string(net.home.join("audit.jsonl")).unwrap_or_default();
    assert!(
        net.eventually(Duration::from_secs(3), || events().contains("\"program_refused\"")),
        "{}",
        events()
    );
}

/// A file copied in slowly under its final name (as `cp` does) is never run half-written:
/// while it changes it is not taken, and while its writer holds it open the kernel will not run
/// it (the launcher waits for the writer). Every answer meanwhile is "not there yet" or the whole
/// program's.
#[test]
fn a_file_copied_in_slowly_is_never_run_half_written() {
    use std::io::Write;
    use std::sync::atomic::{AtomicBool, Ordering};
    let mut net = Network::start(0, &[]);
    let dir = folder(&net);
    let d = dir.to_str().unwrap().to_owned();
    net.add_node("n1", &["--run-as", "nobody", "--services-dir", &d, "--program-timeout", "5s"]);
    let path = dir.join("slow_copy");
    let mut file = std::fs::File::create(&path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    file.write_all(b"#!/bin/sh\necho first half\n").unwrap();
    let whole = "first half\nsecond half\n";
    let done = AtomicBool::new(false);
    let seen: Vec<String> = std::thread::scope(|s| {
        // Calls all along (bounded in number), while the copy stalls with its file open for
        // longer than the folder takes to settle a file, then ends.
        let caller = s.spawn(|| {
            let mut seen = Vec::new();
            while seen.len() < 400
                && !(done.load(Ordering::Relaxed) && seen.last().is_some_and(|l| l == whole))
            {
                seen.push(stdout(&net.call("/slow_copy", &[])));
            }
            seen
        });
        std::thread::sleep(Duration::from_millis(1200)); // the copy's stall, not a wait for readiness
        file.write_all(b"echo second half\n").unwrap();
        file.sync_all().unwrap();
        drop(file);
        done.store(true, Ordering::Relaxed);
        caller.join().unwrap()
    });
    assert_eq!(seen.last().map(String::as_str), Some(whole), "{seen:?}");
    let half = seen.iter().filter(|s| s.as_str() == "first half\n").count();
    assert_eq!(half, 0, "run half-written {half} times of {}", seen.len());
    assert!(seen.iter().all(|s| s == whole || s.contains("unknown_service")), "{seen:?}");
}

#[test]
fn a_program_sees_only_its_variables_and_is_held_to_its_limits() {
    let (net, dir) = network();
    install(&dir, "env", "#!/bin/sh\nenv | sort\n");
    install(
        &dir,
        "tmp",
        "#!/bin/sh\necho \"$TMPDIR\"\nstat -c '%a %u' \"$TMPDIR\"\necho x > \"$TMPDIR/f\" && echo written\n",
    );
    install(&dir, "hang", "#!/bin/sh\nsleep 1001 &\nsleep 1002\n");
    install(&dir, "flood", "#!/bin/sh\nexec yes\n");
    install(&dir, "crash", "#!/bin/sh\necho partial\nexit 3\n");
    install(&dir, "chatty", "#!/bin/sh\necho secret-on-stderr >&2\necho ok\n");
    let marker = std::env::temp_dir().join(format!("rampart-ran-{}", std::process::id()));
    install(&dir, "marks", &format!("#!/bin/sh\ntouch {}\necho ran\n", marker.display()));
    install(&dir, "whoami", "#!/bin/sh\nid -u\n");
    install(&dir, "slow", "#!/bin/sh\nsleep 0.5\necho slow\n");
    assert!(net.eventually(Duration::from_secs(3), || net.call("/slow", &[]).status.success()));

    // Only the allow-list: nothing of the node's environment, no Proxy, no Authorization, and
    // the principal the gateway verified however the request tries to forge one.
    let out = net.call(
        "/env/x?q=1",
        &[
            "-H",
            "Proxy: http://evil:1",
            "-H",
            "Rampart-Principal: user/mallory",
            "-H",
            "Rampart-Role: gateway",
            "-H",
            "X-Trace: t1",
        ],
    );
    let env = stdout(&out);
    for line in [
        "REQUEST_METHOD=GET",
        "PATH_INFO=/x",
        "QUERY_STRING=q=1",
        "RAMPART_PRINCIPAL=spiffe://local/admin/admin",
        "RAMPART_ROLE=admin",
        "RAMPART_SERVICE=env",
        "HTTP_X_TRACE=t1",
    ] {
        assert!(env.lines().any(|l| l == line), "{line} missing from:\n{env}");
    }
    for absent in
        ["HTTP_PROXY", "HTTP_AUTHORIZATION", "HOME=", "RAMPART_HOME", "RUST_", "mallory", "HTTP_RAMPART"]
    {
        assert!(!env.contains(absent), "{absent} leaked:\n{env}");
    }

    // A temporary directory of its own, its user's alone, gone once the run is over.
    let out = stdout(&net.call("/tmp", &[]));
    let mut lines = out.lines();
    let tmp = PathBuf::from(lines.next().unwrap());
    assert!(tmp.starts_with(std::env::temp_dir()) && tmp != std::env::temp_dir(), "{out}");
    assert_eq!(lines.next(), Some("700 65534"), "{out}");
    assert_eq!(lines.next(), Some("written"), "{out}");
    assert!(!tmp.exists(), "{} outlived its run", tmp.display());

    // A hang is killed at the timeout with everything it started; the others are served meanwhile.
    let hung = std::thread::scope(|s| {
        let hang = s.spawn(|| net.call("/hang", &["-v"]));
        assert!(net.call("/env", &[]).status.success(), "another service is served meanwhile");
        hang.join().unwrap()
    });
    assert!(stderr(&hung).contains("504"), "{}", stderr(&hung));
    assert!(!running("sleep 1001") && !running("sleep 1002"), "a descendant outlived the timeout");

    // Output cap, crash, stderr.
    let out = net.call("/flood", &["-v"]);
    assert!(
        stderr(&out).contains("502") && stdout(&out).contains("more than 1048576 bytes"),
        "{}",
        stdout(&out)
    );
    let out = net.call("/crash", &["-v"]);
    assert!(stderr(&out).contains("502") && !stdout(&out).contains("partial"), "{}", stdout(&out));
    let events = || std::fs::read_to_string(net.home.join("audit.jsonl")).unwrap_or_default();
    assert!(
        net.eventually(Duration::from_secs(3), || events().contains("\"program_failed\"")),
        "{}",
        events()
    );
    let out = net.call("/chatty", &[]);
    assert_eq!(stdout(&out), "ok\n");
    let log = net.home.join("n1.log");
    assert!(net.eventually(Duration::from_secs(3), || {
        std::fs::read_to_string(&log).unwrap_or_default().contains("secret-on-stderr")
    }));

    // A body over the cap: 413 before the program starts.
    let big = "x".repeat(2048);
    let out = net.call("/marks", &["-d", &big, "-v"]);
    assert!(stderr(&out).contains("413"), "{}", stderr(&out));
    assert!(!marker.exists(), "the program ran");
    // Within the cap it runs (so the check above could fail).
    assert!(net.call("/marks", &["-d", "small"]).status.success());
    assert!(marker.exists());
    let _ = std::fs::remove_file(&marker);
    // As the user asked for, never as the node's root.
    assert_eq!(stdout(&net.call("/whoami", &[])), "65534\n");

    // Two runs at once: of ten parallel calls, two run and the rest are 429 at once.
    let client = admin_client(&net.home);
    let url = format!("{}/slow", net.url);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let statuses: Vec<u16> = rt.block_on(async {
        let calls: Vec<_> = (0..10)
            .map(|_| {
                let (client, url) = (client.clone(), url.clone());
                tokio::spawn(async move { support::request(&client, "GET", &url, &[], "").await.unwrap().0 })
            })
            .collect();
        let mut out = Vec::new();
        for c in calls {
            out.push(c.await.unwrap());
        }
        out
    });
    let ran = statuses.iter().filter(|s| **s == 200).count();
    let busy = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((ran, busy), (2, 8), "{statuses:?}");
}

/// A program slower than the gateway's own per-try timeout, within its own: the node said how
/// long it may take when it registered, so the gateway waits — no 504, no node ejected.
#[test]
fn the_gateway_waits_as_long_as_a_program_may_take() {
    let mut net = Network::start_with(0, &[], &[("try_timeout", "\"300ms\"")]);
    let dir = folder(&net);
    install(&dir, "ponder", "#!/bin/sh\nsleep 0.8\necho pondered\n");
    net.add_node(
        "n1",
        &["--run-as", "nobody", "--services-dir", dir.to_str().unwrap(), "--program-timeout", "2s"],
    );
    assert!(net.eventually(Duration::from_secs(3), || stdout(&net.call("/ponder", &[])) == "pondered\n"));
    for _ in 0..3 {
        let out = net.call("/ponder", &["-v"]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let events = std::fs::read_to_string(net.home.join("audit.jsonl")).unwrap_or_default();
    assert!(!events.contains("node_ejected"), "{events}");
}

/// A node running as root does not start programs as root: it wants --run-as.
#[test]
fn a_root_node_refuses_to_run_programs_as_root() {
    if !rustix::process::getuid().is_root() {
        return; // only root can be refused this way; CI runs as root
    }
    let net = Network::start(0, &[]);
    let dir = folder(&net);
    let d = dir.to_str().unwrap();
    let node = |extra: &[&str]| {
        let mut args = vec!["node", "--name", "n9", "--listen", "127.0.0.1:0", "--gateway", &net.url];
        args.extend(["--services-dir", d]);
        args.extend_from_slice(extra);
        support::refused(&net.home, &args, "")
    };
    let why = node(&[]);
    assert!(why.contains("--run-as"), "{why}");
    let why = node(&["--run-as", "0:0"]);
    assert!(why.contains("must not run as root"), "{why}");
}

/// The examples of `examples/services/` (shell, Python, Perl), dropped into a folder, answer
/// through `rampart call` (plain and sealed) and `curl` with a token.
#[test]
fn the_examples_answer_through_call_and_curl_plain_and_encrypted() {
    let (net, dir) = network();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/services");
    for name in ["hello_world", "sorter", "json_echo"] {
        std::fs::copy(examples.join(name), dir.join(name)).unwrap();
    }
    assert!(net.eventually(Duration::from_secs(3), || net.call("/json_echo", &[]).status.success()));
    let out = net.call("/hello_world/a", &[]);
    assert_eq!(stdout(&out), "Hello, spiffe://local/admin/admin! (you asked for /a)\n");
    assert_eq!(stdout(&net.call("/sorter?order=desc", &["-d", "3, 1 2"])).trim(), "[3, 2, 1]");
    assert_eq!(stdout(&net.call("/sorter", &["-d", "5 4.5", "--encrypt"])).trim(), "[4.5, 5]");
    let bad = net.call("/sorter", &["-d", "three", "-v"]);
    assert!(stderr(&bad).contains("400") && stdout(&bad).contains("not_a_number"), "{}", stdout(&bad));
    let echo: serde_json::Value =
        serde_json::from_slice(&net.call("/json_echo/p?q=1", &["-d", "hi"]).stdout).unwrap();
    assert_eq!(echo["method"], "POST");
    assert_eq!(
        (echo["path"].as_str(), echo["query"].as_str(), echo["body"].as_str()),
        (Some("/p"), Some("q=1"), Some("hi"))
    );

    // curl, as an outside client with a token.
    let token = net.user("alice");
    support::ok(&net.home, &["policy", "allow", "--service", "sorter", "--principal", "user/alice"]);
    let curl = std::process::Command::new("curl")
        .args(["-s", "--cacert", &net.pki_file("../ca.pem"), "-H", &format!("Authorization: Bearer {token}")])
        .args(["--data-binary", "2 10 1", &format!("{}/sorter", net.url)])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&curl.stdout).trim(), "[1, 2, 10]");
}

/// `[node]` in rampart.toml gives the folder (relative to the home) and the user when no flag
/// does, and some services their own limits beside the node-wide ones.
#[test]
fn the_folder_user_and_a_service_s_own_limits_can_come_from_the_home_configuration() {
    let mut net = Network::start(0, &[]);
    let dir = folder(&net);
    install(&dir, "whoami", "#!/bin/sh\nid -u\n");
    install(&dir, "quick", "#!/bin/sh\nsleep 0.6\necho late\n");
    install(&dir, "patient", "#!/bin/sh\nsleep 0.6\necho on time\n");
    let toml = net.home.join("rampart.toml");
    let mut text = std::fs::read_to_string(&toml).unwrap();
    text.push_str(concat!(
        "\n[node]\nservices_dir = \"../services\"\nrun_as = \"nobody\"\n",
        "[node.programs.quick]\ntimeout_ms = 200\n",
        "[node.programs.whoami]\nmax_output = 2\n",
    ));
    std::fs::write(&toml, text).unwrap();
    net.add_node("n1", &[]);
    let whoami = || net.call("/whoami", &["-v"]);
    assert!(
        net.eventually(Duration::from_secs(3), || stdout(&net.call("/patient", &[])) == "on time\n"),
        "{}",
        std::fs::read_to_string(net.home.join("n1.log")).unwrap_or_default()
    );
    // Its own timeout: 504 where the node-wide 30 s let the other answer.
    let out = net.call("/quick", &["-v"]);
    assert!(stderr(&out).contains("504") && stdout(&out).contains("200 ms"), "{}", stdout(&out));
    // Its own output cap: "65534\n" is more than 2 bytes.
    let out = whoami();
    assert!(stderr(&out).contains("502") && stdout(&out).contains("more than 2 bytes"), "{}", stdout(&out));

    // Limits no service could answer under are refused at start, saying where.
    let mut text = std::fs::read_to_string(&toml).unwrap();
    text.push_str("[node.programs.never]\nmax_runs = 0\n");
    std::fs::write(&toml, text).unwrap();
    let why = support::refused(
        &net.home,
        &["node", "--name", "n2", "--listen", "127.0.0.1:0", "--gateway", &net.url],
        "",
    );
    assert!(why.contains("[node.programs]") && why.contains("never: max_runs must be at least 1"), "{why}");
}

/// Replicas: copies of a service in three nodes' folders are balanced; a node SIGKILLed in the
/// middle of a run takes the run with it (nothing of it goes on); a POST cut short that way is
/// not run again elsewhere, unless it carries an `Idempotency-Key`, when another node runs it
/// and the client never notices; calls go on at the node left.
#[test]
fn replicas_in_several_nodes_folders_are_balanced_and_fail_over() {
    let mut net = Network::start(0, &[]);
    let marks = net.dir.path().join("marks");
    std::fs::create_dir(&marks).unwrap();
    std::fs::set_permissions(&marks, std::fs::Permissions::from_mode(0o777)).unwrap();
    folder(&net);
    for name in ["a", "b", "c"] {
        let dir = net.dir.path().join(format!("services-{name}"));
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        install(&dir, "who", &format!("#!/bin/sh\necho {name}\n"));
        let m = marks.display();
        install(
            &dir,
            "work",
            &format!("#!/bin/sh\ntouch {m}/started-{name}\nsleep 1.5\ntouch {m}/done-{name}\necho {name}\n"),
        );
        let d = dir.to_str().unwrap().to_owned();
        net.add_node(
            &format!("n{name}"),
            &["--run-as", "nobody", "--services-dir", &d, "--program-timeout", "10s"],
        );
    }
    let mut seen = std::collections::BTreeSet::new();
    assert!(
        net.eventually(Duration::from_secs(10), || {
            seen.insert(stdout(&net.call("/who", &[])));
            seen.len() == 3
        }),
        "{seen:?}"
    );

    let marked = |what: &str| -> Vec<String> {
        let mut m: Vec<String> = std::fs::read_dir(&marks)
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.starts_with(what))
            .collect();
        m.sort();
        m
    };
    // Calls `args` on /work, and kills the node whose program starts on it; which one it was.
    let cut_short = |args: &[&str]| -> (std::process::Output, String) {
        let before = marked("started-");
        std::thread::scope(|s| {
            let call = s.spawn(|| net.call("/work", args));
            let mut started = None;
            assert!(net.eventually(Duration::from_secs(5), || {
                started = marked("started-").into_iter().find(|m| !before.contains(m));
                started.is_some()
            }));
            let started = started.unwrap();
            let node = started.trim_start_matches("started-").to_owned();
            let i = ["a", "b", "c"].iter().position(|n| *n == node).unwrap();
            net.nodes[i].signal("KILL");
            (call.join().unwrap(), node)
        })
    };

    // Not keyed: cut short, refused, and run nowhere else.
    let (out, first) = cut_short(&["-X", "POST", "-d", "once", "-v"]);
    assert!(!out.status.success(), "{}", stdout(&out));
    // The run in progress died with its node: it never finishes (its 1.5 s are waited out).
    assert!(!net.eventually(Duration::from_secs(3), || !marked("done-").is_empty()), "{:?}", marked(""));
    assert_eq!(marked("started-"), [format!("started-{first}")], "run again elsewhere");

    // Keyed: the gateway runs it again on another node, and the client gets its answer.
    let (out, second) = cut_short(&["-X", "POST", "-d", "again", "-H", "Idempotency-Key: work-1", "-v"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let answered = stdout(&out).trim().to_owned();
    assert!(answered != first && answered != second, "answered by {answered}");
    assert_eq!(marked("done-"), [format!("done-{answered}")]);

    // The one node left serves every call.
    for _ in 0..20 {
        assert_eq!(stdout(&net.call("/who", &[])).trim(), answered);
    }
}
