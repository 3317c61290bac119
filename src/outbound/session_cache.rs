//! A small, bounded cache of idle SMTP sessions, after Postfix's `scache`: when a
//! transaction ends cleanly the session is kept open for a few seconds, and the next message
//! for the same destination (MX host address or relay, same port, same TLS mode, same login)
//! runs on it after an RSET (RFC 5321 §4.1.1.5) instead of a new TCP+TLS+EHLO(+AUTH).
//!
//! Reuse never weakens a policy: a session is taken only if what it established (TLS, a
//! verified certificate, a DANE match against the records the next message requires) meets
//! the next message's policy; otherwise a fresh connection is made.
//!
//! Beside the sessions, the route of each destination domain (MX hosts, MTA-STS and DANE
//! findings) is kept for `ROUTE_TIME`, the window in which a session is reused anyway, so
//! the next message to the domain skips those lookups as Postfix's cache lookup by
//! destination does. Only successful lookups are kept; a failure is looked up again.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::client::{Caps, Client, Info, TlsPolicy};
use super::dane::Requirement;

/// How long an idle session is kept (Postfix: `smtp_connection_cache_time_limit`, 2 s).
pub const IDLE_TIME: Duration = Duration::from_secs(3);
/// How long one session may be reused in all (Postfix: `smtp_connection_reuse_time_limit`).
pub const REUSE_TIME: Duration = Duration::from_secs(300);
/// At most this many idle sessions in all.
pub const MAX_IDLE: usize = 32;
/// How long a domain's route is reused without new DNS lookups (as long as an idle
/// session, which carries the same staleness).
pub const ROUTE_TIME: Duration = IDLE_TIME;
/// At most this many routes are kept (expired ones are swept first, then all).
const MAX_ROUTES: usize = 256;

/// Where and how to deliver to one domain, as `outbound::route` found it.
#[derive(Debug, Clone)]
pub struct Route {
    pub hosts: Vec<super::mx::MxHost>,
    pub policy: TlsPolicy,
    pub dane: Vec<(String, super::dane::HostDane)>,
    pub report_policy: crate::tlsrpt::Policy,
}

/// Where a session goes and how it was opened; sessions are only shared within one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub host: String,
    pub ip: IpAddr,
    pub port: u16,
    pub implicit_tls: bool,
    /// The login used on the session (relays), if any.
    pub auth: Option<String>,
}

struct Idle {
    key: Key,
    serial: u64,
    opened: Instant,
    client: Client,
    caps: Caps,
}

#[derive(Default)]
struct Inner {
    serial: u64,
    idle: Vec<Idle>,
}

/// The cache; shared by all deliveries of one server (`Services`).
pub struct SessionCache {
    inner: Mutex<Inner>,
    max: usize,
    /// Domain (lower case) -> when its route was looked up, and the route.
    routes: Mutex<HashMap<String, (Instant, Route)>>,
}

impl Default for SessionCache {
    fn default() -> Self {
        SessionCache::new(MAX_IDLE)
    }
}

/// Does a session that established `info` satisfy `policy` (and `dane`) for `host`?
pub fn satisfies(info: &Info, host: &str, policy: TlsPolicy, dane: Option<&Requirement>) -> bool {
    match dane {
        // RFC 7672 §2.2: TLS, and a chain matching the records required now.
        Some(Requirement::Verify(records)) => {
            info.tls && super::dane::verify(records, &info.peer_certs, host).is_ok()
        }
        Some(Requirement::Encrypt) => info.tls,
        None => !policy.require_valid || (info.tls && info.tls_verified),
    }
}

impl SessionCache {
    pub fn new(max: usize) -> SessionCache {
        SessionCache {
            inner: Mutex::new(Inner::default()),
            max,
            routes: Mutex::new(HashMap::new()),
        }
    }

    /// The route of `domain` if it was looked up less than `ROUTE_TIME` ago (never when
    /// session caching is off).
    pub fn route(&self, domain: &str) -> Option<Route> {
        let routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        routes
            .get(domain)
            .filter(|(at, _)| self.max > 0 && at.elapsed() < ROUTE_TIME)
            .map(|(_, r)| r.clone())
    }

    /// Keep the route of `domain` just looked up.
    pub fn keep_route(&self, domain: &str, route: &Route) {
        if self.max == 0 {
            return;
        }
        let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        if routes.len() >= MAX_ROUTES {
            routes.retain(|_, (at, _)| at.elapsed() < ROUTE_TIME);
            if routes.len() >= MAX_ROUTES {
                routes.clear();
            }
        }
        routes.insert(domain.to_string(), (Instant::now(), route.clone()));
    }

    /// An idle session for `key` that meets the policy, if one is cached.
    pub fn take(
        &self,
        key: &Key,
        policy: TlsPolicy,
        dane: Option<&Requirement>,
    ) -> Option<(Client, Caps, Instant)> {
        let mut inner = self.inner.lock().unwrap();
        let pos = inner.idle.iter().position(|s| {
            s.key == *key
                && s.opened.elapsed() < REUSE_TIME
                && satisfies(&s.client.info, &key.host, policy, dane)
        })?;
        let s = inner.idle.swap_remove(pos);
        Some((s.client, s.caps, s.opened))
    }

    /// Keep a session that ended a transaction cleanly; it is closed with QUIT after
    /// `IDLE_TIME` unless taken before. Needs a Tokio runtime.
    pub fn put(self: &Arc<Self>, key: Key, client: Client, caps: Caps, opened: Instant) {
        if self.max == 0 || opened.elapsed() >= REUSE_TIME {
            tokio::spawn(close(client));
            return;
        }
        let (serial, evicted) = {
            let mut inner = self.inner.lock().unwrap();
            inner.serial += 1;
            let serial = inner.serial;
            let evicted = if inner.idle.len() >= self.max {
                // Bounded: the oldest idle session makes room.
                Some(inner.idle.remove(0).client)
            } else {
                None
            };
            inner.idle.push(Idle {
                key,
                serial,
                opened,
                client,
                caps,
            });
            (serial, evicted)
        };
        if let Some(c) = evicted {
            tokio::spawn(close(c));
        }
        let me = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(IDLE_TIME).await;
            let gone = {
                let mut inner = me.inner.lock().unwrap();
                let pos = inner.idle.iter().position(|s| s.serial == serial);
                pos.map(|p| inner.idle.swap_remove(p).client)
            };
            if let Some(c) = gone {
                close(c).await;
            }
        });
    }

    /// How many sessions are idle now (tests, metrics).
    pub fn idle(&self) -> usize {
        self.inner.lock().unwrap().idle.len()
    }
}

async fn close(mut c: Client) {
    super::client::quit(&mut c).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route() -> Route {
        Route {
            hosts: vec![],
            policy: TlsPolicy::default(),
            dane: vec![],
            report_policy: crate::tlsrpt::Policy::none(),
        }
    }

    #[test]
    fn routes_are_kept_per_domain_and_not_when_caching_is_off() {
        let c = SessionCache::new(4);
        assert!(c.route("a.test").is_none());
        c.keep_route("a.test", &route());
        assert!(c.route("a.test").is_some());
        assert!(c.route("b.test").is_none());
        for i in 0..(MAX_ROUTES * 2) {
            c.keep_route(&format!("d{i}.test"), &route());
        }
        assert!(c.routes.lock().unwrap().len() <= MAX_ROUTES);
        let off = SessionCache::new(0);
        off.keep_route("a.test", &route());
        assert!(off.route("a.test").is_none());
    }

    #[test]
    fn an_old_route_is_not_served() {
        let c = SessionCache::new(4);
        let old = Instant::now() - ROUTE_TIME - Duration::from_millis(1);
        c.routes
            .lock()
            .unwrap()
            .insert("a.test".into(), (old, route()));
        assert!(c.route("a.test").is_none());
    }
}
