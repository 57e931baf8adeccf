//! The `rampart` command: parses the command line, then calls the library crates.

#![forbid(unsafe_code)]

mod cli;
mod cmd;
mod home;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::home::{DEFAULT_HOME, Home};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let home = Home::new(cli.home.unwrap_or_else(|| PathBuf::from(DEFAULT_HOME)));
    let result = match cli.command {
        Command::Init(args) => cmd::init::run(&home, args),
        Command::Pki(cmd) => cmd::pki::run(&home, cmd),
        Command::Keys(cmd) => cmd::keys::run(&home, cmd),
        Command::User(cmd) => cmd::access::user(&home, cmd),
        Command::Token(cmd) => cmd::access::token(&home, cmd),
        Command::Policy(cmd) => cmd::access::policy(&home, cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One line: the error and its causes, outermost first.
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
