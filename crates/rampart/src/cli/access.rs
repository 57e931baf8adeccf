//! `rampart user`, `token` and `policy`: identity and access.

use clap::{Args, Subcommand};

/// `rampart user …`.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user. The password is read from a prompt, or from stdin with --password-stdin.
    Add {
        /// The user name (letters, digits, '.', '-', '_').
        name: String,
        /// Make an administrator: may call every service no rule denies, and the admin API.
        #[arg(long)]
        admin: bool,
        /// A certificate identity that acts as this user (spiffe://<domain>/user/<name>).
        #[arg(long, value_name = "SPIFFE_ID")]
        cert_identity: Option<String>,
        /// How many live tokens the user may hold.
        #[arg(long, value_name = "N", default_value_t = rampart_auth::users::DEFAULT_TOKEN_LIMIT)]
        token_limit: u32,
        /// Read the password from the first line of stdin.
        #[arg(long, conflicts_with = "no_password")]
        password_stdin: bool,
        /// No password: the user authenticates by certificate or by tokens an admin issues.
        #[arg(long)]
        no_password: bool,
    },
    /// List users (never their password hashes).
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Remove a user and revoke every token it holds.
    Remove {
        /// The user name.
        name: String,
    },
    /// Set a user's password (prompt, or --password-stdin).
    Passwd {
        /// The user name.
        name: String,
        /// Read the password from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
    },
}

/// `rampart token …`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Issue a token for a user; it is printed once and only its hash is kept.
    Issue {
        /// The user it acts as.
        #[arg(long)]
        user: String,
        /// Lifetime, like 30d, 12h or 90m [default: rampart.toml's tokens.default_ttl_secs, 30 days].
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        ttl: Option<std::time::Duration>,
        /// Limit it to a service (repeatable) [default: every service the user may call].
        #[arg(long = "service", value_name = "SERVICE")]
        services: Vec<String>,
    },
    /// List tokens: ids, users, scopes, expiry, state (never the tokens).
    List {
        /// Only this user's.
        #[arg(long)]
        user: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by id.
    Revoke {
        /// The token id (the 16 hex digits after rpt_).
        id: String,
    },
}

/// `rampart policy …`.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Allow a principal to call a service.
    Allow(RuleArgs),
    /// Deny a principal a service (a deny wins over every allow, admins included).
    Deny(RuleArgs),
    /// List the rules.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Remove a rule by id.
    Remove {
        /// The rule id.
        id: String,
    },
}

/// A policy rule.
#[derive(Debug, Args)]
pub struct RuleArgs {
    /// The service (first path segment), or '*' for every service.
    #[arg(long)]
    pub service: String,
    /// Whom: user/<name>, spiffe://<domain>/<role>/<name>, role:<role>, domain:<domain>, '*'
    /// (everyone this network authenticates), or a caller a peer network vouches for:
    /// peer:<domain>/user/<name>, peer:<domain>/spiffe://… or peer:<domain>/* (all of them).
    #[arg(long)]
    pub principal: String,
    /// HTTP method (repeatable) [default: every method].
    #[arg(long = "method", value_name = "METHOD")]
    pub methods: Vec<String>,
}
