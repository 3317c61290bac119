//! \Recent (RFC 3501 §2.3.2): a message is recent for the first session that selects the
//! mailbox after it arrived. The highest UID already claimed is kept in `postern-recent`, so
//! that neither a restart nor the hub dropping the folder announces a message twice or never.

use std::fs;
use std::path::Path;

use super::Index;
use crate::fsutil::write_atomic;

/// The highest UID already given to a session as \Recent.
pub const RECENT: &str = "postern-recent";

impl Index {
    /// Messages no session has claimed as \Recent yet (STATUS RECENT).
    pub fn unclaimed_recent(&self) -> usize {
        self.msgs.len() - self.msgs.partition_point(|m| m.uid <= self.recent_upto)
    }

    /// Is `uid` still unclaimed (recent for whoever claims it)?
    pub(super) fn is_unclaimed(&self, uid: u32) -> bool {
        uid > self.recent_upto
    }

    /// Claim every message up to the highest UID for one session, durably.
    pub(super) fn claim_recent(&mut self, dir: &Path) {
        let upto = self.recent_upto;
        let Some(top) = self.msgs.last().map(|m| m.uid).filter(|u| *u > upto) else {
            return;
        };
        self.recent_upto = top;
        if let Err(e) = write_unsynced(dir, top) {
            tracing::warn!("cannot record recent messages in {}: {e}", dir.display());
        }
    }
}

/// Overwrite the watermark in place, without fsyncs. \Recent is advisory: a crash that
/// loses the newest value announces a few messages as recent once more, and a torn or empty
/// file reads as "all seen" (below). The durable temp-file-and-rename it replaces cost two
/// fsyncs and a file creation on every SELECT after new mail (issue 15's profile: creating
/// inodes was the costliest open).
fn write_unsynced(dir: &Path, top: u32) -> std::io::Result<()> {
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    let text = format!("{top}\n");
    let f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(dir.join(RECENT))?;
    f.write_all_at(text.as_bytes(), 0)?;
    f.set_len(text.len() as u64)
}

/// The recent watermark; a folder without the file (made before it existed) counts everything
/// it already has UIDs for as seen, so an upgrade does not re-announce whole mailboxes.
pub(super) fn load_recent(dir: &Path, uidnext: u32) -> u32 {
    let path = dir.join(RECENT);
    match fs::read_to_string(&path) {
        // Unreadable (a crash during `write_unsynced`): everything counts as seen.
        Ok(t) => t
            .trim()
            .parse::<u32>()
            .unwrap_or(uidnext - 1)
            .min(uidnext - 1),
        Err(_) => {
            let upto = uidnext - 1;
            // Recorded now, so UIDs given out before the first claim stay recent.
            let _ = write_atomic(&path, format!("{upto}\n").as_bytes(), 0o600);
            upto
        }
    }
}
