//! `rampart gateway` and `rampart node`: the long-running processes. Each prints one ready
//! line on stdout once it serves, logs to stderr, and stops cleanly on SIGTERM or Ctrl-C.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rampart_net::ClientAuth;
use rampart_node::Services;
use rampart_node::services::{BUILTINS, DEFAULTS};
use rampart_pki::{EntityName, Role};

use crate::cli::{GatewayArgs, NodeArgs};
use crate::home::Home;

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RAMPART_LOG").unwrap_or_else(|_| "info".into());
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The process's runtime, and its connection workers (`count`, else one per CPU) that serve
/// the connections it accepts.
fn runtime(name: &str, count: Option<u16>) -> Result<tokio::runtime::Runtime> {
    let count = count.map_or_else(rampart_net::workers::default_count, usize::from);
    let workers =
        rampart_net::workers::Workers::start(count, name).context("starting the connection workers")?;
    rampart_net::workers::install(workers);
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

/// Resolves on SIGTERM or SIGINT.
async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("stopping: finishing in-flight requests");
}

fn ready(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

pub fn gateway(home: &Home, args: GatewayArgs) -> Result<()> {
    init_logging();
    if args.name.is_empty()
        || args.name.len() > 64
        || !args.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        bail!("--name {:?}: use 1 to 64 letters, digits, '-', '_' or '.'", args.name);
    }
    let mut config = home.config()?;
    if let Some(l) = args.listen {
        config.gateway.listen = l;
    }
    if let Some(m) = args.client_cert {
        config.gateway.client_cert = m;
    }
    let mode: ClientAuth = config
        .gateway
        .client_cert
        .parse()
        .map_err(|e: String| anyhow::anyhow!("gateway.client_cert: {e}"))?;
    // Routes are checked before anything starts: an edge app off loopback stops here.
    let routes = rampart_gateway::routes::Routes::new(&config.routes)?;
    let sni = routes.has_passthrough();
    if !sni && let Some(l) = config.gateway.listeners.iter().find(|l| l.relay_only) {
        bail!(
            "the listener {} only relays passthrough routes (relay_only), and no route is passthrough",
            l.listen
        );
    }
    let material = home.material(&config, "gateway").context("loading the gateway certificate")?;
    // Peer networks' gateways are verified against their own bundles (kept current by the
    // gateway's federation as peers are added, removed or rotate their CAs).
    let peers = rampart_net::trust::TrustDomains::default();
    let (tls, crl_updates) = rampart_net::tls::front_door_config(&material, mode, &peers)?;
    let crl_path = home.pki().domain_dir(&config.domain).join("crl.pem");
    // Nodes are accepted by the identity registered at the address dialled, not by an address
    // in their certificate: a pod's address is not known when its certificate is issued.
    let addresses = rampart_net::tls::AddressBook::default();
    let client_tls = rampart_net::tls::bound_client_config(&material, Role::Node, addresses.clone())?;
    let material = Arc::new(material);
    runtime("gateway", args.workers)?.block_on(async move {
        let store = home.open_registry(&config).await?;
        let shared = matches!(config.store, crate::home::StoreConfig::Etcd(_));
        let listener = tokio::net::TcpListener::bind(config.gateway.listen)
            .await
            .with_context(|| format!("binding {}", config.gateway.listen))?;
        let addr = listener.local_addr()?;
        if let Some(updater) = crl_updates {
            tokio::spawn(rampart_net::tls::follow_crl(crl_path.clone(), updater, Duration::from_secs(1)));
        }
        let tls = Arc::new(tls);
        // With passthrough routes, every listener reads the name each client asks for first.
        let mut fronts = vec![match sni {
            true => {
                let own = rampart_net::tls::ByServerName::new(material.identity.clone(), Vec::new());
                rampart_gateway::Front::Sni(listener, tls.clone(), Some(own))
            }
            false => rampart_gateway::Front::Https(listener, tls.clone()),
        }];
        let mut also = Vec::new();
        for l in &config.gateway.listeners {
            let main = (material.as_ref(), mode, &peers, &tls);
            let (front, said) = extra_listener(home, l, main, (addr.port(), sni), &crl_path).await?;
            fronts.push(front);
            also.push(said);
        }
        let audit = match args.name.as_str() {
            "gateway" => "audit.jsonl".to_owned(),
            name => format!("audit-{name}.jsonl"),
        };
        let events = Arc::new(rampart_events::EventLog::open(&home.root().join(audit), &args.name)?);
        // HTTP/1.1 to nodes, a pool per connection worker: see `rampart_net::pool`.
        let connect_timeout = Duration::from_millis(config.gateway.connect_timeout_ms);
        let client = rampart_net::workers::PerWorker::new(|| {
            rampart_net::pool::Http1Pool::new(client_tls.clone(), connect_timeout)
        });
        let mut state = rampart_gateway::State::new(
            config.domain.clone(),
            store,
            (client, addresses),
            events,
            config.gateway.clone(),
        );
        state = state.with_routes(routes);
        if sni {
            let check = rampart_net::tls::relayed_certificates(&material)?;
            tokio::spawn(rampart_net::tls::follow_crl(crl_path.clone(), check.clone(), Duration::from_secs(1)));
            state = state.with_relayed_certificates(check);
        }
        state = state.with_bundle_file(home.pki().domain_dir(&config.domain).join("ca.pem"));
        // The certificate is read again when its files change; with the CA in this home, the
        // gateway also renews it by itself and signs nodes' renewals.
        let ca = home.pki().open(&config.domain).is_ok().then(|| home.pki());
        state = state.with_certificates(rampart_gateway::certs::Certificates::new(
            material.identity.clone(),
            EntityName::new("gateway")?,
            ca,
        ));
        match rampart_gateway::federation::Federation::new(
            config.domain.clone(),
            material.clone(),
            peers,
            &config.gateway,
        ) {
            Ok(federation) => state = state.with_federation(federation),
            Err(e) => tracing::warn!("no federation with peer networks: {e}"),
        }
        // Other gateways sharing this registry share events and bans with this one.
        let gateway = rampart_gateway::Gateway::start(state, shared);
        // Ready only once it routes as the other gateways do (a restart under load drops nothing).
        gateway.warm_up(Duration::from_secs(5)).await;
        note_expiries(gateway.metrics(), home, &config, &material);
        // Tell the CLI and local nodes where this gateway is (it may have picked its port).
        let url_file = home.gateway_url_path();
        rampart_pki::files::write_atomic(
            &url_file,
            format!("https://{addr}\n").as_bytes(),
            rampart_pki::files::PUBLIC,
        )?;
        let also = if also.is_empty() { String::new() } else { format!("; also {}", also.join(", ")) };
        ready(&format!(
            "rampart gateway listening on https://{addr} (trust domain {:?}, client certificates {mode}){also}",
            config.domain.as_str()
        ));
        gateway.serve_all(fronts, stop_signal()).await;
        // Another gateway of this home may have written its own address since.
        if std::fs::read_to_string(&url_file).is_ok_and(|u| u.trim() == format!("https://{addr}")) {
            let _ = std::fs::remove_file(url_file);
        }
        Ok(())
    })
}

/// The main listener's material, client certificate mode, peers and TLS config.
type MainListener<'a> = (
    &'a rampart_net::TlsMaterial,
    ClientAuth,
    &'a rampart_net::trust::TrustDomains,
    &'a Arc<rustls::ServerConfig>,
);

/// One more front listener of `[[gateway.listeners]]`, bound, and how the ready line names it:
/// a redirecting one to the main listener's `https_port`, one that only relays passthrough
/// routes, or TLS with its own client certificate mode and certificates (each followed on
/// disk, chosen by SNI) — reading each client's server name first when `sni` (some route is
/// passthrough).
async fn extra_listener(
    home: &Home,
    l: &rampart_gateway::config::ListenerConfig,
    (material, main_mode, peers, main_tls): MainListener<'_>,
    (https_port, sni): (u16, bool),
    crl_path: &std::path::Path,
) -> Result<(rampart_gateway::Front, String)> {
    let listener = tokio::net::TcpListener::bind(l.listen)
        .await
        .with_context(|| format!("binding the listener {}", l.listen))?;
    let addr = listener.local_addr()?;
    if l.insecure.is_some() {
        return Ok((
            rampart_gateway::Front::Redirect(listener, https_port),
            format!("http://{addr} (redirects to https)"),
        ));
    }
    if l.relay_only {
        // Its TLS config is never used: it ends no TLS.
        return Ok((
            rampart_gateway::Front::Sni(listener, main_tls.clone(), None),
            format!("https://{addr} (relays passthrough routes only)"),
        ));
    }
    let mode = match &l.client_cert {
        Some(m) => m.parse().map_err(|e: String| anyhow::anyhow!("gateway.listeners ({}): {e}", l.listen))?,
        None => main_mode,
    };
    let mut identities = Vec::new();
    for files in &l.certificates {
        let (cert, key) = (home.root().join(&files.cert), home.root().join(&files.key));
        let identity = rampart_net::tls::LiveIdentity::load(&cert, &key)
            .with_context(|| format!("the certificate of the listener {}", l.listen))?;
        tokio::spawn(identity.clone().follow(Duration::from_secs(1), |_| {}));
        identities.push(identity);
    }
    let mut identities = identities.into_iter();
    let first = identities.next().unwrap_or_else(|| material.identity.clone());
    let others: Vec<_> = identities.collect();
    let certs = rampart_net::tls::ByServerName::new(first.clone(), others.clone());
    let (tls, crl_updates) = rampart_net::tls::front_door_config_with(material, mode, peers, certs)?;
    if let Some(updater) = crl_updates {
        tokio::spawn(rampart_net::tls::follow_crl(crl_path.to_owned(), updater, Duration::from_secs(1)));
    }
    let front = match sni {
        true => {
            let own = rampart_net::tls::ByServerName::new(first, others);
            rampart_gateway::Front::Sni(listener, Arc::new(tls), Some(own))
        }
        false => rampart_gateway::Front::Https(listener, Arc::new(tls)),
    };
    Ok((front, format!("https://{addr} (client certificates {mode})")))
}

/// When the gateway's certificate and the CA's expire, for the metrics.
fn note_expiries(
    metrics: &rampart_gateway::metrics::Metrics,
    home: &Home,
    config: &crate::home::Config,
    material: &rampart_net::TlsMaterial,
) {
    metrics.certificate_expires("gateway", material.identity.leaf().as_ref());
    if let Ok(ca) = home.pki().open(&config.domain) {
        metrics.expires("ca", ca.ca_cert().not_after.unix_timestamp());
    }
}

/// The node's certificate, issued here on first run when this home holds the CA.
fn node_material(home: &Home, config: &crate::home::Config, name: &str) -> Result<rampart_net::TlsMaterial> {
    let entity = EntityName::new(name)?;
    if let Some(issued) = home.pki().ensure_issued(&config.domain, Role::Node, &entity)? {
        eprintln!("Issued {} for this node ({})", issued.record.identity, issued.cert_path.display());
    }
    home.material(config, name)
}

/// The apps of `--upstream`, and the names of the built-ins to host (`--service`; all of them
/// when neither is given), checked.
fn services_of(args: &NodeArgs) -> Result<(Services, Vec<String>)> {
    let mut services = Services::new();
    for spec in &args.upstreams {
        let (name, app) = rampart_node::upstream::App::parse(spec)?;
        services.insert(name, Arc::new(app));
    }
    let mut builtins = args.services.clone();
    if builtins.is_empty() && services.is_empty() && args.services_dir.is_none() {
        builtins = DEFAULTS.iter().map(|s| (*s).to_owned()).collect();
    }
    builtins.retain(|s| !services.contains_key(s));
    if let Some(s) = builtins.iter().find(|s| !BUILTINS.contains(&s.as_str())) {
        bail!(
            "--service {s:?} is not built in (hello, echo, data, jobs); host an app with --upstream {s}=http://127.0.0.1:PORT"
        );
    }
    Ok((services, builtins))
}

/// How the node's programs are started: through this binary's `run-program`, with resource
/// limits, `no_new_privs`, and `--run-as`'s user — required when the node runs as root.
fn sandbox_of(args: &NodeArgs) -> Result<rampart_node::program::Sandbox> {
    let run_as = args.run_as.as_deref().map(user_ids).transpose()?;
    if run_as.is_none() && rustix::process::getuid().is_root() {
        bail!(
            "this node runs as root: its programs would too. Pass --run-as USER (an unprivileged user, such as nobody)"
        );
    }
    if run_as.is_some_and(|(uid, _)| uid == 0) {
        bail!("--run-as: programs must not run as root");
    }
    Ok(rampart_node::program::Sandbox {
        launcher: std::env::current_exe().context("finding this binary")?,
        run_as,
        max_files: 256,
        max_file_bytes: 64 << 20,
        max_procs: 256,
    })
}

/// Each program's limits: the `--program-*` flags, and `[node.programs.<service>]` where
/// rampart.toml gives a service its own.
fn program_limits(
    args: &NodeArgs,
    node: &crate::home::NodeConfig,
) -> Result<rampart_node::program::LimitsBook> {
    let defaults = rampart_node::program::Limits {
        timeout: args.program_timeout,
        max_output: args.program_max_output,
        max_body: args.program_max_body,
        max_runs: args.program_max_runs,
    };
    if defaults.timeout.is_zero() || defaults.max_output == 0 || defaults.max_runs == 0 {
        bail!("--program-timeout, --program-max-output and --program-max-runs must be more than 0");
    }
    rampart_node::program::LimitsBook::new(defaults, &node.programs)
        .map_err(|e| anyhow::anyhow!("rampart.toml [node.programs]: {e}"))
}

/// A user's (uid, gid): `UID:GID`, or a name looked up in /etc/passwd.
fn user_ids(user: &str) -> Result<(u32, u32)> {
    if let Some((u, g)) = user.split_once(':')
        && let (Ok(u), Ok(g)) = (u.parse(), g.parse())
    {
        return Ok((u, g));
    }
    let passwd = std::fs::read_to_string("/etc/passwd").context("reading /etc/passwd")?;
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 3 && f[0] == user)
        .and_then(|f| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
        .with_context(|| format!("--run-as {user:?}: no such user in /etc/passwd (or give UID:GID)"))
}

/// Who may relay to the public listener (and send the PROXY protocol header): `--relays-from`,
/// else every address the gateways' hosts resolve to.
async fn relays_from(
    gateways: &rampart_net::gateways::Gateways,
    given: &[ipnet::IpNet],
) -> Result<rampart_net::proxy_header::ProxyProtocol> {
    let mut nets = given.to_vec();
    if nets.is_empty() {
        for url in gateways.urls() {
            let uri: http::Uri = url.parse().with_context(|| format!("--gateway {url:?}"))?;
            let (host, port) = (uri.host().unwrap_or_default(), uri.port_u16().unwrap_or(443));
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let addrs = tokio::net::lookup_host((host, port))
                .await
                .with_context(|| format!("resolving the gateway {url} (or give --relays-from)"))?;
            nets.extend(addrs.map(|a| ipnet::IpNet::from(a.ip().to_canonical())));
        }
    }
    Ok(rampart_net::proxy_header::ProxyProtocol::new(nets))
}

/// The gateways a node registers with: `--gateway`, or the home's.
fn gateways_of(
    home: &Home,
    config: &crate::home::Config,
    args: &NodeArgs,
) -> Result<rampart_net::gateways::Gateways> {
    let mut urls = args.gateway.clone();
    if urls.is_empty() {
        urls.push(home.gateway_url(config));
    }
    if let Some(u) = urls.iter().find(|u| !u.starts_with("https://")) {
        bail!("--gateway {u:?}: expected https://HOST:PORT");
    }
    Ok(rampart_net::gateways::Gateways::new(&urls))
}

pub fn node(home: &Home, mut args: NodeArgs) -> Result<()> {
    init_logging();
    let config = home.config()?;
    // rampart.toml's [node] where no flag says otherwise.
    if args.services_dir.is_none() {
        args.services_dir = config.node.services_dir.as_ref().map(|d| home.root().join(d));
    }
    // Resolved, so that the programs' user need not pass through the home (private) on the way.
    if let Some(dir) = &args.services_dir {
        let resolved = std::fs::canonicalize(dir);
        args.services_dir = Some(resolved.with_context(|| format!("--services-dir {}", dir.display()))?);
    }
    if args.run_as.is_none() {
        args.run_as.clone_from(&config.node.run_as);
    }
    let (mut services, builtins) = services_of(&args)?;
    // Checked before anything is issued or started: a root node without --run-as stops here.
    let sandbox = args.services_dir.as_ref().map(|_| sandbox_of(&args)).transpose()?;
    let limits = program_limits(&args, &config.node)?;
    let material = node_material(home, &config, &args.name)?;
    let (tls, crl_updates) = rampart_net::tls::server_config_with_crl_updates(
        &material,
        ClientAuth::Required,
        Some(&[Role::Gateway]),
    )?;
    let crl_path = home.pki().domain_dir(&config.domain).join("crl.pem");
    // Passthrough routes' client TLS ends here with this node's certificate: any role of this
    // domain (users, admins) may present one; the gateway admits the caller.
    let public_mode: ClientAuth =
        args.public_client_cert.parse().map_err(|e: String| anyhow::anyhow!("--public-client-cert: {e}"))?;
    let public_tls = args
        .public_listen
        .map(|_| rampart_net::tls::server_config_with_crl_updates(&material, public_mode, None))
        .transpose()?;
    let client_tls = material.client_config(&[Role::Gateway])?;
    let renewal_tls = client_tls.clone();
    let envelopes = match rampart_crypto::file::load(&home.keyring_path()) {
        Ok(k) => Some(rampart_node::envelope::Envelopes::new(k, args.payload_ttl)),
        Err(rampart_crypto::CryptoError::NoKeyring(_)) => {
            eprintln!("note: no payload keyring in this home; encrypted requests will be refused");
            None
        }
        Err(e) => return Err(e.into()),
    };
    let gateways = Arc::new(gateways_of(home, &config, &args)?);
    let name = args.name.clone();
    runtime("node", args.workers)?.block_on(async move {
        for updater in crl_updates.into_iter().chain(public_tls.as_ref().and_then(|(_, u)| u.clone())) {
            tokio::spawn(rampart_net::tls::follow_crl(crl_path.clone(), updater, Duration::from_secs(1)));
        }
        let client = rampart_net::client::https_client(client_tls, Duration::from_secs(2));
        let store: Arc<dyn rampart_store::Store> =
            Arc::new(rampart_net::remote_store::RemoteStore::with_gateways(client.clone(), gateways.clone()));
        let mut jobs = None;
        for name in builtins {
            if name == "jobs" {
                let service = Arc::new(rampart_node::jobs::JobsService::new(rampart_jobs::Jobs::new(
                    store.clone(),
                    rampart_jobs::Limits::default(),
                )));
                jobs = Some(service.clone());
                services.insert(name, service);
            } else if let Some(service) = rampart_node::services::builtin(&name, &store) {
                services.insert(name, service);
            }
        }
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("binding {}", args.listen))?;
        let addr = listener.local_addr()?;
        let public = match (args.public_listen, public_tls) {
            (Some(at), Some((tls, _))) => {
                let listener = tokio::net::TcpListener::bind(at)
                    .await
                    .with_context(|| format!("binding the public listener {at}"))?;
                let from = relays_from(&gateways, &args.relays_from).await?;
                Some((listener, tls, from))
            }
            _ => None,
        };
        let public_addr = public.as_ref().map(|(l, _, _)| l.local_addr()).transpose()?;
        let mut node = rampart_node::Node::new(name.clone(), services, envelopes);
        let mut membership =
            rampart_node::registration::Membership::new(client, gateways.clone(), addr, node.services());
        if let Some(at) = public_addr {
            membership = membership.with_public(at);
        }
        let membership = Arc::new(membership);
        node.reporter = Some(membership.clone());
        if let Some(jobs) = &jobs {
            jobs.work(membership.clone(), name.clone(), args.job_retention);
        }
        // The certificate: read again when its files change, renewed at two thirds of its life.
        tokio::spawn(rampart_node::renewal::maintain(
            EntityName::new(&name)?,
            material.identity.clone(),
            membership.clone(),
            renewal_tls,
        ));
        let base = node.hosted();
        if let Some(addr) = args.health_listen {
            let health = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding the health listener {addr}"))?;
            tokio::spawn(rampart_node::health::serve(health, membership.registered()));
        }
        let node = Arc::new(node);
        if let Some(dir) = args.services_dir.clone() {
            if !dir.is_dir() {
                bail!("--services-dir {}: not a folder", dir.display());
            }
            let failures: Arc<dyn rampart_node::program::Failures> = membership.clone();
            tokio::spawn(rampart_node::program::folder::follow(
                dir,
                node.clone(),
                base,
                (limits, sandbox.clone()),
                Some(failures),
                Duration::from_secs(1), // the safety net: the folder is watched
            ));
        }
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        if let Some((listener, tls, from)) = public {
            let mut stopped = stop_rx.clone();
            let stopped = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            let presented = (tls, material.identity.clone());
            tokio::spawn(rampart_node::public::serve(node.clone(), listener, presented, from, stopped));
        }
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let keeper = tokio::spawn(membership.maintain(stop_rx, Some(ready_tx)));
        let services = node.services().join(", ");
        let public = public_addr
            .map(|at| format!("; passthrough routes on https://{at} (client certificates {public_mode})"))
            .unwrap_or_default();
        tokio::spawn(async move {
            if ready_rx.await.is_ok() {
                ready(&format!(
                    "rampart node {name} listening on https://{addr}, registered with {} ({services}){public}",
                    gateways.current()
                ));
            }
        });
        // On SIGTERM: deregister first (the gateway stops sending), then drain and exit.
        let shutdown = async move {
            stop_signal().await;
            let _ = stop_tx.send(true);
            let _ = keeper.await;
        };
        rampart_node::run(node, listener, tls, shutdown).await;
        Ok(())
    })
}
