//! The hooks outbound delivery calls (`outbound::deliver_domain`): one line per place where
//! a TLS outcome is decided, translated here into RFC 8460 result types (§4.3).

use std::net::IpAddr;

use super::{Failure, Policy, ResultType, Store};
use crate::outbound::client::{Attempt, Info};
use crate::outbound::{dane, mta_sts};

impl Store {
    /// One attempt on `host`/`ip`: `dane` is the host's TLSA requirement, `sts` the domain's
    /// MTA-STS policy when DANE does not apply (a "tlsa" policy takes precedence, RFC 8461 §2).
    #[allow(clippy::too_many_arguments)]
    pub fn attempt(
        &self,
        domain: &str,
        sts: &Policy,
        dane: Option<&dane::Requirement>,
        host: &str,
        ip: IpAddr,
        attempt: &Attempt,
        info: &Info,
    ) {
        let tlsa;
        let policy = match dane {
            Some(r) => {
                tlsa = Policy::tlsa(host, r);
                &tlsa
            }
            None => sts,
        };
        if let Some(o) = outcome(attempt, info, policy, host, ip) {
            self.record(crate::clock::unix_now(), domain, policy, o);
        }
    }

    /// An "enforce" MTA-STS policy names none of the domain's MX hosts (`first_mx`).
    pub fn sts_mx_mismatch(&self, domain: &str, sts: &Policy, first_mx: Option<&str>, why: &str) {
        let f = Failure {
            result: ResultType::ValidationFailure,
            mx_host: first_mx.map(str::to_string),
            ip: None,
            reason: why.to_string(),
        };
        self.record(crate::clock::unix_now(), domain, sts, Err(f));
    }

    /// The domain announces an MTA-STS policy (TXT) that could not be fetched or parsed.
    pub fn sts_fetch_failed(&self, domain: &str, e: &mta_sts::StsError) {
        let result = match e {
            mta_sts::StsError::Parse(_) => ResultType::StsPolicyInvalid,
            mta_sts::StsError::Fetch(_) => ResultType::StsPolicyFetchError,
        };
        let policy = Policy {
            kind: "sts".into(),
            ..Policy::none()
        };
        let f = Failure {
            result,
            mx_host: None,
            ip: None,
            reason: e.to_string(),
        };
        self.record(crate::clock::unix_now(), domain, &policy, Err(f));
    }

    /// The TLSA lookup of a DNSSEC-secure MX host failed (RFC 7672 §2.2.1: host not used).
    pub fn tlsa_lookup_failed(&self, domain: &str, host: &str, ip: IpAddr, why: &str) {
        let f = Failure {
            result: ResultType::DnssecInvalid,
            mx_host: Some(host.to_string()),
            ip: Some(ip),
            reason: why.to_string(),
        };
        let policy = Policy::tlsa(host, &dane::Requirement::Encrypt);
        self.record(crate::clock::unix_now(), domain, &policy, Err(f));
    }
}

/// What one attempt on an MX host tells the report, or None when no TLS session was tried
/// (the connection failed, or it ended before TLS came into question).
pub fn outcome(
    attempt: &Attempt,
    info: &Info,
    policy: &Policy,
    host: &str,
    ip: IpAddr,
) -> Option<Result<(), Failure>> {
    let fail = |result, reason: &str| {
        Some(Err(Failure {
            result,
            mx_host: Some(host.to_string()),
            ip: Some(ip),
            reason: reason.to_string(),
        }))
    };
    let cert_error = || {
        info.tls_error
            .as_deref()
            .unwrap_or("certificate not verified")
    };
    if let Attempt::Deferred { status, reason } = attempt {
        // The statuses `client::open_session` gives its TLS refusals (RFC 3463 X.7.4: no
        // STARTTLS; X.7.5: the certificate or the TLSA match failed).
        return match status.as_str() {
            "4.7.4" => fail(ResultType::StarttlsNotSupported, reason),
            "4.7.5" if policy.kind == "tlsa" => fail(ResultType::ValidationFailure, reason),
            "4.7.5" => fail(ResultType::from_cert_error(cert_error()), reason),
            _ => None,
        };
    }
    if info.tls {
        // An MTA-STS policy in testing mode lets the mail go, but the failure is reported
        // (RFC 8461 §5: that is what testing mode is for).
        if policy.kind == "sts" && !info.tls_verified && info.dane.is_none() {
            return fail(ResultType::from_cert_error(cert_error()), cert_error());
        }
        return Some(Ok(()));
    }
    match attempt {
        Attempt::Done(_) | Attempt::Rejected(_) => fail(
            ResultType::StarttlsNotSupported,
            "the server offers no STARTTLS",
        ),
        _ => None,
    }
}
