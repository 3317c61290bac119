//! Mail storage: one Maildir++ tree per user under `data_dir/mail/DOMAIN/LOCAL/`.
//! INBOX is the root (cur/ new/ tmp/); folders are `.Name` directories beside it
//! (Maildir++, as Dovecot and Courier lay them out). Storage knows no sockets: this is a
//! blocking API; async callers run it with `spawn_blocking`.

pub mod cache_file;
pub mod flags;
pub mod folders;
pub mod mailbox;
mod maildir_write;
pub mod names;
pub mod quota;
pub mod uidlist;

pub use mailbox::{Changes, FlagOp, Mailbox, Stored};
pub use maildir_write::{deliver_to_maildir, deliver_to_maildir_with, unique_name};
pub use names::MailboxName;

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

/// The special-use folders every user has (RFC 6154), as Maildir++ directory names.
pub const SPECIAL_FOLDERS: [(&str, &str); 5] = [
    ("Sent", "\\Sent"),
    ("Drafts", "\\Drafts"),
    ("Trash", "\\Trash"),
    ("Junk", "\\Junk"),
    ("Archive", "\\Archive"),
];

/// Where a delivered message goes inside the user's tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Folder<'a> {
    Inbox,
    /// A Maildir++ folder name without the leading dot, e.g. "Junk" or "Lists.rust".
    Named(&'a str),
}

#[derive(Clone)]
pub struct Store {
    root: PathBuf,
    hub: Arc<Hub>,
    /// Group commit of the `new/` directory fsyncs of concurrent deliveries.
    dir_syncs: Arc<crate::fsutil::group_commit::DirSyncs>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("root", &self.root).finish()
    }
}

/// The change hub: one shared `Mailbox` (index + change signal) per open folder, so every
/// session on a mailbox sees the others' EXISTS/EXPUNGE/FETCH updates and deliveries wake
/// IDLE at once. Entries die with their last session.
#[derive(Default)]
pub struct Hub {
    open: Mutex<HashMap<PathBuf, Weak<Mailbox>>>,
    /// The most recently opened mailboxes stay loaded after their last session ends, so a
    /// client that reconnects (most do, often) does not rebuild the index from disk.
    /// Each with its message count when it was last opened (the budget below).
    warm: Mutex<std::collections::VecDeque<(Arc<Mailbox>, usize)>>,
}

/// How many recently used mailboxes the hub keeps loaded: up to this many, and only while
/// their messages add up to at most `WARM_MESSAGES` (an index costs ~100 bytes a message,
/// so ~20 MB at most). The one just opened always stays. A client checking STATUS of every
/// folder of a few dozen accounts then finds them loaded.
const WARM_MAILBOXES: usize = 256;
const WARM_MESSAGES: usize = 200_000;

impl Hub {
    fn get(&self, dir: &Path) -> io::Result<Arc<Mailbox>> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let mb = match open.get(dir).and_then(Weak::upgrade) {
            Some(mb) => mb,
            None => {
                open.retain(|_, w| w.strong_count() > 0);
                let mb = Arc::new(Mailbox::open(dir.to_path_buf())?);
                open.insert(dir.to_path_buf(), Arc::downgrade(&mb));
                mb
            }
        };
        drop(open);
        let count = mb.lock().msgs.len();
        let mut warm = self.warm.lock().unwrap_or_else(|e| e.into_inner());
        warm.retain(|(m, _)| !Arc::ptr_eq(m, &mb));
        warm.push_front((mb.clone(), count));
        let mut total = 0;
        let keep = warm
            .iter()
            .take_while(|(_, n)| {
                total += n;
                total <= WARM_MESSAGES
            })
            .count();
        warm.truncate(keep.clamp(1, WARM_MAILBOXES));
        Ok(mb)
    }

    fn notify(&self, dir: &Path) {
        let mb = self
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(dir)
            .and_then(Weak::upgrade);
        if let Some(mb) = mb {
            mb.notify();
        }
    }

    /// Forget a folder (after DELETE/RENAME), so a later open reloads from disk.
    fn forget_under(&self, dir: &Path) {
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|p, _| !p.starts_with(dir));
        self.warm
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(m, _)| !m.dir.starts_with(dir));
    }
}

impl Store {
    pub fn new(data_dir: &Path) -> Store {
        Store {
            root: data_dir.join("mail"),
            hub: Arc::default(),
            dir_syncs: Arc::default(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The Maildir++ root of a user (canonical `local@domain`, validated by accounts).
    pub fn user_dir(&self, user: &str) -> io::Result<PathBuf> {
        let (local, domain) = user
            .rsplit_once('@')
            .ok_or_else(|| io::Error::other("user is not an address"))?;
        for part in [local, domain] {
            if part.is_empty() || part.starts_with('.') || part.contains(['/', '\0']) {
                return Err(io::Error::other(format!("unsafe user name {user:?}")));
            }
        }
        Ok(self.root.join(domain).join(local))
    }

    /// Path of a folder's Maildir.
    pub fn folder_dir(&self, user: &str, folder: Folder<'_>) -> io::Result<PathBuf> {
        let base = self.user_dir(user)?;
        Ok(match folder {
            Folder::Inbox => base,
            Folder::Named(name) => {
                if name.is_empty()
                    || name.starts_with('.')
                    || name.contains(['/', '\0'])
                    || name.contains("..")
                {
                    return Err(io::Error::other(format!("unsafe folder name {name:?}")));
                }
                base.join(format!(".{name}"))
            }
        })
    }

    /// Create the user's INBOX and special-use folders if they are missing.
    pub fn ensure_user(&self, user: &str) -> io::Result<()> {
        maildir::Maildir::from(self.folder_dir(user, Folder::Inbox)?).create_dirs()?;
        for (name, _) in SPECIAL_FOLDERS {
            let dir = self.folder_dir(user, Folder::Named(name))?;
            maildir::Maildir::from(dir.clone()).create_dirs()?;
            // Maildir++ marks a folder with an empty maildirfolder file.
            let marker = dir.join("maildirfolder");
            if !marker.exists() {
                std::fs::write(marker, b"")?;
            }
        }
        Ok(())
    }

    /// Deliver a message durably into `new/` of the folder (creating the tree on first use).
    /// Returns the path of the delivered file. When this returns Ok, the message is on disk:
    /// the file and the directory entry are fsynced.
    pub fn deliver(&self, user: &str, folder: Folder<'_>, message: &[u8]) -> io::Result<PathBuf> {
        self.deliver_with(user, folder, message.len(), |f| f.write_all(message))
    }

    /// `deliver` for a message of `size` octets that `fill` writes (streamed from the spool).
    /// The `new/` directory fsync is shared with deliveries into the same folder running at
    /// the same time (`fsutil::group_commit`); each returns only after one that started
    /// after its own rename.
    pub fn deliver_with(
        &self,
        user: &str,
        folder: Folder<'_>,
        size: usize,
        fill: impl FnOnce(&mut dyn std::io::Write) -> io::Result<()>,
    ) -> io::Result<PathBuf> {
        let dir = self.folder_dir(user, folder)?;
        if !dir.join("new").is_dir() {
            self.ensure_user(user)?;
            maildir::Maildir::from(dir.clone()).create_dirs()?;
        }
        let path = maildir_write::deliver_grouped(&dir, size, fill, &self.dir_syncs)?;
        self.hub.notify(&dir);
        Ok(path)
    }

    /// Deliver durably into an existing mailbox named as IMAP names it (Sieve `fileinto`,
    /// `keep`), with IMAP flags: system flags (`\\Seen`…) and keywords (RFC 5232 `$Work`,
    /// `todo`…). A message with keywords is appended through the mailbox's index, which
    /// records new keyword names (`dovecot-keywords`) so IMAP announces them in FLAGS;
    /// names that are not IMAP atoms are dropped (RFC 5232 §2: invalid flags are ignored),
    /// and a mailbox that has used all 26 keyword letters gets the message without them.
    pub fn deliver_mailbox(
        &self,
        user: &str,
        name: &MailboxName,
        message: &[u8],
        imap_flags: &[String],
    ) -> io::Result<()> {
        if !self.mailbox_exists(user, &MailboxName::Inbox) {
            self.ensure_user(user)?;
        }
        let system = imap_flags
            .iter()
            .filter_map(|f| flags::system_flag(f))
            .fold(0, |a, b| a | b);
        let mut keywords: Vec<String> = Vec::new();
        for k in imap_flags {
            if flags::system_flag(k).is_none()
                && flags::is_keyword(k)
                && !keywords.iter().any(|x| x.eq_ignore_ascii_case(k))
            {
                keywords.push(k.clone());
            }
        }
        if !keywords.is_empty() {
            let mb = self.mailbox(user, name)?;
            match mb.append(message, system, &keywords, None) {
                Ok(_) => return Ok(()),
                // Only the keyword table can refuse before anything is written.
                Err(e) if e.to_string().contains("too many keywords") => {
                    tracing::warn!(%user, "{e}: delivering without the keywords {keywords:?}");
                }
                Err(e) => return Err(e),
            }
        }
        let info = flags::Flags {
            system,
            keywords: 0,
        }
        .to_info();
        let dir = self.mailbox_dir(user, name)?;
        maildir_write::deliver_to_maildir_flagged(&dir, message, &info)?;
        self.hub.notify(&dir);
        Ok(())
    }

    /// Open a mailbox through the change hub (shared with every other session on it).
    pub fn mailbox(&self, user: &str, name: &MailboxName) -> io::Result<Arc<Mailbox>> {
        let dir = self.mailbox_dir(user, name)?;
        self.hub.get(&dir)
    }

    /// Directory of a mailbox (validated name, so it stays below the user's root).
    pub fn mailbox_dir(&self, user: &str, name: &MailboxName) -> io::Result<PathBuf> {
        let base = self.user_dir(user)?;
        Ok(match name {
            MailboxName::Inbox => base,
            other => base.join(other.dir_name()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivers_into_new_with_special_folders() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::new(d.path());
        let p = s
            .deliver(
                "alice@example.com",
                Folder::Inbox,
                b"Subject: hi\r\n\r\nbody\r\n",
            )
            .unwrap();
        assert!(p.starts_with(d.path().join("mail/example.com/alice/new")));
        assert_eq!(std::fs::read(&p).unwrap(), b"Subject: hi\r\n\r\nbody\r\n");
        for (f, _) in SPECIAL_FOLDERS {
            assert!(
                d.path()
                    .join(format!("mail/example.com/alice/.{f}/cur"))
                    .is_dir()
            );
        }
        let j = s
            .deliver("alice@example.com", Folder::Named("Junk"), b"x")
            .unwrap();
        assert!(j.starts_with(d.path().join("mail/example.com/alice/.Junk/new")));
    }

    /// The hub keeps the recently opened mailboxes loaded after their last user is gone:
    /// many small ones (a client's STATUS over every folder of many accounts), within a
    /// message budget.
    #[test]
    fn recently_opened_mailboxes_stay_loaded() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::new(d.path());
        let users: Vec<String> = (0..40).map(|i| format!("u{i}@example.com")).collect();
        let mut first = Vec::new();
        for u in &users {
            s.deliver(u, Folder::Inbox, b"Subject: hi\r\n\r\nx\r\n")
                .unwrap();
            let mb = s.mailbox(u, &MailboxName::Inbox).unwrap();
            first.push(Arc::as_ptr(&mb));
        }
        // Every one of the 40 (more than the 32 kept before) is still the same loaded one.
        for (u, p) in users.iter().zip(&first) {
            let mb = s.mailbox(u, &MailboxName::Inbox).unwrap();
            assert_eq!(Arc::as_ptr(&mb), *p, "{u} was reloaded");
        }
        assert_eq!(s.hub.warm.lock().unwrap().len(), 40);
    }

    /// Sieve imap4flags: system flags and keywords both survive delivery, the keyword names
    /// are recorded (IMAP's FLAGS lists them), invalid names are dropped.
    #[test]
    fn deliver_mailbox_keeps_keywords() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::new(d.path());
        let u = "alice@example.com";
        let flags: Vec<String> = ["\\Flagged", "$Work", "todo", "bad word", "\\Bogus", "$work"]
            .map(String::from)
            .to_vec();
        s.deliver_mailbox(u, &MailboxName::Inbox, b"Subject: a\r\n\r\nx\r\n", &flags)
            .unwrap();
        s.deliver_mailbox(
            u,
            &MailboxName::Inbox,
            b"Subject: b\r\n\r\ny\r\n",
            &["\\Seen".into()],
        )
        .unwrap();
        let mb = s.mailbox(u, &MailboxName::Inbox).unwrap();
        mb.refresh().unwrap();
        let ix = mb.lock();
        assert_eq!(ix.keywords, vec!["$Work".to_string(), "todo".to_string()]);
        assert_eq!(ix.msgs.len(), 2);
        let with_kw = ix
            .msgs
            .iter()
            .find(|m| m.flags.keywords != 0)
            .expect("keywords kept");
        assert_eq!(ix.keyword_names(with_kw.flags), vec!["$Work", "todo"]);
        assert_eq!(with_kw.flags.system, flags::FLAGGED);
        assert!(
            ix.msgs
                .iter()
                .any(|m| m.flags.system == flags::SEEN && m.flags.keywords == 0)
        );
    }

    #[test]
    fn names_cannot_escape() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::new(d.path());
        assert!(s.user_dir("../x@example.com").is_err());
        assert!(s.user_dir("a@../../etc").is_err());
        assert!(
            s.folder_dir("a@example.com", Folder::Named("../../x"))
                .is_err()
        );
        assert!(s.folder_dir("a@example.com", Folder::Named("a/b")).is_err());
    }
}
