//! Inbound trust for mail arriving on port 25: SPF, DKIM, DMARC, iprev verdicts and the
//! Authentication-Results header (RFC 8601).
//!
//! The SMTP session calls `check_message` once per message at the end of DATA (port 25
//! only) and applies the returned `Verdict`: its `disposition` decides the reply and the
//! folder, `apply` produces the bytes to store.
//!
//! Layout: `verify` runs the checks through mail-auth with the shared resolver
//! (`authenticator`, `cache`), `dns_probe` tells SERVFAIL from "no record", `pct` reads the
//! DMARC sampling tag, `policy` turns findings into a disposition, `strip` removes forged
//! Authentication-Results fields.
//!
//! Policy, in short:
//! - DMARC p=reject failing → 550 5.7.1 (`[inbound].dmarc_reject`; when off, Junk instead);
//!   p=quarantine failing → Junk (`dmarc_quarantine`; when off, INBOX). Our own domain gets
//!   no exemption: its published record is looked up like any other.
//! - `pct` (RFC 7489 §6.6.4) is honoured: a message outside the sample gets the next lower
//!   policy. DMARCbis `t=y` (which mail-auth implements) lowers it the same way.
//! - A temporary DNS failure (timeout, SERVFAIL, REFUSED) on the SPF identity DMARC uses,
//!   on a DKIM key or on the DMARC record → 451 4.4.3 unless DMARC already passed
//!   (`tempfail_on_dns_error`; when off, the header says temperror and policy goes on).
//! - SPF or DKIM failing without a DMARC policy only shows in the header; iprev and the HELO
//!   identity are informational.
//! - `verify = false`: nothing is checked, the header says `none`, forged fields still go.

use std::net::IpAddr;
use std::sync::Arc;

use crate::spool::{Outgoing, Spool, SpooledMessage};

mod authenticator;
mod cache;
mod dmarc;
mod dns_probe;
pub mod dnsbl;
mod early;
mod pct;
mod policy;
pub mod rspamd;
mod stats;
mod strip;
mod verify;

pub use authenticator::Authenticator;
pub use early::EarlyChecks;
pub use stats::InboundStats;
pub use verify::Early;
pub(crate) use verify::cpu_bound;

/// The header naming why a message was filed as spam (forged copies are stripped).
pub const SPAM_HEADER: &str = "X-Postern-Spam";

/// What the SMTP session knows about a message when it asks for a verdict.
#[derive(Debug, Clone)]
pub struct MessageContext<'a> {
    pub peer_ip: IpAddr,
    /// The EHLO/HELO argument.
    pub helo: &'a str,
    /// MAIL FROM address; empty for the null reverse-path.
    pub mail_from: &'a str,
    pub rcpts: &'a [String],
}

/// What to do with the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Deliver to the INBOX.
    Accept,
    /// Deliver to the Junk folder (DMARC p=quarantine failed).
    Junk,
    /// Refuse at the end of DATA with this reply (e.g. 550 5.7.1 for DMARC p=reject).
    Reject {
        code: u16,
        enhanced: String,
        text: String,
    },
    /// Temporary failure (e.g. DNS timeout): 451 4.4.3 and the like.
    TempFail {
        code: u16,
        enhanced: String,
        text: String,
    },
}

#[derive(Debug, Clone)]
pub struct Verdict {
    pub disposition: Disposition,
    /// Header lines (each ending in CRLF) to prepend, e.g. Authentication-Results.
    pub prepend: String,
    /// Our authserv-id: Authentication-Results fields claiming it that came with the
    /// message are forged and removed by `apply` (RFC 8601 §5). None = remove nothing.
    pub authserv_id: Option<String>,
}

impl Verdict {
    pub fn accept() -> Verdict {
        Verdict {
            disposition: Disposition::Accept,
            prepend: String::new(),
            authserv_id: None,
        }
    }

    /// A spam finding (blocklist listing, rspamd, junk filter): mail that would be accepted
    /// goes to Junk instead, and the finding is recorded in an `X-Postern-Spam` header.
    pub fn mark_spam(&mut self, finding: &str) {
        if self.disposition == Disposition::Accept {
            self.disposition = Disposition::Junk;
        }
        self.prepend
            .push_str(&format!("{SPAM_HEADER}: {finding}\r\n"));
    }

    /// The message as it should be stored: our headers first, forged ones removed.
    pub fn apply(&self, message: &[u8]) -> Vec<u8> {
        let body = match &self.authserv_id {
            Some(id) => std::borrow::Cow::Owned(strip::strip_forged(message, id)),
            None => std::borrow::Cow::Borrowed(message),
        };
        let mut out = Vec::with_capacity(self.prepend.len() + body.len());
        out.extend_from_slice(self.prepend.as_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// `apply` for a spooled message, without copying it: our header fields, then `below`
    /// (the Received field), then the message with the forged fields left out.
    pub fn compose(&self, below: &[u8], message: Arc<SpooledMessage>) -> Outgoing {
        let omit = match &self.authserv_id {
            Some(id) => strip::forged_fields(message.as_bytes(), id),
            None => Vec::new(),
        };
        let mut out = Outgoing::new(message).omitting(omit);
        out.prepend(below);
        out.prepend(self.prepend.as_bytes());
        out
    }
}

/// Check a message received on port 25: SPF, DKIM, DMARC and iprev through the resolver of
/// `[dns]`, policy from `[inbound]`.
/// `spool` takes the cut copy of a large message with too many DKIM signatures; `early`
/// holds what the SMTP loop already checked while the message arrived (`EarlyChecks`).
pub async fn check_message(
    cfg: &crate::config::Config,
    authenticator: &Authenticator,
    spool: &Spool,
    ctx: &MessageContext<'_>,
    message: &[u8],
    early: Early,
) -> Verdict {
    if !cfg.inbound.verify {
        tracing::info!(peer = %ctx.peer_ip, "inbound verdict: verification off ([inbound].verify = false)");
        // Nothing checked (RFC 8601 §2.2 "none"), but forged claims still go.
        return Verdict {
            disposition: Disposition::Accept,
            prepend: format!("Authentication-Results: {}; none\r\n", cfg.hostname),
            authserv_id: Some(cfg.hostname.clone()),
        };
    }
    // More DKIM signatures than are verified: `evaluate` would cut them from a heap copy
    // of the whole message; for a large one the cut copy goes to the spool instead.
    let extra = strip::extra_dkim_signatures(message, verify::MAX_SIGNATURES);
    let limited;
    let message = if extra.is_empty() || message.len() <= crate::spool::THRESHOLD {
        message
    } else {
        match verify::cpu_bound(|| respool(spool, message, &extra)) {
            Ok(m) => {
                limited = m;
                limited.as_bytes()
            }
            Err(e) => {
                tracing::warn!(peer = %ctx.peer_ip, "inbound verdict: cannot spool: {e}");
                return Verdict {
                    disposition: Disposition::TempFail {
                        code: 452,
                        enhanced: "4.3.1".into(),
                        text: "Insufficient system storage, try again later".into(),
                    },
                    prepend: String::new(),
                    authserv_id: None,
                };
            }
        }
    };
    verify::evaluate(
        authenticator,
        &cfg.inbound,
        &cfg.hostname,
        ctx,
        message,
        early,
    )
    .await
}

/// The spam checks after the authentication verdict (port 25): rspamd when configured.
/// Only a message that would be delivered is sent; the verdict is updated in place.
pub async fn spam_checks(
    config: &crate::config::Config,
    dns: &hickory_resolver::TokioResolver,
    ctx: &MessageContext<'_>,
    queue_id: &str,
    message: &[u8],
    verdict: &mut Verdict,
) {
    let cfg = &config.spam;
    if cfg.rspamd_url.is_empty()
        || !matches!(verdict.disposition, Disposition::Accept | Disposition::Junk)
    {
        return;
    }
    let peer_name = ptr_name(dns, ctx.peer_ip).await;
    let env = rspamd::Envelope {
        peer_ip: ctx.peer_ip,
        peer_name: peer_name.as_deref(),
        helo: ctx.helo,
        mail_from: ctx.mail_from,
        rcpts: ctx.rcpts,
        auth_user: None,
        queue_id,
        mta_name: &config.hostname,
    };
    match rspamd::check(cfg, &env, message).await {
        rspamd::Decision::Accept => {}
        rspamd::Decision::Junk(finding) => verdict.mark_spam(&finding),
        rspamd::Decision::Reject(text) => {
            verdict.disposition = Disposition::Reject {
                code: 550,
                enhanced: "5.7.1".into(),
                text,
            }
        }
        rspamd::Decision::TempFail(text) => {
            verdict.disposition = Disposition::TempFail {
                code: 451,
                enhanced: "4.7.1".into(),
                text,
            }
        }
    }
}

/// The client's PTR name (first answer), for rspamd's `Hostname`; None without one.
async fn ptr_name(dns: &hickory_resolver::TokioResolver, ip: IpAddr) -> Option<String> {
    let lookup = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        dns.reverse_lookup(ip.to_canonical()),
    )
    .await
    .ok()?
    .ok()?;
    lookup.answers().iter().find_map(|r| match &r.data {
        hickory_resolver::proto::rr::RData::PTR(p) => {
            Some(p.0.to_string().trim_end_matches('.').to_string())
        }
        _ => None,
    })
}

/// A spooled copy of `message` without the ranges `omit`.
fn respool(
    spool: &Spool,
    message: &[u8],
    omit: &[std::ops::Range<usize>],
) -> std::io::Result<SpooledMessage> {
    let mut w = spool.writer();
    let mut at = 0;
    for r in omit {
        w.write(&message[at..r.start]);
        at = r.end;
    }
    w.write(&message[at..]);
    w.finish()
}

#[cfg(test)]
mod tests;
