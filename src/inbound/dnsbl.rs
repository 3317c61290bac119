//! DNS blocklists for the connecting client (RFC 5782), `[spam] dnsbl`.
//!
//! - The query name is the client address reversed under the list's zone: IPv4 as four
//!   reversed decimal octets (§2.1: 192.0.2.99 → `99.2.0.192.zone`), IPv6 as 32 reversed
//!   nibbles (§2.4). An IPv4-mapped IPv6 peer is looked up as IPv4.
//! - An A answer in 127.0.0.0/8 means "listed" (§2.1, §2.3); a TXT record at the same name
//!   may say why (§2.1). Any other answer is not a listing: resolvers that rewrite NXDOMAIN
//!   into an advertising address are common, so such answers are ignored and logged. The
//!   127.255.255.0/24 codes some lists use to say "your query was refused" (Spamhaus:
//!   public resolver, over quota) are errors too, not listings.
//! - A timeout or SERVFAIL never rejects: the client is treated as not listed and the
//!   failure is logged (a list's outage must not stop the mail).
//! - Port 25 only, and never for bounces to our SRS addresses (the session checks those
//!   before asking) or for allowlisted networks (`dnsbl_allowlist`).
//!
//! The lookup starts when the client connects (`ClientCheck::start`) and is awaited at the
//! first RCPT, so it overlaps the greeting and EHLO.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::proto::rr::RData;

use crate::config::{Spam, SpamAction};

/// An IP network from the allowlist: "192.0.2.7", "192.0.2.0/24", "2001:db8::/32".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    pub fn parse(s: &str) -> Result<Network, String> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.trim().parse().map_err(|_| {
            format!("{s:?} is not an IP address or network (e.g. \"192.0.2.0/24\")")
        })?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|&p| p <= max)
                .ok_or_else(|| format!("{s:?}: the prefix length must be 0..={max}"))?,
        };
        Ok(Network { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                prefix_eq(&n.octets(), &a.octets(), self.prefix as usize)
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                prefix_eq(&n.octets(), &a.octets(), self.prefix as usize)
            }
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: usize) -> bool {
    let whole = bits / 8;
    if a[..whole] != b[..whole] {
        return false;
    }
    let rest = bits % 8;
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    a[whole] & mask == b[whole] & mask
}

/// The name to query for `ip` in `zone` (RFC 5782 §2.1 and §2.4), with a trailing dot.
pub fn query_name(ip: IpAddr, zone: &str) -> String {
    let zone = zone.trim_end_matches('.');
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.{zone}.", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut name = String::with_capacity(64 + zone.len() + 1);
            for byte in v6.octets().iter().rev() {
                name.push(hex(byte & 0x0f));
                name.push('.');
                name.push(hex(byte >> 4));
                name.push('.');
            }
            name.push_str(zone);
            name.push('.');
            name
        }
    }
}

fn hex(n: u8) -> char {
    char::from_digit(n as u32, 16).expect("a nibble")
}

/// What the A records of a query name say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    NotListed,
    /// Listed, with the return codes (all in 127.0.0.0/8).
    Listed(Vec<Ipv4Addr>),
    /// Answers that are not listings (outside 127/8, or the list's own error codes).
    Ignored(Vec<Ipv4Addr>),
}

pub fn classify(addrs: &[Ipv4Addr]) -> Answer {
    let codes: Vec<Ipv4Addr> = addrs.iter().copied().filter(is_listing_code).collect();
    if !codes.is_empty() {
        Answer::Listed(codes)
    } else if addrs.is_empty() {
        Answer::NotListed
    } else {
        Answer::Ignored(addrs.to_vec())
    }
}

fn is_listing_code(a: &Ipv4Addr) -> bool {
    let o = a.octets();
    // 127.255.255.x: "query refused" codes, not a verdict on the client.
    o[0] == 127 && !(o[1] == 255 && o[2] == 255)
}

/// A client found on a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    pub zone: String,
    pub codes: Vec<Ipv4Addr>,
    /// The list's TXT record for the entry, cleaned for a reply line.
    pub reason: Option<String>,
}

impl Listing {
    /// The RCPT refusal text (the reply is 554 5.7.1).
    pub fn refusal_text(&self, ip: IpAddr) -> String {
        match &self.reason {
            Some(r) => format!("Client [{ip}] blocked using {}: {r}", self.zone),
            None => format!("Client [{ip}] blocked using {}", self.zone),
        }
    }

    /// The value of the X-Postern-Spam header for a listed client whose mail goes to Junk.
    pub fn header_value(&self) -> String {
        let codes: Vec<String> = self.codes.iter().map(|c| c.to_string()).collect();
        let mut v = format!("dnsbl={} ({})", self.zone, codes.join(","));
        if let Some(r) = &self.reason {
            v.push_str("; ");
            v.push_str(r);
        }
        v
    }
}

/// A TXT reason made safe for an SMTP reply and a header: printable ASCII, bounded.
fn clean_reason(raw: &[u8]) -> Option<String> {
    let s: String = raw
        .iter()
        .map(|&b| {
            if (0x20..0x7f).contains(&b) {
                char::from(b)
            } else {
                ' '
            }
        })
        .take(200)
        .collect();
    let s = s.trim().to_string();
    (!s.is_empty()).then_some(s)
}

/// Look `ip` up in every zone (concurrently, each bounded by `timeout`); the first zone in
/// config order that lists it. A zone that times out counts as not listing it.
pub async fn lookup(
    resolver: &TokioResolver,
    zones: &[String],
    ip: IpAddr,
    timeout: Duration,
) -> Option<Listing> {
    let mut set = tokio::task::JoinSet::new();
    for (i, zone) in zones.iter().enumerate() {
        let resolver = resolver.clone();
        let zone = zone.trim_end_matches('.').to_ascii_lowercase();
        set.spawn(async move {
            let r = tokio::time::timeout(timeout, lookup_zone(&resolver, &zone, ip)).await;
            let r = r.unwrap_or_else(|_| {
                tracing::warn!(%ip, zone, "dnsbl lookup timed out, treated as not listed");
                None
            });
            (i, r)
        });
    }
    let mut found: Vec<(usize, Listing)> = Vec::new();
    while let Some(r) = set.join_next().await {
        if let Ok((i, Some(l))) = r {
            found.push((i, l));
        }
    }
    found.sort_by_key(|(i, _)| *i);
    found.into_iter().next().map(|(_, l)| l)
}

async fn lookup_zone(resolver: &TokioResolver, zone: &str, ip: IpAddr) -> Option<Listing> {
    let name = query_name(ip, zone);
    let addrs: Vec<Ipv4Addr> = match resolver.ipv4_lookup(name.as_str()).await {
        Ok(l) => l
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(a.0),
                _ => None,
            })
            .collect(),
        Err(e) => {
            if super::dns_probe::is_temporary(&e) {
                // Never a rejection: the list is down or slow, the client is not listed.
                tracing::warn!(%ip, zone, "dnsbl lookup failed, treated as not listed: {e}");
            }
            return None;
        }
    };
    match classify(&addrs) {
        Answer::NotListed => None,
        Answer::Ignored(a) => {
            tracing::warn!(
                %ip,
                zone,
                "dnsbl answer ignored (not in 127.0.0.0/8, or a query-refused code; is the resolver rewriting NXDOMAIN?): {a:?}"
            );
            None
        }
        Answer::Listed(codes) => {
            let reason = match resolver.txt_lookup(name.as_str()).await {
                Ok(l) => l.answers().iter().find_map(|r| match &r.data {
                    RData::TXT(t) => {
                        let joined: Vec<u8> =
                            t.txt_data.iter().flat_map(|s| s.iter().copied()).collect();
                        clean_reason(&joined)
                    }
                    _ => None,
                }),
                Err(_) => None,
            };
            Some(Listing {
                zone: zone.to_string(),
                codes,
                reason,
            })
        }
    }
}

/// The blocklist state of one port-25 connection.
pub enum ClientCheck {
    /// Not checked: no lists, allowlisted, or not port 25.
    Off,
    Pending {
        ip: IpAddr,
        action: SpamAction,
        task: tokio::task::JoinHandle<Option<Listing>>,
    },
    Done {
        ip: IpAddr,
        action: SpamAction,
        listing: Option<Listing>,
    },
}

impl ClientCheck {
    /// Start the lookups for a client that just connected on port 25. `tasks` tracks the
    /// lookup so shutdown waits for it (each zone is bounded by `timeout`).
    pub fn start(
        cfg: &Spam,
        resolver: &TokioResolver,
        tasks: &tokio_util::task::TaskTracker,
        ip: IpAddr,
        timeout: Duration,
    ) -> ClientCheck {
        if cfg.dnsbl.is_empty() {
            return ClientCheck::Off;
        }
        if let Some(n) = cfg
            .dnsbl_allowlist
            .iter()
            .filter_map(|s| Network::parse(s).ok())
            .find(|n| n.contains(ip))
        {
            tracing::debug!(%ip, "dnsbl: client allowlisted by {n:?}");
            return ClientCheck::Off;
        }
        let resolver = resolver.clone();
        let zones = cfg.dnsbl.clone();
        let task = tasks.spawn(async move { lookup(&resolver, &zones, ip, timeout).await });
        ClientCheck::Pending {
            ip,
            action: cfg.dnsbl_action,
            task,
        }
    }

    /// Wait for the lookups (once); logs a listing.
    pub async fn wait(&mut self) {
        let ClientCheck::Pending { ip, action, task } = self else {
            return;
        };
        let (ip, action) = (*ip, *action);
        let listing = task.await.unwrap_or(None);
        if let Some(l) = &listing {
            tracing::info!(
                %ip,
                zone = %l.zone,
                codes = ?l.codes,
                reason = l.reason.as_deref().unwrap_or("-"),
                action = ?action,
                "dnsbl: client listed"
            );
        }
        *self = ClientCheck::Done {
            ip,
            action,
            listing,
        };
    }

    /// The RCPT refusal for a listed client when the action is "reject".
    pub fn refusal(&self) -> Option<String> {
        match self {
            ClientCheck::Done {
                ip,
                action: SpamAction::Reject,
                listing: Some(l),
            } => Some(l.refusal_text(*ip)),
            _ => None,
        }
    }

    /// The listing when the action is "junk" (the message goes to Junk with a header).
    pub fn junk_listing(&self) -> Option<&Listing> {
        match self {
            ClientCheck::Done {
                action: SpamAction::Junk,
                listing: Some(l),
                ..
            } => Some(l),
            _ => None,
        }
    }

    pub fn is_pending(&self) -> bool {
        matches!(self, ClientCheck::Pending { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_query_name_reverses_octets() {
        // RFC 5782 §2.1 example.
        assert_eq!(
            query_name("192.0.2.99".parse().unwrap(), "bad.example.com"),
            "99.2.0.192.bad.example.com."
        );
        assert_eq!(
            query_name("::ffff:127.0.0.2".parse().unwrap(), "bl.test."),
            "2.0.0.127.bl.test."
        );
    }

    #[test]
    fn ipv6_query_name_reverses_nibbles() {
        // RFC 5782 §2.4 example.
        assert_eq!(
            query_name(
                "2001:db8:1:2:3:4:567:89ab".parse().unwrap(),
                "ugly.example.com"
            ),
            "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ugly.example.com."
        );
    }

    #[test]
    fn only_loopback_codes_list() {
        let a = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert_eq!(classify(&[]), Answer::NotListed);
        assert_eq!(
            classify(&[a("127.0.0.2")]),
            Answer::Listed(vec![a("127.0.0.2")])
        );
        // An NXDOMAIN-rewriting resolver's advertising address.
        assert_eq!(
            classify(&[a("10.0.0.1")]),
            Answer::Ignored(vec![a("10.0.0.1")])
        );
        // Spamhaus "public resolver" error code.
        assert!(matches!(
            classify(&[a("127.255.255.254")]),
            Answer::Ignored(_)
        ));
        assert_eq!(
            classify(&[a("10.0.0.1"), a("127.0.0.4")]),
            Answer::Listed(vec![a("127.0.0.4")])
        );
    }

    #[test]
    fn networks() {
        let n = Network::parse("192.0.2.0/24").unwrap();
        assert!(n.contains("192.0.2.200".parse().unwrap()));
        assert!(n.contains("::ffff:192.0.2.1".parse().unwrap()));
        assert!(!n.contains("192.0.3.1".parse().unwrap()));
        assert!(!n.contains("2001:db8::1".parse().unwrap()));
        let n = Network::parse("2001:db8::/33").unwrap();
        assert!(n.contains("2001:db8:7fff::1".parse().unwrap()));
        assert!(!n.contains("2001:db8:8000::1".parse().unwrap()));
        assert!(
            Network::parse("127.0.0.2")
                .unwrap()
                .contains("127.0.0.2".parse().unwrap())
        );
        assert!(
            Network::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert!(Network::parse("10.0.0.0/33").is_err());
        assert!(Network::parse("nonsense").is_err());
    }

    #[test]
    fn reason_is_cleaned() {
        assert_eq!(
            clean_reason(b"  listed\r\nsee http://x/?1.2.3.4 \x00"),
            Some("listed  see http://x/?1.2.3.4".into())
        );
        assert_eq!(clean_reason(b"   "), None);
        assert_eq!(clean_reason(&[b'a'; 500]).unwrap().len(), 200);
    }
}
