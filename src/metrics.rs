//! Counters every part bumps; rendered in Prometheus text format by http/ (opt-in listener).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

#[derive(Default, Debug)]
pub struct Metrics {
    pub smtp_connections: AtomicU64,
    pub imap_connections: AtomicU64,
    pub pop3_connections: AtomicU64,
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
    /// HTTP connections accepted (all HTTP listeners).
    pub http_connections: AtomicU64,
}

impl Metrics {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

// --- ops additions: more counters and the Prometheus text rendering -------------------------

impl Metrics {
    /// The Prometheus text exposition format (version 0.0.4): `# HELP`, `# TYPE`, one sample
    /// per metric. `cert_not_after` is the expiry (Unix seconds) of the certificate being
    /// served now, read by the caller from the TLS resolver; when None, `cert_not_after` (set by
    /// tls/) is used if non-zero.
    pub fn render_prometheus(&self, cert_not_after: Option<i64>) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: String| {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            ));
        };
        metric(
            "postern_messages_received_total",
            "counter",
            "Messages accepted for delivery (port 25 and submission).",
            g(&self.messages_received).to_string(),
        );
        metric(
            "postern_messages_rejected_total",
            "counter",
            "Messages refused at SMTP time.",
            g(&self.messages_rejected).to_string(),
        );
        metric(
            "postern_messages_sent_total",
            "counter",
            "Messages delivered to remote servers.",
            g(&self.messages_sent).to_string(),
        );
        metric(
            "postern_messages_bounced_total",
            "counter",
            "Messages that failed permanently (a DSN was sent).",
            g(&self.messages_bounced).to_string(),
        );
        metric(
            "postern_messages_deferred_total",
            "counter",
            "Delivery attempts that failed temporarily.",
            g(&self.messages_deferred).to_string(),
        );
        metric(
            "postern_queue_size",
            "gauge",
            "Messages waiting in the outbound queue.",
            self.queue_size.load(Ordering::Relaxed).to_string(),
        );
        metric(
            "postern_smtp_connections_total",
            "counter",
            "SMTP connections accepted (port 25 and submission).",
            g(&self.smtp_connections).to_string(),
        );
        metric(
            "postern_imap_connections_total",
            "counter",
            "IMAP connections accepted.",
            g(&self.imap_connections).to_string(),
        );
        metric(
            "postern_pop3_connections_total",
            "counter",
            "POP3 connections accepted.",
            g(&self.pop3_connections).to_string(),
        );
        metric(
            "postern_http_connections_total",
            "counter",
            "HTTP connections accepted (ACME, autoconfig, MTA-STS, metrics).",
            g(&self.http_connections).to_string(),
        );
        metric(
            "postern_auth_failures_total",
            "counter",
            "Failed logins (SMTP AUTH and IMAP).",
            g(&self.auth_failures).to_string(),
        );
        let stored = self.cert_not_after.load(Ordering::Relaxed);
        let expiry = cert_not_after.or((stored != 0).then_some(stored));
        if let Some(t) = expiry {
            metric(
                "postern_certificate_expiry_timestamp_seconds",
                "gauge",
                "Unix time at which the served TLS certificate expires.",
                t.to_string(),
            );
        }
        out
    }
}
