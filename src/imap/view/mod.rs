//! One session's picture of its selected mailbox, and the message sequence numbers of
//! RFC 3501 §2.3.1.2 / RFC 9051 §2.3.1.2: sequence number n is `uids[n-1]`. The store speaks
//! UIDs only (`store::Changes`); turning its changes into untagged EXPUNGE/EXISTS/RECENT/
//! FETCH responses, in the order and at the moments RFC 3501 §7.4.1 allows, happens here.

use std::io;

use crate::store::Mailbox;
use crate::store::flags::Flags;
pub use recent::RecentSet;

mod recent;

/// One session's picture of a selected mailbox.
#[derive(Debug, Default, Clone)]
pub struct View {
    /// Ascending; sequence number n is `uids[n-1]`.
    pub uids: Vec<u32>,
    /// The mailbox's HIGHESTMODSEQ when this view last synced (0: never).
    pub modseq: u64,
    /// UIDs that are \Recent for this session (RFC 3501 §2.3.2).
    pub recent: RecentSet,
}

/// What a session learns when it syncs its view (RFC 3501 §7: untagged EXISTS/EXPUNGE/FETCH).
#[derive(Debug, PartialEq, Eq)]
pub enum Update {
    /// Sequence number, UID.
    Expunge(u32, u32),
    Exists(u32),
    Recent(u32),
    /// Sequence number, UID, new flags, modseq.
    Flags(u32, u32, Flags, u64),
}

impl View {
    /// Ask the store what changed and bring the view up to date. `expunges` false holds
    /// expunges back (RFC 3501 §7.4.1: not during FETCH, STORE or SEARCH); `rw` lets this
    /// view claim new messages as \Recent (see `Mailbox::changes`).
    pub fn sync(&mut self, mb: &Mailbox, expunges: bool, rw: bool) -> io::Result<Vec<Update>> {
        let ch = mb.changes(&self.uids, self.modseq, rw)?;
        let mut out = Vec::new();
        if expunges && !ch.removed.is_empty() {
            // Highest first, so each sequence number is valid when the client reads it.
            for i in (0..self.uids.len()).rev() {
                let uid = self.uids[i];
                if ch.removed.binary_search(&uid).is_ok() {
                    out.push(Update::Expunge(i as u32 + 1, uid));
                    self.uids.remove(i);
                    self.recent.remove(&uid);
                }
            }
        }
        let mut new_recent = 0;
        for (uid, recent) in &ch.added {
            let prev = self.uids.last().copied();
            self.uids.push(*uid);
            if *recent {
                self.recent.push(prev, *uid);
                new_recent += 1;
            }
        }
        let first = self.modseq == 0;
        if !ch.added.is_empty() || first {
            out.push(Update::Exists(self.uids.len() as u32));
            if new_recent > 0 || first {
                out.push(Update::Recent(self.recent.len() as u32));
            }
        }
        for (uid, flags, modseq) in ch.flags {
            if let Ok(i) = self.uids.binary_search(&uid) {
                out.push(Update::Flags(i as u32 + 1, uid, flags, modseq));
            }
        }
        self.modseq = ch.modseq;
        Ok(out)
    }

    /// Resolve a sequence set to (seq, uid) pairs in ascending order. None: a sequence
    /// number beyond the mailbox (RFC 3501 §9 seq-number). With `uid`, UIDs not in the view
    /// are left out and `*` is the highest UID (§6.4.8).
    pub fn resolve(
        &self,
        set: &imap_codec::imap_types::sequence::SequenceSet,
        uid: bool,
    ) -> Option<Vec<(u32, u32)>> {
        let n = self.uids.len() as u32;
        let max = if uid {
            self.uids.last().copied().unwrap_or(0)
        } else {
            n
        };
        let mut out = Vec::new();
        for (lo, hi) in super::seqset::bounds(set, max) {
            if uid {
                let start = self.uids.partition_point(|u| *u < lo);
                for (i, u) in self.uids[start..].iter().enumerate() {
                    if *u > hi {
                        break;
                    }
                    out.push((start as u32 + i as u32 + 1, *u));
                }
            } else {
                if lo == 0 || hi > n {
                    return None;
                }
                for s in lo..=hi {
                    out.push((s, self.uids[s as usize - 1]));
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        Some(out)
    }
}

#[cfg(test)]
mod tests;
