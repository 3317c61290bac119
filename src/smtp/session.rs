//! The SMTP session as a sans-IO state machine (RFC 5321 §4.1, §4.3.2 sequencing): command
//! lines in, `Action`s out. It knows no sockets and no clock; policy questions ("is this
//! recipient ours?", "may this user send as that address?") go through the `Directory`
//! trait, slow work (password checks, delivery) is handed back to the I/O loop as an action.
//! Command syntax is parsed by the smtp-proto crate.

use std::borrow::Cow;
use std::sync::Arc;

use smtp_proto::{Error as ProtoError, Request};

use super::Mode;
use super::auth::{self, Credentials, SaslError};
use super::data::{BdatCollector, DataError};
use super::reply::{Reply, std_replies};
use crate::accounts::{Address, AddressError, Recipient};
use crate::spool::{Spool, SpoolWriter, SpooledMessage};

/// RFC 5321 §4.5.3.1.4: a command line is at most 512 octets including CRLF.
pub const MAX_COMMAND_LINE: usize = 512;

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
        }
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
        let is_auth = line.len() >= 5 && line[..5].eq_ignore_ascii_case(b"AUTH ");
        if line.len() > MAX_COMMAND_LINE && !is_auth {
            return self.error(std_replies::line_too_long());
        }
        let parsed = Request::parse(&mut line.iter());
        match parsed {
            Ok(req) => self.request(req, line, dir),
            Err(ProtoError::InvalidRecipientAddress)
                if self.cfg.mode == Mode::Mx && line.windows(2).any(|w| w == b"@[") =>
            {
                // smtp-proto does not parse address literals; on port 25 they are never ours.
                self.invalid_rcpt(r(554, "5.7.1", "Relay access denied"))
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

    // ---- AUTH (RFC 4954) ------------------------------------------------------------------

    fn auth(&mut self, mechanism: u64, initial: &str) -> Action {
        if self.cfg.mode == Mode::Mx {
            return self.error(r(
                502,
                "5.5.1",
                "AUTH is not available on this port; use submission",
            ));
        }
        if !self.tls {
            return self.error(r(530, "5.7.0", "Must issue a STARTTLS command first"));
        }
        if self.helo.is_none() || !self.esmtp {
            return self.error(std_replies::bad_sequence("Send EHLO first"));
        }
        if self.auth_user.is_some() {
            return self.error(std_replies::bad_sequence("Already authenticated"));
        }
        if self.tx.is_some() {
            return self.error(std_replies::bad_sequence(
                "AUTH not allowed during a mail transaction",
            ));
        }
        if mechanism == smtp_proto::AUTH_PLAIN {
            if initial.is_empty() {
                self.sasl = Sasl::PlainWait;
                return Action::Reply(Reply::plain(334, vec![String::new()]));
            }
            return self.plain(initial);
        }
        if mechanism == smtp_proto::AUTH_LOGIN {
            if initial.is_empty() {
                self.sasl = Sasl::LoginUser;
                return Action::Reply(Reply::plain(334, vec![auth::challenge("Username:")]));
            }
            return match auth::decode_response(initial).and_then(auth::utf8) {
                Ok(user) => {
                    self.sasl = Sasl::LoginPass(user);
                    Action::Reply(Reply::plain(334, vec![auth::challenge("Password:")]))
                }
                Err(e) => self.sasl_error(e),
            };
        }
        self.error(r(504, "5.5.4", "Unrecognized authentication type"))
    }

    fn plain(&mut self, response: &str) -> Action {
        match auth::decode_response(response).and_then(|raw| auth::parse_plain(&raw)) {
            Ok(c) => Action::Authenticate(c),
            Err(e) => self.sasl_error(e),
        }
    }

    fn sasl_error(&mut self, e: SaslError) -> Action {
        self.sasl = Sasl::Idle;
        match e {
            SaslError::Cancelled => self.error(r(501, "5.0.0", "Authentication cancelled")),
            SaslError::Malformed => {
                self.error(r(501, "5.5.2", "Cannot decode the authentication response"))
            }
        }
    }

    fn sasl_line(&mut self, line: &[u8]) -> Action {
        let text = String::from_utf8_lossy(line);
        let state = std::mem::replace(&mut self.sasl, Sasl::Idle);
        match state {
            Sasl::Idle => unreachable!("sasl_line is only called during an exchange"),
            Sasl::PlainWait => self.plain(&text),
            Sasl::LoginUser => match auth::decode_response(&text).and_then(auth::utf8) {
                Ok(user) => {
                    self.sasl = Sasl::LoginPass(user);
                    Action::Reply(Reply::plain(334, vec![auth::challenge("Password:")]))
                }
                Err(e) => self.sasl_error(e),
            },
            Sasl::LoginPass(user) => match auth::decode_response(&text).and_then(auth::utf8) {
                Ok(password) => Action::Authenticate(Credentials {
                    authzid: String::new(),
                    user,
                    password,
                }),
                Err(e) => self.sasl_error(e),
            },
        }
    }

    /// Result of the credential check: Ok(canonical user) or Err(reply) for failure/throttle.
    pub fn auth_result(&mut self, result: Result<String, Reply>) -> Action {
        match result {
            Ok(user) => {
                self.auth_user = Some(user);
                Action::Reply(r(235, "2.7.0", "Authentication successful"))
            }
            Err(reply) => self.error(reply),
        }
    }

    // ---- the mail transaction -------------------------------------------------------------

    fn mail(&mut self, from: smtp_proto::MailFrom<Cow<'_, str>>, dir: &dyn Directory) -> Action {
        if self.helo.is_none() {
            return self.error(std_replies::bad_sequence("Send HELO/EHLO first"));
        }
        if self.tx.is_some() {
            return self.error(std_replies::bad_sequence("Nested MAIL command"));
        }
        if self.cfg.mode != Mode::Mx {
            if !self.tls {
                return self.error(r(530, "5.7.0", "Must issue a STARTTLS command first"));
            }
            if self.auth_user.is_none() {
                return self.error(r(530, "5.7.0", "Authentication required"));
            }
        }
        if self.messages >= self.cfg.max_messages {
            return Action::Close(r(
                421,
                "4.7.0",
                "Too many messages in one connection, reconnect to continue",
            ));
        }
        // Parameters of extensions we do not advertise (RFC 5321 §4.1.1.11: 555).
        let known =
            smtp_proto::MAIL_BODY_7BIT | smtp_proto::MAIL_BODY_8BITMIME | smtp_proto::MAIL_SMTPUTF8;
        if from.flags & !known != 0
            || from.trans_id.is_some()
            || from.env_id.is_some()
            || from.solicit.is_some()
            || from.mtrk.is_some()
            || from.by != 0
            || from.hold_for != 0
            || from.hold_until != 0
            || from.mt_priority != 0
        {
            return self.error(r(555, "5.5.4", "Unsupported MAIL parameter"));
        }
        let smtputf8 = from.flags & smtp_proto::MAIL_SMTPUTF8 != 0;
        if (from.size as u64) > self.cfg.max_message_size {
            return Action::Reply(r(
                552,
                "5.3.4",
                format!(
                    "Message size exceeds fixed maximum message size ({} octets)",
                    self.cfg.max_message_size
                ),
            ));
        }
        let address = from.address.to_string();
        if !address.is_ascii() && !smtputf8 {
            // RFC 6531 §3.5.
            return self.error(r(553, "5.6.7", "Non-ASCII address requires SMTPUTF8"));
        }
        if !address.is_empty()
            && let Err(e) = Address::parse(&address)
        {
            return self.error(r(
                501,
                "5.1.7",
                format!("Bad sender address: {}", sanitize(&e.to_string())),
            ));
        }
        if let Some(user) = &self.auth_user
            && !dir.may_send_as(user, &address)
        {
            return Action::Reply(r(
                553,
                "5.7.1",
                format!(
                    "Sender address <{}> is not owned by {user}",
                    sanitize(&address)
                ),
            ));
        }
        self.tx = Some(Envelope {
            mail_from: address,
            smtputf8,
            rcpts: Vec::new(),
        });
        Action::Reply(r(250, "2.1.0", "Sender OK"))
    }

    fn invalid_rcpt(&mut self, reply: Reply) -> Action {
        self.invalid_rcpts += 1;
        if self.invalid_rcpts > self.cfg.max_invalid_recipients {
            return Action::Close(r(
                421,
                "4.7.0",
                "Too many invalid recipients, closing connection",
            ));
        }
        Action::Reply(reply)
    }

    fn rcpt(
        &mut self,
        to: smtp_proto::RcptTo<Cow<'_, str>>,
        raw: &[u8],
        dir: &dyn Directory,
    ) -> Action {
        let Some(tx) = &self.tx else {
            return self.error(std_replies::bad_sequence("Need MAIL before RCPT"));
        };
        if to.orcpt.is_some() || to.flags != 0 || to.rrvs != 0 {
            return self.error(r(555, "5.5.4", "Unsupported RCPT parameter"));
        }
        if tx.rcpts.len() >= self.cfg.max_recipients {
            // RFC 5321 §4.5.3.1.10.
            return Action::Reply(r(452, "4.5.3", "Too many recipients"));
        }
        let mut address = to.address.to_string();
        // smtp-proto returns "" for the bare <Postmaster>, which every server must accept.
        if address.is_empty() && is_bare_postmaster(raw) {
            address = format!("postmaster@{}", self.cfg.domain);
        }
        if !address.is_ascii() && !tx.smtputf8 {
            return self.error(r(553, "5.6.7", "Non-ASCII address requires SMTPUTF8"));
        }
        // smtp-proto drops a source route silently; we refuse it (RFC 5321 Appendix C
        // routes are a relay trick here).
        if has_source_route(raw) {
            return self.invalid_rcpt(r(
                554,
                "5.7.1",
                "Source routes are not accepted: relay access denied",
            ));
        }
        let parsed = match Address::parse(&address) {
            Ok(a) => a,
            Err(AddressError::RelayHack(_)) => {
                return self.invalid_rcpt(r(554, "5.7.1", "Relay access denied"));
            }
            Err(AddressError::Syntax(_)) => {
                return self.error(r(501, "5.1.3", "Bad recipient address syntax"));
            }
        };
        if parsed.domain.starts_with('[') && self.cfg.mode == Mode::Mx {
            return self.invalid_rcpt(r(554, "5.7.1", "Relay access denied"));
        }
        if self.cfg.mode == Mode::Mx
            && let Some(reversed) = dir.srs_reverse(&address)
        {
            return self.srs_rcpt(address, reversed);
        }
        let resolved = match dir.resolve(&address) {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("recipient lookup failed: {e}");
                return Action::Reply(r(451, "4.3.0", "Temporary lookup failure, try again later"));
            }
        };
        let rcpt = match resolved {
            Recipient::Local { users, forward } => Rcpt {
                address: address.clone(),
                users,
                remote: forward,
            },
            Recipient::Unknown => {
                return self.invalid_rcpt(r(
                    550,
                    "5.1.1",
                    format!("<{}>: no such user here", sanitize(&address)),
                ));
            }
            Recipient::Remote => {
                if self.cfg.mode == Mode::Mx {
                    return self.invalid_rcpt(r(
                        554,
                        "5.7.1",
                        format!("<{}>: relay access denied", sanitize(&address)),
                    ));
                }
                Rcpt {
                    address: address.clone(),
                    users: vec![],
                    remote: vec![address.clone()],
                }
            }
        };
        let tx = self.tx.as_mut().expect("checked above");
        if !tx
            .rcpts
            .iter()
            .any(|x| x.address.eq_ignore_ascii_case(&rcpt.address))
        {
            tx.rcpts.push(rcpt);
        }
        Action::Reply(r(250, "2.1.5", "Recipient OK"))
    }

    /// RCPT TO an SRS address we issued: a bounce coming back for forwarded mail.
    ///
    /// Only a null reverse-path is accepted. Bounces (RFC 3464 DSNs, RFC 5321 §4.5.5) are
    /// sent with MAIL FROM:<>; anything else sent to an SRS address is a replay of an address
    /// seen in a forwarded message's headers, and accepting it would turn the 21-day-valid
    /// address into an open relay towards the original sender (postsrsd documents the same
    /// abuse and Postfix setups restrict SRS recipients to null senders for it).
    fn srs_rcpt(&mut self, address: String, reversed: Result<String, String>) -> Action {
        let original = match reversed {
            Ok(a) => a,
            Err(why) => {
                tracing::info!("SRS recipient refused: {why}");
                return self.invalid_rcpt(r(
                    550,
                    "5.1.1",
                    format!("<{}>: invalid or expired SRS address", sanitize(&address)),
                ));
            }
        };
        let tx = self.tx.as_mut().expect("rcpt checked MAIL first");
        if !tx.mail_from.is_empty() {
            return self.invalid_rcpt(r(
                550,
                "5.7.1",
                format!(
                    "<{}>: SRS addresses accept only bounces (null reverse-path)",
                    sanitize(&address)
                ),
            ));
        }
        if !tx
            .rcpts
            .iter()
            .any(|x| x.address.eq_ignore_ascii_case(&address))
        {
            tx.rcpts.push(Rcpt {
                address,
                users: vec![],
                remote: vec![original],
            });
        }
        Action::Reply(r(250, "2.1.5", "Recipient OK"))
    }

    fn data(&mut self) -> Action {
        match &self.tx {
            None => self.error(std_replies::bad_sequence("Need MAIL command")),
            Some(tx) if tx.rcpts.is_empty() => self.error(r(554, "5.5.1", "No valid recipients")),
            Some(_) if self.bdat.is_some() => {
                self.error(std_replies::bad_sequence("DATA not allowed after BDAT"))
            }
            Some(_) => Action::ReadData(Reply::plain(
                354,
                vec!["Start mail input; end with <CRLF>.<CRLF>".into()],
            )),
        }
    }

    /// The body of DATA is in (or refused by the decoder).
    pub fn data_received(
        &mut self,
        result: Result<SpooledMessage, DataError>,
        dir: &dyn Directory,
    ) -> Action {
        match result {
            Ok(message) => self.complete(message, dir),
            Err(e) => {
                self.reset_transaction();
                Action::Reply(data_error_reply(&e, self.cfg.max_message_size))
            }
        }
    }

    fn bdat_start(&mut self, size: usize, last: bool) -> Action {
        self.bdat_refusal = None;
        self.bdat_last = last;
        match &self.tx {
            None => self.bdat_refusal = Some(std_replies::bad_sequence("Need MAIL command")),
            Some(tx) if tx.rcpts.is_empty() => {
                self.bdat_refusal = Some(r(554, "5.5.1", "No valid recipients"))
            }
            Some(_) => {
                if self.bdat.is_none() {
                    self.bdat = Some(BdatCollector::with_sink(
                        self.cfg.max_message_size,
                        self.cfg.spool.writer(),
                    ));
                }
            }
        }
        Action::ReadBdat { size }
    }

    /// Some octets of the current BDAT chunk.
    pub fn bdat_data(&mut self, bytes: &[u8]) {
        if self.bdat_refusal.is_none()
            && let Some(c) = &mut self.bdat
        {
            c.push(bytes);
        }
    }

    /// The current BDAT chunk has been read completely.
    pub fn bdat_end(&mut self, dir: &dyn Directory) -> Action {
        if let Some(reply) = self.bdat_refusal.take() {
            return self.error(reply);
        }
        let Some(c) = &self.bdat else {
            return self.error(std_replies::bad_sequence("Need MAIL command"));
        };
        if !self.bdat_last {
            if c.too_big() {
                // Keep reading nothing more: refuse now and drop the transaction.
                let reply = data_error_reply(
                    &DataError::TooBig { size: c.size() },
                    self.cfg.max_message_size,
                );
                self.reset_transaction();
                return Action::Reply(reply);
            }
            return Action::Reply(r(250, "2.0.0", format!("{} octets received", c.size())));
        }
        let c = self.bdat.take().expect("checked above");
        self.data_received(finish_body(c.finish()), dir)
    }

    fn complete(&mut self, message: SpooledMessage, dir: &dyn Directory) -> Action {
        let tx = self
            .tx
            .take()
            .expect("DATA only after a transaction started");
        self.bdat = None;
        if let Some(user) = &self.auth_user {
            // RFC 6409 §6.1 leaves sender policy to us: header From must be the user's too.
            // RFC 5322 §3.6: exactly one From; a second one could hide the real author.
            if super::headers::count_header(message.as_bytes(), "From") > 1 {
                return Action::Reply(r(
                    550,
                    "5.6.0",
                    "Message has more than one From header (RFC 5322 §3.6)",
                ));
            }
            match header_from_addresses(message.as_bytes()) {
                None => {
                    return Action::Reply(r(
                        550,
                        "5.6.0",
                        "Message has no From header (RFC 5322 §3.6)",
                    ));
                }
                Some(addrs) => {
                    if let Some(bad) = addrs.iter().find(|a| !dir.may_send_as(user, a)) {
                        return Action::Reply(r(
                            553,
                            "5.7.1",
                            format!("From: <{}> is not owned by {user}", sanitize(bad)),
                        ));
                    }
                }
            }
        }
        let mut protocol = if tx.smtputf8 { "UTF8SMTP" } else { "ESMTP" }.to_string();
        if !self.esmtp && !tx.smtputf8 {
            protocol = "SMTP".into();
        }
        // RFC 3848: S for TLS, A for authenticated.
        if self.tls {
            protocol.push('S');
        }
        if self.auth_user.is_some() {
            protocol.push('A');
        }
        Action::Deliver(Box::new(Transaction {
            mail_from: tx.mail_from,
            rcpts: tx.rcpts,
            message: Arc::new(message),
            helo: self.helo.clone().unwrap_or_default(),
            auth_user: self.auth_user.clone(),
            smtputf8: tx.smtputf8,
            protocol,
        }))
    }

    /// Delivery finished with this reply (250 or a failure).
    pub fn delivered(&mut self, reply: Reply) -> Action {
        if reply.is_positive() {
            self.messages += 1;
        }
        Action::Reply(reply)
    }
}

/// The spooled body of a decoder or BDAT collector that finished without a protocol error.
pub fn finish_body(r: Result<SpoolWriter, DataError>) -> Result<SpooledMessage, DataError> {
    r?.finish().map_err(|e| DataError::Storage(e.to_string()))
}

fn data_error_reply(e: &DataError, max: u64) -> Reply {
    match e {
        // RFC 3463 §3.4: X.3.1 "mail system full"; the client keeps the message and retries.
        DataError::Storage(_) => r(452, "4.3.1", "Insufficient system storage, try again later"),
        DataError::TooBig { .. } => r(
            552,
            "5.3.4",
            format!("Message size exceeds fixed maximum message size ({max} octets)"),
        ),
        // RFC 5321 §4.5.3.1.6: text lines are at most 1000 octets with CRLF.
        DataError::LineTooLong => r(
            550,
            "5.5.2",
            "Message has a line over 1000 octets (RFC 5321 §4.5.3.1.6)",
        ),
    }
}

/// `RCPT TO:<Postmaster>` without a domain (RFC 5321 §4.5.1).
fn is_bare_postmaster(raw: &[u8]) -> bool {
    let text = String::from_utf8_lossy(raw).to_ascii_lowercase();
    text.contains("<postmaster>")
}

/// `RCPT TO:<@a,@b:user@c>`: the path starts with a route.
fn has_source_route(raw: &[u8]) -> bool {
    raw.iter()
        .position(|&b| b == b'<')
        .and_then(|i| raw.get(i + 1))
        .is_some_and(|&b| b == b'@')
}

/// Client text echoed in replies and logs: printable, bounded.
pub fn sanitize(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(255).collect()
}

/// The addresses of the header `From:` (and `Sender:`), or None without a From header.
pub fn header_from_addresses(message: &[u8]) -> Option<Vec<String>> {
    let parsed = mail_parser::MessageParser::default().parse_headers(message)?;
    let mut out = Vec::new();
    let mut saw_from = false;
    for (name, list) in [("From", parsed.from()), ("Sender", parsed.sender())] {
        let Some(list) = list else { continue };
        if name == "From" {
            saw_from = true;
        }
        for a in list.iter() {
            match &a.address {
                Some(addr) => out.push(addr.to_string()),
                // A From without a usable address cannot be owned.
                None => out.push(a.name.as_deref().unwrap_or("").to_string()),
            }
        }
    }
    // An empty group ("From: undisclosed:;") names nobody, so nobody can own it.
    if !saw_from || out.is_empty() {
        return None;
    }
    Some(out)
}

#[cfg(test)]
mod tests;
