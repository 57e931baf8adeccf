//! `rampart init`: a new network home.

use anyhow::{Context, Result, bail};
use rampart_pki::{CaOptions, EntityName, IssueRequest, Role, files};

use crate::cli::InitArgs;
use crate::cmd::{block_on, fmt_date, now_secs, print_table};
use crate::home::{Config, Home, StoreConfig};

/// Names of the certificates `init` issues.
const GATEWAY_NAME: &str = "gateway";
const ADMIN_NAME: &str = "admin";

pub fn run(home: &Home, args: InitArgs) -> Result<()> {
    // A home already initialised for another domain is a different network: never mix them.
    let mut previous = None;
    if home.config_path().is_file() {
        let existing = home.config()?;
        previous = Some((existing.tokens.clone(), existing.gateway.clone(), existing.store.clone()));
        if existing.domain != args.domain && !args.force {
            bail!(
                "{} already holds the network of trust domain {:?}; pass --force to make it a {:?} \
                 network instead, or choose another --home",
                home.root().display(),
                existing.domain.as_str(),
                args.domain.as_str()
            );
        }
    }
    let store = match &args.store {
        Some(text) => store_from_args(text, &args)?,
        None => previous.as_ref().map(|p| p.2.clone()).unwrap_or_default(),
    };
    // Reach the registry before making anything, so an unreachable etcd leaves no half a home.
    if let StoreConfig::Etcd(etcd) = &store {
        block_on(crate::etcd::connect(etcd, home.root()))?
            .with_context(|| format!("connecting to etcd at {}", etcd.endpoints.join(", ")))?;
    }
    files::create_private_dir(home.root())
        .with_context(|| format!("creating home {}", home.root().display()))?;
    let pki = home.pki();
    let ca_opts = CaOptions { days: args.ca_days, key_type: args.key_type };
    let created = pki.create_domain(&args.domain, &ca_opts, args.force).map_err(|e| match e {
        rampart_pki::PkiError::CaExists { path, .. } => anyhow::anyhow!(
            "{} already holds a network: its CA is in {}; nothing was changed (pass --force to replace it)",
            home.root().display(),
            path.display()
        ),
        other => other.into(),
    })?;
    let ca = pki.open(&args.domain)?;

    let (mut dns, mut ips) = rampart_pki::default_server_sans();
    dns.extend(args.dns.iter().filter(|d| !dns.contains(d)).cloned().collect::<Vec<_>>());
    ips.extend(args.ips.iter().filter(|a| !ips.contains(a)).copied().collect::<Vec<_>>());
    let gateway = ca.issue(&IssueRequest {
        role: Role::Gateway,
        name: EntityName::new(GATEWAY_NAME)?,
        dns,
        ips,
        lifetime: args.lifetime,
        key_type: args.key_type,
    })?;
    let admin = ca.issue(&IssueRequest {
        role: Role::Admin,
        name: EntityName::new(ADMIN_NAME)?,
        dns: vec![],
        ips: vec![],
        lifetime: args.lifetime,
        key_type: args.key_type,
    })?;
    // The payload keyring: a new network gets a new one; an existing one is kept unless
    // --force (then it is kept aside, since tokens made with it could not be opened otherwise).
    let keyring_path = home.keyring_path();
    let keyring_note = keyring(&keyring_path, args.force)?;
    let (tokens, gateway_config, _) = previous.unwrap_or_default();
    let config = Config {
        domain: args.domain.clone(),
        store,
        tokens,
        gateway: gateway_config,
        node: Default::default(),
        routes: Default::default(),
    };
    home.write_config(&config)?;
    let admin_token = block_on(first_admin(home, &config, &admin.record.identity.to_string()))??;

    let issued = Issued {
        ca: &ca,
        created: &created,
        gateway: &gateway,
        admin: &admin,
        keyring: (&keyring_path, keyring_note),
    };
    summary(home, &args, &issued, admin_token.as_str());
    Ok(())
}

/// The registry `--store` names; etcd's files as given on the command line, made absolute
/// (rampart.toml is read from wherever later commands run).
fn store_from_args(text: &str, args: &InitArgs) -> Result<StoreConfig> {
    let mut store = StoreConfig::parse(text, &args.domain)?;
    if let StoreConfig::Etcd(etcd) = &mut store {
        let abs = |p: &Option<std::path::PathBuf>| p.as_deref().map(std::path::absolute).transpose();
        etcd.ca = abs(&args.etcd_ca)?;
        etcd.cert = abs(&args.etcd_cert)?;
        etcd.key = abs(&args.etcd_key)?;
        etcd.user = args.etcd_user.clone();
        etcd.password_file = abs(&args.etcd_password_file)?;
    }
    Ok(store)
}

/// The payload keyring: a new network gets a new one; an existing one is kept unless `force`
/// (then it is kept aside, since tokens made with it could not be opened otherwise). What was
/// done, for the summary.
fn keyring(path: &std::path::Path, force: bool) -> Result<String> {
    if path.exists() && !force {
        return Ok("kept the existing keyring".to_owned());
    }
    let (keyring, kept) = rampart_crypto::file::create(path, force)?;
    Ok(match kept {
        Some(old) => {
            format!("new key {} (old keyring kept as {})", keyring.newest().fingerprint(), old.display())
        }
        None => format!("new key {}", keyring.newest().fingerprint()),
    })
}

/// What `init` made, for its summary.
struct Issued<'a> {
    ca: &'a rampart_pki::Authority,
    created: &'a rampart_pki::CreatedCa,
    gateway: &'a rampart_pki::Issued,
    admin: &'a rampart_pki::Issued,
    keyring: (&'a std::path::Path, String),
}

/// Prints what was made and the admin token (once).
fn summary(home: &Home, args: &InitArgs, issued: &Issued<'_>, admin_token: &str) {
    outln!(
        "Initialised a rampart network in {} (trust domain {:?})",
        home.root().display(),
        args.domain.as_str()
    );
    if let Some(old) = &issued.created.replaced {
        outln!("The previous CA was moved to {}", old.display());
    }
    let rel = |p: &std::path::Path| p.strip_prefix(home.root()).unwrap_or(p).display().to_string();
    print_table(
        &["WHAT", "FILE", "DETAIL", "EXPIRES"],
        &[
            vec![
                "CA".into(),
                rel(&issued.ca.ca_path()),
                format!("({})", issued.created.cert.key_type),
                fmt_date(issued.created.cert.not_after),
            ],
            vec![
                "gateway".into(),
                rel(&issued.gateway.cert_path),
                issued.gateway.record.identity.to_string(),
                fmt_date(issued.gateway.record.not_after),
            ],
            vec![
                "admin".into(),
                rel(&issued.admin.cert_path),
                issued.admin.record.identity.to_string(),
                fmt_date(issued.admin.record.not_after),
            ],
            vec!["keyring".into(), rel(issued.keyring.0), issued.keyring.1.clone(), String::new()],
        ],
    );
    outln!("Admin token (shown once; kept in {}, 0600):\n  {}", rel(&home.admin_token_path()), admin_token);
    outln!(
        "Private keys are beside each certificate (.key, mode 0600). Next: rampart pki issue --role node --name node-1"
    );
}

/// The first administrator, `admin`, bound to the admin certificate, and its first token,
/// kept in `admin.token` (0600) for the demo and the CLI. On a re-init (`--force`) the user is
/// kept and its earlier tokens are revoked.
async fn first_admin(
    home: &Home,
    config: &Config,
    cert_identity: &str,
) -> Result<zeroize::Zeroizing<String>> {
    use rampart_auth::{NewUser, tokens, users};
    let store = home.open_registry(config).await?;
    let store = store.as_ref();
    let now = now_secs();
    if users::get(store, ADMIN_NAME).await?.is_some() {
        for t in tokens::list(store).await?.iter().filter(|t| t.user == ADMIN_NAME && t.revoked.is_none()) {
            tokens::revoke(store, &t.id, now).await?;
        }
    } else {
        let new = NewUser {
            name: ADMIN_NAME,
            admin: true,
            password: None,
            cert_identity: Some(cert_identity),
            token_limit: None,
        };
        users::add(store, &new, now).await?;
    }
    let policy = config.tokens.policy();
    let issued = tokens::issue(store, ADMIN_NAME, Some(policy.max_ttl), &[], policy, now).await?;
    let mut line = zeroize::Zeroizing::new(issued.token.to_string());
    line.push('\n');
    files::write_atomic(&home.admin_token_path(), line.as_bytes(), files::PRIVATE)?;
    Ok(issued.token)
}
