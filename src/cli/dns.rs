//! `postern dns`: the DNS records to publish for the domain, zone-file style (RFC 1035 §5),
//! one absolute name per line so each can be pasted into a provider's web form or a zone file.
//! `postern init` prints the same, and `postern check` verifies against the same values.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};

use crate::config::Config;
use crate::http::ClientPorts;

/// TTL of every record we suggest: an hour, short enough to fix mistakes quickly.
pub const TTL: u32 = 3600;

/// The server's public addresses and how we found them (printed, so the operator can judge).
#[derive(Debug, Clone)]
pub struct PublicAddresses {
    pub addrs: Vec<IpAddr>,
    pub source: String,
}

/// Globally routable unicast? (Not loopback, private, link-local, CGNAT, ULA, documentation…)
pub fn is_public(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64/10 CGNAT (RFC 6598)
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // ULA fc00::/7
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || v6.to_ipv4_mapped().is_some())
        }
    }
}

/// The source address the kernel would use towards the internet (a UDP "connect" sends
/// nothing), if it is public.
fn route_source(target: SocketAddr) -> Option<IpAddr> {
    let bind: SocketAddr = if target.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = UdpSocket::bind(bind).ok()?;
    sock.connect(target).ok()?;
    Some(sock.local_addr().ok()?.ip())
}

/// Where the A/AAAA records point: `[dns].public_addresses` if set; else public addresses
/// the listeners are bound to; else the machine's outgoing source addresses if public.
pub fn public_addresses(config: &Config) -> PublicAddresses {
    if !config.dns.public_addresses.is_empty() {
        return PublicAddresses {
            addrs: config.dns.public_addresses.clone(),
            source: "from [dns].public_addresses in the config".into(),
        };
    }
    let mut bound: Vec<IpAddr> = config
        .listen
        .smtp
        .iter()
        .chain(&config.listen.imaps)
        .chain(&config.listen.submissions)
        .map(|a| a.ip())
        .filter(is_public)
        .collect();
    bound.sort();
    bound.dedup();
    if !bound.is_empty() {
        return PublicAddresses {
            addrs: bound,
            source: "from the addresses in [listen]".into(),
        };
    }
    // 192.0.2.x/2001:db8:: would be "documentation" and may have no route; use well-known
    // public resolvers only to pick the route — no packet is sent.
    let mut found = vec![];
    let mut private = vec![];
    for target in [
        SocketAddr::from((Ipv4Addr::new(8, 8, 8, 8), 53)),
        SocketAddr::from((
            Ipv6Addr::new(0x2001, 0x4860, 0x4860, 0, 0, 0, 0, 0x8888),
            53,
        )),
    ] {
        match route_source(target) {
            Some(ip) if is_public(&ip) => found.push(ip),
            Some(ip) => private.push(ip),
            None => {}
        }
    }
    let source = if found.is_empty() {
        let why = if private.is_empty() {
            "this machine has no route to the internet".to_string()
        } else {
            format!(
                "this machine's address ({}) is not public (NAT?)",
                join(&private)
            )
        };
        format!("could not detect: {why}; set [dns].public_addresses in the config")
    } else {
        "detected from this machine's outgoing route; set [dns].public_addresses to override".into()
    };
    PublicAddresses {
        addrs: found,
        source,
    }
}

fn join(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `name` as an absolute domain name (trailing dot).
pub fn fqdn(name: &str) -> String {
    let n = name.trim_end_matches('.');
    format!("{n}.")
}

/// A TXT value as zone-file character-strings: quoted, `"` and `\` escaped, split into
/// chunks of at most 255 bytes (RFC 1035 §3.3.14; DKIM keys are longer, RFC 6376 §3.6.2.2).
pub fn txt_strings(value: &str) -> String {
    let mut parts = vec![];
    let mut cur = String::new();
    for c in value.chars() {
        if cur.len() + c.len_utf8() > 255 {
            parts.push(std::mem::take(&mut cur));
        }
        cur.push(c);
    }
    parts.push(cur);
    parts
        .iter()
        .map(|p| format!("\"{}\"", p.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The SPF record for the domain (RFC 7208): the MX hosts may send, nothing else.
pub fn spf_value() -> &'static str {
    "v=spf1 mx -all"
}

/// The SPF record for the host name, for the HELO identity (RFC 7208 §2.3).
pub fn helo_spf_value() -> &'static str {
    "v=spf1 a -all"
}

/// The DMARC record (RFC 7489 §6.3): quarantine what fails, aggregate reports to postmaster.
pub fn dmarc_value(config: &Config) -> String {
    format!(
        "v=DMARC1; p=quarantine; adkim=s; aspf=s; rua=mailto:postmaster@{}",
        config.domain
    )
}

/// The TLS-RPT record (RFC 8460 §3): where senders report TLS failures.
pub fn tlsrpt_value(config: &Config) -> String {
    format!("v=TLSRPTv1; rua=mailto:postmaster@{}", config.domain)
}

/// The DKIM records (owner name, TXT value) from the key(s) in data_dir, or why there are none.
pub fn dkim_records(config: &Config) -> Result<Vec<(String, String)>, String> {
    crate::delivery::dkim::dns_records(config).map_err(|e| e.to_string())
}

/// The whole zone snippet.
pub fn render(config: &Config, public: &PublicAddresses) -> String {
    let d = fqdn(&config.domain);
    let h = fqdn(&config.hostname);
    let mut z = String::new();
    let mut rr = |name: &str, rtype: &str, data: &str| {
        let _ = writeln!(z, "{name:<40} {TTL} IN {rtype:<5} {data}");
    };
    let ports = ClientPorts::of(config);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "; DNS records for {} — publish these at your DNS provider (zone-file syntax, absolute names).",
        config.domain
    );
    let _ = writeln!(out, "$TTL {TTL}");

    // Mail routing.
    rr(&d, "MX", &format!("10 {h}"));
    for ip in &public.addrs {
        rr(&h, if ip.is_ipv4() { "A" } else { "AAAA" }, &ip.to_string());
    }
    // Sender authentication.
    rr(&d, "TXT", &txt_strings(spf_value()));
    // A second SPF record on the same name would be a permerror (RFC 7208 §4.5).
    if h != d {
        rr(&h, "TXT", &txt_strings(helo_spf_value()));
    }
    let dkim = dkim_records(config);
    if let Ok(recs) = &dkim {
        for (name, value) in recs {
            rr(&fqdn(name), "TXT", &txt_strings(value));
        }
    }
    rr(
        &fqdn(&format!("_dmarc.{}", config.domain)),
        "TXT",
        &txt_strings(&dmarc_value(config)),
    );
    // Transport security for mail coming in: MTA-STS (RFC 8461) and TLS reporting (RFC 8460).
    rr(
        &fqdn(&format!("_mta-sts.{}", config.domain)),
        "TXT",
        &txt_strings(&crate::http::mta_sts::txt_record(config)),
    );
    rr(&fqdn(&format!("mta-sts.{}", config.domain)), "CNAME", &h);
    rr(
        &fqdn(&format!("_smtp._tls.{}", config.domain)),
        "TXT",
        &txt_strings(&tlsrpt_value(config)),
    );
    // Client discovery: RFC 6186 SRV records, implicit TLS preferred (RFC 8314 §5.1: lower
    // priority value wins). A disabled service gets target "." (RFC 6186 §4: not offered).
    let srv = |service: &str, prio: u16, port: Option<u16>| {
        let target = match port {
            Some(p) => format!("{prio} 1 {p} {h}"),
            None => "0 0 0 .".into(),
        };
        (fqdn(&format!("{service}.{}", config.domain)), target)
    };
    for (name, data) in [
        srv("_submissions._tcp", 0, ports.submissions),
        srv("_submission._tcp", 10, ports.submission),
        srv("_imaps._tcp", 0, ports.imaps),
        srv("_imap._tcp", 10, ports.imap),
    ] {
        rr(&name, "SRV", &data);
    }
    // RFC 5804 §1.8: where Sieve clients find ManageSieve; only when it listens.
    if let Some(p) = ports.managesieve {
        rr(
            &fqdn(&format!("_sieve._tcp.{}", config.domain)),
            "SRV",
            &format!("0 1 {p} {h}"),
        );
    }
    // Thunderbird looks up autoconfig.DOMAIN before anything else.
    rr(&fqdn(&format!("autoconfig.{}", config.domain)), "CNAME", &h);

    let _ = writeln!(out, "; A/AAAA for {}: {}", config.hostname, public.source);
    if public.addrs.is_empty() {
        let _ = writeln!(
            out,
            "; (no A/AAAA record below: add `{h} {TTL} IN A <this server's IPv4>` yourself)"
        );
    }
    match &dkim {
        Ok(r) if r.is_empty() => {
            let _ = writeln!(
                out,
                "; DKIM: no key in {}/dkim yet (`postern init` creates it); no DKIM record below",
                config.data_dir.display()
            );
        }
        Ok(_) => {}
        Err(e) => {
            let _ = writeln!(out, "; DKIM: cannot read the key: {e}");
        }
    }
    if config.listen.https.is_empty() {
        let _ = writeln!(
            out,
            "; MTA-STS: senders fetch the policy from https://mta-sts.{}/.well-known/mta-sts.txt —\n;   enable listen.https (port 443) or serve that file elsewhere over HTTPS",
            config.domain
        );
    }
    if let Some((_, chain)) = super::check::stored_certificate(config)
        && let Some(hash) = chain
            .first()
            .and_then(|c| crate::outbound::dane::tlsa_311(c))
    {
        let _ = writeln!(
            out,
            "; DANE (optional; only in a DNSSEC-signed zone): senders that check DANE (RFC 7672)\n;   pin this server's key with\n;   _25._tcp.{h} {TTL} IN TLSA 3 1 1 {hash}"
        );
        let rollover = if config.tls.source == crate::config::TlsSource::Acme
            && !config.tls.acme_reuse_key
        {
            "; WARNING: every ACME renewal makes a new key, which breaks that record (DANE senders\n;   then defer mail to you). Set [tls] acme_reuse_key = true before publishing it."
        } else {
            "; Before changing the key (new certificate files), publish the new key's record beside\n;   the old one, wait for the TTL, then switch and remove the old one (RFC 7671 §8.1)."
        };
        let _ = writeln!(out, "{rollover}");
    }
    let relays = config.outbound.relays();
    if !relays.is_empty() {
        let names: Vec<String> = relays.iter().map(|(h, p)| format!("{h}:{p}")).collect();
        let _ = writeln!(
            out,
            "; Relay: mail leaves through {}. Add the relay's SPF mechanism (its documentation\n;   names it, e.g. include:<relay's SPF domain>) before -all in the SPF record below.",
            names.join(", ")
        );
    }
    out.push_str(&z);
    let _ = writeln!(
        out,
        "; PTR (reverse DNS) is set at your hosting provider, not in this zone: make each address"
    );
    let _ = writeln!(
        out,
        ";   of {} point back to {} (many receivers refuse mail otherwise).",
        config.hostname, h
    );
    for ip in &public.addrs {
        let _ = writeln!(out, ";   {} -> {h}", reverse_name(ip));
    }
    out
}

/// The in-addr.arpa / ip6.arpa name of an address (RFC 1035 §3.5, RFC 3596 §2.5).
pub fn reverse_name(ip: &IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa.", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut s = String::new();
            for b in v6.octets().iter().rev() {
                let _ = write!(s, "{:x}.{:x}.", b & 0xf, b >> 4);
            }
            s + "ip6.arpa."
        }
    }
}

/// `postern dns`.
///
/// Exits non-zero when the DKIM key could not be read: the zone printed lacks its record.
pub fn run(config: &Config) -> anyhow::Result<()> {
    print!("{}", render(config, &public_addresses(config)));
    if let Err(e) = dkim_records(config) {
        let e = e.to_string();
        anyhow::bail!(
            "the records above lack DKIM: {}",
            e.trim_start_matches("DKIM: ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn cfg(extra: &str) -> Config {
        Config::parse(
            &format!(
                "domain='example.com'\nhostname='mail.example.com'\ndata_dir='/nonexistent'\n{extra}"
            ),
            Path::new("t.toml"),
        )
        .unwrap()
    }

    #[test]
    fn public_address_classes() {
        for ip in [
            "10.1.2.3",
            "127.0.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "fd00::1",
            "fe80::1",
            "::1",
        ] {
            assert!(!is_public(&ip.parse().unwrap()), "{ip}");
        }
        for ip in ["203.0.114.7", "8.8.8.8", "2a01:4f8::1"] {
            assert!(is_public(&ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn configured_addresses_win() {
        let c = cfg("[dns]\npublic_addresses=['198.51.100.7','2001:db8::7']");
        let p = public_addresses(&c);
        assert_eq!(p.addrs.len(), 2);
        assert!(p.source.contains("public_addresses"));
        let z = render(&c, &p);
        assert!(z.contains("mail.example.com. "));
        assert!(z.contains(" IN A     198.51.100.7"), "{z}");
        assert!(z.contains(" IN AAAA  2001:db8::7"), "{z}");
        assert!(
            z.contains("7.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.")
        );
        assert!(z.contains("7.100.51.198.in-addr.arpa."));
    }

    #[test]
    fn records_present() {
        let c = cfg("[listen]\nimap=[]"); // ManageSieve on by default: _sieve._tcp
        let z = render(
            &c,
            &PublicAddresses {
                addrs: vec![],
                source: "x".into(),
            },
        );
        for want in [
            "example.com.                             3600 IN MX    10 mail.example.com.",
            "\"v=spf1 mx -all\"",
            "_dmarc.example.com.",
            "\"v=DMARC1; p=quarantine;",
            "_mta-sts.example.com.",
            "\"v=STSv1; id=",
            "_smtp._tls.example.com.",
            "_submissions._tcp.example.com.           3600 IN SRV   0 1 465 mail.example.com.",
            "_submission._tcp.example.com.            3600 IN SRV   10 1 587 mail.example.com.",
            "_imaps._tcp.example.com.                 3600 IN SRV   0 1 993 mail.example.com.",
            "_imap._tcp.example.com.                  3600 IN SRV   0 0 0 .",
            "_sieve._tcp.example.com.                 3600 IN SRV   0 1 4190 mail.example.com.",
            "autoconfig.example.com.",
            "; PTR",
        ] {
            assert!(z.contains(want), "missing {want:?} in\n{z}");
        }
    }

    #[test]
    fn one_spf_record_when_the_host_is_the_domain() {
        let c = Config::parse(
            "domain='example.com'\nhostname='example.com'\ndata_dir='/nonexistent'",
            Path::new("t.toml"),
        )
        .unwrap();
        let z = render(
            &c,
            &PublicAddresses {
                addrs: vec![],
                source: "x".into(),
            },
        );
        assert_eq!(z.matches("v=spf1").count(), 1, "{z}");
    }

    #[test]
    fn long_txt_is_split() {
        let v = "p=".to_string() + &"A".repeat(400);
        let s = txt_strings(&v);
        assert_eq!(s.matches('"').count(), 4);
        assert_eq!(txt_strings("a\"b\\c"), "\"a\\\"b\\\\c\"");
    }
}
