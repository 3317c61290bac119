//! SMTP TLS Reporting (RFC 8460): the outcome of every outbound TLS session to an MX host is
//! counted per reporting period (a UTC day) and policy domain (`Store::record`, called from
//! `outbound::deliver_domain`); once a period has ended, `task` sends each domain that
//! publishes `_smtp._tls` an aggregate report (`report`).
//!
//! Storage is bounded: at most `MAX_PERIODS` periods (the oldest is dropped), `MAX_DOMAINS`
//! domains per period, `MAX_POLICIES` policies per domain and `MAX_DETAILS` distinct failure
//! details per policy (further failures are still counted in the summary). The counts live in
//! memory and are written to `data_dir/tlsrpt.json` (atomically, `fsutil`) by the task every
//! minute and at shutdown: statistics, so a crash may lose the last minute of them.

mod hook;
pub mod report;
pub mod task;

pub use hook::outcome;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

pub const MAX_PERIODS: usize = 7;
pub const MAX_DOMAINS: usize = 1000;
pub const MAX_POLICIES: usize = 8;
pub const MAX_DETAILS: usize = 50;
/// Longest `failure-reason-code` kept (the rest of an error text is cut).
const MAX_REASON: usize = 200;

/// The result types of RFC 8460 §4.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum ResultType {
    // §4.3.1 negotiation failures
    StarttlsNotSupported,
    CertificateHostMismatch,
    CertificateExpired,
    CertificateNotTrusted,
    ValidationFailure,
    // §4.3.2 policy failures (DANE)
    TlsaInvalid,
    DnssecInvalid,
    DaneRequired,
    // §4.3.2 policy failures (MTA-STS)
    StsPolicyFetchError,
    StsPolicyInvalid,
    StsWebpkiInvalid,
}

impl ResultType {
    /// The certificate failure named by a WebPKI verification error (rustls' text).
    pub fn from_cert_error(e: &str) -> ResultType {
        if e.contains("NotValidForName") {
            ResultType::CertificateHostMismatch
        } else if e.contains("Expired") || e.contains("NotValidYet") {
            ResultType::CertificateExpired
        } else if e.contains("UnknownIssuer") || e.contains("no trusted roots") {
            ResultType::CertificateNotTrusted
        } else {
            ResultType::ValidationFailure
        }
    }
}

/// The policy a session was held to (RFC 8460 §4.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// "sts", "tlsa" or "no-policy-found".
    #[serde(rename = "policy-type")]
    pub kind: String,
    #[serde(
        rename = "policy-string",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub strings: Vec<String>,
    #[serde(rename = "mx-host", default, skip_serializing_if = "Vec::is_empty")]
    pub mx: Vec<String>,
}

impl Policy {
    pub fn none() -> Policy {
        Policy {
            kind: "no-policy-found".into(),
            strings: vec![],
            mx: vec![],
        }
    }

    /// An MTA-STS policy: its text, one line per string, and its mx patterns.
    pub fn sts(p: &crate::outbound::mta_sts::Policy) -> Policy {
        let mode = match p.mode {
            crate::outbound::mta_sts::Mode::Enforce => "enforce",
            crate::outbound::mta_sts::Mode::Testing => "testing",
            crate::outbound::mta_sts::Mode::None => "none",
        };
        let mut strings = vec!["version: STSv1".to_string(), format!("mode: {mode}")];
        strings.extend(p.mx.iter().map(|m| format!("mx: {m}")));
        strings.push(format!("max_age: {}", p.max_age));
        Policy {
            kind: "sts".into(),
            strings,
            mx: p.mx.clone(),
        }
    }

    /// A DANE policy of one MX host: its usable TLSA records in presentation form.
    pub fn tlsa(host: &str, req: &crate::outbound::dane::Requirement) -> Policy {
        let strings = match req {
            crate::outbound::dane::Requirement::Verify(records) => records
                .iter()
                .map(|t| {
                    let hex: String = t.data.iter().map(|b| format!("{b:02x}")).collect();
                    format!("{} {} {} {hex}", t.usage, t.selector, t.matching)
                })
                .collect(),
            crate::outbound::dane::Requirement::Encrypt => vec![],
        };
        Policy {
            kind: "tlsa".into(),
            strings,
            mx: vec![host.trim_end_matches('.').to_string()],
        }
    }
}

/// One failed session, as reported in `failure-details`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub result: ResultType,
    /// The MX host and its address, when a session was attempted.
    pub mx_host: Option<String>,
    pub ip: Option<std::net::IpAddr>,
    pub reason: String,
}

/// One `failure-details` entry (RFC 8460 §4.4, `failure-details`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Detail {
    #[serde(rename = "result-type")]
    pub result: ResultType,
    #[serde(
        rename = "receiving-mx-hostname",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub mx_host: Option<String>,
    #[serde(
        rename = "receiving-ip",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ip: Option<String>,
    #[serde(rename = "failed-session-count")]
    pub count: u64,
    #[serde(
        rename = "failure-reason-code",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub reason: String,
}

/// Counts for one policy of one domain in one period.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyCounts {
    pub policy: Option<Policy>,
    pub success: u64,
    pub failure: u64,
    pub details: Vec<Detail>,
}

/// period start (unix seconds) → policy domain → its policies.
pub type Periods = BTreeMap<i64, BTreeMap<String, Vec<PolicyCounts>>>;

/// The counts of the last few periods, shared by outbound delivery and the report task.
pub struct Store {
    path: PathBuf,
    /// Length of a reporting period in seconds (86400; tests shorten it).
    period: i64,
    data: Mutex<Periods>,
    dirty: AtomicBool,
}

impl Store {
    /// Load `data_dir/tlsrpt.json` (a missing or unreadable file starts empty).
    pub fn open(data_dir: &Path, period_secs: u64) -> Store {
        let path = data_dir.join("tlsrpt.json");
        let data = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Store {
            path,
            period: period_secs.max(1) as i64,
            data: Mutex::new(data),
            dirty: AtomicBool::new(false),
        }
    }

    pub fn period_secs(&self) -> i64 {
        self.period
    }

    /// The start of the period holding `t`.
    pub fn period_of(&self, t: i64) -> i64 {
        t - t.rem_euclid(self.period)
    }

    fn with<T>(&self, f: impl FnOnce(&mut Periods) -> T) -> T {
        f(&mut self.data.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Count one session to `domain` under `policy` at time `now`: Ok = TLS negotiated and
    /// the policy met, Err = how it failed.
    pub fn record(&self, now: i64, domain: &str, policy: &Policy, outcome: Result<(), Failure>) {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let start = self.period_of(now);
        self.with(|periods| {
            if let std::collections::btree_map::Entry::Vacant(e) = periods.entry(start) {
                e.insert(BTreeMap::new());
                // Bounded: drop the oldest periods (reports for them are lost).
                while periods.len() > MAX_PERIODS {
                    periods.pop_first();
                }
                if !periods.contains_key(&start) {
                    return; // `now` is older than everything kept
                }
            }
            let domains = periods.get_mut(&start).expect("inserted above");
            if !domains.contains_key(&domain) && domains.len() >= MAX_DOMAINS {
                return;
            }
            let policies = domains.entry(domain).or_default();
            let i = match policies
                .iter()
                .position(|p| p.policy.as_ref() == Some(policy))
            {
                Some(i) => i,
                None if policies.len() < MAX_POLICIES => {
                    policies.push(PolicyCounts {
                        policy: Some(policy.clone()),
                        ..PolicyCounts::default()
                    });
                    policies.len() - 1
                }
                None => return,
            };
            let counts = &mut policies[i];
            match outcome {
                Ok(()) => counts.success += 1,
                Err(f) => {
                    counts.failure += 1;
                    let ip = f.ip.map(|ip| ip.to_string());
                    let mx = f.mx_host.map(|h| h.trim_end_matches('.').to_string());
                    if let Some(d) = counts
                        .details
                        .iter_mut()
                        .find(|d| d.result == f.result && d.mx_host == mx && d.ip == ip)
                    {
                        d.count += 1;
                    } else if counts.details.len() < MAX_DETAILS {
                        counts.details.push(Detail {
                            result: f.result,
                            mx_host: mx,
                            ip,
                            count: 1,
                            reason: truncate(&f.reason, MAX_REASON),
                        });
                    }
                }
            }
        });
        self.dirty.store(true, Ordering::Relaxed);
    }

    /// Remove and return the periods that ended before `now` (or all with `include_current`).
    pub fn take_finished(&self, now: i64, include_current: bool) -> Periods {
        let current = self.period_of(now);
        let taken = self.with(|periods| {
            let keep = if include_current {
                Periods::new()
            } else {
                periods.split_off(&current)
            };
            std::mem::replace(periods, keep)
        });
        if !taken.is_empty() {
            self.dirty.store(true, Ordering::Relaxed);
        }
        taken
    }

    /// Put periods back (their reports could not be queued).
    pub fn restore(&self, back: Periods) {
        self.with(|periods| {
            for (k, v) in back {
                periods.entry(k).or_insert(v);
            }
            while periods.len() > MAX_PERIODS {
                periods.pop_first();
            }
        });
        self.dirty.store(true, Ordering::Relaxed);
    }

    /// Write the counts to disk if they changed since the last save.
    pub fn save(&self) -> std::io::Result<()> {
        if !self.dirty.swap(false, Ordering::Relaxed) {
            return Ok(());
        }
        let bytes = self
            .with(|p| serde_json::to_vec(p))
            .map_err(std::io::Error::other)?;
        let r = crate::fsutil::write_atomic(&self.path, &bytes, 0o600);
        if r.is_err() {
            self.dirty.store(true, Ordering::Relaxed);
        }
        r
    }

    pub fn snapshot(&self) -> Periods {
        self.with(|p| p.clone())
    }
}

fn truncate(s: &str, max: usize) -> String {
    let s: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match s.char_indices().nth(max) {
        Some((i, _)) => s[..i].to_string(),
        None => s,
    }
}

#[cfg(test)]
mod tests;
