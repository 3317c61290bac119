//! Failed-login throttling shared by submission and IMAP: a growing delay per client IP and per
//! account, then a temporary refusal. Each failure is logged by the caller in one greppable
//! line (`auth failed: ... ip=...`) that contrib/fail2ban matches.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures are forgotten after this long without a new one.
const WINDOW: Duration = Duration::from_secs(15 * 60);

/// Past this many addresses or accounts, entries older than `WINDOW` are dropped.
const MAX_ENTRIES: usize = 100_000;

#[derive(Default)]
struct Entry {
    failures: u32,
    last: Option<Instant>,
}

pub struct LoginThrottle {
    max_failures: u32,
    by_ip: Mutex<HashMap<IpAddr, Entry>>,
    by_user: Mutex<HashMap<String, Entry>>,
}

/// What to do with a login attempt before checking the password.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead after sleeping this long (zero for a clean record).
    Proceed(Duration),
    /// Too many failures: refuse with a temporary error without checking.
    Refuse,
}

impl LoginThrottle {
    pub fn new(max_failures: u32) -> LoginThrottle {
        LoginThrottle {
            max_failures: max_failures.max(1),
            by_ip: Mutex::default(),
            by_user: Mutex::default(),
        }
    }

    pub fn check(&self, ip: IpAddr, user: &str) -> Verdict {
        let now = Instant::now();
        let count = |e: Option<&Entry>| match e {
            Some(e) if e.last.is_some_and(|t| now.duration_since(t) < WINDOW) => e.failures,
            _ => 0,
        };
        let ip_f = count(
            self.by_ip
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&ip),
        );
        let user_f = count(
            self.by_user
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&user.to_lowercase()),
        );
        let worst = ip_f.max(user_f);
        if worst >= self.max_failures {
            return Verdict::Refuse;
        }
        // 0, 0, 1 s, 2 s, 4 s, ... capped at 8 s: harmless for a typo, ruinous for a bot.
        let delay = if worst < 2 {
            0
        } else {
            1u64 << (worst - 2).min(3)
        };
        Verdict::Proceed(Duration::from_secs(delay))
    }

    pub fn failed(&self, ip: IpAddr, user: &str) {
        let now = Instant::now();
        let bump = |e: &mut Entry| {
            if e.last.is_some_and(|t| now.duration_since(t) >= WINDOW) {
                e.failures = 0;
            }
            e.failures += 1;
            e.last = Some(now);
        };
        self.failed_ip(ip);
        let mut users = self.by_user.lock().unwrap_or_else(|e| e.into_inner());
        // Bound memory against bots trying millions of user names.
        if users.len() > MAX_ENTRIES {
            users.retain(|_, e| e.last.is_some_and(|t| now.duration_since(t) < WINDOW));
        }
        bump(users.entry(user.to_lowercase()).or_default());
    }

    /// A failure that names no account (a login name that does not canonicalise): it counts
    /// against the address only, so junk names cannot fill the per-account table.
    pub fn failed_ip(&self, ip: IpAddr) {
        let now = Instant::now();
        let mut ips = self.by_ip.lock().unwrap_or_else(|e| e.into_inner());
        // Bound memory against bots rotating addresses (an IPv6 /64 has plenty).
        if ips.len() > MAX_ENTRIES {
            ips.retain(|_, e| e.last.is_some_and(|t| now.duration_since(t) < WINDOW));
        }
        let e = ips.entry(ip).or_default();
        if e.last.is_some_and(|t| now.duration_since(t) >= WINDOW) {
            e.failures = 0;
        }
        e.failures += 1;
        e.last = Some(now);
    }

    pub fn succeeded(&self, ip: IpAddr, user: &str) {
        self.by_ip
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&ip);
        self.by_user
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&user.to_lowercase());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_then_refuses() {
        let t = LoginThrottle::new(5);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(t.check(ip, "a"), Verdict::Proceed(Duration::ZERO));
        for _ in 0..3 {
            t.failed(ip, "a");
        }
        assert_eq!(t.check(ip, "a"), Verdict::Proceed(Duration::from_secs(2)));
        // Another IP trying the same account is slowed too.
        assert_eq!(
            t.check("192.0.2.9".parse().unwrap(), "a"),
            Verdict::Proceed(Duration::from_secs(2))
        );
        t.failed(ip, "a");
        t.failed(ip, "a");
        assert_eq!(t.check(ip, "b"), Verdict::Refuse);
        t.succeeded(ip, "a");
        assert_eq!(t.check(ip, "a"), Verdict::Proceed(Duration::ZERO));
    }
}
