//! A temporary ban of a source that keeps failing authentication. The table is bounded so
//! that a flood of addresses cannot grow it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::MAX_ENTRIES;

/// A ban in force.
#[derive(Clone, Debug, Serialize)]
pub struct Ban {
    /// The banned address, or network (`2001:db8:1:2::/64`: IPv6 sources are banned by
    /// prefix, since one machine holds a whole /64).
    pub source: String,
    /// Seconds left.
    pub seconds_left: u64,
    /// Authentication failures that led to it.
    pub failures: u32,
}

#[derive(Debug)]
struct Record {
    failures: Vec<Instant>,
    banned_until: Option<Instant>,
}

/// Sources that keep failing authentication are banned for a while.
#[derive(Debug)]
pub struct Bans {
    threshold: u32,
    window: Duration,
    duration: Duration,
    /// IPv6 sources are counted and banned by this prefix (128: by address).
    ipv6_prefix: u8,
    table: Mutex<HashMap<IpAddr, Record>>,
}

impl Bans {
    /// Ban after `threshold` failures within `window`, for `duration`; `threshold == 0`
    /// disables banning.
    pub fn new(threshold: u32, window: Duration, duration: Duration) -> Self {
        Bans { threshold, window, duration, ipv6_prefix: 64, table: Mutex::new(HashMap::new()) }
    }

    /// Counts and bans IPv6 sources by `prefix` bits (1 to 128; 64 unless set).
    pub fn with_ipv6_prefix(mut self, prefix: u8) -> Self {
        self.ipv6_prefix = prefix.clamp(1, 128);
        self
    }

    /// The key a source is counted under: the address for IPv4 (and IPv4-mapped IPv6), the
    /// network of the configured prefix for IPv6.
    fn key(&self, ip: IpAddr) -> IpAddr {
        match ip.to_canonical() {
            IpAddr::V6(v6) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.ipv6_prefix)).unwrap_or(0);
                IpAddr::V6((u128::from(v6) & mask).into())
            }
            v4 => v4,
        }
    }

    /// How a key is shown: `2001:db8::/64` for a network, the address otherwise.
    fn show(&self, key: IpAddr) -> String {
        match key {
            IpAddr::V6(_) if self.ipv6_prefix < 128 => format!("{key}/{}", self.ipv6_prefix),
            _ => key.to_string(),
        }
    }

    /// Time left on a ban of `ip`, if any.
    pub fn banned(&self, ip: IpAddr) -> Option<Duration> {
        let ip = self.key(ip);
        let table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let until = table.get(&ip)?.banned_until?;
        until.checked_duration_since(Instant::now())
    }

    /// Counts a failure; returns true when it starts a ban.
    pub fn failed(&self, ip: IpAddr) -> bool {
        if self.threshold == 0 {
            return false;
        }
        let ip = self.key(ip);
        let now = Instant::now();
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        if table.len() >= MAX_ENTRIES && !table.contains_key(&ip) {
            let window = self.window;
            table.retain(|_, r| {
                r.banned_until.is_some_and(|u| u > now) || r.failures.iter().any(|t| now - *t < window)
            });
        }
        let r = table.entry(ip).or_insert(Record { failures: Vec::new(), banned_until: None });
        if r.banned_until.is_some_and(|u| u > now) {
            return false;
        }
        r.failures.retain(|t| now.duration_since(*t) < self.window);
        r.failures.push(now);
        if r.failures.len() as u32 >= self.threshold {
            r.banned_until = Some(now + self.duration);
            return true;
        }
        false
    }

    /// Bans in force.
    pub fn list(&self) -> Vec<Ban> {
        let now = Instant::now();
        let table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        table
            .iter()
            .filter_map(|(ip, r)| {
                let left = r.banned_until?.checked_duration_since(now)?;
                Some(Ban {
                    source: self.show(*ip),
                    seconds_left: left.as_secs().max(1),
                    failures: r.failures.len() as u32,
                })
            })
            .collect()
    }

    /// Bans `ip` for `duration` from now (a ban another gateway of the network started).
    pub fn impose(&self, ip: IpAddr, duration: Duration) {
        let ip = self.key(ip);
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        if table.len() >= MAX_ENTRIES && !table.contains_key(&ip) {
            return; // the table is full of local trouble; the peer's gateway still bans it
        }
        let r = table.entry(ip).or_insert(Record { failures: Vec::new(), banned_until: None });
        r.banned_until = Some(Instant::now() + duration);
    }

    /// Lifts the ban of `ip` (of its network, for IPv6); whether there was one.
    pub fn lift(&self, ip: IpAddr) -> bool {
        let ip = self.key(ip);
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        table.remove(&ip).is_some_and(|r| r.banned_until.is_some_and(|u| u > Instant::now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_failures_ban_and_can_be_lifted() {
        let bans = Bans::new(3, Duration::from_secs(60), Duration::from_secs(300));
        let ip: IpAddr = "127.0.0.9".parse().unwrap();
        assert!(!bans.failed(ip) && !bans.failed(ip));
        assert!(bans.failed(ip));
        assert!(bans.banned(ip).is_some());
        assert_eq!(bans.list().len(), 1);
        assert!(bans.lift(ip));
        assert!(bans.banned(ip).is_none());
    }

    #[test]
    fn ipv6_sources_are_banned_by_their_prefix() {
        let bans = Bans::new(2, Duration::from_secs(60), Duration::from_secs(300));
        let (a, b): (IpAddr, IpAddr) =
            ("2001:db8:1:2::a".parse().unwrap(), "2001:db8:1:2:ffff::b".parse().unwrap());
        let other: IpAddr = "2001:db8:1:3::a".parse().unwrap();
        assert!(!bans.failed(a));
        assert!(bans.failed(b), "two failures from one /64 ban it");
        assert!(bans.banned(a).is_some() && bans.banned(b).is_some());
        assert!(bans.banned(other).is_none(), "the next /64 is someone else");
        assert_eq!(bans.list()[0].source, "2001:db8:1:2::/64");
        assert!(bans.lift("2001:db8:1:2::1".parse().unwrap()));
        // By address when asked; IPv4-mapped addresses count as their IPv4 address.
        let exact = Bans::new(1, Duration::from_secs(60), Duration::from_secs(300)).with_ipv6_prefix(128);
        assert!(exact.failed(a));
        assert!(exact.banned(b).is_none());
        assert_eq!(exact.list()[0].source, "2001:db8:1:2::a");
        let v4 = Bans::new(1, Duration::from_secs(60), Duration::from_secs(300));
        assert!(v4.failed("::ffff:10.0.0.1".parse().unwrap()));
        assert!(v4.banned("10.0.0.1".parse().unwrap()).is_some());
        assert_eq!(v4.list()[0].source, "10.0.0.1");
    }
}
