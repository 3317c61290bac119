//! Mailbox management in the Maildir++ layout: list, create, delete, rename (INBOX too),
//! subscriptions (Dovecot's `subscriptions` file, one name per line) and special-use roles.

use std::collections::BTreeSet;
use std::fs;
use std::io;

use super::names::{DELIM, MailboxName};
use super::{SPECIAL_FOLDERS, Store};
use crate::fsutil::{fsync_dir, write_atomic};

#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    #[error("mailbox already exists")]
    Exists,
    #[error("mailbox does not exist")]
    NotFound,
    #[error("mailbox has children, delete them first")]
    HasChildren,
    #[error("INBOX cannot be deleted")]
    Inbox,
    #[error("cannot rename a mailbox into itself")]
    IntoItself,
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// The special-use attribute of a mailbox (RFC 6154), if it has one.
pub fn special_use(name: &MailboxName) -> Option<&'static str> {
    let MailboxName::Other(n) = name else {
        return None;
    };
    SPECIAL_FOLDERS
        .iter()
        .find(|(f, _)| f == n)
        .map(|(_, attr)| *attr)
}

impl Store {
    /// Every mailbox of a user (INBOX first, then by name).
    pub fn list_mailboxes(&self, user: &str) -> io::Result<Vec<MailboxName>> {
        let root = self.user_dir(user)?;
        let mut names = BTreeSet::new();
        match fs::read_dir(&root) {
            Ok(rd) => {
                for e in rd {
                    let e = e?;
                    let Ok(n) = e.file_name().into_string() else {
                        continue;
                    };
                    let Some(n) = n.strip_prefix('.') else {
                        continue;
                    };
                    if n.is_empty() || n == "." || !e.path().join("cur").is_dir() {
                        continue;
                    }
                    // Names on disk that are not valid (made by something else) are skipped.
                    if let Ok(m @ MailboxName::Other(_)) = MailboxName::from_utf7(n) {
                        names.insert(m.wire().to_string());
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let mut out = vec![MailboxName::Inbox];
        out.extend(names.into_iter().map(MailboxName::Other));
        Ok(out)
    }

    pub fn mailbox_exists(&self, user: &str, name: &MailboxName) -> bool {
        self.mailbox_dir(user, name)
            .map(|d| d.join("cur").is_dir())
            .unwrap_or(false)
    }

    /// CREATE: the mailbox and any missing parents (RFC 3501 §6.3.3).
    pub fn create_mailbox(&self, user: &str, name: &MailboxName) -> Result<(), FolderError> {
        if *name == MailboxName::Inbox || self.mailbox_exists(user, name) {
            return Err(FolderError::Exists);
        }
        self.ensure_user(user)?;
        for n in name.parents().iter().chain(std::iter::once(name)) {
            let dir = self.mailbox_dir(user, n)?;
            if dir.join("cur").is_dir() {
                continue;
            }
            for sub in ["cur", "new", "tmp"] {
                fs::create_dir_all(dir.join(sub))?;
            }
            fs::write(dir.join("maildirfolder"), b"")?;
        }
        fsync_dir(&self.user_dir(user)?)?;
        Ok(())
    }

    fn children(&self, user: &str, name: &MailboxName) -> io::Result<Vec<MailboxName>> {
        let prefix = format!("{}{DELIM}", name.wire());
        Ok(self
            .list_mailboxes(user)?
            .into_iter()
            .filter(|m| m.wire().starts_with(&prefix))
            .collect())
    }

    /// DELETE (RFC 3501 §6.3.4). A mailbox with children is refused, as Dovecot does with
    /// Maildir++ (it cannot keep a \\Noselect parent).
    pub fn delete_mailbox(&self, user: &str, name: &MailboxName) -> Result<(), FolderError> {
        if *name == MailboxName::Inbox {
            return Err(FolderError::Inbox);
        }
        if !self.mailbox_exists(user, name) {
            return Err(FolderError::NotFound);
        }
        if !self.children(user, name)?.is_empty() {
            return Err(FolderError::HasChildren);
        }
        let dir = self.mailbox_dir(user, name)?;
        // Rename first so the deletion is atomic for readers, then remove the tree.
        let trash = self.user_dir(user)?.join(format!(
            "..deleted.{}.{}",
            std::process::id(),
            crate::fsutil::unique()
        ));
        fs::rename(&dir, &trash)?;
        self.hub.forget_under(&dir);
        fs::remove_dir_all(&trash)?;
        fsync_dir(&self.user_dir(user)?)?;
        // The subscription stays: the server MUST NOT remove a name from the subscription
        // list on its own (RFC 3501 §6.3.6, RFC 9051 §6.3.7); LIST (SUBSCRIBED) then shows it
        // \NonExistent and LSUB \Noselect. Dovecot keeps it too.
        Ok(())
    }

    /// RENAME (RFC 3501 §6.3.5): children move along; renaming INBOX moves its messages
    /// into the new mailbox and leaves INBOX empty.
    pub fn rename_mailbox(
        &self,
        user: &str,
        from: &MailboxName,
        to: &MailboxName,
    ) -> Result<(), FolderError> {
        if !self.mailbox_exists(user, from) {
            return Err(FolderError::NotFound);
        }
        if *to == MailboxName::Inbox || self.mailbox_exists(user, to) {
            return Err(FolderError::Exists);
        }
        if to.wire().starts_with(&format!("{}{DELIM}", from.wire())) {
            return Err(FolderError::IntoItself);
        }
        for p in to.parents() {
            if !self.mailbox_exists(user, &p) {
                self.create_mailbox(user, &p)?;
            }
        }
        let root = self.user_dir(user)?;
        if *from == MailboxName::Inbox {
            self.create_mailbox(user, to)?;
            let src = self.mailbox(user, from)?;
            let uids: Vec<u32> = src.lock().msgs.iter().map(|m| m.uid).collect();
            let dst = self.mailbox(user, to)?;
            let (_, moved) = src.copy_to(&uids, &dst)?;
            let done: Vec<u32> = moved.iter().map(|(s, _)| *s).collect();
            src.remove_uids(&done)?;
            return Ok(());
        }
        let children = self.children(user, from)?;
        let from_dir = self.mailbox_dir(user, from)?;
        fs::rename(&from_dir, self.mailbox_dir(user, to)?)?;
        self.hub.forget_under(&from_dir);
        for c in children {
            let rest = &c.wire()[from.wire().len()..];
            let new = MailboxName::from_utf7(&format!("{}{rest}", to.wire()))
                .map_err(|e| io::Error::other(e.to_string()))?;
            let cdir = self.mailbox_dir(user, &c)?;
            fs::rename(&cdir, self.mailbox_dir(user, &new)?)?;
            self.hub.forget_under(&cdir);
        }
        fsync_dir(&root)?;
        // Subscriptions are not moved: RFC 9051 §6.3.6 leaves the old name subscribed (the
        // client re-subscribes if it wants to), and Dovecot 2.3 does the same (checked: after
        // RENAME b d, LSUB still lists b and not d).
        Ok(())
    }

    /// Subscribed names (they may name mailboxes that no longer exist, RFC 3501 §6.3.6).
    pub fn subscriptions(&self, user: &str) -> io::Result<Vec<MailboxName>> {
        let path = self.user_dir(user)?.join("subscriptions");
        let text = match fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // Until the user subscribes to something, INBOX and the special folders are.
                let mut v = vec![MailboxName::Inbox];
                v.extend(
                    SPECIAL_FOLDERS
                        .iter()
                        .map(|(n, _)| MailboxName::Other(n.to_string())),
                );
                return Ok(v);
            }
            Err(e) => return Err(e),
        };
        Ok(text
            .lines()
            .filter_map(|l| MailboxName::from_utf7(l.trim()).ok())
            .collect())
    }

    pub fn set_subscribed(&self, user: &str, name: &MailboxName, on: bool) -> io::Result<()> {
        let mut subs = self.subscriptions(user)?;
        subs.retain(|n| n != name);
        if on {
            subs.push(name.clone());
        }
        let mut text = String::new();
        for s in subs {
            text.push_str(s.wire());
            text.push('\n');
        }
        let dir = self.user_dir(user)?;
        fs::create_dir_all(&dir)?;
        write_atomic(&dir.join("subscriptions"), text.as_bytes(), 0o600)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_rename_delete() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::new(d.path());
        let u = "a@example.com";
        s.ensure_user(u).unwrap();
        let n = |x: &str| MailboxName::from_wire(x.as_bytes()).unwrap();
        s.create_mailbox(u, &n("Lists.rust")).unwrap();
        assert!(s.mailbox_exists(u, &n("Lists")));
        assert!(matches!(
            s.create_mailbox(u, &n("Lists")),
            Err(FolderError::Exists)
        ));
        assert!(matches!(
            s.delete_mailbox(u, &n("Lists")),
            Err(FolderError::HasChildren)
        ));
        s.rename_mailbox(u, &n("Lists"), &n("Old.Lists")).unwrap();
        assert!(s.mailbox_exists(u, &n("Old.Lists.rust")));
        assert!(!s.mailbox_exists(u, &n("Lists")));
        s.delete_mailbox(u, &n("Old.Lists.rust")).unwrap();
        assert!(!s.mailbox_exists(u, &n("Old.Lists.rust")));
        assert_eq!(special_use(&n("Sent")), Some("\\Sent"));
        s.deliver(u, super::super::Folder::Inbox, b"Subject: x\r\n\r\n")
            .unwrap();
        s.rename_mailbox(u, &MailboxName::Inbox, &n("Saved"))
            .unwrap();
        assert_eq!(s.mailbox(u, &n("Saved")).unwrap().lock().msgs.len(), 1);
        assert_eq!(
            s.mailbox(u, &MailboxName::Inbox).unwrap().lock().msgs.len(),
            0
        );
        let names = s.list_mailboxes(u).unwrap();
        assert!(!names.contains(&n("Entwürfe")));
        s.create_mailbox(u, &n("Entwürfe")).unwrap();
        assert!(s.list_mailboxes(u).unwrap().contains(&n("Entw&APw-rfe")));
        assert!(
            d.path()
                .join("mail/example.com/a/.Entw&APw-rfe/cur")
                .is_dir()
        );
    }
}
