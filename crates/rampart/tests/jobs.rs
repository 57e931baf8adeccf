//! Distributed jobs with the real binary: a job over three nodes keeps going when one is
//! SIGKILLed mid-job (its tasks re-claimed once its lease lapses) and gives the histogram one
//! process computes with the same decoder; uploads are authenticated, authorized and bounded;
//! a bomb is refused from its header; a corrupt image fails its job with a reason; another
//! user cannot see someone's job; `rampart job submit --wait` follows one to its result.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::Cursor;
use std::time::{Duration, Instant};

use support::{Network, curl, ok, png};

/// A network whose three nodes host `jobs`, and alice allowed to use it (her token).
fn network() -> (Network, String) {
    let mut net = Network::start(0, &[]);
    for n in ["n1", "n2", "n3"] {
        net.add_node(n, &["--service", "jobs"]);
    }
    let token = net.user("alice");
    ok(&net.home, &["policy", "allow", "--service", "jobs", "--principal", "user/alice"]);
    (net, token)
}

fn ca(net: &Network) -> String {
    net.home.join("pki/local/ca.pem").display().to_string()
}

/// `curl` with a token; the body and the status at its end.
fn call(net: &Network, token: &str, args: &[&str], path: &str) -> (String, u16) {
    let auth = format!("Authorization: Bearer {token}");
    let url = format!("{}{path}", net.url);
    let ca = ca(net);
    let mut all = vec!["--cacert", ca.as_str(), "-H", auth.as_str(), "-w", "\n%{http_code}"];
    all.extend_from_slice(args);
    all.push(&url);
    let (_, said) = curl(&all);
    let (body, code) = said.rsplit_once('\n').unwrap();
    (body.to_owned(), code.trim().parse().unwrap_or(0))
}

fn submit(net: &Network, token: &str, file: &std::path::Path, query: &str) -> (String, u16) {
    let data = format!("@{}", file.display());
    let args = ["--data-binary", data.as_str(), "-H", "Content-Type: application/octet-stream"];
    call(net, token, &args, &format!("/jobs/histogram{query}"))
}

fn status(net: &Network, token: &str, id: &str) -> serde_json::Value {
    serde_json::from_str(&call(net, token, &[], &format!("/jobs/{id}")).0).unwrap_or_default()
}

/// The registry's `services/jobs/<family>/<id>/`: each task number with its value.
fn parts(net: &Network, family: &str, id: &str) -> Vec<(u32, serde_json::Value)> {
    support::job_parts(&net.home, &net.url, family, id)
}

/// The tasks of job `id` claimed and not answered, with the node holding each.
fn held(net: &Network, id: &str) -> Vec<(u32, String)> {
    let done: Vec<u32> = parts(net, "results", id).into_iter().map(|(n, _)| n).collect();
    parts(net, "claims", id)
        .into_iter()
        .filter(|(n, _)| !done.contains(n))
        .filter_map(|(n, c)| Some((n, c["node"].as_str()?.to_owned())))
        .collect()
}

/// A process's peak resident memory (`VmHWM`), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn has_event(net: &Network, kind: &str) -> bool {
    net.eventually(Duration::from_secs(15), || {
        let log = std::fs::read_to_string(net.home.join("audit.jsonl")).unwrap_or_default();
        log.lines().any(|l| l.contains(&format!("\"kind\":\"{kind}\"")))
    })
}

#[test]
fn a_job_over_three_nodes_survives_one_killed_mid_job_with_the_one_process_histogram() {
    let (net, token) = network();
    let (width, height) = (1024, 1024);
    let upload = png(width, height);
    let file = net.dir.path().join("image.png");
    std::fs::write(&file, &upload).unwrap();
    let (said, code) = submit(&net, &token, &file, "?tasks=160");
    assert_eq!(code, 202, "{said}");
    let id = serde_json::from_str::<serde_json::Value>(&said).unwrap()["id"].as_str().unwrap().to_owned();

    // Once it runs, a node working on a task of it (a claim, no result yet) is SIGKILLed: it
    // is stopped first, and killed only if it still holds a claim it has not answered (read
    // twice in the registry, so that nothing it sent before it stopped is still on its way).
    let mut victim = None;
    for attempt in 0..500 {
        assert_ne!(
            status(&net, &token, &id)["state"],
            "done",
            "the job finished before a node could be killed"
        );
        let Some((task, name)) = held(&net, &id).into_iter().next() else { continue };
        let index: usize = name.trim_start_matches('n').parse::<usize>().unwrap() - 1;
        net.nodes[index].signal("STOP");
        if (0..2).all(|_| held(&net, &id).contains(&(task, name.clone()))) {
            net.nodes[index].signal("KILL");
            victim = Some((task, name));
            eprintln!("a node holding a claim killed at attempt {attempt}");
            break;
        }
        net.nodes[index].signal("CONT");
    }
    let (held_task, victim) = victim.expect("a node held a claim at some point");
    let killed = Instant::now();
    // How long until another node claims the dead one's task (its lease lapses first).
    let reclaimed = net.eventually(Duration::from_secs(30), || {
        let by = parts(&net, "claims", &id)
            .into_iter()
            .find(|(n, _)| *n == held_task)
            .map(|(_, c)| c["node"].clone());
        by.is_some_and(|node| node.as_str() != Some(victim.as_str()))
            || parts(&net, "results", &id).iter().any(|(n, _)| *n == held_task)
    });
    assert!(reclaimed);
    eprintln!("from SIGKILL to the task claimed again: {:?}", killed.elapsed());
    // The job may be done by now: the other nodes may have finished the rest while the dead
    // node's claim lapsed. It was not when the node was killed (it held that task's claim,
    // unanswered), and below the task is answered by another node after a second claim.

    assert!(
        net.eventually(Duration::from_secs(120), || status(&net, &token, &id)["state"] == "done"),
        "{}",
        status(&net, &token, &id)
    );
    let audit = std::fs::read_to_string(net.home.join("audit.jsonl")).unwrap_or_default();
    assert!(
        has_event(&net, "job_task_reclaimed"),
        "a task of the killed node ({victim}) was claimed again: {audit}"
    );
    eprintln!("from SIGKILL to done: {:?}", killed.elapsed());
    let done = status(&net, &token, &id);
    assert_eq!(done["tasks"], serde_json::json!({"done": 160, "total": 160}), "{done}");
    // One result a task; the killed node's task answered by another, after a second claim.
    let results = parts(&net, "results", &id);
    assert_eq!(results.iter().map(|(n, _)| *n).collect::<Vec<_>>(), (0..160).collect::<Vec<_>>());
    let (_, answer) = results.iter().find(|(n, _)| *n == held_task).unwrap();
    assert_ne!(answer["node"].as_str(), Some(victim.as_str()));
    let tasks = parts(&net, "tasks", &id);
    let (_, task) = tasks.iter().find(|(n, _)| *n == held_task).unwrap();
    assert_eq!(task["claimed_by"][0].as_str(), Some(victim.as_str()), "{task}");
    assert_eq!(task["claimed_by"].as_array().unwrap().len(), 2, "{task}");

    // The same histogram as one process with the same decoder.
    let (result, code) = call(&net, &token, &[], &format!("/jobs/{id}/result"));
    assert_eq!(code, 200, "{result}");
    let result: serde_json::Value = serde_json::from_str(&result).unwrap();
    let limits = rampart_jobs::Limits::default();
    let whole =
        rampart_jobs::count::image_rows(&rampart_jobs::count::decode(&upload, &limits).unwrap(), 0..height);
    assert_eq!(result["kind"], "image");
    assert_eq!((result["width"].as_u64(), result["height"].as_u64()), (Some(1024), Some(1024)));
    assert_eq!(result["channels"], serde_json::to_value(&whole.channels).unwrap());
    for channel in ["r", "g", "b"] {
        let sum: u64 =
            result["channels"][channel].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).sum();
        assert_eq!(sum, u64::from(width * height), "{channel}");
    }
    assert!(has_event(&net, "job_submitted") && has_event(&net, "job_done"));
}

#[test]
fn uploads_are_authenticated_bounded_and_checked_and_jobs_are_their_owners() {
    let (net, token) = network();
    let dir = net.dir.path();
    let small = dir.join("small.png");
    std::fs::write(&small, png(32, 32)).unwrap();

    // No credential: 401; a user without a rule: 403, an event.
    let data = format!("@{}", small.display());
    let (_, said) = curl(&[
        "--cacert",
        &ca(&net),
        "--data-binary",
        &data,
        "-w",
        " %{http_code}",
        &format!("{}/jobs/histogram", net.url),
    ]);
    assert!(said.ends_with(" 401"), "{said}");
    let bob = net.user("bob");
    assert_eq!(submit(&net, &bob, &small, "").1, 403);
    assert!(has_event(&net, "policy_denied"));

    // Over the size limit: 413. Over HTTP/1.1 from its declared length, before curl (waiting
    // on `Expect: 100-continue`) sends a byte of it; over HTTP/2 once curl has sent it (read
    // and thrown away, so that the client reads the answer); sent in chunks of no declared
    // length, once past the limit.
    let big = dir.join("big.bin");
    std::fs::write(&big, vec![7u8; (16 << 20) + 1]).unwrap();
    let data = format!("@{}", big.display());
    for (version, sent) in [("--http1.1", "0"), ("--http2", "16777217")] {
        let args = [version, "--data-binary", &data, "-w", "%{size_upload}\n%{http_code}"];
        let (said, code) = call(&net, &token, &args, "/jobs/histogram");
        assert_eq!(code, 413, "{version}: {said}");
        assert!(said.ends_with(&format!("}}{sent}")), "{version}: {said}"); // the answer, then bytes sent
    }
    let chunked = ["--http1.1", "--data-binary", &data, "-H", "Transfer-Encoding: chunked"];
    assert_eq!(call(&net, &token, &chunked, "/jobs/histogram").1, 413);

    // A PNG that declares 65535×65535: 422 from its header, nothing decoded.
    let bomb = support::png_declaring(65535, 65535);
    let bomb_file = dir.join("bomb.png");
    std::fs::write(&bomb_file, &bomb).unwrap();
    let peaks = || net.nodes.iter().map(|n| peak_rss_kib(n.pid())).collect::<Vec<_>>();
    let before = peaks();
    let (said, code) = submit(&net, &token, &bomb_file, "");
    assert_eq!(code, 422, "{said}");
    assert!(said.contains("65535×65535"), "{said}");
    // Decoded it would be 12 GiB: no node's peak memory grew by more than a few MiB.
    for (was, is) in before.iter().zip(peaks()) {
        assert!(is < was + 8192, "a node's peak resident memory went from {was} to {is} KiB");
    }

    // A corrupt JPEG: taken (its header reads), then failed with a reason.
    let mut jpeg = Vec::new();
    image::RgbImage::from_fn(256, 256, |x, y| {
        image::Rgb([((x * 31) ^ (y * 17)) as u8, (x * y) as u8, (x + y) as u8])
    })
    .write_to(&mut Cursor::new(&mut jpeg), image::ImageFormat::Jpeg)
    .unwrap();
    jpeg.truncate(jpeg.len() * 3 / 5);
    let corrupt = dir.join("corrupt.jpg");
    std::fs::write(&corrupt, &jpeg).unwrap();
    let (said, code) = submit(&net, &token, &corrupt, "");
    assert_eq!(code, 202, "{said}");
    let failed = serde_json::from_str::<serde_json::Value>(&said).unwrap()["id"].as_str().unwrap().to_owned();
    assert!(net.eventually(Duration::from_secs(30), || status(&net, &token, &failed)["state"] == "failed"));
    assert!(status(&net, &token, &failed)["reason"].as_str().unwrap().starts_with("task "));
    assert_eq!(call(&net, &token, &[], &format!("/jobs/{failed}/result")).1, 409);
    assert!(has_event(&net, "job_failed"));

    // Bytes, with a key: the same key gives the same job; bob sees nothing of it.
    let bytes = dir.join("bytes.bin");
    std::fs::write(&bytes, b"hello, histogram").unwrap();
    let key = ["-H", "Idempotency-Key: k-1"];
    let data = format!("@{}", bytes.display());
    let args = [&key[..], &["--data-binary", data.as_str()]].concat();
    let first = call(&net, &token, &args, "/jobs/histogram");
    assert_eq!(first, call(&net, &token, &args, "/jobs/histogram"));
    let id = serde_json::from_str::<serde_json::Value>(&first.0).unwrap()["id"].as_str().unwrap().to_owned();
    ok(&net.home, &["policy", "allow", "--service", "jobs", "--principal", "user/bob"]);
    // Not even when it claims to be an admin: the gateway's word on the role alone counts.
    let forged = ["-H", "Rampart-Role: admin"];
    assert_eq!(call(&net, &bob, &forged, &format!("/jobs/{id}")).1, 404);
    assert_eq!(call(&net, &bob, &forged, &format!("/jobs/{id}/result")).1, 404);
    assert!(net.eventually(Duration::from_secs(30), || status(&net, &token, &id)["state"] == "done"));
    let (result, _) = call(&net, &token, &[], &format!("/jobs/{id}/result"));
    let plain: serde_json::Value = serde_json::from_str(&result).unwrap();
    assert_eq!(plain["kind"], "bytes");
    assert_eq!(plain["bins"][usize::from(b'l')], 2);
    // An admin user's token reads it; sealed when asked (the payload keyring opens it).
    let admin = ok(&net.home, &["token", "issue", "--user", "admin"]).trim().to_owned();
    assert_eq!(call(&net, &admin, &[], &format!("/jobs/{id}/result")), (result, 200));
    let sealed = call(&net, &token, &["-H", "Accept: application/fernet"], &format!("/jobs/{id}/result"));
    assert_eq!(sealed.1, 200, "{}", sealed.0);
    let keyring = rampart_crypto::file::load(&net.home.join("keys/payload.keys")).unwrap();
    let opened = keyring.decrypt(&sealed.0, Some(300)).unwrap().plaintext;
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&opened).unwrap(), plain);

    // The CLI follows a job to its result.
    let out = ok(&net.home, &["job", "submit", small.to_str().unwrap(), "--wait", "--token", &token]);
    assert!(out.contains("image 32×32: 1024 pixels") && out.contains("1024 counted"), "{out}");
}

#[test]
fn a_job_resumes_when_its_gateway_is_killed_and_restarted_on_the_embedded_registry() {
    let mut net = Network::start(0, &[]);
    for n in ["n1", "n2"] {
        net.add_node(n, &["--service", "jobs"]);
    }
    let token = net.user("alice");
    ok(&net.home, &["policy", "allow", "--service", "jobs", "--principal", "user/alice"]);
    let upload = png(512, 512);
    let file = net.dir.path().join("image.png");
    std::fs::write(&file, &upload).unwrap();
    let (said, code) = submit(&net, &token, &file, "?tasks=200");
    assert_eq!(code, 202, "{said}");
    let id = serde_json::from_str::<serde_json::Value>(&said).unwrap()["id"].as_str().unwrap().to_owned();
    assert!(net.eventually(Duration::from_secs(30), || {
        status(&net, &token, &id)["tasks"]["done"].as_u64().unwrap_or(0) >= 5
    }));

    // The gateway (and the embedded registry in it) dies mid-job, and comes back where it was.
    let before = status(&net, &token, &id);
    assert!(
        before["tasks"]["done"].as_u64().unwrap() < 200,
        "the job was done before the gateway died: {before}"
    );
    // Reaped before the next one starts: it opens the registry file the dead one held.
    net.gateway.kill_and_reap();
    let addr = net.url.strip_prefix("https://").unwrap().to_owned();
    net.gateway = support::spawn(
        &net.home,
        &["gateway", "--listen", &addr],
        "rampart gateway listening on ",
        "gateway-again",
    );
    assert!(
        net.eventually(Duration::from_secs(90), || status(&net, &token, &id)["state"] == "done"),
        "{}",
        status(&net, &token, &id)
    );
    let (result, _) = call(&net, &token, &[], &format!("/jobs/{id}/result"));
    let result: serde_json::Value = serde_json::from_str(&result).unwrap();
    let limits = rampart_jobs::Limits::default();
    let whole =
        rampart_jobs::count::image_rows(&rampart_jobs::count::decode(&upload, &limits).unwrap(), 0..512);
    assert_eq!(result["channels"], serde_json::to_value(&whole.channels).unwrap());
    assert_eq!(parts(&net, "results", &id).len(), 200);
}
