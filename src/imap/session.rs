//! The IMAP session as a state machine without sockets: bytes go in through `input`, each
//! `step` handles at most one command (or one slice of a long FETCH) and appends the reply
//! bytes to `out`, returning what the connection must do next (read more, start TLS, idle,
//! close). Store calls are blocking; the driver runs `step` on a blocking thread.
//!
//! Commands are framed by imap-codec's Fragmentizer (lines and literals, size-limited), go
//! through `parse::prepare` (the forms that codec version does not parse) and are decoded by
//! its CommandCodec; `command/` runs them, after `command::allowed` checked the state.
//! This file holds the connection state (`State`), the framing and the stepping.
//!
//! A session speaks IMAP4rev1 (RFC 3501) until the client sends ENABLE IMAP4rev2 (RFC 9051)
//! or ENABLE UTF8=ACCEPT (RFC 6855); `rev2` and `utf8` then change the responses as those
//! documents require, and nothing else.

use std::net::IpAddr;
use std::sync::Arc;

use imap_codec::CommandCodec;
use imap_codec::decode::Decoder;
use imap_codec::fragmentizer::FragmentInfo;
use imap_codec::imap_types::core::LiteralMode;

use super::command::fetch::FetchJob;
use super::framer::{Framer, Streamed};
use super::parse::Prepared;
use super::view::{Update, View};
use crate::services::Services;
use crate::store::{Mailbox, MailboxName};

/// A line ending in a literal announcement (`{n}`, `{n+}`, `~{n}`; RFC 3501 §4.3, RFC 7888,
/// RFC 3516) whose length does not fit in 32 bits: the fragmentizer does not take it for one.
fn oversized_announcement(line: &[u8]) -> Option<LiteralMode> {
    let line = line
        .strip_suffix(b"\r\n")
        .or_else(|| line.strip_suffix(b"\n"))?;
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    let num = &inner[open + 1..];
    let (digits, mode) = match num.strip_suffix(b"+") {
        Some(d) => (d, LiteralMode::NonSync),
        None => (num, LiteralMode::Sync),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let fits = std::str::from_utf8(digits)
        .ok()
        .and_then(|d| d.parse::<u32>().ok())
        .is_some();
    (!fits).then_some(mode)
}

/// The largest literal accepted before authentication.
const PREAUTH_MAX_LITERAL: u64 = 8 * 1024;

/// What the connection does after a step.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// More work is ready: write `out` and call `step` again.
    Continue,
    /// Write `out`, then wait for input.
    NeedInput,
    /// Write `out`, then run the TLS handshake and call `tls_started`.
    StartTls,
    /// Write `out`, then wait for input or mailbox changes (`idle_sync`).
    Idle,
    /// Write `out` (uncompressed), then deflate both directions (COMPRESS, RFC 4978).
    Compress,
    /// Write `out` and close.
    Close,
}

pub struct Selected {
    pub mb: Arc<Mailbox>,
    pub name: MailboxName,
    pub view: View,
    pub ro: bool,
    /// How many of the mailbox's keywords this client has been told of with FLAGS.
    pub keywords_shown: usize,
}

impl Selected {
    /// The mailbox's keywords for rendering flags, after announcing any this client has not
    /// seen with untagged FLAGS and PERMANENTFLAGS: RFC 3501 §7.2.6 / RFC 9051 §7.3.5 want
    /// a client to learn of a keyword before a FETCH shows it, whoever created it. Render
    /// with the returned list only, so a keyword created meanwhile stays unshown until the
    /// next announcement.
    pub fn announce_keywords(&mut self, out: &mut Vec<u8>) -> Vec<String> {
        let kws = self.mb.lock().keywords.clone();
        if kws.len() > self.keywords_shown {
            let (flags, perm) = flags_lines(&kws, self.ro);
            out.extend_from_slice(flags.as_bytes());
            out.extend_from_slice(perm.as_bytes());
            self.keywords_shown = kws.len();
        }
        kws
    }
}

/// The untagged FLAGS line and the PERMANENTFLAGS OK line for a mailbox's keywords.
pub fn flags_lines(kws: &[String], ro: bool) -> (String, String) {
    let kw: String = kws
        .iter()
        .filter(|k| !k.is_empty() && !crate::spam::events::is_training_keyword(k))
        .map(|k| format!(" {k}"))
        .collect();
    let flags = format!(
        "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded $Junk $NotJunk{kw})\r\n"
    );
    let perm = if ro {
        "* OK [PERMANENTFLAGS ()] read-only\r\n".to_string()
    } else {
        format!(
            "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded $Junk $NotJunk{kw} \\*)] flags permitted\r\n"
        )
    };
    (flags, perm)
}

/// The connection states of RFC 3501 §3 (RFC 9051 §3). Logout is not a state here: the
/// session returns `Step::Close`. Which command each state allows is `command::allowed`.
pub enum State {
    NotAuthenticated,
    Authenticated { user: String },
    Selected { user: String, sel: Box<Selected> },
}

impl State {
    pub fn is_authenticated(&self) -> bool {
        !matches!(self, State::NotAuthenticated)
    }

    /// The logged-in account ("" before login).
    pub fn user(&self) -> &str {
        match self {
            State::NotAuthenticated => "",
            State::Authenticated { user } | State::Selected { user, .. } => user,
        }
    }

    pub fn selected(&self) -> Option<&Selected> {
        match self {
            State::Selected { sel, .. } => Some(sel),
            _ => None,
        }
    }

    pub fn selected_mut(&mut self) -> Option<&mut Selected> {
        match self {
            State::Selected { sel, .. } => Some(sel),
            _ => None,
        }
    }

    /// Back to the authenticated state; returns what was selected.
    pub fn deselect(&mut self) -> Option<Selected> {
        match std::mem::replace(self, State::NotAuthenticated) {
            State::Selected { user, sel } => {
                *self = State::Authenticated { user };
                Some(*sel)
            }
            other => {
                *self = other;
                None
            }
        }
    }

    /// Enter the selected state (from authenticated or selected).
    pub fn select(&mut self, sel: Selected) {
        self.deselect();
        if let State::Authenticated { user } = std::mem::replace(self, State::NotAuthenticated) {
            *self = State::Selected {
                user,
                sel: Box::new(sel),
            };
        }
    }
}

pub(crate) enum Pending {
    None,
    Auth(String),
    Idle(String),
    Fetch(Box<FetchJob>),
}

pub struct Session {
    pub svc: Arc<Services>,
    pub peer: IpAddr,
    pub tls: bool,
    frag: Framer,
    /// The message of the APPEND being handled when its literal was streamed to the spool
    /// (`framer.rs`); taken by `append`, dropped (file removed) after the command.
    pub(crate) append_body: Option<std::io::Result<crate::spool::SpooledMessage>>,
    pub state: State,
    pub(crate) pending: Pending,
    max_literal: u64,
    pub(crate) allow_plain: bool,
    pub(crate) logged_out: bool,
    /// ENABLE IMAP4rev2 (RFC 9051): no \Recent, SEARCH answered as ESEARCH, UTF-8 names,
    /// LIST in SELECT, OLDNAME after RENAME.
    pub rev2: bool,
    /// ENABLE UTF8=ACCEPT (RFC 6855).
    pub utf8: bool,
    /// The session said BYE (selected mailbox gone) and the connection must close.
    pub(crate) closing: bool,
    /// UIDs saved by SEARCH RETURN (SAVE), ascending (SEARCHRES, RFC 5182).
    pub(crate) saved: Vec<u32>,
    /// CONDSTORE/QRESYNC state (`condstore.rs`).
    pub modes: super::condstore::Modes,
    /// COMPRESS=DEFLATE is active (RFC 4978).
    pub compressed: bool,
}

pub(crate) fn cmd_ok(out: &mut Vec<u8>, tag: &str, text: &str) {
    out.extend_from_slice(format!("{tag} OK {text}\r\n").as_bytes());
}
// Refusals are logged (debug) so a client that "works" while being answered NO/BAD shows up
// in the server log (the client tests in tests/ check for them).
pub(crate) fn cmd_no(out: &mut Vec<u8>, tag: &str, text: &str) {
    tracing::debug!("imap reply: {tag} NO {text}");
    out.extend_from_slice(format!("{tag} NO {text}\r\n").as_bytes());
}
pub(crate) fn cmd_bad(out: &mut Vec<u8>, tag: &str, text: &str) {
    tracing::debug!("imap reply: {tag} BAD {text}");
    out.extend_from_slice(format!("{tag} BAD {text}\r\n").as_bytes());
}

impl Session {
    pub fn new(svc: Arc<Services>, peer: IpAddr, tls: bool) -> Session {
        let limits = &svc.config.limits;
        let max_literal = limits.imap_max_literal;
        let frame = (max_literal + 64 * 1024).min(u32::MAX as u64) as u32;
        let allow_plain = svc.config.imap.allow_plaintext_auth;
        Session {
            svc,
            peer,
            tls,
            frag: Framer::new(frame),
            append_body: None,
            state: State::NotAuthenticated,
            pending: Pending::None,
            max_literal,
            allow_plain,
            logged_out: false,
            rev2: false,
            utf8: false,
            closing: false,
            saved: Vec::new(),
            modes: Default::default(),
            compressed: false,
        }
    }

    pub(crate) fn may_login(&self) -> bool {
        self.tls || self.allow_plain
    }

    pub fn capabilities(&self) -> String {
        let mut c = String::from(
            "IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID ENABLE IDLE NAMESPACE UNSELECT CHILDREN UIDPLUS MOVE SPECIAL-USE LIST-EXTENDED LIST-STATUS ESEARCH SEARCHRES BINARY UTF8=ACCEPT WITHIN",
        );
        c.push_str(" CONDSTORE QRESYNC");
        if self.state.is_authenticated() {
            // RFC 9208 §3.1: one resource, STORAGE.
            c.push_str(" QUOTA QUOTA=RES-STORAGE UNAUTHENTICATE");
        }
        if self.state.is_authenticated() && !self.compressed {
            c.push_str(" COMPRESS=DEFLATE");
        }
        if !self.state.is_authenticated() {
            if !self.tls {
                c.push_str(" STARTTLS");
            }
            if self.may_login() {
                c.push_str(" AUTH=PLAIN");
            } else {
                c.push_str(" LOGINDISABLED");
            }
        }
        c
    }

    pub fn greeting(&self) -> Vec<u8> {
        format!(
            "* OK [CAPABILITY {}] postern IMAP ready\r\n",
            self.capabilities()
        )
        .into_bytes()
    }

    pub fn input(&mut self, bytes: &[u8]) {
        self.frag.input(bytes);
    }

    /// Once COMPRESS is answered: the bytes the client pipelined behind the command, which
    /// are already deflated (RFC 4978 §3). The listener inflates them and gives them back
    /// through `input`.
    pub fn take_unread(&mut self) -> Vec<u8> {
        self.frag.take_unread()
    }

    /// After the TLS handshake: forget anything sent in plaintext after STARTTLS (an
    /// injection attack, RFC 3501 §11.1 / CVE-2011-0411) and speak again.
    pub fn tls_started(&mut self) {
        self.tls = true;
        self.frag.reset();
        self.append_body = None;
    }

    /// The selected mailbox's change signal, and the mailbox, while idling.
    pub fn idle_watch(
        &self,
    ) -> Option<(
        tokio::sync::watch::Receiver<u64>,
        std::sync::Arc<crate::store::Mailbox>,
    )> {
        self.state
            .selected()
            .map(|s| (s.mb.subscribe(), s.mb.clone()))
    }

    pub fn is_idle(&self) -> bool {
        matches!(self.pending, Pending::Idle(_))
    }

    pub fn is_authenticated(&self) -> bool {
        self.state.is_authenticated()
    }

    /// Mailbox names in UTF-8 both ways (RFC 9051 §5.1, RFC 6855 §3)?
    pub fn utf8_names(&self) -> bool {
        self.rev2 || self.utf8
    }

    /// Has the session said BYE, so the connection must close?
    pub fn is_closing(&self) -> bool {
        self.closing
    }

    /// While idling: report what changed.
    pub fn idle_sync(&mut self, out: &mut Vec<u8>) {
        if self.selected_gone(out) {
            return;
        }
        self.sync(out, true);
    }

    /// The selected mailbox was renamed or deleted by another session: say BYE, as Dovecot
    /// does ("Selected mailbox was deleted, have to disconnect"), rather than answer for a
    /// mailbox that no longer exists under its name.
    fn selected_gone(&mut self, out: &mut Vec<u8>) -> bool {
        let gone = self
            .state
            .selected()
            .is_some_and(|s| !s.mb.dir.join("cur").is_dir());
        if gone {
            out.extend_from_slice(
                b"* BYE [NONEXISTENT] selected mailbox was renamed or deleted, have to disconnect\r\n",
            );
            self.closing = true;
        }
        gone
    }

    pub fn step(&mut self, out: &mut Vec<u8>) -> Step {
        if let Pending::Fetch(_) = self.pending {
            let Pending::Fetch(mut job) = std::mem::replace(&mut self.pending, Pending::None)
            else {
                unreachable!()
            };
            let done = job.run(self, out);
            if done {
                self.after_fetch(&job, out);
            } else {
                self.pending = Pending::Fetch(job);
            }
            return Step::Continue;
        }
        loop {
            match self.frag.pump() {
                Some(Streamed::NeedInput) => return Step::NeedInput,
                Some(Streamed::Done(body)) => {
                    self.append_body = Some(body);
                    continue;
                }
                None => {}
            }
            let Some(fi) = self.frag.progress() else {
                self.frag.shrink();
                return if self.is_idle() {
                    Step::Idle
                } else {
                    Step::NeedInput
                };
            };
            if let FragmentInfo::Line {
                announcement: Some(a),
                ..
            } = fi
            {
                // Before login no command needs more than a user name or password in a
                // literal: a large one (an APPEND that would be refused anyway) is not read.
                let limit = if self.state.is_authenticated() {
                    self.max_literal
                } else {
                    PREAUTH_MAX_LITERAL
                };
                if a.length as u64 > limit {
                    let tag = self
                        .frag
                        .decode_tag()
                        .map(|t| t.as_ref().to_string())
                        .unwrap_or_else(|| "*".into());
                    if a.mode == LiteralMode::NonSync {
                        out.extend_from_slice(b"* BYE [TOOBIG] literal too large\r\n");
                        return Step::Close;
                    }
                    cmd_no(out, &tag, "[TOOBIG] literal too large");
                    self.frag.skip_message();
                    return Step::Continue;
                }
                // Replayed after a streamed literal: the client sent these long ago.
                if self.frag.replaying() {
                    continue;
                }
                // A large APPEND message goes to the spool, not into memory.
                if self.frag.should_stream(a.length) && !matches!(self.pending, Pending::Auth(_)) {
                    self.frag.take_over(a.length, &self.svc.spool);
                }
                if a.mode == LiteralMode::Sync && !matches!(self.pending, Pending::Auth(_)) {
                    out.extend_from_slice(b"+ Ready for literal data\r\n");
                    return Step::Continue;
                }
                continue;
            }
            // A literal announcement too large for the fragmentizer's u32 ends the line as if
            // it were none; its data must not be read as commands.
            if let FragmentInfo::Line {
                announcement: None, ..
            } = fi
                && let Some(mode) = oversized_announcement(self.frag.fragment_bytes(fi))
            {
                let tag = self
                    .frag
                    .decode_tag()
                    .map(|t| t.as_ref().to_string())
                    .unwrap_or_else(|| "*".into());
                if mode == LiteralMode::NonSync {
                    out.extend_from_slice(b"* BYE [TOOBIG] literal too large\r\n");
                    return Step::Close;
                }
                cmd_no(out, &tag, "[TOOBIG] literal too large");
                return Step::Continue;
            }
            if !self.frag.is_message_complete() {
                continue;
            }
            if self.frag.is_max_message_size_exceeded() {
                let tag = self
                    .frag
                    .decode_tag()
                    .map(|t| t.as_ref().to_string())
                    .unwrap_or_else(|| "*".into());
                cmd_bad(out, &tag, "command line too long");
                return Step::Continue;
            }
            let msg = self.frag.message_bytes().to_vec();
            let step = self.handle(&msg, out);
            self.append_body = None;
            return step;
        }
    }

    fn handle(&mut self, msg: &[u8], out: &mut Vec<u8>) -> Step {
        if self.selected_gone(out) {
            return Step::Close;
        }
        match std::mem::replace(&mut self.pending, Pending::None) {
            Pending::Auth(tag) => return self.auth_response(&tag, msg, out),
            Pending::Idle(tag) => {
                self.idle_done(&tag, msg, out);
                return Step::Continue;
            }
            _ => {}
        }
        let view = self.state.selected().map(|s| &s.view.uids[..]);
        let (tag, prepared) = super::parse::prepare(msg, &self.saved, view);
        match prepared {
            Prepared::Decode(m) => self.decode_and_run(&tag, &m, out),
            Prepared::Compress(alg) => self.compress(&tag, alg.as_deref(), out),
            Prepared::Unauthenticate(args_ok) => {
                self.unauthenticate(&tag, args_ok, out);
                Step::Continue
            }
            Prepared::Bad(e) => {
                cmd_bad(out, &tag, e);
                Step::Continue
            }
            Prepared::NoMessages(name) => {
                cmd_ok(out, &tag, &format!("{name} completed (no messages)"));
                Step::Continue
            }
            Prepared::List(args) => {
                match (super::command::allowed(&self.state, "LIST"), args) {
                    (Err(why), _) => cmd_bad(out, &tag, why),
                    (Ok(()), None) => cmd_bad(out, &tag, "LIST syntax"),
                    (Ok(()), Some(args)) => self.list(&tag, args, out),
                }
                Step::Continue
            }
            Prepared::ESearch(split) => {
                if let Err(why) = super::command::allowed(&self.state, "SEARCH") {
                    cmd_bad(out, &tag, why);
                    return Step::Continue;
                }
                let (rest, opts) = match split {
                    Ok(s) => s,
                    Err(e) => {
                        cmd_bad(out, &tag, e);
                        return Step::Continue;
                    }
                };
                match CommandCodec::default().decode(&rest) {
                    Ok((_, cmd)) => self.command(cmd, out, Some(opts)),
                    Err(_) => {
                        if opts.iter().any(|o| o == "SAVE") {
                            // RFC 5182 §2.1: a failed SEARCH SAVE empties the result.
                            self.saved.clear();
                        }
                        cmd_bad(out, &tag, "syntax error in SEARCH");
                        Step::Continue
                    }
                }
            }
        }
    }

    fn decode_and_run(&mut self, tag: &str, msg: &[u8], out: &mut Vec<u8>) -> Step {
        let cmd = match CommandCodec::default().decode(msg) {
            Ok((_, cmd)) => cmd,
            Err(_) => {
                cmd_bad(out, tag, "syntax error in command");
                return Step::Continue;
            }
        };
        self.command(cmd, out, None)
    }

    // ----- selected state ----------------------------------------------------------------

    /// Bring the view up to date and report it (untagged EXISTS/RECENT/EXPUNGE/FETCH).
    pub fn sync(&mut self, out: &mut Vec<u8>, expunges: bool) {
        let rev2 = self.rev2;
        let Some(sel) = self.state.selected_mut() else {
            return;
        };
        let mut updates = match sel.view.sync(&sel.mb, expunges, !sel.ro) {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!("imap sync of {} failed: {e}", sel.mb.dir.display());
                return;
            }
        };
        if rev2 {
            // RFC 9051 has no \Recent flag and no RECENT response.
            sel.view.recent.clear();
            updates.retain(|u| !matches!(u, Update::Recent(_)));
        }
        let kws = sel.announce_keywords(out);
        if let Some(sel) = self.state.selected() {
            out.extend_from_slice(&self.render_updates(updates, &sel.view, &kws));
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
