//! Routes: where TLS ends for each service (`[routes.<service>]` in `rampart.toml`).
//!
//! - `reencrypt` (the default): TLS ends at the gateway, which opens mutual TLS to a node whose
//!   certificate carries the identity the registry holds for it (today's path, `upstream/nodes`);
//! - `edge`: TLS ends at the gateway, which sends plain HTTP to an app on **loopback** (`edge`):
//!   anything else would put the caller's request and identity on a network in clear;
//! - `passthrough`: the client's TLS goes through untouched, by the name it asks for (SNI), to
//!   a node holding the route's names (`relays`); the node ends it, and asks the gateway to
//!   authenticate the caller and apply admission and policy (`admit`).
//!
//! A route's service is admitted, authenticated and policed by the gateway whatever its mode.

pub mod admit;
pub mod edge;
pub mod names;
pub mod relays;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// How TLS ends for a route.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// At the gateway, and again from the gateway to a node (mutual TLS).
    #[default]
    Reencrypt,
    /// At the gateway; plain HTTP to an app on loopback.
    Edge,
    /// At the node: the gateway relays the client's TLS by its SNI.
    Passthrough,
}

/// `[routes.<service>]` as written.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// How TLS ends.
    #[serde(default)]
    pub mode: Mode,
    /// `edge`: the app's address, `http://127.0.0.1:PORT` (or `[::1]`, `localhost`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// `passthrough`: the server names (SNI) the route answers for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sni: Vec<String>,
}

/// Why the routes of a file cannot be served.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RouteError {
    /// Not a service name.
    #[error("[routes.{0}]: not a service name (letters, digits, '-', '_', '.')")]
    BadName(String),
    /// An edge route without its app.
    #[error(
        "[routes.{0}]: an edge route needs upstream = \"http://127.0.0.1:PORT\" (the app it sends plain HTTP to)"
    )]
    NoUpstream(String),
    /// An upstream that is not `http://HOST:PORT`.
    #[error("[routes.{route}]: upstream {upstream:?} is not http://HOST:PORT")]
    BadUpstream {
        /// The route.
        route: String,
        /// What it said.
        upstream: String,
    },
    /// An edge upstream off this machine.
    #[error(
        "[routes.{route}]: upstream {upstream:?} is not on loopback. An edge route sends the request and the caller's \
         identity in plain HTTP, which only stays on this machine over loopback (127.0.0.1, ::1). For an app on \
         another machine, run a node beside it and keep the route reencrypt (the default)"
    )]
    NotLoopback {
        /// The route.
        route: String,
        /// What it said.
        upstream: String,
    },
    /// Settings of another mode.
    #[error("[routes.{route}]: {setting} is for {mode} routes, and this one is {actual:?}")]
    OtherMode {
        /// The route.
        route: String,
        /// The setting.
        setting: &'static str,
        /// The mode it belongs to.
        mode: &'static str,
        /// The route's mode.
        actual: Mode,
    },
    /// A passthrough route without a name to be reached by.
    #[error(
        "[routes.{0}]: a passthrough route needs sni = [\"NAME\", …], the server names clients reach it by (its nodes' certificates carry them: rampart pki issue --role node --name N --dns NAME)"
    )]
    NoNames(String),
    /// A server name that is not a DNS name.
    #[error("[routes.{route}]: sni {name:?} {why}")]
    BadServerName {
        /// The route.
        route: String,
        /// The name.
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A server name of two routes.
    #[error("[routes.{route}]: sni {name:?} is also a name of [routes.{other}]; a name reaches one route")]
    NameTaken {
        /// The route.
        route: String,
        /// The name.
        name: String,
        /// The route that has it too.
        other: String,
    },
}

/// The routes a gateway serves, checked.
#[derive(Debug, Default)]
pub struct Routes {
    edge: HashMap<String, edge::EdgeRoute>,
    /// Passthrough routes: service → its server names (lower case).
    passthrough: BTreeMap<String, Vec<String>>,
    /// Every passthrough server name → its service.
    by_name: HashMap<String, String>,
    /// The plain-HTTP client to edge routes' apps (when there are any).
    client: Option<rampart_net::client::HttpClient>,
}

impl Routes {
    /// The routes of `config`, each checked; the first that cannot be served is the error.
    pub fn new(config: &BTreeMap<String, RouteConfig>) -> Result<Self, RouteError> {
        let (mut edge, mut passthrough, mut by_name) = (HashMap::new(), BTreeMap::new(), HashMap::new());
        for (name, route) in config {
            if rampart_auth::ServiceName::parse(name).is_err() {
                return Err(RouteError::BadName(name.clone()));
            }
            let other = |setting, mode| RouteError::OtherMode {
                route: name.clone(),
                setting,
                mode,
                actual: route.mode,
            };
            match route.mode {
                Mode::Reencrypt => {
                    if route.upstream.is_some() {
                        return Err(other("upstream", "edge"));
                    }
                    if !route.sni.is_empty() {
                        return Err(other("sni", "passthrough"));
                    }
                }
                Mode::Edge => {
                    if !route.sni.is_empty() {
                        return Err(other("sni", "passthrough"));
                    }
                    let upstream =
                        route.upstream.as_deref().ok_or_else(|| RouteError::NoUpstream(name.clone()))?;
                    edge.insert(name.clone(), edge::EdgeRoute::new(name, loopback(name, upstream)?));
                }
                Mode::Passthrough => {
                    if route.upstream.is_some() {
                        return Err(other("upstream", "edge"));
                    }
                    let names = names::checked(name, &route.sni, &by_name)?;
                    by_name.extend(names.iter().map(|n| (n.clone(), name.clone())));
                    passthrough.insert(name.clone(), names);
                }
            }
        }
        let client =
            (!edge.is_empty()).then(|| rampart_net::client::http_client(std::time::Duration::from_secs(1)));
        Ok(Routes { edge, passthrough, by_name, client })
    }

    /// Whether any route is passthrough (then the front listeners read each ClientHello's
    /// server name before anything else).
    pub fn has_passthrough(&self) -> bool {
        !self.passthrough.is_empty()
    }

    /// The service of the passthrough route that answers for `server_name` (in any case).
    pub(crate) fn passthrough_service(&self, server_name: &str) -> Option<&str> {
        let name = server_name.to_ascii_lowercase();
        self.by_name.get(name.trim_end_matches('.')).map(String::as_str)
    }

    /// The server names of `service`'s passthrough route, if it is one.
    pub(crate) fn passthrough_names(&self, service: &str) -> Option<&[String]> {
        self.passthrough.get(service).map(Vec::as_slice)
    }

    /// The passthrough routes among `services`: what a node hosting them is told.
    pub(crate) fn passthrough_of_services(&self, services: &[String]) -> BTreeMap<String, Vec<String>> {
        services.iter().filter_map(|s| Some((s.clone(), self.passthrough.get(s)?.clone()))).collect()
    }

    /// The edge route of `service` and the client to its app, if it has one.
    pub(crate) fn edge(&self, service: &str) -> Option<(&edge::EdgeRoute, &rampart_net::client::HttpClient)> {
        Some((self.edge.get(service)?, self.client.as_ref()?))
    }

    /// Whether `service` is served by an edge route (an app of its own, not nodes).
    pub(crate) fn knows(&self, service: &str) -> bool {
        self.edge.contains_key(service)
    }
}

/// The address of `upstream` (`http://HOST:PORT`), refused unless it is on loopback.
fn loopback(route: &str, upstream: &str) -> Result<SocketAddr, RouteError> {
    let bad = || RouteError::BadUpstream { route: route.to_owned(), upstream: upstream.to_owned() };
    let authority = upstream.strip_prefix("http://").ok_or_else(bad)?.trim_end_matches('/');
    if authority.contains('/') || authority.contains('@') {
        return Err(bad());
    }
    let addr: SocketAddr = match authority.strip_prefix("localhost:") {
        Some(port) => SocketAddr::from(([127, 0, 0, 1], port.parse().map_err(|_| bad())?)),
        None => authority.parse().map_err(|_| match authority.rsplit_once(':') {
            // A name: it may resolve anywhere, so it is not loopback for sure.
            Some((host, port)) if port.parse::<u16>().is_ok() && !host.is_empty() => {
                RouteError::NotLoopback { route: route.to_owned(), upstream: upstream.to_owned() }
            }
            _ => bad(),
        })?,
    };
    if !addr.ip().is_loopback() {
        return Err(RouteError::NotLoopback { route: route.to_owned(), upstream: upstream.to_owned() });
    }
    if addr.port() == 0 {
        return Err(bad());
    }
    Ok(addr)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn routes(text: &str) -> Result<Routes, RouteError> {
        let config: BTreeMap<String, RouteConfig> = toml::from_str(text).unwrap();
        Routes::new(&config)
    }

    #[test]
    fn edge_upstreams_must_be_on_loopback_and_settings_fit_their_mode() {
        let ok = routes("[legacy]\nmode = \"edge\"\nupstream = \"http://127.0.0.1:9000\"\n[v6]\nmode = \"edge\"\nupstream = \"http://[::1]:9001/\"\n[hello]\n").unwrap();
        assert!(ok.knows("legacy") && ok.knows("v6") && !ok.knows("hello"));
        for far in
            ["http://10.0.0.5:80", "http://0.0.0.0:80", "http://example.com:80", "http://[2001:db8::1]:80"]
        {
            let e = routes(&format!("[legacy]\nmode = \"edge\"\nupstream = \"{far}\"")).unwrap_err();
            assert!(matches!(e, RouteError::NotLoopback { .. }), "{far}: {e}");
            assert!(e.to_string().contains("[routes.legacy]") && e.to_string().contains("loopback"), "{e}");
        }
        for bad in [
            "https://127.0.0.1:9000",
            "127.0.0.1:9000",
            "http://127.0.0.1",
            "http://127.0.0.1:0",
            "http://u@127.0.0.1:1/x",
        ] {
            let e = routes(&format!("[legacy]\nmode = \"edge\"\nupstream = \"{bad}\"")).unwrap_err();
            assert!(matches!(e, RouteError::BadUpstream { .. }), "{bad}: {e}");
        }
        assert_eq!(routes("[legacy]\nmode = \"edge\"").unwrap_err(), RouteError::NoUpstream("legacy".into()));
        let e = routes("[hello]\nupstream = \"http://127.0.0.1:9000\"").unwrap_err();
        assert!(matches!(e, RouteError::OtherMode { setting: "upstream", .. }), "{e}");
        assert!(matches!(routes("[\"bad name\"]\n").unwrap_err(), RouteError::BadName(_)));
        assert!(matches!(routes("[p]\nmode = \"passthrough\"").unwrap_err(), RouteError::NoNames(_)));
        assert!(toml::from_str::<BTreeMap<String, RouteConfig>>("[x]\nmode = \"tunnel\"").is_err());
    }
}
