//! The etcd backend's settings, as written in `rampart.toml`:
//!
//! ```toml
//! store = { etcd = { endpoints = ["https://10.0.0.1:2379", "https://10.0.0.2:2379"],
//!                    prefix = "/rampart/example.org/",
//!                    ca = "etcd-ca.pem", cert = "etcd-client.pem", key = "etcd-client.key",
//!                    user = "rampart", password_file = "etcd.password",
//!                    request_timeout = "2s", connect_timeout = "1s" } }
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use rampart_store::StoreError;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How to reach the etcd cluster and where in it this network's registry lives.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdConfig {
    /// Client URLs of the members (`http://` or `https://host:port`); the store fails over
    /// between them in this order. Required, at least one.
    pub endpoints: Vec<String>,
    /// Every key the store sees lives under this prefix, and ranges and watches never leave
    /// it, so several networks can share one cluster. Default `/rampart/`.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// The CA that signed the members' server certificates (https endpoints). Default: none
    /// (the system's roots are not trusted for etcd).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM) for etcd's `--client-cert-auth`; needs `key`. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// The client certificate's private key (PEM). Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    /// The etcd user to authenticate as (its role should grant only `prefix`). Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// A file holding the user's password (kept out of `rampart.toml`). Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// The user's password given directly (programmatic use; wins over `password_file`).
    #[serde(skip)]
    pub password: Option<String>,
    /// The longest any one call may take, failover included, before it returns
    /// `Unavailable`. Default 2 s.
    #[serde(
        default = "default_request_timeout",
        deserialize_with = "duration",
        serialize_with = "write_duration"
    )]
    pub request_timeout: Duration,
    /// The longest a connection attempt to one member may take. Default 1 s.
    #[serde(
        default = "default_connect_timeout",
        deserialize_with = "duration",
        serialize_with = "write_duration"
    )]
    pub connect_timeout: Duration,
}

fn default_prefix() -> String {
    "/rampart/".to_owned()
}

fn default_request_timeout() -> Duration {
    Duration::from_secs(2)
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(1)
}

/// A duration as humans write it ("2s", "500ms").
fn write_duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

/// A duration written as humans do ("2s", "500ms").
fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s).map_err(serde::de::Error::custom)
}

impl std::fmt::Debug for EtcdConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdConfig")
            .field("endpoints", &self.endpoints)
            .field("prefix", &self.prefix)
            .field("ca", &self.ca)
            .field("cert", &self.cert)
            .field("key", &self.key)
            .field("user", &self.user)
            .field("password_file", &self.password_file)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("request_timeout", &self.request_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

/// What TLS to speak to the members.
#[derive(Debug)]
pub(crate) struct TlsFiles {
    pub ca: Option<Vec<u8>>,
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl EtcdConfig {
    /// A configuration with the defaults: no TLS, no user.
    pub fn new(endpoints: impl IntoIterator<Item = impl Into<String>>, prefix: impl Into<String>) -> Self {
        EtcdConfig {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            prefix: prefix.into(),
            ca: None,
            cert: None,
            key: None,
            user: None,
            password_file: None,
            password: None,
            request_timeout: default_request_timeout(),
            connect_timeout: default_connect_timeout(),
        }
    }

    /// Checks the settings hang together; the error names the field.
    pub(crate) fn validate(&self) -> Result<(), StoreError> {
        let bad = |field: &str, why: &str| Err(invalid(format!("{field}: {why}")));
        if self.endpoints.is_empty() {
            return bad("endpoints", "at least one member's client URL is needed");
        }
        if let Some(e) =
            self.endpoints.iter().find(|e| !e.starts_with("http://") && !e.starts_with("https://"))
        {
            return bad("endpoints", &format!("{e:?} is not an http:// or https:// URL"));
        }
        if self.prefix.is_empty() {
            return bad("prefix", "must not be empty (it confines the registry in the cluster)");
        }
        if self.cert.is_some() != self.key.is_some() {
            return bad("cert", "a client certificate needs its key, and a key its certificate");
        }
        if (self.password.is_some() || self.password_file.is_some()) && self.user.is_none() {
            return bad("password_file", "a password needs a user");
        }
        if self.request_timeout.is_zero() || self.connect_timeout.is_zero() {
            return bad("request_timeout", "timeouts must be positive");
        }
        Ok(())
    }

    /// The TLS material, read from its files (`None`: plain http endpoints).
    pub(crate) fn tls_files(&self) -> Result<Option<TlsFiles>, StoreError> {
        if self.ca.is_none() && self.cert.is_none() {
            return Ok(None);
        }
        let ca = self.ca.as_deref().map(|p| read("ca", p)).transpose()?;
        let identity = match (&self.cert, &self.key) {
            (Some(c), Some(k)) => Some((read("cert", c)?, read_private("key", k)?)),
            _ => None,
        };
        Ok(Some(TlsFiles { ca, identity }))
    }

    /// The user and password to authenticate with, if any.
    pub(crate) fn credentials(&self) -> Result<Option<(String, String)>, StoreError> {
        let Some(user) = &self.user else { return Ok(None) };
        let password = match (&self.password, &self.password_file) {
            (Some(p), _) => p.clone(),
            (None, Some(path)) => {
                let text = String::from_utf8(read_private("password_file", path)?)
                    .map_err(|_| invalid(format!("password_file: {} is not UTF-8", path.display())))?;
                text.trim_end_matches(['\r', '\n']).to_owned()
            }
            (None, None) => return Err(invalid("user: needs password_file".to_owned())),
        };
        Ok(Some((user.clone(), password)))
    }
}

fn read(field: &str, path: &Path) -> Result<Vec<u8>, StoreError> {
    std::fs::read(path).map_err(|e| invalid(format!("{field}: reading {}: {e}", path.display())))
}

/// Reads a secret, refusing it when others may read it too (as ssh does with private keys).
fn read_private(field: &str, path: &Path) -> Result<Vec<u8>, StoreError> {
    let not_read = |e: rampart_files::FileError| invalid(format!("{field}: {e}"));
    if let Err(mode) = rampart_files::check_private(path).map_err(not_read)? {
        return Err(invalid(format!(
            "{field}: {} is readable by others (mode {mode:o}): chmod 600 {0}",
            path.display()
        )));
    }
    read(field, path)
}

fn invalid(why: String) -> StoreError {
    StoreError::Backend(format!("etcd store configuration: {why}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a panic is a failure report

    use super::*;

    #[derive(Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Store {
        Etcd(EtcdConfig),
    }

    #[derive(Deserialize)]
    struct File {
        store: Store,
    }

    #[test]
    fn reads_the_toml_shape() {
        let text = r#"
            store = { etcd = { endpoints = ["https://10.0.0.1:2379", "https://10.0.0.2:2379"],
                               prefix = "/rampart/example.org/", ca = "ca.pem", cert = "c.pem",
                               key = "c.key", user = "rampart", password_file = "etcd.password",
                               request_timeout = "1500ms" } }
        "#;
        let File { store: Store::Etcd(mut c) } = toml::from_str(text).unwrap();
        assert_eq!(c.endpoints.len(), 2);
        assert_eq!(c.prefix, "/rampart/example.org/");
        assert_eq!(c.request_timeout, Duration::from_millis(1500));
        assert_eq!(c.connect_timeout, Duration::from_secs(1));
        assert_eq!(c.password_file.as_deref(), Some(Path::new("etcd.password")));
        c.validate().unwrap();
        c.password = Some("hunter2".into());
        assert!(!format!("{c:?}").contains("hunter2"), "Debug shows the password");
    }

    #[test]
    fn names_the_bad_field() {
        let mut c = EtcdConfig::new(["http://127.0.0.1:2379"], "/r/");
        c.cert = Some("c.pem".into());
        assert!(c.validate().unwrap_err().to_string().contains("cert:"));
        let c = EtcdConfig::new(["127.0.0.1:2379"], "/r/");
        assert!(c.validate().unwrap_err().to_string().contains("endpoints:"));
        let c = EtcdConfig::new(["http://127.0.0.1:2379"], "");
        assert!(c.validate().unwrap_err().to_string().contains("prefix:"));
        assert!(toml::from_str::<EtcdConfig>("endpoints = []\npasword = \"x\"").is_err());
    }

    #[test]
    fn secrets_others_may_read_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("c.pem"), dir.path().join("c.key"));
        std::fs::write(&cert, "cert").unwrap();
        std::fs::write(&key, "key").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
        let mut c = EtcdConfig::new(["https://127.0.0.1:2379"], "/r/");
        (c.cert, c.key) = (Some(cert), Some(key.clone()));
        let err = c.tls_files().unwrap_err().to_string();
        assert!(err.contains("key:") && err.contains("mode 640") && err.contains("chmod 600"), "{err}");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(c.tls_files().unwrap().unwrap().identity.is_some());
    }
}
