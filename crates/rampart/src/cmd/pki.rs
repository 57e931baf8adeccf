//! `rampart pki …`: certificate authorities and certificates.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rampart_pki::{
    Authority, CaOptions, CertInfo, EntityName, IssueRequest, Record, RevokeTarget, Role, TrustDomain,
    inspect,
};
use serde::Serialize;
use time::OffsetDateTime;

use crate::cli::{Holder, IssueArgs, PkiCommand};
use crate::cmd::{fmt_date, fmt_time, print_table};
use crate::home::Home;

pub fn run(home: &Home, cmd: PkiCommand) -> Result<()> {
    match cmd {
        PkiCommand::Init { domain, force, days, key_type } => {
            init(home, &domain, force, &CaOptions { days, key_type })
        }
        PkiCommand::Issue(args) => issue(home, args),
        PkiCommand::Request { name, out, key_type, force } => {
            super::csr::request(&name, &out, key_type, force)
        }
        PkiCommand::Sign(args) => super::csr::sign(home, args),
        PkiCommand::Trust { domain, install, uninstall } => {
            use super::trust::Action;
            let action = match (install, uninstall) {
                (true, _) => Action::Install,
                (_, true) => Action::Uninstall,
                _ => Action::Explain,
            };
            super::trust::run(home, domain, action)
        }
        PkiCommand::List { domain, json } => list(home, domain, json),
        PkiCommand::Inspect { file_or_name, domain, json } => inspect_cmd(home, &file_or_name, domain, json),
        PkiCommand::Revoke { domain, name, reason, serial, all } => {
            let target = match (serial, all) {
                (Some(s), _) => RevokeTarget::Serial(s.to_ascii_lowercase()),
                (None, true) => RevokeTarget::All,
                (None, false) => RevokeTarget::Current,
            };
            let ca = open(home, domain)?;
            let (revoked, crl) = ca.revoke(&name, &target, reason)?;
            if revoked.is_empty() {
                outln!(
                    "Nothing to revoke: no matching certificate of {}/{name} is still unrevoked.",
                    ca.domain()
                );
            }
            for r in &revoked {
                outln!("Revoked {} (serial {}, reason {reason})", r.identity, r.serial);
            }
            outln!(
                "CRL {} regenerated: number {}, {} revoked, next update {}",
                ca.crl_path().display(),
                crl.number.as_deref().unwrap_or("?"),
                crl.revoked_serials.len(),
                crl.next_update.map(fmt_time).unwrap_or_else(|| "none".into())
            );
            Ok(())
        }
        PkiCommand::Renew { domain, name, lifetime, key_type } => {
            let ca = open(home, domain)?;
            let issued = ca.renew(&name, lifetime, key_type)?;
            outln!(
                "Renewed {} (new serial {}), valid until {}",
                issued.record.identity,
                issued.record.serial,
                fmt_time(issued.record.not_after)
            );
            outln!(
                "  certificate  {}\n  key          {} (0600)",
                issued.cert_path.display(),
                issued.key_path.display()
            );
            outln!(
                "The previous certificate stays valid until it expires; revoke it with --serial if it must stop now."
            );
            Ok(())
        }
        PkiCommand::Bundle { domain, out } => bundle(home, domain, out.as_deref()),
        PkiCommand::RotateCa { domain, finish: false, days, key_type } => {
            let ca = open(home, domain)?.begin_rotation(&CaOptions { days, key_type })?;
            let left = ca.issued_by_previous()?;
            outln!(
                "Rotating the CA of {:?}: {} issues from now on",
                ca.domain().as_str(),
                ca.ca_cert().subject
            );
            outln!(
                "  {} holds the new CA and the old one: restart the gateways and nodes to trust both",
                ca.ca_path().display()
            );
            let names: Vec<String> = left.iter().map(|r| r.name.to_string()).collect();
            outln!(
                "Then renew (rampart pki renew --name NAME) and restart each holder ({}), and finish: rampart pki rotate-ca --finish",
                names.join(", ")
            );
            Ok(())
        }
        PkiCommand::RotateCa { domain, finish: true, .. } => {
            let ca = open(home, domain)?.finish_rotation()?;
            outln!(
                "The CA of {:?} is {} alone; the old one was moved to pki/.replaced/",
                ca.domain().as_str(),
                ca.ca_cert().subject
            );
            outln!("Restart the gateways and nodes once more, so that they stop trusting the old CA.");
            Ok(())
        }
        PkiCommand::Crl { domain } => {
            let ca = open(home, domain)?;
            let crl = ca.generate_crl()?;
            outln!("{}", ca.crl_path().display());
            outln!("  issuer       {}", crl.issuer);
            outln!("  number       {}", crl.number.as_deref().unwrap_or("?"));
            outln!("  this update  {}", fmt_time(crl.this_update));
            outln!("  next update  {}", crl.next_update.map(fmt_time).unwrap_or_else(|| "none".into()));
            outln!("  revoked      {}", crl.revoked_serials.len());
            for serial in &crl.revoked_serials {
                outln!("    {serial}");
            }
            Ok(())
        }
    }
}

/// `rampart pki bundle`: the PEM on standard output or in `out`, the fingerprint on standard
/// error (so that `> file` keeps the bundle clean).
fn bundle(home: &Home, domain: Option<TrustDomain>, out: Option<&Path>) -> Result<()> {
    home.require()?;
    let domain = home.domain_or_default(domain)?;
    let bundle = rampart_pki::bundle::of_domain(&home.pki(), &domain)?;
    match out {
        Some(path) => {
            rampart_pki::files::write_atomic(path, bundle.to_pem().as_bytes(), rampart_pki::files::PUBLIC)?;
            eprintln!("wrote the CA bundle of {:?} to {}", domain.as_str(), path.display());
        }
        None => {
            use std::io::Write;
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(bundle.to_pem().as_bytes())?;
            stdout.flush()?;
        }
    }
    eprintln!("{}", bundle.fingerprint());
    Ok(())
}

fn open(home: &Home, domain: Option<TrustDomain>) -> Result<Authority> {
    home.require()?;
    let domain = home.domain_or_default(domain)?;
    Ok(home.pki().open(&domain)?)
}

fn init(home: &Home, domain: &TrustDomain, force: bool, opts: &CaOptions) -> Result<()> {
    home.require()?;
    let created = home.pki().create_domain(domain, opts, force)?;
    outln!("Created the CA of trust domain {:?} in {}", domain.as_str(), created.dir.display());
    outln!("  certificate  {}", created.dir.join("ca.pem").display());
    outln!("  key          {} (0600)", created.dir.join("ca.key").display());
    outln!("  key type     {}", created.cert.key_type);
    outln!("  valid until  {}", fmt_time(created.cert.not_after));
    if let Some(old) = created.replaced {
        outln!("The previous CA was moved to {}", old.display());
    }
    Ok(())
}

fn issue(home: &Home, args: IssueArgs) -> Result<()> {
    let (domain, req) = request_for(args.holder, args.key_type);
    let issued = open(home, domain)?.issue(&req)?;
    outln!("Issued {} (serial {})", issued.record.identity, issued.record.serial);
    outln!("  certificate  {}", issued.cert_path.display());
    outln!("  key          {} (0600)", issued.key_path.display());
    outln!("  valid until  {}", fmt_time(issued.record.not_after));
    if !issued.cert.dns.is_empty() || !issued.cert.ips.is_empty() {
        let ips: Vec<String> = issued.cert.ips.iter().map(ToString::to_string).collect();
        outln!("  serves       {}", [issued.cert.dns.clone(), ips].concat().join(", "));
    }
    Ok(())
}

/// What to issue for `holder`: a server role gets the default names when none is given; a
/// client role takes none (said, not refused).
pub(super) fn request_for(
    holder: Holder,
    key_type: rampart_pki::KeyType,
) -> (Option<TrustDomain>, IssueRequest) {
    let (dns, ips) = if holder.role.serves_tls() && holder.dns.is_empty() && holder.ips.is_empty() {
        rampart_pki::default_server_sans()
    } else {
        (holder.dns, holder.ips)
    };
    if !holder.role.serves_tls() && (!dns.is_empty() || !ips.is_empty()) {
        eprintln!(
            "note: --dns/--ip are ignored for the {} role, which only acts as a TLS client",
            holder.role
        );
    }
    // A year unless asked: a certificate issued here may go where no gateway holding the CA
    // can renew it (a Kubernetes Secret); nodes issued on their first run get a day.
    let lifetime = holder.lifetime.unwrap_or(rampart_pki::Lifetime::DEFAULT);
    let req = IssueRequest { role: holder.role, name: holder.name, dns, ips, lifetime, key_type };
    (holder.domain, req)
}

#[derive(Serialize)]
struct ListedRecord<'a> {
    domain: &'a str,
    #[serde(flatten)]
    record: &'a Record,
    status: rampart_pki::Status,
}

fn list(home: &Home, domain: Option<TrustDomain>, json: bool) -> Result<()> {
    home.require()?;
    let pki = home.pki();
    let domains = match domain {
        Some(d) => vec![d],
        None => pki.domains()?,
    };
    let now = OffsetDateTime::now_utc();
    let mut all = Vec::new();
    for d in &domains {
        let ca = pki.open(d)?;
        let mut records = ca.records()?;
        // By name, each name's certificates oldest first (the index is in issue order).
        records.sort_by(|a, b| a.name.cmp(&b.name));
        all.extend(records.into_iter().map(|r| (d.clone(), r)));
    }
    if json {
        let out: Vec<ListedRecord<'_>> = all
            .iter()
            .map(|(d, r)| ListedRecord { domain: d.as_str(), record: r, status: r.status(now) })
            .collect();
        outln!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    if all.is_empty() {
        outln!("No certificates issued yet. Issue one with `rampart pki issue --role node --name node-1`.");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|(_, r)| {
            let status = r.status(now).to_string();
            vec![
                r.name.to_string(),
                r.role.to_string(),
                r.identity.to_string(),
                fmt_date(r.not_after),
                if r.current { status } else { format!("{status} (replaced)") },
                r.serial.clone(),
            ]
        })
        .collect();
    print_table(&["NAME", "ROLE", "IDENTITY", "EXPIRES", "STATUS", "SERIAL"], &rows);
    Ok(())
}

/// What `inspect` reports beyond the certificate itself.
#[derive(Serialize)]
struct Inspection {
    file: PathBuf,
    #[serde(flatten)]
    cert: CertInfo,
    /// Whether the CA of the certificate's trust domain (in this home) signed it; None when
    /// the home has no CA for that domain.
    signed_by_domain_ca: Option<bool>,
    /// Whether that domain's CRL lists it; None when unknown.
    revoked: Option<bool>,
    status: &'static str,
}

fn inspect_cmd(home: &Home, what: &str, domain: Option<TrustDomain>, json: bool) -> Result<()> {
    let file = resolve_cert(home, what, domain)?;
    let cert = inspect::read_cert_file(&file)?;
    let now = OffsetDateTime::now_utc();
    let pki = home.pki();
    let ca = cert.identity.as_ref().and_then(|id| pki.open(&id.domain).ok());
    let signed = ca.as_ref().map(|ca| inspect::is_signed_by(&cert.der, &ca.ca_cert().der));
    let revoked = match (&ca, signed) {
        (Some(ca), Some(true)) => ca.crl().ok().map(|crl| crl.revoked_serials.contains(&cert.serial)),
        _ => None,
    };
    let status = if revoked == Some(true) {
        "revoked"
    } else if now >= cert.not_after {
        "expired"
    } else if now < cert.not_before {
        "not yet valid"
    } else if signed == Some(false) {
        "not signed by its domain's CA"
    } else {
        "valid"
    };
    let out = Inspection { file, cert, signed_by_domain_ca: signed, revoked, status };
    if json {
        outln!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    let c = &out.cert;
    let join = |v: &[String]| {
        if v.is_empty() { "-".to_owned() } else { v.join(", ") }
    };
    let ips: Vec<String> = c.ips.iter().map(ToString::to_string).collect();
    let line = |k: &str, v: String| outln!("{k:<14}{v}");
    line("File", out.file.display().to_string());
    line(
        "Identity",
        c.identity.as_ref().map_or_else(|| "none (not a rampart certificate)".into(), ToString::to_string),
    );
    line(
        "Role",
        c.role.map_or_else(|| if c.is_ca { "CA".into() } else { "-".into() }, |r: Role| r.to_string()),
    );
    line("Status", out.status.to_owned());
    line("Subject", c.subject.clone());
    line("Issuer", c.issuer.clone());
    line("Serial", c.serial.clone());
    line("Key", c.key_type.clone());
    line("Not before", fmt_time(c.not_before));
    line(
        "Not after",
        format!("{} ({} days left)", fmt_time(c.not_after), (c.not_after - now).whole_days().max(0)),
    );
    line("DNS names", join(&c.dns));
    line("IP addresses", join(&ips));
    line("URIs", join(&c.uris));
    line("CA", if c.is_ca { "yes".into() } else { "no".into() });
    line("Key usage", join(&c.key_usage));
    line("Ext. usage", join(&c.extended_key_usage));
    line("SHA-256", c.sha256_fingerprint.clone());
    let domain = c.identity.as_ref().map(|id| id.domain.to_string());
    line(
        "Signed by CA",
        match (signed, &domain) {
            (Some(true), Some(d)) => format!("yes (trust domain {d:?})"),
            (Some(false), Some(d)) => format!("NO: not signed by the CA of trust domain {d:?}"),
            _ => "unknown (no CA for its trust domain in this home)".into(),
        },
    );
    line(
        "Revoked",
        match revoked {
            Some(true) => "YES (listed in its domain's CRL)".into(),
            Some(false) => "no".into(),
            None => "unknown".into(),
        },
    );
    Ok(())
}

/// A path to an existing file, else the name of an issued certificate in the domain.
fn resolve_cert(home: &Home, what: &str, domain: Option<TrustDomain>) -> Result<PathBuf> {
    let path = Path::new(what);
    if path.is_file() {
        return Ok(path.to_owned());
    }
    let Ok(name) = EntityName::new(what) else {
        anyhow::bail!("{what}: no such file");
    };
    let domain = home
        .domain_or_default(domain)
        .with_context(|| format!("{what} is not a file, so it is taken as a certificate name"))?;
    let ca = home.pki().open(&domain)?;
    let file = ca.cert_path(&name);
    if !file.is_file() {
        anyhow::bail!(
            "{what}: no such file, and no certificate of that name in trust domain {:?}",
            domain.as_str()
        );
    }
    Ok(file)
}
