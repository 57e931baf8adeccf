//! A network's home directory (DESIGN.md "Files on disk") and its `rampart.toml`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use rampart_pki::{Pki, TrustDomain};
use serde::{Deserialize, Serialize};

/// The default home when neither `--home` nor `$RAMPART_HOME` is given.
pub const DEFAULT_HOME: &str = "rampart-home";

/// A network's home: where its PKI, keys, store and configuration live.
#[derive(Clone, Debug)]
pub struct Home {
    root: PathBuf,
}

/// `rampart.toml`. Later parts of rampart (gateway, listeners, routes) add sections here.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// This network's own trust domain: the default `--domain` of every command.
    pub domain: TrustDomain,
    /// Where the registry lives: `store = "embedded"` (the default: a file under `store/`, one
    /// gateway) or `store = { etcd = { endpoints = [...], ... } }` (several gateways).
    #[serde(default)]
    pub store: StoreConfig,
    /// API token lifetimes.
    #[serde(default)]
    pub tokens: TokensConfig,
    /// The gateway of this home.
    #[serde(default)]
    pub gateway: rampart_gateway::GatewayConfig,
    /// Defaults for this home's nodes (`rampart node`'s flags win).
    #[serde(default, skip_serializing_if = "NodeConfig::is_empty")]
    pub node: NodeConfig,
    /// How TLS ends per service (`[routes.<service>]`: reencrypt, edge).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub routes: std::collections::BTreeMap<String, rampart_gateway::routes::RouteConfig>,
}

/// `[node]` in `rampart.toml`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// The services folder (`--services-dir`), relative to the home unless absolute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services_dir: Option<PathBuf>,
    /// The user programs run as (`--run-as`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as: Option<String>,
    /// Some programs' own limits, by service name (`[node.programs.<service>]`); the
    /// `--program-*` flags for the rest, and for what a service's own leave unset.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub programs: std::collections::BTreeMap<String, rampart_node::program::Overrides>,
}

impl NodeConfig {
    fn is_empty(&self) -> bool {
        self.services_dir.is_none() && self.run_as.is_none() && self.programs.is_empty()
    }
}

/// `store` in `rampart.toml`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreConfig {
    /// One redb file under `store/`, held by the gateway.
    #[default]
    Embedded,
    /// An etcd cluster shared by every gateway of the network (`rampart init` puts the keys
    /// under `/rampart/<domain>/`).
    Etcd(Box<rampart_etcd::EtcdConfig>),
}

impl StoreConfig {
    /// Parses `--store`: `embedded`, `etcd://HOST:PORT[,HOST:PORT…]` or `etcds://…` (TLS); the
    /// keys live under `/rampart/<domain>/`.
    pub fn parse(text: &str, domain: &TrustDomain) -> Result<Self> {
        if text == "embedded" {
            return Ok(StoreConfig::Embedded);
        }
        let (scheme, rest) = match text.split_once("://") {
            Some(("etcd", rest)) => ("http", rest),
            Some(("etcds", rest)) => ("https", rest),
            _ => bail!("--store {text:?}: expected embedded, etcd://HOST:PORT[,HOST:PORT...] or etcds://..."),
        };
        let endpoints: Vec<String> = rest
            .trim_end_matches('/')
            .split(',')
            .filter(|e| !e.is_empty())
            .map(|e| format!("{scheme}://{e}"))
            .collect();
        if endpoints.is_empty() || endpoints.iter().any(|e| e.parse::<http::Uri>().is_err()) {
            bail!("--store {text:?}: expected etcd://HOST:PORT[,HOST:PORT...]");
        }
        Ok(StoreConfig::Etcd(Box::new(rampart_etcd::EtcdConfig::new(
            endpoints,
            format!("/rampart/{}/", domain.as_str()),
        ))))
    }
}

/// `[tokens]` in `rampart.toml`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokensConfig {
    /// TTL of a token issued without `--ttl`, in seconds. Default: 2592000 (30 days).
    pub default_ttl_secs: u64,
    /// The longest TTL a token may be issued with, in seconds. Default: 31536000 (365 days).
    pub max_ttl_secs: u64,
}

impl Default for TokensConfig {
    fn default() -> Self {
        let p = rampart_auth::TokenPolicy::default();
        TokensConfig { default_ttl_secs: p.default_ttl, max_ttl_secs: p.max_ttl }
    }
}

impl TokensConfig {
    /// As the auth crate's policy.
    pub fn policy(&self) -> rampart_auth::TokenPolicy {
        rampart_auth::TokenPolicy { default_ttl: self.default_ttl_secs, max_ttl: self.max_ttl_secs }
    }
}

impl Home {
    /// The home at `root` (which may not exist yet).
    pub fn new(root: PathBuf) -> Self {
        Home { root }
    }

    /// The home directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The PKI under `pki/`.
    pub fn pki(&self) -> Pki {
        Pki::new(self.root.join("pki"))
    }

    /// Path of the payload keyring, `keys/payload.keys`.
    pub fn keyring_path(&self) -> PathBuf {
        self.root.join("keys").join("payload.keys")
    }

    /// Path of the embedded registry file, `store/registry.redb`.
    pub fn store_path(&self) -> PathBuf {
        self.root.join("store").join("registry.redb")
    }

    /// Path of the first admin's token, `admin.token` (0600).
    pub fn admin_token_path(&self) -> PathBuf {
        self.root.join("admin.token")
    }

    /// Where a running gateway of this home writes its URL (removed when it stops).
    pub fn gateway_url_path(&self) -> PathBuf {
        self.root.join("gateway.url")
    }

    /// The URL of this home's gateway: the one running now, else the configured address.
    pub fn gateway_url(&self, config: &Config) -> String {
        std::fs::read_to_string(self.gateway_url_path())
            .ok()
            .map(|s| s.trim().to_owned())
            .filter(|s| s.starts_with("https://"))
            .unwrap_or_else(|| format!("https://{}", config.gateway.listen))
    }

    /// Opens the embedded registry (the gateway does, and so do the CLI's commands while no
    /// gateway runs).
    pub fn open_local_store(&self) -> Result<rampart_store::EmbeddedStore> {
        self.require()?;
        let path = self.store_path();
        if let Some(dir) = path.parent() {
            rampart_pki::files::create_private_dir(dir)?;
        }
        rampart_store::EmbeddedStore::open(&path).map_err(|e| match e {
            rampart_store::StoreError::InUse(p) => {
                anyhow::anyhow!(
                    "the registry {} is held by another process (a running gateway?)",
                    p.display()
                )
            }
            other => anyhow::Error::from(other).context(format!("opening the registry {}", path.display())),
        })
    }

    /// The registry as configured: the embedded file (held by whoever opens it), or the etcd
    /// cluster (shared by every gateway).
    pub async fn open_registry(&self, config: &Config) -> Result<std::sync::Arc<dyn rampart_store::Store>> {
        match &config.store {
            StoreConfig::Embedded => Ok(std::sync::Arc::new(self.open_local_store()?)),
            StoreConfig::Etcd(etcd) => {
                let store = crate::etcd::connect(etcd, self.root())
                    .await
                    .with_context(|| format!("connecting to etcd at {}", etcd.endpoints.join(", ")))?;
                Ok(std::sync::Arc::new(store))
            }
        }
    }

    /// The registry for the CLI: etcd when configured; else the file when no gateway runs, and
    /// while one runs (it holds the file), its store API over mutual TLS with the admin
    /// certificate.
    pub async fn open_store(&self) -> Result<std::sync::Arc<dyn rampart_store::Store>> {
        use rampart_store::Store as _;
        let config = self.config()?;
        if !matches!(config.store, StoreConfig::Embedded) {
            return self.open_registry(&config).await;
        }
        let local = match self.open_local_store() {
            Ok(s) => return Ok(std::sync::Arc::new(s)),
            Err(e) => e,
        };
        let url = self.gateway_url(&config);
        let client = self.admin_client(&config).with_context(|| format!("{local:#}"))?;
        let remote = rampart_net::remote_store::RemoteStore::new(client, &url);
        if let Err(e) = remote.revision().await {
            anyhow::bail!("{local:#}, and no gateway of this home answers at {url} ({e})");
        }
        Ok(std::sync::Arc::new(remote))
    }

    /// The TLS material of an issued certificate of this home's domain.
    pub fn material(&self, config: &Config, name: &str) -> Result<rampart_net::TlsMaterial> {
        let dir = self.pki().domain_dir(&config.domain);
        let cert = dir.join("issued").join(format!("{name}.pem"));
        let key = dir.join("issued").join(format!("{name}.key"));
        Ok(rampart_net::TlsMaterial::load(
            config.domain.clone(),
            &dir.join("ca.pem"),
            &cert,
            &key,
            Some(&dir.join("crl.pem")),
        )?)
    }

    /// A pooled client presenting the admin certificate, accepting only this domain's gateways.
    pub fn admin_client(&self, config: &Config) -> Result<rampart_net::client::HttpsClient> {
        let tls = self.material(config, "admin")?.client_config(&[rampart_pki::Role::Gateway])?;
        Ok(rampart_net::client::https_client(tls, std::time::Duration::from_secs(3)))
    }

    /// Path of `rampart.toml`.
    pub fn config_path(&self) -> PathBuf {
        self.root.join("rampart.toml")
    }

    /// Fails with a hint unless the home exists and holds a configuration.
    pub fn require(&self) -> Result<()> {
        if !self.config_path().is_file() {
            bail!(
                "no rampart network in {} (no rampart.toml): run `rampart init` first, or point --home \
                 or RAMPART_HOME at an existing home",
                self.root.display()
            );
        }
        Ok(())
    }

    /// Reads `rampart.toml`.
    pub fn config(&self) -> Result<Config> {
        self.require()?;
        let path = self.config_path();
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text)
            .with_context(|| format!("{} is not a valid rampart configuration", path.display()))
    }

    /// Writes `rampart.toml` atomically.
    pub fn write_config(&self, config: &Config) -> Result<()> {
        let body = toml::to_string(config).context("encoding rampart.toml")?;
        let text = format!("# rampart network configuration (see `rampart --help`)\n{body}");
        rampart_pki::files::write_atomic(&self.config_path(), text.as_bytes(), rampart_pki::files::PUBLIC)?;
        Ok(())
    }

    /// The `--domain` given, else this home's own trust domain.
    pub fn domain_or_default(&self, domain: Option<TrustDomain>) -> Result<TrustDomain> {
        match domain {
            Some(d) => Ok(d),
            None => Ok(self
                .config()
                .context("no --domain given, so the home's own trust domain is needed")?
                .domain),
        }
    }
}
