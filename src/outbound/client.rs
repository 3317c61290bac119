//! The SMTP client for one delivery attempt to one address of one MX host (RFC 5321):
//! greeting, EHLO (HELO fallback), opportunistic STARTTLS (RFC 3207), MAIL with SIZE
//! (RFC 1870), BODY=8BITMIME (RFC 6152) and SMTPUTF8 (RFC 6531), RCPT per recipient,
//! DATA, with PIPELINING (RFC 2920) when offered. Replies are parsed by the sans-IO
//! `ReplyParser`; this file only moves bytes and applies the timeouts of RFC 5321 §4.5.3.2.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::reply::{Reply, ReplyError, ReplyParser};
use super::session_cache::{Key, SessionCache};

// The DATA payload rules live in `payload`; re-exported here, where callers have found them.
pub use super::payload::{data_payload, needs_smtputf8};

/// RFC 5321 §4.5.3.2 timeouts.
pub mod timeouts {
    use std::time::Duration;
    /// Not in the RFC: how long to wait for the TCP handshake.
    pub const CONNECT: Duration = Duration::from_secs(30);
    /// §4.5.3.2.1 initial 220 message: 5 minutes.
    pub const GREETING: Duration = Duration::from_secs(300);
    /// §4.5.3.2.2 MAIL, §4.5.3.2.3 RCPT: 5 minutes (also used for EHLO/STARTTLS/QUIT).
    pub const COMMAND: Duration = Duration::from_secs(300);
    /// §4.5.3.2.4 DATA initiation: 2 minutes.
    pub const DATA_INIT: Duration = Duration::from_secs(120);
    /// §4.5.3.2.5 data block: 3 minutes per write.
    pub const DATA_BLOCK: Duration = Duration::from_secs(180);
    /// §4.5.3.2.6 DATA termination: 10 minutes.
    pub const DATA_END: Duration = Duration::from_secs(600);
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connection to {0} failed: {1}")]
    Connect(SocketAddr, std::io::Error),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("timeout waiting for {0}")]
    Timeout(&'static str),
    #[error("connection closed by the server")]
    Closed,
    #[error("bad reply: {0}")]
    Protocol(#[from] ReplyError),
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    /// A reused session did not answer its RSET with 250: it is dropped, and the message
    /// goes on another session (nothing was accepted on this one).
    #[error("the reused session is gone")]
    Stale,
}

enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    Gone,
}

/// What the server said to each recipient in this attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RcptResult {
    Accepted,
    Transient(Reply),
    Permanent(Reply),
}

/// How an attempt on one address ended.
#[derive(Debug)]
pub enum Attempt {
    /// A transaction reached RCPT: per-recipient results (same order as the recipients).
    Done(Vec<RcptResult>),
    /// The whole message failed here (5xx to MAIL, too big, SMTPUTF8 refused): permanent.
    Rejected(Reply),
    /// Nothing was decided here (connect error, 4xx greeting/MAIL): try the next address,
    /// and retry later if none is left.
    TryNext(String),
    /// A requirement of ours was not met here (TLS, a verified certificate, AUTH): nothing
    /// was sent; temporary, with this enhanced status (RFC 3463 X.7.x) for the queue.
    Deferred { status: String, reason: String },
}

/// What the connection learned, for logs and DSNs.
#[derive(Debug, Default, Clone)]
pub struct Info {
    pub tls: bool,
    pub tls_verified: bool,
    /// Why the certificate did not verify, when it did not.
    pub tls_error: Option<String>,
    /// The SASL mechanism we logged in with, if any.
    pub auth: Option<&'static str>,
    /// The certificate chain the server presented.
    pub peer_certs: Vec<rustls::pki_types::CertificateDer<'static>>,
    /// The TLSA record that authenticated the server (DANE), if one did.
    pub dane: Option<String>,
    /// This transaction ran on a session kept from an earlier one (`session_cache`).
    pub reused: bool,
}

/// Requirements of a TLS policy for this host.
#[derive(Debug, Clone, Copy, Default)]
pub struct TlsPolicy {
    /// Refuse to deliver without TLS whose certificate verifies for the host name.
    pub require_valid: bool,
    /// TLS from the first byte (port 465, RFC 8314 §3.3) instead of STARTTLS.
    pub implicit: bool,
}

pub struct Client {
    conn: Conn,
    parser: ReplyParser,
    pub info: Info,
}

impl Client {
    async fn read_raw(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match &mut self.conn {
            Conn::Plain(s) => s.read(buf).await,
            Conn::Tls(s) => s.read(buf).await,
            Conn::Gone => Ok(0),
        }
    }

    async fn write_raw(&mut self, data: &[u8]) -> std::io::Result<()> {
        match &mut self.conn {
            Conn::Plain(s) => {
                s.write_all(data).await?;
                s.flush().await
            }
            Conn::Tls(s) => {
                s.write_all(data).await?;
                s.flush().await
            }
            Conn::Gone => Err(std::io::Error::other("connection gone")),
        }
    }

    pub async fn read_reply(
        &mut self,
        limit: Duration,
        what: &'static str,
    ) -> Result<Reply, ClientError> {
        let fut = async {
            let mut buf = [0u8; 4096];
            loop {
                if let Some(r) = self.parser.next_reply() {
                    return Ok(r?);
                }
                let n = self.read_raw(&mut buf).await?;
                if n == 0 {
                    return Err(ClientError::Closed);
                }
                self.parser.feed(&buf[..n]);
            }
        };
        tokio::time::timeout(limit, fut)
            .await
            .map_err(|_| ClientError::Timeout(what))?
    }

    pub async fn send(
        &mut self,
        data: &[u8],
        limit: Duration,
        what: &'static str,
    ) -> Result<(), ClientError> {
        tokio::time::timeout(limit, self.write_raw(data))
            .await
            .map_err(|_| ClientError::Timeout(what))?
            .map_err(ClientError::Io)
    }

    pub async fn command(
        &mut self,
        line: &str,
        limit: Duration,
        what: &'static str,
    ) -> Result<Reply, ClientError> {
        self.send(format!("{line}\r\n").as_bytes(), limit, what)
            .await?;
        self.read_reply(limit, what).await
    }

    async fn starttls(
        &mut self,
        server_name: &str,
        roots: Arc<rustls::RootCertStore>,
    ) -> Result<(), ClientError> {
        let Conn::Plain(tcp) = std::mem::replace(&mut self.conn, Conn::Gone) else {
            return Err(ClientError::Tls("STARTTLS on a TLS connection".into()));
        };
        if self.parser.buffered() > 0 {
            // RFC 3207 §5 / CVE-2011-0411: nothing may be pipelined across the TLS start.
            return Err(ClientError::Tls("data after the STARTTLS reply".into()));
        }
        let (cfg, verifier) = super::tls::client_config(roots);
        let name = ServerName(server_name)?;
        let stream = tokio::time::timeout(
            timeouts::COMMAND,
            TlsConnector::from(cfg).connect(name, tcp),
        )
        .await
        .map_err(|_| ClientError::Timeout("TLS handshake"))?
        .map_err(|e| ClientError::Tls(e.to_string()))?;
        self.info.peer_certs = stream
            .get_ref()
            .1
            .peer_certificates()
            .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
            .unwrap_or_default();
        self.conn = Conn::Tls(Box::new(stream));
        self.info.tls = true;
        match verifier.verdict() {
            Ok(()) => self.info.tls_verified = true,
            Err(e) => {
                tracing::info!(
                    host = server_name,
                    "TLS certificate of {server_name} does not verify ({e}); continuing with unauthenticated encryption (opportunistic TLS, RFC 7435)"
                );
                self.info.tls_error = Some(e);
            }
        }
        Ok(())
    }
}

#[allow(non_snake_case)]
fn ServerName(name: &str) -> Result<rustls::pki_types::ServerName<'static>, ClientError> {
    rustls::pki_types::ServerName::try_from(name.trim_end_matches('.').to_string())
        .map_err(|e| ClientError::Tls(format!("bad server name {name}: {e}")))
}

pub struct Transaction<'a> {
    pub helo_name: &'a str,
    /// Trust anchors for verifying the MX certificate.
    pub roots: Arc<rustls::RootCertStore>,
    pub mail_from: &'a str,
    pub rcpts: &'a [String],
    pub message: &'a [u8],
    /// Log in with these after TLS (a relay); None for MX delivery.
    pub auth: Option<&'a super::relay::Credentials>,
    /// Idle sessions to reuse and to return this one to (None: one session per attempt).
    pub sessions: Option<&'a Arc<SessionCache>>,
}

/// Connect to `ip:port`; with `policy.implicit` the TLS handshake (for `host`) comes first.
pub async fn connect(
    host: &str,
    ip: IpAddr,
    port: u16,
    roots: &Arc<rustls::RootCertStore>,
    policy: TlsPolicy,
) -> Result<Client, String> {
    let addr = SocketAddr::new(ip, port);
    let tcp = match tokio::time::timeout(timeouts::CONNECT, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(ClientError::Connect(addr, e).to_string()),
        Err(_) => return Err(format!("connection to {addr} timed out")),
    };
    let mut c = Client {
        conn: Conn::Plain(tcp),
        parser: ReplyParser::new(),
        info: Info::default(),
    };
    if policy.implicit {
        c.starttls(host, roots.clone())
            .await
            .map_err(|e| format!("{host} [{ip}]:{port}: {e}"))?;
    }
    Ok(c)
}

/// QUIT politely; its outcome does not matter (RFC 5321 §4.1.1.10).
pub async fn quit(c: &mut Client) {
    if !matches!(c.conn, Conn::Gone) {
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            let _ = c.send(b"QUIT\r\n", Duration::from_secs(5), "QUIT").await;
            let _ = c.read_reply(Duration::from_secs(5), "QUIT").await;
        })
        .await;
    }
}

/// One attempt on one address. `host` is the MX name (TLS server name); `dane`: what its
/// TLSA records require, if DANE applies to it. With `tx.sessions`, an idle session to the
/// same destination whose TLS meets `policy`/`dane` is reused (after RSET), and a session
/// that ends its transaction cleanly is kept for the next message.
pub async fn attempt(
    host: &str,
    ip: IpAddr,
    port: u16,
    tx: &Transaction<'_>,
    policy: TlsPolicy,
    dane: Option<&super::dane::Requirement>,
) -> (Attempt, Info) {
    let key = Key {
        host: host.to_string(),
        ip,
        port,
        implicit_tls: policy.implicit,
        auth: tx.auth.map(|c| c.user.clone()),
    };
    if let Some(cache) = tx.sessions {
        while let Some((mut c, caps, opened)) = cache.take(&key, policy, dane) {
            // RFC 5321 §4.1.1.5: RSET starts the next transaction from a clean state, and
            // shows the idle session is still alive; a dead one is dropped, nothing was
            // accepted on it. With PIPELINING the RSET leads the MAIL/RCPT/DATA batch
            // (RFC 2920 §3.1 lets RSET go anywhere in a group), saving a round trip per
            // message; without, it is a probe of its own.
            let pipelined = has(&caps, "PIPELINING");
            if !pipelined {
                match c.command("RSET", RSET_PROBE, "RSET reply").await {
                    Ok(r) if r.code == 250 => {}
                    _ => {
                        tracing::debug!(host, %ip, "cached session is gone; trying another");
                        continue;
                    }
                }
            }
            c.info.reused = true;
            let keep = Some((cache, key.clone(), opened));
            match transact(c, host, ip, tx, caps, keep, pipelined).await {
                Some(done) => {
                    tracing::debug!(host, %ip, "reused an open session");
                    return done;
                }
                None => tracing::debug!(host, %ip, "cached session is gone; trying another"),
            }
        }
    }
    let mut c = match connect(host, ip, port, &tx.roots, policy).await {
        Ok(c) => c,
        Err(e) => return (Attempt::TryNext(e), Info::default()),
    };
    let opened = std::time::Instant::now();
    let session = open_session(&mut c, host, tx.helo_name, &tx.roots, policy, tx.auth, dane);
    let stop = match session.await {
        Ok(Ok(caps)) => {
            c.info.reused = false;
            let keep = tx.sessions.map(|s| (s, key, opened));
            // A fresh session has no RSET to fail, so there is always an outcome.
            if let Some(done) = transact(c, host, ip, tx, caps, keep, false).await {
                return done;
            }
            return (
                Attempt::TryNext(format!("{host} [{ip}]: session lost")),
                Info::default(),
            );
        }
        Ok(Err(stop)) => stop,
        Err(e) => Attempt::TryNext(format!("{host} [{ip}]: {e}")),
    };
    quit(&mut c).await;
    (stop, c.info.clone())
}

/// How long an idle session may take to answer the RSET that reuses it.
pub(super) const RSET_PROBE: Duration = Duration::from_secs(10);

/// One transaction on an open session; then keep the session (if `keep` and it ended
/// cleanly) or QUIT. A failure only concerns this message's recipients. `rset`: pipeline
/// an RSET in front (a reused session); None when that RSET failed (the session is
/// dropped without a word, and nothing was accepted on it).
async fn transact(
    mut c: Client,
    host: &str,
    ip: IpAddr,
    tx: &Transaction<'_>,
    caps: Caps,
    keep: Option<(&Arc<SessionCache>, Key, std::time::Instant)>,
    rset: bool,
) -> Option<(Attempt, Info)> {
    let result = super::mail_tx::run(&mut c, host, tx, &caps, rset).await;
    let info = c.info.clone();
    let out = match result {
        Ok(a) => a,
        Err(ClientError::Stale) => return None,
        Err(e) => {
            quit(&mut c).await;
            return Some((Attempt::TryNext(format!("{host} [{ip}]: {e}")), info));
        }
    };
    // Reusable: the transaction ran to its end and the server did not announce closing
    // (421, RFC 5321 §3.8).
    let clean = match &out {
        Attempt::Done(rs) => !rs.iter().any(
            |r| matches!(r, RcptResult::Transient(x) | RcptResult::Permanent(x) if x.code == 421),
        ),
        _ => false,
    };
    match keep {
        Some((cache, key, opened)) if clean => cache.put(key, c, caps, opened),
        _ => quit(&mut c).await,
    }
    Some((out, info))
}

async fn ehlo(c: &mut Client, name: &str) -> Result<Result<Reply, Reply>, ClientError> {
    let r = c
        .command(&format!("EHLO {name}"), timeouts::COMMAND, "EHLO reply")
        .await?;
    if r.is_positive() {
        return Ok(Ok(r));
    }
    // RFC 5321 §3.2: fall back to HELO when EHLO is not understood.
    let h = c
        .command(&format!("HELO {name}"), timeouts::COMMAND, "HELO reply")
        .await?;
    if h.is_positive() {
        Ok(Ok(Reply {
            code: h.code,
            enhanced: None,
            lines: vec![h.lines.first().cloned().unwrap_or_default()],
        }))
    } else {
        Ok(Err(h))
    }
}

/// EHLO keywords with their parameters.
pub type Caps = Vec<(String, String)>;

pub(super) fn has(caps: &[(String, String)], k: &str) -> bool {
    caps.iter().any(|(n, _)| n == k)
}

/// Everything before MAIL: greeting, EHLO, STARTTLS and EHLO again, the TLS policy, and AUTH
/// when `auth` is given (only ever after the policy check, so never in the clear or to an
/// unverified peer). Ok(Ok(caps)): ready for a transaction; Ok(Err(a)): stop with `a`.
pub async fn open_session(
    c: &mut Client,
    host: &str,
    helo_name: &str,
    roots: &Arc<rustls::RootCertStore>,
    policy: TlsPolicy,
    auth: Option<&super::relay::Credentials>,
    dane: Option<&super::dane::Requirement>,
) -> Result<Result<Caps, Attempt>, ClientError> {
    let greeting = c.read_reply(timeouts::GREETING, "greeting").await?;
    if !greeting.is_positive() {
        return Ok(Err(Attempt::TryNext(format!(
            "{host} greeted with {greeting}"
        ))));
    }
    let mut caps = match ehlo(c, helo_name).await? {
        Ok(r) => r.ehlo_keywords(),
        Err(r) => {
            return Ok(Err(Attempt::TryNext(format!(
                "{host} refused EHLO/HELO: {r}"
            ))));
        }
    };
    let mut starttls_refused = None;
    if has(&caps, "STARTTLS") && !c.info.tls {
        let r = c
            .command("STARTTLS", timeouts::COMMAND, "STARTTLS reply")
            .await?;
        if r.code == 220 {
            c.starttls(host, roots.clone()).await?;
            caps = match ehlo(c, helo_name).await? {
                Ok(r) => r.ehlo_keywords(),
                Err(r) => {
                    return Ok(Err(Attempt::TryNext(format!(
                        "{host} refused EHLO after STARTTLS: {r}"
                    ))));
                }
            };
        } else {
            tracing::info!(
                host,
                "STARTTLS refused ({}); continuing without TLS",
                crate::logsafe::UntrustedText(&r.to_string())
            );
            starttls_refused = Some(r);
        }
    }
    if let Some(req) = dane {
        // RFC 7672 §2.2: with TLSA records TLS is mandatory; with usable ones the certificate
        // must match one of them (and DANE replaces the WebPKI check, RFC 7672 §3.1).
        if !c.info.tls {
            let why = match &starttls_refused {
                Some(r) => format!("the server refused STARTTLS: {r}"),
                None => "the server offers no STARTTLS".into(),
            };
            return Ok(Err(Attempt::Deferred {
                status: "4.7.4".into(),
                reason: format!("{host}: DANE (TLSA records published) requires TLS, and {why}"),
            }));
        }
        if let super::dane::Requirement::Verify(records) = req {
            match super::dane::verify(records, &c.info.peer_certs, host) {
                Ok(which) => c.info.dane = Some(which),
                Err(e) => {
                    return Ok(Err(Attempt::Deferred {
                        status: "4.7.5".into(),
                        reason: format!("{host}: DANE: {e}"),
                    }));
                }
            }
        }
    } else if policy.require_valid && !(c.info.tls && c.info.tls_verified) {
        // RFC 3463: X.7.5 cryptographic failure, X.7.4 security features not supported.
        let (status, why) = match &starttls_refused {
            _ if c.info.tls => (
                "4.7.5",
                format!(
                    "the certificate did not verify ({})",
                    c.info.tls_error.as_deref().unwrap_or("unknown reason")
                ),
            ),
            Some(r) => ("4.7.4", format!("the server refused STARTTLS: {r}")),
            None => ("4.7.4", "the server offers no STARTTLS".to_string()),
        };
        return Ok(Err(Attempt::Deferred {
            status: status.into(),
            reason: format!("{host}: policy requires TLS with a valid certificate, and {why}"),
        }));
    }
    if let Some(creds) = auth
        && let Some(stop) = super::relay::authenticate(c, host, creds, &caps).await?
    {
        return Ok(Err(stop));
    }
    Ok(Ok(caps))
}
