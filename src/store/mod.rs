//! Mail storage: one Maildir++ tree per user under `data_dir/mail/DOMAIN/LOCAL/`.
//! INBOX is the root (cur/ new/ tmp/); folders are `.Name` directories beside it
//! (Maildir++, as Dovecot and Courier lay them out). Storage knows no sockets: this is a
//! blocking API; async callers run it with `spawn_blocking`.

mod maildir_write;

pub use maildir_write::{deliver_to_maildir, unique_name};

use std::io;
use std::path::{Path, PathBuf};

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

#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    pub fn new(data_dir: &Path) -> Store {
        Store {
            root: data_dir.join("mail"),
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
        let dir = self.folder_dir(user, folder)?;
        if !dir.join("new").is_dir() {
            self.ensure_user(user)?;
            maildir::Maildir::from(dir.clone()).create_dirs()?;
        }
        deliver_to_maildir(&dir, message)
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
