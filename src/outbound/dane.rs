//! DANE for SMTP (RFC 7672, RFC 6698): TLSA records at `_25._tcp.<mx>` pin the certificate
//! of an MX host. Used only when the MX lookup and the host's address lookup were
//! DNSSEC-authenticated (the AD bit of a local validating resolver, `dns::dnssec`); an
//! insecure answer never enables DANE, and never disables it either for a secure host.
//!
//! - Usable records are DANE-TA(2) and DANE-EE(3), selector 0/1, matching 0/1/2.
//!   PKIX-TA(0)/PKIX-EE(1) are unusable for SMTP (RFC 7672 §3.1.3).
//! - Usable records: TLS is mandatory and the certificate must match (§2.2); a mismatch is a
//!   temporary failure. Only unusable records: TLS is mandatory, unauthenticated (§2.2).
//! - A TLSA lookup that fails (SERVFAIL, timeout) for a secure host makes that host unusable
//!   for now (§2.2.1: otherwise an attacker could suppress DANE by blocking the answer).
//! - With DANE, MTA-STS is not applied to the domain (RFC 8461 §2).

use std::sync::Arc;

use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{RData, RecordType};
use rustls::RootCertStore;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use sha2::Digest;

use crate::dns::dnssec::AdResolver;

/// The DANE status of each MX host of `domain` (by name), or empty when DANE does not apply:
/// `[outbound] dane` off, no trusted validating resolver, or an insecure MX lookup.
pub async fn for_domain(
    config: &crate::config::Config,
    domain: &str,
    hosts: &[super::mx::MxHost],
) -> Vec<(String, HostDane)> {
    if !config.outbound.dane {
        return vec![];
    }
    let Ok(ad) = AdResolver::from_config(&config.dns) else {
        return vec![];
    };
    if !mx_secure(&ad, domain).await {
        return vec![];
    }
    let mut out = Vec::with_capacity(hosts.len());
    for h in hosts {
        out.push((h.name.clone(), lookup_host(&ad, &h.name).await));
    }
    out
}

/// One usable TLSA record (RFC 6698 §2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlsa {
    pub usage: u8,
    pub selector: u8,
    pub matching: u8,
    pub data: Vec<u8>,
}

/// What DANE asks of one MX host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// Usable TLSA records: TLS, and a certificate matching one of them.
    Verify(Vec<Tlsa>),
    /// Only unusable TLSA records: TLS is mandatory, the certificate is not checked.
    Encrypt,
}

/// DANE status of one MX host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostDane {
    /// No DANE: insecure DNS, or no TLSA records (securely denied).
    None,
    Required(Requirement),
    /// The TLSA lookup failed for a secure host: do not use the host now (temporary).
    LookupFailed(String),
}

fn is_secure_answer(a: &crate::dns::dnssec::AdAnswer) -> bool {
    a.authenticated && matches!(a.rcode, ResponseCode::NoError | ResponseCode::NXDomain)
}

/// Was the MX RRset of `domain` (or its secure denial, for an implicit MX) authenticated?
pub async fn mx_secure(ad: &AdResolver, domain: &str) -> bool {
    match ad.query(domain, RecordType::MX).await {
        Ok(a) => is_secure_answer(&a),
        Err(e) => {
            tracing::debug!(domain, "DNSSEC status of the MX lookup unknown: {e}");
            false
        }
    }
}

/// The DANE requirement of MX host `host` (whose MX RRset was secure).
pub async fn lookup_host(ad: &AdResolver, host: &str) -> HostDane {
    // RFC 7672 §2.2.2: TLSA records are looked up only for hosts whose address records are
    // secure. An IPv6-only host is secure when its AAAA is.
    let mut secure_addr = false;
    for rtype in [RecordType::A, RecordType::AAAA] {
        if let Ok(a) = ad.query(host, rtype).await
            && a.authenticated
            && a.rcode == ResponseCode::NoError
            && !a.answers.is_empty()
        {
            secure_addr = true;
            break;
        }
    }
    if !secure_addr {
        return HostDane::None;
    }
    let name = format!("_25._tcp.{}", host.trim_end_matches('.'));
    let answer = match ad.query(&name, RecordType::TLSA).await {
        Ok(a) if a.rcode == ResponseCode::NoError || a.rcode == ResponseCode::NXDomain => a,
        Ok(a) => return HostDane::LookupFailed(format!("TLSA lookup for {name}: {}", a.rcode)),
        Err(e) => return HostDane::LookupFailed(e),
    };
    if !answer.authenticated || answer.answers.is_empty() {
        return HostDane::None;
    }
    let records: Vec<Tlsa> = answer
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::TLSA(t) => Some(Tlsa {
                usage: t.cert_usage.into(),
                selector: t.selector.into(),
                matching: t.matching.into(),
                data: t.cert_data.clone(),
            }),
            _ => None,
        })
        .collect();
    HostDane::Required(requirement(records))
}

/// Sort records into a requirement: the usable ones, or "encrypt" when none is usable.
pub fn requirement(records: Vec<Tlsa>) -> Requirement {
    let usable: Vec<Tlsa> = records.into_iter().filter(usable).collect();
    if usable.is_empty() {
        Requirement::Encrypt
    } else {
        Requirement::Verify(usable)
    }
}

fn usable(t: &Tlsa) -> bool {
    // RFC 7672 §3.1.3: PKIX-TA(0) and PKIX-EE(1) are unusable for SMTP; unknown values too.
    let len_ok = match t.matching {
        0 => !t.data.is_empty(),
        1 => t.data.len() == 32,
        2 => t.data.len() == 64,
        _ => false,
    };
    matches!(t.usage, 2 | 3) && matches!(t.selector, 0 | 1) && len_ok
}

/// The selected part of a certificate (RFC 6698 §2.1.2): 0 = the whole DER, 1 = the
/// SubjectPublicKeyInfo DER.
fn selected(cert: &[u8], selector: u8) -> Option<Vec<u8>> {
    match selector {
        0 => Some(cert.to_vec()),
        1 => {
            let (_, x) = x509_parser::parse_x509_certificate(cert).ok()?;
            Some(x.tbs_certificate.subject_pki.raw.to_vec())
        }
        _ => None,
    }
}

/// Does `cert` match record `t` (RFC 6698 §2.1.3: 0 exact, 1 SHA-256, 2 SHA-512)?
fn matches(t: &Tlsa, cert: &[u8]) -> bool {
    let Some(part) = selected(cert, t.selector) else {
        return false;
    };
    match t.matching {
        0 => part == t.data,
        1 => sha2::Sha256::digest(&part).as_slice() == t.data.as_slice(),
        2 => sha2::Sha512::digest(&part).as_slice() == t.data.as_slice(),
        _ => false,
    }
}

/// The TLSA record `3 1 1` of a certificate: SHA-256 of its public key, as hex.
pub fn tlsa_311(cert: &[u8]) -> Option<String> {
    let spki = selected(cert, 1)?;
    Some(
        sha2::Sha256::digest(&spki)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    )
}

/// Check the chain the server presented against usable records. Ok(which record matched).
pub fn verify(
    records: &[Tlsa],
    chain: &[CertificateDer<'_>],
    host: &str,
) -> Result<String, String> {
    let Some(ee) = chain.first() else {
        return Err("the server presented no certificate".into());
    };
    // DANE-EE(3): the end-entity certificate or key itself; no name or date checks
    // (RFC 7672 §3.1.1).
    for t in records.iter().filter(|t| t.usage == 3) {
        if matches(t, ee) {
            return Ok(format!("DANE-EE 3 {} {}", t.selector, t.matching));
        }
    }
    // DANE-TA(2): a certificate of the presented chain is the trust anchor; the end-entity
    // must chain to it and name the MX host (RFC 7672 §3.1.2, §3.2.2).
    let mut ta_error = None;
    for t in records.iter().filter(|t| t.usage == 2) {
        for anchor in chain.iter().skip(1).filter(|c| matches(t, c)) {
            match chain_to(anchor, ee, &chain[1..], host) {
                Ok(()) => return Ok(format!("DANE-TA 2 {} {}", t.selector, t.matching)),
                Err(e) => ta_error = Some(e),
            }
        }
    }
    Err(match ta_error {
        Some(e) => format!("the certificate chains to a DANE-TA anchor but {e}"),
        None => "no TLSA record matches the certificate the server presented".into(),
    })
}

fn chain_to(
    anchor: &CertificateDer<'_>,
    ee: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    host: &str,
) -> Result<(), String> {
    let mut roots = RootCertStore::empty();
    roots
        .add(anchor.clone().into_owned())
        .map_err(|e| format!("the anchor is unusable: {e}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from(host.trim_end_matches('.').to_string())
        .map_err(|e| format!("bad host name {host}: {e}"))?;
    verifier
        .verify_server_cert(ee, intermediates, &name, &[], UnixTime::now())
        .map(|_| ())
        .map_err(|e| format!("does not verify: {e}"))
}

#[cfg(test)]
mod tests;
