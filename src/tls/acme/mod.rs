//! `tls.source = "acme"`: get a certificate for `hostname` plus `tls.acme_extra_names` from
//! `tls.acme_directory` (RFC 8555) and keep it fresh. One background task:
//! - at start the stored certificate (if any) is already serving (TlsService::start); a
//!   restart orders nothing unless the stored one is due or misses a configured name;
//! - renewal is due when a third of the lifetime is left, or earlier inside the CA's ACME
//!   renewal information window (ARI, RFC 9773) when the CA offers it;
//! - a failed attempt is logged and retried with exponential backoff while the current
//!   certificate (or the self-signed stand-in) keeps serving;
//! - `postern tls renew` drops a request file that forces an attempt within seconds;
//! - a new certificate is stored (key 0600, atomic writes) and swapped into the shared
//!   resolver, so every listener serves it from the next handshake on, without a restart and
//!   without touching open connections.

mod client;
mod order;
pub mod schedule;
pub mod store;

pub use store::{State, Store};

use std::sync::Arc;
use std::time::Duration;

use instant_acme::{Account, CertificateIdentifier, NewAccount};
use rustls::sign::CertifiedKey;

use super::Maintenance;
use crate::config::AcmeChallenge;
use crate::tls::{CertInfo, install};

/// How often the task wakes to look for a renewal request or a due renewal.
const POLL: Duration = Duration::from_secs(2);
/// Upper bound for one whole attempt (account, order, validation, download).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    #[error("tls.acme_ca_file {0}")]
    CaFile(String),
    #[error("cannot use the ACME directory {url} (tls.acme_directory): {message}")]
    Directory { url: String, message: String },
    #[error("ACME order failed: {0}")]
    Order(String),
    #[error("ACME: {}", chain(.0))]
    Acme(#[from] instant_acme::Error),
    #[error("cannot store the certificate: {0}")]
    Io(#[from] std::io::Error),
    #[error("the CA's certificate is unusable: {0}")]
    Certificate(String),
    #[error("attempt timed out after {}s", ATTEMPT_TIMEOUT.as_secs())]
    Timeout,
}

/// An error with its causes, `a: b: c` (hyper's errors keep the useful part in sources).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

/// The names the certificate must cover: hostname first, then the extra names, lower-case,
/// without duplicates.
pub fn wanted_names(config: &crate::config::Config) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for n in std::iter::once(&config.hostname).chain(&config.tls.acme_extra_names) {
        let n = n.trim().trim_end_matches('.').to_ascii_lowercase();
        if !n.is_empty() && !names.contains(&n) {
            names.push(n);
        }
    }
    names
}

pub fn fmt_time(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| t.to_string())
}

pub fn spawn(svc: Arc<Maintenance>) {
    // The CA validates on port 80 (HTTP-01) or 443 (TLS-ALPN-01) of every name: say so now
    // rather than leave the operator to decode the CA's connection error.
    let l = &svc.config.listen;
    match svc.config.tls.acme_challenge {
        AcmeChallenge::Http01 if l.http.is_empty() => tracing::error!(
            "tls.acme_challenge = \"http-01\" needs listen.http (port 80 reachable from the internet); no certificate can be validated"
        ),
        AcmeChallenge::TlsAlpn01 if l.https.is_empty() => tracing::error!(
            "tls.acme_challenge = \"tls-alpn-01\" needs listen.https (port 443 reachable from the internet); no certificate can be validated"
        ),
        _ => {}
    }
    let task = svc.clone();
    svc.tasks
        .spawn(async move { Maintainer::new(task).run().await });
}

/// The stored certificate the schedule is about.
struct Current {
    info: CertInfo,
    id: Option<CertificateIdentifier<'static>>,
}

impl Current {
    fn of(ck: &CertifiedKey) -> Option<Current> {
        let info = CertInfo::of(ck)?;
        let id = ck
            .cert
            .first()
            .and_then(|der| CertificateIdentifier::try_from(der).ok())
            .map(|i| i.into_owned());
        Some(Current { info, id })
    }
}

/// Renewal information from the CA for the current certificate.
struct Ari {
    window: (i64, i64),
    pick: i64,
}

struct Maintainer {
    svc: Arc<Maintenance>,
    store: Store,
    names: Vec<String>,
    account: Option<Account>,
    current: Option<Current>,
    failures: u32,
    retry_at: Option<i64>,
    ari: Option<Ari>,
    ari_check_at: i64,
    ari_supported: bool,
    state: State,
}

impl Maintainer {
    fn new(svc: Arc<Maintenance>) -> Maintainer {
        let store = Store::new(&svc.config.data_dir.join("tls"));
        let current = store.load_cert().and_then(|ck| Current::of(&ck));
        let state = store.load_state().unwrap_or_default();
        Maintainer {
            names: wanted_names(&svc.config),
            svc,
            store,
            account: None,
            current,
            failures: 0,
            retry_at: None,
            ari: None,
            ari_check_at: 0,
            ari_supported: true,
            state,
        }
    }

    async fn run(mut self) {
        let shutdown = self.svc.shutdown.clone();
        loop {
            let forced = self.store.take_renew_request();
            if forced {
                tracing::info!("ACME: renewal requested (postern tls renew)");
            }
            let (due, reason) = tokio::select! {
                _ = shutdown.cancelled() => return,
                d = self.due() => d,
            };
            let now = crate::clock::unix_now();
            let may_retry = self.retry_at.is_none_or(|t| now >= t);
            if forced || (now >= due && may_retry) {
                let reason = if forced {
                    "renewal requested".to_string()
                } else {
                    reason.clone()
                };
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = self.attempt(&reason) => {}
                }
                continue;
            }
            let (next, reason) = match self.retry_at {
                Some(t) if t > due => (t, format!("retry {} after a failure", self.failures)),
                _ => (due, reason),
            };
            self.publish(State {
                next_renewal: Some(next),
                reason,
                ari_window: self.ari.as_ref().map(|a| a.window),
                ..self.state.clone()
            });
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }

    fn publish(&mut self, state: State) {
        if state != self.state {
            if let Err(e) = self.store.save_state(&state) {
                tracing::warn!("ACME: cannot write the renewal state: {e}");
            }
            self.state = state;
        }
    }

    /// When the next attempt is due, and why.
    async fn due(&mut self) -> (i64, String) {
        let now = crate::clock::unix_now();
        let Some(cur) = &self.current else {
            return (now, "no certificate issued yet".into());
        };
        if let Some(missing) = self.names.iter().find(|n| !cur.info.names.contains(n)) {
            return (now, format!("the certificate does not cover {missing}"));
        }
        if let Some(d) = &self.state.directory
            && *d != self.svc.config.tls.acme_directory
        {
            return (
                now,
                format!("the certificate came from another directory ({d})"),
            );
        }
        if self.ari_supported && now >= self.ari_check_at {
            self.refresh_ari(now).await;
        }
        let Some(cur) = &self.current else {
            return (now, "no certificate issued yet".into());
        };
        let lifetime = schedule::lifetime_due(cur.info.not_before, cur.info.not_after);
        match &self.ari {
            Some(a) if a.pick < lifetime => (a.pick, "inside the CA's renewal window (ARI)".into()),
            _ => (lifetime, "a third of the lifetime left".into()),
        }
    }

    /// Ask the CA for its renewal window for the current certificate (RFC 9773 §4.2).
    async fn refresh_ari(&mut self, now: i64) {
        let Some(id) = self.current.as_ref().and_then(|c| c.id.clone()) else {
            self.ari_supported = false;
            return;
        };
        let account = match self.account().await {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!("ACME renewal info not checked: {e}");
                self.ari_check_at = now + 3600;
                return;
            }
        };
        match account.renewal_info(&id).await {
            Ok((info, retry_after)) => {
                let w = &info.suggested_window;
                let window = (w.start.unix_timestamp(), w.end.unix_timestamp());
                let pick = schedule::ari_pick(window.0, window.1, rand::random::<f64>());
                tracing::info!(
                    "ACME renewal info: window {} to {}, renewing at {}",
                    fmt_time(window.0),
                    fmt_time(window.1),
                    fmt_time(pick)
                );
                self.ari = Some(Ari { window, pick });
                self.ari_check_at = now + schedule::ari_recheck(retry_after).as_secs() as i64;
            }
            Err(instant_acme::Error::Unsupported(_)) => {
                tracing::debug!("the ACME CA offers no renewal info (RFC 9773)");
                self.ari_supported = false;
            }
            Err(e) => {
                tracing::warn!("ACME renewal info unavailable: {}", chain(&e));
                self.ari_check_at = now + 3600;
            }
        }
    }

    /// The ACME account: cached, else restored from data_dir, else registered (and stored).
    async fn account(&mut self) -> Result<Account, AcmeError> {
        if let Some(a) = &self.account {
            return Ok(a.clone());
        }
        let cfg = &self.svc.config.tls;
        let url = cfg.acme_directory.clone();
        let dir_err = |e: instant_acme::Error| AcmeError::Directory {
            url: url.clone(),
            message: chain(&e),
        };
        let http = client::http_client(&cfg.acme_ca_file, &url)?;
        let builder = Account::builder_with_http(http);
        let account = match self.store.load_account().filter(|a| a.directory == url) {
            Some(stored) => builder
                .from_credentials(stored.credentials)
                .await
                .map_err(dir_err)?,
            None => {
                let contact: Vec<&str> = if cfg.acme_contact.is_empty() {
                    vec![]
                } else {
                    vec![cfg.acme_contact.as_str()]
                };
                let new = NewAccount {
                    contact: &contact,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                };
                let (account, credentials) = builder
                    .create(&new, url.clone(), None)
                    .await
                    .map_err(dir_err)?;
                self.store.save_account(&store::StoredAccount {
                    directory: url.clone(),
                    credentials,
                })?;
                tracing::info!("ACME: registered account {} at {url}", account.id());
                account
            }
        };
        self.account = Some(account.clone());
        Ok(account)
    }

    async fn attempt(&mut self, reason: &str) {
        let now = crate::clock::unix_now();
        tracing::info!(
            "ACME: requesting a certificate for {} from {} ({reason})",
            self.names.join(", "),
            self.svc.config.tls.acme_directory
        );
        let result = match tokio::time::timeout(ATTEMPT_TIMEOUT, self.issue()).await {
            Ok(r) => r,
            Err(_) => Err(AcmeError::Timeout),
        };
        let mut failure = None;
        match result {
            Ok(ck) => {
                let info = CertInfo::of(&ck);
                install(&self.svc.tls, &self.svc.metrics, ck.clone());
                if let Some(i) = &info {
                    tracing::info!(
                        "ACME: certificate issued for {} by {}: serial {}, valid until {}; serving it on every TLS listener",
                        i.names.join(", "),
                        i.issuer,
                        i.serial,
                        fmt_time(i.not_after)
                    );
                }
                self.current = Current::of(&ck);
                self.failures = 0;
                self.retry_at = None;
                self.ari = None;
                self.ari_check_at = 0;
                self.state.last_error = None;
                self.state.last_attempt = Some(now);
                self.state.directory = Some(self.svc.config.tls.acme_directory.clone());
                self.state.ari_window = None;
                if let Some(i) = &info {
                    self.state.next_renewal =
                        Some(schedule::lifetime_due(i.not_before, i.not_after));
                    self.state.reason = "a third of the lifetime left".into();
                }
            }
            Err(e) => {
                self.failures += 1;
                let m = &self.svc.metrics;
                crate::metrics::Metrics::inc(&m.acme_failures);
                m.acme_last_failure
                    .store(now, std::sync::atomic::Ordering::Relaxed);
                let delay = schedule::backoff(self.failures);
                self.retry_at = Some(now + delay.as_secs() as i64);
                let serving = match &self.current {
                    Some(c) => format!(
                        "the current one, valid until {}",
                        fmt_time(c.info.not_after)
                    ),
                    None => "the self-signed stand-in".into(),
                };
                failure = Some(format!(
                    "ACME: certificate for {} not obtained: {e}; keeping {serving}; next attempt in {}s (attempt {})",
                    self.names.join(", "),
                    delay.as_secs(),
                    self.failures
                ));
                // A cached account may be what broke (e.g. the CA forgot it): start afresh.
                self.account = None;
                self.state.last_error = Some(e.to_string());
                self.state.last_attempt = Some(now);
                self.state.next_renewal = self.retry_at;
                self.state.reason = format!("retry {} after a failure", self.failures);
            }
        }
        // Always written: `postern tls renew --wait` watches last_attempt.
        if let Err(e) = self.store.save_state(&self.state) {
            tracing::warn!("ACME: cannot write the renewal state: {e}");
        }
        // Logged after the state is saved, so whoever reacts to the log line (an operator,
        // a test) finds the failure in `postern tls status` too.
        if let Some(line) = failure {
            tracing::error!("{line}");
        }
    }

    async fn issue(&mut self) -> Result<Arc<CertifiedKey>, AcmeError> {
        let replaces = if self.ari_supported && self.ari.is_some() {
            self.current.as_ref().and_then(|c| c.id.clone())
        } else {
            None
        };
        let challenge = self.svc.config.tls.acme_challenge;
        let reuse = if self.svc.config.tls.acme_reuse_key {
            std::fs::read_to_string(self.store.path(store::KEY_FILE)).ok()
        } else {
            None
        };
        let account = self.account().await?;
        let issued = match order::issue(
            &account,
            &self.names,
            challenge,
            &self.svc.tls,
            replaces.clone(),
            reuse.as_deref(),
        )
        .await
        {
            // The CA no longer knows the stored account (e.g. a test CA restarted): register
            // a new one and try once more.
            Err(AcmeError::Acme(instant_acme::Error::Api(p)))
                if p.r#type.as_deref()
                    == Some("urn:ietf:params:acme:error:accountDoesNotExist") =>
            {
                tracing::warn!(
                    "ACME: the CA does not know the stored account; registering a new one"
                );
                self.store.forget_account();
                self.account = None;
                let account = self.account().await?;
                order::issue(
                    &account,
                    &self.names,
                    challenge,
                    &self.svc.tls,
                    replaces,
                    reuse.as_deref(),
                )
                .await?
            }
            other => other?,
        };
        self.store.save_cert(&issued.chain_pem, &issued.key_pem)?;
        self.store
            .load_cert()
            .ok_or_else(|| AcmeError::Certificate("the stored chain and key do not load".into()))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_the_hostname_then_the_extras_once_each() {
        let mut c = crate::config::Config::parse(
            "domain='example.com'\nhostname='Mail.Example.com'\ndata_dir='/x'\n",
            std::path::Path::new("t.toml"),
        )
        .unwrap();
        c.tls.acme_extra_names = vec![
            "mta-sts.example.com".into(),
            "mail.example.com".into(),
            " ".into(),
            "AUTOCONFIG.example.com".into(),
        ];
        assert_eq!(
            super::wanted_names(&c),
            [
                "mail.example.com",
                "mta-sts.example.com",
                "autoconfig.example.com"
            ]
        );
    }
}
