//! Recent successful password checks, like Dovecot's auth cache: phones and Thunderbird open
//! several connections at once and reconnect often, and each must not cost an Argon2 run.
//!
//! - The key is HMAC-SHA256(per-process random secret, user ‖ password): neither the password
//!   nor an offline-guessable hash of it is kept; the secret dies with the process.
//! - An entry remembers the PHC hash it was verified against. A hit counts only while the
//!   accounts file still holds that same hash for the user, so `postern user passwd` and
//!   `postern user del` invalidate it as soon as the server re-reads the file (at the next
//!   lookup, by mtime); `forget_all` drops everything when the file changed.
//! - Bounded: at most `capacity` entries (expired ones go first, then the oldest), each valid
//!   for `ttl`.
//! - Only successes are stored; a failure never is (the caller counts it for the throttle).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

pub const DEFAULT_TTL: Duration = Duration::from_secs(5 * 60);
pub const DEFAULT_CAPACITY: usize = 1024;

type Tag = [u8; 32];

pub struct AuthCache {
    secret: [u8; 32],
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<Tag, Entry>>,
}

struct Entry {
    phc: String,
    at: Instant,
}

impl AuthCache {
    pub fn new(ttl: Duration, capacity: usize) -> AuthCache {
        AuthCache {
            secret: rand::random(),
            ttl,
            capacity: capacity.max(1),
            entries: Mutex::default(),
        }
    }

    fn tag(&self, user: &str, password: &str) -> Tag {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.secret)
            .expect("HMAC accepts any key length");
        // Length-prefixed so ("ab", "c") and ("a", "bc") differ.
        mac.update(&(user.len() as u64).to_be_bytes());
        mac.update(user.as_bytes());
        mac.update(password.as_bytes());
        let mut tag = [0u8; 32];
        tag.copy_from_slice(&mac.finalize().into_bytes());
        tag
    }

    /// Was (`user`, `password`) verified against `phc` within the TTL?
    pub fn hit(&self, user: &str, password: &str, phc: &str) -> bool {
        let tag = self.tag(user, password);
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(&tag) {
            Some(e) if e.at.elapsed() < self.ttl && e.phc == phc => true,
            Some(_) => {
                map.remove(&tag);
                false
            }
            None => false,
        }
    }

    /// Remember a successful verification of (`user`, `password`) against `phc`.
    pub fn insert(&self, user: &str, password: &str, phc: &str) {
        let tag = self.tag(user, password);
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= self.capacity && !map.contains_key(&tag) {
            let ttl = self.ttl;
            map.retain(|_, e| e.at.elapsed() < ttl);
            if map.len() >= self.capacity
                && let Some(oldest) = map.iter().min_by_key(|(_, e)| e.at).map(|(k, _)| *k)
            {
                map.remove(&oldest);
            }
        }
        map.insert(
            tag,
            Entry {
                phc: phc.to_owned(),
                at: Instant::now(),
            },
        );
    }

    /// Drop every entry (the accounts file changed).
    pub fn forget_all(&self) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_only_for_the_same_user_password_and_hash() {
        let c = AuthCache::new(DEFAULT_TTL, 8);
        assert!(!c.hit("bob@x", "pw", "H1"));
        c.insert("bob@x", "pw", "H1");
        assert!(c.hit("bob@x", "pw", "H1"));
        assert!(!c.hit("bob@x", "pW", "H1"));
        assert!(!c.hit("bob@xp", "w", "H1"));
        // The password changed on disk: the entry no longer counts, and is gone.
        assert!(!c.hit("bob@x", "pw", "H2"));
        assert!(c.is_empty());
        c.insert("bob@x", "pw", "H1");
        c.forget_all();
        assert!(!c.hit("bob@x", "pw", "H1"));
    }

    #[test]
    fn expires_and_stays_bounded() {
        let c = AuthCache::new(Duration::ZERO, 8);
        c.insert("bob@x", "pw", "H");
        assert!(!c.hit("bob@x", "pw", "H"));
        let c = AuthCache::new(DEFAULT_TTL, 3);
        for i in 0..10 {
            c.insert(&format!("u{i}"), "pw", "H");
        }
        assert_eq!(c.len(), 3);
        assert!(c.hit("u9", "pw", "H"));
        assert!(!c.hit("u0", "pw", "H"));
    }

    #[test]
    fn keys_differ_between_processes() {
        let (a, b) = (
            AuthCache::new(DEFAULT_TTL, 1),
            AuthCache::new(DEFAULT_TTL, 1),
        );
        assert_ne!(a.tag("bob", "pw"), b.tag("bob", "pw"));
        assert_eq!(a.tag("bob", "pw"), a.tag("bob", "pw"));
    }
}
