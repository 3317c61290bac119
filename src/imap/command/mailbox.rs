//! CREATE, DELETE, RENAME (RFC 3501 §6.3.3–§6.3.5, RFC 9051 §6.3.4–§6.3.6), SUBSCRIBE and
//! UNSUBSCRIBE (§6.3.6–§6.3.7).

use imap_codec::imap_types::mailbox::Mailbox as WireMailbox;

use super::super::session::{Session, cmd_no, cmd_ok};
use crate::logsafe::Untrusted;
use crate::store::MailboxName;
use crate::store::folders::FolderError;

/// Subscriptions per account (names need not exist, so they are not bounded by folders).
const MAX_SUBSCRIPTIONS: usize = 1000;

impl Session {
    pub(crate) fn create(&mut self, tag: &str, m: &WireMailbox<'_>, out: &mut Vec<u8>) {
        // RFC 3501 §6.3.3 / RFC 9051 §6.3.4: a trailing hierarchy delimiter declares that
        // names will be created under this one; the mailbox created is the name without it.
        let trimmed = match m {
            WireMailbox::Other(o) => match o.inner().as_ref() {
                [head @ .., b'.'] if !head.is_empty() => WireMailbox::try_from(head.to_vec()).ok(),
                _ => None,
            },
            WireMailbox::Inbox => None,
        };
        let name = match self.name_of(trimmed.as_ref().unwrap_or(m)) {
            Ok(n) => n,
            Err(e) => return cmd_no(out, tag, &e),
        };
        match self.svc.store.create_mailbox(self.state.user(), &name) {
            Ok(()) => cmd_ok(out, tag, "CREATE completed"),
            Err(FolderError::Exists) => cmd_no(out, tag, "[ALREADYEXISTS] mailbox already exists"),
            Err(e) => cmd_no(out, tag, &format!("[CANNOT] {e}")),
        }
    }

    pub(crate) fn delete(&mut self, tag: &str, m: &WireMailbox<'_>, out: &mut Vec<u8>) {
        let name = match self.name_of(m) {
            Ok(n) => n,
            Err(e) => return cmd_no(out, tag, &e),
        };
        if self.state.selected().is_some_and(|s| s.name == name) {
            self.state.deselect();
        }
        match self.svc.store.delete_mailbox(self.state.user(), &name) {
            Ok(()) => cmd_ok(out, tag, "DELETE completed"),
            Err(FolderError::NotFound) => cmd_no(out, tag, "[NONEXISTENT] no such mailbox"),
            // RFC 9051 §7.1 names this case; IMAP4rev1 clients keep getting CANNOT.
            Err(e @ FolderError::HasChildren) if self.rev2 => {
                cmd_no(out, tag, &format!("[HASCHILDREN] {e}"))
            }
            Err(e) => cmd_no(out, tag, &format!("[CANNOT] {e}")),
        }
    }

    pub(crate) fn rename(
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
        match self.svc.store.rename_mailbox(self.state.user(), &from, &to) {
            Ok(()) => {
                self.follow_rename(&from, &to);
                if self.rev2 {
                    // The new name with the old one (RFC 9051 §7.3.1 OLDNAME).
                    out.extend_from_slice(&self.list_line(&to, Some(&from)));
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
    pub(crate) fn follow_rename(&mut self, from: &MailboxName, to: &MailboxName) {
        let user = self.state.user().to_string();
        let Some(sel) = self.state.selected_mut() else {
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
                self.state.deselect();
            }
        }
    }

    pub(crate) fn subscribe(
        &mut self,
        tag: &str,
        m: &WireMailbox<'_>,
        on: bool,
        out: &mut Vec<u8>,
    ) {
        let name = match self.name_of(m) {
            Ok(n) => n,
            Err(e) => return cmd_no(out, tag, &e),
        };
        // A name that does not exist (yet, or any more) may be subscribed: RFC 3501 §6.3.6
        // lets the server validate but not drop it later, and LIST shows it \NonExistent
        // (RFC 5258 §3.1). The list is bounded, as every client byte is hostile.
        if on {
            let subs = self
                .svc
                .store
                .subscriptions(self.state.user())
                .unwrap_or_default();
            if !subs.contains(&name) && subs.len() >= MAX_SUBSCRIPTIONS {
                return cmd_no(out, tag, "[LIMIT] too many subscriptions");
            }
        }
        match self.svc.store.set_subscribed(self.state.user(), &name, on) {
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
}
