//! A real etcd cluster on 127.0.0.1 for the clustered-registry tests: Debian's `etcd` binary
//! (installed by `scripts/test`), one data directory per member, members that can be killed
//! and started again on the same data.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Member {
    pub name: String,
    pub client_port: u16,
    pub peer_port: u16,
    child: Option<Child>,
}

pub struct EtcdCluster {
    pub dir: tempfile::TempDir,
    pub members: Vec<Member>,
    initial: String,
    /// Client TLS with client-certificate authentication: (CA, server cert, server key).
    tls: Option<(PathBuf, PathBuf, PathBuf)>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn etcd_binary() -> PathBuf {
    for p in ["/usr/bin/etcd", "/usr/local/bin/etcd"] {
        if std::path::Path::new(p).exists() {
            return p.into();
        }
    }
    panic!("etcd is not installed: run scripts/test, which installs Debian's etcd-server");
}

impl EtcdCluster {
    /// Starts `n` members and waits until every one reports healthy.
    pub fn start(n: usize) -> Self {
        Self::start_with(n, None)
    }

    /// As [`EtcdCluster::start`]; with `tls`, clients must speak TLS and present a certificate
    /// of that CA (readiness is then the client port accepting connections).
    pub fn start_with(n: usize, tls: Option<(PathBuf, PathBuf, PathBuf)>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let members: Vec<Member> = (0..n)
            .map(|i| Member {
                name: format!("e{i}"),
                client_port: free_port(),
                peer_port: free_port(),
                child: None,
            })
            .collect();
        let initial = members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = EtcdCluster { dir, members, initial, tls };
        for i in 0..n {
            cluster.launch(i);
        }
        for i in 0..n {
            assert!(cluster.wait_healthy(i, Duration::from_secs(30)), "etcd member {i} never became healthy");
        }
        cluster
    }

    fn launch(&mut self, i: usize) {
        let m = &self.members[i];
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let data = self.dir.path().join(&m.name);
        let log = std::fs::File::create(self.dir.path().join(format!("{}.log", m.name))).unwrap();
        let mut cmd = Command::new(etcd_binary());
        if let Some((ca, cert, key)) = &self.tls {
            cmd.arg("--client-cert-auth")
                .arg("--trusted-ca-file")
                .arg(ca)
                .arg("--cert-file")
                .arg(cert)
                .arg("--key-file")
                .arg(key);
        }
        let child = cmd
            .args(["--name", &m.name, "--data-dir"])
            .arg(&data)
            .args([
                "--listen-client-urls",
                &format!("{scheme}://127.0.0.1:{}", m.client_port),
                "--advertise-client-urls",
                &format!("{scheme}://127.0.0.1:{}", m.client_port),
                "--listen-peer-urls",
                &format!("http://127.0.0.1:{}", m.peer_port),
                "--initial-advertise-peer-urls",
                &format!("http://127.0.0.1:{}", m.peer_port),
                "--initial-cluster",
                &self.initial,
                "--initial-cluster-state",
                "new",
                "--initial-cluster-token",
                "rampart-test",
                "--heartbeat-interval",
                "50",
                "--election-timeout",
                "500",
                "--log-level",
                "warn",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.members[i].child = Some(child);
    }

    /// Every member's client URL.
    pub fn endpoints(&self) -> Vec<String> {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        self.members.iter().map(|m| format!("{scheme}://127.0.0.1:{}", m.client_port)).collect()
    }

    /// Whether member `i` answers `/health` with a leader (bounded wait).
    pub fn wait_healthy(&self, i: usize, limit: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            if self.healthy(i) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    fn healthy(&self, i: usize) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.members[i].client_port)) else { return false };
        if self.tls.is_some() {
            return true; // listening; the caller polls through its own TLS client
        }
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        if s.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
            return false;
        }
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        answer.contains(r#""health":"true""#)
    }

    /// SIGKILLs member `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts member `i` again on its data.
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        self.launch(i);
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}
