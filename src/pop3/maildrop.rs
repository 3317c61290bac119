//! What the POP3 session needs from a mailbox, as a small trait so the protocol core does
//! not depend on store internals (and unit tests use an in-memory one), and its
//! implementation over the store's INBOX.
//!
//! The store speaks UIDs; the maildrop snapshot (message numbers 1..n as they were at login,
//! RFC 1939 §5) is the session's own view, built from `list` once.

use std::io::{self, Read};
use std::sync::Arc;

use super::body::crlf_size;
use crate::store::{FlagOp, Mailbox, MailboxName, Store};

/// One message of the maildrop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub uid: u32,
    /// Octets of the canonical CRLF form (RFC 1939 §5), what RETR sends before stuffing.
    pub size: u64,
}

pub trait Maildrop: Send {
    /// UIDVALIDITY of the mailbox: with the UID it makes the UIDL value.
    fn uidvalidity(&self) -> u32;
    /// The messages now, ascending by UID.
    fn list(&mut self) -> io::Result<Vec<Entry>>;
    /// The stored bytes of a message (canonicalised and stuffed by the session).
    fn open(&mut self, uid: u32) -> io::Result<Box<dyn Read + Send>>;
    /// Remove messages durably by UID (the UPDATE state, RFC 1939 §6). UIDs already gone
    /// (expunged over IMAP meanwhile) are not an error.
    fn expunge(&mut self, uids: &[u32]) -> io::Result<()>;
    /// Mark retrieved messages \Seen, so an IMAP client of the same account sees them read.
    fn mark_seen(&mut self, uids: &[u32]) -> io::Result<()>;
}

/// The user's INBOX in the store, through the change hub (so IMAP sessions on it see
/// POP3's deletions as EXPUNGE at once).
pub struct StoreMaildrop {
    mb: Arc<Mailbox>,
}

impl StoreMaildrop {
    pub fn open(store: &Store, user: &str) -> io::Result<StoreMaildrop> {
        store.ensure_user(user)?;
        let mb = store.mailbox(user, &MailboxName::Inbox)?;
        mb.refresh()?;
        Ok(StoreMaildrop { mb })
    }
}

impl Maildrop for StoreMaildrop {
    fn uidvalidity(&self) -> u32 {
        self.mb.lock().uidvalidity
    }

    fn list(&mut self) -> io::Result<Vec<Entry>> {
        let paths: Vec<(u32, std::path::PathBuf)> = {
            let ix = self.mb.lock();
            ix.msgs
                .iter()
                .map(|m| (m.uid, self.mb.path_of(m)))
                .collect()
        };
        // The exact CRLF size needs the bytes (imported mail may end lines in LF alone);
        // done once per login, outside the mailbox lock.
        let mut out = Vec::with_capacity(paths.len());
        for (uid, path) in paths {
            match std::fs::File::open(&path) {
                Ok(f) => out.push(Entry {
                    uid,
                    size: crlf_size(io::BufReader::new(f))?,
                }),
                // Renamed by a flag change or expunged since the lock was released.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    if let Some(f) = self.reopen(uid) {
                        out.push(Entry {
                            uid,
                            size: crlf_size(io::BufReader::new(f))?,
                        });
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    fn open(&mut self, uid: u32) -> io::Result<Box<dyn Read + Send>> {
        self.reopen(uid)
            .map(|f| Box::new(f) as Box<dyn Read + Send>)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "message expunged"))
    }

    fn expunge(&mut self, uids: &[u32]) -> io::Result<()> {
        if uids.is_empty() {
            return Ok(());
        }
        self.mb.refresh()?;
        self.mb.remove_uids(uids)
    }

    fn mark_seen(&mut self, uids: &[u32]) -> io::Result<()> {
        if uids.is_empty() {
            return Ok(());
        }
        self.mb
            .store(uids, FlagOp::Add, crate::store::flags::SEEN, &[], None)
            .map(|_| ())
    }
}

impl StoreMaildrop {
    /// Open a message by UID, looking at the disk again if its file was renamed (a flag
    /// change by an IMAP session moves it between names).
    fn reopen(&self, uid: u32) -> Option<std::fs::File> {
        for attempt in 0..2 {
            if attempt == 1 {
                self.mb.refresh().ok()?;
            }
            let path = {
                let ix = self.mb.lock();
                ix.find(uid).map(|m| self.mb.path_of(m))?
            };
            if let Ok(f) = std::fs::File::open(path) {
                return Some(f);
            }
        }
        None
    }
}
