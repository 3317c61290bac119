//! A small SPF evaluator (RFC 7208) for `postern check`: does the domain's policy authorise
//! this server's addresses, as a receiver would decide?

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

use hickory_resolver::TokioResolver;

use super::Outcome;
use super::lookup::{addresses, mx_hosts, txt_records};
use crate::cli::dns::{self, fqdn};

#[derive(Debug, PartialEq)]
enum Spf {
    Pass,
    Fail(char),
    Neutral,
    None,
    PermError(String),
    TempError(String),
}

pub(super) async fn check_spf(r: &TokioResolver, domain: &str, ips: &[IpAddr]) -> Outcome {
    let fix = format!(
        "publish `{} IN TXT \"{}\"` (one SPF record only)",
        fqdn(domain),
        dns::spf_value()
    );
    if ips.is_empty() {
        return Err((
            "cannot test: the hostname has no address".into(),
            "fix the hostname check first".into(),
        ));
    }
    let mut found = vec![];
    for ip in ips {
        let mut lookups = 0;
        match spf_eval(r, domain.to_string(), *ip, &mut lookups, 0).await {
            Spf::Pass => found.push(ip.to_string()),
            Spf::None => return Err((format!("no SPF record (v=spf1) at {domain}"), fix)),
            Spf::Fail(q) => {
                return Err((
                    format!(
                        "SPF of {domain} does not authorise {ip} (result {})",
                        match q {
                            '~' => "softfail",
                            _ => "fail",
                        }
                    ),
                    fix,
                ));
            }
            Spf::Neutral => {
                return Err((
                    format!("SPF of {domain} does not authorise {ip} (neutral)"),
                    fix,
                ));
            }
            Spf::PermError(e) => return Err((format!("SPF of {domain} is broken: {e}"), fix)),
            Spf::TempError(e) => {
                return Err((
                    format!("SPF of {domain} could not be evaluated: {e}"),
                    "check that the DNS servers answer, then run again".into(),
                ));
            }
        }
    }
    Ok(format!("{domain} authorises {}", found.join(", ")))
}

fn in_net(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let len = len.min(32) as u32;
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let len = len.min(128) as u32;
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

/// "domain/24//64" → (domain or default, v4 prefix, v6 prefix) (RFC 7208 §5.6).
fn spf_target(arg: Option<&str>, current: &str) -> Result<(String, u8, u8), String> {
    let arg = arg.unwrap_or("");
    let (rest, v6) = match arg.split_once("//") {
        Some((a, b)) => (a, b.parse::<u8>().map_err(|_| format!("bad prefix //{b}"))?),
        None => (arg, 128),
    };
    let (name, v4) = match rest.rsplit_once('/') {
        Some((a, b)) => (a, b.parse::<u8>().map_err(|_| format!("bad prefix /{b}"))?),
        None => (rest, 32),
    };
    let name = if name.is_empty() { current } else { name };
    if name.contains('%') {
        return Err("macros are not supported by `postern check`".into());
    }
    Ok((name.trim_start_matches(':').to_string(), v4, v6))
}

/// A small SPF evaluator (RFC 7208 §4–§6) for the mechanisms a mail domain uses: all, ip4,
/// ip6, a, mx, include, exists (without macros) and redirect. At most 10 DNS-querying terms
/// (§4.6.4).
fn spf_eval<'a>(
    r: &'a TokioResolver,
    domain: String,
    ip: IpAddr,
    lookups: &'a mut u32,
    depth: u32,
) -> Pin<Box<dyn Future<Output = Spf> + Send + 'a>> {
    Box::pin(async move {
        if depth > 10 {
            return Spf::PermError("include/redirect loop".into());
        }
        let records = match txt_records(r, &domain).await {
            Ok(v) => v,
            Err(e) => return Spf::TempError(e),
        };
        // §4.5: records are those starting with "v=spf1" followed by a space or the end.
        let spf: Vec<&String> = records
            .iter()
            .filter(|t| {
                let l = t.to_ascii_lowercase();
                l == "v=spf1" || l.starts_with("v=spf1 ")
            })
            .collect();
        let record = match spf.as_slice() {
            [] => return Spf::None,
            [one] => one.to_string(),
            _ => return Spf::PermError(format!("{} SPF records at {domain}", spf.len())),
        };
        let mut redirect = None;
        for term in record.split_ascii_whitespace().skip(1) {
            let lower = term.to_ascii_lowercase();
            if let Some(target) = lower.strip_prefix("redirect=") {
                redirect = Some(target.to_string());
                continue;
            }
            if lower.contains('=') {
                continue; // other modifiers (exp=…) do not change the result
            }
            let (qualifier, mech) = match lower.chars().next() {
                Some(q @ ('+' | '-' | '~' | '?')) => (q, &lower[1..]),
                _ => ('+', lower.as_str()),
            };
            let (name, arg) = match mech.find([':', '/']) {
                Some(i) => (&mech[..i], Some(&mech[i..])),
                None => (mech, None),
            };
            let arg_domain = arg.map(|a| a.trim_start_matches(':'));
            let matched = match name {
                "all" => Ok(true),
                "ip4" | "ip6" => {
                    let a = arg_domain.unwrap_or("");
                    let (net, len) = match a.split_once('/') {
                        Some((n, l)) => (n, l.parse::<u8>().ok()),
                        None => (a, Some(if name == "ip4" { 32 } else { 128 })),
                    };
                    match (net.parse::<IpAddr>(), len) {
                        (Ok(n), Some(l)) => Ok(in_net(ip, n, l)),
                        _ => Err(Spf::PermError(format!("bad term {term}"))),
                    }
                }
                "a" | "mx" | "exists" | "include" | "ptr" => {
                    *lookups += 1;
                    if *lookups > 10 {
                        return Spf::PermError("more than 10 DNS lookups (RFC 7208 §4.6.4)".into());
                    }
                    match name {
                        "include" => {
                            let Some(target) = arg_domain.filter(|d| !d.is_empty()) else {
                                return Spf::PermError(format!("bad term {term}"));
                            };
                            match spf_eval(r, target.to_string(), ip, lookups, depth + 1).await {
                                Spf::Pass => Ok(true),
                                Spf::Fail(_) | Spf::Neutral => Ok(false),
                                Spf::None => Err(Spf::PermError(format!(
                                    "include:{target} has no SPF record"
                                ))),
                                e => Err(e),
                            }
                        }
                        "ptr" => Ok(false), // deprecated (§5.5); never relied on here
                        _ => match spf_target(arg, &domain) {
                            Err(e) => Err(Spf::PermError(e)),
                            Ok((target, v4, v6)) => {
                                let prefix = |a: &IpAddr| if a.is_ipv4() { v4 } else { v6 };
                                let hosts = if name == "mx" {
                                    match mx_hosts(r, &target).await {
                                        Ok(m) => m.into_iter().map(|(_, x)| x).collect(),
                                        Err(e) if e.starts_with("no ") => vec![],
                                        Err(e) => return Spf::TempError(e),
                                    }
                                } else {
                                    vec![target]
                                };
                                let mut hit = false;
                                for hname in hosts {
                                    match addresses(r, &hname).await {
                                        Ok(addrs) => {
                                            if name == "exists" {
                                                hit |= addrs.iter().any(|a| a.is_ipv4());
                                            } else {
                                                hit |=
                                                    addrs.iter().any(|a| in_net(ip, *a, prefix(a)));
                                            }
                                        }
                                        Err(e) if e.starts_with("no ") => {}
                                        Err(e) => return Spf::TempError(e),
                                    }
                                }
                                Ok(hit)
                            }
                        },
                    }
                }
                _ => Err(Spf::PermError(format!("unknown mechanism {term}"))),
            };
            match matched {
                Ok(true) => {
                    return if qualifier == '+' {
                        Spf::Pass
                    } else if qualifier == '?' {
                        Spf::Neutral
                    } else {
                        Spf::Fail(qualifier)
                    };
                }
                Ok(false) => {}
                Err(e) => return e,
            }
        }
        if let Some(target) = redirect {
            *lookups += 1;
            return match spf_eval(r, target.clone(), ip, lookups, depth + 1).await {
                Spf::None => Spf::PermError(format!("redirect={target} has no SPF record")),
                other => other,
            };
        }
        Spf::Neutral
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr() {
        let ip: IpAddr = "192.0.2.77".parse().unwrap();
        assert!(in_net(ip, "192.0.2.0".parse().unwrap(), 24));
        assert!(!in_net(ip, "192.0.3.0".parse().unwrap(), 24));
        assert!(in_net(ip, "0.0.0.0".parse().unwrap(), 0));
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert!(in_net(v6, "2001:db8::".parse().unwrap(), 32));
        assert!(!in_net(v6, ip, 0));
    }

    #[test]
    fn spf_targets() {
        assert_eq!(
            spf_target(None, "d.test").unwrap(),
            ("d.test".into(), 32, 128)
        );
        assert_eq!(
            spf_target(Some(":x.test/24//64"), "d").unwrap(),
            ("x.test".into(), 24, 64)
        );
        assert_eq!(spf_target(Some("/28"), "d").unwrap(), ("d".into(), 28, 128));
        assert!(spf_target(Some(":%{i}.x"), "d").is_err());
    }
}
