//! Running a compiled script against one message: control flow, the action list with its
//! conflict and duplicate rules (RFC 5228 §2.10), and the implicit keep.

pub mod date;
mod eval;
mod vars;

use std::collections::HashMap;

use super::ast::{Cmd, CmdKind, FlagOp, VacationArgs};
use super::message::{Envelope, MessageView};
use super::{Limits, Script};

/// RFC 5230 §4.1: the default period, and the bounds we hold a script's `:days` to.
pub const VACATION_DEFAULT_SECS: u64 = 7 * 86_400;
pub const VACATION_MIN_SECS: u64 = 86_400;
pub const VACATION_MAX_SECS: u64 = 90 * 86_400;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vacation {
    /// How long to remember a sender we answered, in seconds.
    pub period: u64,
    pub subject: Option<String>,
    pub from: Option<String>,
    pub addresses: Vec<String>,
    pub mime: bool,
    /// Identifies "the same" vacation message for the reply memory (§4.2).
    pub handle: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Store in INBOX (an explicit `keep`, or the implicit one when `Outcome::implicit_keep`).
    Keep {
        flags: Vec<String>,
    },
    FileInto {
        mailbox: String,
        flags: Vec<String>,
        create: bool,
        copy: bool,
    },
    Redirect {
        addr: String,
        copy: bool,
    },
    Discard,
    /// RFC 5429; `extended` for `ereject` (refuse in the SMTP dialogue when possible).
    Reject {
        reason: String,
        extended: bool,
    },
    Vacation(Vacation),
}

#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// In order of execution; the implicit keep, when it applies, comes last.
    pub actions: Vec<Action>,
    /// The last `Keep` is the implicit keep (no action cancelled it, or the script failed).
    pub implicit_keep: bool,
    /// Runtime errors for the script's author (RFC 5228 §2.10.6); when non-empty, every
    /// action was dropped and the message is kept in INBOX.
    pub errors: Vec<String>,
}

/// What the script may ask about the world besides the message.
pub struct Context<'a> {
    pub envelope: &'a Envelope,
    /// RFC 5490 `mailboxexists`.
    pub mailbox_exists: &'a dyn Fn(&str) -> bool,
    /// Now, in Unix seconds (RFC 5260 `currentdate`).
    pub now: i64,
}

#[derive(Debug)]
pub(crate) struct RunError(pub String);

pub(crate) struct State<'a> {
    pub script: &'a Script,
    pub msg: &'a MessageView<'a>,
    pub ctx: &'a Context<'a>,
    pub limits: &'a Limits,
    pub vars: HashMap<String, String>,
    /// Match variables `${0}`… from the last successful `:matches` (RFC 5229 §3.2).
    pub matched: Vec<String>,
    /// The internal flag variable of imap4flags (RFC 5232 §3).
    pub flags: Vec<String>,
    actions: Vec<Action>,
    keep_cancelled: bool,
    redirects: usize,
    line: usize,
}

/// Runs `script`; never fails: a runtime error yields a keep into INBOX plus the error.
pub fn run(script: &Script, msg: &MessageView<'_>, ctx: &Context<'_>, limits: &Limits) -> Outcome {
    let mut st = State {
        script,
        msg,
        ctx,
        limits,
        vars: HashMap::new(),
        matched: Vec::new(),
        flags: Vec::new(),
        actions: Vec::new(),
        keep_cancelled: false,
        redirects: 0,
        line: 0,
    };
    match st.block(&script.commands) {
        Ok(_) => {
            let mut actions = std::mem::take(&mut st.actions);
            let implicit_keep = !st.keep_cancelled;
            if implicit_keep {
                actions.push(Action::Keep {
                    flags: st.flags.clone(),
                });
            }
            Outcome {
                actions,
                implicit_keep,
                errors: Vec::new(),
            }
        }
        Err(RunError(e)) => Outcome {
            actions: vec![Action::Keep { flags: Vec::new() }],
            implicit_keep: true,
            errors: vec![format!("line {}: {e}", st.line)],
        },
    }
}

/// A redirect target must be a plain `local@domain` (RFC 5228 §4.2, RFC 5321 mailbox).
pub fn valid_redirect(a: &str) -> bool {
    let Some((local, domain)) = a.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && a.len() <= 254
        && !a
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>,;()[]\\\"".contains(c))
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
}

/// The mailbox a store goes to, for duplicate detection: INBOX is case-insensitive.
fn same_mailbox(a: &str, b: &str) -> bool {
    a == b || (a.eq_ignore_ascii_case("INBOX") && b.eq_ignore_ascii_case("INBOX"))
}

impl State<'_> {
    fn err<T>(&self, m: impl Into<String>) -> Result<T, RunError> {
        Err(RunError(m.into()))
    }

    /// Returns `true` when `stop` ran.
    fn block(&mut self, cmds: &[Cmd]) -> Result<bool, RunError> {
        for c in cmds {
            self.line = c.line;
            if self.command(c)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn command(&mut self, c: &Cmd) -> Result<bool, RunError> {
        match &c.kind {
            CmdKind::If {
                branches,
                otherwise,
            } => {
                for (test, body) in branches {
                    self.line = c.line;
                    if self.test(test)? {
                        return self.block(body);
                    }
                }
                if let Some(body) = otherwise {
                    return self.block(body);
                }
            }
            CmdKind::Stop => return Ok(true),
            CmdKind::Keep { flags } => {
                let flags = self.action_flags(flags.as_deref());
                self.store("INBOX".into(), flags, false, false)?;
            }
            CmdKind::FileInto {
                mailbox,
                flags,
                copy,
                create,
            } => {
                let mailbox = self.expand(mailbox);
                if mailbox.is_empty()
                    || mailbox.len() > 512
                    || mailbox.chars().any(|c| c.is_control())
                {
                    return self.err(format!(
                        "fileinto: \"{mailbox}\" is not a valid mailbox name"
                    ));
                }
                let flags = self.action_flags(flags.as_deref());
                self.store(mailbox, flags, *create, *copy)?;
            }
            CmdKind::Redirect { addr, copy } => {
                let addr = self.expand(addr);
                if !valid_redirect(&addr) {
                    return self.err(format!("redirect: \"{addr}\" is not a valid address"));
                }
                if !copy {
                    self.keep_cancelled = true;
                }
                let dup = self
                    .actions
                    .iter()
                    .any(|a| matches!(a, Action::Redirect { addr: x, .. } if x.eq_ignore_ascii_case(&addr)));
                if !dup {
                    self.conflicts_with_reject("redirect")?;
                    self.redirects += 1;
                    if self.redirects > self.limits.max_redirects {
                        return self
                            .err(format!("more than {} redirects", self.limits.max_redirects));
                    }
                    self.push(Action::Redirect { addr, copy: *copy })?;
                }
            }
            CmdKind::Discard => {
                self.keep_cancelled = true;
                if !self.actions.contains(&Action::Discard) {
                    self.push(Action::Discard)?;
                }
            }
            CmdKind::Reject { reason, extended } => {
                // RFC 5429 §2.1: reject cannot go with delivering the message or vacation.
                for a in &self.actions {
                    let what = match a {
                        Action::Keep { .. } | Action::FileInto { .. } => "a store",
                        Action::Redirect { .. } => "a redirect",
                        Action::Vacation(_) => "vacation",
                        Action::Reject { .. } => "another reject",
                        Action::Discard => continue,
                    };
                    return self.err(format!(
                        "reject conflicts with {what} earlier in the script"
                    ));
                }
                self.keep_cancelled = true;
                let reason = self.expand(reason);
                self.push(Action::Reject {
                    reason,
                    extended: *extended,
                })?;
            }
            CmdKind::Vacation(v) => {
                self.conflicts_with_reject("vacation")?;
                if self
                    .actions
                    .iter()
                    .any(|a| matches!(a, Action::Vacation(_)))
                {
                    return self.err("vacation: only one vacation action per message");
                }
                let v = self.vacation(v);
                self.push(Action::Vacation(v))?;
            }
            CmdKind::Flags { op, var, flags } => {
                let given: Vec<String> = flags
                    .iter()
                    .flat_map(|f| split_flags(&self.expand(f)))
                    .collect();
                let mut cur = match var {
                    Some(v) => split_flags(
                        self.vars
                            .get(&v.to_ascii_lowercase())
                            .map_or("", |s| s.as_str()),
                    ),
                    None => std::mem::take(&mut self.flags),
                };
                match op {
                    FlagOp::Set => cur = Vec::new(),
                    FlagOp::Remove => {
                        cur.retain(|f| !given.iter().any(|g| g.eq_ignore_ascii_case(f)));
                    }
                    FlagOp::Add => {}
                }
                if *op != FlagOp::Remove {
                    for g in given {
                        if !cur.iter().any(|f| f.eq_ignore_ascii_case(&g)) {
                            cur.push(g);
                        }
                    }
                }
                match var {
                    Some(v) => {
                        let s = cur.join(" ");
                        self.set_var(v.to_ascii_lowercase(), s)?;
                    }
                    None => self.flags = cur,
                }
            }
            CmdKind::Set {
                modifiers,
                name,
                value,
            } => {
                let mut v = self.expand(value);
                for m in modifiers {
                    v = vars::apply_modifier(*m, &v);
                }
                self.set_var(name.clone(), v)?;
            }
        }
        Ok(false)
    }

    fn conflicts_with_reject(&self, what: &str) -> Result<(), RunError> {
        if self
            .actions
            .iter()
            .any(|a| matches!(a, Action::Reject { .. }))
        {
            return self.err(format!(
                "{what} conflicts with reject earlier in the script"
            ));
        }
        Ok(())
    }

    fn push(&mut self, a: Action) -> Result<(), RunError> {
        if self.actions.len() >= self.limits.max_actions {
            return self.err(format!("more than {} actions", self.limits.max_actions));
        }
        self.actions.push(a);
        Ok(())
    }

    fn store(
        &mut self,
        mailbox: String,
        flags: Vec<String>,
        create: bool,
        copy: bool,
    ) -> Result<(), RunError> {
        if !copy {
            self.keep_cancelled = true;
        }
        self.conflicts_with_reject("storing the message")?;
        // §2.10.3: storing twice into one mailbox is one store; the later flags win.
        for a in &mut self.actions {
            match a {
                Action::Keep { flags: f } if same_mailbox(&mailbox, "INBOX") => {
                    *f = flags;
                    return Ok(());
                }
                Action::FileInto {
                    mailbox: m,
                    flags: f,
                    create: c,
                    ..
                } if same_mailbox(m, &mailbox) => {
                    *f = flags;
                    *c |= create;
                    return Ok(());
                }
                _ => {}
            }
        }
        if mailbox == "INBOX" && !create {
            self.push(Action::Keep { flags })
        } else {
            self.push(Action::FileInto {
                mailbox,
                flags,
                create,
                copy,
            })
        }
    }

    /// `:flags` given on the action, else the internal variable (RFC 5232 §5).
    fn action_flags(&self, given: Option<&[String]>) -> Vec<String> {
        match given {
            Some(list) => {
                let mut out: Vec<String> = Vec::new();
                for f in list.iter().flat_map(|f| split_flags(&self.expand(f))) {
                    if !out.iter().any(|x| x.eq_ignore_ascii_case(&f)) {
                        out.push(f);
                    }
                }
                out
            }
            None if self.script.requires("imap4flags") => self.flags.clone(),
            None => Vec::new(),
        }
    }

    fn vacation(&self, v: &VacationArgs) -> Vacation {
        let period = v.period.unwrap_or(VACATION_DEFAULT_SECS).clamp(
            if self.script.requires("vacation-seconds") {
                1
            } else {
                VACATION_MIN_SECS
            },
            VACATION_MAX_SECS,
        );
        let subject = v.subject.as_ref().map(|s| self.expand(s));
        let from = v.from.as_ref().map(|s| self.expand(s));
        let reason = self.expand(&v.reason);
        // §4.2: without :handle, the same reason/subject/from/mime is the same message.
        let handle = match &v.handle {
            Some(h) => self.expand(h),
            None => {
                let key = format!(
                    "{}\0{}\0{}\0{}",
                    reason,
                    subject.as_deref().unwrap_or(""),
                    from.as_deref().unwrap_or(""),
                    v.mime
                );
                format!("{:016x}", fnv1a(key.as_bytes()))
            }
        };
        Vacation {
            period,
            subject,
            from,
            addresses: v.addresses.iter().map(|a| self.expand(a)).collect(),
            mime: v.mime,
            handle,
            reason,
        }
    }

    fn set_var(&mut self, name: String, mut v: String) -> Result<(), RunError> {
        truncate(&mut v, self.limits.max_variable_len);
        if !self.vars.contains_key(&name) && self.vars.len() >= self.limits.max_variables {
            return self.err(format!("more than {} variables", self.limits.max_variables));
        }
        self.vars.insert(name, v);
        Ok(())
    }
}

/// Cuts `s` to at most `max` bytes on a character boundary.
pub(crate) fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
}

/// RFC 5232 §3: a flag list string holds flags separated by spaces.
pub(crate) fn split_flags(s: &str) -> Vec<String> {
    s.split_ascii_whitespace().map(str::to_string).collect()
}

/// A stable, dependency-free hash for the default vacation handle (not security relevant).
fn fnv1a(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &c| {
        (h ^ c as u64).wrapping_mul(0x100_0000_01b3)
    })
}
