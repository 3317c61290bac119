//! Outbound delivery: MX resolution, the SMTP client, opportunistic STARTTLS, MTA-STS, and
//! the smarthost relay.
//!
//! `deliver_domain` makes one delivery attempt of one message to the recipients of one
//! domain: through the configured relay for that domain (`relay.rs`), or else every address
//! of every MX host in turn until one gives an answer per recipient.

pub mod client;
pub mod dane;
mod mail_tx;
pub mod mta_sts;
pub mod mx;
pub mod payload;
pub mod relay;
pub mod reply;
pub mod session_cache;
pub mod tls;

use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};

use client::{Attempt, RcptResult, TlsPolicy, Transaction};

/// What one delivery attempt uses, borrowed from the server's services.
pub struct Env<'a> {
    pub config: &'a crate::config::Config,
    pub dns: &'a hickory_resolver::TokioResolver,
    pub mta_sts: &'a mta_sts::PolicyCache,
    pub roots: &'a tls::Roots,
    pub metrics: &'a crate::metrics::Metrics,
    pub shutdown: &'a tokio_util::sync::CancellationToken,
    /// Where each TLS outcome is counted for TLS reports (RFC 8460).
    pub tlsrpt: &'a crate::tlsrpt::Store,
    /// Idle SMTP sessions kept for the next message to the same destination.
    pub sessions: &'a std::sync::Arc<session_cache::SessionCache>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Delivered,
    Transient,
    Permanent,
}

/// The outcome of one attempt for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RcptOutcome {
    pub kind: Kind,
    /// Enhanced status (RFC 3463), e.g. "5.1.1".
    pub status: String,
    /// What to show as Diagnostic-Code / last error: the server's reply or our reason.
    pub diagnostic: String,
    /// The MX host that answered, if one did.
    pub remote_mta: Option<String>,
}

impl RcptOutcome {
    fn ours(kind: Kind, status: &str, diagnostic: String) -> RcptOutcome {
        RcptOutcome {
            kind,
            status: status.into(),
            diagnostic,
            remote_mta: None,
        }
    }
}

/// The domain part of an address (lower case), for grouping recipients.
pub fn domain_of(addr: &str) -> String {
    addr.rsplit_once('@')
        .map(|(_, d)| d)
        .unwrap_or("")
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

/// One attempt to deliver `message` to `rcpts` (all in `domain`). Returns one outcome per
/// recipient, in order.
pub async fn deliver_domain(
    svc: &Env<'_>,
    queue_id: &str,
    domain: &str,
    mail_from: &str,
    rcpts: &[String],
    message: &[u8],
) -> Vec<RcptOutcome> {
    if let Some(relay) = svc.config.outbound.relay_for(domain) {
        return relay::deliver(svc, queue_id, domain, relay, mail_from, rcpts, message).await;
    }
    let all = |o: RcptOutcome| vec![o; rcpts.len()];
    let route = match svc.sessions.route(domain) {
        Some(r) => r,
        None => match route(svc, queue_id, domain).await {
            Ok(r) => {
                svc.sessions.keep_route(domain, &r);
                r
            }
            Err(o) => return all(o),
        },
    };
    let session_cache::Route {
        hosts,
        policy,
        dane,
        report_policy,
    } = route;
    let tx = Transaction {
        helo_name: &svc.config.hostname,
        roots: svc.roots.get(),
        mail_from,
        rcpts,
        message,
        auth: None,
        sessions: Some(svc.sessions),
    };
    let port = svc.config.outbound.port;
    let mut last_error = format!("no reachable MX host for {domain}");
    // The status of the last failure: 4.4.1 (no answer), or ours for a TLS/DANE refusal.
    let mut last_status = "4.4.1".to_string();
    for host in &hosts {
        for &ip in &host.addrs {
            if svc.shutdown.is_cancelled() {
                return all(RcptOutcome::ours(
                    Kind::Transient,
                    "4.3.2",
                    "delivery interrupted by shutdown".into(),
                ));
            }
            let requirement = match dane.iter().find(|(n, _)| *n == host.name) {
                Some((_, dane::HostDane::LookupFailed(e))) => {
                    // RFC 7672 §2.2.1: a secure host whose TLSA lookup fails is not used.
                    tracing::info!(queue_id, domain, mx = %host.name, "skipping the host: {}", crate::logsafe::UntrustedText(e));
                    last_error = format!("{}: DANE: {e}", host.name);
                    last_status = "4.7.5".into();
                    svc.tlsrpt.tlsa_lookup_failed(domain, &host.name, ip, e);
                    break;
                }
                Some((_, dane::HostDane::Required(r))) => Some(r),
                _ => None,
            };
            let host_policy = TlsPolicy {
                // The TLSA records replace the WebPKI check (RFC 7672 §3.1).
                require_valid: policy.require_valid && requirement.is_none(),
                ..policy
            };
            let (attempt, info) =
                client::attempt(&host.name, ip, port, &tx, host_policy, requirement).await;
            svc.tlsrpt.attempt(
                domain,
                &report_policy,
                requirement,
                &host.name,
                ip,
                &attempt,
                &info,
            );
            let remote = Some(format!("{} [{}]", host.name, ip));
            match attempt {
                Attempt::Done(results) => {
                    let outcomes = outcomes(results, &remote);
                    let ok = outcomes
                        .iter()
                        .filter(|o| o.kind == Kind::Delivered)
                        .count();
                    let perm = outcomes
                        .iter()
                        .filter(|o| o.kind == Kind::Permanent)
                        .count();
                    tracing::info!(
                        queue_id,
                        domain,
                        mx = %host.name,
                        %ip,
                        tls = info.tls,
                        tls_verified = info.tls_verified,
                        dane = info.dane.as_deref().unwrap_or("none"),
                        reused = info.reused,
                        accepted = ok,
                        rejected = perm,
                        deferred = outcomes.len() - ok - perm,
                        "outbound transaction"
                    );
                    svc.metrics
                        .messages_sent
                        .fetch_add(ok as u64, Ordering::Relaxed);
                    return outcomes;
                }
                Attempt::Rejected(r) => {
                    tracing::info!(queue_id, domain, mx = %host.name, %ip, "message rejected: {}", crate::logsafe::UntrustedText(&r.to_string()));
                    return all(RcptOutcome {
                        kind: Kind::Permanent,
                        status: r.status(),
                        diagnostic: r.to_string(),
                        remote_mta: remote,
                    });
                }
                Attempt::TryNext(e) => {
                    tracing::info!(queue_id, domain, mx = %host.name, %ip, "trying the next address: {}", crate::logsafe::UntrustedText(&e));
                    last_error = e;
                    last_status = "4.4.1".into();
                }
                Attempt::Deferred { status, reason } => {
                    tracing::info!(queue_id, domain, mx = %host.name, %ip, "trying the next address: {}", crate::logsafe::UntrustedText(&reason));
                    last_error = reason;
                    last_status = status;
                }
            }
        }
    }
    all(RcptOutcome::ours(Kind::Transient, &last_status, last_error))
}

/// What the DNS says about delivering to `domain`: its MX hosts (filtered by an enforced
/// MTA-STS policy), the TLS policy, DANE per host and the policy TLS reports name. Err: one
/// outcome for every recipient (no MX, no host matching the MTA-STS policy).
async fn route(
    svc: &Env<'_>,
    queue_id: &str,
    domain: &str,
) -> Result<session_cache::Route, RcptOutcome> {
    let mut hosts = match mx::resolve(svc.dns, domain).await {
        Ok(h) => h,
        Err(e) => {
            tracing::info!(queue_id, domain, "MX resolution: {e}");
            let kind = if e.is_permanent() {
                Kind::Permanent
            } else {
                Kind::Transient
            };
            return Err(RcptOutcome::ours(kind, e.status(), e.to_string()));
        }
    };
    let mut policy = TlsPolicy {
        require_valid: svc.config.outbound.require_tls,
        implicit: false,
    };
    let dane = dane::for_domain(svc.config, domain, &hosts).await;
    let has_dane = dane
        .iter()
        .any(|(_, d)| matches!(d, dane::HostDane::Required(_)));
    // RFC 8461 §5: with an "enforce" policy only MX hosts matching it may be used, and only
    // over TLS with a certificate valid for the MX name. DANE takes precedence (§2).
    let sts = if has_dane {
        tracing::debug!(
            domain,
            "DANE applies: MTA-STS is not consulted (RFC 8461 §2)"
        );
        Ok(None)
    } else {
        mta_sts::policy_for(svc, domain).await
    };
    // What TLS reports (RFC 8460 §4.4) say the domain's policy was, for hosts without DANE.
    let report_policy = match &sts {
        Ok(Some(p)) if p.mode != mta_sts::Mode::None => crate::tlsrpt::Policy::sts(p),
        _ => crate::tlsrpt::Policy::none(),
    };
    match sts {
        Ok(Some(p)) if p.mode == mta_sts::Mode::Enforce => {
            let first_mx = hosts.first().map(|h| h.name.clone());
            hosts.retain(|h| p.matches_mx(&h.name));
            policy.require_valid = true;
            if hosts.is_empty() {
                let why = format!("no MX host of {domain} matches its MTA-STS policy");
                let first = first_mx.as_deref();
                svc.tlsrpt
                    .sts_mx_mismatch(domain, &report_policy, first, &why);
                tracing::info!(queue_id, domain, "deferred: {why} (mx: {:?})", p.mx);
                return Err(RcptOutcome::ours(Kind::Transient, "4.7.5", why));
            }
        }
        Ok(Some(p)) if p.mode == mta_sts::Mode::Testing => {
            tracing::debug!(domain, "MTA-STS policy in testing mode: not enforced");
        }
        Ok(_) => {}
        Err(e) => {
            // RFC 8461 §5.1: a policy that cannot be fetched is treated as none (no cached one).
            tracing::info!(domain, "MTA-STS policy fetch failed: {e}");
            svc.tlsrpt.sts_fetch_failed(domain, &e);
        }
    }
    Ok(session_cache::Route {
        hosts,
        policy,
        dane,
        report_policy,
    })
}

/// Per-recipient outcomes of a transaction that reached RCPT at `remote`.
fn outcomes(results: Vec<RcptResult>, remote: &Option<String>) -> Vec<RcptOutcome> {
    results
        .into_iter()
        .map(|r| match r {
            RcptResult::Accepted => RcptOutcome {
                kind: Kind::Delivered,
                status: "2.0.0".into(),
                diagnostic: "accepted".into(),
                remote_mta: remote.clone(),
            },
            RcptResult::Transient(r) => RcptOutcome {
                kind: Kind::Transient,
                status: r.status(),
                diagnostic: r.to_string(),
                remote_mta: remote.clone(),
            },
            RcptResult::Permanent(r) => RcptOutcome {
                kind: Kind::Permanent,
                status: r.status(),
                diagnostic: r.to_string(),
                remote_mta: remote.clone(),
            },
        })
        .collect()
}
