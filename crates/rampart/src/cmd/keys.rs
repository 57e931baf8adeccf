//! `rampart keys …`: the payload keyring.

use std::io::{IsTerminal, Read, Write};
use std::path::Path;

use anyhow::{Context, Result, bail};
use rampart_crypto::{MAX_MESSAGE_BYTES, file as keyfile};
use rampart_pki::files;
use serde::Serialize;

use crate::cli::KeysCommand;
use crate::cmd::print_table;
use crate::home::Home;

pub fn run(home: &Home, cmd: KeysCommand) -> Result<()> {
    home.require()?;
    let path = home.keyring_path();
    match cmd {
        KeysCommand::New { force } => {
            let (keyring, kept) = keyfile::create(&path, force)?;
            outln!(
                "Created {} (0600) with one key, fingerprint {}",
                path.display(),
                keyring.newest().fingerprint()
            );
            if let Some(old) = kept {
                outln!("The previous keyring was kept as {}", old.display());
            }
        }
        KeysCommand::Rotate { keep } => {
            let mut keyring = keyfile::load(&path)?;
            let before = keyring.keys().len();
            let fingerprint = keyring.rotate(keep.map(|k| k as usize))?.fingerprint();
            keyfile::save(&path, &keyring)?;
            let dropped = before + 1 - keyring.keys().len();
            outln!(
                "Added key {fingerprint} as the newest; the keyring holds {}",
                plural(keyring.keys().len(), "key")
            );
            if dropped > 0 {
                outln!("Dropped the {dropped} oldest: tokens made with them no longer decrypt");
            }
        }
        KeysCommand::List { json } => list(&path, json)?,
        KeysCommand::Encrypt { input, output } => {
            let keyring = keyfile::load(&path)?;
            let message = read_input(input.as_deref(), MAX_MESSAGE_BYTES)?;
            let mut token = keyring.encrypt(&message)?;
            token.push('\n');
            write_output(output.as_deref(), token.as_bytes())?;
        }
        KeysCommand::Decrypt { ttl, input, output } => {
            let keyring = keyfile::load(&path)?;
            let token = read_input(input.as_deref(), MAX_MESSAGE_BYTES / 3 * 4 + 4096)?;
            let token =
                std::str::from_utf8(&token).map_err(|_| anyhow::anyhow!("not a Fernet token: not text"))?;
            // Decrypted whole before anything is written: a bad token prints nothing.
            let opened = keyring.decrypt(token, ttl)?;
            write_output(output.as_deref(), &opened.plaintext)?;
        }
        KeysCommand::ExportKey => {
            let keyring = keyfile::load(&path)?;
            if std::io::stdout().is_terminal() {
                eprintln!(
                    "warning: this is the secret payload key: anyone holding it can read and forge \
                     payloads. Hand it only to a client that must encrypt, over a safe channel."
                );
            }
            let key = keyring.newest().to_base64();
            outln!("{}", key.as_str());
        }
    }
    Ok(())
}

fn plural(n: usize, noun: &str) -> String {
    if n == 1 { format!("1 {noun}") } else { format!("{n} {noun}s") }
}

#[derive(Serialize)]
struct ListedKey {
    position: usize,
    fingerprint: String,
    newest: bool,
}

fn list(path: &Path, json: bool) -> Result<()> {
    let keyring = keyfile::load(path)?;
    let n = keyring.keys().len();
    let keys: Vec<ListedKey> = keyring
        .keys()
        .iter()
        .enumerate()
        .map(|(i, k)| ListedKey { position: i + 1, fingerprint: k.fingerprint(), newest: i + 1 == n })
        .collect();
    if json {
        outln!("{}", serde_json::to_string_pretty(&keys)?);
        return Ok(());
    }
    outln!("{} ({}, oldest first; the newest encrypts, any decrypts)", path.display(), plural(n, "key"));
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|k| {
            vec![
                k.position.to_string(),
                k.fingerprint.clone(),
                if k.newest { "newest".into() } else { String::new() },
            ]
        })
        .collect();
    print_table(&["#", "FINGERPRINT", ""], &rows);
    Ok(())
}

/// Reads a file or stdin, refusing more than `limit` bytes (Fernet holds it all in memory).
fn read_input(path: Option<&Path>, limit: usize) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    let what = match path {
        Some(p) => {
            let f = std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?;
            f.take(limit as u64 + 1)
                .read_to_end(&mut buf)
                .with_context(|| format!("reading {}", p.display()))?;
            p.display().to_string()
        }
        None => {
            std::io::stdin().lock().take(limit as u64 + 1).read_to_end(&mut buf).context("reading stdin")?;
            "stdin".to_owned()
        }
    };
    if buf.len() > limit {
        bail!("{what} holds more than {limit} bytes, the most a Fernet token may carry here");
    }
    Ok(buf)
}

/// Writes to a file (atomically, 0600: it is a secret or a token) or to stdout.
fn write_output(path: Option<&Path>, bytes: &[u8]) -> Result<()> {
    match path {
        Some(p) => Ok(files::write_atomic(p, bytes, files::PRIVATE)?),
        None => {
            let mut out = std::io::stdout().lock();
            match out.write_all(bytes).and_then(|()| out.flush()) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e).context("writing stdout"),
                _ => Ok(()),
            }
        }
    }
}
