//! The command line (DESIGN.md "Command line" is the contract for names and flags): the
//! top-level commands and the running processes' arguments here; identity and access in
//! `access`, certificates and `init` in `pki`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use rampart_auth::ServiceName;
use rampart_pki::{EntityName, TrustDomain};

mod access;
mod pki;

pub use access::{PolicyCommand, RuleArgs, TokenCommand, UserCommand};
pub use pki::{Holder, InitArgs, IssueArgs, PkiCommand, SignArgs};

/// rampart: a secure, fault-tolerant network of services in one binary.
///
/// Start with `rampart init`, which creates a network home with its certificate authority,
/// a gateway certificate and an admin certificate.
#[derive(Debug, Parser)]
#[command(name = "rampart", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    /// The network's home directory [default: $RAMPART_HOME, else ./rampart-home]
    #[arg(long, global = true, env = "RAMPART_HOME", value_name = "DIR")]
    pub home: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a network home: the trust domain's CA, a gateway and an admin certificate.
    Init(InitArgs),
    /// Certificate authorities and certificates: issue, list, inspect, revoke, renew.
    #[command(subcommand)]
    Pki(PkiCommand),
    /// The payload keyring (keys/payload.keys): Fernet keys shared with services and clients.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Users: names, passwords (argon2id), admin rights.
    #[command(subcommand)]
    User(UserCommand),
    /// API tokens: issue (shown once), list, revoke.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Who may call which service: allow and deny rules over default deny.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Run the gateway of this home: the front door, routing to nodes over mutual TLS.
    Gateway(GatewayArgs),
    /// Run a node: host services behind a gateway.
    Node(NodeArgs),
    /// Call a service through a gateway (curl for rampart: certificates, tokens, envelopes).
    Call(CallArgs),
    /// Distributed histogram jobs (nodes hosting `--service jobs`): submit, status, result.
    #[command(subcommand)]
    Job(JobCommand),
    /// A whole network on this machine under load, with a node killed and restarted.
    Demo(DemoArgs),
    /// How a node starts one of its programs (not for people): sets the resource limits,
    /// no_new_privs and the user, then becomes the program.
    #[command(hide = true)]
    RunProgram(RunProgramArgs),
    /// Deploying to Kubernetes: Secrets made from this home, and the home a pod unpacks.
    #[command(subcommand)]
    Deploy(DeployCommand),
    /// The running gateway's view: nodes, services, bans.
    Status,
    /// Sources the running gateway has banned for failing authentication: list, lift.
    #[command(subcommand)]
    Bans(BansCommand),
    /// Peer networks whose services may answer through this one: add, list, remove.
    #[command(subcommand)]
    Network(NetworkCommand),
    /// Security events from the running gateway's audit log.
    Events {
        /// Keep following new events as they happen.
        #[arg(long, short = 'f')]
        follow: bool,
        /// Only events after this id.
        #[arg(long, value_name = "ID")]
        after: Option<u64>,
        /// Print JSON lines instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// `rampart job …`.
#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// Submit a file (a PNG, a JPEG, or any bytes) for its histogram; prints the job's id.
    Submit {
        /// The file.
        file: PathBuf,
        /// Wait for the job to finish (a progress bar on a terminal), then print its result.
        #[arg(long)]
        wait: bool,
        /// Split it into this many tasks (1 to 1024) [default: about 16 megapixels, or a
        /// mebibyte of bytes, each].
        #[arg(long, value_name = "N")]
        tasks: Option<u32>,
        #[command(flatten)]
        via: JobVia,
    },
    /// A job's state and progress.
    Status {
        /// The job's id.
        id: String,
        /// Print the JSON the service answered.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        via: JobVia,
    },
    /// A job's histogram: a bar per channel, or the JSON (an error while it is not done).
    Result {
        /// The job's id.
        id: String,
        /// Print the JSON the service answered.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        via: JobVia,
    },
}

/// How `rampart job` reaches the jobs service.
#[derive(Debug, Args)]
pub struct JobVia {
    /// The gateway, https://HOST:PORT [default: this home's].
    #[arg(long, value_name = "URL")]
    pub gateway: Option<String>,
    #[command(flatten)]
    pub credentials: Credentials,
}

/// Who a client is, and whom it trusts: `rampart call` and `rampart job`.
#[derive(Clone, Debug, Args)]
pub struct Credentials {
    /// Authenticate with this token instead of a certificate ($RAMPART_TOKEN).
    #[arg(long, env = "RAMPART_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Client certificate [default: the home's admin certificate, unless --token is given].
    #[arg(long, value_name = "FILE", requires = "key")]
    pub cert: Option<PathBuf>,
    /// Its private key.
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,
    /// CA to verify the gateway with [default: the home's CA].
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
}

/// `rampart bans …`.
#[derive(Debug, Subcommand)]
pub enum BansCommand {
    /// The bans in force: source (an address, or an IPv6 network), time left, failures.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Lift a ban now, on every gateway of the network.
    Lift {
        /// The banned address (or network, as `list` shows it).
        source: String,
    },
}

/// `rampart network …`.
#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Trust a peer network: its trust domain, its gateways, and the CA bundle that verifies
    /// its identities (kept apart from every other domain's). One-way: the peer adds this
    /// network for the other direction.
    Add {
        /// The peer's trust domain (its identities are spiffe://NAME/…).
        name: TrustDomain,
        /// A gateway of the peer, https://HOST:PORT (repeatable: tried in turn).
        #[arg(long = "url", value_name = "URL", required = true)]
        urls: Vec<String>,
        /// The peer's CA bundle (PEM), as `rampart pki bundle` wrote it on the peer.
        #[arg(long, value_name = "FILE", required_unless_present = "fingerprint")]
        bundle: Option<PathBuf>,
        /// The fingerprint the peer's operator gave (sha256:…): the bundle must match it.
        /// Without --bundle, the bundle is fetched once from the peer's GET /_rampart/bundle
        /// (over TLS that cannot be verified yet) and kept only if it has this fingerprint.
        #[arg(long, value_name = "SHA256")]
        fingerprint: Option<String>,
    },
    /// The peers, with their gateways and bundle fingerprints.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Stop trusting a peer (and forget what was exported to it).
    Remove {
        /// The peer's trust domain.
        name: TrustDomain,
    },
    /// Let a peer network call a service of this network. Nothing is exported by default, and
    /// only what a node here hosts is offered: a service imported from a peer is never
    /// exported on. The peer's own policy is not ours: ours still decides who it serves
    /// (`rampart policy allow --service SERVICE --principal peer:PEER/user/NAME`).
    Export {
        /// The service.
        service: ServiceName,
        /// The peer's trust domain.
        #[arg(long = "to", value_name = "PEER")]
        peer: TrustDomain,
    },
    /// Stop letting a peer network call a service.
    Unexport {
        /// The service.
        service: ServiceName,
        /// The peer's trust domain.
        #[arg(long = "to", value_name = "PEER")]
        peer: TrustDomain,
    },
}

/// `rampart deploy …`.
#[derive(Debug, Subcommand)]
pub enum DeployCommand {
    /// Print Kubernetes manifests made from this home: a kubernetes.io/tls Secret per issued
    /// certificate (tls.crt, tls.key, ca.crt), the payload keyring and the admin token as
    /// Secrets, and the ConfigMap rampart-config (the pods' rampart.toml, the CRL: nothing
    /// private). Apply them with `kubectl apply -f -`; never commit them.
    #[command(name = "k8s-secrets")]
    K8sSecrets(K8sSecretsArgs),
    /// Lay out a home from mounted Secrets and ConfigMaps (a pod's init container does, with
    /// each file's owner and mode right, which Secret volumes cannot give).
    Unpack(UnpackArgs),
}

/// `rampart deploy k8s-secrets`.
#[derive(Debug, Args)]
pub struct K8sSecretsArgs {
    /// The namespace of every object (deploy/k8s uses rampart).
    #[arg(long, default_value = "rampart", value_name = "NS")]
    pub namespace: String,
    /// The trust domain of the etcd cluster's CA in this home (made with `rampart pki init
    /// --domain etcd`): its CA certificate and the gateways' client certificate go to the pods.
    #[arg(long, default_value = "etcd", value_name = "DOMAIN")]
    pub etcd_domain: TrustDomain,
    /// The name of the gateways' etcd client certificate in that domain (its common name is
    /// the etcd user, confined to rampart's prefix).
    #[arg(long, default_value = "rampart", value_name = "NAME")]
    pub etcd_user: EntityName,
    /// etcd client URLs for the pods' rampart.toml [default: the three members of
    /// deploy/k8s's StatefulSet, https://rampart-etcd-N.rampart-etcd.<NS>.svc:2379].
    #[arg(long, value_name = "URL", value_delimiter = ',')]
    pub etcd_endpoints: Vec<String>,
    /// Also emit the CA's private key, in the Secret rampart-ca-key (for a gateway that signs;
    /// nothing in deploy/k8s mounts it). Without it, the CA key stays in this home only.
    #[arg(long)]
    pub include_ca_key: bool,
}

/// `rampart deploy unpack`.
#[derive(Debug, Args)]
pub struct UnpackArgs {
    /// The certificate this pod serves with (pki/<domain>/issued/<NAME>.pem in the home).
    #[arg(long)]
    pub name: EntityName,
    /// Where the Secrets are mounted: config/ (rampart-config), cert/ (a kubernetes.io/tls
    /// Secret), and when present keyring/, etcd/ (the etcd client certificate), ca-key/.
    #[arg(long, value_name = "DIR")]
    pub from: PathBuf,
}

/// `rampart demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// How long the load runs; a node is killed at a third of it and restarted at two thirds.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    pub duration: std::time::Duration,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    /// Keep the demo's home (a temporary directory unless --home is given) afterwards.
    #[arg(long)]
    pub keep: bool,
    /// After the load, keep the network running until Ctrl-C, to look at it on the dashboard
    /// and call it with `rampart call`.
    #[arg(long)]
    pub serve: bool,
    /// Two networks instead, east and west: a west-only service called through east's
    /// gateway, west's policy allowing one east user and refusing another, west's gateway
    /// killed and restarted (--duration and --clients do not apply).
    #[arg(long, conflicts_with_all = ["serve", "clients"])]
    pub federation: bool,
}

/// `rampart gateway`.
#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// Front listener address [default: rampart.toml's gateway.listen, 127.0.0.1:8443].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
    /// Client certificates at the front door: off, optional or required
    /// [default: rampart.toml's gateway.client_cert, optional].
    #[arg(long, value_name = "MODE")]
    pub client_cert: Option<String>,
    /// This gateway's name among the network's gateways (several share an etcd registry): it
    /// tags its events, and its audit log is audit-<NAME>.jsonl [default: gateway, audit.jsonl].
    #[arg(long, value_name = "NAME", default_value = "gateway")]
    pub name: String,
    /// Threads that serve connections, each taking connections in turn and running their
    /// requests start to finish (as nginx's worker processes) [default: one per CPU].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub workers: Option<u16>,
}

/// `rampart node`.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// The node's name; its certificate is pki/<domain>/issued/<NAME>.pem (issued on first
    /// run when this home holds the CA).
    #[arg(long)]
    pub name: String,
    /// Internal listener address (port 0 picks a free port).
    #[arg(long, value_name = "ADDR")]
    pub listen: std::net::SocketAddr,
    /// A gateway to register with, https://HOST:PORT; repeat (or separate with commas) to give
    /// several gateways of the network: the node uses one and moves to the next when it does not
    /// answer [default: this home's gateway].
    #[arg(long, value_name = "URL", value_delimiter = ',')]
    pub gateway: Vec<String>,
    /// Threads that serve connections, each taking connections in turn and running their
    /// requests start to finish (as nginx's worker processes) [default: one per CPU].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub workers: Option<u16>,
    /// A built-in service to host: hello, echo, data, jobs (repeatable) [default: hello, echo
    /// and data].
    #[arg(long = "service", value_name = "NAME")]
    pub services: Vec<String>,
    /// Host an app as service NAME: http://127.0.0.1:PORT on loopback (repeatable).
    #[arg(long = "upstream", value_name = "NAME=URL")]
    pub upstreams: Vec<String>,
    /// Host every executable in DIR (or folder in DIR with an executable `run`) as a service
    /// named after it, run once per request CGI-style: the request in environment variables
    /// and on stdin, the answer on stdout (an optional `Status:` / header block first).
    /// Files added, replaced or removed are picked up live. Install a program by writing it
    /// beside (`NAME.tmp`) and renaming it into place [default: rampart.toml's
    /// node.services_dir, relative to the home].
    #[arg(long, value_name = "DIR")]
    pub services_dir: Option<PathBuf>,
    /// Time one run of a program may take; past it the program and everything it started are
    /// killed and the answer is 504. These --program-* limits hold for every program; a
    /// service may have its own in rampart.toml: `[node.programs.NAME]` with `timeout_ms`,
    /// `max_output`, `max_body`, `max_runs`.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub program_timeout: std::time::Duration,
    /// Most bytes a program may write as its answer (502, and killed, beyond).
    #[arg(long, default_value_t = 8 << 20, value_name = "BYTES")]
    pub program_max_output: usize,
    /// Largest request body a program is given (413 beyond, before it starts).
    #[arg(long, default_value_t = 8 << 20, value_name = "BYTES")]
    pub program_max_body: usize,
    /// Runs of one program at once (429 with Retry-After beyond, answered at once).
    #[arg(long, default_value_t = 16, value_name = "N")]
    pub program_max_runs: usize,
    /// Run programs as this user (a name from /etc/passwd, or UID:GID). A node running as root
    /// refuses to start programs without one [default: rampart.toml's node.run_as].
    #[arg(long, value_name = "USER")]
    pub run_as: Option<String>,
    /// Refuse payload envelopes older than this many seconds.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub payload_ttl: u64,
    /// Also answer `GET /_rampart/health` in plain HTTP here (200 while registered, 503 while
    /// not), for orchestrators' probes: the internal listener takes gateways' certificates only.
    #[arg(long, value_name = "ADDR")]
    pub health_listen: Option<std::net::SocketAddr>,
    /// Also serve passthrough routes here: the client TLS a gateway relays untouched, by the
    /// name the client asks for (`[routes.<service>] mode = "passthrough"`), ended with this
    /// node's certificate, which carries the routes' names
    /// (`rampart pki issue --role node --name NAME --dns HOST`). Only the gateways may relay
    /// (each connection starts with their PROXY protocol header).
    #[arg(long, value_name = "ADDR")]
    pub public_listen: Option<std::net::SocketAddr>,
    /// Client certificates on the public listener: off, optional or required (the caller
    /// may also use a token, unless required).
    #[arg(long, value_name = "MODE", default_value = "optional", requires = "public_listen")]
    pub public_client_cert: String,
    /// Where the gateways relay from, when not from the addresses of --gateway (behind NAT, in
    /// a cluster): an address or network, repeatable.
    #[arg(long, value_name = "CIDR", requires = "public_listen")]
    pub relays_from: Vec<ipnet::IpNet>,
    /// How long a finished job (`--service jobs`) and its data are kept before they are removed.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub job_retention: std::time::Duration,
}

/// `rampart run-program`.
#[derive(Debug, Args)]
pub struct RunProgramArgs {
    /// The node that starts the program: if it is gone before the parent-death signal is set,
    /// the program is not started.
    #[arg(long)]
    pub parent: Option<i32>,
    /// CPU seconds.
    #[arg(long)]
    pub cpu_secs: u64,
    /// Open files.
    #[arg(long)]
    pub max_files: u64,
    /// Largest file written, in bytes.
    #[arg(long)]
    pub max_file_bytes: u64,
    /// Processes of the user.
    #[arg(long)]
    pub max_procs: u64,
    /// Run as this user id.
    #[arg(long, requires = "gid")]
    pub uid: Option<u32>,
    /// And group id.
    #[arg(long, requires = "uid")]
    pub gid: Option<u32>,
    /// The program.
    #[arg(last = true, required = true)]
    pub program: PathBuf,
}

/// `rampart call`.
#[derive(Debug, Args)]
pub struct CallArgs {
    /// https://GATEWAY/<service>/<path>
    pub url: String,
    /// Another gateway of the network, https://HOST:PORT, tried in turn when the URL's gateway
    /// cannot be reached (repeatable, or separated with commas). A request that reached a
    /// gateway and lost its answer is sent again only if it is idempotent (GET, PUT, DELETE…)
    /// or carries an Idempotency-Key header.
    #[arg(long = "gateway", value_name = "URL", value_delimiter = ',')]
    pub gateways: Vec<String>,
    /// HTTP method [default: GET, or POST with -d].
    #[arg(short = 'X', long = "request", value_name = "METHOD")]
    pub method: Option<String>,
    /// Request body, or @FILE to read it from a file.
    #[arg(short = 'd', long = "data", value_name = "DATA")]
    pub data: Option<String>,
    /// Extra header, "Name: value" (repeatable).
    #[arg(short = 'H', long = "header", value_name = "HEADER")]
    pub headers: Vec<String>,
    /// Seal the body in a payload envelope (and ask for a sealed answer, opened on arrival).
    #[arg(long)]
    pub encrypt: bool,
    #[command(flatten)]
    pub credentials: Credentials,
    /// Print the status line and headers to stderr.
    #[arg(short = 'v', long)]
    pub verbose: bool,
}

/// `rampart keys …`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create the keyring with one fresh key (0600).
    New {
        /// Replace an existing keyring (the old file is kept beside it, 0600).
        #[arg(long)]
        force: bool,
    },
    /// Add a fresh key as the newest; older keys still decrypt.
    Rotate {
        /// Then keep only the newest N keys (tokens made with dropped keys no longer open)
        /// [default: keep all].
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        keep: Option<u32>,
    },
    /// Show the keys' positions and fingerprints (never the keys).
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Encrypt a message (stdin, or --in) into a Fernet token (stdout, or --out).
    Encrypt {
        /// Read the message from this file instead of stdin.
        #[arg(long = "in", value_name = "FILE")]
        input: Option<PathBuf>,
        /// Write the token to this file (0600) instead of stdout.
        #[arg(long = "out", value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Decrypt a Fernet token (stdin, or --in) made with any key of the keyring.
    Decrypt {
        /// Refuse tokens older than this many seconds.
        #[arg(long, value_name = "SECONDS")]
        ttl: Option<u64>,
        /// Read the token from this file instead of stdin.
        #[arg(long = "in", value_name = "FILE")]
        input: Option<PathBuf>,
        /// Write the message to this file (0600) instead of stdout.
        #[arg(long = "out", value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Print the newest key for an outside client (e.g. Python's Fernet). It is the secret.
    ExportKey,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }
}
