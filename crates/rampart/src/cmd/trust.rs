//! `rampart pki trust`: how to make a machine trust a domain's CA, so that the gateway's
//! certificate verifies in browsers, curl and other clients of the system store without
//! `--cacert`; and, on Debian-like systems, doing it (`--install`) and undoing it
//! (`--uninstall`). Each CA of the domain (two while it rotates) is a file of its own: the
//! system store keeps one certificate per file.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use rampart_pki::TrustDomain;
use rampart_pki::files;

use crate::home::Home;

/// Where Debian and its derivatives take local CAs from, and the tool that adds them.
const DEBIAN_DIR: &str = "/usr/local/share/ca-certificates";
const DEBIAN_TOOL: &str = "/usr/sbin/update-ca-certificates";

/// What `rampart pki trust` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Print the steps for each kind of system.
    Explain,
    /// Add the CA to this (Debian-like) system's store.
    Install,
    /// Take it out again.
    Uninstall,
}

pub fn run(home: &Home, domain: Option<TrustDomain>, action: Action) -> Result<()> {
    home.require()?;
    let domain = home.domain_or_default(domain)?;
    let bundle = rampart_pki::bundle::of_domain(&home.pki(), &domain)?;
    let ca_pem = home.pki().domain_dir(&domain).join("ca.pem");
    match action {
        Action::Explain => explain(&domain, &ca_pem, &bundle.fingerprint().to_string()),
        Action::Install => {
            let dir = debian_store()?;
            remove_installed(&dir, &domain)?;
            for (i, der) in bundle.certs().iter().enumerate() {
                let path = installed_path(&dir, &domain, i);
                let pem = pem::encode(&pem::Pem::new("CERTIFICATE", der.clone()));
                files::write_atomic(&path, pem.as_bytes(), 0o644)?;
                outln!("added {}", path.display());
            }
            update(&[])?;
            outln!(
                "This machine now trusts the CA of {:?} ({}): curl, wget and Python's ssl verify its gateways \
                 without --cacert. Undo with: rampart pki trust --uninstall",
                domain.as_str(),
                bundle.fingerprint()
            );
            Ok(())
        }
        Action::Uninstall => {
            let dir = debian_store()?;
            let removed = remove_installed(&dir, &domain)?;
            if removed == 0 {
                outln!("This machine's store held no CA of {:?}: nothing to do.", domain.as_str());
                return Ok(());
            }
            update(&["--fresh"])?;
            outln!("The CA of {:?} is no longer trusted by this machine's store.", domain.as_str());
            Ok(())
        }
    }
}

fn explain(domain: &TrustDomain, ca: &Path, fingerprint: &str) -> Result<()> {
    let (d, ca) = (domain.as_str(), ca.display());
    outln!("The CA of {d:?} is {ca} ({fingerprint}). To have a machine trust it:");
    outln!();
    outln!("  Debian, Ubuntu   sudo rampart pki trust --install   (or by hand:)");
    outln!("                   sudo cp {ca} {DEBIAN_DIR}/rampart-{d}.crt && sudo update-ca-certificates");
    outln!(
        "  Fedora, RHEL     sudo cp {ca} /etc/pki/ca-trust/source/anchors/rampart-{d}.pem && sudo update-ca-trust"
    );
    outln!(
        "  macOS            sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain {ca}"
    );
    outln!("  Windows          certutil -addstore -f ROOT {ca}   (as administrator)");
    outln!();
    outln!("Firefox keeps a store of its own (Settings, Certificates, Import). Python's requests uses");
    outln!("certifi's bundle unless told: REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt");
    outln!("Compare the fingerprint above with the one the network's operator gives you first.");
    Ok(())
}

/// The Debian-like store, when this system has one and this process may change it.
fn debian_store() -> Result<PathBuf> {
    let dir = PathBuf::from(DEBIAN_DIR);
    if !Path::new(DEBIAN_TOOL).exists() || !dir.is_dir() {
        bail!(
            "--install and --uninstall know Debian-like systems ({DEBIAN_TOOL}, {DEBIAN_DIR}), and this one \
             has neither: follow the steps `rampart pki trust` prints for it"
        );
    }
    if !rustix::process::geteuid().is_root() {
        bail!("changing the system's trust store takes root: sudo rampart pki trust ...");
    }
    Ok(dir)
}

fn installed_path(dir: &Path, domain: &TrustDomain, i: usize) -> PathBuf {
    match i {
        0 => dir.join(format!("rampart-{}.crt", domain.as_str())),
        n => dir.join(format!("rampart-{}-{}.crt", domain.as_str(), n + 1)),
    }
}

/// Removes what an earlier `--install` of `domain` put in `dir`; how many files.
fn remove_installed(dir: &Path, domain: &TrustDomain) -> Result<usize> {
    let (exact, numbered) =
        (format!("rampart-{}.crt", domain.as_str()), format!("rampart-{}-", domain.as_str()));
    let mut removed = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours = name == exact
            || name
                .strip_prefix(&numbered)
                .and_then(|rest| rest.strip_suffix(".crt"))
                .is_some_and(|n| n.parse::<u32>().is_ok());
        if ours {
            std::fs::remove_file(entry.path())
                .with_context(|| format!("removing {}", entry.path().display()))?;
            removed += 1;
        }
    }
    Ok(removed)
}

fn update(args: &[&str]) -> Result<()> {
    let out =
        Command::new(DEBIAN_TOOL).args(args).output().with_context(|| format!("running {DEBIAN_TOOL}"))?;
    if !out.status.success() {
        bail!("{DEBIAN_TOOL} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}
