//! The one config file, `postern.toml`: parsed once at start-up and validated, with errors that
//! name the file, the key and the fix. Every section has defaults so a minimal config is three
//! lines (`domain`, `hostname`, `data_dir`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod log;
mod outbound;
pub use crate::spam::settings::{RspamdFailure, Spam, SpamAction};
pub use log::{Log, LogFormat};
pub use outbound::{Outbound, RelayTls};

/// Where the config lives unless `--config` or `$POSTERN_CONFIG` says otherwise.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/postern/postern.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source} (create one with `postern init`)")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config file {path}: key `{key}`: {message}")]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The mail domain: the part right of `@`.
    pub domain: String,
    /// The host name of this server: EHLO name, MX target, certificate name.
    pub hostname: String,
    /// Everything postern keeps: accounts, mail, queue, keys, certificates.
    pub data_dir: PathBuf,
    /// `[log]`: the log's format.
    #[serde(default)]
    pub log: Log,
    #[serde(default)]
    pub listen: Listen,
    #[serde(default)]
    pub tls: Tls,
    #[serde(default)]
    pub dns: Dns,
    #[serde(default)]
    pub dkim: Dkim,
    #[serde(default)]
    pub outbound: Outbound,
    #[serde(default)]
    pub queue: Queue,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub inbound: Inbound,
    #[serde(default)]
    pub http: Http,
    #[serde(default)]
    pub imap: Imap,
    #[serde(default)]
    pub delivery: Delivery,
    #[serde(default)]
    pub spam: Spam,
}

/// Listener addresses, each a list of "ip:port"; an empty list turns the service off.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Listen {
    pub smtp: Vec<SocketAddr>,
    pub submission: Vec<SocketAddr>,
    pub submissions: Vec<SocketAddr>,
    pub imap: Vec<SocketAddr>,
    pub imaps: Vec<SocketAddr>,
    /// POP3 with STLS (RFC 1939, RFC 2595); off unless set.
    pub pop3: Vec<SocketAddr>,
    /// POP3 over implicit TLS (RFC 8314); off unless set.
    pub pop3s: Vec<SocketAddr>,
    pub http: Vec<SocketAddr>,
    /// HTTPS: MTA-STS policy, autoconfig, and ACME TLS-ALPN-01 challenges.
    pub https: Vec<SocketAddr>,
    /// Prometheus `/metrics`; off unless set (opt-in, keep it on loopback).
    pub metrics: Vec<SocketAddr>,
    /// ManageSieve (RFC 5804, port 4190): users manage their Sieve scripts (STARTTLS
    /// required before AUTHENTICATE).
    pub managesieve: Vec<SocketAddr>,
}

impl Default for Listen {
    fn default() -> Self {
        let a = |s: &str| vec![s.parse().expect("static address")];
        Listen {
            smtp: a("[::]:25"),
            submission: a("[::]:587"),
            submissions: a("[::]:465"),
            imap: a("[::]:143"),
            imaps: a("[::]:993"),
            pop3: vec![],
            pop3s: vec![],
            http: a("[::]:80"),
            https: vec![],
            metrics: vec![],
            managesieve: a("[::]:4190"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsSource {
    Acme,
    Files,
    SelfSigned,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AcmeChallenge {
    #[serde(rename = "http-01")]
    Http01,
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tls {
    pub source: TlsSource,
    /// PEM certificate chain, for `source = "files"`.
    pub cert_file: PathBuf,
    /// PEM private key, for `source = "files"`.
    pub key_file: PathBuf,
    pub acme_directory: String,
    /// e.g. "mailto:admin@example.com"
    pub acme_contact: String,
    /// Extra root certificate (PEM) to trust for the ACME server (tests, private CAs).
    pub acme_ca_file: PathBuf,
    /// Names besides `hostname` on the certificate (e.g. mta-sts.DOMAIN, autoconfig.DOMAIN).
    pub acme_extra_names: Vec<String>,
    /// "http-01" (answered on listen.http) or "tls-alpn-01" (answered on listen.https).
    pub acme_challenge: AcmeChallenge,
    /// Keep the certificate's key across ACME renewals, so a published DANE record
    /// (`TLSA 3 1 1`, see `postern dns`) stays valid. Off: a fresh key per certificate.
    pub acme_reuse_key: bool,
}

impl Default for Tls {
    fn default() -> Self {
        Tls {
            source: TlsSource::Acme,
            cert_file: PathBuf::new(),
            key_file: PathBuf::new(),
            acme_directory: "https://acme-v02.api.letsencrypt.org/directory".into(),
            acme_contact: String::new(),
            acme_ca_file: PathBuf::new(),
            acme_extra_names: vec![],
            acme_challenge: AcmeChallenge::Http01,
            acme_reuse_key: false,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Dns {
    /// "ip:port" of resolvers to use; empty = the system resolver (/etc/resolv.conf).
    pub nameservers: Vec<SocketAddr>,
    /// Seconds per query before it counts as a (temporary) failure.
    pub timeout_secs: u64,
    /// This server's public IPv4/IPv6 addresses, for the A/AAAA records `postern dns` prints
    /// and `postern check` expects; empty = detect them.
    pub public_addresses: Vec<std::net::IpAddr>,
}

impl Default for Dns {
    fn default() -> Self {
        Dns {
            nameservers: vec![],
            timeout_secs: 5,
            public_addresses: vec![],
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Dkim {
    /// Selector of the DKIM key: the record lives at SELECTOR._domainkey.DOMAIN.
    pub selector: String,
    /// Also sign with an Ed25519 key (selector SELECTOR-ed) besides RSA.
    pub ed25519: bool,
}

impl Default for Dkim {
    fn default() -> Self {
        Dkim {
            selector: "postern".into(),
            ed25519: true,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Queue {
    /// Delays between attempts, in seconds; the last one repeats until `max_age_secs`.
    pub retry_schedule_secs: Vec<u64>,
    /// Give up (and bounce) after this long.
    pub max_age_secs: u64,
    /// Send a delay notice (DSN action=delayed) once, after this long; 0 = never.
    pub delay_notice_secs: u64,
}

impl Default for Queue {
    fn default() -> Self {
        Queue {
            retry_schedule_secs: vec![60, 300, 900, 1800, 3600, 7200, 14400],
            max_age_secs: 5 * 24 * 3600,
            delay_notice_secs: 4 * 3600,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest message accepted (SIZE, RFC 1870), in bytes.
    pub max_message_size: u64,
    /// Recipients per message (RFC 5321 §4.5.3.1.8 requires at least 100).
    pub max_recipients: usize,
    /// Messages per SMTP connection.
    pub max_messages_per_connection: usize,
    /// Unknown recipients per connection before it is dropped.
    pub max_invalid_recipients: usize,
    /// Simultaneous connections in total, over every listener (SMTP, IMAP, HTTP).
    pub max_connections: usize,
    /// Simultaneous connections from one IP address, over every listener.
    pub max_connections_per_ip: usize,
    /// SMTP command timeout (RFC 5321 §4.5.3.2.7: at least 5 minutes).
    pub smtp_command_timeout_secs: u64,
    /// SMTP DATA block timeout (RFC 5321 §4.5.3.2.6: at least 3 minutes).
    pub smtp_data_timeout_secs: u64,
    /// IMAP idle timeout for an authenticated session (RFC 9051 §5.4: at least 30 minutes).
    pub imap_idle_timeout_secs: u64,
    /// IMAP: time an unauthenticated client gets to send a complete command (RFC 9051 §5.4
    /// allows a short autologout before login).
    pub imap_preauth_timeout_secs: u64,
    /// Time a TLS handshake may take, on every listener (implicit TLS and STARTTLS).
    pub tls_handshake_timeout_secs: u64,
    /// Largest IMAP literal (APPEND is also bounded by max_message_size).
    pub imap_max_literal: u64,
    /// Seconds to wait before the SMTP banner; clients that talk first are dropped. 0 = off.
    pub smtp_greeting_delay_secs: u64,
    /// Failed logins from one IP (or on one account) before logins are refused for a while.
    pub max_auth_failures: u32,
    /// Octets each account may store over all its folders (RFC 9208 STORAGE); 0 = no limit.
    pub mailbox_quota: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_size: 50 * 1024 * 1024,
            max_recipients: 100,
            max_messages_per_connection: 100,
            max_invalid_recipients: 10,
            max_connections: 500,
            max_connections_per_ip: 20,
            smtp_command_timeout_secs: 300,
            smtp_data_timeout_secs: 600,
            imap_idle_timeout_secs: 30 * 60,
            imap_preauth_timeout_secs: 60,
            tls_handshake_timeout_secs: 30,
            imap_max_literal: 50 * 1024 * 1024,
            smtp_greeting_delay_secs: 0,
            max_auth_failures: 10,
            mailbox_quota: 0,
        }
    }
}

/// What to do with the SPF/DKIM/DMARC verdicts of mail arriving on port 25.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Inbound {
    /// Check SPF, DKIM, DMARC and iprev and add Authentication-Results.
    pub verify: bool,
    /// Refuse (550 5.7.1) mail failing DMARC whose domain publishes p=reject.
    pub dmarc_reject: bool,
    /// File mail failing DMARC with p=quarantine into Junk.
    pub dmarc_quarantine: bool,
    /// Answer 4xx when a DNS lookup for the checks fails temporarily.
    pub tempfail_on_dns_error: bool,
}

impl Default for Inbound {
    fn default() -> Self {
        Inbound {
            verify: true,
            dmarc_reject: true,
            dmarc_quarantine: true,
            tempfail_on_dns_error: true,
        }
    }
}

/// IMAP options.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Imap {
    /// Allow LOGIN/AUTHENTICATE on port 143 without STARTTLS (RFC 3501 §6.2.3 LOGINDISABLED
    /// otherwise). Only for benchmarks and loopback test setups.
    pub allow_plaintext_auth: bool,
}

/// Forwarding policy.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Delivery {
    /// Rewrite the envelope sender of mail forwarded to remote alias targets with SRS0
    /// (so SPF passes at the destination) and accept bounces to those addresses.
    pub srs: bool,
}

impl Default for Delivery {
    fn default() -> Self {
        Delivery { srs: true }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Http {
    /// MTA-STS policy mode served at /.well-known/mta-sts.txt: "enforce", "testing" or "none".
    pub mta_sts_mode: String,
    /// max_age of the MTA-STS policy, seconds.
    pub mta_sts_max_age: u64,
}

impl Default for Http {
    fn default() -> Self {
        Http {
            mta_sts_mode: "testing".into(),
            mta_sts_max_age: 604800,
        }
    }
}

impl Config {
    /// Read, parse and validate the config file. A relative `data_dir` is taken relative to
    /// the config file's directory, never to the current directory of whoever runs postern.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut cfg = Self::parse(&text, path)?;
        if cfg.data_dir.is_relative() {
            let base = std::path::absolute(path)
                .ok()
                .and_then(|p| p.parent().map(Path::to_owned))
                .unwrap_or_default();
            cfg.data_dir = base.join(&cfg.data_dir);
        }
        Ok(cfg)
    }

    /// Parse and validate config text; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            // toml's message names the key (e.g. "unknown field `foo`, expected one of …")
            // and the line; flatten it to one line.
            message: e
                .to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
        })?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let bad = |key: &str, message: String| ConfigError::Invalid {
            path: path.to_owned(),
            key: key.to_owned(),
            message,
        };
        if !is_domain_name(&self.domain) {
            return Err(bad(
                "domain",
                format!(
                    "{:?} is not a domain name; set it to e.g. \"example.com\"",
                    self.domain
                ),
            ));
        }
        if !is_domain_name(&self.hostname) {
            return Err(bad(
                "hostname",
                format!(
                    "{:?} is not a host name; set it to e.g. \"mail.example.com\"",
                    self.hostname
                ),
            ));
        }
        if self.data_dir.as_os_str().is_empty() {
            return Err(bad(
                "data_dir",
                "is empty; set it to e.g. \"/var/lib/postern\"".into(),
            ));
        }
        if self.tls.source == TlsSource::Files {
            if self.tls.cert_file.as_os_str().is_empty() {
                return Err(bad(
                    "tls.cert_file",
                    "is required when tls.source = \"files\"; give the PEM certificate chain"
                        .into(),
                ));
            }
            if self.tls.key_file.as_os_str().is_empty() {
                return Err(bad(
                    "tls.key_file",
                    "is required when tls.source = \"files\"; give the PEM private key".into(),
                ));
            }
        }
        if self.tls.source == TlsSource::Acme && !self.tls.acme_directory.starts_with("https://") {
            return Err(bad(
                "tls.acme_directory",
                "must be an https:// URL of an ACME directory".into(),
            ));
        }
        if self.limits.max_message_size < 1024 {
            return Err(bad(
                "limits.max_message_size",
                "must be at least 1024 bytes".into(),
            ));
        }
        if self.limits.max_recipients == 0 {
            return Err(bad(
                "limits.max_recipients",
                "must be at least 1 (RFC 5321 asks for 100)".into(),
            ));
        }
        if self.queue.retry_schedule_secs.is_empty() {
            return Err(bad(
                "queue.retry_schedule_secs",
                "must list at least one delay".into(),
            ));
        }
        if !["enforce", "testing", "none"].contains(&self.http.mta_sts_mode.as_str()) {
            return Err(bad(
                "http.mta_sts_mode",
                "must be \"enforce\", \"testing\" or \"none\"".into(),
            ));
        }
        if self.dkim.selector.is_empty()
            || !self
                .dkim
                .selector
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(bad(
                "dkim.selector",
                "must be letters, digits and '-'".into(),
            ));
        }
        self.spam
            .check(is_domain_name)
            .map_err(|(k, m)| bad(k, m))?;
        self.outbound.validate(path)
    }

    pub fn smtp_command_timeout(&self) -> Duration {
        Duration::from_secs(self.limits.smtp_command_timeout_secs)
    }

    /// Deadline for a whole TLS handshake (a client trickling handshake bytes included).
    pub fn tls_handshake_timeout(&self) -> Duration {
        Duration::from_secs(self.limits.tls_handshake_timeout_secs.max(1))
    }

    /// Domains we accept mail for (lower case).
    pub fn is_local_domain(&self, domain: &str) -> bool {
        domain
            .trim_end_matches('.')
            .eq_ignore_ascii_case(&self.domain)
    }
}

pub(crate) fn is_domain_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// The commented config `postern init` writes.
pub fn render_initial(domain: &str, hostname: &str, data_dir: &Path) -> String {
    format!(
        r#"# postern configuration. Every key is optional except domain, hostname and data_dir.
# Reference of all keys with their defaults: contrib/postern.example.toml

domain = "{domain}"            # the part right of @
hostname = "{hostname}"        # EHLO name, MX target, certificate name
data_dir = "{data_dir}"        # accounts, mail, queue, keys, certificates

[listen]                       # lists of "ip:port"; an empty list turns a service off
smtp = ["[::]:25"]             # incoming mail from the internet
submission = ["[::]:587"]      # mail clients sending (STARTTLS)
submissions = ["[::]:465"]     # mail clients sending (implicit TLS)
imap = ["[::]:143"]            # mail clients reading (STARTTLS)
imaps = ["[::]:993"]           # mail clients reading (implicit TLS)
# pop3 = ["[::]:110"]          # POP3 fetchers (STLS)
# pop3s = ["[::]:995"]         # POP3 fetchers (implicit TLS)
managesieve = ["[::]:4190"]    # Sieve filter management (RFC 5804, STARTTLS)
http = ["[::]:80"]             # ACME HTTP-01, autoconfig, MTA-STS
# https = ["[::]:443"]         # MTA-STS policy over HTTPS, ACME TLS-ALPN-01
# metrics = ["127.0.0.1:9100"] # Prometheus /metrics (opt-in)

[tls]
source = "acme"                # "acme" | "files" | "self-signed"
cert_file = ""                 # PEM chain, for "files"
key_file = ""                  # PEM key, for "files"
acme_directory = "https://acme-v02.api.letsencrypt.org/directory"
acme_contact = ""              # e.g. "mailto:admin@{domain}"
acme_ca_file = ""              # extra root to trust for the ACME server (tests)
acme_extra_names = ["mta-sts.{domain}", "autoconfig.{domain}"]
acme_challenge = "http-01"     # or "tls-alpn-01" (needs listen.https on :443)

[dns]
nameservers = []               # "ip:port"; empty = the system resolver

[dkim]
selector = "postern"           # record at postern._domainkey.{domain}

[outbound]
port = 25                      # port of remote MX hosts (tests only)
# Outgoing port 25 blocked by the provider? Send through a relay (INSTALL.md):
# relay = "smtp.provider.example:587"   # "" = deliver to each domain's MX hosts
# relay_tls = "starttls"                # or "implicit" for port 465
# relay_user = "you@{domain}"
# relay_password_file = "/etc/postern/relay-password"   # mode 0600, owned by postern

[limits]
max_message_size = 52428800

[spam]
# DNS blocklists (RFC 5782) for the connecting IP, e.g. Spamhaus ZEN (free for small sites;
# it refuses queries through public resolvers, so use a local one in [dns]):
# dnsbl = ["zen.spamhaus.org"]
# dnsbl_action = "reject"      # 554 at RCPT; or "junk" to file listed mail into Junk
# dnsbl_allowlist = []         # IPs/networks never looked up, e.g. ["192.0.2.0/24"]
# rspamd_url = "http://127.0.0.1:11333"   # ask a local rspamd about each message
junk_filter = true             # per-user filter trained by moving mail into/out of Junk
junk_threshold = 0.95
"#,
        data_dir = data_dir.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Config, ConfigError> {
        Config::parse(s, Path::new("t.toml"))
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c =
            parse("domain='example.com'\nhostname='mail.example.com'\ndata_dir='/tmp/x'").unwrap();
        assert_eq!(c.limits.max_message_size, 52428800);
        assert_eq!(
            c.listen.smtp,
            vec!["[::]:25".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(c.tls.source, TlsSource::Acme);
    }

    #[test]
    fn unknown_key_is_named() {
        let e = parse("domain='example.com'\nhostname='m.example.com'\ndata_dir='/x'\n[limits]\nmax_mesage_size=1").unwrap_err();
        assert!(e.to_string().contains("max_mesage_size"), "{e}");
        let e = parse("domain='example.com'\nhostname='m.example.com'\ndata_dir='/x'\nbogus=1")
            .unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
    }

    #[test]
    fn invalid_value_names_key() {
        let e = parse("domain='exa mple'\nhostname='m.example.com'\ndata_dir='/x'").unwrap_err();
        assert!(e.to_string().contains("`domain`"), "{e}");
        let e = parse(
            "domain='example.com'\nhostname='m.example.com'\ndata_dir='/x'\n[tls]\nsource='files'",
        )
        .unwrap_err();
        assert!(e.to_string().contains("tls.cert_file"), "{e}");
    }

    #[test]
    fn spam_keys_are_checked() {
        let base = "domain='example.com'\nhostname='m.example.com'\ndata_dir='/x'\n[spam]\n";
        for (bad, key) in [
            ("dnsbl = ['bl example']", "spam.dnsbl"),
            ("dnsbl_allowlist = ['10.0.0.0/40']", "spam.dnsbl_allowlist"),
            ("rspamd_url = 'https://x'", "spam.rspamd_url"),
            ("junk_threshold = 0.2", "spam.junk_threshold"),
        ] {
            let e = parse(&format!("{base}{bad}")).unwrap_err();
            assert!(e.to_string().contains(key), "{e}");
        }
        let e = parse(&format!("{base}dnsbl_action = 'drop'")).unwrap_err();
        assert!(e.to_string().contains("dnsbl_action"), "{e}");
        let c = parse(&format!(
            "{base}dnsbl = ['zen.spamhaus.org.']\ndnsbl_allowlist = ['192.0.2.0/24', '2001:db8::1']\nrspamd_url = 'http://127.0.0.1:11333'"
        ))
        .unwrap();
        assert_eq!(c.spam.dnsbl_action, SpamAction::Reject);
    }

    #[test]
    fn initial_config_parses() {
        let text = render_initial(
            "example.com",
            "mail.example.com",
            Path::new("/var/lib/postern"),
        );
        let c = parse(&text).unwrap();
        assert_eq!(c.domain, "example.com");
    }
}
