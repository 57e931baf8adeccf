//! `rampart deploy unpack`: lays out a pod's home from the Secrets and ConfigMap mounted at
//! `--from`. Secret volumes give files owned by root with one mode for all (or group-readable
//! with an fsGroup), while rampart wants its keys 0600 and owned by the user it runs as; so an
//! init container copies them into the pod's (memory-backed) home, each with its own mode.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use rampart_pki::files;

use crate::cli::UnpackArgs;
use crate::home::{Config, Home, StoreConfig};

pub fn run(home: &Home, args: UnpackArgs) -> Result<()> {
    let from = &args.from;
    let source = |rel: &str| from.join(rel);
    let toml_text = read(&source("config/rampart.toml"))?;
    let config: Config = toml::from_str(std::str::from_utf8(&toml_text)?).with_context(|| {
        format!("{} is not a valid rampart configuration", source("config/rampart.toml").display())
    })?;
    let dir = home.pki().domain_dir(&config.domain);
    let issued = dir.join("issued");
    files::create_private_dir(&issued).with_context(|| format!("creating {}", issued.display()))?;
    files::create_private_dir(&home.root().join("keys"))?;

    // The certificate must be the one this pod is named for, of this network's domain.
    let cert = read(&source("cert/tls.crt"))?;
    let info = rampart_pki::inspect::cert_from_bytes(&cert).map_err(anyhow::Error::msg)?;
    match &info.identity {
        Some(id) if id.domain == config.domain && id.name == args.name => {}
        other => bail!(
            "{} is {}, not a certificate of {:?} in trust domain {:?}: mount the Secret rampart-cert-{} there",
            source("cert/tls.crt").display(),
            other
                .as_ref()
                .map_or_else(|| "a certificate without a rampart identity".to_owned(), ToString::to_string),
            args.name.as_str(),
            config.domain.as_str(),
            args.name.as_str().to_ascii_lowercase().replace('_', "-"),
        ),
    }

    let mut plan: Vec<(PathBuf, PathBuf, u32)> = vec![
        (source("config/rampart.toml"), home.config_path(), files::PUBLIC),
        (source("cert/ca.crt"), dir.join("ca.pem"), files::PUBLIC),
        (source("cert/tls.crt"), issued.join(format!("{}.pem", args.name)), files::PUBLIC),
        (source("cert/tls.key"), issued.join(format!("{}.key", args.name)), files::PRIVATE),
    ];
    let optional = |rel: &str, to: PathBuf, mode: u32| source(rel).is_file().then(|| (source(rel), to, mode));
    plan.extend(optional("config/crl.pem", dir.join("crl.pem"), files::PUBLIC));
    plan.extend(optional("keyring/payload.keys", home.keyring_path(), files::PRIVATE));
    plan.extend(optional("ca-key/ca.key", dir.join("ca.key"), files::PRIVATE));
    if let StoreConfig::Etcd(etcd) = &config.store
        && source("etcd").is_dir()
    {
        let targets = [&etcd.ca, &etcd.cert, &etcd.key];
        for ((rel, target), mode) in ["etcd/ca.crt", "etcd/tls.crt", "etcd/tls.key"]
            .into_iter()
            .zip(targets)
            .zip([files::PUBLIC, files::PUBLIC, files::PRIVATE])
        {
            let Some(target) = target else { continue };
            // Inside the home only: the configuration names where, not what may be overwritten.
            if target.is_absolute() || target.components().any(|c| c == std::path::Component::ParentDir) {
                bail!(
                    "{}: the etcd file {} must be a path inside the home (relative, no '..')",
                    source("config/rampart.toml").display(),
                    target.display()
                );
            }
            let to = home.root().join(target);
            if let Some(parent) = to.parent() {
                files::create_private_dir(parent)?;
            }
            plan.push((source(rel), to, mode));
        }
    }

    for (from, to, mode) in &plan {
        let bytes = zeroize::Zeroizing::new(read(from)?);
        files::write_atomic(to, &bytes, *mode)?;
    }
    let rel = |p: &Path| p.strip_prefix(home.root()).unwrap_or(p).display().to_string();
    let written: Vec<String> = plan.iter().map(|(_, to, _)| rel(to)).collect();
    outln!("Unpacked into {}: {}", home.root().display(), written.join(", "));
    Ok(())
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {} (is the Secret mounted?)", path.display()))
}
