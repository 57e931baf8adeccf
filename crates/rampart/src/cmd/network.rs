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

/// The peer's bundle from the first of its gateways that serves one (`GET /_rampart/bundle`),
/// at most a bundle's size. The channel is not verified: the caller pins what came by the
/// fingerprint the peer's operator gave (`Peer::new` refuses any other).
async fn fetch_bundle(urls: &[String]) -> Result<Vec<u8>> {
    use http_body_util::BodyExt;
    let tls = rampart_net::tls::unverified_client_config()?;
    let client = rampart_net::client::https_client(tls, std::time::Duration::from_secs(5));
    let mut why = Vec::new();
    for url in urls {
        let req = http::Request::get(format!("{url}{}", path::BUNDLE)).body(rampart_net::full(""))?;
        let answer = tokio::time::timeout(std::time::Duration::from_secs(10), client.request(req)).await;
        let resp = match answer {
            Ok(Ok(r)) if r.status().is_success() => r,
            Ok(Ok(r)) => {
                why.push(format!("{url}: {}", r.status()));
                continue;
            }
            Ok(Err(e)) => {
                why.push(format!("{url}: {e}"));
                continue;
            }
            Err(_) => {
                why.push(format!("{url}: no answer in 10 s"));
                continue;
            }
        };
        let limited = http_body_util::Limited::new(resp.into_body(), rampart_pki::bundle::MAX_BYTES + 1);
        match limited.collect().await {
            Ok(body) => return Ok(body.to_bytes().to_vec()),
            Err(e) => why.push(format!("{url}: {e}")),
        }
    }
    anyhow::bail!("no gateway of the peer served its CA bundle: {}", why.join("; "))
}

pub fn run(home: &Home, cmd: NetworkCommand) -> Result<()> {
    let config = home.config()?;
    block_on(async {
        let store = home.open_store().await?;
        match cmd {
            NetworkCommand::Add { name, urls, bundle, fingerprint } => {
                let pem = match &bundle {
                    Some(path) => read_bounded(path)?,
                    None => fetch_bundle(&urls).await?,
                };
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
