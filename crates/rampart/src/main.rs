//! The `rampart` command: parses the command line, then calls the library crates.

#![forbid(unsafe_code)]

mod cli;
mod cmd;
mod etcd;
mod home;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::home::{DEFAULT_HOME, Home};

/// mimalloc instead of the system allocator: a request through the gateway allocates and
/// frees dozens of small blocks (headers, URIs, bodies), and glibc's malloc took a tenth of
/// the gateway's CPU there; see docs/benchmarks.md. Built without transparent huge pages
/// (`no_thp`): with them, every 2 MiB region touched stays resident, which doubled an idle
/// gateway's memory.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let explicit_home = cli.home.clone();
    let home = Home::new(cli.home.unwrap_or_else(|| PathBuf::from(DEFAULT_HOME)));
    let result = match cli.command {
        Command::Init(args) => cmd::init::run(&home, args),
        Command::Pki(cmd) => cmd::pki::run(&home, cmd),
        Command::Keys(cmd) => cmd::keys::run(&home, cmd),
        Command::User(cmd) => cmd::access::user(&home, cmd),
        Command::Token(cmd) => cmd::access::token(&home, cmd),
        Command::Policy(cmd) => cmd::access::policy(&home, cmd),
        Command::Gateway(args) => cmd::serve::gateway(&home, args),
        Command::Node(args) => cmd::serve::node(&home, args),
        Command::Call(args) => cmd::call::run(&home, args),
        Command::Job(c) => cmd::job::run(&home, c),
        Command::Demo(args) => cmd::demo::run(explicit_home, args),
        Command::RunProgram(args) => cmd::run_program::run(args),
        Command::Deploy(cmd) => cmd::deploy::run(&home, cmd),
        Command::Status => cmd::admin::status(&home),
        Command::Bans(cli::BansCommand::List { json }) => cmd::admin::bans_list(&home, json),
        Command::Bans(cli::BansCommand::Lift { source }) => cmd::admin::bans_lift(&home, &source),
        Command::Events { follow, after, json } => cmd::admin::events(&home, follow, after, json),
        Command::Network(c) => cmd::network::run(&home, c),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if err.downcast_ref::<cmd::call::HttpStatus>().is_some() => {
            ExitCode::from(err.downcast_ref::<cmd::call::HttpStatus>().map_or(1, |s| s.exit_code()))
        }
        Err(err) => {
            // One line: the error and its causes, outermost first.
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
