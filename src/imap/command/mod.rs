//! IMAP commands, one file per command family, each an `impl Session` block. This file holds
//! the dispatcher and the one table of which command each connection state allows
//! (RFC 3501 §6.1–§6.4, RFC 9051 §6.1–§6.4): handlers below it can rely on the state.
//!
//! | file          | commands                                             |
//! |---------------|------------------------------------------------------|
//! | `any.rs`      | CAPABILITY, NOOP, LOGOUT, ID, NAMESPACE, CHECK       |
//! | `auth.rs`     | STARTTLS, LOGIN, AUTHENTICATE                        |
//! | `enable.rs`   | ENABLE                                               |
//! | `select.rs`   | SELECT, EXAMINE, CLOSE, UNSELECT                     |
//! | `mailbox.rs`  | CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE       |
//! | `list.rs`     | LIST (LIST-EXTENDED, LIST-STATUS), LSUB              |
//! | `status.rs`   | STATUS                                               |
//! | `append.rs`   | APPEND                                               |
//! | `idle.rs`     | IDLE, DONE                                           |
//! | `fetch.rs`    | FETCH, UID FETCH                                     |
//! | `store.rs`    | STORE, UID STORE                                     |
//! | `copy_move.rs`| COPY, MOVE and their UID forms                       |
//! | `expunge.rs`  | EXPUNGE, UID EXPUNGE                                 |
//! | `search.rs`   | SEARCH, UID SEARCH, ESEARCH/SEARCHRES result options |

pub mod any;
pub mod append;
pub mod auth;
pub mod compress;
pub mod copy_move;
pub mod enable;
pub mod expunge;
pub mod fetch;
pub mod idle;
pub mod list;
pub mod mailbox;
pub mod search;
pub mod select;
pub mod status;
pub mod store;

use std::sync::Arc;

use imap_codec::imap_types::command::{Command, CommandBody};
use imap_codec::imap_types::mailbox::Mailbox as WireMailbox;

use super::session::{Session, State, Step, cmd_bad};
use crate::store::{Mailbox, MailboxName};

/// The states a command is valid in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Valid {
    /// Any state (RFC 3501 §6.1).
    Any,
    /// Not authenticated only (§6.2).
    NotAuthenticated,
    /// Authenticated or selected (§6.3; IDLE too, RFC 9051 §6.3.13).
    Authenticated,
    /// Selected only (§6.4).
    Selected,
}

/// The one table: where each command (by its name as `CommandBody::name` spells it) is valid.
/// Commands we do not implement count as authenticated-state ones, so a client that is not
/// logged in learns that first.
fn valid_in(name: &str) -> Valid {
    match name {
        "CAPABILITY" | "NOOP" | "LOGOUT" | "ID" => Valid::Any,
        "STARTTLS" | "LOGIN" | "AUTHENTICATE" => Valid::NotAuthenticated,
        "CHECK" | "CLOSE" | "UNSELECT" | "EXPUNGE" | "SEARCH" | "FETCH" | "STORE" | "COPY"
        | "MOVE" => Valid::Selected,
        _ => Valid::Authenticated,
    }
}

/// May `name` run in `state`? Err is the text of the BAD answer.
pub fn allowed(state: &State, name: &str) -> Result<(), &'static str> {
    match (valid_in(name), state) {
        (Valid::Any, _) => Ok(()),
        (Valid::NotAuthenticated, State::NotAuthenticated) => Ok(()),
        (Valid::NotAuthenticated, _) if name == "STARTTLS" => {
            Err("TLS is already active or not allowed now")
        }
        (Valid::NotAuthenticated, _) => Err("already authenticated"),
        (_, State::NotAuthenticated) => Err("log in first"),
        (Valid::Authenticated, _) => Ok(()),
        (Valid::Selected, State::Selected { .. }) => Ok(()),
        (Valid::Selected, _) => Err("select a mailbox first"),
    }
}

/// The NO text for a write to the store that failed (RFC 5530 §3): a full quota or disk is
/// the user's to know about and passes when space returns; anything else is our fault.
pub(crate) fn write_failed(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::QuotaExceeded => "[OVERQUOTA] mailbox quota exceeded".into(),
        std::io::ErrorKind::StorageFull => "[LIMIT] mail storage is full, try again later".into(),
        _ => format!("[SERVERBUG] {e}"),
    }
}

fn mailbox_name(m: &WireMailbox<'_>) -> Result<MailboxName, String> {
    match m {
        WireMailbox::Inbox => Ok(MailboxName::Inbox),
        WireMailbox::Other(o) => {
            MailboxName::from_wire(o.inner().as_ref()).map_err(|e| format!("[CANNOT] {e}"))
        }
    }
}

impl Session {
    /// Run one decoded command. `esearch`: the RETURN options of a SEARCH RETURN, which the
    /// codec does not parse (`parse::esearch`).
    pub(crate) fn command(
        &mut self,
        cmd: Command<'_>,
        out: &mut Vec<u8>,
        esearch: Option<Vec<String>>,
    ) -> Step {
        let tag = cmd.tag.as_ref().to_string();
        if let Err(why) = allowed(&self.state, cmd.body.name()) {
            cmd_bad(out, &tag, why);
            return Step::Continue;
        }
        use CommandBody as C;
        match cmd.body {
            C::Capability => self.capability(&tag, out),
            C::Noop => self.noop(&tag, out),
            C::Logout => return self.logout(&tag, out),
            C::Id { .. } => self.id(&tag, out),
            C::StartTLS => return self.starttls(&tag, out),
            C::Login { username, password } => self.login_cmd(&tag, &username, &password, out),
            C::Authenticate {
                mechanism,
                initial_response,
            } => self.authenticate(tag, &mechanism, initial_response.as_ref(), out),
            C::Enable { capabilities } => {
                let caps: Vec<String> = capabilities
                    .as_ref()
                    .iter()
                    .map(|c| c.to_string())
                    .collect();
                self.enable_cmd(&tag, &caps, out)
            }
            C::Namespace => self.namespace(&tag, out),
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
            } => self.lsub(&tag, &reference, &mailbox_wildcard, out),
            // LIST is parsed before the codec sees it (LIST-EXTENDED, `parse::list`).
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
            } => self.append_cmd(&tag, &mailbox, &flags, date.as_ref(), &message, out),
            C::Idle => self.idle(tag, out),
            C::Check => self.check(&tag, out),
            C::Close => self.close(&tag, out),
            C::Unselect => self.unselect(&tag, out),
            C::Expunge => self.expunge(&tag, None, out),
            C::ExpungeUid { sequence_set } => self.uid_expunge(&tag, &sequence_set, out),
            C::Search {
                charset,
                criteria,
                uid,
            } => self.search_cmd(&tag, charset.as_ref(), criteria.as_ref(), uid, esearch, out),
            C::Fetch {
                sequence_set,
                macro_or_item_names,
                uid,
                modifiers,
            } => self.fetch(
                tag,
                &sequence_set,
                &macro_or_item_names,
                uid,
                &modifiers,
                out,
            ),
            C::Store {
                sequence_set,
                kind,
                response,
                flags,
                uid,
                modifiers,
            } => self.store_cmd(
                &tag,
                &sequence_set,
                kind,
                response,
                &flags,
                uid,
                &modifiers,
                out,
            ),
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

    /// A mailbox name from a command, read as UTF-8 once the client enabled UTF-8 names.
    pub(crate) fn name_of(&self, m: &WireMailbox<'_>) -> Result<MailboxName, String> {
        match m {
            WireMailbox::Other(o) if self.utf8_names() => {
                MailboxName::from_utf8_wire(o.inner().as_ref()).map_err(|e| format!("[CANNOT] {e}"))
            }
            _ => mailbox_name(m),
        }
    }

    /// Open an existing mailbox of the logged-in user.
    pub(crate) fn open(&self, name: &MailboxName) -> Result<Arc<Mailbox>, String> {
        let user = self.state.user();
        if !self.svc.store.mailbox_exists(user, name) {
            return Err("[NONEXISTENT] no such mailbox".into());
        }
        self.svc
            .store
            .mailbox(user, name)
            .map_err(|e| format!("[SERVERBUG] {e}"))
    }
}

#[cfg(test)]
mod tests;
