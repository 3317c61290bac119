//! The one login entry point of every protocol (SMTP AUTH, IMAP LOGIN/AUTHENTICATE, and later
//! POP3 and ManageSieve). Each attempt goes through the same steps, in this order:
//!
//! 1. canonicalise the name (`login_name`); a name that does not canonicalise is refused
//!    before any password check and counts against the client address;
//! 2. the throttle (`throttle`), keyed by address and by canonical name, so every spelling of
//!    an account counts against that account;
//! 3. the authorization identity (RFC 4616 §2): empty or the same account, no proxy logins;
//! 4. the password: the auth cache, else Argon2 on the bounded `Verifier`; an unknown user
//!    costs a dummy verification so timing does not tell which users exist;
//! 5. the failure metric and the one fail2ban line, written here only:
//!    `auth failed: service=S ip=IP user=U reason=R`, with `U` escaped by `logsafe::Untrusted`.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::Accounts;
use super::auth_cache::AuthCache;
use super::login_name::canonical_login;
use super::password::{DUMMY_HASH, Verifier};
use super::sasl::Credentials;
use super::throttle::{LoginThrottle, Verdict};
use crate::logsafe::Untrusted;
use crate::metrics::Metrics;

/// Why a login was refused; each protocol maps it to its own reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The name cannot be an account's (control characters, brackets, trailing dot…).
    BadName,
    /// Too many recent failures from this address or for this account: try later.
    Throttled,
    /// The client asked to act as another user (SASL authzid).
    NotAuthorized,
    /// Unknown user or wrong password (not told apart).
    Invalid,
}

impl Refusal {
    fn reason(self) -> &'static str {
        match self {
            Refusal::BadName => "bad-name",
            Refusal::Throttled => "throttled",
            Refusal::NotAuthorized => "authzid",
            Refusal::Invalid => "invalid",
        }
    }
}

/// Throttle, verifier, cache and metric of every login.
pub struct Logins {
    accounts: Arc<Accounts>,
    throttle: LoginThrottle,
    verifier: Verifier,
    cache: AuthCache,
    metrics: Arc<Metrics>,
    /// Identity of the accounts snapshot the cache was filled from; a new one empties it.
    cache_snapshot: Mutex<usize>,
}

/// An attempt past the name and throttle checks.
struct Attempt {
    name: String,
    delay: Duration,
}

impl Logins {
    pub fn new(accounts: Arc<Accounts>, max_failures: u32, metrics: Arc<Metrics>) -> Logins {
        Logins::with_parts(
            accounts,
            LoginThrottle::new(max_failures),
            Verifier::per_core(),
            AuthCache::new(
                super::auth_cache::DEFAULT_TTL,
                super::auth_cache::DEFAULT_CAPACITY,
            ),
            metrics,
        )
    }

    pub fn with_parts(
        accounts: Arc<Accounts>,
        throttle: LoginThrottle,
        verifier: Verifier,
        cache: AuthCache,
        metrics: Arc<Metrics>,
    ) -> Logins {
        Logins {
            accounts,
            throttle,
            verifier,
            cache,
            metrics,
            cache_snapshot: Mutex::new(0),
        }
    }

    /// Log in from async code: the throttle delay sleeps on the runtime, Argon2 runs on a
    /// blocking thread. Returns the canonical account name.
    pub async fn login(
        self: &Arc<Self>,
        service: &'static str,
        ip: IpAddr,
        creds: Credentials,
    ) -> Result<String, Refusal> {
        let attempt = self.begin(service, ip, &creds)?;
        if !attempt.delay.is_zero() {
            tokio::time::sleep(attempt.delay).await;
        }
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.finish(service, ip, &creds, attempt))
            .await
            .unwrap_or(Err(Refusal::Invalid))
    }

    /// Log in from a blocking thread (the IMAP session steps off the runtime).
    pub fn login_blocking(
        &self,
        service: &'static str,
        ip: IpAddr,
        creds: &Credentials,
    ) -> Result<String, Refusal> {
        let attempt = self.begin(service, ip, creds)?;
        if !attempt.delay.is_zero() {
            std::thread::sleep(attempt.delay);
        }
        self.finish(service, ip, creds, attempt)
    }

    /// A login the protocol layer could not even decode (e.g. a non-UTF-8 IMAP LOGIN
    /// password): it counts against the address and is logged like any other failure.
    pub fn malformed(&self, service: &'static str, ip: IpAddr, user: &str) {
        self.throttle.failed_ip(ip);
        self.log_failure(service, ip, user, "malformed");
    }

    fn begin(
        &self,
        service: &'static str,
        ip: IpAddr,
        c: &Credentials,
    ) -> Result<Attempt, Refusal> {
        let name = match canonical_login(&c.user, self.accounts.domain()) {
            Ok(n) => n,
            Err(why) => {
                self.throttle.failed_ip(ip);
                self.log_failure(service, ip, &c.user, &format!("bad-name:{why}"));
                return Err(Refusal::BadName);
            }
        };
        match self.throttle.check(ip, &name) {
            Verdict::Refuse => {
                self.log_failure(service, ip, &c.user, Refusal::Throttled.reason());
                Err(Refusal::Throttled)
            }
            Verdict::Proceed(delay) => Ok(Attempt { name, delay }),
        }
    }

    fn finish(
        &self,
        service: &'static str,
        ip: IpAddr,
        c: &Credentials,
        attempt: Attempt,
    ) -> Result<String, Refusal> {
        let name = attempt.name;
        let authz_ok = c.authzid.is_empty()
            || canonical_login(&c.authzid, self.accounts.domain()).is_ok_and(|z| z == name);
        let result = if !authz_ok {
            Err(Refusal::NotAuthorized)
        } else if self.password_ok(&name, &c.password) {
            Ok(name.clone())
        } else {
            Err(Refusal::Invalid)
        };
        match result {
            Ok(_) => {
                self.throttle.succeeded(ip, &name);
                tracing::info!("auth ok: service={service} ip={ip} user={name}");
            }
            Err(r) => {
                self.throttle.failed(ip, &name);
                self.log_failure(service, ip, &c.user, r.reason());
            }
        }
        result
    }

    fn password_ok(&self, name: &str, password: &str) -> bool {
        let Ok(snap) = self.accounts.snapshot() else {
            return false;
        };
        {
            let mut seen = self
                .cache_snapshot
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let id = Arc::as_ptr(&snap) as usize;
            if *seen != id {
                self.cache.forget_all();
                *seen = id;
            }
        }
        let Some(phc) = snap.users.get(name).map(|u| u.password.as_str()) else {
            // Spend the same time as a real check so timing does not reveal which users exist.
            let _ = self.verifier.verify(password, DUMMY_HASH);
            return false;
        };
        if self.cache.hit(name, password, phc) {
            return true;
        }
        let ok = self.verifier.verify(password, phc);
        if ok {
            self.cache.insert(name, password, phc);
        }
        ok
    }

    fn log_failure(&self, service: &str, ip: IpAddr, user: &str, reason: &str) {
        Metrics::inc(&self.metrics.auth_failures);
        tracing::warn!(
            "auth failed: service={service} ip={ip} user={} reason={reason}",
            Untrusted(user)
        );
    }

    #[cfg(test)]
    fn cached(&self) -> usize {
        self.cache.len()
    }
}

#[cfg(test)]
mod tests;
