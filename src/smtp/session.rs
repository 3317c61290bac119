//! The SMTP session as a sans-IO state machine (RFC 5321 §4.1, §4.3.2 sequencing): command
//! lines in, `Action`s out. It knows no sockets and no clock; policy questions ("is this
//! recipient ours?", "may this user send as that address?") go through the `Directory`
//! trait, slow work (password checks, delivery) is handed back to the I/O loop as an action.
//! Command syntax is parsed by the smtp-proto crate.
//!
//! This file holds the state, the command dispatch and the greeting commands (EHLO/HELO,
//! STARTTLS); `auth` the SASL exchange, `envelope` MAIL and RCPT, `content` DATA/BDAT and
//! the checks on the finished message.

mod auth;
mod content;
mod envelope;

use std::borrow::Cow;
use std::sync::Arc;

use smtp_proto::{Error as ProtoError, Request};

use super::Mode;
use super::data::BdatCollector;
use super::reply::{Reply, std_replies};
use crate::accounts::Recipient;
use crate::accounts::sasl::Credentials;
use crate::delivery::relay::{self, Target};
use crate::spool::{Spool, SpoolWriter, SpooledMessage};
pub use content::{finish_body, header_from_addresses};

/// RFC 5321 §4.5.3.1.4: a command line is at most 512 octets including CRLF.
pub const MAX_COMMAND_LINE: usize = 512;

/// MAIL and RCPT with extension parameters may be longer (RFC 5321 §4.5.3.1.4 lets
/// extensions raise the limit); bounded like Postfix's `line_length_limit`.
pub const MAX_ENVELOPE_LINE: usize = 2048;

/// The longest line accepted for this command: AUTH carries a SASL response of up to 12288
/// octets (RFC 4954 §4; the framer's `HARD_MAX`), MAIL/RCPT parameters, the rest 512.
fn max_line_for(line: &[u8]) -> usize {
    let verb = |v: &[u8]| line.len() > v.len() && line[..v.len()].eq_ignore_ascii_case(v);
    if verb(b"AUTH ") {
        super::line::HARD_MAX
    } else if verb(b"MAIL ") || verb(b"RCPT ") {
        MAX_ENVELOPE_LINE
    } else {
        MAX_COMMAND_LINE
    }
}

/// Limits and identity of one session.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub hostname: String,
    /// The mail domain: `RCPT TO:<Postmaster>` means postmaster@domain (RFC 5321 §4.5.1).
    pub domain: String,
    pub mode: Mode,
    pub max_message_size: u64,
    pub max_recipients: usize,
    pub max_messages: usize,
    pub max_invalid_recipients: usize,
    /// Protocol errors (5xx for syntax and sequence) before the connection is closed.
    pub max_errors: usize,
    /// Where BDAT chunks go (`Spool::memory()` in tests).
    pub spool: Spool,
}

/// Account policy the session asks; the server implements it over `Accounts`.
pub trait Directory {
    /// Where mail for `address` goes; Err(text) is a temporary lookup failure (451).
    fn resolve(&self, address: &str) -> Result<Recipient, String>;
    /// May the authenticated `user` use `address` as envelope or header sender?
    fn may_send_as(&self, user: &str, address: &str) -> bool;
    /// For an SRS address at our domain: Ok(original sender) when its hash and timestamp
    /// verify, Err(reason) otherwise; None when `address` is not an SRS address of ours or
    /// SRS is off.
    fn srs_reverse(&self, _address: &str) -> Option<Result<String, String>> {
        None
    }
    /// Port 25: Some(text) when the client itself is refused (a DNS blocklist listing);
    /// RCPT then gets 554 5.7.1 with that text. Bounces to our SRS addresses never ask.
    fn client_refusal(&self) -> Option<String> {
        None
    }
    /// Is the local `user`'s mailbox at or above its quota (`[limits] mailbox_quota`)?
    /// RCPT then gets 452 4.2.2 (RFC 3463 §3.3 "mailbox full", RFC 5321 §4.5.3.1.10).
    fn mailbox_full(&self, _user: &str) -> bool {
        false
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rcpt {
    /// The address as given (lower-cased domain not enforced; canonicalised by accounts).
    pub address: String,
    /// Local users that receive it.
    pub users: Vec<String>,
    /// Remote addresses it goes to (a remote recipient on submission, or an alias forward).
    pub remote: Vec<String>,
}

/// A complete mail transaction ready for delivery.
#[derive(Debug, Clone)]
pub struct Transaction {
    pub mail_from: String,
    pub rcpts: Vec<Rcpt>,
    /// The body as received (spooled to a file when large).
    pub message: Arc<SpooledMessage>,
    pub helo: String,
    pub auth_user: Option<String>,
    pub smtputf8: bool,
    /// RFC 3848 "with" protocol: ESMTP, ESMTPS, ESMTPSA, UTF8SMTPS, ...
    pub protocol: String,
}

/// What the I/O loop must do next.
#[derive(Debug)]
pub enum Action {
    Reply(Reply),
    /// Send the reply (220), discard buffered input, run the TLS handshake, then call
    /// `tls_started`.
    StartTls(Reply),
    /// Send the 354 reply, then decode DATA and call `data_received`.
    ReadData(Reply),
    /// Read exactly `size` octets, pass them to `bdat_data`, then call `bdat_end`.
    ReadBdat {
        size: usize,
    },
    /// Check the credentials (with throttling), then call `auth_result`.
    Authenticate(Credentials),
    /// Deliver, then call `delivered` with the reply to send.
    Deliver(Box<Transaction>),
    /// Send the reply and close the connection.
    Close(Reply),
}

/// Something the I/O loop may act on early; the core only reports it (`take_event`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// MAIL FROM was accepted: the checks of the sender's identities (SPF, RFC 7208 §2.3,
    /// §2.4) may start now, while the rest of the transaction arrives; their result is needed
    /// only at the end of DATA.
    MailFrom { helo: String, mail_from: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Sasl {
    Idle,
    PlainWait,
    LoginUser,
    LoginPass(String),
}

#[derive(Debug, Default)]
struct Envelope {
    mail_from: String,
    smtputf8: bool,
    rcpts: Vec<Rcpt>,
}

pub struct Session {
    cfg: SessionConfig,
    tls: bool,
    helo: Option<String>,
    esmtp: bool,
    auth_user: Option<String>,
    sasl: Sasl,
    tx: Option<Envelope>,
    bdat: Option<BdatCollector<SpoolWriter>>,
    /// Set when a BDAT chunk must be read but the transaction is refused (RFC 3030 §3: the
    /// chunk is consumed, then this reply is sent).
    bdat_refusal: Option<Reply>,
    bdat_last: bool,
    messages: usize,
    invalid_rcpts: usize,
    errors: usize,
    /// The latest event not yet taken by the I/O loop.
    event: Option<Event>,
}

fn r(code: u16, enh: &str, text: impl Into<String>) -> Reply {
    Reply::new(code, enh, text)
}

impl Session {
    pub fn new(cfg: SessionConfig) -> Session {
        let tls = cfg.mode == Mode::Submissions;
        Session {
            cfg,
            tls,
            helo: None,
            esmtp: false,
            auth_user: None,
            sasl: Sasl::Idle,
            tx: None,
            bdat: None,
            bdat_refusal: None,
            bdat_last: false,
            messages: 0,
            invalid_rcpts: 0,
            errors: 0,
            event: None,
        }
    }

    /// The event the last command raised, if any (taken once).
    pub fn take_event(&mut self) -> Option<Event> {
        self.event.take()
    }

    pub fn greeting(&self) -> Reply {
        r(220, "", format!("{} ESMTP postern", self.cfg.hostname))
    }

    pub fn is_tls(&self) -> bool {
        self.tls
    }

    pub fn helo(&self) -> &str {
        self.helo.as_deref().unwrap_or("")
    }

    pub fn auth_user(&self) -> Option<&str> {
        self.auth_user.as_deref()
    }

    pub fn in_transaction(&self) -> bool {
        self.tx.is_some()
    }

    /// A line over the hard limit was dropped by the framer.
    pub fn line_too_long(&mut self) -> Action {
        if self.sasl != Sasl::Idle {
            self.sasl = Sasl::Idle;
            return self.error(r(500, "5.5.6", "Authentication exchange line is too long"));
        }
        self.error(std_replies::line_too_long())
    }

    /// A protocol error reply; too many of them close the connection.
    fn error(&mut self, reply: Reply) -> Action {
        self.errors += 1;
        if self.errors > self.cfg.max_errors {
            return Action::Close(std_replies::too_many_errors());
        }
        Action::Reply(reply)
    }

    /// One line from the client (with its line ending).
    pub fn line(&mut self, line: &[u8], dir: &dyn Directory) -> Action {
        if self.sasl != Sasl::Idle {
            return self.sasl_line(line);
        }
        if line.len() > max_line_for(line) {
            return self.error(std_replies::line_too_long());
        }
        let parsed = Request::parse(&mut line.iter());
        match parsed {
            Ok(req) => self.request(req, line, dir),
            Err(ProtoError::InvalidRecipientAddress)
                if line.windows(2).any(|w| w == b"@[")
                    && relay::is_relaying(self.is_from_internet(), Target::AddressLiteral) =>
            {
                // smtp-proto does not parse address literals; they name a host, not us.
                let text = String::from_utf8_lossy(line);
                let address = text
                    .split_once('<')
                    .and_then(|(_, a)| a.split_once('>'))
                    .map_or("", |(a, _)| a);
                self.relay_refused(Target::AddressLiteral, address)
            }
            Err(e) => {
                let reply = match e {
                    ProtoError::UnknownCommand => r(500, "5.5.1", "Command unrecognized"),
                    ProtoError::InvalidSenderAddress => {
                        r(501, "5.1.7", "Bad sender address syntax")
                    }
                    ProtoError::InvalidRecipientAddress => {
                        r(501, "5.1.3", "Bad recipient address syntax")
                    }
                    ProtoError::SyntaxError { syntax } => {
                        r(501, "5.5.4", format!("Syntax: {syntax}"))
                    }
                    ProtoError::InvalidParameter { param } => {
                        r(501, "5.5.4", format!("Invalid value for parameter {param}"))
                    }
                    ProtoError::UnsupportedParameter { param } => r(
                        555,
                        "5.5.4",
                        format!("Unsupported parameter {}", sanitize(&param)),
                    ),
                    _ => r(500, "5.5.2", "Syntax error"),
                };
                self.error(reply)
            }
        }
    }

    fn request(&mut self, req: Request<Cow<'_, str>>, raw: &[u8], dir: &dyn Directory) -> Action {
        match req {
            Request::Ehlo { host } => self.ehlo(&host, true),
            Request::Helo { host } => self.ehlo(&host, false),
            Request::Lhlo { .. } => self.error(r(500, "5.5.1", "LHLO is for LMTP")),
            Request::StartTls => self.starttls(),
            Request::Auth {
                mechanism,
                initial_response,
            } => self.auth(mechanism, &initial_response),
            Request::Mail { from } => self.mail(from, dir),
            Request::Rcpt { to } => self.rcpt(to, raw, dir),
            Request::Data => self.data(),
            Request::Bdat {
                chunk_size,
                is_last,
            } => self.bdat_start(chunk_size, is_last),
            Request::Rset => {
                self.reset_transaction();
                Action::Reply(r(250, "2.0.0", "Reset OK"))
            }
            Request::Noop { .. } => Action::Reply(std_replies::ok()),
            // RFC 5321 §3.5.3: 252 when we will not verify but would accept.
            Request::Vrfy { .. } => Action::Reply(r(
                252,
                "2.5.0",
                "Cannot VRFY user, but will accept message and attempt delivery",
            )),
            Request::Expn { .. } => self.error(r(502, "5.5.1", "EXPN not available")),
            Request::Help { .. } => Action::Reply(Reply {
                code: 214,
                enhanced: "2.0.0".into(),
                lines: vec![self.help_commands(), "See RFC 5321".into()],
            }),
            Request::Quit => Action::Close(r(
                221,
                "2.0.0",
                format!("{} closing connection", self.cfg.hostname),
            )),
            Request::Etrn { .. } | Request::Atrn { .. } | Request::Burl { .. } => {
                self.error(r(502, "5.5.1", "Command not implemented"))
            }
        }
    }

    fn ehlo(&mut self, host: &str, esmtp: bool) -> Action {
        if !is_valid_helo(host) {
            // It goes into our Received field verbatim; refuse what is not a name or a literal.
            return self.error(r(
                501,
                "5.5.4",
                "Invalid domain name or address literal (RFC 5321 §4.1.1.1)",
            ));
        }
        // RFC 5321 §4.1.4: EHLO/HELO resets any transaction in progress.
        self.reset_transaction();
        self.helo = Some(sanitize(host));
        self.esmtp = esmtp;
        let greet = format!("{} Hello {}", self.cfg.hostname, sanitize(host));
        if !esmtp {
            return Action::Reply(r(250, "", greet));
        }
        let mut lines = vec![
            greet,
            "PIPELINING".into(),
            format!("SIZE {}", self.cfg.max_message_size),
            "8BITMIME".into(),
            "SMTPUTF8".into(),
            "ENHANCEDSTATUSCODES".into(),
            "CHUNKING".into(),
        ];
        if !self.tls {
            lines.push("STARTTLS".into());
        }
        // RFC 8314 / RFC 4954 §4: offer AUTH only on submission and only over TLS.
        if self.cfg.mode != Mode::Mx && self.tls && self.auth_user.is_none() {
            lines.push("AUTH PLAIN LOGIN".into());
        }
        Action::Reply(Reply::plain(250, lines))
    }

    /// HELP lists what this session would accept now, as EHLO advertises it.
    fn help_commands(&self) -> String {
        let mut cmds = String::from("Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP VRFY");
        if !self.tls {
            cmds.push_str(" STARTTLS");
        }
        if self.cfg.mode != Mode::Mx && self.tls {
            cmds.push_str(" AUTH");
        }
        cmds.push_str(" HELP QUIT");
        cmds
    }

    fn starttls(&mut self) -> Action {
        if self.tls {
            return self.error(r(503, "5.5.1", "TLS already active"));
        }
        if self.cfg.mode == Mode::Submissions {
            return self.error(r(503, "5.5.1", "TLS already active"));
        }
        if self.helo.is_none() {
            return self.error(std_replies::bad_sequence("Send EHLO first"));
        }
        Action::StartTls(r(220, "2.0.0", "Ready to start TLS"))
    }

    /// The handshake succeeded: RFC 3207 §4.2 — forget everything learned before TLS.
    pub fn tls_started(&mut self) {
        self.tls = true;
        self.helo = None;
        self.esmtp = false;
        self.auth_user = None;
        self.sasl = Sasl::Idle;
        self.reset_transaction();
    }

    fn reset_transaction(&mut self) {
        self.tx = None;
        self.bdat = None;
        self.bdat_refusal = None;
        self.bdat_last = false;
    }
}

/// The EHLO/HELO argument: a Domain or an address-literal (RFC 5321 §4.1.2, §4.1.3), since
/// it is written into `Received` (RFC 5321 §4.4). Lenient where real MTAs are sloppy: an
/// underscore in a label, a trailing dot, a single label ("localhost"), digits-only labels
/// (a bare IP). Refused: anything else, e.g. `x([10.0.0.1])by`, `;`, raw non-ASCII (an IDN
/// must be sent as A-labels; RFC 6531 §3.7.1 does not change EHLO).
pub fn is_valid_helo(host: &str) -> bool {
    if host.is_empty() || host.len() > 255 {
        return false;
    }
    if let Some(lit) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return match lit.get(..5) {
            Some(tag) if tag.eq_ignore_ascii_case("IPv6:") => {
                lit[5..].parse::<std::net::Ipv6Addr>().is_ok()
            }
            _ => lit.parse::<std::net::Ipv4Addr>().is_ok(),
        };
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    !name.is_empty()
        && name.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b.len() <= 63
                && b.iter()
                    .all(|&c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
                && b[0] != b'-'
                && b[b.len() - 1] != b'-'
        })
}

/// Client text echoed in replies and logs: printable, bounded.
pub fn sanitize(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(255).collect()
}

#[cfg(test)]
mod tests;
