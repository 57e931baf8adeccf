//! `rampart network`: the peer networks this one trusts, kept in the registry (`peers/`) by
//! `rampart_federation::peers`.

use anyhow::{Context, Result};
use rampart_federation::exports;
use rampart_federation::peers::{self, Peer};
use rampart_net::contract::path;

use crate::cli::NetworkCommand;
use crate::cmd::{block_on, now_secs, print_table};
use crate::home::Home;

/// Reads a bundle file, no more than a bundle may be plus one byte (so `--bundle /dev/zero`
/// is refused as too large, not read forever).
fn read_bounded(path: &std::path::Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut pem = Vec::new();
    file.take(rampart_pki::bundle::MAX_BYTES as u64 + 1)
        .read_to_end(&mut pem)
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(pem)
}

/// One peer of `network list` as a table row.
fn row(p: &serde_json::Value) -> Vec<String> {
    let list = |v: &serde_json::Value| {
        let names: Vec<&str> = v.as_array().into_iter().flatten().filter_map(|s| s.as_str()).collect();
        if names.is_empty() { "-".to_owned() } else { names.join(",") }
    };
    let urls: Vec<&str> = p["urls"].as_array().into_iter().flatten().filter_map(|s| s.as_str()).collect();
    let fingerprint = p["fingerprint"].as_str().unwrap_or("");
    let short = fingerprint.get(..19).map_or(fingerprint.to_owned(), |f| format!("{f}…"));
    let health = match p["up"].as_bool() {
        Some(true) => "up",
        Some(false) => "down",
        None => "unknown",
    };
    let age = p["catalog_age_ms"]
        .as_u64()
        .map_or("never".to_owned(), |ms| format!("{:.1}s ago", ms as f64 / 1000.0));
    vec![
        p["name"].as_str().unwrap_or("").to_owned(),
        urls.join(" "),
        short,
        health.into(),
        age,
        list(&p["imports"]),
        list(&p["exports"]),
    ]
}

pub fn run(home: &Home, cmd: NetworkCommand) -> Result<()> {
    let config = home.config()?;
    block_on(async {
        let store = home.open_store().await?;
        match cmd {
            NetworkCommand::Add { name, urls, bundle, fingerprint } => {
                let pem = read_bounded(&bundle)?;
                let peer = Peer::new(&config.domain, name, urls, &pem, fingerprint.as_deref(), now_secs())?;
                peers::add(store.as_ref(), &peer).await?;
                outln!(
                    "Trusting peer network {:?} at {} (CA bundle {})",
                    peer.domain.as_str(),
                    peer.urls.join(", "),
                    peer.fingerprint
                );
            }
            NetworkCommand::List { json } => {
                let list = peers::list(store.as_ref()).await?;
                // What the running gateway sees (health, catalogs), when one answers.
                let live = crate::cmd::admin::get_json(home, path::PEERS).await.ok();
                let live_of = |name: &str| {
                    live.as_ref()
                        .and_then(|v| v["peers"].as_array())
                        .and_then(|peers| peers.iter().find(|p| p["name"] == name))
                        .cloned()
                };
                let mut out = Vec::new();
                for p in &list {
                    let exported = exports::to(store.as_ref(), &p.domain).await?;
                    let seen = live_of(p.domain.as_str()).unwrap_or_default();
                    out.push(serde_json::json!({"name": p.domain.as_str(), "urls": p.urls,
                        "fingerprint": p.fingerprint, "added": p.added, "exports": exported,
                        "up": seen.get("up"), "catalog_age_ms": seen.get("catalog_age_ms"),
                        "imports": seen.get("imports")}));
                }
                if json {
                    outln!("{}", serde_json::to_string_pretty(&out)?);
                } else {
                    let rows: Vec<Vec<String>> = out.iter().map(row).collect();
                    print_table(
                        &["NAME", "GATEWAYS", "BUNDLE", "HEALTH", "CATALOG", "IMPORTS", "EXPORTS"],
                        &rows,
                    );
                    if live.is_none() && !list.is_empty() {
                        outln!("(health unknown: no gateway of this home answers)");
                    }
                }
            }
            NetworkCommand::Remove { name } => {
                peers::remove(store.as_ref(), &name).await?;
                exports::forget(store.as_ref(), &name).await?;
                outln!("No longer trusting peer network {:?}", name.as_str());
            }
            NetworkCommand::Export { service, peer } => {
                exports::export(store.as_ref(), &peer, &service).await?;
                outln!(
                    "Exported {:?} to {:?} (while a node here hosts it; policy still decides who: \
                     rampart policy allow --service {} --principal peer:{}/user/NAME)",
                    service.as_str(),
                    peer.as_str(),
                    service.as_str(),
                    peer.as_str()
                );
            }
            NetworkCommand::Unexport { service, peer } => {
                if exports::unexport(store.as_ref(), &peer, &service).await? {
                    outln!("{:?} is no longer exported to {:?}", service.as_str(), peer.as_str());
                } else {
                    outln!("{:?} was not exported to {:?}", service.as_str(), peer.as_str());
                }
            }
        }
        Ok(())
    })?
}
