//! `rampart deploy`: from a network's home to Kubernetes and back. `k8s-secrets` turns the home
//! into Secrets (and the ConfigMap of what is public) so that nobody hand-encodes base64 or
//! commits a key; `unpack` runs in a pod's init container and lays those out as the home the
//! pod's rampart reads.

mod manifest;
mod secrets;
mod unpack;

use anyhow::Result;

use crate::cli::DeployCommand;
use crate::home::Home;

/// The ConfigMap of the pods' `rampart.toml` and the CRL.
pub const CONFIG_MAP: &str = "rampart-config";
/// The Secret of the payload keyring.
pub const KEYRING_SECRET: &str = "rampart-keyring";
/// The Secret of the first admin's token.
pub const ADMIN_TOKEN_SECRET: &str = "rampart-admin-token";
/// The Secret of the CA's private key (only with `--include-ca-key`).
pub const CA_KEY_SECRET: &str = "rampart-ca-key";
/// Where, relative to a pod's home, the etcd client files go (the pods' `rampart.toml` names
/// these paths; `unpack` writes them).
pub const ETCD_FILES: [&str; 3] = ["etcd/ca.pem", "etcd/client.pem", "etcd/client.key"];

pub fn run(home: &Home, cmd: DeployCommand) -> Result<()> {
    match cmd {
        DeployCommand::K8sSecrets(args) => secrets::run(home, args),
        DeployCommand::Unpack(args) => unpack::run(home, args),
    }
}
