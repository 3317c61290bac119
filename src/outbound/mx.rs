//! Where to deliver a domain's mail: MX records by preference, random among equal
//! preferences (RFC 5321 §5.1); no MX → the domain itself as implicit MX; a null MX
//! (RFC 7505: one record, preference 0, exchange ".") → the domain accepts no mail.

use std::net::IpAddr;

use hickory_resolver::TokioResolver;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::RData;
use rand::seq::SliceRandom;

/// One host to try, with its addresses in the order to try them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MxHost {
    pub name: String,
    pub preference: u16,
    pub addrs: Vec<IpAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MxError {
    /// RFC 7505 §3: permanent, 5.1.10.
    #[error("{0} publishes a null MX: it accepts no mail")]
    NullMx(String),
    /// NXDOMAIN, or no MX and no address: permanent (RFC 5321 §5.1).
    #[error("{0}")]
    NoSuchDomain(String),
    /// SERVFAIL, timeouts: try again later.
    #[error("{0}")]
    Temporary(String),
}

impl MxError {
    pub fn is_permanent(&self) -> bool {
        !matches!(self, MxError::Temporary(_))
    }
    /// Enhanced status for a DSN.
    pub fn status(&self) -> &'static str {
        match self {
            MxError::NullMx(_) => "5.1.10",
            MxError::NoSuchDomain(_) => "5.1.2",
            MxError::Temporary(_) => "4.4.3",
        }
    }
}

fn is_nodata_or_nxdomain(e: &NetError) -> Option<bool> {
    match e {
        NetError::Dns(DnsError::NoRecordsFound(nr)) => {
            Some(nr.response_code == ResponseCode::NXDomain)
        }
        NetError::Dns(DnsError::ResponseCode(ResponseCode::NXDomain)) => Some(true),
        _ => None,
    }
}

/// Order MX records: ascending preference, shuffled among equals.
pub fn order_mx(mut recs: Vec<(u16, String)>) -> Vec<(u16, String)> {
    recs.shuffle(&mut rand::rng());
    // A stable sort keeps the random order among equal preferences.
    recs.sort_by_key(|r| r.0);
    recs
}

/// A and AAAA of a host, IPv4 first (a VPS without a working IPv6 route fails fast on
/// IPv6 and would otherwise delay every delivery); both are tried (RFC 5321 §5.1).
pub(crate) async fn addresses(dns: &TokioResolver, host: &str) -> Result<Vec<IpAddr>, String> {
    let name = format!("{}.", host.trim_end_matches('.'));
    let (v4, v6) = tokio::join!(
        dns.ipv4_lookup(name.as_str()),
        dns.ipv6_lookup(name.as_str())
    );
    let mut out = Vec::new();
    let mut temp_error = None;
    for r in [v4, v6] {
        match r {
            Ok(l) => out.extend(l.answers().iter().filter_map(|r| match &r.data {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                _ => None,
            })),
            Err(e) if is_nodata_or_nxdomain(&e).is_some() => {}
            Err(e) => temp_error = Some(format!("address lookup for {host} failed: {e}")),
        }
    }
    match (out.is_empty(), temp_error) {
        (true, Some(e)) => Err(e),
        _ => Ok(out),
    }
}

/// Resolve the delivery targets of `domain`.
pub async fn resolve(dns: &TokioResolver, domain: &str) -> Result<Vec<MxHost>, MxError> {
    let fqdn = format!("{}.", domain.trim_end_matches('.'));
    let recs: Vec<(u16, String)> = match dns.mx_lookup(fqdn.as_str()).await {
        Ok(lookup) => lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::MX(mx) => Some((mx.preference, mx.exchange.to_ascii())),
                _ => None,
            })
            .collect(),
        Err(e) => match is_nodata_or_nxdomain(&e) {
            Some(true) => {
                return Err(MxError::NoSuchDomain(format!(
                    "domain {domain} does not exist (NXDOMAIN)"
                )));
            }
            Some(false) => vec![],
            None => {
                return Err(MxError::Temporary(format!(
                    "MX lookup for {domain} failed: {e}"
                )));
            }
        },
    };
    // RFC 7505 §3: a single MX with exchange "." means "no mail". (If other MX records are
    // published beside it the null one is ignored, as §4.3 advises senders.)
    let is_null = |h: &str| h == "." || h.is_empty();
    if recs.len() == 1 && is_null(&recs[0].1) {
        return Err(MxError::NullMx(domain.to_string()));
    }
    let recs: Vec<(u16, String)> = recs.into_iter().filter(|r| !is_null(&r.1)).collect();
    if recs.is_empty() {
        // RFC 5321 §5.1: no MX → the domain is its own implicit MX (preference 0).
        return match addresses(dns, domain).await {
            Ok(addrs) if !addrs.is_empty() => Ok(vec![MxHost {
                name: domain.trim_end_matches('.').to_string(),
                preference: 0,
                addrs,
            }]),
            Ok(_) => Err(MxError::NoSuchDomain(format!(
                "{domain} has no MX and no address"
            ))),
            Err(e) => Err(MxError::Temporary(e)),
        };
    }
    let mut hosts = Vec::new();
    let mut last_err = None;
    for (pref, name) in order_mx(recs) {
        let name = name.trim_end_matches('.').to_string();
        match addresses(dns, &name).await {
            Ok(addrs) if !addrs.is_empty() => hosts.push(MxHost {
                name,
                preference: pref,
                addrs,
            }),
            Ok(_) => last_err = Some(format!("MX {name} has no address")),
            Err(e) => last_err = Some(e),
        }
    }
    if hosts.is_empty() {
        return Err(MxError::Temporary(
            last_err.unwrap_or_else(|| format!("no usable MX for {domain}")),
        ));
    }
    Ok(hosts)
}

#[cfg(test)]
mod tests {
    #[test]
    fn preference_order_random_among_equals() {
        let mut seen_first = std::collections::HashSet::new();
        for _ in 0..200 {
            let o = super::order_mx(vec![
                (20, "c".into()),
                (10, "a".into()),
                (10, "b".into()),
                (5, "z".into()),
            ]);
            assert_eq!(o[0].1, "z");
            assert_eq!(o[3].1, "c");
            seen_first.insert(o[1].1.clone());
        }
        assert_eq!(seen_first.len(), 2, "equal preferences must be shuffled");
    }
}
