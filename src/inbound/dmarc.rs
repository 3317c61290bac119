//! DMARC (RFC 7489) for every author domain of the message.
//!
//! mail-auth exempts a From with several domains from DMARC, which would let a forger add
//! a second address to slip past `p=reject`. RFC 7489 §6.6.1 allows applying the policy of
//! each domain instead; we do, and the strictest outcome decides.

use mail_auth::common::resolver::ToFqdn;
use mail_auth::dmarc::Policy;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::{
    AuthenticatedMessage, DkimOutput, DmarcOutput, DmarcResult, DnsError, Error, SpfOutput,
};

use super::authenticator::Authenticator;
use super::policy::{self, DmarcStatus};
use super::{dns_probe, pct};

/// At most this many distinct author domains are evaluated. A From with more is abuse
/// (each costs DNS lookups); it goes to Junk rather than letting an unchecked domain pass.
const MAX_DOMAINS: usize = 10;

pub struct DmarcEval {
    /// One output per evaluated author domain (empty: no usable From).
    pub outputs: Vec<DmarcOutput>,
    /// The strictest status over all domains.
    pub status: DmarcStatus,
    /// The domain whose status decided.
    pub domain: String,
}

pub async fn evaluate(
    auth: &Authenticator,
    message: Option<&AuthenticatedMessage<'_>>,
    dkim: &[DkimOutput<'_>],
    spf_domain: &str,
    spf: &SpfOutput,
) -> DmarcEval {
    let mut eval = DmarcEval {
        outputs: Vec::new(),
        status: DmarcStatus::None,
        domain: String::new(),
    };
    let Some(m) = message else {
        return eval;
    };
    let domains = author_domains(m.froms());
    let mut best_rank = None;
    for d in domains.iter().take(MAX_DOMAINS) {
        let out = if domains.len() == 1 {
            verify_one(auth, m, dkim, spf_domain, spf).await
        } else {
            let mut one = m.clone();
            one.from.retain(|a| domain_of(a) == *d);
            verify_one(auth, &one, dkim, spf_domain, spf).await
        };
        let status = status_of(auth, &out).await;
        let r = rank(status);
        if best_rank.is_none_or(|b| r > b) {
            best_rank = Some(r);
            eval.status = status;
            eval.domain = out.domain().to_string();
        }
        eval.outputs.push(out);
    }
    if domains.len() > MAX_DOMAINS
        && rank(eval.status) < rank(DmarcStatus::Fail(Policy::Quarantine))
    {
        eval.status = DmarcStatus::Fail(Policy::Quarantine);
        eval.domain = domains[MAX_DOMAINS].clone();
    }
    eval
}

async fn verify_one(
    auth: &Authenticator,
    m: &AuthenticatedMessage<'_>,
    dkim: &[DkimOutput<'_>],
    spf_domain: &str,
    spf: &SpfOutput,
) -> DmarcOutput {
    let out = auth
        .inner
        .verify_dmarc(auth.params(DmarcParameters::new(m, dkim, spf_domain, spf)))
        .await;
    // No record may mean the zone answered SERVFAIL (see dns_probe): then it is temperror.
    if out.dmarc_record().is_some()
        || out.domain().is_empty()
        || matches!(out.result(), DmarcResult::TempError(_))
    {
        return out;
    }
    let name = format!("_dmarc.{}", out.domain()).to_fqdn().into_owned();
    if auth.caches.txt.contains(name.as_str())
        || !dns_probe::txt_lookup_fails(auth.resolver(), &name).await
    {
        return out;
    }
    let err = DmarcResult::TempError(Error::Dns(DnsError::Resolver(format!(
        "lookup of {name} failed"
    ))));
    DmarcOutput::default()
        .with_domain(out.domain())
        .with_spf_result(err.clone())
        .with_dkim_result(err)
}

/// The status policy acts on, with `pct` sampling applied (RFC 7489 §6.6.4).
async fn status_of(auth: &Authenticator, out: &DmarcOutput) -> DmarcStatus {
    let status = match out.result() {
        DmarcResult::Pass => DmarcStatus::Pass,
        DmarcResult::Fail(_) => DmarcStatus::Fail(out.policy()),
        DmarcResult::TempError(_) => DmarcStatus::TempError,
        DmarcResult::PermError(_) => DmarcStatus::PermError,
        DmarcResult::None => DmarcStatus::None,
    };
    if let DmarcStatus::Fail(p @ (Policy::Reject | Policy::Quarantine)) = status {
        let pct = pct::lookup_pct(auth.resolver(), out.domain()).await;
        if pct < 100 {
            let roll = rand::random_range(0..100u8);
            return DmarcStatus::Fail(policy::apply_pct(p, pct, roll));
        }
    }
    status
}

/// Strictness: what would be done with the message, most severe highest.
fn rank(s: DmarcStatus) -> u8 {
    match s {
        DmarcStatus::Pass => 0,
        DmarcStatus::None => 1,
        DmarcStatus::PermError => 2,
        DmarcStatus::Fail(Policy::None | Policy::Unspecified) => 3,
        DmarcStatus::TempError => 4,
        DmarcStatus::Fail(Policy::Quarantine) => 5,
        DmarcStatus::Fail(Policy::Reject) => 6,
    }
}

fn domain_of(address: &str) -> String {
    address
        .rsplit_once('@')
        .map_or("", |(_, d)| d)
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

/// Distinct domains of the From addresses, in order of appearance.
fn author_domains(froms: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for a in froms {
        let d = domain_of(a);
        if !d.is_empty() && !out.contains(&d) {
            out.push(d);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_and_rank() {
        let froms = vec![
            "a@Example.org".to_string(),
            "b@example.org.".to_string(),
            "c@other.test".to_string(),
            "nodomain".to_string(),
        ];
        assert_eq!(author_domains(&froms), vec!["example.org", "other.test"]);
        assert!(rank(DmarcStatus::Fail(Policy::Reject)) > rank(DmarcStatus::TempError));
        assert!(rank(DmarcStatus::TempError) > rank(DmarcStatus::None));
        assert!(rank(DmarcStatus::None) > rank(DmarcStatus::Pass));
    }
}
