//! `rampart init` and `rampart pki`: certificate authorities and certificates.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::builder::TypedValueParser;
use clap::{Args, Subcommand};
use rampart_pki::{EntityName, KeyType, Lifetime, RevocationReason, Role, TrustDomain};

/// `rampart init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The network's trust domain (its environment: prod, test, …).
    #[arg(long, default_value = "local")]
    pub domain: TrustDomain,
    /// Replace an existing CA of this domain (the old one is moved to pki/.replaced/).
    #[arg(long)]
    pub force: bool,
    /// Extra DNS names for the gateway certificate (localhost is always included).
    #[arg(long = "dns", value_name = "HOST")]
    pub dns: Vec<String>,
    /// Extra IP addresses for the gateway certificate (127.0.0.1 and ::1 are always included).
    #[arg(long = "ip", value_name = "ADDR")]
    pub ips: Vec<IpAddr>,
    /// Key type of every key made.
    #[arg(long, default_value = "p256", value_name = "TYPE", value_parser = key_types())]
    pub key_type: KeyType,
    /// Validity of the CA certificate, in days.
    #[arg(long, default_value_t = 3650, value_name = "DAYS")]
    pub ca_days: u32,
    /// How long the gateway and admin certificates are valid: 90s, 30m, 24h, 365d (a plain
    /// number is days).
    #[arg(long, alias = "days", default_value = "365d", value_name = "LIFETIME")]
    pub lifetime: Lifetime,
    /// Where the registry lives: embedded (a file; one gateway), or etcd://HOST:PORT[,HOST:PORT…]
    /// (etcds:// for TLS) for several gateways sharing an etcd cluster [default: embedded, or
    /// what rampart.toml already says].
    #[arg(long, value_name = "STORE")]
    pub store: Option<String>,
    /// CA of the etcd members' certificates (etcds://).
    #[arg(long, value_name = "FILE")]
    pub etcd_ca: Option<PathBuf>,
    /// Client certificate for etcd (client-certificate authentication).
    #[arg(long, value_name = "FILE", requires = "etcd_key")]
    pub etcd_cert: Option<PathBuf>,
    /// Its private key (mode 600: readable by others, it is refused).
    #[arg(long, value_name = "FILE", requires = "etcd_cert")]
    pub etcd_key: Option<PathBuf>,
    /// An etcd user (give it a role limited to rampart's prefix).
    #[arg(long, value_name = "NAME", requires = "etcd_password_file")]
    pub etcd_user: Option<String>,
    /// A file holding that user's password (mode 600: readable by others, it is refused).
    #[arg(long, value_name = "FILE", requires = "etcd_user")]
    pub etcd_password_file: Option<PathBuf>,
}

/// `rampart pki …`.
#[derive(Debug, Subcommand)]
pub enum PkiCommand {
    /// Create the CA of another trust domain (environment) under pki/<DOMAIN>/.
    Init {
        /// The trust domain.
        #[arg(long)]
        domain: TrustDomain,
        /// Replace an existing CA of this domain (the old one is moved to pki/.replaced/).
        #[arg(long)]
        force: bool,
        /// Validity of the CA certificate, in days.
        #[arg(long, default_value_t = 3650, value_name = "DAYS")]
        days: u32,
        /// Key type of the CA.
        #[arg(long, default_value = "p256", value_name = "TYPE", value_parser = key_types())]
        key_type: KeyType,
    },
    /// Issue a certificate and key: pki/<DOMAIN>/issued/<NAME>.pem and <NAME>.key (0600).
    Issue(IssueArgs),
    /// Make a key and a certificate signing request here, for a key that never leaves this
    /// machine (no rampart home needed): NAME.key (0600) stays, NAME.csr goes to the admin,
    /// who signs it with `rampart pki sign`.
    Request {
        /// A name for the files, and a hint for the admin (the certificate's name is the
        /// admin's choice, never taken from the request).
        #[arg(long)]
        name: EntityName,
        /// Folder to write NAME.key and NAME.csr in.
        #[arg(long, value_name = "DIR", default_value = ".")]
        out: PathBuf,
        /// Key type.
        #[arg(long, default_value = "p256", value_name = "TYPE", value_parser = key_types())]
        key_type: KeyType,
        /// Replace NAME.key and NAME.csr if they exist.
        #[arg(long)]
        force: bool,
    },
    /// Certify the key of a certificate signing request (from `rampart pki request`, openssl,
    /// …) as --role and --name: writes pki/<DOMAIN>/issued/<NAME>.pem and prints its path.
    /// Only the request's key and signature are used (the signature is checked); what it
    /// claims (names, roles, extensions) is ignored.
    Sign(SignArgs),
    /// List issued certificates with their status (valid, expiring soon, expired, revoked).
    List {
        /// Only this trust domain [default: every domain of the home].
        #[arg(long)]
        domain: Option<TrustDomain>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show what a certificate says, and whether its domain's CA signed it and revoked it.
    Inspect {
        /// A certificate file (PEM or DER), or the name of an issued certificate.
        file_or_name: String,
        /// Domain to look the name up in [default: the home's domain].
        #[arg(long)]
        domain: Option<TrustDomain>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a certificate and regenerate the domain's CRL.
    Revoke {
        /// Trust domain [default: the home's domain].
        #[arg(long)]
        domain: Option<TrustDomain>,
        /// The certificate's name.
        #[arg(long)]
        name: EntityName,
        /// Why: unspecified, key-compromise, ca-compromise, affiliation-changed, superseded,
        /// cessation-of-operation, certificate-hold, privilege-withdrawn.
        #[arg(long, default_value = "unspecified", value_name = "REASON")]
        reason: RevocationReason,
        /// Revoke the certificate with this serial (hex) instead of the current one.
        #[arg(long, conflicts_with = "all", value_name = "HEX")]
        serial: Option<String>,
        /// Revoke every still-valid certificate of this name, renewed-away ones included.
        #[arg(long)]
        all: bool,
    },
    /// Issue a new key and certificate for the same identity; the old one stays valid until it
    /// expires unless revoked.
    Renew {
        /// Trust domain [default: the home's domain].
        #[arg(long)]
        domain: Option<TrustDomain>,
        /// The certificate's name.
        #[arg(long)]
        name: EntityName,
        /// How long the new one is valid: 90s, 30m, 24h, 365d (a plain number is days)
        /// [default: the old certificate's lifetime].
        #[arg(long, alias = "days", value_name = "LIFETIME")]
        lifetime: Option<Lifetime>,
        /// Key type [default: the same as the old certificate].
        #[arg(long, value_name = "TYPE", value_parser = key_types())]
        key_type: Option<KeyType>,
    },
    /// Regenerate the domain's CRL (do so before its next-update passes) and summarise it.
    Crl {
        /// Trust domain [default: the home's domain].
        #[arg(long)]
        domain: Option<TrustDomain>,
    },
    /// Rotate the domain's CA in two steps. Without --finish: a new CA issues from now on, and
    /// ca.pem holds it beside the old one, so restarted processes trust certificates of both
    /// (a peer network follows the bundle by itself). Then renew every holder (rampart pki
    /// renew --name NAME) and restart it. With --finish: the old CA is no longer trusted (refused
    /// while a holder still has its certificate); restart the processes once more.
    RotateCa {
        /// Trust domain [default: the home's domain].
        #[arg(long)]
        domain: Option<TrustDomain>,
        /// End the rotation begun before.
        #[arg(long)]
        finish: bool,
        /// Validity of the new CA certificate, in days.
        #[arg(long, default_value_t = 3650, value_name = "DAYS", conflicts_with = "finish")]
        days: u32,
        /// Key type of the new CA.
        #[arg(long, default_value = "p256", value_name = "TYPE", value_parser = key_types(), conflicts_with = "finish")]
        key_type: KeyType,
    },
    /// Show how to make a machine trust the domain's CA (Debian, Fedora, macOS, Windows), so
    /// that clients of the system store verify the gateway without --cacert; --install does it
    /// on Debian-like systems (as root), --uninstall undoes it.
    Trust {
        /// Trust domain [default: the home's domain].
        #[arg(long)]
        domain: Option<TrustDomain>,
        /// Add the CA to this system's store (Debian-like: update-ca-certificates).
        #[arg(long, conflicts_with = "uninstall")]
        install: bool,
        /// Take it out of this system's store again.
        #[arg(long)]
        uninstall: bool,
    },
    /// Write the domain's CA bundle (PEM) for a peer network to install, and its fingerprint
    /// (sha256:…, on standard error) for the peer's operator to compare or pin.
    Bundle {
        /// Trust domain [default: the home's domain].
        #[arg(long)]
        domain: Option<TrustDomain>,
        /// Write it to this file instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

/// `rampart pki issue`.
#[derive(Debug, Args)]
pub struct IssueArgs {
    #[command(flatten)]
    pub holder: Holder,
    /// Key type.
    #[arg(long, default_value = "p256", value_name = "TYPE", value_parser = key_types())]
    pub key_type: KeyType,
}

/// `rampart pki sign`.
#[derive(Debug, Args)]
pub struct SignArgs {
    /// The request (PEM).
    #[arg(value_name = "CSR")]
    pub csr: PathBuf,
    #[command(flatten)]
    pub holder: Holder,
    /// The name holds a valid certificate and this one succeeds it (same role): a renewal.
    #[arg(long)]
    pub renew: bool,
}

/// Whom a certificate is for, as the admin says (`pki issue`, `pki sign`).
#[derive(Debug, Args)]
pub struct Holder {
    /// Trust domain [default: the home's domain].
    #[arg(long)]
    pub domain: Option<TrustDomain>,
    /// What the holder is: gateway, node, peer (servers) or user, admin (clients).
    #[arg(long, value_parser = roles())]
    pub role: Role,
    /// Who the holder is: letters, digits, '.', '-', '_'.
    #[arg(long)]
    pub name: EntityName,
    /// DNS name for a server certificate (repeatable) [default: localhost, 127.0.0.1, ::1].
    #[arg(long = "dns", value_name = "HOST")]
    pub dns: Vec<String>,
    /// IP address for a server certificate (repeatable).
    #[arg(long = "ip", value_name = "ADDR")]
    pub ips: Vec<IpAddr>,
    /// How long it is valid: 90s, 30m, 24h, 365d (a plain number is days) [default: 365d; a
    /// node renews its own at two thirds of it through a gateway that holds the CA].
    #[arg(long, alias = "days", value_name = "LIFETIME")]
    pub lifetime: Option<Lifetime>,
}

fn key_types() -> clap::builder::ValueParser {
    let names = KeyType::ALL.map(KeyType::as_str);
    clap::builder::PossibleValuesParser::new(names).try_map(|s| s.parse::<KeyType>()).into()
}

fn roles() -> clap::builder::ValueParser {
    let names = Role::ALL.map(Role::as_str);
    clap::builder::PossibleValuesParser::new(names).try_map(|s| s.parse::<Role>()).into()
}
