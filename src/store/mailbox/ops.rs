//! What clients do to a mailbox: APPEND, COPY, STORE, EXPUNGE and the expunge half of MOVE.
//! Each change is on disk (file fsynced, then its UID-list record) before the lock is
//! released and the other sessions are told (`notify`).

use std::collections::HashSet;
use std::fs;
use std::io::{self, Write};
use std::path::PathBuf;
use std::time::SystemTime;

use super::super::flags::{self, Flags, MAX_KEYWORDS};
use super::super::uidlist;
use super::{FlagOp, Mailbox, Stored, mtime};
use crate::fsutil::{Durable, fsync_dir};

impl Mailbox {
    /// Store a new message (APPEND): durable file in cur/ with its flags, then a UID.
    pub fn append(
        &self,
        data: &[u8],
        system: u8,
        keywords: &[String],
        internal_date: Option<SystemTime>,
    ) -> io::Result<(u32, u32)> {
        self.append_with(
            data.len(),
            |f| f.write_all(data),
            system,
            keywords,
            internal_date,
        )
    }

    /// `append` for a message of `size` octets that `fill` writes (streamed from the spool).
    pub fn append_with(
        &self,
        size: usize,
        fill: impl FnOnce(&mut dyn Write) -> io::Result<()>,
        system: u8,
        keywords: &[String],
        internal_date: Option<SystemTime>,
    ) -> io::Result<(u32, u32)> {
        let mut ix = self.lock();
        let kw = ix.keyword_bits(&self.dir, keywords, true)?;
        let flags = Flags {
            system,
            keywords: kw,
        };
        let base = super::super::unique_name(size);
        let file = format!("{base}:2,{}", flags.to_info());
        let pre = ix.own_change_begin(&self.dir);
        let written = Durable::new(&self.dir.join("cur").join(&file))
            .tmp_in(&self.dir.join("tmp"))
            .mtime(internal_date)
            .write_with(fill);
        ix.own_change_end(&self.dir, pre.filter(|_| written.is_ok()), false);
        written?;
        let uid = ix.add(&self.dir, vec![(file.into(), false, flags)])?[0];
        let v = ix.uidvalidity;
        drop(ix);
        self.notify();
        Ok((v, uid))
    }

    /// Copy messages (by UID) into `dest`, keeping flags and INTERNALDATE (hard links where
    /// possible). Returns (uidvalidity of dest, [(source uid, dest uid)]).
    pub fn copy_to(&self, uids: &[u32], dest: &Mailbox) -> io::Result<(u32, Vec<(u32, u32)>)> {
        let sources: Vec<(u32, PathBuf, Flags)> = {
            let ix = self.lock();
            uids.iter()
                .filter_map(|u| ix.find(*u).map(|m| (m.uid, self.path_of(m), m.flags)))
                .collect()
        };
        let src_keywords = self.lock().keywords.clone();
        let mut dix = dest.lock();
        let pre = dix.own_change_begin(&dest.dir);
        let mut entries = Vec::new();
        let mut done_src = Vec::new();
        // Files placed in dest/cur so far: taken back if the COPY fails, so the destination is
        // as it was (RFC 3501 §6.4.7) and a later scan does not find half a COPY.
        let mut placed: Vec<PathBuf> = Vec::new();
        let res = (|| {
            for (uid, path, fl) in sources {
                let names: Vec<String> = (0..MAX_KEYWORDS)
                    .filter(|i| fl.keywords & (1 << i) != 0)
                    .filter_map(|i| src_keywords.get(i).cloned())
                    .collect();
                let kw = dix.keyword_bits(&dest.dir, &names, true)?;
                let flags = Flags {
                    system: fl.system,
                    keywords: kw,
                };
                let size = fs::metadata(&path).map(|m| m.len() as usize);
                let Ok(size) = size else { continue }; // expunged meanwhile
                let base = super::super::unique_name(size);
                let file = format!("{base}:2,{}", flags.to_info());
                let dst = dest.dir.join("cur").join(&file);
                if fs::hard_link(&path, &dst).is_err() {
                    // Another file system (or no links): a durable copy; the directory is
                    // synced once below, before any of the copies is reported.
                    let copied = Durable::new(&dst)
                        .tmp_in(&dest.dir.join("tmp"))
                        .mtime(mtime(&path).ok())
                        .defer_dir_sync()
                        .copy_from(&path);
                    match copied {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(e),
                    }
                }
                placed.push(dst);
                entries.push((file.into(), false, flags));
                done_src.push(uid);
            }
            fsync_dir(&dest.dir.join("cur"))?;
            dix.add(&dest.dir, std::mem::take(&mut entries))
        })();
        let new = match res {
            Ok(new) => new,
            Err(e) => {
                for p in &placed {
                    let _ = fs::remove_file(p);
                }
                let _ = fsync_dir(&dest.dir.join("cur"));
                dix.own_change_end(&dest.dir, None, false);
                return Err(e);
            }
        };
        dix.own_change_end(&dest.dir, pre, false);
        let v = dix.uidvalidity;
        drop(dix);
        dest.notify();
        Ok((v, done_src.into_iter().zip(new).collect()))
    }

    /// STORE: change flags of the given UIDs, with an optional UNCHANGEDSINCE (RFC 7162
    /// §3.1.3): messages whose modseq is above it are left alone and listed in `modified`.
    /// Each changed message gets its own new modseq, recorded durably before the lock is
    /// released; the modseqs before and after let a session skip echoing its own change.
    pub fn store(
        &self,
        uids: &[u32],
        op: FlagOp,
        system: u8,
        keywords: &[String],
        unchanged_since: Option<u64>,
    ) -> io::Result<Stored> {
        let mut ix = self.lock();
        let before = ix.modseq;
        let kw = ix.keyword_bits(&self.dir, keywords, op != FlagOp::Remove)?;
        let pre = ix.own_change_begin(&self.dir);
        let mut touched_new = false;
        let mut changed = false;
        let mut lines = String::new();
        let mut n_lines = 0;
        let mut modified = Vec::new();
        for uid in uids {
            let Some(pos) = ix.pos(*uid) else { continue };
            if unchanged_since.is_some_and(|u| ix.msgs[pos].modseq > u) {
                modified.push(*uid);
                continue;
            }
            let old = ix.msgs[pos].flags;
            let new = match op {
                FlagOp::Add => Flags {
                    system: old.system | system,
                    keywords: old.keywords | kw,
                },
                FlagOp::Remove => Flags {
                    system: old.system & !system,
                    keywords: old.keywords & !kw,
                },
                FlagOp::Replace => Flags {
                    system,
                    keywords: kw,
                },
            };
            if new == old && !ix.msgs[pos].in_new {
                continue;
            }
            let m = &ix.msgs[pos];
            let from = self.path_of(m);
            let file = format!("{}:2,{}", m.base(), new.to_info());
            let to = self.dir.join("cur").join(&file);
            touched_new |= m.in_new;
            match fs::rename(&from, &to) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => {
                    ix.own_change_end(&self.dir, None, true);
                    ix.record(&self.dir, &lines, n_lines)?;
                    return Err(e);
                }
            }
            let flags_changed = ix.msgs[pos].flags != new;
            if flags_changed {
                ix.modseq += 1;
            }
            let ms = ix.modseq;
            let m = &mut ix.msgs[pos];
            m.file = file.into();
            m.in_new = false;
            if flags_changed {
                m.flags = new;
                m.modseq = ms;
                lines.push_str(&uidlist::change_line(m.uid, ms, new));
                n_lines += 1;
            }
            changed = true;
        }
        if changed {
            ix.own_change_end(&self.dir, pre, touched_new);
        }
        ix.record(&self.dir, &lines, n_lines)?;
        let after = ix.modseq;
        drop(ix);
        if changed {
            self.notify();
        }
        Ok(Stored {
            before,
            after,
            modified,
        })
    }

    /// Remove messages flagged \Deleted (only those in `only`, when given: UID EXPUNGE).
    /// Returns the expunged UIDs.
    pub fn expunge(&self, only: Option<&[u32]>) -> io::Result<Vec<u32>> {
        let mut ix = self.lock();
        ix.scan(&self.dir, false)?;
        let wanted: Option<HashSet<u32>> = only.map(|u| u.iter().copied().collect());
        let pre = ix.own_change_begin(&self.dir);
        let mut touched_new = false;
        let mut gone = Vec::new();
        let mut failed = None;
        for m in &ix.msgs {
            if m.flags.has(flags::DELETED) && wanted.as_ref().is_none_or(|w| w.contains(&m.uid)) {
                touched_new |= m.in_new;
                match fs::remove_file(self.path_of(m)) {
                    Ok(()) => gone.push(m.uid),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => gone.push(m.uid),
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
        }
        if let Some(e) = failed {
            ix.own_change_end(&self.dir, None, true);
            return Err(e);
        }
        if !gone.is_empty() {
            ix.own_change_end(&self.dir, pre, touched_new);
            fsync_dir(&self.dir.join("cur"))?;
            ix.remove(&gone);
            ix.expunged_now(gone.clone());
            ix.record_expunge(&self.dir)?;
        }
        drop(ix);
        if !gone.is_empty() {
            self.notify();
        }
        Ok(gone)
    }

    /// Remove messages regardless of flags (the expunge half of MOVE).
    pub fn remove_uids(&self, uids: &[u32]) -> io::Result<()> {
        let mut ix = self.lock();
        let pre = ix.own_change_begin(&self.dir);
        for uid in uids {
            if let Some(m) = ix.find(*uid) {
                match fs::remove_file(self.path_of(m)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => {
                        ix.own_change_end(&self.dir, None, true);
                        return Err(e);
                    }
                }
            }
        }
        ix.own_change_end(&self.dir, pre, true);
        fsync_dir(&self.dir.join("cur"))?;
        let present: Vec<u32> = uids
            .iter()
            .copied()
            .filter(|u| ix.pos(*u).is_some())
            .collect();
        ix.remove(uids);
        let any = !present.is_empty();
        ix.expunged_now(present);
        if any {
            ix.record_expunge(&self.dir)?;
        }
        drop(ix);
        self.notify();
        Ok(())
    }
}
