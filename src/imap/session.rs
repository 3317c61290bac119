//! The IMAP session as a state machine without sockets: bytes go in through `input`, each
//! `step` handles at most one command (or one slice of a long FETCH) and appends the reply
//! bytes to `out`, returning what the connection must do next (read more, start TLS, idle,
//! close). Store calls are blocking; the driver runs `step` on a blocking thread.
//!
//! Commands are framed by imap-codec's Fragmentizer (lines and literals, size-limited) and
//! decoded by its CommandCodec; LIST-EXTENDED and SEARCH RETURN, which that codec version
//! does not parse, are handled in `list.rs` / here with a small tokenizer, which also rewrites
//! SEARCH OLDER/YOUNGER (`search.rs`), `$` (`searchres.rs`) and APPEND UTF8 (`wire.rs`) into
//! forms the codec parses.
//!
//! A session speaks IMAP4rev1 (RFC 3501) until the client sends ENABLE IMAP4rev2 (RFC 9051)
//! or ENABLE UTF8=ACCEPT (RFC 6855); `rev2` and `utf8` then change the responses as those
//! documents require, and nothing else.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use imap_codec::CommandCodec;
use imap_codec::decode::Decoder;
use imap_codec::fragmentizer::{FragmentInfo, Fragmentizer};
use imap_codec::imap_types::auth::AuthMechanism;
use imap_codec::imap_types::command::{Command, CommandBody, SelectParameter, StoreModifier};
use imap_codec::imap_types::core::LiteralMode;
use imap_codec::imap_types::flag::{Flag, StoreResponse, StoreType};
use imap_codec::imap_types::mailbox::Mailbox as WireMailbox;
use imap_codec::imap_types::search::SearchKey;
use imap_codec::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};
use imap_codec::imap_types::status::StatusDataItemName;

use super::fetch::{FetchJob, parse_items};
use super::wire::{self, Tok};
use crate::accounts::Refusal;
use crate::accounts::sasl::{self, Credentials, SaslError};
use crate::logsafe::Untrusted;
use crate::services::Services;
use crate::store::flags::{self, Flags};
use crate::store::folders::FolderError;
use crate::store::{Mailbox, MailboxName, Update, View};

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
    /// Write `out` and close.
    Close,
}

/// How a STORE was asked for.
struct StoreArgs {
    kind: StoreType,
    response: StoreResponse,
    uid: bool,
    /// UNCHANGEDSINCE (RFC 7162 §3.1.3).
    unchanged: Option<u64>,
}

pub struct Selected {
    pub mb: Arc<Mailbox>,
    pub name: MailboxName,
    pub view: View,
    pub ro: bool,
}

enum Pending {
    None,
    Auth(String),
    Idle(String),
    Fetch(Box<FetchJob>),
}

pub struct Session {
    pub svc: Arc<Services>,
    pub peer: IpAddr,
    pub tls: bool,
    frag: Fragmentizer,
    pub user: Option<String>,
    pub selected: Option<Selected>,
    pending: Pending,
    max_literal: u64,
    allow_plain: bool,
    logged_out: bool,
    /// ENABLE IMAP4rev2 (RFC 9051): no \Recent, SEARCH answered as ESEARCH, UTF-8 names,
    /// LIST in SELECT, OLDNAME after RENAME.
    pub rev2: bool,
    /// ENABLE UTF8=ACCEPT (RFC 6855).
    pub utf8: bool,
    /// The session said BYE (selected mailbox gone) and the connection must close.
    closing: bool,
    /// UIDs saved by SEARCH RETURN (SAVE), ascending (SEARCHRES, RFC 5182).
    saved: Vec<u32>,
    /// CONDSTORE/QRESYNC state (`condstore.rs`).
    pub modes: super::condstore::Modes,
}

fn cmd_ok(out: &mut Vec<u8>, tag: &str, text: &str) {
    out.extend_from_slice(format!("{tag} OK {text}\r\n").as_bytes());
}
// Refusals are logged (debug) so a client that "works" while being answered NO/BAD shows up
// in the server log (the client tests in tests/ check for them).
pub(super) fn cmd_no(out: &mut Vec<u8>, tag: &str, text: &str) {
    tracing::debug!("imap reply: {tag} NO {text}");
    out.extend_from_slice(format!("{tag} NO {text}\r\n").as_bytes());
}
pub(super) fn cmd_bad(out: &mut Vec<u8>, tag: &str, text: &str) {
    tracing::debug!("imap reply: {tag} BAD {text}");
    out.extend_from_slice(format!("{tag} BAD {text}\r\n").as_bytes());
}

/// Compress sorted numbers into an IMAP set ("1:3,7").
pub fn uid_set(nums: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < nums.len() {
        let start = nums[i];
        let mut end = start;
        while i + 1 < nums.len() && Some(nums[i + 1]) == end.checked_add(1) {
            i += 1;
            end = nums[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

pub fn flag_list(f: Flags, keywords: &[String], recent: bool) -> String {
    let mut v: Vec<String> = flags::system_names(f.system).map(String::from).collect();
    for (i, k) in keywords.iter().enumerate() {
        if f.keywords & (1 << i) != 0 && !k.is_empty() {
            v.push(k.clone());
        }
    }
    if recent {
        v.push("\\Recent".into());
    }
    format!("({})", v.join(" "))
}

fn mailbox_name(m: &WireMailbox<'_>) -> Result<MailboxName, String> {
    match m {
        WireMailbox::Inbox => Ok(MailboxName::Inbox),
        WireMailbox::Other(o) => {
            MailboxName::from_wire(o.inner().as_ref()).map_err(|e| format!("[CANNOT] {e}"))
        }
    }
}

/// Split flags into system bits and keyword names; None if a flag may not be stored.
fn split_flags(fl: &[Flag<'_>]) -> Option<(u8, Vec<String>)> {
    let mut sys = 0;
    let mut kws = Vec::new();
    for f in fl {
        match f {
            Flag::Seen => sys |= flags::SEEN,
            Flag::Answered => sys |= flags::ANSWERED,
            Flag::Flagged => sys |= flags::FLAGGED,
            Flag::Deleted => sys |= flags::DELETED,
            Flag::Draft => sys |= flags::DRAFT,
            Flag::Keyword(k) => match flags::system_flag(k.as_ref()) {
                Some(b) => sys |= b,
                None => kws.push(k.as_ref().to_string()),
            },
            // \Recent and unknown system flags cannot be set by clients (RFC 3501 §2.3.2).
            Flag::Extension(_) => return None,
        }
    }
    Some((sys, kws))
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
            frag: Fragmentizer::new(frame),
            user: None,
            selected: None,
            pending: Pending::None,
            max_literal,
            allow_plain,
            logged_out: false,
            rev2: false,
            utf8: false,
            closing: false,
            saved: Vec::new(),
            modes: Default::default(),
        }
    }

    fn may_login(&self) -> bool {
        self.tls || self.allow_plain
    }

    pub fn capabilities(&self) -> String {
        let mut c = String::from(
            "IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID ENABLE IDLE NAMESPACE UNSELECT CHILDREN UIDPLUS MOVE SPECIAL-USE LIST-EXTENDED LIST-STATUS ESEARCH SEARCHRES BINARY UTF8=ACCEPT WITHIN",
        );
        c.push_str(" CONDSTORE QRESYNC");
        if self.user.is_none() {
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
        self.frag.enqueue_bytes(bytes);
    }

    /// After the TLS handshake: forget anything sent in plaintext after STARTTLS (an
    /// injection attack, RFC 3501 §11.1 / CVE-2011-0411) and speak again.
    pub fn tls_started(&mut self) {
        self.tls = true;
        let frame = (self.max_literal + 64 * 1024).min(u32::MAX as u64) as u32;
        self.frag = Fragmentizer::new(frame);
    }

    /// The selected mailbox's change signal, while idling.
    pub fn idle_watch(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.selected.as_ref().map(|s| s.mb.subscribe())
    }

    pub fn is_idle(&self) -> bool {
        matches!(self.pending, Pending::Idle(_))
    }

    pub fn is_authenticated(&self) -> bool {
        self.user.is_some()
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
            .selected
            .as_ref()
            .is_some_and(|s| !s.mb.dir.join("cur").is_dir());
        if gone {
            out.extend_from_slice(
                b"* BYE [NONEXISTENT] selected mailbox was renamed or deleted, have to disconnect\r\n",
            );
            self.closing = true;
        }
        gone
    }

    /// A mailbox name from a command, read as UTF-8 once the client enabled UTF-8 names.
    fn name_of(&self, m: &WireMailbox<'_>) -> Result<MailboxName, String> {
        match m {
            WireMailbox::Other(o) if self.utf8_names() => {
                MailboxName::from_utf8_wire(o.inner().as_ref()).map_err(|e| format!("[CANNOT] {e}"))
            }
            _ => mailbox_name(m),
        }
    }

    /// ENABLE (RFC 5161, RFC 9051 §6.3.1): turn on what we know; the ENABLED response lists
    /// only what this command turned on.
    fn enable(&mut self, caps: &[String], after: &mut Vec<u8>) -> Vec<&'static str> {
        let mut on = Vec::new();
        for c in caps {
            if c.eq_ignore_ascii_case("IMAP4rev2") && !self.rev2 {
                self.rev2 = true;
                if let Some(sel) = self.selected.as_mut() {
                    sel.view.recent.clear();
                }
                on.push("IMAP4rev2");
            } else if c.eq_ignore_ascii_case("UTF8=ACCEPT") && !self.utf8 {
                self.utf8 = true;
                on.push("UTF8=ACCEPT");
            } else if let Some(n) = self.enable_ext(c, after) {
                on.push(n);
            }
        }
        on
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
            let Some(fi) = self.frag.progress() else {
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
                if a.length as u64 > self.max_literal {
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
                if a.mode == LiteralMode::Sync && !matches!(self.pending, Pending::Auth(_)) {
                    out.extend_from_slice(b"+ Ready for literal data\r\n");
                    return Step::Continue;
                }
                continue;
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
            return self.handle(&msg, out);
        }
    }

    fn handle(&mut self, msg: &[u8], out: &mut Vec<u8>) -> Step {
        if self.selected_gone(out) {
            return Step::Close;
        }
        match std::mem::replace(&mut self.pending, Pending::None) {
            Pending::Auth(tag) => return self.auth_response(&tag, msg, out),
            Pending::Idle(tag) => {
                if msg.trim_ascii().eq_ignore_ascii_case(b"DONE") {
                    self.sync(out, true);
                    cmd_ok(out, &tag, "IDLE terminated");
                } else {
                    cmd_bad(out, &tag, "expected DONE");
                }
                return Step::Continue;
            }
            _ => {}
        }
        let mut toks = wire::tokenize(msg);
        // SEARCH OLDER/YOUNGER (RFC 5032): rewritten once, before anything else looks at it.
        let rewritten;
        let mut msg = msg;
        if let Some(t) = &toks {
            let at = if t.get(1).is_some_and(|w| wire::is_atom(&w.0, "UID")) {
                2
            } else {
                1
            };
            if t.get(at).is_some_and(|w| wire::is_atom(&w.0, "SEARCH")) {
                let start = super::search::search_keys_start(t, at);
                match super::search::rewrite_within(msg, t, start) {
                    Ok(None) => {}
                    Ok(Some(m)) => {
                        rewritten = m;
                        msg = &rewritten;
                        toks = wire::tokenize(msg);
                    }
                    Err(e) => {
                        let tag = wire::tag_of(msg);
                        cmd_bad(out, &tag, e);
                        return Step::Continue;
                    }
                }
            }
        }
        // SEARCHRES `$` (RFC 5182).
        let rewritten_dollar;
        if let Some(t) = &toks
            && let Some(sel) = &self.selected
            && msg.contains(&b'$')
        {
            match super::searchres::rewrite(msg, t, &self.saved, &sel.view.uids) {
                super::searchres::Rewrite::None => {}
                super::searchres::Rewrite::Cmd(m) => {
                    rewritten_dollar = m;
                    msg = &rewritten_dollar;
                    toks = wire::tokenize(msg);
                }
                super::searchres::Rewrite::Empty(name) => {
                    cmd_ok(
                        out,
                        &wire::tag_of(msg),
                        &format!("{name} completed (no messages)"),
                    );
                    return Step::Continue;
                }
            }
        }
        let tag = wire::tag_of(msg);
        // Forms imap-codec does not parse.
        if let Some(t) = &toks {
            let word = |i: usize| t.get(i).map(|x| &x.0);
            if word(1).is_some_and(|w| wire::is_atom(w, "LIST")) {
                if self.user.is_none() {
                    cmd_bad(out, &tag, "log in first");
                    return Step::Continue;
                }
                super::list::list(self, &tag, &t[2..], out);
                return Step::Continue;
            }
            let (uid, at) = if word(1).is_some_and(|w| wire::is_atom(w, "UID")) {
                (true, 2)
            } else {
                (false, 1)
            };
            if word(1).is_some_and(|w| wire::is_atom(w, "APPEND"))
                && let Some(m) = wire::utf8_append(msg, t)
            {
                return self.decode_and_run(&tag, &m, out);
            }
            if word(at).is_some_and(|w| wire::is_atom(w, "SEARCH"))
                && word(at + 1).is_some_and(|w| wire::is_atom(w, "RETURN"))
            {
                return self.esearch(&tag, msg, t, at, uid, out);
            }
        }
        self.decode_and_run(&tag, msg, out)
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

    fn command(
        &mut self,
        cmd: Command<'_>,
        out: &mut Vec<u8>,
        esearch: Option<Vec<String>>,
    ) -> Step {
        let tag = cmd.tag.as_ref().to_string();
        let authed = self.user.is_some();
        let selected = self.selected.is_some();
        use CommandBody as C;
        match cmd.body {
            C::Capability => {
                out.extend_from_slice(
                    format!("* CAPABILITY {}\r\n", self.capabilities()).as_bytes(),
                );
                cmd_ok(out, &tag, "CAPABILITY completed");
            }
            C::Noop => {
                self.sync(out, true);
                cmd_ok(out, &tag, "NOOP completed");
            }
            C::Logout => {
                tracing::info!(peer = %self.peer, user = %self.user(), "imap logout");
                out.extend_from_slice(b"* BYE postern logging out\r\n");
                cmd_ok(out, &tag, "LOGOUT completed");
                self.logged_out = true;
                return Step::Close;
            }
            C::Id { .. } => {
                out.extend_from_slice(b"* ID (\"name\" \"postern\" \"vendor\" \"postern\")\r\n");
                cmd_ok(out, &tag, "ID completed");
            }
            C::StartTLS => {
                if self.tls || authed {
                    cmd_bad(out, &tag, "TLS is already active or not allowed now");
                } else {
                    cmd_ok(out, &tag, "Begin TLS negotiation now");
                    return Step::StartTls;
                }
            }
            C::Login { username, password } if !authed => {
                if !self.may_login() {
                    cmd_no(
                        out,
                        &tag,
                        "[PRIVACYREQUIRED] LOGIN is disabled until STARTTLS",
                    );
                } else {
                    // Strict UTF-8 as in SASL; U+FFFD from a bad name is refused by the login.
                    let user = String::from_utf8_lossy(username.as_ref()).into_owned();
                    match std::str::from_utf8(password.declassify().as_ref()) {
                        Ok(p) => {
                            let c = Credentials {
                                authzid: String::new(),
                                user,
                                password: p.to_owned(),
                            };
                            self.login(&tag, &c, out);
                        }
                        Err(_) => {
                            self.svc.logins.malformed("imap", self.peer, &user);
                            cmd_no(out, &tag, "[AUTHENTICATIONFAILED] invalid credentials");
                        }
                    }
                }
            }
            C::Authenticate {
                mechanism,
                initial_response,
            } if !authed => {
                if !matches!(mechanism, AuthMechanism::Plain) {
                    cmd_no(out, &tag, "[CANNOT] unsupported mechanism (use PLAIN)");
                } else if !self.may_login() {
                    cmd_no(
                        out,
                        &tag,
                        "[PRIVACYREQUIRED] authentication is disabled until STARTTLS",
                    );
                } else if let Some(ir) = initial_response {
                    let data = ir.declassify().to_vec();
                    self.auth_plain(&tag, &data, out);
                } else {
                    out.extend_from_slice(b"+ \r\n");
                    self.pending = Pending::Auth(tag);
                }
            }
            C::Login { .. } | C::Authenticate { .. } => cmd_bad(out, &tag, "already authenticated"),
            _ if !authed => cmd_bad(out, &tag, "log in first"),
            C::Enable { capabilities } => {
                let caps: Vec<String> = capabilities
                    .as_ref()
                    .iter()
                    .map(|c| c.to_string())
                    .collect();
                // CONDSTORE may announce HIGHESTMODSEQ; that goes after the ENABLED line.
                let mut after = Vec::new();
                let on = self.enable(&caps, &mut after);
                let mut line = String::from("* ENABLED");
                for c in on {
                    line.push(' ');
                    line.push_str(c);
                }
                out.extend_from_slice(format!("{line}\r\n").as_bytes());
                out.extend_from_slice(&after);
                cmd_ok(out, &tag, "ENABLE completed");
            }
            C::Namespace => {
                out.extend_from_slice(b"* NAMESPACE ((\"\" \".\")) NIL NIL\r\n");
                cmd_ok(out, &tag, "NAMESPACE completed");
            }
            C::Select {
                mailbox,
                parameters,
            } => self.select(&tag, &mailbox, false, &parameters, out),
            C::Examine {
                mailbox,
                parameters,
            } => self.select(&tag, &mailbox, true, &parameters, out),
            C::Create { mailbox } => self.create(&tag, &mailbox, out),
            C::Delete { mailbox } => self.delete(&tag, &mailbox, out),
            C::Rename { from, to } => self.rename(&tag, &from, &to, out),
            C::Subscribe { mailbox } => self.subscribe(&tag, &mailbox, true, out),
            C::Unsubscribe { mailbox } => self.subscribe(&tag, &mailbox, false, out),
            C::Lsub {
                reference,
                mailbox_wildcard,
            } => super::list::lsub(self, &tag, &reference, &mailbox_wildcard, out),
            C::List { .. } => cmd_bad(out, &tag, "LIST syntax"),
            C::Status {
                mailbox,
                item_names,
            } => self.status(&tag, &mailbox, &item_names, out),
            C::Append {
                mailbox,
                flags,
                date,
                message,
            } => {
                let data: &[u8] = match &message {
                    imap_codec::imap_types::extensions::binary::LiteralOrLiteral8::Literal(l) => {
                        l.data()
                    }
                    imap_codec::imap_types::extensions::binary::LiteralOrLiteral8::Literal8(l) => {
                        &l.data
                    }
                };
                let date = date.map(|d| SystemTime::from(*d.as_ref()));
                self.append(&tag, &mailbox, &flags, date, data, out);
            }
            // IDLE is valid in the authenticated state too (RFC 9051 §6.3.13).
            C::Idle => {
                // Continuation first, then what is pending (RFC 2177 §3 example): clients
                // such as async-imap (Delta Chat) set untagged data received before the "+"
                // aside and would sit in IDLE without fetching mail that arrived earlier.
                out.extend_from_slice(b"+ idling\r\n");
                self.sync(out, true);
                self.pending = Pending::Idle(tag);
                // Continue, not Idle: a pipelined DONE may already be buffered.
            }
            C::Check
            | C::Close
            | C::Unselect
            | C::Expunge
            | C::ExpungeUid { .. }
            | C::Search { .. }
            | C::Fetch { .. }
            | C::Store { .. }
            | C::Copy { .. }
            | C::Move { .. }
                if !selected =>
            {
                cmd_bad(out, &tag, "select a mailbox first")
            }
            C::Check => {
                self.sync(out, true);
                cmd_ok(out, &tag, "CHECK completed");
            }
            C::Close => {
                self.saved.clear();
                let sel = self.selected.take().expect("selected");
                if !sel.ro {
                    let _ = sel.mb.expunge(None);
                }
                cmd_ok(out, &tag, "CLOSE completed");
            }
            C::Unselect => {
                self.saved.clear();
                self.selected = None;
                cmd_ok(out, &tag, "UNSELECT completed");
            }
            C::Expunge => self.expunge(&tag, None, out),
            C::ExpungeUid { sequence_set } => {
                let uids: Vec<u32> = self
                    .resolve(&sequence_set, true)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|x| x.1)
                    .collect();
                self.expunge(&tag, Some(uids), out);
            }
            C::Search {
                charset: Some(_), ..
            } if self.utf8 => {
                // RFC 6855 §3: after ENABLE UTF8=ACCEPT a charset label conflicts.
                cmd_bad(out, &tag, "no CHARSET after ENABLE UTF8=ACCEPT");
            }
            C::Search {
                charset: Some(cs), ..
            } if !["UTF-8", "US-ASCII"]
                .iter()
                .any(|c| c.eq_ignore_ascii_case(cs.as_ref())) =>
            {
                cmd_no(
                    out,
                    &tag,
                    "[BADCHARSET (UTF-8 US-ASCII)] unsupported charset",
                );
            }
            C::Search { criteria, uid, .. } => {
                // RFC 9051 §6.4.4: IMAP4rev2 answers SEARCH with ESEARCH, RETURN () is ALL.
                let esearch = esearch.or_else(|| self.rev2.then(Vec::new));
                self.search(&tag, criteria.as_ref(), uid, esearch, out)
            }
            C::Fetch {
                sequence_set,
                macro_or_item_names,
                uid,
                modifiers,
            } => {
                let Some(mut targets) = self.resolve(&sequence_set, uid) else {
                    cmd_bad(out, &tag, "invalid sequence set");
                    return Step::Continue;
                };
                let mut items = parse_items(&macro_or_item_names, uid);
                if let Err(e) = self.fetch_ext(
                    &sequence_set,
                    uid,
                    &modifiers,
                    &mut targets,
                    &mut items,
                    out,
                ) {
                    cmd_bad(out, &tag, &e);
                    return Step::Continue;
                }
                let mut job = Box::new(FetchJob::new(tag, uid, targets, items));
                let done = job.run(self, out);
                if done {
                    self.after_fetch(&job, out);
                } else {
                    self.pending = Pending::Fetch(job);
                }
            }
            C::Store {
                sequence_set,
                kind,
                response,
                flags,
                uid,
                modifiers,
            } => {
                let unchanged = modifiers.first().map(|m| match m {
                    StoreModifier::UnchangedSince(n) => *n,
                });
                if unchanged.is_some() {
                    self.enable_condstore(out);
                }
                let st = StoreArgs {
                    kind,
                    response,
                    uid,
                    unchanged,
                };
                self.store(&tag, &sequence_set, st, &flags, out)
            }
            C::Copy {
                sequence_set,
                mailbox,
                uid,
            } => self.copy(&tag, &sequence_set, &mailbox, uid, false, out),
            C::Move {
                sequence_set,
                mailbox,
                uid,
            } => self.copy(&tag, &sequence_set, &mailbox, uid, true, out),
            _ => cmd_bad(out, &tag, "command not supported"),
        }
        Step::Continue
    }

    fn after_fetch(&mut self, job: &FetchJob, out: &mut Vec<u8>) {
        // UID FETCH may report expunges; FETCH may not (RFC 3501 §7.4.1).
        self.sync(out, job.uid);
        if job.unknown_cte {
            cmd_no(
                out,
                &job.tag,
                "[UNKNOWN-CTE] cannot decode a part's transfer encoding",
            );
        } else if job.failed {
            cmd_no(out, &job.tag, "some messages could not be read (expunged?)");
        } else {
            cmd_ok(out, &job.tag, "FETCH completed");
        }
    }

    // ----- authentication -------------------------------------------------------------

    fn auth_response(&mut self, tag: &str, line: &[u8], out: &mut Vec<u8>) -> Step {
        match sasl::decode_response_bytes(line) {
            Ok(data) => self.auth_plain(tag, &data, out),
            Err(SaslError::Cancelled) => cmd_bad(out, tag, "authentication cancelled"),
            Err(SaslError::Malformed) => cmd_bad(out, tag, "invalid base64"),
        }
        Step::Continue
    }

    /// SASL PLAIN (RFC 4616), parsed by `accounts::sasl` like SMTP's.
    fn auth_plain(&mut self, tag: &str, data: &[u8], out: &mut Vec<u8>) {
        match sasl::parse_plain(data) {
            Ok(c) => self.login(tag, &c, out),
            Err(_) => cmd_bad(out, tag, "malformed PLAIN response"),
        }
    }

    /// LOGIN and AUTHENTICATE end here: one call into `accounts::login`.
    fn login(&mut self, tag: &str, c: &Credentials, out: &mut Vec<u8>) {
        match self.svc.logins.login_blocking("imap", self.peer, c) {
            Ok(name) => {
                if let Err(e) = self.svc.store.ensure_user(&name) {
                    tracing::error!("imap: cannot prepare mailboxes of {name}: {e}");
                    cmd_no(out, tag, "[SERVERBUG] cannot open your mailboxes");
                    return;
                }
                tracing::info!(peer = %self.peer, user = %name, "imap login");
                self.user = Some(name);
                cmd_ok(
                    out,
                    tag,
                    &format!("[CAPABILITY {}] Logged in", self.capabilities()),
                );
            }
            Err(Refusal::Throttled) => cmd_no(
                out,
                tag,
                "[UNAVAILABLE] too many failed logins, try again later",
            ),
            Err(Refusal::NotAuthorized) => {
                cmd_no(out, tag, "[AUTHORIZATIONFAILED] cannot act as another user")
            }
            Err(Refusal::BadName | Refusal::Invalid) => {
                cmd_no(out, tag, "[AUTHENTICATIONFAILED] invalid credentials")
            }
        }
    }

    fn user(&self) -> &str {
        self.user.as_deref().unwrap_or("")
    }

    // ----- mailboxes --------------------------------------------------------------------

    fn open(&self, name: &MailboxName) -> Result<Arc<Mailbox>, String> {
        if !self.svc.store.mailbox_exists(self.user(), name) {
            return Err("[NONEXISTENT] no such mailbox".into());
        }
        self.svc
            .store
            .mailbox(self.user(), name)
            .map_err(|e| format!("[SERVERBUG] {e}"))
    }

    fn select(
        &mut self,
        tag: &str,
        m: &WireMailbox<'_>,
        ro: bool,
        params: &[SelectParameter],
        out: &mut Vec<u8>,
    ) {
        if let Err(e) = self.check_select_params(params) {
            return cmd_bad(out, tag, &e);
        }
        self.saved.clear();
        // RFC 9051 §7.1 and RFC 7162 §3.2.11: CLOSED separates the old mailbox's responses
        // from the new one's.
        if self.selected.take().is_some() && (self.rev2 || self.modes.qresync) {
            out.extend_from_slice(b"* OK [CLOSED] previous mailbox closed\r\n");
        }
        let name = match self.name_of(m) {
            Ok(n) => n,
            Err(e) => return cmd_no(out, tag, &e),
        };
        let mb = match self.open(&name) {
            Ok(mb) => mb,
            Err(e) => return cmd_no(out, tag, &e),
        };
        let mut view = View::default();
        if let Err(e) = mb.sync(&mut view, true, !ro) {
            return cmd_no(out, tag, &format!("[SERVERBUG] {e}"));
        }
        if self.rev2 {
            view.recent.clear();
        }
        let (uidvalidity, uidnext, unseen, kws) = {
            let ix = mb.lock();
            let unseen = ix
                .msgs
                .iter()
                .position(|m| !m.flags.has(flags::SEEN))
                .map(|p| p + 1);
            (
                ix.uidvalidity.max(1),
                ix.uidnext,
                unseen,
                ix.keywords.clone(),
            )
        };
        let kw: Vec<&str> = kws
            .iter()
            .map(String::as_str)
            .filter(|k| !k.is_empty())
            .collect();
        let kw = if kw.is_empty() {
            String::new()
        } else {
            format!(" {}", kw.join(" "))
        };
        out.extend_from_slice(
            format!("* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded{kw})\r\n")
                .as_bytes(),
        );
        out.extend_from_slice(format!("* {} EXISTS\r\n", view.uids.len()).as_bytes());
        if self.rev2 {
            // RFC 9051 §6.3.2: a LIST response instead of RECENT and UNSEEN.
            out.extend_from_slice(&super::list::list_line(self, &name, None));
        } else {
            out.extend_from_slice(format!("* {} RECENT\r\n", view.recent.len()).as_bytes());
            if let Some(u) = unseen {
                out.extend_from_slice(format!("* OK [UNSEEN {u}] first unseen\r\n").as_bytes());
            }
        }
        if ro {
            out.extend_from_slice(b"* OK [PERMANENTFLAGS ()] read-only\r\n");
        } else {
            out.extend_from_slice(
                format!("* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded{kw} \\*)] flags permitted\r\n").as_bytes(),
            );
        }
        out.extend_from_slice(
            format!("* OK [UIDVALIDITY {uidvalidity}] UIDs valid\r\n").as_bytes(),
        );
        out.extend_from_slice(
            format!("* OK [UIDNEXT {uidnext}] predicted next UID\r\n").as_bytes(),
        );
        self.select_ext(&mb, &view, params, out);
        tracing::info!(peer = %self.peer, user = %self.user(), mailbox = %Untrusted(&name.utf8()), messages = view.uids.len(), "imap select");
        self.selected = Some(Selected { mb, name, view, ro });
        cmd_ok(
            out,
            tag,
            if ro {
                "[READ-ONLY] EXAMINE completed"
            } else {
                "[READ-WRITE] SELECT completed"
            },
        );
    }

    fn create(&mut self, tag: &str, m: &WireMailbox<'_>, out: &mut Vec<u8>) {
        let name = match self.name_of(m) {
            Ok(n) => n,
            Err(e) => return cmd_no(out, tag, &e),
        };
        match self.svc.store.create_mailbox(self.user(), &name) {
            Ok(()) => cmd_ok(out, tag, "CREATE completed"),
            Err(FolderError::Exists) => cmd_no(out, tag, "[ALREADYEXISTS] mailbox already exists"),
            Err(e) => cmd_no(out, tag, &format!("[CANNOT] {e}")),
        }
    }

    fn delete(&mut self, tag: &str, m: &WireMailbox<'_>, out: &mut Vec<u8>) {
        let name = match self.name_of(m) {
            Ok(n) => n,
            Err(e) => return cmd_no(out, tag, &e),
        };
        if self.selected.as_ref().is_some_and(|s| s.name == name) {
            self.selected = None;
        }
        match self.svc.store.delete_mailbox(self.user(), &name) {
            Ok(()) => cmd_ok(out, tag, "DELETE completed"),
            Err(FolderError::NotFound) => cmd_no(out, tag, "[NONEXISTENT] no such mailbox"),
            // RFC 9051 §7.1 names this case; IMAP4rev1 clients keep getting CANNOT.
            Err(e @ FolderError::HasChildren) if self.rev2 => {
                cmd_no(out, tag, &format!("[HASCHILDREN] {e}"))
            }
            Err(e) => cmd_no(out, tag, &format!("[CANNOT] {e}")),
        }
    }

    fn rename(
        &mut self,
        tag: &str,
        from: &WireMailbox<'_>,
        to: &WireMailbox<'_>,
        out: &mut Vec<u8>,
    ) {
        let (from, to) = match (self.name_of(from), self.name_of(to)) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => return cmd_no(out, tag, &e),
        };
        match self.svc.store.rename_mailbox(self.user(), &from, &to) {
            Ok(()) => {
                self.follow_rename(&from, &to);
                if self.rev2 {
                    // The new name with the old one (RFC 9051 §7.3.1 OLDNAME).
                    out.extend_from_slice(&super::list::list_line(self, &to, Some(&from)));
                }
                self.sync(out, true);
                cmd_ok(out, tag, "RENAME completed")
            }
            Err(FolderError::NotFound) => cmd_no(out, tag, "[NONEXISTENT] no such mailbox"),
            Err(FolderError::Exists) => cmd_no(out, tag, "[ALREADYEXISTS] target exists"),
            Err(e) => cmd_no(out, tag, &format!("[CANNOT] {e}")),
        }
    }

    /// After RENAME: the selected mailbox (or one below the renamed one) is followed to its new
    /// name, as Dovecot does, so the session keeps working. Its UIDs and UIDVALIDITY are kept
    /// on disk, so the view stays valid. INBOX stays where it is (RFC 3501 §6.3.5).
    fn follow_rename(&mut self, from: &MailboxName, to: &MailboxName) {
        let user = self.user().to_string();
        let Some(sel) = self.selected.as_mut() else {
            return;
        };
        if *from == MailboxName::Inbox {
            return;
        }
        let new = if sel.name == *from {
            Some(to.clone())
        } else {
            sel.name
                .wire()
                .strip_prefix(&format!("{}{}", from.wire(), crate::store::names::DELIM))
                .and_then(|rest| {
                    MailboxName::from_utf7(&format!(
                        "{}{}{rest}",
                        to.wire(),
                        crate::store::names::DELIM
                    ))
                    .ok()
                })
        };
        let Some(new) = new else { return };
        match self.svc.store.mailbox(&user, &new) {
            Ok(mb) => {
                // A fresh index: changes are counted from its own sequence from now on.
                sel.view.modseq = mb.lock().modseq;
                sel.mb = mb;
                sel.name = new;
            }
            Err(e) => {
                tracing::warn!(
                    "imap: cannot follow renamed mailbox {}: {e}",
                    Untrusted(&new.utf8())
                );
                self.selected = None;
            }
        }
    }

    fn subscribe(&mut self, tag: &str, m: &WireMailbox<'_>, on: bool, out: &mut Vec<u8>) {
        let name = match self.name_of(m) {
            Ok(n) => n,
            Err(e) => return cmd_no(out, tag, &e),
        };
        if on && !self.svc.store.mailbox_exists(self.user(), &name) {
            return cmd_no(out, tag, "[NONEXISTENT] no such mailbox");
        }
        match self.svc.store.set_subscribed(self.user(), &name, on) {
            Ok(()) => cmd_ok(
                out,
                tag,
                if on {
                    "SUBSCRIBE completed"
                } else {
                    "UNSUBSCRIBE completed"
                },
            ),
            Err(e) => cmd_no(out, tag, &format!("[SERVERBUG] {e}")),
        }
    }

    /// The STATUS response line for a mailbox (also used by LIST-STATUS).
    pub fn status_line(
        &self,
        name: &MailboxName,
        items: &[StatusDataItemName],
    ) -> Result<String, String> {
        let mb = self.open(name)?;
        mb.refresh().map_err(|e| format!("[SERVERBUG] {e}"))?;
        let ix = mb.lock();
        let mut parts = Vec::new();
        for it in items {
            let s = match it {
                StatusDataItemName::Messages => format!("MESSAGES {}", ix.msgs.len()),
                StatusDataItemName::Recent => format!(
                    "RECENT {}",
                    self.selected
                        .as_ref()
                        .filter(|s| s.name == *name)
                        .map_or_else(|| ix.unclaimed_recent(), |s| s.view.recent.len())
                ),
                StatusDataItemName::UidNext => format!("UIDNEXT {}", ix.uidnext),
                StatusDataItemName::UidValidity => format!("UIDVALIDITY {}", ix.uidvalidity.max(1)),
                StatusDataItemName::Unseen => format!(
                    "UNSEEN {}",
                    ix.msgs.iter().filter(|m| !m.flags.has(flags::SEEN)).count()
                ),
                StatusDataItemName::Deleted => format!(
                    "DELETED {}",
                    ix.msgs
                        .iter()
                        .filter(|m| m.flags.has(flags::DELETED))
                        .count()
                ),
                StatusDataItemName::HighestModSeq => format!("HIGHESTMODSEQ {}", ix.modseq),
                StatusDataItemName::Size => {
                    let total: u64 = ix
                        .msgs
                        .iter()
                        .filter_map(|m| std::fs::metadata(mb.path_of(m)).ok())
                        .map(|m| m.len())
                        .sum();
                    format!("SIZE {total}")
                }
                _ => continue,
            };
            parts.push(s);
        }
        let mut line = b"* STATUS ".to_vec();
        let utf8 = self.utf8_names();
        wire::mailbox(&mut line, &name.shown(utf8), utf8);
        line.extend_from_slice(format!(" ({})\r\n", parts.join(" ")).as_bytes());
        Ok(String::from_utf8_lossy(&line).into_owned())
    }

    fn status(
        &mut self,
        tag: &str,
        m: &WireMailbox<'_>,
        items: &[StatusDataItemName],
        out: &mut Vec<u8>,
    ) {
        let name = match self.name_of(m) {
            Ok(n) => n,
            Err(e) => return cmd_no(out, tag, &e),
        };
        if items.contains(&StatusDataItemName::HighestModSeq) {
            self.enable_condstore(out);
        }
        match self.status_line(&name, items) {
            Ok(l) => {
                out.extend_from_slice(l.as_bytes());
                cmd_ok(out, tag, "STATUS completed");
            }
            Err(e) => cmd_no(out, tag, &e),
        }
    }

    fn append(
        &mut self,
        tag: &str,
        m: &WireMailbox<'_>,
        fl: &[Flag<'_>],
        date: Option<SystemTime>,
        data: &[u8],
        out: &mut Vec<u8>,
    ) {
        let name = match self.name_of(m) {
            Ok(n) => n,
            Err(e) => return cmd_no(out, tag, &e),
        };
        if data.len() as u64 > self.svc.config.limits.max_message_size {
            return cmd_no(out, tag, "[TOOBIG] message too large");
        }
        if !self.svc.store.mailbox_exists(self.user(), &name) {
            return cmd_no(out, tag, "[TRYCREATE] no such mailbox");
        }
        let Some((sys, kws)) = split_flags(fl) else {
            return cmd_bad(out, tag, "invalid flag");
        };
        let mb = match self.open(&name) {
            Ok(mb) => mb,
            Err(e) => return cmd_no(out, tag, &e),
        };
        match mb.append(data, sys, &kws, date) {
            Ok((v, uid)) => {
                self.sync(out, true);
                cmd_ok(out, tag, &format!("[APPENDUID {v} {uid}] APPEND completed"));
            }
            Err(e) => cmd_no(out, tag, &format!("[SERVERBUG] {e}")),
        }
    }

    // ----- selected state ----------------------------------------------------------------

    /// Bring the view up to date and report it (untagged EXISTS/RECENT/EXPUNGE/FETCH).
    pub fn sync(&mut self, out: &mut Vec<u8>, expunges: bool) {
        let Some(sel) = self.selected.as_mut() else {
            return;
        };
        let mut updates = match sel.mb.sync(&mut sel.view, expunges, !sel.ro) {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!("imap sync of {} failed: {e}", sel.mb.dir.display());
                return;
            }
        };
        if self.rev2 {
            // RFC 9051 has no \Recent flag and no RECENT response.
            sel.view.recent.clear();
            updates.retain(|u| !matches!(u, Update::Recent(_)));
        }
        let kws = if updates.iter().any(|u| matches!(u, Update::Flags(..))) {
            sel.mb.lock().keywords.clone()
        } else {
            Vec::new()
        };
        let sel = self.selected.as_ref().expect("selected");
        out.extend_from_slice(&self.render_updates(updates, &sel.view, &kws));
    }

    /// Resolve a sequence set to (seq, uid) pairs in ascending order. None: a sequence
    /// number beyond the mailbox (RFC 3501 §9 seq-number).
    pub fn resolve(&self, set: &SequenceSet, uid: bool) -> Option<Vec<(u32, u32)>> {
        let view = &self.selected.as_ref()?.view;
        let n = view.uids.len() as u32;
        let max_uid = view.uids.last().copied().unwrap_or(0);
        let mut out = Vec::new();
        for s in set.0.as_ref() {
            let val = |x: &SeqOrUid| match x {
                SeqOrUid::Value(v) => v.get(),
                SeqOrUid::Asterisk => {
                    if uid {
                        max_uid
                    } else {
                        n
                    }
                }
            };
            let (lo, hi) = match s {
                Sequence::Single(a) => (val(a), val(a)),
                Sequence::Range(a, b) => (val(a).min(val(b)), val(a).max(val(b))),
            };
            if uid {
                let start = view.uids.partition_point(|u| *u < lo);
                for (i, u) in view.uids[start..].iter().enumerate() {
                    if *u > hi {
                        break;
                    }
                    out.push((start as u32 + i as u32 + 1, *u));
                }
            } else {
                if lo == 0 || hi > n {
                    return None;
                }
                for s in lo..=hi {
                    out.push((s, view.uids[s as usize - 1]));
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        Some(out)
    }

    fn expunge(&mut self, tag: &str, only: Option<Vec<u32>>, out: &mut Vec<u8>) {
        let sel = self.selected.as_ref().expect("selected");
        if sel.ro {
            return cmd_no(out, tag, "[READ-ONLY] mailbox is read-only");
        }
        match sel.mb.expunge(only.as_deref()) {
            Ok(_) => {
                self.sync(out, true);
                cmd_ok(out, tag, "EXPUNGE completed");
            }
            Err(e) => cmd_no(out, tag, &format!("[SERVERBUG] {e}")),
        }
    }

    fn store(
        &mut self,
        tag: &str,
        set: &SequenceSet,
        st: StoreArgs,
        fl: &[Flag<'_>],
        out: &mut Vec<u8>,
    ) {
        let StoreArgs {
            kind,
            response,
            uid,
            unchanged,
        } = st;
        let Some(targets) = self.resolve(set, uid) else {
            return cmd_bad(out, tag, "invalid sequence set");
        };
        let condstore = self.modes.condstore;
        let sel = self.selected.as_mut().expect("selected");
        if sel.ro {
            return cmd_no(out, tag, "[READ-ONLY] mailbox is read-only");
        }
        let Some((sys, kws)) = split_flags(fl) else {
            return cmd_bad(out, tag, "invalid flag");
        };
        let op = match kind {
            StoreType::Add => 1,
            StoreType::Remove => -1,
            StoreType::Replace => 0,
        };
        let uids: Vec<u32> = targets.iter().map(|t| t.1).collect();
        match sel.mb.store_if(&uids, op, sys, &kws, unchanged) {
            Ok(stored) => {
                // Our own change is answered below, not echoed again by the next sync.
                // A conditional STORE answers even when .SILENT (RFC 7162 §3.1.3).
                let silent = matches!(response, StoreResponse::Silent) && unchanged.is_none();
                let mut modified = Vec::new();
                {
                    let ix = sel.mb.lock();
                    let kw_names = ix.keywords.clone();
                    if sel.view.modseq == stored.before {
                        sel.view.modseq = stored.after;
                    }
                    for (seq, u) in &targets {
                        if stored.modified.binary_search(u).is_ok() {
                            modified.push(if uid { *u } else { *seq });
                            continue;
                        }
                        if silent {
                            continue;
                        }
                        if let Some(m) = ix.find(*u) {
                            let recent = sel.view.recent.contains(u);
                            let f = flag_list(m.flags, &kw_names, recent);
                            let line = if condstore {
                                format!(
                                    "* {seq} FETCH (UID {u} FLAGS {f} MODSEQ ({}))\r\n",
                                    m.modseq
                                )
                            } else if uid {
                                format!("* {seq} FETCH (UID {u} FLAGS {f})\r\n")
                            } else {
                                format!("* {seq} FETCH (FLAGS {f})\r\n")
                            };
                            out.extend_from_slice(line.as_bytes());
                        }
                    }
                }
                self.sync(out, uid);
                if modified.is_empty() {
                    cmd_ok(out, tag, "STORE completed");
                } else {
                    let text =
                        format!("[MODIFIED {}] conditional STORE failed", uid_set(&modified));
                    cmd_ok(out, tag, &text);
                }
            }
            Err(e) => cmd_no(out, tag, &format!("[LIMIT] {e}")),
        }
    }

    fn copy(
        &mut self,
        tag: &str,
        set: &SequenceSet,
        m: &WireMailbox<'_>,
        uid: bool,
        mv: bool,
        out: &mut Vec<u8>,
    ) {
        let Some(targets) = self.resolve(set, uid) else {
            return cmd_bad(out, tag, "invalid sequence set");
        };
        let name = match self.name_of(m) {
            Ok(n) => n,
            Err(e) => return cmd_no(out, tag, &e),
        };
        if !self.svc.store.mailbox_exists(self.user(), &name) {
            return cmd_no(out, tag, "[TRYCREATE] no such mailbox");
        }
        let dest = match self.open(&name) {
            Ok(d) => d,
            Err(e) => return cmd_no(out, tag, &e),
        };
        let sel = self.selected.as_ref().expect("selected");
        if mv && sel.ro {
            return cmd_no(out, tag, "[READ-ONLY] mailbox is read-only");
        }
        let uids: Vec<u32> = targets.iter().map(|t| t.1).collect();
        let (v, pairs) = match sel.mb.copy_to(&uids, &dest) {
            Ok(r) => r,
            Err(e) => return cmd_no(out, tag, &format!("[SERVERBUG] {e}")),
        };
        let src: Vec<u32> = pairs.iter().map(|p| p.0).collect();
        let dst: Vec<u32> = pairs.iter().map(|p| p.1).collect();
        let code = if pairs.is_empty() {
            String::new()
        } else {
            format!("[COPYUID {v} {} {}] ", uid_set(&src), uid_set(&dst))
        };
        if mv {
            // RFC 6851 §4.3: COPYUID in an untagged OK before the EXPUNGEs.
            if !code.is_empty() {
                out.extend_from_slice(format!("* OK {code}moved\r\n").as_bytes());
            }
            if let Err(e) = sel.mb.remove_uids(&src) {
                return cmd_no(out, tag, &format!("[SERVERBUG] {e}"));
            }
            self.sync(out, true);
            cmd_ok(out, tag, "MOVE completed");
        } else {
            self.sync(out, uid);
            cmd_ok(out, tag, &format!("{code}COPY completed"));
        }
    }

    fn search(
        &mut self,
        tag: &str,
        criteria: &[SearchKey<'_>],
        uid: bool,
        esearch: Option<Vec<String>>,
        out: &mut Vec<u8>,
    ) {
        if criteria.iter().any(super::condstore::search_uses_modseq) {
            self.enable_condstore(out);
        }
        let sel = self.selected.as_ref().expect("selected");
        let key = SearchKey::And(
            imap_codec::imap_types::core::Vec1::try_from(criteria.to_vec())
                .unwrap_or_else(|_| SearchKey::All.into()),
        );
        let content = super::search::needs_content(&key);
        let (entries, keywords) = {
            let ix = sel.mb.lock();
            let entries: Vec<(u32, u32, Flags, u64, std::path::PathBuf)> = sel
                .view
                .uids
                .iter()
                .enumerate()
                .filter_map(|(i, u)| {
                    ix.find(*u)
                        .map(|m| (i as u32 + 1, *u, m.flags, m.modseq, sel.mb.path_of(m)))
                })
                .collect();
            (entries, ix.keywords.clone())
        };
        let max_seq = sel.view.uids.len() as u32;
        let max_uid = sel.view.uids.last().copied().unwrap_or(0);
        let mut hits = Vec::new();
        let mut hit_uids = Vec::new();
        let mut hit_modseq = 0;
        for (seq, u, f, modseq, path) in entries {
            let mut c = super::search::Candidate {
                seq,
                uid: u,
                flags: f,
                keywords: &keywords,
                recent: sel.view.recent.contains(&u),
                modseq,
                path,
                max_seq,
                max_uid,
                content: if content { None } else { Some(None) },
            };
            if super::search::matches(&key, &mut c) {
                hits.push(if uid { u } else { seq });
                hit_uids.push(u);
                hit_modseq = hit_modseq.max(modseq);
            }
        }
        if let Some(opts) = &esearch
            && opts.iter().any(|o| o == "SAVE")
        {
            // RFC 5182 §2.1: with MIN and/or MAX but neither ALL nor COUNT, only those
            // messages are saved.
            let has = |w: &str| opts.iter().any(|o| o == w);
            self.saved = if (has("MIN") || has("MAX")) && !has("ALL") && !has("COUNT") {
                let mut v = Vec::new();
                if has("MIN") {
                    v.extend(hit_uids.first());
                }
                if has("MAX") {
                    v.extend(hit_uids.last());
                }
                v.dedup();
                v
            } else {
                hit_uids
            };
        }
        // RFC 7162 §3.1.5: a MODSEQ search reports the highest modseq of what it found.
        let modseq_tail = if super::condstore::search_uses_modseq(&key) && !hits.is_empty() {
            format!(" (MODSEQ {hit_modseq})")
        } else {
            String::new()
        };
        match esearch {
            None => {
                let mut line = String::from("* SEARCH");
                for h in &hits {
                    line.push(' ');
                    line.push_str(&h.to_string());
                }
                line.push_str(&modseq_tail);
                out.extend_from_slice(line.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            // RFC 5182 §2.1: SAVE alone returns no ESEARCH response.
            Some(opts) if opts.len() == 1 && opts[0] == "SAVE" => {}
            Some(opts) => {
                // RFC 4731: an empty RETURN () means ALL.
                let opts = if opts.is_empty() {
                    vec!["ALL".to_string()]
                } else {
                    opts
                };
                let mut line = format!("* ESEARCH (TAG \"{tag}\")");
                if uid {
                    line.push_str(" UID");
                }
                for o in &opts {
                    match o.as_str() {
                        "MIN" if !hits.is_empty() => line.push_str(&format!(" MIN {}", hits[0])),
                        "MAX" if !hits.is_empty() => {
                            line.push_str(&format!(" MAX {}", hits[hits.len() - 1]))
                        }
                        "COUNT" => line.push_str(&format!(" COUNT {}", hits.len())),
                        "ALL" if !hits.is_empty() => {
                            line.push_str(&format!(" ALL {}", uid_set(&hits)))
                        }
                        _ => {}
                    }
                }
                if !modseq_tail.is_empty() {
                    line.push_str(&format!(" MODSEQ {hit_modseq}"));
                }
                out.extend_from_slice(line.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
        }
        self.sync(out, uid);
        cmd_ok(out, tag, "SEARCH completed");
    }

    /// `SEARCH RETURN (...) criteria` (RFC 4731): strip the RETURN part, decode the rest.
    fn esearch(
        &mut self,
        tag: &str,
        msg: &[u8],
        toks: &[(Tok, usize, usize)],
        at: usize,
        uid: bool,
        out: &mut Vec<u8>,
    ) -> Step {
        if self.selected.is_none() {
            cmd_bad(out, tag, "select a mailbox first");
            return Step::Continue;
        }
        let ret_start = toks[at + 1].1;
        let mut i = at + 2;
        let mut opts = Vec::new();
        if toks.get(i).map(|t| &t.0) != Some(&Tok::Open) {
            cmd_bad(out, tag, "RETURN needs a list");
            return Step::Continue;
        }
        i += 1;
        while let Some((t, _, end)) = toks.get(i) {
            match t {
                Tok::Close => {
                    let mut rest = msg[..ret_start].to_vec();
                    let after = if msg.get(*end) == Some(&b' ') {
                        *end + 1
                    } else {
                        *end
                    };
                    rest.extend_from_slice(&msg[after..]);
                    let cmd = match CommandCodec::default().decode(&rest) {
                        Ok((_, c)) => c,
                        Err(_) => {
                            if opts.iter().any(|o| o == "SAVE") {
                                // RFC 5182 §2.1: a failed SEARCH SAVE empties the result.
                                self.saved.clear();
                            }
                            cmd_bad(out, tag, "syntax error in SEARCH");
                            return Step::Continue;
                        }
                    };
                    let _ = uid;
                    return self.command(cmd, out, Some(opts));
                }
                Tok::Atom(a) => {
                    let o = String::from_utf8_lossy(a).to_ascii_uppercase();
                    if !["MIN", "MAX", "ALL", "COUNT", "SAVE"].contains(&o.as_str()) {
                        cmd_bad(out, tag, "unknown RETURN option");
                        return Step::Continue;
                    }
                    opts.push(o);
                }
                _ => {
                    cmd_bad(out, tag, "bad RETURN option");
                    return Step::Continue;
                }
            }
            i += 1;
        }
        cmd_bad(out, tag, "unterminated RETURN list");
        Step::Continue
    }
}
