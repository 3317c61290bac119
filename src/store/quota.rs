//! Storage usage per account and the optional quota on it (`[limits] mailbox_quota`, RFC 9208
//! STORAGE). Usage is the sum of the sizes of the messages in every folder of the user. Sizes
//! come from the `,S=<size>` of the Maildir base names (written by `unique_name`), so no file
//! is stat'ed except those delivered by something else without that field. Each folder's index
//! is brought up to date first (a scan only when new/ or cur/ changed), so a message delivered
//! a moment ago counts.

use std::io;

use super::Store;
use super::mailbox::Mailbox;

/// The size a Maildir base name records (`...,S=1234` possibly followed by `,W=...`).
pub fn size_in_name(base: &str) -> Option<u64> {
    base.split(',')
        .skip(1)
        .find_map(|f| f.strip_prefix("S="))
        .and_then(|s| s.parse().ok())
}

/// The error a write refused for quota returns; the IMAP layer turns it into
/// `NO [OVERQUOTA]` (`command::write_failed`), SMTP into 452 4.2.2.
pub fn over_quota() -> io::Error {
    io::Error::new(io::ErrorKind::QuotaExceeded, "mailbox quota exceeded")
}

impl Mailbox {
    /// Total octets of the messages in this folder (index refreshed from the disk first).
    pub fn total_size(&self) -> io::Result<u64> {
        self.refresh()?;
        let ix = self.lock();
        Ok(ix.msgs.iter().map(|m| self.msg_size(m)).sum())
    }

    /// Octets of the messages with these UIDs (those no longer there count 0).
    pub fn size_of_uids(&self, uids: &[u32]) -> u64 {
        let ix = self.lock();
        uids.iter()
            .filter_map(|u| ix.msgs.binary_search_by_key(u, |m| m.uid).ok())
            .map(|i| self.msg_size(&ix.msgs[i]))
            .sum()
    }

    /// A message's octets: from its base name's `S=` when present, else from the file.
    pub fn msg_size(&self, m: &super::mailbox::Msg) -> u64 {
        size_in_name(&m.base).unwrap_or_else(|| {
            std::fs::metadata(self.path_of(m))
                .map(|md| md.len())
                .unwrap_or(0)
        })
    }
}

impl Store {
    /// Octets stored for `user`, over all folders (RFC 9208 §5.1 STORAGE counts them all).
    pub fn usage(&self, user: &str) -> io::Result<u64> {
        let mut total = 0;
        for name in self.list_mailboxes(user)? {
            if !self.mailbox_exists(user, &name) {
                continue; // INBOX before the first delivery
            }
            total += self.mailbox(user, &name)?.total_size()?;
        }
        Ok(total)
    }

    /// Err(QuotaExceeded) when storing `adding` more octets would take `user` above `limit`
    /// (0 = no limit, nothing is read).
    pub fn check_quota(&self, user: &str, limit: u64, adding: u64) -> io::Result<()> {
        if limit == 0 {
            return Ok(());
        }
        if self.usage(user)?.saturating_add(adding) > limit {
            return Err(over_quota());
        }
        Ok(())
    }

    /// Is `user` already at or above `limit` (SMTP RCPT: the mailbox is full)? A read error
    /// counts as not full: delivery then fails or succeeds on its own terms.
    pub fn is_full(&self, user: &str, limit: u64) -> bool {
        limit != 0 && self.usage(user).is_ok_and(|u| u >= limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Folder, MailboxName};

    #[test]
    fn size_from_base_name() {
        assert_eq!(size_in_name("1.M2P3Q4.host,S=1234"), Some(1234));
        assert_eq!(size_in_name("1.M2P3Q4.host,S=77,W=80"), Some(77));
        assert_eq!(size_in_name("1.M2P3Q4.host"), None);
        assert_eq!(size_in_name("1.M2P3Q4.host,S=x"), None);
    }

    #[test]
    fn usage_sums_every_folder_and_quota_refuses_beyond_limit() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(tmp.path());
        assert_eq!(store.usage("u@example.com").unwrap(), 0);
        store
            .deliver("u@example.com", Folder::Inbox, &[b'a'; 100])
            .unwrap();
        store
            .deliver("u@example.com", Folder::Named("Junk"), &[b'b'; 50])
            .unwrap();
        store
            .create_mailbox("u@example.com", &MailboxName::Other("Work".into()))
            .unwrap();
        let work = store
            .mailbox("u@example.com", &MailboxName::Other("Work".into()))
            .unwrap();
        work.append(&[b'c'; 25], Default::default(), &[], None)
            .unwrap();
        assert_eq!(store.usage("u@example.com").unwrap(), 175);
        assert!(store.check_quota("u@example.com", 0, 1_000_000).is_ok());
        assert!(store.check_quota("u@example.com", 200, 25).is_ok());
        let e = store.check_quota("u@example.com", 200, 26).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::QuotaExceeded);
        assert!(!store.is_full("u@example.com", 176));
        assert!(store.is_full("u@example.com", 175));
        assert!(!store.is_full("u@example.com", 0));
        assert_eq!(work.size_of_uids(&[1, 99]), 25);
    }
}
