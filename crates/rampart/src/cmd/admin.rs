//! `rampart status`, `rampart events` and `rampart bans`: the running gateway's admin API,
//! with the home's admin certificate.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use http::Request;
use http_body_util::BodyExt;
use rampart_net::contract::{media, path};

use crate::cmd::{block_on, print_table};
use crate::home::Home;

async fn get(home: &Home, path: &str, accept: &str) -> Result<hyper::Response<hyper::body::Incoming>> {
    send(home, http::Method::GET, path, accept).await
}

async fn send(
    home: &Home,
    method: http::Method,
    path: &str,
    accept: &str,
) -> Result<hyper::Response<hyper::body::Incoming>> {
    let config = home.config()?;
    let url = format!("{}{path}", home.gateway_url(&config));
    let client = home.admin_client(&config)?;
    let req =
        Request::builder().method(method).uri(&url).header("accept", accept).body(rampart_net::full(""))?;
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .with_context(|| format!("{url}: no answer"))?
        .map_err(|e| anyhow::anyhow!("{e:#}"))
        .with_context(|| format!("no gateway answers at {url}; is `rampart gateway` running?"))?;
    if !resp.status().is_success() {
        let status = resp.status();
        let body = resp.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        bail!("{url}: {status} {}", String::from_utf8_lossy(&body));
    }
    Ok(resp)
}

pub(crate) async fn get_json(home: &Home, path: &str) -> Result<serde_json::Value> {
    let body = get(home, path, media::JSON).await?.into_body().collect().await?.to_bytes();
    Ok(serde_json::from_slice(&body)?)
}

pub fn status(home: &Home) -> Result<()> {
    block_on(async {
        let status = get_json(home, path::STATUS).await?;
        let bans = get_json(home, path::BANS).await?;
        outln!("trust domain {}", status["domain"].as_str().unwrap_or("?"));
        let nodes = status["nodes"].as_array().cloned().unwrap_or_default();
        if nodes.is_empty() {
            outln!("no live node");
        } else {
            let rows: Vec<Vec<String>> = nodes
                .iter()
                .map(|n| {
                    let services: Vec<&str> = n["services"]
                        .as_array()
                        .map(|a| a.iter().filter_map(|s| s.as_str()).collect())
                        .unwrap_or_default();
                    vec![
                        n["name"].as_str().unwrap_or("?").to_owned(),
                        n["addr"].as_str().unwrap_or("?").to_owned(),
                        services.join(", "),
                    ]
                })
                .collect();
            print_table(&["NODE", "ADDRESS", "SERVICES"], &rows);
        }
        for b in bans["bans"].as_array().cloned().unwrap_or_default() {
            outln!(
                "banned: {} for {} more s ({} failures)",
                b["source"].as_str().unwrap_or("?"),
                b["seconds_left"],
                b["failures"]
            );
        }
        Ok(())
    })?
}

/// `rampart bans list`.
pub fn bans_list(home: &Home, json: bool) -> Result<()> {
    block_on(async {
        let bans = get_json(home, path::BANS).await?;
        let list = bans["bans"].as_array().cloned().unwrap_or_default();
        if json {
            outln!("{}", serde_json::Value::Array(list));
            return Ok(());
        }
        if list.is_empty() {
            outln!("No source is banned.");
            return Ok(());
        }
        let rows: Vec<Vec<String>> = list
            .iter()
            .map(|b| {
                vec![
                    b["source"].as_str().unwrap_or("?").to_owned(),
                    format!("{} s", b["seconds_left"]),
                    b["failures"].to_string(),
                ]
            })
            .collect();
        print_table(&["SOURCE", "LEFT", "FAILURES"], &rows);
        Ok(())
    })?
}

/// `rampart bans lift SOURCE`: an address, or a banned network as `list` shows it.
pub fn bans_lift(home: &Home, source: &str) -> Result<()> {
    let address = source.split_once('/').map_or(source, |(a, _)| a);
    if address.parse::<std::net::IpAddr>().is_err() {
        bail!("{source:?} is not an IP address (or a network as `rampart bans list` shows it)");
    }
    block_on(async {
        send(home, http::Method::DELETE, &format!("{}/{address}", path::BANS), media::JSON)
            .await
            .with_context(|| format!("lifting the ban on {source}"))?;
        outln!("Lifted the ban on {source} (the network's other gateways lift it too).");
        Ok(())
    })?
}

fn print_event(e: &serde_json::Value, json: bool) {
    if json {
        outln!("{e}");
        return;
    }
    let s = |k: &str| e[k].as_str().unwrap_or("-").to_owned();
    outln!(
        "#{} {} {:<8} {:<22} source={} principal={} service={} {}",
        e["id"],
        s("time"),
        s("severity"),
        s("kind"),
        match (e["node"].as_str(), e["peer"].as_str()) {
            (Some(node), _) => node.to_owned(),
            (None, Some(peer)) => format!("{} via {peer}", s("source")),
            (None, None) => s("source"),
        },
        s("principal"),
        s("service"),
        s("reason")
    );
}

pub fn events(home: &Home, follow: bool, after: Option<u64>, json: bool) -> Result<()> {
    let path = match after {
        Some(a) => format!("{}?after={a}", path::EVENTS),
        None => path::EVENTS.to_owned(),
    };
    block_on(async {
        if !follow {
            let list = get_json(home, &path).await?;
            for e in list["events"].as_array().cloned().unwrap_or_default() {
                print_event(&e, json);
            }
            return Ok(());
        }
        let mut body = get(home, &path, "text/event-stream").await?.into_body();
        let mut buf = String::new();
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame?.into_data() else { continue };
            buf.push_str(&String::from_utf8_lossy(&data));
            while let Some(i) = buf.find("\n\n") {
                let chunk: String = buf.drain(..i + 2).collect();
                for line in chunk.lines().filter_map(|l| l.strip_prefix("data: ")) {
                    if let Ok(e) = serde_json::from_str::<serde_json::Value>(line) {
                        print_event(&e, json);
                    }
                }
            }
        }
        Ok(())
    })?
}
