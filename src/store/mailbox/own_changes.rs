//! Not re-reading the Maildir on every command. A full scan of new/ and cur/ costs a
//! directory read and a name map per message; under load it was most of an IMAP command's
//! CPU (issue 15's profile: getdents64, the scan's hashing and allocation). The directories'
//! mtimes say when something changed, but our own renames, links and unlinks change them on
//! every STORE, APPEND and EXPUNGE, and a stamp from the last two seconds may hide a change
//! made in the same clock tick.
//!
//! So the index remembers the mtimes it is known to match (`Index::seen`): set by a full
//! scan (the mtimes read before the directories were), and carried across a change of our
//! own made under the mailbox lock: when the mtimes before it were the known ones, the
//! mtimes after it are known too. A change by another program shows up as mtimes nobody
//! knows, and the next look scans. What a stamp cannot show (a change in the same tick as
//! the stamp, or one racing our own change) is caught by a full scan at least every
//! `DIRTY_RESCAN` while the directories are recent: another program's change is seen a
//! moment later, never lost. Our own changes are in the index at once.

use std::io;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use super::{Index, mtime};

/// Longest time a known-but-recent stamp is trusted before the directories are read again.
pub(super) const DIRTY_RESCAN: Duration = Duration::from_millis(250);

/// new/ and cur/ modification times.
pub(super) type Stamp = (SystemTime, SystemTime);

pub(super) fn stamp_of(dir: &Path) -> io::Result<Stamp> {
    Ok((mtime(&dir.join("new"))?, mtime(&dir.join("cur"))?))
}

impl Index {
    /// May a scan that found `now` on disk be skipped?
    pub(super) fn scan_skippable(&self, now: Stamp) -> bool {
        self.stamp == Some(now)
            || (self.seen == Some(now)
                && self.last_full.is_some_and(|t| t.elapsed() < DIRTY_RESCAN))
    }

    /// A full scan began with the directories at `now`.
    pub(super) fn scanned(&mut self, now: Stamp) {
        self.seen = Some(now);
        self.last_full = Some(Instant::now());
    }

    /// Before a change of our own to new/ or cur/ (under the lock): the mtimes now.
    pub(super) fn own_change_begin(&self, dir: &Path) -> Option<Stamp> {
        stamp_of(dir).ok()
    }

    /// After it: when the index matched the disk before (`pre` is what it knew; only cur/
    /// compared unless `touched_new`), it matches the disk now. Otherwise the next look
    /// scans.
    pub(super) fn own_change_end(&mut self, dir: &Path, pre: Option<Stamp>, touched_new: bool) {
        let (Some(seen), Some(pre)) = (self.seen, pre) else {
            self.seen = None;
            return;
        };
        let known = if touched_new {
            seen == pre
        } else {
            seen.1 == pre.1
        };
        self.seen = match stamp_of(dir) {
            Ok(post) if known && touched_new => Some(post),
            // new/ keeps the mtime we knew: if another program changed it, it differs.
            Ok(post) if known => Some((seen.0, post.1)),
            _ => None,
        };
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::PathBuf;
    use std::time::{Duration, SystemTime};

    use super::super::{FlagOp, Mailbox, UIDLIST};
    use super::{DIRTY_RESCAN, stamp_of};
    use crate::store::flags;

    fn mk() -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("box");
        for s in ["cur", "new", "tmp"] {
            fs::create_dir_all(p.join(s)).unwrap();
        }
        (d, p)
    }

    fn set_mtime(dir: &std::path::Path, t: SystemTime) {
        fs::File::open(dir).unwrap().set_modified(t).unwrap();
    }

    #[test]
    fn own_changes_keep_the_index_known_and_foreign_ones_do_not() {
        let (_d, p) = mk();
        let mb = Mailbox::open(p.clone()).unwrap();
        mb.append(b"1", 0, &[], None).unwrap();
        mb.append(b"2", 0, &[], None).unwrap();
        mb.changes(&[], 0, true).unwrap();
        mb.store(&[1], FlagOp::Add, flags::SEEN, &[], None).unwrap();
        mb.store(&[2], FlagOp::Add, flags::DELETED, &[], None)
            .unwrap();
        assert_eq!(mb.expunge(None).unwrap(), vec![2]);
        assert_eq!(mb.lock().seen, Some(stamp_of(&p).unwrap()));
        // Another program drops a message into cur/: the stamp is no longer the known one.
        fs::write(p.join("cur/foreign:2,"), "x").unwrap();
        let now = stamp_of(&p).unwrap();
        assert_ne!(mb.lock().seen, Some(now));
        let ch = mb.changes(&[1], 0, true).unwrap();
        assert_eq!(ch.added.iter().map(|a| a.0).collect::<Vec<_>>(), vec![3]);
    }

    #[test]
    fn a_change_the_stamp_hides_is_found_by_the_next_rescan() {
        let (_d, p) = mk();
        let mb = Mailbox::open(p.clone()).unwrap();
        mb.append(b"1", 0, &[], None).unwrap();
        mb.changes(&[], 0, true).unwrap();
        let (new, cur) = stamp_of(&p).unwrap();
        // A change in the same clock tick as the last look: the mtime does not move.
        fs::write(p.join("cur/foreign:2,S"), "x").unwrap();
        set_mtime(&p.join("cur"), cur);
        set_mtime(&p.join("new"), new);
        std::thread::sleep(DIRTY_RESCAN + Duration::from_millis(50));
        let ch = mb.changes(&[1], 0, true).unwrap();
        assert_eq!(ch.added.iter().map(|a| a.0).collect::<Vec<_>>(), vec![2]);
    }

    #[test]
    fn appended_expunges_load_without_expunging_twice() {
        let (_d, p) = mk();
        let mb = Mailbox::open(p.clone()).unwrap();
        for m in [b"1", b"2", b"3"] {
            mb.append(m, 0, &[], None).unwrap();
        }
        mb.store(&[2], FlagOp::Add, flags::DELETED, &[], None)
            .unwrap();
        assert_eq!(mb.expunge(None).unwrap(), vec![2]);
        let high = mb.lock().modseq;
        drop(mb);
        let text = fs::read_to_string(p.join(UIDLIST)).unwrap();
        assert!(text.ends_with(&format!("X {high} 2\n")), "{text}");
        let mb = Mailbox::open(p.clone()).unwrap();
        let ix = mb.lock();
        assert_eq!(ix.msgs.iter().map(|m| m.uid).collect::<Vec<_>>(), [1, 3]);
        assert_eq!(ix.modseq, high);
        assert_eq!(ix.expunged.groups.len(), 1);
        assert_eq!(ix.expunged.since(high - 1).unwrap(), vec![2]);
        assert_eq!(ix.uidnext, 4);
    }
}
