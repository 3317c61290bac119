//! What changed in a mailbox since a caller last looked, in UIDs: the store knows no
//! sequence numbers (those are the IMAP view's, `imap/view.rs`), so POP3 or anything else
//! can keep its own picture of the same mailbox.

use std::io;

use super::super::flags::Flags;
use super::Mailbox;

/// The answer to `Mailbox::changes`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Of the caller's known UIDs, those no longer in the mailbox (ascending).
    pub removed: Vec<u32>,
    /// UIDs above the highest known one (ascending), each with whether it is \Recent for
    /// this caller (RFC 3501 §2.3.2).
    pub added: Vec<(u32, bool)>,
    /// Known UIDs still present whose flags changed after `since`: UID, flags, MODSEQ
    /// (ascending by UID). Empty when `since` is 0 (the caller has seen nothing yet).
    pub flags: Vec<(u32, Flags, u64)>,
    /// The mailbox's highest MODSEQ now: the caller's next `since`.
    pub modseq: u64,
}

impl Mailbox {
    /// Look at the disk and report what changed relative to `known` (the caller's ascending
    /// UIDs) and `since` (the highest MODSEQ it saw). `claim` moves new/ into cur/ and claims
    /// new messages as \Recent for this caller alone (the first session to select the
    /// mailbox after they arrived; EXAMINE sees them as recent but does not take that from
    /// a later SELECT, RFC 3501 §6.3.2).
    pub fn changes(&self, known: &[u32], since: u64, claim: bool) -> io::Result<Changes> {
        let mut ix = self.lock();
        let changed = ix.scan(&self.dir, false)?;
        if claim {
            ix.move_new_to_cur(&self.dir);
        }
        if changed {
            self.notify();
        }
        let removed: Vec<u32> = known
            .iter()
            .copied()
            .filter(|u| ix.find(*u).is_none())
            .collect();
        let last = known.last().copied().unwrap_or(0);
        let start = ix.msgs.partition_point(|m| m.uid <= last);
        let added = ix.msgs[start..]
            .iter()
            .map(|m| (m.uid, ix.is_unclaimed(m.uid)))
            .collect();
        if claim {
            ix.claim_recent(&self.dir);
        }
        let mut flags = Vec::new();
        if since != 0 && ix.modseq > since {
            for uid in known {
                if let Some(m) = ix.find(*uid)
                    && m.modseq > since
                {
                    flags.push((m.uid, m.flags, m.modseq));
                }
            }
        }
        Ok(Changes {
            removed,
            added,
            flags,
            modseq: ix.modseq,
        })
    }
}
