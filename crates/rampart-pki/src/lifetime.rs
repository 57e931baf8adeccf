//! How long a leaf certificate is valid, and when its holder should renew it.
//!
//! Lifetimes are counted from the moment of issue ([`crate::profile::BACKDATE`] comes on top,
//! for clocks slightly behind), in whole seconds, so that short-lived certificates (minutes
//! for a test, a day for a node) are as easy to ask for as a year.

use std::fmt;
use std::str::FromStr;

use time::{Duration, OffsetDateTime};

use crate::error::{PkiError, Result};
use crate::profile::{BACKDATE, MAX_DAYS};

/// A validity period of a leaf certificate: 30 seconds to [`MAX_DAYS`] days.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Lifetime(Duration);

impl Lifetime {
    /// The shortest lifetime (for tests of renewal, mostly): the holder renews after 20 s.
    pub const MIN: Duration = Duration::seconds(30);

    /// What a node's certificate issued on its first run gets (`Pki::ensure_issued`): short,
    /// since it renews itself through the gateway of the home that issued it.
    pub const NODE_DEFAULT: Lifetime = Lifetime(Duration::hours(24));

    /// What other holders get when nothing else is asked.
    pub const DEFAULT: Lifetime = Lifetime(Duration::days(365));

    /// A lifetime of `d`, refused outside 30 seconds to [`MAX_DAYS`] days.
    pub fn new(d: Duration) -> Result<Self> {
        if d < Self::MIN || d > Duration::days(i64::from(MAX_DAYS)) {
            return Err(PkiError::InvalidLifetime(format_duration(d)));
        }
        Ok(Lifetime(Duration::seconds(d.whole_seconds())))
    }

    /// A lifetime of `days` days.
    pub fn days(days: u32) -> Result<Self> {
        Lifetime::new(Duration::days(i64::from(days)))
    }

    /// The lifetime as a duration.
    pub fn duration(self) -> Duration {
        self.0
    }

    /// The lifetime a certificate valid from `not_before` to `not_after` was issued with (the
    /// backdate taken off), or none when that is not a lifetime rampart issues.
    pub fn of(not_before: OffsetDateTime, not_after: OffsetDateTime) -> Option<Self> {
        Lifetime::new(not_after - not_before - BACKDATE).ok()
    }
}

impl FromStr for Lifetime {
    type Err = PkiError;

    /// `90s`, `30m`, `24h`, `365d`, or a plain number of days.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || PkiError::InvalidLifetime(s.to_owned());
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (number, unit) = s.split_at(split);
        let n: i64 = number.parse().map_err(|_| bad())?;
        let unit_secs = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3_600,
            "" | "d" => 86_400,
            _ => return Err(bad()),
        };
        // Checked: a number of days too large for a duration is refused, not a panic.
        let secs = n.checked_mul(unit_secs).ok_or_else(bad)?;
        Lifetime::new(Duration::seconds(secs)).map_err(|_| bad())
    }
}

impl fmt::Display for Lifetime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

/// A duration in the largest unit that divides it (`365d`, `24h`, `90s`).
fn format_duration(d: Duration) -> String {
    let s = d.whole_seconds();
    match s {
        _ if s != 0 && s % 86_400 == 0 => format!("{}d", s / 86_400),
        _ if s != 0 && s % 3_600 == 0 => format!("{}h", s / 3_600),
        _ if s != 0 && s % 60 == 0 => format!("{}m", s / 60),
        _ => format!("{s}s"),
    }
}

/// When a certificate valid from `not_before` to `not_after` should be renewed: once two thirds
/// of its lifetime (from its issue, the backdate taken off) have passed.
pub fn renewal_due(not_before: OffsetDateTime, not_after: OffsetDateTime) -> OffsetDateTime {
    let issued = issued_at(not_before, not_after);
    issued + (not_after - issued) * 2 / 3
}

/// From when a certificate valid from `not_before` to `not_after` may be renewed at all: once
/// half its lifetime has passed (its holder asks at two thirds).
pub fn renewal_allowed(not_before: OffsetDateTime, not_after: OffsetDateTime) -> OffsetDateTime {
    let issued = issued_at(not_before, not_after);
    issued + (not_after - issued) / 2
}

/// How long to wait, at `now`, for a renewal due at `due`: at least a second, at most a minute
/// (so that a certificate replaced by hand meanwhile is looked at again soon).
pub fn wait_for(due: OffsetDateTime, now: OffsetDateTime) -> std::time::Duration {
    let left = std::time::Duration::try_from(due - now).unwrap_or_default();
    left.clamp(std::time::Duration::from_secs(1), std::time::Duration::from_secs(60))
}

/// How long after a failed renewal to try again: a twentieth of the lifetime, between a second
/// and five minutes (a day-long certificate is tried every 5 minutes for its last 8 hours).
pub fn retry_after(not_before: OffsetDateTime, not_after: OffsetDateTime) -> std::time::Duration {
    let lifetime =
        std::time::Duration::try_from(not_after - issued_at(not_before, not_after)).unwrap_or_default();
    (lifetime / 20).clamp(std::time::Duration::from_secs(1), std::time::Duration::from_secs(300))
}

/// When a certificate was issued: its start with the backdate taken off, or its start for one
/// too short to have been backdated (not one of rampart's).
fn issued_at(not_before: OffsetDateTime, not_after: OffsetDateTime) -> OffsetDateTime {
    let backdated = not_after - not_before >= BACKDATE + Lifetime::MIN;
    if backdated { not_before + BACKDATE } else { not_before }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_parse_with_units_and_are_bounded() {
        assert_eq!("90s".parse::<Lifetime>().unwrap().duration(), Duration::seconds(90));
        assert_eq!("2m".parse::<Lifetime>().unwrap().to_string(), "2m");
        assert_eq!("24h".parse::<Lifetime>().unwrap(), Lifetime::NODE_DEFAULT);
        assert_eq!("365".parse::<Lifetime>().unwrap(), Lifetime::DEFAULT);
        assert_eq!(Lifetime::DEFAULT.to_string(), "365d");
        for bad in [
            "",
            "d",
            "29s",
            "0",
            "36501d",
            "1w",
            "-5m",
            "5 m",
            "99999999999999999999",
            "9223372036854775807d",
            "9223372036854775807h",
        ] {
            assert!(bad.parse::<Lifetime>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn renewal_is_due_at_two_thirds_of_the_lifetime_from_issue() {
        let issued = OffsetDateTime::now_utc();
        let not_before = issued - BACKDATE;
        let not_after = issued + Duration::minutes(3);
        assert_eq!(renewal_due(not_before, not_after), issued + Duration::minutes(2));
        assert_eq!(renewal_allowed(not_before, not_after), issued + Duration::seconds(90));
        assert_eq!(Lifetime::of(not_before, not_after).unwrap().to_string(), "3m");
        // A certificate from elsewhere, not backdated: still two thirds of what it has.
        assert_eq!(renewal_due(issued, issued + Duration::minutes(1)), issued + Duration::seconds(40));
        // Retries at a twentieth of the lifetime, within bounds; waits of a second to a minute.
        let secs = std::time::Duration::from_secs;
        assert_eq!(retry_after(not_before, not_after), secs(9));
        assert_eq!(retry_after(not_before, issued + Duration::days(1)), secs(300));
        assert_eq!(retry_after(issued, issued), secs(1));
        assert_eq!(wait_for(issued + Duration::days(3), issued), secs(60));
        assert_eq!(wait_for(issued - Duration::seconds(5), issued), secs(1));
    }
}
