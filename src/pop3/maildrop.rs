//! What the POP3 session needs from a mailbox, as a small trait so the protocol core does
//! not depend on store internals (and unit tests use an in-memory one), and its
//! implementation over the store's INBOX.
//!
//! The store speaks UIDs; the maildrop snapshot (message numbers 1..n as they were at login,
//! RFC 1939 §5) is the session's own view, built from `list` once.

use std::io::{self, Read};
use std::sync::Arc;

use super::body::crlf_size;
use super::in_use::Held;
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
    /// The session's lock on the maildrop (`in_use`), released with it.
    _held: Held,
}

impl StoreMaildrop {
    pub fn open(store: &Store, user: &str, held: Held) -> io::Result<StoreMaildrop> {
        store.ensure_user(user)?;
        let mb = store.mailbox(user, &MailboxName::Inbox)?;
        mb.refresh()?;
        Ok(StoreMaildrop { mb, _held: held })
    }
}

impl Maildrop for StoreMaildrop {
    fn uidvalidity(&self) -> u32 {
        self.mb.lock().uidvalidity
    }

    fn list(&mut self) -> io::Result<Vec<Entry>> {
        let (uv, paths): (u32, Vec<(u32, std::path::PathBuf)>) = {
            let ix = self.mb.lock();
            let paths = ix
                .msgs
                .iter()
                .map(|m| (m.uid, self.mb.path_of(m)))
                .collect();
            (ix.uidvalidity, paths)
        };
        // The exact CRLF size needs the bytes (imported mail may end lines in LF alone):
        // read once per message, outside the mailbox lock, and remembered (messages never
        // change in Maildir).
        let mut known = load_sizes(&self.mb.dir, uv);
        let mut out = Vec::with_capacity(paths.len());
        let mut added = false;
        for (uid, path) in paths {
            if let Some(&size) = known.get(&uid) {
                out.push(Entry { uid, size });
                continue;
            }
            added = true;
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
        if added || known.len() != out.len() {
            known = out.iter().map(|e| (e.uid, e.size)).collect();
            save_sizes(&self.mb.dir, uv, &known);
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

/// CRLF sizes of a folder's messages, kept beside the UID list: `V <uidvalidity>` then
/// `<uid> <size>` lines. Only a cache: a missing, stale or torn file means sizes are
/// computed again.
const SIZES: &str = "postern-pop3-sizes";

fn load_sizes(dir: &std::path::Path, uv: u32) -> std::collections::HashMap<u32, u64> {
    let Ok(text) = std::fs::read_to_string(dir.join(SIZES)) else {
        return Default::default();
    };
    let mut lines = text.split_inclusive('\n');
    if lines.next().map(str::trim_end) != Some(&format!("V {uv}")) {
        return Default::default();
    }
    lines
        .filter(|l| l.ends_with('\n'))
        .filter_map(|l| {
            let (u, s) = l.trim_end().split_once(' ')?;
            Some((u.parse().ok()?, s.parse().ok()?))
        })
        .collect()
}

fn save_sizes(dir: &std::path::Path, uv: u32, sizes: &std::collections::HashMap<u32, u64>) {
    let mut text = format!("V {uv}\n");
    for (u, s) in sizes {
        text.push_str(&format!("{u} {s}\n"));
    }
    if let Err(e) = crate::fsutil::write_atomic(&dir.join(SIZES), text.as_bytes(), 0o600) {
        tracing::debug!("pop3: cannot keep message sizes in {}: {e}", dir.display());
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
