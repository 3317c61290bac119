//! `[outbound]`: how remote mail leaves — to the MX hosts of each domain (the default), or
//! through a smarthost relay with TLS and AUTH (`relay`, `relay_tls`, `relay_user`,
//! `relay_password_file`, `[outbound.relay_domains]`) when port 25 is blocked.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{ConfigError, is_domain_name};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Outbound {
    /// Port of remote MX hosts. Only tests change this.
    pub port: u16,
    /// Simultaneous connections to one destination domain.
    pub max_connections_per_domain: usize,
    /// Simultaneous outbound deliveries in total.
    pub max_connections: usize,
    /// Require valid TLS even without MTA-STS (off: opportunistic, as RFC 3207 practice).
    pub require_tls: bool,
    /// Port of MTA-STS policy hosts (https://mta-sts.DOMAIN). Only tests change this.
    pub mta_sts_port: u16,
    /// A CA certificate (PEM) trusted for outbound TLS and MTA-STS besides the system roots
    /// (a private CA; tests). Empty: system roots only.
    pub ca_file: PathBuf,
    /// Smarthost for all remote mail, "host:port" (the port defaults by `relay_tls` to 587
    /// or 465); empty = deliver to the MX hosts of each domain.
    pub relay: String,
    /// How to reach a relay: "starttls" (587) or "implicit" (465). TLS with a verified
    /// certificate is always required.
    pub relay_tls: RelayTls,
    /// User name for AUTH at the relay; empty = no AUTH.
    pub relay_user: String,
    /// File holding the relay password (its first line), mode 0600.
    pub relay_password_file: PathBuf,
    /// Destination domain → relay "host:port" for that domain ("" = by MX); overrides `relay`.
    pub relay_domains: BTreeMap<String, String>,
    /// DANE (RFC 7672): honour TLSA records of MX hosts whose DNS answers are DNSSEC-signed.
    /// Needs a validating resolver on this machine in `[dns].nameservers` (its AD bit is
    /// trusted); otherwise DANE stays off, with a note in the log at start.
    pub dane: bool,
    /// Send SMTP TLS reports (RFC 8460) once a day to the domains we delivered to that ask
    /// for them (`_smtp._tls` TXT with a `mailto:` rua).
    pub tlsrpt: bool,
    /// Length of a TLS reporting period in seconds (a UTC day). Only tests change this.
    pub tlsrpt_period_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RelayTls {
    /// A plain connection, then STARTTLS (RFC 3207), usually port 587.
    Starttls,
    /// TLS from the first byte (RFC 8314 §3.3), usually port 465.
    Implicit,
}

impl Default for Outbound {
    fn default() -> Self {
        Outbound {
            port: 25,
            max_connections_per_domain: 4,
            max_connections: 32,
            require_tls: false,
            mta_sts_port: 443,
            ca_file: PathBuf::new(),
            relay: String::new(),
            relay_tls: RelayTls::Starttls,
            relay_user: String::new(),
            relay_password_file: PathBuf::new(),
            relay_domains: BTreeMap::new(),
            dane: true,
            tlsrpt: true,
            tlsrpt_period_secs: 86400,
        }
    }
}

impl Outbound {
    /// The relay (host, port) for mail to `domain`, or None to deliver by MX.
    pub fn relay_for(&self, domain: &str) -> Option<(String, u16)> {
        let d = domain.trim_end_matches('.');
        let spec = self
            .relay_domains
            .iter()
            .find(|(k, _)| k.trim_end_matches('.').eq_ignore_ascii_case(d))
            .map(|(_, v)| v)
            .unwrap_or(&self.relay);
        split_host_port(spec, self.default_relay_port())
    }

    fn default_relay_port(&self) -> u16 {
        match self.relay_tls {
            RelayTls::Starttls => 587,
            RelayTls::Implicit => 465,
        }
    }

    /// Every distinct relay of the config (for `postern check`).
    pub fn relays(&self) -> Vec<(String, u16)> {
        let mut out: Vec<(String, u16)> = Vec::new();
        for spec in std::iter::once(&self.relay).chain(self.relay_domains.values()) {
            if let Some(r) = split_host_port(spec, self.default_relay_port())
                && !out.contains(&r)
            {
                out.push(r);
            }
        }
        out
    }

    pub(super) fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let bad = |key: &str, message: String| ConfigError::Invalid {
            path: path.to_owned(),
            key: key.to_owned(),
            message,
        };
        let valid_relay = |spec: &str| {
            spec.trim().is_empty()
                || split_host_port(spec, 587).is_some_and(|(h, p)| {
                    p != 0 && (is_domain_name(&h) || h.parse::<std::net::IpAddr>().is_ok())
                })
        };
        if !valid_relay(&self.relay) {
            return Err(bad(
                "outbound.relay",
                format!(
                    "{:?} is not \"host:port\"; set it to e.g. \"smtp.provider.example:587\"",
                    self.relay
                ),
            ));
        }
        for (domain, spec) in &self.relay_domains {
            if !is_domain_name(domain.trim_end_matches('.')) {
                return Err(bad(
                    &format!("outbound.relay_domains.{domain}"),
                    "the key must be a destination domain, e.g. \"gmail.com\"".into(),
                ));
            }
            if !valid_relay(spec) {
                return Err(bad(
                    &format!("outbound.relay_domains.{domain}"),
                    format!("{spec:?} is not \"host:port\" (or \"\" to deliver by MX)"),
                ));
            }
        }
        let user = !self.relay_user.is_empty();
        let file = !self.relay_password_file.as_os_str().is_empty();
        if user && !file {
            return Err(bad(
                "outbound.relay_password_file",
                "is required with relay_user: a file (mode 0600) holding the password".into(),
            ));
        }
        if file && !user {
            return Err(bad(
                "outbound.relay_user",
                "is required with relay_password_file: the user name at the relay".into(),
            ));
        }
        if user && self.relays().is_empty() {
            return Err(bad(
                "outbound.relay_user",
                "is set, but no relay is: set outbound.relay or [outbound.relay_domains]".into(),
            ));
        }
        Ok(())
    }
}

/// "host:port", "host", "[v6]:port" or a bare IPv6 address → (host, port); None for "" or a
/// bad port.
fn split_host_port(spec: &str, default_port: u16) -> Option<(String, u16)> {
    let spec = spec.trim();
    if spec.is_empty() {
        return None;
    }
    if let Some(rest) = spec.strip_prefix('[') {
        let (host, tail) = rest.split_once(']')?;
        let port = match tail.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if tail.is_empty() => default_port,
            None => return None,
        };
        return Some((host.to_string(), port));
    }
    if spec.parse::<std::net::Ipv6Addr>().is_ok() {
        return Some((spec.to_string(), default_port));
    }
    match spec.rsplit_once(':') {
        Some((h, p)) => Some((h.to_string(), p.parse().ok()?)),
        None => Some((spec.to_string(), default_port)),
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use std::path::Path;

    fn parse(outbound: &str) -> Result<Config, super::ConfigError> {
        Config::parse(
            &format!("domain='example.com'\nhostname='m.example.com'\ndata_dir='/x'\n{outbound}"),
            Path::new("t.toml"),
        )
    }

    #[test]
    fn relay_routes_with_default_ports_and_per_domain_overrides() {
        let c = parse(
            "[outbound]\nrelay='smtp.provider.example'\nrelay_user='u'\nrelay_password_file='/p'\n\
             [outbound.relay_domains]\n'gmail.com'='smtp.gmail.example:2525'\n'direct.example'=''\n",
        )
        .unwrap();
        let o = &c.outbound;
        assert_eq!(
            o.relay_for("other.example"),
            Some(("smtp.provider.example".into(), 587))
        );
        assert_eq!(
            o.relay_for("GMAIL.com."),
            Some(("smtp.gmail.example".into(), 2525))
        );
        assert_eq!(o.relay_for("direct.example"), None);
        assert_eq!(o.relays().len(), 2);

        let c = parse("[outbound]\nrelay='[::1]'\nrelay_tls='implicit'\n").unwrap();
        assert_eq!(c.outbound.relay_for("x.example"), Some(("::1".into(), 465)));
        // Without a relay, everything goes by MX.
        let c = parse("").unwrap();
        assert_eq!(c.outbound.relay_for("x.example"), None);
        assert!(c.outbound.relays().is_empty());
    }

    #[test]
    fn relay_mistakes_name_the_key() {
        for (text, key) in [
            ("[outbound]\nrelay='smtp.example:x'", "outbound.relay"),
            ("[outbound]\nrelay='bad host:587'", "outbound.relay"),
            ("[outbound]\nrelay_tls='ssl'", "relay_tls"),
            (
                "[outbound]\nrelay='r.example'\nrelay_user='u'",
                "outbound.relay_password_file",
            ),
            (
                "[outbound]\nrelay='r.example'\nrelay_password_file='/p'",
                "outbound.relay_user",
            ),
            (
                "[outbound]\nrelay_user='u'\nrelay_password_file='/p'",
                "outbound.relay_user",
            ),
            ("[outbound]\nrelay_password='secret'", "relay_password"),
            (
                "[outbound.relay_domains]\n'not a domain'='r.example:587'",
                "relay_domains",
            ),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(key), "{text}: {e}");
        }
    }
}
