//! A small bounded cache for the records mail-auth parses (SPF, DKIM keys, DMARC policies,
//! PTR and address sets). The shared hickory resolver already caches wire answers; this one
//! saves re-parsing and honours each record's TTL (`valid_until`). Tests inject records here.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Instant;

use mail_auth::ResolverCache;

/// Entries kept per cache before the expired ones (then, if still full, all) are dropped.
const CAPACITY: usize = 4096;

pub struct RecordCache<K, V> {
    entries: Mutex<HashMap<K, (V, Instant)>>,
}

impl<K: Hash + Eq, V: Clone> RecordCache<K, V> {
    pub fn new() -> Self {
        RecordCache {
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Whether a fresh entry exists for `key` (used to tell a cached answer from a lookup
    /// that failed: mail-auth stores only answers, never resolver errors).
    pub fn contains<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get(key).is_some()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, (V, Instant)>> {
        // A panic while holding the lock cannot leave the map inconsistent; keep serving.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<K: Hash + Eq, V: Clone> Default for RecordCache<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Hash + Eq, V: Clone> ResolverCache<K, V> for RecordCache<K, V> {
    fn get<Q>(&self, name: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut map = self.lock();
        match map.get(name) {
            Some((v, until)) if *until > Instant::now() => Some(v.clone()),
            Some(_) => {
                map.remove(name);
                None
            }
            None => None,
        }
    }

    fn remove<Q>(&self, name: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.lock().remove(name).map(|(v, _)| v)
    }

    fn insert(&self, key: K, value: V, valid_until: Instant) {
        let mut map = self.lock();
        if map.len() >= CAPACITY {
            let now = Instant::now();
            map.retain(|_, (_, until)| *until > now);
            if map.len() >= CAPACITY {
                map.clear();
            }
        }
        map.insert(key, (value, valid_until));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn expired_entries_are_not_served() {
        let c: RecordCache<Box<str>, u32> = RecordCache::new();
        c.insert("a.".into(), 1, Instant::now() + Duration::from_secs(60));
        c.insert("b.".into(), 2, Instant::now() - Duration::from_secs(1));
        assert_eq!(c.get("a."), Some(1));
        assert_eq!(c.get("b."), None);
        assert!(c.contains("a."));
        assert!(!c.contains("b."));
    }

    #[test]
    fn stays_bounded() {
        let c: RecordCache<u32, u32> = RecordCache::new();
        let later = Instant::now() + Duration::from_secs(60);
        for i in 0..(CAPACITY as u32 * 2 + 10) {
            c.insert(i, i, later);
        }
        assert!(c.lock().len() <= CAPACITY);
    }
}
