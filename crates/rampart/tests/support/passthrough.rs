//! A gateway with a passthrough route and nodes with homes of their own serving it (the
//! passthrough tests and the attack suite's passthrough family).

use std::path::PathBuf;
use std::time::Duration;

use super::{Network, Proc, curl, ok, spawn};

pub const NAME: &str = "echo.example.test";

/// A gateway with a passthrough route `echo` (by [`NAME`]) on its main listener and on a
/// listener that only relays, and nodes with homes of their own serving it.
pub struct Passthrough {
    pub net: Network,
    /// The main listener, `127.0.0.1:PORT`.
    pub main: String,
    /// The listener that only relays.
    pub relay: String,
    /// Each node's process, home, and public listener.
    pub nodes: Vec<(Proc, PathBuf, String)>,
    pub ca: String,
}

impl Passthrough {
    pub fn start(nodes: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        ok(&home, &["init"]);
        let config = home.join("rampart.toml");
        let mut text = std::fs::read_to_string(&config).unwrap();
        text.push_str(&format!(
            "\n[routes.echo]\nmode = \"passthrough\"\nsni = [\"{NAME}\"]\n\n[[gateway.listeners]]\nlisten = \"127.0.0.1:0\"\nrelay_only = true\n"
        ));
        std::fs::write(&config, text).unwrap();
        let net = Network::launch(dir, home, 0, &[]);
        let main = net.url.strip_prefix("https://").unwrap().to_owned();
        let relay = after(&net.gateway.ready, "also https://");
        let ca = net.home.join("pki/local/ca.pem").display().to_string();
        let mut p = Passthrough { net, main, relay, nodes: Vec::new(), ca };
        for i in 1..=nodes {
            p.add_node(&format!("n{i}"));
        }
        p
    }

    /// A node with a home of its own: its key made there, its certificate (with the route's
    /// name) signed by the gateway's home from its CSR.
    pub fn add_node(&mut self, name: &str) {
        let home = self.net.dir.path().join(format!("{name}-home"));
        let issued = home.join("pki/local/issued");
        std::fs::create_dir_all(&issued).unwrap();
        std::fs::copy(self.net.home.join("rampart.toml"), home.join("rampart.toml")).unwrap();
        std::fs::copy(self.net.home.join("pki/local/ca.pem"), home.join("pki/local/ca.pem")).unwrap();
        ok(&home, &["pki", "request", "--name", name, "--out", issued.to_str().unwrap()]);
        let csr = issued.join(format!("{name}.csr")).display().to_string();
        let args = ["pki", "sign", &csr, "--role", "node", "--name", name, "--dns", NAME];
        let said = ok(&self.net.home, &args);
        let pem = said.split_whitespace().find(|w| w.ends_with(".pem")).unwrap().to_owned();
        std::fs::copy(pem, issued.join(format!("{name}.pem"))).unwrap();
        let args = [
            "node",
            "--name",
            name,
            "--listen",
            "127.0.0.1:0",
            "--gateway",
            &self.net.url,
            "--service",
            "echo",
            "--public-listen",
            "127.0.0.1:0",
        ];
        let node = spawn(&home, &args, "rampart node ", name);
        let public = after(&node.ready, "passthrough routes on https://");
        self.nodes.push((node, home, public));
        let want = self.nodes.len();
        assert!(self.net.eventually(Duration::from_secs(10), || self.net.node_count() >= want));
    }

    /// `curl` to `https://NAME:PORT/PATH` of `listener` (`127.0.0.1:PORT`), with `args`.
    pub fn curl(&self, listener: &str, path: &str, args: &[&str]) -> (bool, String) {
        let port = listener.rsplit(':').next().unwrap();
        let resolve = format!("{NAME}:{port}:127.0.0.1");
        let url = format!("https://{NAME}:{port}{path}");
        let mut all = vec!["--resolve", resolve.as_str(), "--cacert", self.ca.as_str()];
        all.extend_from_slice(args);
        all.push(&url);
        curl(&all)
    }

    /// `--cert` and `--key` of a user certificate issued in the gateway's home.
    pub fn user_cert(&self, name: &str) -> Vec<String> {
        ok(&self.net.home, &["pki", "issue", "--role", "user", "--name", name]);
        let file =
            |ext: &str| self.net.home.join(format!("pki/local/issued/{name}.{ext}")).display().to_string();
        vec!["--cert".into(), file("pem"), "--key".into(), file("key")]
    }

    /// Whether the gateway's audit log gets an event of `kind` whose reason holds `says`.
    pub fn event(&self, kind: &str, says: &str) -> bool {
        self.net.eventually(Duration::from_secs(10), || {
            let log = std::fs::read_to_string(self.net.home.join("audit.jsonl")).unwrap_or_default();
            log.lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .any(|e| e["kind"] == kind && e["reason"].as_str().is_some_and(|r| r.contains(says)))
        })
    }
}

/// The address after `prefix` in a ready line, up to the next space or ')'.
pub fn after(line: &str, prefix: &str) -> String {
    let rest = &line[line.find(prefix).unwrap_or_else(|| panic!("{prefix:?} in {line:?}")) + prefix.len()..];
    rest.split([' ', ')']).next().unwrap().to_owned()
}
