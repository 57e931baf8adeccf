//! One module per top-level command: each parses nothing and prints for a person.

/// `println!` that ends the process quietly when stdout is closed (`rampart pki list | head`)
/// instead of panicking as `println!` does on a broken pipe.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
        }
    }};
}

pub mod access;
pub mod admin;
pub mod call;
pub mod csr;
pub mod demo;
pub mod deploy;
pub mod init;
pub mod job;
pub mod keys;
pub mod network;
pub mod pki;
pub mod run_program;
pub mod serve;
pub mod trust;

use std::future::Future;

use time::OffsetDateTime;
use time::macros::format_description;

/// Runs async library code (the registry) from a command.
pub fn block_on<F: Future>(f: F) -> anyhow::Result<F::Output> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    Ok(rt.block_on(f))
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `2026-11-23 11:38:49 UTC` from seconds since the Unix epoch.
pub fn fmt_unix(secs: u64) -> String {
    OffsetDateTime::from_unix_timestamp(i64::try_from(secs).unwrap_or(i64::MAX))
        .map(fmt_time)
        .unwrap_or_else(|_| secs.to_string())
}

/// `2026-11-23 11:38:49 UTC`.
pub fn fmt_time(t: OffsetDateTime) -> String {
    let f = format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    t.to_offset(time::UtcOffset::UTC).format(&f).unwrap_or_else(|_| t.to_string())
}

/// `2026-11-23`.
pub fn fmt_date(t: OffsetDateTime) -> String {
    t.date().to_string()
}

/// Prints rows as left-aligned columns under a header.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        outln!("{}", out.trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}
