//! LIST with LIST-EXTENDED (RFC 5258) selection and return options, SPECIAL-USE
//! (RFC 6154), CHILDREN (RFC 3348) and LIST-STATUS (RFC 5819); LSUB (RFC 3501 §6.3.9).

use imap_codec::imap_types::mailbox::{ListMailbox, Mailbox as WireMailbox};

use super::super::parse::list::ListArgs;
use super::super::session::Session;
use super::super::wire;
use crate::store::MailboxName;
use crate::store::folders::special_use;
use crate::store::names::DELIM;

/// Wildcard match: `*` anything, `%` anything but the delimiter (RFC 3501 §6.3.8).
pub fn wildcard(pat: &[u8], name: &[u8]) -> bool {
    match pat.first() {
        None => name.is_empty(),
        Some(b'*') => (0..=name.len()).any(|i| wildcard(&pat[1..], &name[i..])),
        Some(b'%') => {
            for i in 0..=name.len() {
                if wildcard(&pat[1..], &name[i..]) {
                    return true;
                }
                if i < name.len() && name[i] == DELIM as u8 {
                    return false;
                }
            }
            false
        }
        Some(c) => name.first() == Some(c) && wildcard(&pat[1..], &name[1..]),
    }
}

/// Does the pattern match the name as the session spells it (UTF-8 or modified UTF-7)?
fn matches(pattern: &[u8], name: &MailboxName, utf8: bool) -> bool {
    let shown = name.shown(utf8);
    let w = shown.as_bytes();
    // INBOX is case-insensitive, also as the first level of a pattern.
    if pattern.len() >= 5 && pattern[..5].eq_ignore_ascii_case(b"INBOX") {
        let mut p = b"INBOX".to_vec();
        p.extend_from_slice(&pattern[5..]);
        return wildcard(&p, w);
    }
    wildcard(pattern, w)
}

/// Is `kid` below `parent` in the hierarchy?
fn descends(kid: &MailboxName, parent: &MailboxName) -> bool {
    kid.wire()
        .strip_prefix(parent.wire())
        .is_some_and(|r| r.starts_with(DELIM))
}

/// Does some subscribed mailbox below `name` not match the patterns itself? Then `name`
/// stands for it: LSUB shows it `\Noselect` (RFC 3501 §6.3.9), LIST (SUBSCRIBED
/// RECURSIVEMATCH) with CHILDINFO (RFC 5258 §3.5).
fn stands_for_subscribed(
    subs: &[MailboxName],
    name: &MailboxName,
    hit: &dyn Fn(&MailboxName) -> bool,
) -> bool {
    subs.iter().any(|s| descends(s, name) && !hit(s))
}

/// Attributes of an existing mailbox: children (RFC 3348) and special use (RFC 6154).
fn attributes(all: &[MailboxName], name: &MailboxName) -> Vec<&'static str> {
    let prefix = format!("{}{DELIM}", name.wire());
    let kids = all.iter().any(|n| n.wire().starts_with(&prefix));
    let mut attrs = vec![if kids {
        "\\HasChildren"
    } else {
        "\\HasNoChildren"
    }];
    attrs.extend(special_use(name));
    attrs
}

impl Session {
    /// One untagged LIST line for an existing mailbox, for SELECT in IMAP4rev2 (RFC 9051
    /// §6.3.2) and after RENAME with the old name (OLDNAME, RFC 9051 §7.3.1).
    pub(crate) fn list_line(&self, name: &MailboxName, oldname: Option<&MailboxName>) -> Vec<u8> {
        let user = self.state.user().to_string();
        let all = self.svc.store.list_mailboxes(&user).unwrap_or_default();
        let utf8 = self.utf8_names();
        let mut line =
            format!("* LIST ({}) \"{DELIM}\" ", attributes(&all, name).join(" ")).into_bytes();
        wire::mailbox(&mut line, &name.shown(utf8), utf8);
        if let Some(old) = oldname {
            line.extend_from_slice(b" (\"OLDNAME\" (");
            wire::mailbox(&mut line, &old.shown(utf8), utf8);
            line.extend_from_slice(b"))");
        }
        line.extend_from_slice(b"\r\n");
        line
    }

    /// LIST (RFC 3501 §6.3.8, RFC 9051 §6.3.9, RFC 5258).
    pub(crate) fn list(&mut self, tag: &str, o: ListArgs, out: &mut Vec<u8>) {
        let user = self.state.user().to_string();
        if o.patterns.len() == 1 && o.patterns[0].is_empty() && !o.sel_subscribed {
            // The hierarchy delimiter query (RFC 3501 §6.3.8).
            out.extend_from_slice(format!("* LIST (\\Noselect) \"{DELIM}\" \"\"\r\n").as_bytes());
            out.extend_from_slice(format!("{tag} OK LIST completed\r\n").as_bytes());
            return;
        }
        let all = match self.svc.store.list_mailboxes(&user) {
            Ok(a) => a,
            Err(e) => {
                super::super::session::cmd_no(out, tag, &format!("[SERVERBUG] {e}"));
                return;
            }
        };
        let subs = self.svc.store.subscriptions(&user).unwrap_or_default();
        let utf8 = self.utf8_names();
        let mut candidates: Vec<(MailboxName, bool)> =
            all.iter().map(|n| (n.clone(), true)).collect();
        // A folder made by another program may lack its parent directory: the parent is listed
        // as \Noselect so the hierarchy stays navigable (RFC 3501 §6.3.8).
        let mut missing: Vec<MailboxName> = Vec::new();
        for n in &all {
            for p in n.parents() {
                if !all.contains(&p) && !missing.contains(&p) {
                    missing.push(p);
                }
            }
        }
        candidates.extend(missing.iter().map(|m| (m.clone(), true)));
        candidates.sort_by(|a, b| {
            (a.0 != MailboxName::Inbox, a.0.wire()).cmp(&(b.0 != MailboxName::Inbox, b.0.wire()))
        });
        if o.sel_subscribed {
            let mut c: Vec<(MailboxName, bool)> =
                subs.iter().map(|n| (n.clone(), all.contains(n))).collect();
            if o.recursive {
                // Parents of subscriptions, which may be reported for their children.
                for s in &subs {
                    for p in s.parents() {
                        if !c.iter().any(|(n, _)| *n == p) {
                            let exists = all.contains(&p) || missing.contains(&p);
                            c.push((p, exists));
                        }
                    }
                }
            }
            c.sort_by(|a, b| {
                (a.0 != MailboxName::Inbox, a.0.wire())
                    .cmp(&(b.0 != MailboxName::Inbox, b.0.wire()))
            });
            candidates = c;
        }
        let hit = |name: &MailboxName| {
            o.patterns.iter().any(|p| {
                let mut full = o.reference.clone();
                full.extend_from_slice(p);
                matches(&full, name, utf8)
            })
        };
        for (name, exists) in candidates {
            if !hit(&name) {
                continue;
            }
            let childinfo =
                o.sel_subscribed && o.recursive && stands_for_subscribed(&subs, &name, &hit);
            if o.sel_subscribed && !subs.contains(&name) && !childinfo {
                continue;
            }
            let su = special_use(&name);
            if o.sel_special && su.is_none() {
                continue;
            }
            let mut attrs: Vec<&str> = if !exists {
                vec!["\\NonExistent"]
            } else if missing.contains(&name) {
                vec!["\\Noselect", "\\HasChildren"]
            } else {
                attributes(&all, &name)
            };
            if !exists || missing.contains(&name) {
                attrs.extend(su);
            }
            if (o.sel_subscribed || o.ret_subscribed) && subs.contains(&name) {
                attrs.push("\\Subscribed");
            }
            let mut line = format!("* LIST ({}) \"{DELIM}\" ", attrs.join(" ")).into_bytes();
            wire::mailbox(&mut line, &name.shown(utf8), utf8);
            if childinfo {
                line.extend_from_slice(b" (\"CHILDINFO\" (\"SUBSCRIBED\"))");
            }
            line.extend_from_slice(b"\r\n");
            out.extend_from_slice(&line);
            if let Some(items) = &o.ret_status
                && exists
                && let Ok(l) = self.status_line(&name, items)
            {
                out.extend_from_slice(l.as_bytes());
            }
        }
        out.extend_from_slice(format!("{tag} OK LIST completed\r\n").as_bytes());
    }

    /// LSUB (RFC 3501 §6.3.9).
    pub(crate) fn lsub(
        &mut self,
        tag: &str,
        reference: &WireMailbox<'_>,
        pattern: &ListMailbox<'_>,
        out: &mut Vec<u8>,
    ) {
        let user = self.state.user().to_string();
        let mut full: Vec<u8> = match reference {
            WireMailbox::Inbox => b"INBOX".to_vec(),
            WireMailbox::Other(o) => o.inner().as_ref().to_vec(),
        };
        match pattern {
            ListMailbox::Token(t) => full.extend_from_slice(AsRef::<[u8]>::as_ref(t)),
            ListMailbox::String(st) => full.extend_from_slice(st.as_ref()),
        }
        let utf8 = self.utf8_names();
        let subs = self.svc.store.subscriptions(&user).unwrap_or_default();
        let all = self.svc.store.list_mailboxes(&user).ok();
        let hit = |n: &MailboxName| matches(&full, n, utf8);
        // Subscriptions, and the unsubscribed parents standing for subscribed children a `%`
        // does not reach, as \Noselect (RFC 3501 §6.3.9).
        let mut shown: Vec<(MailboxName, bool)> = Vec::new();
        for s in &subs {
            if hit(s) && !shown.iter().any(|(n, _)| n == s) {
                shown.push((s.clone(), false));
            }
            for p in s.parents() {
                if !subs.contains(&p)
                    && !shown.iter().any(|(n, _)| *n == p)
                    && hit(&p)
                    && stands_for_subscribed(&subs, &p, &hit)
                {
                    shown.push((p, true));
                }
            }
        }
        shown.sort_by(|a, b| {
            (a.0 != MailboxName::Inbox, a.0.wire()).cmp(&(b.0 != MailboxName::Inbox, b.0.wire()))
        });
        for (name, parent) in shown {
            // A subscription whose mailbox is gone (DELETE keeps it, RFC 3501 §6.3.6) cannot
            // be selected: \Noselect, where LIST (SUBSCRIBED) says \NonExistent (RFC 5258
            // §3). Dovecot 2.3 prints `()` here; \Noselect spares clients a failing SELECT.
            let gone = !parent && all.as_ref().is_some_and(|a| !a.contains(&name));
            let attrs = if parent || gone { "\\Noselect" } else { "" };
            let mut line = format!("* LSUB ({attrs}) \"{DELIM}\" ").into_bytes();
            wire::mailbox(&mut line, &name.shown(utf8), utf8);
            line.extend_from_slice(b"\r\n");
            out.extend_from_slice(&line);
        }
        out.extend_from_slice(format!("{tag} OK LSUB completed\r\n").as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard(b"*", b"a.b"));
        assert!(wildcard(b"%", b"a"));
        assert!(!wildcard(b"%", b"a.b"));
        assert!(wildcard(b"a.%", b"a.b"));
        assert!(wildcard(b"a*", b"a.b.c"));
        assert!(matches(b"inbox", &MailboxName::Inbox, false));
        let e = MailboxName::from_wire("Entwürfe".as_bytes()).unwrap();
        assert!(matches("Entw*".as_bytes(), &e, true) && matches(b"Entw&APw-*", &e, false));
        assert!(!matches(b"Entw&APw-*", &e, true));
    }
}
