//! Thunderbird autoconfig (the "config-v1.1.xml" format, also read by K-9/Thunderbird for
//! Android, Evolution, KMail and others): tells a client the host, ports and socket types of
//! our IMAP and submission services.
//!
//! ManageSieve (RFC 5804) has no element in this format (nor in Apple's .mobileconfig or
//! Microsoft's autodiscover). The clients that manage Sieve scripts find it elsewhere:
//! Thunderbird's Sieve add-on and Roundcube's managesieve plugin default to the IMAP host
//! on port 4190, which is where postern listens by default, and RFC 5804 §1.8 names the
//! `_sieve._tcp` SRV record, which `postern dns` prints. The autoconfig document only carries
//! an XML comment saying so, for a person reading it; clients ignore comments.

use std::net::SocketAddr;

use crate::config::Config;

/// The ports clients should use, taken from the configured listeners. A service whose listen
/// list is empty is off and is not advertised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientPorts {
    /// IMAP with implicit TLS (993).
    pub imaps: Option<u16>,
    /// IMAP with STARTTLS (143).
    pub imap: Option<u16>,
    /// Submission with implicit TLS (465, RFC 8314).
    pub submissions: Option<u16>,
    /// Submission with STARTTLS (587, RFC 6409).
    pub submission: Option<u16>,
    /// ManageSieve (4190, RFC 5804), when it listens.
    pub managesieve: Option<u16>,
}

/// The port clients reach a service on: that of the first listener bound to a public (non
/// loopback) address, else that of the first listener (a loopback-only setup, e.g. behind a
/// port forward), else none.
fn public_port(addrs: &[SocketAddr]) -> Option<u16> {
    addrs
        .iter()
        .find(|a| !a.ip().is_loopback())
        .or_else(|| addrs.first())
        .map(|a| a.port())
}

impl ClientPorts {
    pub fn of(config: &Config) -> ClientPorts {
        let l = &config.listen;
        ClientPorts {
            imaps: public_port(&l.imaps),
            imap: public_port(&l.imap),
            submissions: public_port(&l.submissions),
            submission: public_port(&l.submission),
            managesieve: public_port(&l.managesieve),
        }
    }
}

/// Escape text for XML element content and attribute values.
fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

/// The autoconfig document. `email` is the `emailaddress` query parameter the client sent:
/// when it is an address of our domain it becomes the user name (postern logs users in with
/// their full address); otherwise the `%EMAILADDRESS%` placeholder lets the client fill it in.
pub fn render_autoconfig(config: &Config, email: Option<&str>) -> String {
    let ports = ClientPorts::of(config);
    let username = match email {
        Some(e)
            if e.rsplit_once('@')
                .is_some_and(|(l, d)| !l.is_empty() && config.is_local_domain(d)) =>
        {
            xml_escape(e)
        }
        _ => "%EMAILADDRESS%".to_string(),
    };
    let host = xml_escape(&config.hostname);
    let domain = xml_escape(&config.domain);
    let server = |elem: &str, kind: &str, port: Option<u16>, socket: &str| -> String {
        match port {
            Some(port) => format!(
                "    <{elem} type=\"{kind}\">\n      <hostname>{host}</hostname>\n      <port>{port}</port>\n      <socketType>{socket}</socketType>\n      <authentication>password-cleartext</authentication>\n      <username>{username}</username>\n    </{elem}>\n"
            ),
            None => String::new(),
        }
    };
    // Order matters: clients take the first usable entry, so implicit TLS (RFC 8314 §3) comes
    // before STARTTLS.
    let mut x = String::new();
    x.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    x.push_str("<clientConfig version=\"1.1\">\n");
    x.push_str(&format!("  <emailProvider id=\"{domain}\">\n"));
    x.push_str(&format!("    <domain>{domain}</domain>\n"));
    x.push_str(&format!("    <displayName>{domain} mail</displayName>\n"));
    x.push_str(&format!(
        "    <displayShortName>{domain}</displayShortName>\n"
    ));
    x.push_str(&server("incomingServer", "imap", ports.imaps, "SSL"));
    x.push_str(&server("incomingServer", "imap", ports.imap, "STARTTLS"));
    x.push_str(&server("outgoingServer", "smtp", ports.submissions, "SSL"));
    x.push_str(&server(
        "outgoingServer",
        "smtp",
        ports.submission,
        "STARTTLS",
    ));
    if let Some(p) = ports.managesieve {
        x.push_str(&format!(
            "    <!-- ManageSieve (RFC 5804, STARTTLS): {host} port {p}; DNS: _sieve._tcp.{domain} SRV -->\n"
        ));
    }
    x.push_str("  </emailProvider>\n");
    x.push_str("</clientConfig>\n");
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn cfg(extra: &str) -> Config {
        Config::parse(
            &format!("domain='example.com'\nhostname='mail.example.com'\ndata_dir='/x'\n{extra}"),
            Path::new("t.toml"),
        )
        .unwrap()
    }

    #[test]
    fn default_ports_and_order() {
        let x = render_autoconfig(&cfg(""), None);
        let p993 = x.find("<port>993</port>").unwrap();
        let p143 = x.find("<port>143</port>").unwrap();
        let p465 = x.find("<port>465</port>").unwrap();
        let p587 = x.find("<port>587</port>").unwrap();
        assert!(p993 < p143 && p143 < p465 && p465 < p587);
        assert!(x.contains("<hostname>mail.example.com</hostname>"));
        assert!(x.contains("%EMAILADDRESS%"));
        // ManageSieve listens by default and is named in a comment (no standard element).
        assert!(x.contains("<!-- ManageSieve (RFC 5804, STARTTLS): mail.example.com port 4190;"));
        let off = render_autoconfig(&cfg("[listen]\nmanagesieve=[]"), None);
        assert!(!off.contains("ManageSieve"));
    }

    #[test]
    fn configured_ports_and_disabled_services() {
        let c = cfg(
            "[listen]\nimaps=['127.0.0.1:2993','0.0.0.0:10993']\nimap=[]\nsubmissions=['[::1]:2465']\nsubmission=[]",
        );
        let p = ClientPorts::of(&c);
        assert_eq!(p.imaps, Some(10993));
        assert_eq!(p.imap, None);
        assert_eq!(p.submissions, Some(2465));
        let x = render_autoconfig(&c, None);
        assert!(!x.contains("<socketType>STARTTLS"));
    }

    #[test]
    fn email_is_escaped_and_only_for_our_domain() {
        let c = cfg("");
        let x = render_autoconfig(&c, Some("a&b@example.com"));
        assert!(x.contains("<username>a&amp;b@example.com</username>"));
        let x = render_autoconfig(&c, Some("x@other.org"));
        assert!(x.contains("<username>%EMAILADDRESS%</username>"));
    }
}
