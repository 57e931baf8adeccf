//! `rampart user`, `rampart token`, `rampart policy`: identity and access, kept in the
//! registry. They work offline on the home's store file; while a gateway runs (and holds the
//! file) they go through its store API over mutual TLS with the admin certificate.

use std::io::{BufRead, IsTerminal};

use anyhow::{Context, Result, bail};
use rampart_auth::{Effect, NewUser, policy, tokens, users};
use rampart_store::Store;
use zeroize::Zeroizing;

use crate::cli::{PolicyCommand, RuleArgs, TokenCommand, UserCommand};
use crate::cmd::{block_on, fmt_unix, now_secs, print_table};
use crate::home::Home;

pub fn user(home: &Home, cmd: UserCommand) -> Result<()> {
    // Read a password before touching the store, so a prompt never holds the registry.
    let password = match &cmd {
        UserCommand::Add { no_password: false, password_stdin, .. } => Some(read_password(*password_stdin)?),
        UserCommand::Passwd { password_stdin, .. } => Some(read_password(*password_stdin)?),
        _ => None,
    };
    block_on(async {
        let store = home.open_store().await?;
        match cmd {
            UserCommand::Add { name, admin, cert_identity, token_limit, .. } => {
                let new = NewUser {
                    name: &name,
                    admin,
                    password: password.as_ref().map(|p| p.as_bytes()),
                    cert_identity: cert_identity.as_deref(),
                    token_limit: Some(token_limit),
                };
                let u = users::add(store.as_ref(), &new, now_secs()).await?;
                outln!(
                    "Added {}user {:?}{}",
                    if u.admin { "administrator " } else { "" },
                    u.name,
                    if u.password_hash.is_some() { "" } else { " (no password)" }
                );
            }
            UserCommand::List { json } => {
                let list = users::list(store.as_ref()).await?;
                if json {
                    let out: Vec<_> = list
                        .iter()
                        .map(|u| {
                            serde_json::json!({"name": u.name, "admin": u.admin, "password": u.password_hash.is_some(),
                                "cert_identity": u.cert_identity, "token_limit": u.token_limit, "created": u.created})
                        })
                        .collect();
                    outln!("{}", serde_json::to_string_pretty(&out)?);
                } else {
                    let rows: Vec<Vec<String>> = list
                        .iter()
                        .map(|u| {
                            vec![
                                u.name.clone(),
                                if u.admin { "admin".into() } else { "user".into() },
                                if u.password_hash.is_some() { "yes".into() } else { "no".into() },
                                u.cert_identity.clone().unwrap_or_else(|| "-".into()),
                                u.token_limit.to_string(),
                            ]
                        })
                        .collect();
                    print_table(&["NAME", "ROLE", "PASSWORD", "CERTIFICATE", "TOKEN LIMIT"], &rows);
                }
            }
            UserCommand::Remove { name } => {
                let n = rampart_auth::accounts::remove_user(store.as_ref(), &name, now_secs()).await?;
                outln!("Removed user {name:?} and revoked {n} token{}", if n == 1 { "" } else { "s" });
            }
            UserCommand::Passwd { name, .. } => {
                let p = password.as_ref().map(|p| p.as_bytes()).unwrap_or_default();
                users::set_password(store.as_ref(), &name, p).await?;
                outln!("Password of {name:?} changed");
            }
        }
        Ok(())
    })?
}

/// A password from stdin's first line (`--password-stdin`) or a prompt on the terminal —
/// never from the command line, where other users and shell history would see it.
fn read_password(from_stdin: bool) -> Result<Zeroizing<String>> {
    if from_stdin {
        let mut line = Zeroizing::new(String::new());
        std::io::stdin().lock().read_line(&mut line).context("reading the password from stdin")?;
        let trimmed = Zeroizing::new(line.trim_end_matches(['\n', '\r']).to_owned());
        if trimmed.is_empty() {
            bail!("no password on stdin");
        }
        return Ok(trimmed);
    }
    if !std::io::stdin().is_terminal() {
        bail!(
            "no terminal to ask for a password on: pass --password-stdin and write it to stdin (or --no-password)"
        );
    }
    let first = Zeroizing::new(rpassword::prompt_password("Password: ").context("reading the password")?);
    let again = Zeroizing::new(rpassword::prompt_password("Again: ").context("reading the password")?);
    if first != again {
        bail!("the two passwords differ; nothing was changed");
    }
    Ok(first)
}

pub fn token(home: &Home, cmd: TokenCommand) -> Result<()> {
    let config = home.config()?;
    block_on(async {
        let store = home.open_store().await?;
        match cmd {
            TokenCommand::Issue { user, ttl, services } => {
                let ttl = ttl.map(|d| d.as_secs());
                let issued =
                    tokens::issue(store.as_ref(), &user, ttl, &services, config.tokens.policy(), now_secs())
                        .await?;
                eprintln!(
                    "Token {} for user {user:?}, valid until {}{}. It is shown once: store it now.",
                    issued.record.id,
                    fmt_unix(issued.record.expires),
                    if services.is_empty() {
                        String::new()
                    } else {
                        format!(", for {}", services.join(", "))
                    }
                );
                outln!("{}", issued.token.as_str());
            }
            TokenCommand::List { user, json } => {
                let now = now_secs();
                let list: Vec<_> = tokens::list(store.as_ref())
                    .await?
                    .into_iter()
                    .filter(|t| user.as_ref().is_none_or(|u| *u == t.user))
                    .collect();
                if json {
                    let out: Vec<_> = list
                        .iter()
                        .map(|t| {
                            serde_json::json!({"id": t.id, "user": t.user, "services": t.services,
                            "issued": t.issued, "expires": t.expires, "state": state(t, now)})
                        })
                        .collect();
                    outln!("{}", serde_json::to_string_pretty(&out)?);
                } else {
                    let rows: Vec<Vec<String>> = list
                        .iter()
                        .map(|t| {
                            vec![
                                t.id.clone(),
                                t.user.clone(),
                                if t.services.is_empty() { "*".into() } else { t.services.join(",") },
                                fmt_unix(t.expires),
                                state(t, now).into(),
                            ]
                        })
                        .collect();
                    print_table(&["ID", "USER", "SERVICES", "EXPIRES", "STATE"], &rows);
                }
            }
            TokenCommand::Revoke { id } => {
                let id = id
                    .strip_prefix("rpt_")
                    .map_or(id.as_str(), |rest| rest.split('_').next().unwrap_or(rest));
                let rec = tokens::revoke(store.as_ref(), id, now_secs()).await?;
                outln!("Revoked token {} of user {:?}", rec.id, rec.user);
            }
        }
        Ok(())
    })?
}

fn state(t: &rampart_auth::TokenRecord, now: u64) -> &'static str {
    match t.revoked {
        Some((_, tokens::RevokedBecause::UserRemoved)) => "user removed",
        Some(_) => "revoked",
        None if now >= t.expires => "expired",
        None => "live",
    }
}

pub fn policy(home: &Home, cmd: PolicyCommand) -> Result<()> {
    block_on(async {
        let store = home.open_store().await?;
        match cmd {
            PolicyCommand::Allow(args) => add(store.as_ref(), args, Effect::Allow).await?,
            PolicyCommand::Deny(args) => add(store.as_ref(), args, Effect::Deny).await?,
            PolicyCommand::List { json } => {
                let rules = policy::list(store.as_ref()).await?;
                if json {
                    outln!("{}", serde_json::to_string_pretty(&rules)?);
                } else if rules.is_empty() {
                    outln!("No rules: every service is reachable by admins only (default deny).");
                } else {
                    let rows: Vec<Vec<String>> = rules
                        .iter()
                        .map(|r| {
                            vec![
                                r.id.clone(),
                                format!("{:?}", r.effect).to_lowercase(),
                                r.service.to_string(),
                                r.principal.to_string(),
                                if r.methods.is_empty() { "*".into() } else { r.methods.join(",") },
                            ]
                        })
                        .collect();
                    print_table(&["ID", "EFFECT", "SERVICE", "PRINCIPAL", "METHODS"], &rows);
                }
            }
            PolicyCommand::Remove { id } => {
                policy::remove(store.as_ref(), &id).await?;
                outln!("Removed rule {id}");
            }
        }
        Ok(())
    })?
}

async fn add(store: &dyn Store, args: RuleArgs, effect: Effect) -> Result<()> {
    let rule = policy::add(store, &args.service, &args.principal, &args.methods, effect).await?;
    let methods = if rule.methods.is_empty() { "any method".to_owned() } else { rule.methods.join(", ") };
    let verb = if effect == Effect::Allow { "may" } else { "may not" };
    outln!("Rule {}: {} {verb} call {} ({methods})", rule.id, rule.principal, rule.service);
    Ok(())
}
