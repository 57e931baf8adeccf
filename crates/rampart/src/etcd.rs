//! The etcd registry as `rampart.toml` describes it.

use anyhow::Result;
use rampart_pki::TrustDomain;

use crate::home::EtcdSettings;

/// Connects to the cluster; relative file paths are taken from the home directory, and the
/// keys live under `/rampart/<domain>/` unless the settings say otherwise.
pub async fn connect(
    settings: &EtcdSettings,
    domain: &TrustDomain,
    home: &std::path::Path,
) -> Result<rampart_etcd::EtcdStore> {
    let prefix = settings.prefix.clone().unwrap_or_else(|| format!("/rampart/{}/", domain.as_str()));
    let mut config = rampart_etcd::EtcdConfig::new(settings.endpoints.clone(), prefix);
    let in_home = |p: &Option<std::path::PathBuf>| p.as_ref().map(|p| home.join(p));
    config.ca = in_home(&settings.ca);
    config.cert = in_home(&settings.cert);
    config.key = in_home(&settings.key);
    config.user = settings.user.clone();
    config.password_file = in_home(&settings.password_file);
    Ok(rampart_etcd::EtcdStore::connect(config).await?)
}
