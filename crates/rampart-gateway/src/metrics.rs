//! Prometheus metrics (text exposition format, Prometheus naming conventions).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the request duration histogram, seconds.
const BUCKETS: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

/// Every metric the gateway exposes.
#[derive(Debug, Default)]
pub struct Metrics {
    /// service → status → count (looked up by `&str`: no allocation per request).
    requests: Mutex<HashMap<String, BTreeMap<u16, u64>>>,
    /// Requests by the first bucket that holds them (not cumulative).
    duration_buckets: [AtomicU64; BUCKETS.len()],
    duration_count: AtomicU64,
    duration_sum_us: AtomicU64,
    tls_failures: Mutex<BTreeMap<String, u64>>,
    /// Nodes ejected from the pool.
    pub ejections: AtomicU64,
    /// Certificate name → its expiry, seconds since the Unix epoch.
    pub cert_expiry: Mutex<BTreeMap<String, i64>>,
}

impl Metrics {
    /// Counts a finished request.
    pub fn request(&self, service: &str, code: u16, took: Duration) {
        if let Ok(mut r) = self.requests.lock() {
            match r.get_mut(service) {
                Some(codes) => *codes.entry(code).or_default() += 1,
                None => {
                    r.insert(service.to_owned(), BTreeMap::from([(code, 1)]));
                }
            }
        }
        // One bucket counted per request, the first that holds it (the exposition's buckets
        // are cumulative: summed when rendered), rather than every bucket it falls under.
        let secs = took.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|le| secs <= *le) {
            self.duration_buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.duration_count.fetch_add(1, Ordering::Relaxed);
        self.duration_sum_us
            .fetch_add(u64::try_from(took.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Notes when the certificate `der` (shown as `name`) expires.
    pub fn certificate_expires(&self, name: &str, der: &[u8]) {
        if let Ok(info) = rampart_pki::inspect::cert_from_der(der) {
            self.expires(name, info.not_after.unix_timestamp());
        }
    }

    /// Notes that `name` expires at `unix_time`.
    pub fn expires(&self, name: &str, unix_time: i64) {
        if let Ok(mut expiry) = self.cert_expiry.lock() {
            expiry.insert(name.to_owned(), unix_time);
        }
    }

    /// Counts a failed TLS handshake by reason.
    pub fn tls_failure(&self, reason: &str) {
        if let Ok(mut t) = self.tls_failures.lock() {
            *t.entry(reason.to_owned()).or_default() += 1;
        }
    }

    /// The exposition text; `events` are security events counted by kind.
    pub fn render(&self, events: &BTreeMap<String, u64>) -> String {
        let mut out = String::new();
        let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
        let _ = writeln!(out, "# HELP rampart_requests_total Requests answered, by service and status code.");
        let _ = writeln!(out, "# TYPE rampart_requests_total counter");
        if let Ok(r) = self.requests.lock() {
            let mut services: Vec<_> = r.iter().collect();
            services.sort();
            for (service, codes) in services {
                for (code, n) in codes {
                    let _ = writeln!(
                        out,
                        "rampart_requests_total{{service=\"{}\",code=\"{code}\"}} {n}",
                        esc(service)
                    );
                }
            }
        }
        let _ = writeln!(out, "# HELP rampart_request_duration_seconds Time to answer a request.");
        let _ = writeln!(out, "# TYPE rampart_request_duration_seconds histogram");
        let mut below = 0;
        for (le, n) in BUCKETS.iter().zip(&self.duration_buckets) {
            below += n.load(Ordering::Relaxed);
            let _ = writeln!(out, "rampart_request_duration_seconds_bucket{{le=\"{le}\"}} {below}");
        }
        let count = self.duration_count.load(Ordering::Relaxed);
        let _ = writeln!(out, "rampart_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.duration_sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "rampart_request_duration_seconds_sum {sum}");
        let _ = writeln!(out, "rampart_request_duration_seconds_count {count}");
        let _ = writeln!(out, "# HELP rampart_security_events_total Security events, by kind.");
        let _ = writeln!(out, "# TYPE rampart_security_events_total counter");
        for (kind, n) in events {
            let _ = writeln!(out, "rampart_security_events_total{{kind=\"{}\"}} {n}", esc(kind));
        }
        let _ = writeln!(out, "# HELP rampart_upstream_ejections_total Nodes ejected from the pool.");
        let _ = writeln!(out, "# TYPE rampart_upstream_ejections_total counter");
        let _ = writeln!(out, "rampart_upstream_ejections_total {}", self.ejections.load(Ordering::Relaxed));
        let _ =
            writeln!(out, "# HELP rampart_tls_handshake_failures_total Failed TLS handshakes, by reason.");
        let _ = writeln!(out, "# TYPE rampart_tls_handshake_failures_total counter");
        if let Ok(t) = self.tls_failures.lock() {
            for (reason, n) in t.iter() {
                let _ =
                    writeln!(out, "rampart_tls_handshake_failures_total{{reason=\"{}\"}} {n}", esc(reason));
            }
        }
        let _ =
            writeln!(out, "# HELP rampart_certificate_expiry_timestamp_seconds When a certificate expires.");
        let _ = writeln!(out, "# TYPE rampart_certificate_expiry_timestamp_seconds gauge");
        if let Ok(c) = self.cert_expiry.lock() {
            for (name, t) in c.iter() {
                let _ = writeln!(
                    out,
                    "rampart_certificate_expiry_timestamp_seconds{{certificate=\"{}\"}} {t}",
                    esc(name)
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_duration_histogram_is_rendered_cumulative() {
        let m = Metrics::default();
        for ms in [0.2, 3.0, 2_000.0, 10_000.0] {
            m.request("hello", 200, Duration::from_secs_f64(ms / 1e3));
        }
        let text = m.render(&BTreeMap::new());
        let bucket = |le: &str| {
            let line = format!("rampart_request_duration_seconds_bucket{{le=\"{le}\"}} ");
            text.lines().find_map(|l| l.strip_prefix(line.as_str())).map(str::to_owned)
        };
        let expected =
            [("0.0005", "1"), ("0.001", "1"), ("0.005", "2"), ("1", "2"), ("5", "3"), ("+Inf", "4")];
        for (le, n) in expected {
            assert_eq!(bucket(le).as_deref(), Some(n), "le={le} in\n{text}");
        }
        assert!(text.contains("rampart_requests_total{service=\"hello\",code=\"200\"} 4"), "{text}");
    }
}
