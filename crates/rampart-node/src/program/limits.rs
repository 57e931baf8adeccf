//! What one program may use: node-wide defaults (`rampart node --program-*`), and a service's
//! own where the node's configuration sets them (`[node.programs.<service>]` in
//! `rampart.toml`): a slow report generator may get minutes, a public echo two runs at once.

use std::collections::BTreeMap;
use std::time::Duration;

/// What one program may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Time one run may take (504 beyond).
    pub timeout: Duration,
    /// Most bytes of output (502 beyond).
    pub max_output: usize,
    /// Largest request body (413 beyond).
    pub max_body: usize,
    /// Runs at once (429 beyond).
    pub max_runs: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { timeout: Duration::from_secs(30), max_output: 8 << 20, max_body: 8 << 20, max_runs: 16 }
    }
}

/// A service's own limits, as configured: each one set replaces the node-wide default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overrides {
    /// Time one run may take, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Most bytes of output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output: Option<usize>,
    /// Largest request body, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body: Option<usize>,
    /// Runs at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_runs: Option<usize>,
}

/// Why a service's limits were refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LimitsError {
    /// Limits for a name no service can have.
    #[error("{0:?} is not a service name (letters, digits, '.', '-', '_')")]
    BadName(String),
    /// A limit of zero: the service could never answer.
    #[error("{service}: {field} must be at least 1")]
    Zero {
        /// The service.
        service: String,
        /// The limit.
        field: &'static str,
    },
}

impl Overrides {
    /// `defaults` with what these set in their place.
    pub fn over(&self, defaults: Limits) -> Limits {
        Limits {
            timeout: self.timeout_ms.map_or(defaults.timeout, Duration::from_millis),
            max_output: self.max_output.unwrap_or(defaults.max_output),
            max_body: self.max_body.unwrap_or(defaults.max_body),
            max_runs: self.max_runs.unwrap_or(defaults.max_runs),
        }
    }

    fn check(&self, service: &str) -> Result<(), LimitsError> {
        let zero = [
            ("timeout_ms", self.timeout_ms == Some(0)),
            ("max_output", self.max_output == Some(0)),
            ("max_runs", self.max_runs == Some(0)),
        ];
        match zero.iter().find(|(_, is_zero)| *is_zero) {
            Some((field, _)) => Err(LimitsError::Zero { service: service.to_owned(), field }),
            None => Ok(()),
        }
    }
}

/// Every program's limits: the defaults, and the services that have their own.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LimitsBook {
    defaults: Limits,
    services: BTreeMap<String, Limits>,
}

impl LimitsBook {
    /// `defaults` for every program, and `overrides` for the services named (a body limit of
    /// zero is allowed: a service that takes no body).
    pub fn new(defaults: Limits, overrides: &BTreeMap<String, Overrides>) -> Result<Self, LimitsError> {
        let mut services = BTreeMap::new();
        for (name, o) in overrides {
            rampart_auth::ServiceName::parse(name).map_err(|_| LimitsError::BadName(name.clone()))?;
            o.check(name)?;
            services.insert(name.clone(), o.over(defaults));
        }
        Ok(LimitsBook { defaults, services })
    }

    /// The limits of `service`'s program.
    pub fn of(&self, service: &str) -> Limits {
        self.services.get(service).copied().unwrap_or(self.defaults)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_service_s_own_limits_replace_only_what_they_set() {
        let slow = Overrides { timeout_ms: Some(120_000), max_runs: Some(2), ..Default::default() };
        let book =
            LimitsBook::new(Limits::default(), &BTreeMap::from([("report".to_owned(), slow)])).unwrap();
        let report = book.of("report");
        assert_eq!(report.timeout, Duration::from_secs(120));
        assert_eq!(report.max_runs, 2);
        assert_eq!(report.max_output, Limits::default().max_output);
        assert_eq!(book.of("hello"), Limits::default());
    }

    #[test]
    fn limits_no_service_could_answer_under_or_for_no_service_are_refused() {
        let none = Overrides { max_runs: Some(0), ..Default::default() };
        let err = LimitsBook::new(Limits::default(), &BTreeMap::from([("x".to_owned(), none)])).unwrap_err();
        assert_eq!(err, LimitsError::Zero { service: "x".into(), field: "max_runs" });
        let err =
            LimitsBook::new(Limits::default(), &BTreeMap::from([("../x".to_owned(), Overrides::default())]))
                .unwrap_err();
        assert!(matches!(err, LimitsError::BadName(_)));
        let parsed: Result<Overrides, _> = serde_json::from_str(r#"{"timeout": 5}"#);
        assert!(parsed.is_err(), "an unknown key is refused, not ignored");
    }
}
