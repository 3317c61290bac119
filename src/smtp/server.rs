//! The tokio side of SMTP: accept (with connection limits), implicit TLS (465), the greeting
//! delay, reading lines with the RFC 5321 §4.5.3.2 timeouts, running the session's actions
//! (STARTTLS, DATA/BDAT, AUTH, delivery) and writing replies. Replies to pipelined commands
//! (RFC 2920) are flushed once no complete command is left in the input buffer.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;

use super::Mode;
use super::data::{DataDecoder, DataError};
use super::line::{Line, LineReader};
use super::reply::{Reply, std_replies};
use super::session::{Action, Directory, Event, Session, SessionConfig, finish_body};
use super::transaction::{self, Context};
use crate::accounts::{Accounts, Recipient};
use crate::inbound::EarlyChecks;
use crate::inbound::dnsbl::ClientCheck;
use crate::logsafe::{Untrusted, UntrustedText};
use crate::metrics::Metrics;
use crate::net::Refusal;
use crate::services::Services;
use crate::spool::SpooledMessage;

/// Protocol errors tolerated per connection before it is closed (an "error storm").
const MAX_ERRORS: usize = 10;

pub fn spawn(svc: Arc<Services>, listener: TcpListener, mode: Mode) {
    crate::listener::spawn(
        &svc,
        listener,
        move |svc, stream, peer, reason| refuse(svc, stream, peer, reason, mode),
        move |svc, stream, peer| handle(svc, stream, peer, mode),
    );
}

/// The account service (and the client's blocklist state) as the session's policy oracle.
struct AccountsDir<'a>(
    &'a Accounts,
    Option<&'a crate::delivery::srs::Srs>,
    &'a ClientCheck,
    /// The store and `[limits] mailbox_quota` (0 = none), for RCPT's mailbox-full check.
    (&'a crate::store::Store, u64),
);

impl Directory for AccountsDir<'_> {
    fn resolve(&self, address: &str) -> Result<Recipient, String> {
        let r = self.0.resolve(address).map_err(|e| e.to_string())?;
        if r == Recipient::Unknown
            && let Ok(snap) = self.0.snapshot()
            && let Some(alias) = crate::accounts::dangling_alias_in(&snap, self.0.domain(), address)
        {
            tracing::warn!(
                "recipient {address:?} refused: alias {alias} reaches nobody (its targets do not exist); fix it with `postern alias`"
            );
        }
        Ok(r)
    }
    fn may_send_as(&self, user: &str, address: &str) -> bool {
        self.0.may_send_as(user, address)
    }
    fn srs_reverse(&self, address: &str) -> Option<Result<String, String>> {
        use crate::delivery::srs::SrsError;
        let srs = self.1?;
        match srs.reverse(address, crate::clock::unix_now()) {
            Err(SrsError::NotSrs) => None,
            r => Some(r.map_err(|e| e.to_string())),
        }
    }
    fn client_refusal(&self) -> Option<String> {
        self.2.refusal()
    }
    fn mailbox_full(&self, user: &str) -> bool {
        let (store, limit) = self.3;
        store.is_full(user, limit)
    }
}

enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// Only while a STARTTLS handshake owns the socket.
    Gone,
}

impl Io {
    async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Io::Plain(s) => s.read(buf).await,
            Io::Tls(s) => s.read(buf).await,
            Io::Gone => Ok(0),
        }
    }

    /// Read into `buf`'s spare capacity (no zeroing of the buffer first).
    async fn read_buf(&mut self, buf: &mut Vec<u8>) -> std::io::Result<usize> {
        match self {
            Io::Plain(s) => s.read_buf(buf).await,
            Io::Tls(s) => s.read_buf(buf).await,
            Io::Gone => Ok(0),
        }
    }

    async fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self {
            Io::Plain(s) => {
                s.write_all(data).await?;
                s.flush().await
            }
            Io::Tls(s) => {
                s.write_all(data).await?;
                s.flush().await
            }
            Io::Gone => Err(std::io::Error::other("connection closed")),
        }
    }
}

/// The command word of a line, for logs (never the AUTH payload or an address).
fn command_verb(line: &[u8]) -> String {
    line.iter()
        .take_while(|b| b.is_ascii_alphanumeric())
        .take(12)
        .map(|&b| char::from(b.to_ascii_uppercase()))
        .collect()
}

fn tls_description(s: &TlsStream<TcpStream>) -> String {
    let c = s.get_ref().1;
    let version = c
        .protocol_version()
        .and_then(|v| v.as_str())
        .unwrap_or("TLS")
        // rustls names versions "TLSv1_3"; Received headers say "TLSv1.3".
        .replace("TLSv1_", "TLSv1.");
    let cipher = c
        .negotiated_cipher_suite()
        .and_then(|s| s.suite().as_str())
        .unwrap_or("unknown");
    format!("{version} with cipher {cipher}")
}

/// Over the connection limits: 421 (RFC 5321 §3.8) naming which limit, then close.
async fn refuse(
    svc: Arc<Services>,
    stream: TcpStream,
    peer: SocketAddr,
    reason: Refusal,
    mode: Mode,
) {
    let text = match reason {
        Refusal::TooManyTotal => "Too many connections, try again later",
        Refusal::TooManyFromIp => "Too many connections from your address, try again later",
    };
    tracing::warn!(
        "smtp connection refused: service={} peer={peer} reason={reason:?}",
        mode.service()
    );
    // On 465 the client expects a TLS handshake: a clear-text 421 would be noise, and a
    // handshake for a refused connection is CPU spent for an abuser. Just close.
    let reply = Reply::new(421, "4.7.0", format!("{} {text}", svc.config.hostname));
    crate::listener::say_unless_tls(stream, mode == Mode::Submissions, &reply.to_bytes()).await;
}

async fn handle(svc: Arc<Services>, stream: TcpStream, peer: SocketAddr, mode: Mode) {
    Metrics::inc(&svc.metrics.smtp_connections);
    tracing::info!("smtp connect: service={} peer={peer}", mode.service());
    let mut conn = Conn {
        svc: svc.clone(),
        mode,
        peer: peer.ip(),
        io: Io::Plain(stream),
        lines: LineReader::new(),
        out: Vec::new(),
        tls_info: None,
        session: Session::new(session_config(&svc, mode)),
        early: if mode == Mode::Mx && svc.config.inbound.verify {
            EarlyChecks::start(&svc.authenticator, &svc.config.hostname, peer.ip())
        } else {
            EarlyChecks::off(peer.ip())
        },
        dnsbl: if mode == Mode::Mx {
            ClientCheck::start(
                &svc.config.spam,
                &svc.dns,
                &svc.tasks,
                peer.ip(),
                Duration::from_secs(2 * svc.config.dns.timeout_secs.max(1) + 1),
            )
        } else {
            ClientCheck::Off
        },
    };
    let end = conn.run().await;
    tracing::info!(
        "smtp disconnect: service={} peer={peer} helo={} user={} tls={} end={end}",
        mode.service(),
        Untrusted(conn.session.helo()),
        conn.session.auth_user().unwrap_or("-"),
        conn.tls_info.as_deref().unwrap_or("no"),
    );
}

fn session_config(svc: &Services, mode: Mode) -> SessionConfig {
    let l = &svc.config.limits;
    SessionConfig {
        hostname: svc.config.hostname.clone(),
        domain: svc.config.domain.clone(),
        mode,
        max_message_size: l.max_message_size,
        max_recipients: l.max_recipients,
        max_messages: l.max_messages_per_connection,
        max_invalid_recipients: l.max_invalid_recipients,
        max_errors: MAX_ERRORS,
        spool: svc.spool.clone(),
    }
}

/// Deadlines while a message body arrives. RFC 5321 §4.5.3.2.6 allows `timeout` between
/// blocks; on top of that the body as a whole must keep an average of MIN_RATE bytes a second
/// after the first `timeout`, so a client trickling a byte every few seconds (slowloris) is cut
/// off while a slow but honest upload is not.
struct Pace {
    timeout: Duration,
    start: tokio::time::Instant,
    bytes: u64,
}

impl Pace {
    const MIN_RATE: u64 = 1024;

    fn new(timeout_secs: u64) -> Pace {
        Pace {
            timeout: Duration::from_secs(timeout_secs),
            start: tokio::time::Instant::now(),
            bytes: 0,
        }
    }

    fn received(&mut self, n: usize) {
        self.bytes += n as u64;
    }

    fn deadline(&self) -> tokio::time::Instant {
        let per_block = tokio::time::Instant::now() + self.timeout;
        let overall = self.start + self.timeout + Duration::from_secs(self.bytes / Self::MIN_RATE);
        per_block.min(overall)
    }
}

struct Conn {
    svc: Arc<Services>,
    mode: Mode,
    peer: IpAddr,
    io: Io,
    lines: LineReader,
    out: Vec<u8>,
    tls_info: Option<String>,
    session: Session,
    /// DNS blocklist lookups for the client (port 25), awaited at the first RCPT.
    dnsbl: ClientCheck,
    /// iprev and SPF (port 25), run while the transaction arrives, awaited after DATA.
    early: EarlyChecks,
}

/// How a connection ended (for the disconnect log line).
type End = &'static str;

impl Conn {
    async fn flush(&mut self) -> Result<(), End> {
        if self.out.is_empty() {
            return Ok(());
        }
        let out = std::mem::take(&mut self.out);
        // A client that stops reading must not hold the session forever.
        let timeout = self.svc.config.smtp_command_timeout();
        match tokio::time::timeout(timeout, self.io.write_all(&out)).await {
            Ok(r) => r.map_err(|_| "write error"),
            Err(_) => Err("write timeout"),
        }
    }

    async fn say(&mut self, reply: &Reply) -> Result<(), End> {
        self.out.extend_from_slice(&reply.to_bytes());
        self.flush().await
    }

    /// Read more input, giving up at `deadline`; Ok(false) at EOF.
    async fn fill_until(&mut self, deadline: tokio::time::Instant) -> Result<bool, End> {
        let mut buf = Vec::with_capacity(16 * 1024);
        match tokio::time::timeout_at(deadline, self.io.read_buf(&mut buf)).await {
            Err(_) => {
                tracing::info!(
                    "smtp timeout: service={} peer={}",
                    self.mode.service(),
                    self.peer
                );
                let _ = self.say(&std_replies::timeout()).await;
                Err("timeout")
            }
            Ok(Err(_)) => Err("read error"),
            Ok(Ok(0)) => Ok(false),
            Ok(Ok(n)) => {
                self.lines.push(&buf[..n]);
                Ok(true)
            }
        }
    }

    async fn run(&mut self) -> End {
        match self.run_inner().await {
            Ok(()) => "quit",
            Err(e) => e,
        }
    }

    async fn run_inner(&mut self) -> Result<(), End> {
        if self.mode == Mode::Submissions {
            self.start_tls().await?;
        }
        let delay = self.svc.config.limits.smtp_greeting_delay_secs;
        if self.mode == Mode::Mx && delay > 0 {
            // RFC 5321 §4.3.1: the client must wait for the greeting; one that talks first
            // is a bot that does not read replies.
            let mut probe = [0u8; 512];
            let early = tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(delay)) => false,
                r = self.io.read(&mut probe) => match r {
                    Ok(0) | Err(_) => return Err("closed before greeting"),
                    Ok(_) => true,
                },
            };
            if early {
                tracing::warn!(
                    "smtp early talker: service={} peer={}",
                    self.mode.service(),
                    self.peer
                );
                let _ = self
                    .say(&Reply::new(
                        554,
                        "5.5.0",
                        "Protocol error: talking before the greeting",
                    ))
                    .await;
                return Err("early talker");
            }
        }
        let greeting = self.session.greeting();
        self.say(&greeting).await?;
        let cmd_timeout = self.svc.config.smtp_command_timeout();
        let shutdown = self.svc.shutdown.clone();
        // RFC 5321 §4.5.3.2.7: the server waits this long for a *command*, not for each
        // byte, so a client trickling one byte at a time (slowloris) still runs out of time.
        let mut deadline = tokio::time::Instant::now() + cmd_timeout;
        loop {
            while let Some(line) = self.lines.next_line() {
                if self.dnsbl.is_pending()
                    && matches!(&line, Line::Complete(l) if command_verb(l) == "RCPT")
                {
                    self.dnsbl.wait().await;
                }
                let dir = AccountsDir(
                    &self.svc.accounts,
                    self.svc.srs.as_deref(),
                    &self.dnsbl,
                    (&self.svc.store, self.svc.config.limits.mailbox_quota),
                );
                let quota = self.svc.config.limits.mailbox_quota != 0;
                let (verb, action) = match line {
                    // With a quota, RCPT sums the mailbox's usage (a listing of each folder):
                    // kept off the async workers. Otherwise RCPT and MAIL read no more than
                    // the accounts files' stamp (two stats, a re-read only after an edit),
                    // which costs less than handing the worker to another thread.
                    Line::Complete(l) if quota && command_verb(&l) == "RCPT" => (
                        command_verb(&l),
                        crate::inbound::cpu_bound(|| self.session.line(&l, &dir)),
                    ),
                    Line::Complete(l) => (command_verb(&l), self.session.line(&l, &dir)),
                    Line::TooLong => (String::from("(too long)"), self.session.line_too_long()),
                };
                if let Action::Reply(r) = &action
                    && r.code >= 400
                {
                    tracing::info!(
                        "smtp refused: service={} peer={} command={verb} reply=\"{}\"",
                        self.mode.service(),
                        self.peer,
                        UntrustedText(&r.to_string())
                    );
                }
                if let Some(Event::MailFrom { helo, mail_from }) = self.session.take_event() {
                    self.early.mail_from(&helo, &mail_from);
                }
                if self.act(action).await? {
                    self.flush().await?;
                    return Ok(());
                }
                deadline = tokio::time::Instant::now() + cmd_timeout;
            }
            self.flush().await?;
            let more = tokio::select! {
                _ = shutdown.cancelled() => {
                    let _ = self.say(&std_replies::shutting_down(&self.svc.config.hostname)).await;
                    return Err("shutdown");
                }
                r = self.fill_until(deadline) => r?,
            };
            if !more {
                return Err("client closed");
            }
        }
    }

    /// Carry out an action and everything it leads to; true when the connection must close.
    async fn act(&mut self, mut action: Action) -> Result<bool, End> {
        loop {
            action = match action {
                Action::Reply(r) => {
                    self.out.extend_from_slice(&r.to_bytes());
                    return Ok(false);
                }
                Action::Close(r) => {
                    if r.code == 421 {
                        tracing::warn!(
                            "smtp closing: service={} peer={} reply=\"{}\"",
                            self.mode.service(),
                            self.peer,
                            UntrustedText(&r.to_string())
                        );
                    }
                    self.out.extend_from_slice(&r.to_bytes());
                    return Ok(true);
                }
                Action::StartTls(r) => {
                    self.say(&r).await?;
                    // Anything pipelined after STARTTLS was sent in the clear: drop it
                    // (CVE-2011-0411 command injection).
                    self.lines.clear();
                    self.start_tls().await?;
                    self.session.tls_started();
                    return Ok(false);
                }
                Action::ReadData(r) => {
                    self.say(&r).await?;
                    let result = self.read_data().await?;
                    let dir = AccountsDir(
                        &self.svc.accounts,
                        self.svc.srs.as_deref(),
                        &self.dnsbl,
                        (&self.svc.store, self.svc.config.limits.mailbox_quota),
                    );
                    self.session.data_received(result, &dir)
                }
                Action::ReadBdat { size } => {
                    self.read_bdat(size).await?;
                    let dir = AccountsDir(
                        &self.svc.accounts,
                        self.svc.srs.as_deref(),
                        &self.dnsbl,
                        (&self.svc.store, self.svc.config.limits.mailbox_quota),
                    );
                    self.session.bdat_end(&dir)
                }
                Action::Authenticate(c) => {
                    let result = self.authenticate(c).await;
                    self.session.auth_result(result)
                }
                Action::Deliver(tx) => {
                    let early = self.early.results(&tx.helo, &tx.mail_from).await;
                    let ctx = Context {
                        svc: &self.svc,
                        mode: self.mode,
                        peer: self.peer,
                        tls: self.tls_info.as_deref(),
                        dnsbl_junk: self.dnsbl.junk_listing(),
                        early,
                    };
                    let reply = transaction::finish(ctx, &tx).await;
                    self.session.delivered(reply)
                }
            };
        }
    }

    async fn start_tls(&mut self) -> Result<(), End> {
        let Io::Plain(tcp) = std::mem::replace(&mut self.io, Io::Gone) else {
            return Err("TLS already active");
        };
        let acceptor = self.svc.tls.acceptor();
        let limit = self.svc.config.tls_handshake_timeout();
        match tokio::time::timeout(limit, acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => {
                self.tls_info = Some(tls_description(&tls));
                self.io = Io::Tls(Box::new(tls));
                Ok(())
            }
            Ok(Err(e)) => {
                tracing::info!(
                    "smtp TLS handshake failed: service={} peer={} error={e}",
                    self.mode.service(),
                    self.peer
                );
                Err("TLS handshake failed")
            }
            Err(_) => {
                tracing::info!(
                    "smtp TLS handshake timeout: service={} peer={}",
                    self.mode.service(),
                    self.peer
                );
                Err("TLS handshake timeout")
            }
        }
    }

    /// Decode DATA into the spool: memory holds one read's worth of it, not the message.
    async fn read_data(&mut self) -> Result<Result<SpooledMessage, DataError>, End> {
        let mut pace = Pace::new(self.svc.config.limits.smtp_data_timeout_secs);
        let mut dec = DataDecoder::with_sink(
            self.svc.config.limits.max_message_size,
            self.svc.spool.writer(),
        )
        .forbid_bare_newline(self.session.forbid_bare_newline());
        loop {
            let pending = self.lines.take();
            pace.received(pending.len());
            let (used, done) = dec.feed(&pending);
            if done {
                self.lines.unread(pending[used..].to_vec());
                let body = dec.finish();
                if !matches!(&body, Ok(w) if w.is_spilled()) {
                    // Still in memory: nothing to flush or map, no thread hand-off.
                    return Ok(finish_body(body));
                }
                // Mapping a spilled body is a little file I/O; keep it off the reactor.
                let r = tokio::task::spawn_blocking(move || finish_body(body))
                    .await
                    .map_err(|_| "spool task failed")?;
                return Ok(r);
            }
            if !self.fill_until(pace.deadline()).await? {
                return Err("client closed during DATA");
            }
        }
    }

    async fn read_bdat(&mut self, size: usize) -> Result<(), End> {
        let mut pace = Pace::new(self.svc.config.limits.smtp_data_timeout_secs);
        let mut left = size;
        loop {
            let mut pending = self.lines.take();
            let n = left.min(pending.len());
            pace.received(n);
            let rest = pending.split_off(n);
            self.session.bdat_data(&pending);
            left -= n;
            self.lines.unread(rest);
            if left == 0 {
                return Ok(());
            }
            if !self.fill_until(pace.deadline()).await? {
                return Err("client closed during BDAT");
            }
        }
    }

    async fn authenticate(
        &mut self,
        c: crate::accounts::sasl::Credentials,
    ) -> Result<String, Reply> {
        use crate::accounts::Refusal;
        match self.svc.logins.login("smtp-submission", self.peer, c).await {
            Ok(name) => Ok(name),
            Err(Refusal::Throttled) => Err(Reply::new(
                454,
                "4.7.0",
                "Too many failed logins, try again later",
            )),
            Err(Refusal::BadName | Refusal::NotAuthorized | Refusal::Invalid) => Err(Reply::new(
                535,
                "5.7.8",
                "Authentication credentials invalid",
            )),
        }
    }
}
