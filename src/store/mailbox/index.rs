//! The index in memory against the disk: scanning new/ and cur/, giving UIDs and MODSEQs,
//! and making them durable in the UID list (format and crash-safety argument in
//! `uidlist.rs`) before any session sees them.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::super::flags::Flags;
use super::super::uidlist::{self, UIDLIST};
use super::{Index, Msg, new_uidvalidity};
use crate::fsutil::{fsync_dir, write_atomic};

impl Index {
    /// Give an expunge its modseq and remember the UIDs (the caller rewrites the file).
    pub(super) fn expunged_now(&mut self, uids: Vec<u32>) {
        if uids.is_empty() {
            return;
        }
        self.modseq += 1;
        let m = self.modseq;
        self.expunged.push(m, uids);
    }

    /// Make records durable: append + fsync, or a full rewrite when the file needs one or
    /// the log of changes has grown past the size of the mailbox.
    pub(super) fn record(&mut self, dir: &Path, lines: &str, n: usize) -> io::Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        if self.needs_rewrite
            || self.log_lines + n > self.msgs.len() + 1000
            || !dir.join(UIDLIST).exists()
        {
            return self.write_uidlist(dir);
        }
        match uidlist::append(dir, lines) {
            Ok(()) => {
                self.log_lines += n;
                Ok(())
            }
            Err(e) => {
                // A partial append must not have later lines glued onto it.
                self.needs_rewrite = true;
                Err(e)
            }
        }
    }

    /// Make the latest expunge (`expunged_now`) durable: its `X` line appended and synced,
    /// rather than the whole file rewritten (which cost a rename and two fsyncs per
    /// EXPUNGE, issue 15). The caller synced the directory of the removed files first, so
    /// a durable `X` line never names a file that could come back.
    pub(super) fn record_expunge(&mut self, dir: &Path) -> io::Result<()> {
        let Some((m, uids)) = self.expunged.groups.back() else {
            return Ok(());
        };
        let line = uidlist::expunge_line(*m, uids);
        self.record(dir, &line, 1)
    }

    pub(super) fn remove(&mut self, uids: &[u32]) {
        let set: HashSet<u32> = uids.iter().copied().collect();
        self.msgs.retain(|m| !set.contains(&m.uid));
        self.by_base.retain(|_, u| !set.contains(u));
        self.cache.retain(|u, _| !set.contains(u));
        self.disk.forget(uids);
    }

    /// Give UIDs to new files and make them durable in the UID list before anyone sees them.
    pub(super) fn add(
        &mut self,
        dir: &Path,
        entries: Vec<(Box<str>, bool, Flags)>,
    ) -> io::Result<Vec<u32>> {
        let mut lines = String::new();
        let mut uids = Vec::new();
        let first = self.msgs.is_empty() && self.uidvalidity == 0;
        if first {
            self.uidvalidity = new_uidvalidity();
        }
        for (file, in_new, flags) in entries {
            let uid = self.uidnext;
            self.uidnext += 1;
            self.modseq += 1;
            let base = file.split(':').next().unwrap_or(&file);
            lines.push_str(&uidlist::entry_line(uid, self.modseq, flags, base));
            self.msgs.push(Msg {
                uid,
                file,
                in_new,
                flags,
                modseq: self.modseq,
            });
            uids.push(uid);
        }
        if first {
            self.write_uidlist(dir)?;
        } else if let Err(e) = self.record(dir, &lines, 0) {
            // Not durable: these UIDs must not be shown (they are given again later).
            self.remove(&uids);
            return Err(e);
        }
        Ok(uids)
    }

    /// Rewrite the whole UID list durably (temp + fsync + rename + fsync dir).
    pub(super) fn write_uidlist(&mut self, dir: &Path) -> io::Result<()> {
        if self.uidvalidity == 0 {
            self.uidvalidity = new_uidvalidity();
        }
        let mut text = uidlist::header(self.uidvalidity, self.uidnext, self.modseq, &self.expunged);
        text.reserve(self.msgs.len() * 56);
        for m in &self.msgs {
            text.push_str(&uidlist::entry_line(m.uid, m.modseq, m.flags, m.base()));
        }
        write_atomic(&dir.join(UIDLIST), text.as_bytes(), 0o600)?;
        self.log_lines = 0;
        self.needs_rewrite = false;
        Ok(())
    }

    /// Re-read new/ and cur/ (skipped when neither changed since a scan that is safely in the
    /// past). New files get UIDs in name order; vanished files are expunged; renamed files
    /// carry new flags. Returns whether anything changed.
    pub(super) fn scan(&mut self, dir: &Path, force: bool) -> io::Result<bool> {
        let stamp = super::own_changes::stamp_of(dir)?;
        if !force && self.scan_skippable(stamp) {
            return Ok(false);
        }
        self.adopt_disk_keywords(dir);
        // Every name goes into one buffer and the map borrows from it: a scan of a large
        // mailbox makes a few big allocations, not two small ones a file, which would be
        // left as holes between the names the index keeps (memory the allocator cannot
        // give back). Only names that are new or changed are copied out.
        let mut names = String::with_capacity(self.msgs.len() * 48 + 1024);
        let mut spans: Vec<(usize, usize, bool)> = Vec::with_capacity(self.msgs.len() + 16);
        for (sub, in_new) in [("cur", false), ("new", true)] {
            for e in fs::read_dir(dir.join(sub))? {
                let e = e?;
                let name = e.file_name();
                let Some(name) = name.to_str() else {
                    continue;
                };
                if name.starts_with('.') {
                    continue;
                }
                let start = names.len();
                names.push_str(name);
                spans.push((start, names.len(), in_new));
            }
        }
        let mut found: HashMap<&str, (&str, bool)> = HashMap::with_capacity(spans.len());
        for &(start, end, in_new) in &spans {
            let name = &names[start..end];
            let base = name.split(':').next().unwrap_or(name);
            found.insert(base, (name, in_new));
        }
        drop(spans);
        let mut changed = false;
        let mut gone = Vec::new();
        let mut modseq = self.modseq;
        // Flag changes made by other programs get new modseqs, recorded before anyone sees
        // them (RFC 7162 §3.1: every change to a message's metadata).
        let mut lines = String::new();
        let mut n_lines = 0;
        for m in &mut self.msgs {
            match found.remove(m.base()) {
                None => gone.push(m.uid),
                Some((file, in_new)) => {
                    if file != &*m.file || in_new != m.in_new {
                        let flags = file_flags(file, in_new);
                        if flags != m.flags {
                            modseq += 1;
                            m.modseq = modseq;
                            m.flags = flags;
                            lines.push_str(&uidlist::change_line(m.uid, modseq, flags));
                            n_lines += 1;
                        }
                        m.file = file.into();
                        m.in_new = in_new;
                        changed = true;
                    }
                }
            }
        }
        self.modseq = modseq;
        if !gone.is_empty() {
            self.remove(&gone);
            self.expunged_now(gone);
            self.write_uidlist(dir)?;
            changed = true;
        } else {
            self.record(dir, &lines, n_lines)?;
        }
        // Files known to the UID list but not yet in memory (first load) keep their UIDs.
        let mut fresh: Vec<(&str, &str, bool)> = Vec::new();
        let mut known: Vec<(u32, Box<str>, bool)> = Vec::new();
        for (base, (file, in_new)) in found {
            match self.by_base.get(base) {
                Some(uid) if self.pos(*uid).is_none() => known.push((*uid, file.into(), in_new)),
                _ => fresh.push((base, file, in_new)),
            }
        }
        if !known.is_empty() {
            for (uid, file, in_new) in known {
                let flags = file_flags(&file, in_new);
                // Keep the recorded modseq unless the flags changed while we were not
                // looking (another program, or a crash between a rename and its record).
                let modseq = match self.recorded.get(&uid) {
                    Some(r) if r.flags.is_none_or(|f| f == flags) => r.modseq.max(1),
                    None if self.needs_rewrite => 1,
                    _ => {
                        self.modseq += 1;
                        self.needs_rewrite = true;
                        self.modseq
                    }
                };
                self.msgs.push(Msg {
                    uid,
                    file,
                    in_new,
                    flags,
                    modseq,
                });
            }
            self.msgs.sort_unstable_by_key(|m| m.uid);
            changed = true;
        }
        if !fresh.is_empty() {
            // Maildir names start with the delivery time: name order is arrival order.
            fresh.sort();
            let entries = fresh
                .into_iter()
                .map(|(_, file, in_new)| (file.into(), in_new, file_flags(file, in_new)))
                .collect();
            self.add(dir, entries)?;
            changed = true;
        }
        if force {
            // Drop UID-list entries whose files are gone (first load): they were expunged
            // while we were not looking, which is a change with a modseq of its own.
            let present: HashSet<u32> = self.msgs.iter().map(|m| m.uid).collect();
            let mut lost = Vec::new();
            self.by_base.retain(|_, u| {
                let keep = present.contains(u);
                if !keep {
                    lost.push(*u);
                }
                keep
            });
            if !lost.is_empty() {
                self.expunged_now(lost);
                self.write_uidlist(dir)?;
            }
        }
        self.scanned(stamp);
        // A stamp from the last two seconds may hide a change made in the same clock tick.
        let recent = SystemTime::now() - Duration::from_secs(2);
        self.stamp = (stamp.0 < recent && stamp.1 < recent).then_some(stamp);
        Ok(changed)
    }

    pub(super) fn move_new_to_cur(&mut self, dir: &Path) {
        if !self.msgs.iter().any(|m| m.in_new) {
            return;
        }
        let pre = self.own_change_begin(dir);
        let mut moved = false;
        for m in self.msgs.iter_mut().filter(|m| m.in_new) {
            let file = format!("{}:2,{}", m.base(), m.flags.to_info());
            if fs::rename(dir.join("new").join(&*m.file), dir.join("cur").join(&file)).is_ok() {
                m.file = file.into();
                m.in_new = false;
                moved = true;
            }
        }
        if moved {
            let _ = fsync_dir(&dir.join("cur"));
            self.stamp = None;
        }
        self.own_change_end(dir, pre, true);
    }
}

/// Flags as a file's location and name say: nothing in new/, the info letters in cur/.
fn file_flags(file: &str, in_new: bool) -> Flags {
    if in_new {
        Flags::default()
    } else {
        Flags::from_info(file.split_once(":2,").map_or("", |x| x.1))
    }
}
