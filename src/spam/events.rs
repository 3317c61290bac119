//! Training from what the user does to their mail (issue 17 §2):
//! - a message copied or moved into the `\Junk` folder, or given the `$Junk` keyword, is spam;
//! - a message moved or copied out of `\Junk` into any folder but `\Trash`, or given
//!   `$NotJunk` (RFC 9051 §2.3.2 lists both keywords), is ham.
//!
//! Which folder is `\Junk`/`\Trash` is the store's knowledge (`store::folders::special_use`).
//! The mailbox operations report the event with the messages' files, and training happens
//! before the command's reply.

use crate::config::Spam;
use crate::store::folders::special_use;
use crate::store::{Mailbox, MailboxName, Store};

use super::Class;

/// Most messages one command trains (a client moving a whole folder trains the first ones;
/// `postern spam train` is the tool for bulk).
pub const MAX_PER_EVENT: usize = 1000;
/// Larger messages are not read for training (the tokenizer reads the start of each part).
pub const MAX_MESSAGE: u64 = 2 * 1024 * 1024;

/// The training a COPY/MOVE from `from` to `to` implies.
pub fn class_of_copy(from: &MailboxName, to: &MailboxName) -> Option<Class> {
    let junk = |m: &MailboxName| special_use(m) == Some("\\Junk");
    let trash = |m: &MailboxName| special_use(m) == Some("\\Trash");
    match (junk(from), junk(to)) {
        (false, true) => Some(Class::Spam),
        (true, false) if !trash(to) => Some(Class::Ham),
        _ => None,
    }
}

/// The training keywords added by STORE imply (none when both are set at once).
pub fn class_of_keywords<S: AsRef<str>>(added: &[S]) -> Option<Class> {
    let has = |k: &str| added.iter().any(|a| a.as_ref().eq_ignore_ascii_case(k));
    match (has("$Junk"), has("$NotJunk")) {
        (true, false) => Some(Class::Spam),
        (false, true) => Some(Class::Ham),
        _ => None,
    }
}

/// The keywords the filter reads; IMAP offers them in every mailbox's FLAGS.
pub fn is_training_keyword(k: &str) -> bool {
    k.eq_ignore_ascii_case("$Junk") || k.eq_ignore_ascii_case("$NotJunk")
}

/// The files of the messages `uids` of `mb` (those still there).
pub fn paths(mb: &Mailbox, uids: &[u32]) -> Vec<std::path::PathBuf> {
    let ix = mb.lock();
    uids.iter()
        .take(MAX_PER_EVENT)
        .filter_map(|u| ix.find(*u).map(|m| mb.path_of(m)))
        .collect()
}

/// Train the messages at `paths` (bounded) for `user`, now. Blocking: the IMAP session runs
/// its commands on blocking threads, and training before the reply keeps the order of the
/// user's actions (into Junk, then out again, ends as ham).
pub fn learn_files(
    store: &Store,
    cfg: &Spam,
    user: &str,
    class: Class,
    paths: &[std::path::PathBuf],
) {
    if !cfg.junk_filter || paths.is_empty() {
        return;
    }
    let messages = paths
        .iter()
        .take(MAX_PER_EVENT)
        .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.len() <= MAX_MESSAGE))
        .filter_map(|p| std::fs::read(p).ok())
        .map(|m| Ok(std::borrow::Cow::Owned(m)));
    match super::train(store, user, messages, class, |_| {}) {
        Ok(s) => tracing::info!(
            user,
            class = ?class,
            new = s.new,
            reclassified = s.reclassified,
            already = s.already,
            "junk filter trained"
        ),
        Err(e) => tracing::warn!(user, "junk filter training failed: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> MailboxName {
        if s == "INBOX" {
            MailboxName::Inbox
        } else {
            MailboxName::Other(s.into())
        }
    }

    #[test]
    fn folder_moves() {
        assert_eq!(class_of_copy(&n("INBOX"), &n("Junk")), Some(Class::Spam));
        assert_eq!(class_of_copy(&n("Archive"), &n("Junk")), Some(Class::Spam));
        assert_eq!(class_of_copy(&n("Junk"), &n("INBOX")), Some(Class::Ham));
        assert_eq!(class_of_copy(&n("Junk"), &n("Lists")), Some(Class::Ham));
        assert_eq!(class_of_copy(&n("Junk"), &n("Trash")), None);
        assert_eq!(class_of_copy(&n("Junk"), &n("Junk")), None);
        assert_eq!(class_of_copy(&n("INBOX"), &n("Trash")), None);
        assert_eq!(class_of_copy(&n("INBOX"), &n("Archive")), None);
    }

    #[test]
    fn keywords() {
        assert_eq!(class_of_keywords(&["$Junk"]), Some(Class::Spam));
        assert_eq!(class_of_keywords(&["$notjunk", "x"]), Some(Class::Ham));
        assert_eq!(class_of_keywords(&["$Junk", "$NotJunk"]), None);
        assert_eq!(class_of_keywords::<&str>(&[]), None);
    }
}
