//! `postern check`: live checks of everything a working mail domain needs — DNS through the
//! resolver the server uses (`[dns].nameservers`), the local listeners, the certificate. One
//! line per check: `ok` with what was found, or `FAILED` with what is wrong and the fix.
//! Exits non-zero when any check fails.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::proto::rr::RData;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::dns::{self, fqdn};
use crate::config::{Config, TlsSource};

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// Only the DNS checks: skip the local listeners (and read the certificate from disk).
    #[arg(long)]
    pub dns_only: bool,
    /// Fail the certificate check when it expires within this many days.
    #[arg(long, default_value_t = 14)]
    pub cert_min_days: i64,
}

/// One check's result: Ok(what was found) or Err((what is wrong, the fix)).
type Outcome = Result<String, (String, String)>;

struct Report {
    failed: usize,
}

impl Report {
    fn line(&mut self, name: &str, outcome: Outcome) {
        match outcome {
            Ok(detail) => println!("ok      {name}: {detail}"),
            Err((problem, fix)) => {
                self.failed += 1;
                println!("FAILED  {name}: {problem} — fix: {fix}");
            }
        }
    }
}

/// `postern check`.
pub fn run(config: &Config, args: CheckArgs) -> anyhow::Result<bool> {
    crate::tls::install_crypto_provider();
    let resolver = crate::dns::build_resolver(&config.dns)?;
    let rt = super::runtime()?;
    let failed = rt.block_on(check_all(config, &resolver, &args));
    if failed > 0 {
        println!("{failed} check(s) FAILED");
    } else {
        println!("all checks passed");
    }
    Ok(failed == 0)
}

fn norm(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn lookup_problem(what: &str, e: &hickory_resolver::net::NetError) -> String {
    if e.is_no_records_found() {
        format!("no {what} record")
    } else {
        format!("{what} lookup failed: {e}")
    }
}

async fn txt_records(r: &TokioResolver, name: &str) -> Result<Vec<String>, String> {
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

async fn addresses(r: &TokioResolver, name: &str) -> Result<Vec<IpAddr>, String> {
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

async fn mx_hosts(r: &TokioResolver, domain: &str) -> Result<Vec<(u16, String)>, String> {
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

fn list(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

async fn check_all(config: &Config, r: &TokioResolver, args: &CheckArgs) -> usize {
    let mut rep = Report { failed: 0 };
    let domain = &config.domain;
    let host = norm(&config.hostname);
    let h = fqdn(&host);
    let public = dns::public_addresses(config);

    // MX → hostname.
    rep.line(
        "MX",
        match mx_hosts(r, domain).await {
            Ok(mx) if mx.iter().any(|(_, x)| *x == host) => Ok(format!(
                "{domain} → {}",
                mx.iter()
                    .map(|(p, x)| format!("{x} ({p})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Ok(mx) if mx.iter().any(|(_, x)| x.is_empty()) => Err((
                format!("{domain} publishes a null MX (accepts no mail, RFC 7505)"),
                format!("replace it with `{} IN MX 10 {h}`", fqdn(domain)),
            )),
            Ok(mx) => Err((
                format!(
                    "MX of {domain} points at {}, not {host}",
                    mx.iter()
                        .map(|(_, x)| x.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                format!(
                    "publish `{} IN MX 10 {h}` and remove the others",
                    fqdn(domain)
                ),
            )),
            Err(p) => Err((
                format!("{p} for {domain}"),
                format!("publish `{} IN MX 10 {h}`", fqdn(domain)),
            )),
        },
    );

    // The hostname resolves (to this server, when we know its addresses from the config).
    let host_addrs = addresses(r, &host).await;
    rep.line(
        "hostname",
        match &host_addrs {
            Ok(ips) if !config.dns.public_addresses.is_empty() => {
                let missing: Vec<IpAddr> = config
                    .dns
                    .public_addresses
                    .iter()
                    .filter(|a| !ips.contains(a))
                    .copied()
                    .collect();
                if missing.is_empty() {
                    Ok(format!("{host} → {}", list(ips)))
                } else {
                    Err((
                        format!(
                            "A/AAAA of {host} is {}, which lacks this server's {}",
                            list(ips),
                            list(&missing)
                        ),
                        format!(
                            "point {h} at {} (see `postern dns`)",
                            list(&config.dns.public_addresses)
                        ),
                    ))
                }
            }
            Ok(ips) => Ok(format!("{host} → {}", list(ips))),
            Err(p) => Err((
                format!("{p} for {host}"),
                format!("publish `{h} IN A <this server's IPv4>` (and AAAA for IPv6)"),
            )),
        },
    );
    let host_ips = host_addrs.clone().unwrap_or_default();

    // SPF authorises the server's addresses to send for the domain.
    rep.line("SPF", check_spf(r, domain, &host_ips).await);

    // DKIM: the published key equals the one in data_dir.
    for outcome in check_dkim(config, r).await {
        rep.line("DKIM", outcome);
    }

    // DMARC exists and is well-formed.
    rep.line("DMARC", check_dmarc(config, r).await);

    // MTA-STS record announces the policy we serve.
    rep.line("MTA-STS", check_mta_sts(config, r).await);

    // PTR of each address points back at the hostname (forward-confirmed: the addresses come
    // from the hostname's own A/AAAA, or from the config).
    let ptr_ips: Vec<IpAddr> = if !config.dns.public_addresses.is_empty() {
        config.dns.public_addresses.clone()
    } else if !host_ips.is_empty() {
        host_ips.clone()
    } else {
        public.addrs.clone()
    };
    if ptr_ips.is_empty() {
        rep.line(
            "PTR",
            Err((
                "no address of this server known to look up".into(),
                format!("make {host} resolve, or set [dns].public_addresses"),
            )),
        );
    }
    for ip in ptr_ips {
        rep.line("PTR", check_ptr(r, ip, &host).await);
    }

    // Local listeners, then the certificate they serve.
    let mut served: Option<Vec<CertificateDer<'static>>> = None;
    let mut policy_host: Option<Vec<CertificateDer<'static>>> = None;
    if !args.dns_only {
        for (key, addr) in listeners(config) {
            let (outcome, certs) = probe_listener(config, key, addr).await;
            if key == "https" && policy_host.is_none() {
                policy_host = certs.clone();
            }
            if served.is_none() {
                served = certs;
            }
            rep.line(&format!("listen.{key} {addr}"), outcome);
        }
    }
    // MTA-STS senders fetch the policy from https://mta-sts.DOMAIN and refuse it unless the
    // certificate is valid for that name (RFC 8461 §3.3).
    if let Some(chain) = policy_host {
        let name = format!("mta-sts.{}", config.domain);
        rep.line(
            "MTA-STS certificate",
            match verify_chain(&chain, &name) {
                Ok(()) => Ok(format!(
                    "the HTTPS listener's certificate is valid for {name}"
                )),
                Err(problem) => Err((
                    format!("the HTTPS listener's certificate {problem} (for {name})"),
                    format!(
                        "add \"{name}\" to [tls] acme_extra_names (or to your certificate files)"
                    ),
                )),
            },
        );
    }
    rep.line(
        "certificate",
        check_certificate(config, served, args.cert_min_days),
    );
    rep.failed
}

// --- SPF --------------------------------------------------------------------------------

#[derive(Debug, PartialEq)]
enum Spf {
    Pass,
    Fail(char),
    Neutral,
    None,
    PermError(String),
    TempError(String),
}

async fn check_spf(r: &TokioResolver, domain: &str, ips: &[IpAddr]) -> Outcome {
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

// --- DKIM, DMARC, MTA-STS, PTR -------------------------------------------------------------

/// `tag=value; …` lists (DKIM RFC 6376 §3.2, DMARC RFC 7489 §6.4); whitespace in values
/// removed, as it is insignificant in base64 keys.
fn tags(record: &str) -> Vec<(String, String)> {
    record
        .split(';')
        .filter_map(|t| t.split_once('='))
        .map(|(k, v)| {
            (
                k.trim().to_ascii_lowercase(),
                v.chars().filter(|c| !c.is_whitespace()).collect(),
            )
        })
        .collect()
}

fn tag<'a>(t: &'a [(String, String)], name: &str) -> Option<&'a str> {
    t.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

async fn check_dkim(config: &Config, r: &TokioResolver) -> Vec<Outcome> {
    let expected = match dns::dkim_records(config) {
        Ok(v) if v.is_empty() => {
            return vec![Err((
                format!(
                    "no DKIM key in {}/dkim, so mail leaves unsigned",
                    config.data_dir.display()
                ),
                "run `postern init` (or restart `postern serve`) to create it, then publish the record `postern dns` prints".into(),
            ))];
        }
        Ok(v) => v,
        Err(e) => {
            return vec![Err((
                format!("cannot read the DKIM key: {e}"),
                format!(
                    "check the files in {}/dkim (owner, permissions)",
                    config.data_dir.display()
                ),
            ))];
        }
    };
    let mut out = vec![];
    for (name, value) in expected {
        let name = norm(&name);
        let want = tags(&value);
        let want_p = tag(&want, "p").unwrap_or("").to_string();
        let fix = format!(
            "publish `{} IN TXT {}`",
            fqdn(&name),
            dns::txt_strings(&value)
        );
        out.push(match txt_records(r, &name).await {
            Err(e) => Err((e, fix)),
            Ok(recs) if recs.is_empty() => Err((format!("no DKIM record at {name}"), fix)),
            Ok(recs) => {
                let published: Vec<Vec<(String, String)>> = recs.iter().map(|s| tags(s)).collect();
                if published
                    .iter()
                    .any(|t| tag(t, "p") == Some(want_p.as_str()))
                {
                    Ok(format!("{name} publishes the key in use"))
                } else {
                    Err((
                        format!("the key published at {name} is not the key postern signs with"),
                        fix,
                    ))
                }
            }
        });
    }
    out
}

async fn check_dmarc(config: &Config, r: &TokioResolver) -> Outcome {
    let name = format!("_dmarc.{}", config.domain);
    let fix = format!(
        "publish `{} IN TXT {}`",
        fqdn(&name),
        dns::txt_strings(&dns::dmarc_value(config))
    );
    let recs = txt_records(r, &name).await.map_err(|e| (e, fix.clone()))?;
    // RFC 7489 §6.6.3: records not starting with v=DMARC1 are ignored; more than one → none.
    let dmarc: Vec<&String> = recs
        .iter()
        .filter(|t| t.trim_start().starts_with("v=DMARC1"))
        .collect();
    match dmarc.as_slice() {
        [] => Err((format!("no DMARC record at {name}"), fix)),
        [one] => {
            let t = tags(one);
            match tag(&t, "p") {
                Some(p @ ("quarantine" | "reject")) => Ok(format!("{name}: p={p}")),
                Some("none") => Ok(format!(
                    "{name}: p=none (reports only; consider p=quarantine)"
                )),
                _ => Err((format!("DMARC record at {name} lacks a valid p= tag"), fix)),
            }
        }
        _ => Err((
            format!(
                "{} DMARC records at {name} (receivers ignore all of them)",
                dmarc.len()
            ),
            fix,
        )),
    }
}

async fn check_mta_sts(config: &Config, r: &TokioResolver) -> Outcome {
    let name = format!("_mta-sts.{}", config.domain);
    let want = crate::http::mta_sts::txt_record(config);
    let fix = format!("publish `{} IN TXT \"{want}\"`", fqdn(&name));
    let recs = txt_records(r, &name).await.map_err(|e| (e, fix.clone()))?;
    let sts: Vec<&String> = recs.iter().filter(|t| t.starts_with("v=STSv1")).collect();
    match sts.as_slice() {
        [] => Err((format!("no MTA-STS record at {name}"), fix)),
        [one] => {
            let id = tag(&tags(one), "id").unwrap_or("").to_string();
            let served = crate::http::mta_sts::policy_id(config);
            if id == served {
                Ok(format!("{name}: id={id} matches the served policy"))
            } else {
                Err((
                    format!(
                        "{name} has id={id}, but the served policy's id is {served} (senders keep a stale policy)"
                    ),
                    fix,
                ))
            }
        }
        _ => Err((format!("{} MTA-STS records at {name}", sts.len()), fix)),
    }
}

async fn check_ptr(r: &TokioResolver, ip: IpAddr, host: &str) -> Outcome {
    let fix = format!("ask your hosting provider to set the reverse DNS (PTR) of {ip} to {host}");
    match r.reverse_lookup(ip).await {
        Ok(l) => {
            let names: Vec<String> = l
                .answers()
                .iter()
                .filter_map(|rec| match &rec.data {
                    RData::PTR(p) => Some(norm(&p.0.to_string())),
                    _ => None,
                })
                .collect();
            if names.iter().any(|n| n == host) {
                Ok(format!("{ip} → {host}"))
            } else {
                Err((
                    format!("PTR of {ip} is {}, not {host}", names.join(", ")),
                    fix,
                ))
            }
        }
        Err(e) => Err((format!("{} for {ip}", lookup_problem("PTR", &e)), fix)),
    }
}

// --- local listeners and the certificate ---------------------------------------------------

fn listeners(config: &Config) -> Vec<(&'static str, SocketAddr)> {
    let l = &config.listen;
    let mut v = vec![];
    for (key, addrs) in [
        ("smtp", &l.smtp),
        ("submission", &l.submission),
        ("submissions", &l.submissions),
        ("imap", &l.imap),
        ("imaps", &l.imaps),
        ("http", &l.http),
        ("https", &l.https),
        ("metrics", &l.metrics),
    ] {
        for a in addrs {
            v.push((key, *a));
        }
    }
    v
}

/// Where to connect for a listener bound to `addr`: the wildcard becomes loopback.
fn local_target(addr: SocketAddr) -> SocketAddr {
    let mut a = addr;
    match a.ip() {
        IpAddr::V4(v) if v.is_unspecified() => a.set_ip(std::net::Ipv4Addr::LOCALHOST.into()),
        IpAddr::V6(v) if v.is_unspecified() => a.set_ip(std::net::Ipv6Addr::LOCALHOST.into()),
        _ => {}
    }
    a
}

/// Accepts any certificate: the handshake is only a way to fetch what the server presents;
/// `check_certificate` judges it properly afterwards.
#[derive(Debug)]
struct CaptureVerifier(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for CaptureVerifier {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn capture_connector() -> tokio_rustls::TlsConnector {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(CaptureVerifier(provider)))
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

/// The first line the server sends, with a deadline.
async fn greeting<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    wait: Duration,
) -> Result<String, String> {
    let mut r = BufReader::new(s);
    let mut line = String::new();
    match tokio::time::timeout(wait, r.read_line(&mut line)).await {
        Ok(Ok(0)) => Err("closed the connection without a greeting".into()),
        Ok(Ok(_)) => Ok(line.trim_end().to_string()),
        Ok(Err(e)) => Err(format!("read failed: {e}")),
        Err(_) => Err(format!("no greeting within {} s", wait.as_secs())),
    }
}

/// Speak just enough of the protocol to know the service answers.
async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    key: &str,
    wait: Duration,
    host: &str,
) -> Result<String, String> {
    match key {
        "smtp" | "submission" | "submissions" => {
            let g = greeting(s, wait).await?;
            if !g.starts_with("220") {
                return Err(format!("unexpected SMTP greeting {g:?}"));
            }
            let _ = s.write_all(b"QUIT\r\n").await;
            Ok(g)
        }
        "imap" | "imaps" => {
            let g = greeting(s, wait).await?;
            if !g.starts_with("* OK") {
                return Err(format!("unexpected IMAP greeting {g:?}"));
            }
            let _ = s.write_all(b"a LOGOUT\r\n").await;
            Ok(g)
        }
        _ => {
            let path = if key == "metrics" {
                "/metrics"
            } else {
                "/.well-known/mta-sts.txt"
            };
            s.write_all(
                format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await
            .map_err(|e| format!("write failed: {e}"))?;
            let g = greeting(s, wait).await?;
            if g.starts_with("HTTP/1.1 200") || g.starts_with("HTTP/1.0 200") {
                Ok(format!("GET {path}: {g}"))
            } else {
                Err(format!("GET {path} answered {g:?}"))
            }
        }
    }
}

async fn probe_listener(
    config: &Config,
    key: &str,
    addr: SocketAddr,
) -> (Outcome, Option<Vec<CertificateDer<'static>>>) {
    let target = local_target(addr);
    let fix = format!(
        "start postern (`systemctl start postern`; see `journalctl -u postern`), or change listen.{key}"
    );
    let wait = Duration::from_secs(10 + config.limits.smtp_greeting_delay_secs);
    let tcp = match tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(target)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return (Err((format!("cannot connect to {target}: {e}"), fix)), None),
        Err(_) => {
            return (
                Err((format!("connecting to {target} timed out"), fix)),
                None,
            );
        }
    };
    let implicit_tls = matches!(key, "submissions" | "imaps" | "https");
    if !implicit_tls {
        let mut tcp = tcp;
        let r = converse(&mut tcp, key, wait, &config.hostname).await;
        return (r.map_err(|p| (p, fix)), None);
    }
    // The HTTPS listener is reached as mta-sts.DOMAIN by senders fetching the policy.
    let sni = if key == "https" {
        format!("mta-sts.{}", config.domain)
    } else {
        config.hostname.clone()
    };
    let name = ServerName::try_from(sni)
        .unwrap_or_else(|_| ServerName::try_from("localhost").expect("static name"));
    let mut tls = match tokio::time::timeout(wait, capture_connector().connect(name, tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            return (
                Err((format!("TLS handshake with {target} failed: {e}"), fix)),
                None,
            );
        }
        Err(_) => {
            return (
                Err((format!("TLS handshake with {target} timed out"), fix)),
                None,
            );
        }
    };
    let certs = tls
        .get_ref()
        .1
        .peer_certificates()
        .map(|c| c.iter().map(|c| c.clone().into_owned()).collect());
    let r = converse(&mut tls, key, wait, &config.hostname).await;
    (r.map(|g| format!("TLS, {g}")).map_err(|p| (p, fix)), certs)
}

/// The certificate file the configured source keeps on disk.
fn stored_certificate(
    config: &Config,
) -> Option<(std::path::PathBuf, Vec<CertificateDer<'static>>)> {
    use rustls::pki_types::pem::PemObject;
    let dir = config.data_dir.join("tls");
    let candidates = match config.tls.source {
        TlsSource::Files => vec![config.tls.cert_file.clone()],
        TlsSource::Acme => vec![dir.join("acme-cert.pem"), dir.join("self-signed-cert.pem")],
        TlsSource::SelfSigned => vec![dir.join("self-signed-cert.pem")],
    };
    candidates.into_iter().find_map(|p| {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&p)
            .ok()?
            .collect::<Result<_, _>>()
            .ok()?;
        (!chain.is_empty()).then_some((p, chain))
    })
}

fn check_certificate(
    config: &Config,
    served: Option<Vec<CertificateDer<'static>>>,
    min_days: i64,
) -> Outcome {
    let acme_fix = "use a CA-issued certificate: tls.source = \"acme\" (port 80 reachable from the internet) or \"files\" with your certificate";
    let (origin, chain) = match served {
        Some(c) if !c.is_empty() => ("served".to_string(), c),
        _ => match stored_certificate(config) {
            Some((p, c)) => (format!("in {}", p.display()), c),
            None => {
                return Err((
                    "no certificate served or stored".into(),
                    "start postern once (it creates or obtains one), or check [tls]".into(),
                ));
            }
        },
    };
    let Ok((_, x)) = x509_parser::parse_x509_certificate(chain[0].as_ref()) else {
        return Err((
            format!("the certificate {origin} does not parse"),
            acme_fix.into(),
        ));
    };
    let not_after = x.validity().not_after.timestamp();
    let now = chrono::Utc::now().timestamp();
    let days_left = (not_after - now).div_euclid(86400);
    let until = chrono::DateTime::from_timestamp(not_after, 0)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_default();
    let issuer = x.issuer().to_string();

    let verdict = verify_chain(&chain, &config.hostname);
    if let Err(problem) = verdict {
        return Err((
            format!("the certificate {origin} {problem}"),
            acme_fix.into(),
        ));
    }
    if days_left < min_days {
        return Err((
            format!("the certificate {origin} expires in {days_left} days ({until})"),
            match config.tls.source {
                TlsSource::Acme => {
                    "renewal is failing: see `journalctl -u postern` for the ACME error".into()
                }
                _ => "renew the certificate files, then `systemctl reload postern`".into(),
            },
        ));
    }
    Ok(format!(
        "{origin}, valid for {}, issued by {issuer}, until {until} ({days_left} days)",
        config.hostname
    ))
}

/// Verify `chain` for `name` as a client would: against the system's roots (SSL_CERT_FILE
/// and SSL_CERT_DIR are honoured), at the current time.
fn verify_chain(chain: &[CertificateDer<'static>], name: &str) -> Result<(), String> {
    use rustls::client::danger::ServerCertVerifier as _;
    let Some(leaf) = chain.first() else {
        return Err("is empty".into());
    };
    let Ok((_, x)) = x509_parser::parse_x509_certificate(leaf.as_ref()) else {
        return Err("does not parse".into());
    };
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if roots.is_empty() {
        return Err(
            "cannot be verified: no trusted root certificates on this system (install ca-certificates)"
                .into(),
        );
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| format!("cannot be verified: {e}"))?;
    let server_name =
        ServerName::try_from(name.to_string()).map_err(|e| format!("cannot be verified: {e}"))?;
    verifier
        .verify_server_cert(leaf, &chain[1..], &server_name, &[], UnixTime::now())
        .map(|_| ())
        .map_err(|e| describe_cert_error(&e, &x))
}

fn describe_cert_error(
    e: &rustls::Error,
    x: &x509_parser::certificate::X509Certificate<'_>,
) -> String {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(C::Expired)
        | rustls::Error::InvalidCertificate(C::ExpiredContext { .. }) => "has expired".into(),
        rustls::Error::InvalidCertificate(C::NotValidYet)
        | rustls::Error::InvalidCertificate(C::NotValidYetContext { .. }) => {
            "is not valid yet (check the clock)".into()
        }
        rustls::Error::InvalidCertificate(C::NotValidForName)
        | rustls::Error::InvalidCertificate(C::NotValidForNameContext { .. }) => {
            "does not name this host".into()
        }
        // Whatever webpki tripped over first (unknown issuer, CA used as end entity), a
        // certificate that issued itself is the problem to report.
        _ if x.issuer() == x.subject() => {
            "is self-signed: mail clients and MTA-STS senders reject it".into()
        }
        rustls::Error::InvalidCertificate(C::UnknownIssuer) => format!(
            "is issued by a CA this system does not trust ({})",
            x.issuer()
        ),
        other => format!("does not verify: {other}"),
    }
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

    #[test]
    fn tag_lists() {
        let t = tags("v=DKIM1; k=rsa; p=AB CD\tEF");
        assert_eq!(tag(&t, "p"), Some("ABCDEF"));
        assert_eq!(tag(&t, "k"), Some("rsa"));
    }

    #[test]
    fn wildcard_becomes_loopback() {
        assert_eq!(
            local_target("[::]:25".parse().unwrap()),
            "[::1]:25".parse().unwrap()
        );
        assert_eq!(
            local_target("0.0.0.0:80".parse().unwrap()),
            "127.0.0.1:80".parse().unwrap()
        );
    }
}
