//! The DNS queries the checks make, with answers reduced to what the checks compare.

use std::net::IpAddr;

use hickory_resolver::TokioResolver;
use hickory_resolver::proto::rr::RData;

use crate::cli::dns::fqdn;

pub(super) fn norm(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

pub(super) fn lookup_problem(what: &str, e: &hickory_resolver::net::NetError) -> String {
    if e.is_no_records_found() {
        format!("no {what} record")
    } else {
        format!("{what} lookup failed: {e}")
    }
}

pub(super) async fn txt_records(r: &TokioResolver, name: &str) -> Result<Vec<String>, String> {
    match r.txt_lookup(fqdn(name)).await {
        Ok(l) => Ok(l
            .answers()
            .iter()
            .filter_map(|rec| match &rec.data {
                // A TXT record's strings are concatenated without spaces (RFC 7208 §3.3,
                // RFC 6376 §3.6.2.2).
                RData::TXT(t) => Some(
                    t.txt_data
                        .iter()
                        .map(|s| String::from_utf8_lossy(s).into_owned())
                        .collect::<String>(),
                ),
                _ => None,
            })
            .collect()),
        Err(e) if e.is_no_records_found() => Ok(vec![]),
        Err(e) => Err(format!("TXT lookup of {name} failed: {e}")),
    }
}

pub(super) async fn addresses(r: &TokioResolver, name: &str) -> Result<Vec<IpAddr>, String> {
    match r.lookup_ip(fqdn(name)).await {
        Ok(l) => {
            let mut v: Vec<IpAddr> = l.iter().collect();
            v.sort();
            v.dedup();
            Ok(v)
        }
        Err(e) => Err(lookup_problem("A/AAAA", &e)),
    }
}

pub(super) async fn mx_hosts(
    r: &TokioResolver,
    domain: &str,
) -> Result<Vec<(u16, String)>, String> {
    match r.mx_lookup(fqdn(domain)).await {
        Ok(l) => {
            let mut v: Vec<(u16, String)> = l
                .answers()
                .iter()
                .filter_map(|rec| match &rec.data {
                    RData::MX(mx) => Some((mx.preference, norm(&mx.exchange.to_string()))),
                    _ => None,
                })
                .collect();
            v.sort();
            Ok(v)
        }
        Err(e) => Err(lookup_problem("MX", &e)),
    }
}

pub(super) fn list(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
