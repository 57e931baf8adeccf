//! `rampart pki request` and `rampart pki sign`: a key made on its holder's machine, and the
//! CA certifying it from the request, so the key never travels.

use std::path::Path;

use anyhow::{Context, Result, bail};
use rampart_pki::csr::{self, CheckedCsr, MAX_CSR_BYTES};
use rampart_pki::{EntityName, KeyType, files};

use crate::cli::SignArgs;
use crate::cmd::fmt_time;
use crate::home::Home;

/// Writes `<out>/<name>.key` (0600) and `<out>/<name>.csr`; needs no home.
pub fn request(name: &EntityName, out: &Path, key_type: KeyType, force: bool) -> Result<()> {
    let (key_path, csr_path) = (out.join(format!("{name}.key")), out.join(format!("{name}.csr")));
    if !out.is_dir() {
        bail!("--out {}: not a folder", out.display());
    }
    if !force && let Some(there) = [&key_path, &csr_path].into_iter().find(|p| p.exists()) {
        bail!("{} exists: a key is never overwritten unless --force says so", there.display());
    }
    let made = csr::request(name, key_type)?;
    files::write_atomic(&key_path, made.key_pem.as_bytes(), files::PRIVATE)?;
    files::write_atomic(&csr_path, made.csr_pem.as_bytes(), files::PUBLIC)?;
    outln!("Made a {} key and a request for it", key_type.as_str());
    outln!("  key      {} (0600: it stays here)", key_path.display());
    outln!("  request  {}", csr_path.display());
    outln!("Hand the request to the admin, who runs:");
    outln!("  rampart pki sign {name}.csr --role user --name {name}");
    Ok(())
}

/// Certifies a request's key as the admin says.
pub fn sign(home: &Home, args: SignArgs) -> Result<()> {
    home.require()?;
    let bytes = read_bounded(&args.csr)?;
    let checked = CheckedCsr::parse(&bytes).with_context(|| args.csr.display().to_string())?;
    let (domain, req) = super::pki::request_for(args.holder, checked.key_type());
    let ca = home.pki().open(&home.domain_or_default(domain)?)?;
    let issued = ca.sign(&checked, &req, args.renew)?;
    eprintln!(
        "Signed {} (serial {}), valid until {}",
        issued.record.identity,
        issued.record.serial,
        fmt_time(issued.record.not_after)
    );
    outln!("{}", issued.cert_path.display());
    Ok(())
}

/// The file, refused past the size of any request rather than read whole.
fn read_bounded(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_CSR_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(bytes)
}
