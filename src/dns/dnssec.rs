//! DNSSEC status of an answer, for DANE: a minimal stub that asks a *local validating
//! resolver* (e.g. unbound on 127.0.0.1) and trusts its AD bit, as Postfix does with
//! `smtp_dns_support_level = dnssec`.
//!
//! Why not validate in-process with hickory's DNSSEC support: it would mean a second
//! resolver with its own trust-anchor management (the root KSK rollover) and its own cache,
//! beside the system's; a validating resolver on the machine already does this well and is
//! what operators monitor. Why only a loopback resolver: the AD bit is not signed, so it is
//! trustworthy only over a path nobody else can touch (RFC 4035 §4.9.3, RFC 6698 §4.1).
//! hickory's `TokioResolver` sets neither AD nor DO in its queries, and a resolver sets AD
//! only when asked (RFC 6840 §5.7), hence this stub: one query, AD=1 and EDNS DO=1, over UDP,
//! then TCP when truncated.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::proto::op::{Edns, Message, Query, ResponseCode};
use hickory_resolver::proto::rr::{Name, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// A validating resolver whose AD bit we trust.
#[derive(Debug, Clone)]
pub struct AdResolver {
    servers: Vec<SocketAddr>,
    timeout: Duration,
}

/// One answer with its DNSSEC status.
#[derive(Debug, Clone)]
pub struct AdAnswer {
    /// The resolver validated the answer (or the denial of existence): AD bit set.
    pub authenticated: bool,
    pub rcode: ResponseCode,
    pub answers: Vec<Record>,
}

impl AdResolver {
    /// The resolvers of `[dns]` (or /etc/resolv.conf), if all of them are on loopback; None
    /// (no DANE) otherwise, with the reason.
    pub fn from_config(cfg: &crate::config::Dns) -> Result<AdResolver, String> {
        let servers: Vec<SocketAddr> = if cfg.nameservers.is_empty() {
            let text = std::fs::read_to_string("/etc/resolv.conf")
                .map_err(|e| format!("cannot read /etc/resolv.conf: {e}"))?;
            resolv_conf_servers(&text)
        } else {
            cfg.nameservers.clone()
        };
        if servers.is_empty() {
            return Err("no DNS resolver configured".into());
        }
        if let Some(s) = servers.iter().find(|s| !s.ip().is_loopback()) {
            return Err(format!(
                "resolver {s} is not on this machine, so its AD bit cannot be trusted; run a validating resolver (e.g. unbound) on 127.0.0.1 and list it in [dns].nameservers"
            ));
        }
        Ok(AdResolver {
            servers,
            timeout: Duration::from_secs(cfg.timeout_secs.max(1)),
        })
    }

    /// Ask each resolver in turn until one answers.
    pub async fn query(&self, name: &str, rtype: RecordType) -> Result<AdAnswer, String> {
        let fqdn = format!("{}.", name.trim_end_matches('.'));
        let qname = Name::from_ascii(&fqdn).map_err(|e| format!("bad name {name}: {e}"))?;
        let mut last = String::from("no resolver");
        for &server in &self.servers {
            match tokio::time::timeout(self.timeout, ask(server, &qname, rtype)).await {
                Ok(Ok(m)) => {
                    return Ok(AdAnswer {
                        authenticated: m.metadata.authentic_data,
                        rcode: m.metadata.response_code,
                        answers: m
                            .answers
                            .into_iter()
                            .filter(|r| r.record_type() == rtype)
                            .collect(),
                    });
                }
                Ok(Err(e)) => last = format!("{server}: {e}"),
                Err(_) => last = format!("{server}: timeout"),
            }
        }
        Err(format!("{rtype} lookup for {name} failed: {last}"))
    }
}

fn resolv_conf_servers(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|rest| rest.trim().split('%').next()?.parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

async fn ask(server: SocketAddr, name: &Name, rtype: RecordType) -> Result<Message, String> {
    let mut q = Message::query();
    q.metadata.recursion_desired = true;
    // RFC 6840 §5.7: AD=1 in a query asks for the AD bit in the answer; DO=1 (RFC 3225) for
    // resolvers that only look at that.
    q.metadata.authentic_data = true;
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    edns.set_dnssec_ok(true);
    q.set_edns(edns);
    q.add_query(Query::query(name.clone(), rtype));
    let id = q.metadata.id;
    let wire = q.to_vec().map_err(|e| e.to_string())?;

    let bind: SocketAddr = if server.is_ipv4() {
        "127.0.0.1:0".parse().expect("static")
    } else {
        "[::1]:0".parse().expect("static")
    };
    let sock = UdpSocket::bind(bind).await.map_err(|e| e.to_string())?;
    sock.connect(server).await.map_err(|e| e.to_string())?;
    sock.send(&wire).await.map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 4096];
    let reply = loop {
        let n = sock.recv(&mut buf).await.map_err(|e| e.to_string())?;
        // A connected socket only hears `server`; still, match the ID and the question.
        match Message::from_vec(&buf[..n]) {
            Ok(m) if m.metadata.id == id && m.queries.first() == q.queries.first() => break m,
            _ => continue,
        }
    };
    if !reply.metadata.truncation {
        return Ok(reply);
    }
    // Truncated: the same query over TCP, with its two-byte length prefix (RFC 1035 §4.2.2).
    let mut tcp = TcpStream::connect(server)
        .await
        .map_err(|e| e.to_string())?;
    let mut framed = (wire.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&wire);
    tcp.write_all(&framed).await.map_err(|e| e.to_string())?;
    let len = tcp.read_u16().await.map_err(|e| e.to_string())? as usize;
    let mut data = vec![0u8; len];
    tcp.read_exact(&mut data).await.map_err(|e| e.to_string())?;
    let m = Message::from_vec(&data).map_err(|e| e.to_string())?;
    if m.metadata.id != id {
        return Err("TCP answer with a different ID".into());
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_and_loopback_rule() {
        let s = resolv_conf_servers(
            "# x\nnameserver 127.0.0.1\nnameserver ::1\nnameserver fe80::1%eth0\nsearch a\n",
        );
        assert_eq!(s.len(), 3);
        let mut cfg = crate::config::Dns {
            nameservers: vec!["127.0.0.53:53".parse().unwrap()],
            ..Default::default()
        };
        assert!(AdResolver::from_config(&cfg).is_ok());
        cfg.nameservers.push("192.0.2.1:53".parse().unwrap());
        let e = AdResolver::from_config(&cfg).unwrap_err();
        assert!(e.contains("192.0.2.1:53") && e.contains("AD bit"), "{e}");
    }
}
