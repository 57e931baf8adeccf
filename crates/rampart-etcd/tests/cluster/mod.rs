//! Real etcd members on 127.0.0.1 for the tests: free ports found by binding port 0, a
//! temporary data directory per member, fast elections, readiness by polling, and every
//! process killed when its guard is dropped.

#![allow(dead_code)]

use std::fs::Permissions;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};

/// The etcd binary; a missing one fails the test (never a silent skip).
pub fn etcd_binary() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("etcd")).collect::<Vec<_>>())
        .unwrap_or_default();
    std::iter::once(PathBuf::from("/usr/bin/etcd")).chain(on_path).find(|p| p.is_file()).unwrap_or_else(
        || panic!("etcd is not installed: run scripts/test, which installs Debian's etcd-server package"),
    )
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Certificates for an https cluster with client-certificate authentication.
pub struct TlsFiles {
    pub dir: tempfile::TempDir,
}

impl TlsFiles {
    /// A test CA, a server certificate for 127.0.0.1 and a client certificate, all fresh.
    pub fn generate() -> TlsFiles {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
            KeyUsagePurpose,
        };
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, pem: String| std::fs::write(dir.path().join(name), pem).unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, "rampart-etcd test CA");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        write("ca.pem", ca.self_signed(&ca_key).unwrap().pem());
        let issuer = Issuer::new(ca, ca_key);
        for (name, sans, eku) in [
            (
                "server",
                vec!["127.0.0.1".to_owned(), "localhost".to_owned()],
                ExtendedKeyUsagePurpose::ServerAuth,
            ),
            ("client", vec![], ExtendedKeyUsagePurpose::ClientAuth),
        ] {
            let key = KeyPair::generate().unwrap();
            let mut p = CertificateParams::new(sans).unwrap();
            p.distinguished_name.push(DnType::CommonName, name);
            p.extended_key_usages = vec![eku];
            p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            write(&format!("{name}.pem"), p.signed_by(&key, &issuer).unwrap().pem());
            write(&format!("{name}.key"), key.serialize_pem());
            // Private, as the store requires of a key.
            std::fs::set_permissions(dir.path().join(format!("{name}.key")), Permissions::from_mode(0o600))
                .unwrap();
        }
        TlsFiles { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn client_options(&self) -> TlsOptions {
        TlsOptions::new()
            .ca_certificate(Certificate::from_pem(std::fs::read(self.path("ca.pem")).unwrap()))
            .identity(Identity::from_pem(
                std::fs::read(self.path("client.pem")).unwrap(),
                std::fs::read(self.path("client.key")).unwrap(),
            ))
    }
}

/// One member: its process (while running) and its data directory.
pub struct Member {
    pub client_url: String,
    args: Vec<String>,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Member {
    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("etcd.log"))
            .unwrap();
        let child = Command::new(etcd_binary())
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A cluster of members started together.
pub struct Cluster {
    pub members: Vec<Member>,
    options: ConnectOptions,
}

impl Cluster {
    /// Starts `n` members (https with client-certificate auth when `tls` is given) and waits
    /// until they have a leader.
    pub async fn start(n: usize, tls: Option<&TlsFiles>) -> Cluster {
        etcd_binary();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let initial: Vec<String> =
            ports.iter().enumerate().map(|(i, (_, p))| format!("m{i}=http://127.0.0.1:{p}")).collect();
        let token = format!("rampart-test-{}-{}", std::process::id(), ports[0].0);
        let mut members = Vec::new();
        for (i, (client, peer)) in ports.iter().enumerate() {
            let dir = tempfile::tempdir().unwrap();
            let client_url = format!("{scheme}://127.0.0.1:{client}");
            let peer_url = format!("http://127.0.0.1:{peer}");
            let data = dir.path().join("data");
            let mut args: Vec<String> = vec![
                format!("--name=m{i}"),
                format!("--data-dir={}", data.display()),
                format!("--listen-client-urls={client_url}"),
                format!("--advertise-client-urls={client_url}"),
                format!("--listen-peer-urls={peer_url}"),
                format!("--initial-advertise-peer-urls={peer_url}"),
                format!("--initial-cluster={}", initial.join(",")),
                "--initial-cluster-state=new".into(),
                format!("--initial-cluster-token={token}"),
                "--heartbeat-interval=50".into(),
                "--election-timeout=500".into(),
                "--logger=zap".into(),
                "--log-level=warn".into(),
            ];
            if let Some(t) = tls {
                args.extend([
                    "--client-cert-auth".into(),
                    format!("--trusted-ca-file={}", t.path("ca.pem").display()),
                    format!("--cert-file={}", t.path("server.pem").display()),
                    format!("--key-file={}", t.path("server.key").display()),
                ]);
            }
            let mut m = Member { client_url, args, dir, child: None };
            m.spawn();
            members.push(m);
        }
        let mut options = ConnectOptions::new().with_connect_timeout(Duration::from_millis(500));
        if let Some(t) = tls {
            options = options.with_tls(t.client_options());
        }
        let cluster = Cluster { members, options };
        cluster.wait_ready().await;
        cluster
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client_url.clone()).collect()
    }

    pub fn index_of(&self, url: &str) -> usize {
        self.members.iter().position(|m| m.client_url == url).unwrap()
    }

    pub fn kill(&mut self, i: usize) {
        self.members[i].kill();
    }

    /// Starts a killed member again on its data directory.
    pub fn restart(&mut self, i: usize) {
        assert!(!self.members[i].is_running());
        self.members[i].spawn();
    }

    /// Polls every running member until each answers and knows a leader (20 s at most).
    pub async fn wait_ready(&self) {
        let start = Instant::now();
        for m in self.members.iter().filter(|m| m.is_running()) {
            loop {
                if member_has_leader(&m.client_url, &self.options).await {
                    break;
                }
                assert!(
                    start.elapsed() < Duration::from_secs(20),
                    "etcd member {} not ready in 20 s; its log: {}",
                    m.client_url,
                    std::fs::read_to_string(m.dir.path().join("etcd.log")).unwrap_or_default()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// A client of the whole cluster (for setting up users and roles).
    pub async fn client(&self) -> Client {
        Client::connect(self.endpoints(), Some(self.options.clone())).await.unwrap()
    }

    pub fn log_of(&self, i: usize) -> PathBuf {
        self.members[i].dir.path().join("etcd.log")
    }
}

async fn member_has_leader(url: &str, options: &ConnectOptions) -> bool {
    let attempt = async {
        let mut c = Client::connect([url], Some(options.clone())).await.ok()?;
        let status = c.status().await.ok()?;
        Some(status.leader() != 0)
    };
    tokio::time::timeout(Duration::from_secs(1), attempt).await.ok().flatten().unwrap_or(false)
}

pub fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}
