//! `[spam]` in the config file: DNS blocklists, rspamd, the per-user junk filter.

use serde::{Deserialize, Serialize};

/// Spam defence on port 25: DNS blocklists, rspamd, the per-user junk filter (issue 17).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Spam {
    /// DNS blocklist zones queried for the connecting IP (RFC 5782); empty = none.
    pub dnsbl: Vec<String>,
    /// "reject" (554 5.7.1 at RCPT) or "junk" (deliver into Junk with a header).
    pub dnsbl_action: SpamAction,
    /// Client IPs or networks ("192.0.2.0/24", "2001:db8::/32") never looked up.
    pub dnsbl_allowlist: Vec<String>,
    /// rspamd's normal worker, e.g. "http://127.0.0.1:11333"; empty = off.
    pub rspamd_url: String,
    /// Seconds to wait for rspamd's answer.
    pub rspamd_timeout_secs: u64,
    /// When rspamd is unreachable or fails: "accept" (and log) or "tempfail" (451).
    pub rspamd_failure: RspamdFailure,
    /// Per-user junk filter trained from the user's IMAP actions.
    pub junk_filter: bool,
    /// Spam probability above which a message goes to Junk.
    pub junk_threshold: f64,
    /// Trained ham and spam messages each user needs before the filter decides anything.
    pub junk_min_ham: u32,
    pub junk_min_spam: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpamAction {
    Reject,
    Junk,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RspamdFailure {
    Accept,
    Tempfail,
}

impl Default for Spam {
    fn default() -> Self {
        Spam {
            dnsbl: vec![],
            dnsbl_action: SpamAction::Reject,
            dnsbl_allowlist: vec![],
            rspamd_url: String::new(),
            rspamd_timeout_secs: 15,
            rspamd_failure: RspamdFailure::Accept,
            junk_filter: true,
            junk_threshold: 0.95,
            junk_min_ham: 20,
            junk_min_spam: 20,
        }
    }
}

impl Spam {
    /// The first invalid key with its message; `is_zone` says whether a name is a DNS name.
    pub(crate) fn check(&self, is_zone: fn(&str) -> bool) -> Result<(), (&'static str, String)> {
        if let Some(z) = self
            .dnsbl
            .iter()
            .find(|z| !is_zone(z.trim_end_matches('.')))
        {
            return Err(("spam.dnsbl", format!("{z:?} is not a DNS zone name")));
        }
        for n in &self.dnsbl_allowlist {
            crate::inbound::dnsbl::Network::parse(n).map_err(|m| ("spam.dnsbl_allowlist", m))?;
        }
        if !self.rspamd_url.is_empty() && !self.rspamd_url.starts_with("http://") {
            return Err((
                "spam.rspamd_url",
                "must be an http:// URL such as \"http://127.0.0.1:11333\"".into(),
            ));
        }
        if !(0.5..=1.0).contains(&self.junk_threshold) {
            return Err(("spam.junk_threshold", "must be between 0.5 and 1.0".into()));
        }
        Ok(())
    }
}
