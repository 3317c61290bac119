//! `postern check`: live checks of everything a working mail domain needs — DNS through the
//! resolver the server uses (`[dns].nameservers`), the local listeners, the certificate. One
//! line per check: `ok` with what was found, or `FAILED` with what is wrong and the fix. With
//! a smarthost relay configured, it also logs in there (EHLO, STARTTLS, AUTH, QUIT).
//! Exits non-zero when any check fails.
//!
//! Files: `lookup.rs` (DNS queries), `spf.rs` (a small SPF evaluator), `records.rs` (DKIM,
//! DMARC, MTA-STS, PTR), `listeners.rs` (local probes), `certificate.rs` (chain and expiry).

mod certificate;
mod listeners;
mod lookup;
mod records;
mod spf;

use std::net::IpAddr;

use hickory_resolver::TokioResolver;
use rustls::pki_types::CertificateDer;

use super::dns::{self, fqdn};
use crate::config::Config;
pub(crate) use certificate::stored_certificate;
use certificate::{check_certificate, verify_chain};
use listeners::probe_listener;
use lookup::{addresses, list, mx_hosts, norm};
use records::{check_dkim, check_dmarc, check_mta_sts, check_ptr};
use spf::check_spf;

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
pub(super) type Outcome = Result<String, (String, String)>;

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
    let servers = if config.dns.nameservers.is_empty() {
        "the system's resolvers (/etc/resolv.conf)".to_string()
    } else {
        config
            .dns
            .nameservers
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "checking {} (host {}) through {servers}",
        config.domain, config.hostname
    );
    // One query first: with no resolver answering, every record check would wait out its
    // timeout and then blame the record.
    if let Err(e) = rt.block_on(resolver_answers(&resolver, &config.domain)) {
        println!(
            "FAILED  resolver: {servers} did not answer ({e}) — fix: check [dns].nameservers, /etc/resolv.conf and the network; no other check was run"
        );
        return Ok(false);
    }
    let failed = rt.block_on(check_all(config, &resolver, &args));
    if failed > 0 {
        println!("{failed} check(s) FAILED");
    } else {
        println!("all checks passed");
    }
    Ok(failed == 0)
}

/// Whether the resolver answers at all: a "no such record" is an answer.
async fn resolver_answers(r: &TokioResolver, domain: &str) -> Result<(), String> {
    match r.ns_lookup(fqdn(domain)).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_no_records_found() => Ok(()),
        Err(e) => Err(e.to_string()),
    }
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
        for (key, addr) in listeners::listeners(config) {
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
    // The smarthost relay: log in as the queue would (EHLO, TLS, AUTH, QUIT), send nothing.
    if !args.dns_only {
        for (relay, port) in config.outbound.relays() {
            rep.line(
                &format!("relay {relay}:{port}"),
                crate::outbound::relay::probe(config, r, &relay, port)
                    .await
                    .map_err(|refusal| {
                        (
                            refusal,
                            "check [outbound] relay, relay_tls (\"starttls\" on 587, \"implicit\" on 465), relay_user and relay_password_file against the provider's settings".into(),
                        )
                    }),
            );
        }
    }
    rep.failed
}
