//! Fernet throughput of rampart's keyring: encrypt and decrypt of 1 KiB and 1 MiB messages.
//! Prints one line per case, `rust <op> <size> <ops/s> <MiB/s>`, for `scripts/bench-fernet`,
//! which runs Python's `cryptography` on the same cases and prints the comparison.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark: a panic is a failure report

use std::hint::black_box;
use std::time::{Duration, Instant};

use rampart_crypto::{Keyring, PayloadKey};

/// How long each case runs (after a short warm-up).
const RUN: Duration = Duration::from_millis(1500);

fn measure(mut op: impl FnMut()) -> f64 {
    let warm = Instant::now();
    while warm.elapsed() < RUN / 5 {
        op();
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < RUN {
        op();
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let keyring = Keyring::new(vec![PayloadKey::generate().unwrap()]).unwrap();
    for (label, size) in [("1KiB", 1024usize), ("1MiB", 1 << 20)] {
        let message: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let token = keyring.encrypt(&message).unwrap();
        let enc = measure(|| {
            black_box(keyring.encrypt(black_box(&message)).unwrap());
        });
        let dec = measure(|| {
            black_box(keyring.decrypt(black_box(&token), None).unwrap());
        });
        let mib = size as f64 / (1 << 20) as f64;
        println!("rust encrypt {label} {enc:.1} {:.1}", enc * mib);
        println!("rust decrypt {label} {dec:.1} {:.1}", dec * mib);
    }
}
