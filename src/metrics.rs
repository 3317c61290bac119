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
    /// ACME issuance/renewal attempts that failed (set by tls/acme).
    pub acme_failures: AtomicU64,
    /// Unix time of the last failed ACME attempt; 0 = none since start.
    pub acme_last_failure: AtomicI64,
}

/// The certificate being served, as `/metrics` reports it.
#[derive(Debug, Clone)]
pub struct ServedCert {
    /// Its DNS names (one `postern_tls_self_signed` sample each).
    pub names: Vec<String>,
    pub not_after: i64,
    /// Issuer = subject: not signed by a CA clients trust.
    pub self_signed: bool,
    /// A self-signed stand-in served only because ACME has not issued yet: its expiry
    /// (year 4096) is no real expiry and is not exported, so no alert is silenced by it.
    pub stand_in: bool,
}

impl Metrics {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

// --- ops additions: more counters and the Prometheus text rendering -------------------------

impl Metrics {
    /// The Prometheus text exposition format (version 0.0.4): `# HELP`, `# TYPE`, one sample
    /// per metric. `served` is the certificate being served now, read by the caller from the
    /// TLS resolver; when None, `cert_not_after` (set by tls/) is used if non-zero.
    pub fn render_prometheus(&self, served: Option<&ServedCert>) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut out = String::new();
        // Labelled samples, appended after the plain ones.
        let mut labelled = String::new();
        if let Some(c) = served {
            labelled.push_str(
                "# HELP postern_tls_self_signed 1 when the certificate served for this name is self-signed.\n\
                 # TYPE postern_tls_self_signed gauge\n",
            );
            for name in &c.names {
                // Label values escape \ and " (Prometheus text format); names are DNS names.
                let label = name.replace('\\', "\\\\").replace('"', "\\\"");
                labelled.push_str(&format!(
                    "postern_tls_self_signed{{name=\"{label}\"}} {}\n",
                    u8::from(c.self_signed)
                ));
            }
        }
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
        metric(
            "postern_acme_failures_total",
            "counter",
            "ACME certificate attempts that failed (see `postern tls status`).",
            g(&self.acme_failures).to_string(),
        );
        metric(
            "postern_acme_last_failure_timestamp_seconds",
            "gauge",
            "Unix time of the last failed ACME attempt (0: none since start).",
            self.acme_last_failure.load(Ordering::Relaxed).to_string(),
        );
        let stored = self.cert_not_after.load(Ordering::Relaxed);
        let expiry = match served {
            Some(c) if c.stand_in => None,
            Some(c) => Some(c.not_after),
            None => (stored != 0).then_some(stored),
        };
        if let Some(t) = expiry {
            metric(
                "postern_certificate_expiry_timestamp_seconds",
                "gauge",
                "Unix time at which the served TLS certificate expires.",
                t.to_string(),
            );
        }
        out + &labelled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn served(self_signed: bool, stand_in: bool) -> ServedCert {
        ServedCert {
            names: vec!["mail.example.test".into(), "localhost".into()],
            not_after: 68_000_000_000,
            self_signed,
            stand_in,
        }
    }

    #[test]
    fn the_acme_stand_in_has_no_expiry_and_is_flagged_self_signed() {
        let m = Metrics::default();
        let out = m.render_prometheus(Some(&served(true, true)));
        assert!(
            !out.contains("postern_certificate_expiry_timestamp_seconds"),
            "{out}"
        );
        assert!(out.contains("postern_tls_self_signed{name=\"mail.example.test\"} 1\n"));
        assert!(out.contains("postern_tls_self_signed{name=\"localhost\"} 1\n"));
        let out = m.render_prometheus(Some(&served(false, false)));
        assert!(out.contains("postern_certificate_expiry_timestamp_seconds 68000000000\n"));
        assert!(out.contains("postern_tls_self_signed{name=\"mail.example.test\"} 0\n"));
        Metrics::inc(&m.acme_failures);
        m.acme_last_failure.store(1_700_000_000, Ordering::Relaxed);
        let out = m.render_prometheus(None);
        assert!(out.contains("postern_acme_failures_total 1\n"), "{out}");
        assert!(out.contains("postern_acme_last_failure_timestamp_seconds 1700000000\n"));
    }
}
