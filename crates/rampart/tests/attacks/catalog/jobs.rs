//! Jobs: uploads unauthenticated, unauthorised, oversized, decompression bombs and corrupt
//! images, and reading someone else's job.

use std::time::Duration;

use super::{Attack, Case, Cred, Expect, Seen, Target, curl, run};
use crate::support::{Network, ok, png_declaring};

#[test]
fn jobs() {
    let mut net = Network::start(0, &[]);
    net.add_node("n1", &["--service", "jobs", "--service", "hello"]);
    let alice = net.user("alice");
    let bob = net.user("bob");
    for user in ["user/alice", "user/bob"] {
        ok(&net.home, &["policy", "allow", "--service", "jobs", "--principal", user]);
    }
    let carol = net.user("carol");
    let dir = net.dir.path();
    let file = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        format!("@{}", path.display())
    };
    let bomb = file("bomb.png", &png_declaring(65535, 65535));
    let square = file("square.png", &png_declaring(16384, 16384));
    let wide = file("wide.png", &png_declaring(1 << 20, 1));
    let big = file("big.bin", &vec![0u8; (8 << 20) + 1]);
    let mut jpeg = Vec::new();
    image::RgbImage::from_fn(256, 256, |x, y| {
        image::Rgb([((x * 31) ^ (y * 17)) as u8, (x * y) as u8, (x + y) as u8])
    })
    .write_to(&mut std::io::Cursor::new(&mut jpeg), image::ImageFormat::Jpeg)
    .unwrap();
    let cut = file("cut.jpg", &jpeg[..jpeg.len() * 3 / 5]);
    let header = file("header.png", &png_declaring(64, 64)[..33]);
    // Alice's job, which bob tries to read.
    let submitted = super::call_curl(
        &net.home,
        &net.url,
        "127.0.0.1".parse().unwrap(),
        &Cred::Token(alice.clone()),
        &["--data-binary".into(), "hello".into()],
        "/jobs/histogram",
    );
    let id = serde_json::from_str::<serde_json::Value>(&submitted.text).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (a, b) = (|| Cred::Token(alice.clone()), || Cred::Token(bob.clone()));
    let upload = |cred: Cred, data: &str| curl(cred, "/jobs/histogram", &["--data-binary", data]);

    let alices = alice.clone();
    let cases = vec![
        Case::new(
            "an upload with no credential",
            upload(Cred::None, &bomb),
            Expect::Status(401),
            Some("unauthenticated"),
        ),
        Case::new(
            "an upload by a user with no rule",
            upload(Cred::Token(carol.clone()), &bomb),
            Expect::Status(403),
            Some("policy_denied"),
        ),
        Case::new("an upload over the size limit", upload(a(), &big), Expect::Status(413), Some("too_large")),
        Case::new(
            "a PNG declaring 65535×65535",
            upload(a(), &bomb),
            Expect::Status(422),
            Some("job_refused"),
        ),
        Case::new(
            "a PNG declaring 16384×16384 (1 GiB decoded)",
            upload(a(), &square),
            Expect::Status(422),
            Some("job_refused"),
        ),
        Case::new(
            "a PNG declaring a million columns",
            upload(a(), &wide),
            Expect::Status(422),
            Some("job_refused"),
        ),
        Case::new("a PNG of a header only", upload(a(), &header), Expect::Status(422), Some("job_refused")),
        Case::new(
            "a JPEG cut short",
            Attack::Custom(Box::new(move |net, from| {
                // Taken (its header reads), then failed with a reason.
                let args = ["--data-binary".to_owned(), cut.clone()];
                let taken = super::call_curl(
                    &net.home,
                    &net.url,
                    from,
                    &Cred::Token(alices.clone()),
                    &args,
                    "/jobs/histogram",
                );
                let Some(id) = serde_json::from_str::<serde_json::Value>(&taken.text)
                    .ok()
                    .and_then(|v| v["id"].as_str().map(str::to_owned))
                else {
                    return taken;
                };
                let mut last = Seen::default();
                net.eventually(Duration::from_secs(30), || {
                    last = super::call_curl(
                        &net.home,
                        &net.url,
                        from,
                        &Cred::Token(alices.clone()),
                        &[],
                        &format!("/jobs/{id}/result"),
                    );
                    last.text.contains("the job failed")
                });
                last
            })),
            Expect::Status(409),
            Some("job_failed"),
        ),
        Case::new("someone else's job", curl(b(), format!("/jobs/{id}"), &[]), Expect::Status(404), None),
        Case::new(
            "someone else's result",
            curl(b(), format!("/jobs/{id}/result"), &[]),
            Expect::Status(404),
            None,
        ),
        Case::new(
            "someone else's result, claiming to be an admin",
            curl(b(), format!("/jobs/{id}/result"), &["-H", "Rampart-Role: admin"]),
            Expect::Status(404),
            None,
        ),
        Case::new(
            "someone else's job, as its owner's name",
            curl(b(), format!("/jobs/{id}"), &["-H", "Rampart-Principal: user/alice"]),
            Expect::Status(404),
            None,
        ),
        Case::new(
            "a job id with a dot-dot",
            curl(a(), format!("/jobs/../jobs/{id}"), &[]),
            Expect::Status(400),
            Some("bad_path"),
        ),
        Case::new(
            "more tasks than allowed",
            curl(a(), "/jobs/histogram?tasks=100000", &["--data-binary", "x"]),
            Expect::Status(400),
            None,
        ),
    ];
    run("jobs", 6, &Target::new(&net, &[&alice, &bob, &carol]), cases);
}
