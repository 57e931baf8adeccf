//! `rampart network`: the peer networks this one trusts, kept in the registry (`peers/`) by
//! `rampart_federation::peers`.

use anyhow::{Context, Result};
use rampart_federation::exports;
use rampart_federation::peers::{self, Peer};

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
                if json {
                    let out: Vec<_> = list
                        .iter()
                        .map(|p| {
                            serde_json::json!({"name": p.domain.as_str(), "urls": p.urls,
                                "fingerprint": p.fingerprint, "added": p.added})
                        })
                        .collect();
                    outln!("{}", serde_json::to_string_pretty(&out)?);
                } else {
                    let rows: Vec<Vec<String>> = list
                        .iter()
                        .map(|p| vec![p.domain.to_string(), p.urls.join(" "), p.fingerprint.clone()])
                        .collect();
                    print_table(&["NAME", "GATEWAYS", "BUNDLE"], &rows);
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
