//! The POP3 session (RFC 1939) as a state machine without sockets: bytes go in through
//! `input`, each `step` handles one command (or one slice of a RETR/TOP) and appends the
//! reply bytes to `out`, returning what the connection must do next. Logins are done by the
//! shell (`Step::Login`), which hands back the user's maildrop with `login_done`.
//!
//! States (RFC 1939 §3): AUTHORIZATION (CAPA, STLS, USER/PASS, AUTH, QUIT), TRANSACTION
//! (STAT, LIST, RETR, TOP, DELE, RSET, NOOP, UIDL, CAPA, QUIT) and UPDATE (entered by QUIT in
//! TRANSACTION: the messages marked deleted are expunged, then the connection closes). A
//! connection that ends any other way deletes nothing (§6).
//!
//! Extensions: CAPA with RESP-CODES, AUTH-RESP-CODE, PIPELINING, TOP, UIDL (RFC 2449); STLS
//! (RFC 2595); AUTH PLAIN (RFC 5034). USER and SASL are offered only under TLS unless
//! plaintext logins are allowed (RFC 2595 §4, as IMAP's LOGINDISABLED).

use std::io::Read;

use super::body::Canon;
use super::maildrop::{Entry, Maildrop};
use crate::accounts::sasl::{Credentials, SaslError, decode_response, parse_plain};

/// Longest command line accepted, CRLF included. RFC 2449 §4 sets 255 octets for commands;
/// a little more is allowed for long user names and AUTH PLAIN initial responses (RFC 5034
/// §4 lets those exceed it).
pub const MAX_LINE: usize = 1024;
/// Unknown or malformed commands tolerated before the session is closed.
const MAX_ERRORS: u32 = 20;
/// Message bytes read per step (the shell writes each slice before the next).
const CHUNK: usize = 64 * 1024;

/// What the connection does after a step.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// More work is ready: write `out` and call `step` again.
    Continue,
    /// Write `out`, then wait for input.
    NeedInput,
    /// Write `out`, run the TLS handshake, then call `tls_started`.
    StartTls,
    /// Check these credentials (throttle, accounts) and call `login_done`.
    Login(Credentials),
    /// A SASL response that could not be decoded was answered: count it as a failed login
    /// (throttle, fail2ban line), then go on as for `Continue`.
    Malformed,
    /// Write `out` and close.
    Close,
}

/// Why the shell refused a login; each maps to its own -ERR (RFC 3206 response codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginError {
    /// Unknown user or wrong password.
    Invalid,
    /// The SASL authorization identity names another account (RFC 4616 §2).
    NotAuthorized,
    /// Too many recent failures from this address or for this account.
    Throttled,
    /// Authenticated, but the maildrop could not be opened.
    Unavailable,
    /// Authenticated, but another session has the maildrop (RFC 2449 §8.1.1).
    InUse,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Authorization,
    Transaction,
    /// QUIT was handled; nothing more is read.
    Done,
}

/// The user's maildrop as it was at login (RFC 1939 §5: message numbers do not change
/// during the session; deleted ones stay numbered but are not listed).
struct Snapshot {
    md: Box<dyn Maildrop>,
    uidvalidity: u32,
    msgs: Vec<Entry>,
    deleted: Vec<bool>,
    retrieved: Vec<bool>,
}

impl Snapshot {
    fn live(&self) -> impl Iterator<Item = (usize, &Entry)> {
        self.msgs
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.deleted[*i])
    }

    fn stat(&self) -> (usize, u64) {
        self.live()
            .fold((0, 0), |(n, s), (_, e)| (n + 1, s + e.size))
    }

    /// UIDL value (RFC 1939 §7: 1-70 printable characters, unique and stable for the life
    /// of the message): the same identity IMAP gives it.
    fn uidl(&self, i: usize) -> String {
        format!("{}.{}", self.uidvalidity, self.msgs[i].uid)
    }
}

struct Sending {
    reader: Box<dyn Read + Send>,
    canon: Canon,
}

pub struct Session {
    tls: bool,
    allow_plain: bool,
    state: State,
    inbuf: Vec<u8>,
    /// A line longer than MAX_LINE is being skipped up to its LF.
    discarding: bool,
    /// USER given, waiting for PASS.
    user: Option<String>,
    /// AUTH PLAIN sent "+ ", waiting for the client's response line.
    sasl_wait: bool,
    /// A login is with the shell.
    logging_in: bool,
    drop: Option<Snapshot>,
    sending: Option<Sending>,
    errors: u32,
    /// Set once the session must end after `out` is written.
    closing: bool,
}

fn ok(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(format!("+OK {text}\r\n").as_bytes());
}

fn err(out: &mut Vec<u8>, text: &str) {
    tracing::debug!("pop3 reply: -ERR {text}");
    out.extend_from_slice(format!("-ERR {text}\r\n").as_bytes());
}

/// A message number argument (RFC 1939 §5: 1-based, in the snapshot).
fn msg_number(arg: &str, count: usize) -> Result<usize, String> {
    if arg.is_empty() || !arg.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("message number expected, got {:?}", trunc(arg)));
    }
    match arg.parse::<usize>() {
        Ok(n) if n >= 1 && n <= count => Ok(n - 1),
        _ => Err(format!("no such message {}", trunc(arg))),
    }
}

fn trunc(s: &str) -> &str {
    match s.char_indices().nth(40) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

impl Session {
    /// `tls`: the connection is already encrypted (995). `allow_plain`: USER/PASS and AUTH
    /// are offered without TLS too (tests on loopback, `[imap] allow_plaintext_auth`).
    pub fn new(tls: bool, allow_plain: bool) -> Session {
        Session {
            tls,
            allow_plain,
            state: State::Authorization,
            inbuf: Vec::new(),
            discarding: false,
            user: None,
            sasl_wait: false,
            logging_in: false,
            drop: None,
            sending: None,
            errors: 0,
            closing: false,
        }
    }

    pub fn greeting(&self) -> Vec<u8> {
        b"+OK postern POP3 ready\r\n".to_vec()
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn is_authenticated(&self) -> bool {
        self.state == State::Transaction
    }

    pub fn input(&mut self, bytes: &[u8]) {
        self.inbuf.extend_from_slice(bytes);
    }

    /// After the TLS handshake: forget anything sent in plaintext after STLS (command
    /// injection, RFC 2595 §4 / CVE-2011-0411) and any USER given before.
    pub fn tls_started(&mut self) {
        self.tls = true;
        self.inbuf.clear();
        self.discarding = false;
        self.user = None;
    }

    fn may_login(&self) -> bool {
        self.tls || self.allow_plain
    }

    /// Handle what is buffered: at most one command, or one slice of a message being sent.
    pub fn step(&mut self, out: &mut Vec<u8>) -> Step {
        if self.sending.is_some() {
            return self.send_slice(out);
        }
        if self.closing || self.state == State::Done {
            return Step::Close;
        }
        if self.logging_in {
            // The shell must answer the login before anything else is read.
            return Step::NeedInput;
        }
        let Some(lf) = self.inbuf.iter().position(|&b| b == b'\n') else {
            if self.inbuf.len() > MAX_LINE {
                self.inbuf.clear();
                if !self.discarding {
                    self.discarding = true;
                    return self.error(out, "line too long");
                }
            }
            return Step::NeedInput;
        };
        let mut line: Vec<u8> = self.inbuf.drain(..=lf).collect();
        if std::mem::take(&mut self.discarding) {
            // The tail of a line already refused.
            return Step::Continue;
        }
        if line.len() > MAX_LINE {
            return self.error(out, "line too long");
        }
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if std::mem::take(&mut self.sasl_wait) {
            return self.sasl_response(&line, out);
        }
        let Ok(line) = String::from_utf8(line) else {
            return self.error(out, "command line is not UTF-8");
        };
        self.command(&line, out)
    }

    fn error(&mut self, out: &mut Vec<u8>, text: &str) -> Step {
        self.errors += 1;
        if self.errors >= MAX_ERRORS {
            err(out, "too many bad commands, closing");
            self.closing = true;
            return Step::Close;
        }
        err(out, text);
        Step::Continue
    }

    fn command(&mut self, line: &str, out: &mut Vec<u8>) -> Step {
        let (kw, rest) = match line.split_once(' ') {
            Some((k, r)) => (k, r),
            None => (line, ""),
        };
        let kw = kw.to_ascii_uppercase();
        let args: Vec<&str> = rest.split(' ').filter(|a| !a.is_empty()).collect();
        match (self.state, kw.as_str()) {
            (_, "CAPA") => self.capa(out),
            (_, "QUIT") => self.quit(out),
            (State::Authorization, "STLS") => self.stls(out),
            (State::Authorization, "USER") => self.user_cmd(&args, out),
            (State::Authorization, "PASS") => self.pass(rest, out),
            (State::Authorization, "AUTH") => self.auth(&args, out),
            (State::Authorization, "APOP") => {
                self.error(out, "APOP is not supported; use STLS and USER/PASS")
            }
            (State::Transaction, "STAT") => self.stat(&args, out),
            (State::Transaction, "LIST") => self.list(&args, out),
            (State::Transaction, "UIDL") => self.uidl(&args, out),
            (State::Transaction, "RETR") => self.retr(&args, None, out),
            (State::Transaction, "TOP") => self.top(&args, out),
            (State::Transaction, "DELE") => self.dele(&args, out),
            (State::Transaction, "RSET") => self.rset(&args, out),
            (State::Transaction, "NOOP") => {
                if !args.is_empty() {
                    return self.error(out, "NOOP takes no argument");
                }
                ok(out, "");
                Step::Continue
            }
            (
                State::Authorization,
                "STAT" | "LIST" | "UIDL" | "RETR" | "TOP" | "DELE" | "RSET" | "NOOP",
            ) => self.error(out, "not logged in"),
            (State::Transaction, "STLS" | "USER" | "PASS" | "AUTH" | "APOP") => {
                self.error(out, "already logged in")
            }
            (_, "") => self.error(out, "empty command"),
            _ => self.error(out, &format!("unknown command {:?}", trunc(&kw))),
        }
    }

    fn capa(&mut self, out: &mut Vec<u8>) -> Step {
        ok(out, "capability list follows");
        let mut caps = vec!["TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"];
        if self.state == State::Authorization {
            if !self.tls {
                caps.push("STLS");
            }
            if self.may_login() {
                caps.push("USER");
                caps.push("SASL PLAIN");
            }
        }
        caps.push("IMPLEMENTATION postern");
        for c in caps {
            out.extend_from_slice(c.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
        Step::Continue
    }

    fn stls(&mut self, out: &mut Vec<u8>) -> Step {
        if self.tls {
            return self.error(out, "TLS is already active");
        }
        ok(out, "begin TLS negotiation");
        // Whatever the client pipelined after STLS is plaintext: drop it (see tls_started).
        self.inbuf.clear();
        Step::StartTls
    }

    fn user_cmd(&mut self, args: &[&str], out: &mut Vec<u8>) -> Step {
        if !self.may_login() {
            return self.error(out, "plaintext login refused: use STLS first");
        }
        let [name] = args else {
            return self.error(out, "USER takes one argument (the login name)");
        };
        self.user = Some((*name).to_owned());
        ok(out, "send PASS");
        Step::Continue
    }

    fn pass(&mut self, rest: &str, out: &mut Vec<u8>) -> Step {
        if !self.may_login() {
            return self.error(out, "plaintext login refused: use STLS first");
        }
        let Some(user) = self.user.take() else {
            return self.error(out, "USER first");
        };
        if rest.is_empty() {
            return self.error(out, "PASS takes the password");
        }
        // The password is the rest of the line: spaces are part of it (RFC 1939 §7 allows
        // servers to accept them).
        self.logging_in = true;
        Step::Login(Credentials {
            authzid: String::new(),
            user,
            password: rest.to_owned(),
        })
    }

    fn auth(&mut self, args: &[&str], out: &mut Vec<u8>) -> Step {
        if !self.may_login() {
            return self.error(out, "plaintext login refused: use STLS first");
        }
        self.user = None;
        match args {
            // Not in RFC 5034, but clients (fetchmail among them) probe with a bare AUTH.
            [] => {
                ok(out, "mechanisms follow");
                out.extend_from_slice(b"PLAIN\r\n.\r\n");
                Step::Continue
            }
            [mech] if mech.eq_ignore_ascii_case("PLAIN") => {
                out.extend_from_slice(b"+ \r\n");
                self.sasl_wait = true;
                Step::Continue
            }
            [mech, ir] if mech.eq_ignore_ascii_case("PLAIN") => {
                self.sasl_response(ir.as_bytes(), out)
            }
            [mech, ..] if !mech.eq_ignore_ascii_case("PLAIN") => {
                self.error(out, &format!("unsupported mechanism {:?}", trunc(mech)))
            }
            _ => self.error(out, "AUTH PLAIN takes at most one initial response"),
        }
    }

    fn sasl_response(&mut self, line: &[u8], out: &mut Vec<u8>) -> Step {
        let Ok(line) = std::str::from_utf8(line) else {
            self.error(out, "[AUTH] malformed PLAIN response");
            return if self.closing {
                Step::Close
            } else {
                Step::Malformed
            };
        };
        match decode_response(line).and_then(|raw| parse_plain(&raw)) {
            Ok(creds) => {
                self.logging_in = true;
                Step::Login(creds)
            }
            // RFC 5034 §4: "*" cancels the exchange.
            Err(SaslError::Cancelled) => self.error(out, "authentication cancelled"),
            Err(SaslError::Malformed) => match self.error(out, "[AUTH] malformed PLAIN response") {
                Step::Close => Step::Close,
                _ => Step::Malformed,
            },
        }
    }

    /// The shell's answer to `Step::Login`: the user's maildrop, or why not.
    pub fn login_done(&mut self, result: Result<Box<dyn Maildrop>, LoginError>, out: &mut Vec<u8>) {
        self.logging_in = false;
        let mut md = match result {
            Ok(md) => md,
            Err(LoginError::Invalid) => {
                self.errors += 1;
                err(out, "[AUTH] invalid user name or password");
                return;
            }
            Err(LoginError::NotAuthorized) => {
                self.errors += 1;
                err(out, "[AUTH] cannot act as another user");
                return;
            }
            Err(LoginError::Throttled) => {
                err(out, "[SYS/TEMP] too many failed logins, try again later");
                return;
            }
            Err(LoginError::Unavailable) => {
                err(out, "[SYS/TEMP] cannot open the maildrop, try again later");
                return;
            }
            Err(LoginError::InUse) => {
                err(out, "[IN-USE] the maildrop is open in another session");
                return;
            }
        };
        let msgs = match md.list() {
            Ok(m) => m,
            Err(e) => {
                tracing::error!("pop3: cannot list the maildrop: {e}");
                err(out, "[SYS/TEMP] cannot read the maildrop, try again later");
                return;
            }
        };
        let n = msgs.len();
        let snap = Snapshot {
            uidvalidity: md.uidvalidity(),
            md,
            deleted: vec![false; n],
            retrieved: vec![false; n],
            msgs,
        };
        let (count, size) = snap.stat();
        self.drop = Some(snap);
        self.state = State::Transaction;
        ok(
            out,
            &format!("maildrop has {count} messages ({size} octets)"),
        );
    }

    fn snap(&mut self) -> &mut Snapshot {
        self.drop.as_mut().expect("TRANSACTION has a maildrop")
    }

    fn stat(&mut self, args: &[&str], out: &mut Vec<u8>) -> Step {
        if !args.is_empty() {
            return self.error(out, "STAT takes no argument");
        }
        let (n, s) = self.snap().stat();
        ok(out, &format!("{n} {s}"));
        Step::Continue
    }

    /// A live (not deleted) message from a number argument.
    fn live_msg(&mut self, arg: &str) -> Result<usize, String> {
        let snap = self.snap();
        let i = msg_number(arg, snap.msgs.len())?;
        if snap.deleted[i] {
            return Err(format!("message {} is deleted", i + 1));
        }
        Ok(i)
    }

    fn list(&mut self, args: &[&str], out: &mut Vec<u8>) -> Step {
        self.scan_listing(args, out, |s, i| s.msgs[i].size.to_string(), "LIST")
    }

    fn uidl(&mut self, args: &[&str], out: &mut Vec<u8>) -> Step {
        self.scan_listing(args, out, |s, i| s.uidl(i), "UIDL")
    }

    /// LIST and UIDL: one message, or every live one as a multi-line reply.
    fn scan_listing(
        &mut self,
        args: &[&str],
        out: &mut Vec<u8>,
        value: impl Fn(&Snapshot, usize) -> String,
        name: &str,
    ) -> Step {
        match args {
            [] => {
                let snap = self.snap();
                let (n, s) = snap.stat();
                ok(out, &format!("{n} messages ({s} octets)"));
                for (i, _) in snap.live() {
                    out.extend_from_slice(format!("{} {}\r\n", i + 1, value(snap, i)).as_bytes());
                }
                out.extend_from_slice(b".\r\n");
                Step::Continue
            }
            [arg] => match self.live_msg(arg) {
                Ok(i) => {
                    let v = value(self.snap(), i);
                    ok(out, &format!("{} {v}", i + 1));
                    Step::Continue
                }
                Err(e) => self.error(out, &e),
            },
            _ => self.error(out, &format!("{name} takes at most one message number")),
        }
    }

    fn top(&mut self, args: &[&str], out: &mut Vec<u8>) -> Step {
        let [msg, lines] = args else {
            return self.error(out, "TOP takes a message number and a line count");
        };
        let Ok(n) = lines.parse::<u64>() else {
            return self.error(out, "TOP line count must be a non-negative number");
        };
        self.retr(&[msg], Some(n), out)
    }

    fn retr(&mut self, args: &[&str], top: Option<u64>, out: &mut Vec<u8>) -> Step {
        let [arg] = args else {
            return self.error(out, "RETR takes one message number");
        };
        let i = match self.live_msg(arg) {
            Ok(i) => i,
            Err(e) => return self.error(out, &e),
        };
        let snap = self.snap();
        let Entry { uid, size } = snap.msgs[i];
        match snap.md.open(uid) {
            Ok(reader) => {
                if top.is_none() {
                    snap.retrieved[i] = true;
                    ok(out, &format!("{size} octets"));
                } else {
                    ok(out, "top of message follows");
                }
                self.sending = Some(Sending {
                    reader,
                    canon: Canon::wire(top),
                });
                Step::Continue
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => self.error(
                out,
                &format!("message {} was removed by another session", i + 1),
            ),
            Err(e) => {
                tracing::error!("pop3: cannot open message uid {uid}: {e}");
                err(out, "[SYS/TEMP] cannot read the message");
                Step::Continue
            }
        }
    }

    /// Send the next slice of the message being retrieved; the last one ends with ".CRLF".
    fn send_slice(&mut self, out: &mut Vec<u8>) -> Step {
        let s = self.sending.as_mut().expect("sending");
        let mut buf = vec![0u8; CHUNK];
        let n = loop {
            match s.reader.read(&mut buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // The +OK is out: the only honest end is to close (a client that gets
                    // no terminating dot knows the message is incomplete).
                    tracing::error!("pop3: read error in the middle of a message: {e}");
                    self.sending = None;
                    self.closing = true;
                    return Step::Close;
                }
            }
        };
        if n > 0 {
            s.canon.feed(&buf[..n], out);
        }
        if n == 0 || s.canon.is_done() {
            s.canon.finish(out);
            out.extend_from_slice(b".\r\n");
            self.sending = None;
        }
        Step::Continue
    }

    fn dele(&mut self, args: &[&str], out: &mut Vec<u8>) -> Step {
        let [arg] = args else {
            return self.error(out, "DELE takes one message number");
        };
        match self.live_msg(arg) {
            Ok(i) => {
                self.snap().deleted[i] = true;
                ok(out, &format!("message {} deleted", i + 1));
                Step::Continue
            }
            Err(e) => self.error(out, &e),
        }
    }

    fn rset(&mut self, args: &[&str], out: &mut Vec<u8>) -> Step {
        if !args.is_empty() {
            return self.error(out, "RSET takes no argument");
        }
        let snap = self.snap();
        snap.deleted.iter_mut().for_each(|d| *d = false);
        let (n, s) = snap.stat();
        ok(out, &format!("maildrop has {n} messages ({s} octets)"));
        Step::Continue
    }

    fn quit(&mut self, out: &mut Vec<u8>) -> Step {
        self.state_done();
        let Some(mut snap) = self.drop.take() else {
            ok(out, "postern POP3 signing off");
            return Step::Close;
        };
        // UPDATE (RFC 1939 §6): remove what was marked, durably, before saying +OK.
        let gone: Vec<u32> = snap
            .msgs
            .iter()
            .zip(&snap.deleted)
            .filter(|(_, d)| **d)
            .map(|(e, _)| e.uid)
            .collect();
        let seen: Vec<u32> = snap
            .msgs
            .iter()
            .zip(snap.deleted.iter().zip(&snap.retrieved))
            .filter(|(_, (d, r))| !**d && **r)
            .map(|(e, _)| e.uid)
            .collect();
        if let Err(e) = snap.md.mark_seen(&seen) {
            tracing::warn!("pop3: cannot mark retrieved messages seen: {e}");
        }
        match snap.md.expunge(&gone) {
            Ok(()) => {
                let left = snap.msgs.len() - gone.len();
                ok(
                    out,
                    &format!("postern POP3 signing off ({left} messages left)"),
                );
            }
            Err(e) => {
                tracing::error!("pop3: cannot remove deleted messages: {e}");
                err(out, "[SYS/TEMP] some deleted messages not removed");
            }
        }
        Step::Close
    }

    fn state_done(&mut self) {
        self.state = State::Done;
        self.closing = true;
    }
}
