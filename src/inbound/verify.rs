//! One message through SPF (RFC 7208, HELO and MAIL FROM identities), DKIM (RFC 6376, every
//! signature), DMARC (RFC 7489) and iprev (RFC 8601 §3), ending in the
//! Authentication-Results header and a disposition. "every signature" is bounded by
//! MAX_SIGNATURES so a hostile message cannot multiply body hashes and DNS lookups.

use std::net::IpAddr;

use mail_auth::common::resolver::ToFqdn;
use mail_auth::dkim::DkimError;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{
    AuthenticatedMessage, AuthenticationResults, DkimOutput, DkimResult, DnsError, Error,
    IprevOutput, IprevResult, SpfOutput, SpfResult,
};

use super::authenticator::Authenticator;
use super::policy::{self, DmarcStatus, Findings};
use super::stats::Outcome;
use super::{MessageContext, Verdict, dmarc, dns_probe, strip};
use crate::config::Inbound;

/// DKIM signatures verified per message; further ones are ignored (RFC 6376 §6.1).
pub(super) const MAX_SIGNATURES: usize = 8;

/// Messages up to this size are parsed (and their bodies hashed) on the async worker: tens
/// of microseconds for the usual one or two signatures, a few hundred at worst
/// (MAX_SIGNATURES body hashes), about what handing the worker to another thread costs.
const PARSE_IN_PLACE: usize = 16 * 1024;

/// SPF of the HELO identity (when it is a domain) and of MAIL FROM (None for the null
/// reverse-path): what `evaluate` needs before it looks at the message, so the SMTP loop
/// may run it from MAIL FROM on (`early`).
pub async fn spf_checks(
    auth: &Authenticator,
    peer: IpAddr,
    helo: &str,
    hostname: &str,
    mail_from: &str,
) -> (SpfOutput, Option<SpfOutput>) {
    let ip = canonical_ip(peer);
    let helo = helo.trim();
    let mail_from = bare_sender(mail_from);
    let spf_helo = async {
        if helo_is_domain(helo) {
            let out = auth
                .inner
                .verify_spf(auth.params(SpfParameters::verify_ehlo(ip, helo, hostname)))
                .await;
            hidden_dns_failure_spf(auth, out).await
        } else {
            SpfOutput::new(String::new())
        }
    };
    let spf_mail = async {
        if mail_from.is_empty() {
            None
        } else {
            let out = auth
                .inner
                .verify_spf(auth.params(SpfParameters::verify_mail_from(
                    ip, helo, hostname, mail_from,
                )))
                .await;
            Some(hidden_dns_failure_spf(auth, out).await)
        }
    };
    tokio::join!(spf_helo, spf_mail)
}

/// iprev of the client (RFC 8601 §3): PTR, then the forward confirmation. Depends on the
/// address alone, so the SMTP loop may start it at connect (`early`).
pub async fn iprev_check(auth: &Authenticator, peer: IpAddr) -> IprevOutput {
    auth.inner
        .verify_iprev(auth.params(canonical_ip(peer)))
        .await
}

/// An address literal ("[192.0.2.1]") has no SPF record to check (RFC 7208 §2.3).
fn helo_is_domain(helo: &str) -> bool {
    !helo.is_empty() && !helo.starts_with('[') && helo.parse::<IpAddr>().is_err()
}

fn bare_sender(mail_from: &str) -> &str {
    mail_from
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
}

/// Results of the checks that need no message, when the SMTP loop ran them early.
#[derive(Debug, Default)]
pub struct Early {
    pub spf: Option<(SpfOutput, Option<SpfOutput>)>,
    pub iprev: Option<IprevOutput>,
}

pub async fn evaluate(
    auth: &Authenticator,
    cfg: &Inbound,
    hostname: &str,
    ctx: &MessageContext<'_>,
    message: &[u8],
    early: Early,
) -> Verdict {
    let ip = canonical_ip(ctx.peer_ip);
    let helo = ctx.helo.trim();
    let helo_is_domain = helo_is_domain(helo);
    let mail_from = bare_sender(ctx.mail_from);
    let null_sender = mail_from.is_empty();

    // SPF for both identities and iprev are independent: run them together, unless the
    // SMTP loop already did while the message arrived.
    let spf = async {
        match early.spf {
            Some(done) => done,
            None => spf_checks(auth, ctx.peer_ip, ctx.helo, hostname, ctx.mail_from).await,
        }
    };
    let iprev = async {
        match early.iprev {
            Some(done) => done,
            None => iprev_check(auth, ctx.peer_ip).await,
        }
    };
    let ((spf_helo, spf_mail), iprev) = tokio::join!(spf, iprev);
    // With the null reverse-path the HELO identity stands in for MAIL FROM (RFC 7208 §2.4),
    // and DMARC aligns against it (RFC 7489 §3.1.2).
    let spf_ident = spf_mail.as_ref().unwrap_or(&spf_helo);
    let spf_domain = if null_sender {
        helo
    } else {
        mail_from.rsplit_once('@').map_or(helo, |(_, d)| d)
    };

    // Parsing hashes the whole body for each signature: CPU work that must not stall the
    // other sessions on this worker thread. A small message is parsed in place: handing
    // the worker to another thread costs more than hashing it.
    let limited = strip::limit_dkim_signatures(message, MAX_SIGNATURES);
    let parsed = if limited.len() <= PARSE_IN_PLACE {
        AuthenticatedMessage::parse(&limited)
    } else {
        cpu_bound(|| AuthenticatedMessage::parse(&limited))
    };
    let dkim_raw: Vec<DkimOutput<'_>> = match &parsed {
        Some(m) => auth.inner.verify_dkim(auth.params(m)).await,
        None => Vec::new(),
    };
    // A body that no longer matches its signed hash is a failed signature (RFC 6376 §6.1.3
    // step 4 returns PERMFAIL); mail-auth calls it "neutral", report "fail" (RFC 8601 §2.7.1).
    let dkim: Vec<DkimOutput<'_>> = dkim_raw
        .iter()
        .map(|o| match (o.result(), o.signature()) {
            (DkimResult::Neutral(err @ Error::Dkim(DkimError::FailedBodyHashMatch)), Some(sig)) => {
                DkimOutput::fail(err.clone()).with_signature(sig)
            }
            _ => o.clone(),
        })
        .collect();
    let header_from = parsed.as_ref().map_or("", |m| m.from());
    let dmarc = dmarc::evaluate(auth, parsed.as_ref(), &dkim, spf_domain, spf_ident).await;
    let status = dmarc.status;

    let dkim_temp = dkim.iter().any(|o| is_dkim_temp(o.result()));
    let dns_temp =
        spf_ident.result() == SpfResult::TempError || dkim_temp || status == DmarcStatus::TempError;
    let disposition = policy::decide(
        cfg,
        &Findings {
            dmarc: status,
            from_domain: &dmarc.domain,
            dns_temp,
        },
    );

    // RFC 8601: one field, our hostname as authserv-id.
    let mut ar = AuthenticationResults::new(hostname);
    if helo_is_domain {
        ar = ar.with_spf_ehlo_result(&spf_helo, ip, helo);
    }
    // With the null reverse-path the MAIL FROM identity is postmaster@<HELO> (RFC 7208
    // §2.4), which also keeps smtp.mailfrom a valid pvalue (RFC 8601 §2.2; "<>" is not).
    let postmaster = format!("postmaster@{helo}");
    let mut spf_none_no_identity = false;
    ar = match &spf_mail {
        Some(out) => ar.with_spf_mailfrom_result(out, ip, mail_from, helo),
        None if helo_is_domain => ar.with_spf_mailfrom_result(&spf_helo, ip, &postmaster, helo),
        None => {
            spf_none_no_identity = true;
            ar
        }
    };
    for out in &dmarc.outputs {
        ar = ar.with_dmarc_result(out);
    }
    ar = ar.with_iprev_result(&iprev, ip);
    let mut value = ar.to_string();
    if spf_none_no_identity {
        // Null sender and an address-literal HELO: no identity to check.
        value.push_str(";\r\n\tspf=none");
    }
    if dkim.is_empty() {
        value.push_str(";\r\n\tdkim=none");
    }
    for o in &dkim {
        value.push_str(&dkim_result(o, header_from));
    }
    if dmarc.outputs.is_empty() {
        value.push_str(";\r\n\tdmarc=none");
    }

    auth.stats.record(
        spf_outcome(spf_ident.result()),
        dkim_outcome(&dkim),
        status.into(),
        &disposition,
    );
    let from_domains = dmarc
        .outputs
        .iter()
        .map(|o| o.domain())
        .collect::<Vec<_>>()
        .join(",");
    let dkim_summary = if dkim.is_empty() {
        "none".to_string()
    } else {
        dkim.iter()
            .map(|o| {
                let d = o.signature().map_or("?", |s| s.d.as_str());
                format!("{}:{}", d, short(o.result()))
            })
            .collect::<Vec<_>>()
            .join(",")
    };
    tracing::info!(
        peer = %ctx.peer_ip,
        helo,
        mail_from,
        from_domain = %from_domains,
        spf_helo = %spf_helo.result(),
        spf_mailfrom = %spf_ident.result(),
        dkim = %dkim_summary,
        dmarc = ?status,
        iprev = iprev_short(&iprev.result),
        verdict = ?disposition,
        "inbound verdict"
    );

    Verdict {
        disposition,
        prepend: format!("Authentication-Results: {value}\r\n"),
        authserv_id: Some(hostname.to_string()),
    }
}

/// One `dkim=` result (RFC 8601 §2.7.1). mail-auth names the signer by `header.i` alone
/// when the signature has an i= tag; DMARC and readers key on the domain, so `header.d` is
/// always given.
fn dkim_result(o: &DkimOutput<'_>, header_from: &str) -> String {
    let part = AuthenticationResults::new("")
        .with_dkim_result(o, header_from)
        .to_string();
    match o.signature() {
        Some(sig) if !sig.i.is_empty() => {
            let d: String = sig
                .d
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
                .collect();
            part.replacen(" header.i=", &format!(" header.d={d} header.i="), 1)
        }
        _ => part,
    }
}

/// Run `f` off the async scheduler's hands when the runtime allows it (multi-threaded, as
/// `postern serve` runs); inline otherwise (single-threaded test runtimes).
pub(crate) fn cpu_bound<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

fn spf_outcome(r: SpfResult) -> Outcome {
    match r {
        SpfResult::Pass => Outcome::Pass,
        SpfResult::Fail | SpfResult::SoftFail => Outcome::Fail,
        SpfResult::Neutral | SpfResult::None => Outcome::None,
        SpfResult::TempError => Outcome::TempError,
        SpfResult::PermError => Outcome::PermError,
    }
}

/// Pass if any signature verified, else the first signature's result.
fn dkim_outcome(outputs: &[DkimOutput<'_>]) -> Outcome {
    if outputs.iter().any(|o| *o.result() == DkimResult::Pass) {
        return Outcome::Pass;
    }
    match outputs.first().map(|o| o.result()) {
        None | Some(DkimResult::None) => Outcome::None,
        Some(DkimResult::Pass) => Outcome::Pass,
        Some(DkimResult::Fail(_) | DkimResult::Neutral(_)) => Outcome::Fail,
        Some(DkimResult::TempError(_)) => Outcome::TempError,
        Some(DkimResult::PermError(_)) => Outcome::PermError,
    }
}

/// A v4-mapped IPv6 peer is checked as the IPv4 address it is (RFC 7208 §5.6).
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// SPF "none" may hide a SERVFAIL at the policy domain (see dns_probe); report it as
/// temperror (RFC 7208 §2.6.6) when the zone really is unreachable.
async fn hidden_dns_failure_spf(auth: &Authenticator, out: SpfOutput) -> SpfOutput {
    // Not a multi-label name: check_host() returned "none" without asking DNS (RFC 7208
    // §4.3), so there is nothing to re-check.
    let multi_label = out
        .domain()
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
        .count()
        >= 2;
    if out.result() != SpfResult::None || !multi_label {
        return out;
    }
    let name = out.domain().to_fqdn().into_owned();
    if auth.caches.txt.contains(name.as_str())
        || !dns_probe::txt_lookup_fails(auth.resolver(), &name).await
    {
        return out;
    }
    out.with_result(SpfResult::TempError)
}

/// A DKIM key lookup that failed temporarily: a resolver error, or an answer with a
/// SERVFAIL/REFUSED code that mail-auth files as a permanent "not found".
fn is_dkim_temp(r: &DkimResult) -> bool {
    match r {
        DkimResult::TempError(_) => true,
        DkimResult::PermError(Error::Dns(DnsError::RecordNotFound(code))) => {
            !dns_probe::is_definitive(*code)
        }
        _ => false,
    }
}

fn short(r: &DkimResult) -> &'static str {
    match r {
        DkimResult::Pass => "pass",
        DkimResult::Neutral(_) => "neutral",
        DkimResult::Fail(_) => "fail",
        DkimResult::PermError(_) => "permerror",
        DkimResult::TempError(_) => "temperror",
        DkimResult::None => "none",
    }
}

fn iprev_short(r: &IprevResult) -> &'static str {
    match r {
        IprevResult::Pass => "pass",
        IprevResult::Fail(_) => "fail",
        IprevResult::TempError(_) => "temperror",
        IprevResult::PermError(_) => "permerror",
        IprevResult::None => "none",
    }
}
