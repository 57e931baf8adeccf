//! The etcd registry as `rampart.toml` describes it.

use anyhow::Result;
use rampart_etcd::EtcdConfig;

/// Connects to the cluster; relative file paths in the settings are taken from the home.
pub async fn connect(settings: &EtcdConfig, home: &std::path::Path) -> Result<rampart_etcd::EtcdStore> {
    let mut config = settings.clone();
    for path in [&mut config.ca, &mut config.cert, &mut config.key, &mut config.password_file] {
        *path = path.as_ref().map(|p| home.join(p));
    }
    Ok(rampart_etcd::EtcdStore::connect(config).await?)
}
