//! Counters every part bumps; rendered in Prometheus text format by http/ (opt-in listener).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

#[derive(Default, Debug)]
pub struct Metrics {
    pub smtp_connections: AtomicU64,
    pub imap_connections: AtomicU64,
    pub messages_received: AtomicU64,
    pub messages_rejected: AtomicU64,
    pub messages_sent: AtomicU64,
    pub messages_bounced: AtomicU64,
    pub messages_deferred: AtomicU64,
    pub auth_failures: AtomicU64,
    /// Messages currently in the outbound queue (set by the queue).
    pub queue_size: AtomicI64,
    /// Unix time the served certificate expires (set by tls/).
    pub cert_not_after: AtomicI64,
}

impl Metrics {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}
