//! One Maildir folder as IMAP sees it: the UID index (`postern-uidlist`), custom keywords
//! (`dovecot-keywords`), flags in file names, and the in-memory state shared by every session
//! that has the folder open (see `hub.rs`). Blocking code; async callers use spawn_blocking.
//!
//! The UID list (format and crash-safety argument in `uidlist.rs`) is the durable map from
//! Maildir base names to UIDs and MODSEQs (RFC 7162). New UIDs and flag changes are appended
//! and fsynced before any client sees them; expunges rewrite the file with temp + fsync +
//! rename. UIDs are strictly ascending: a line whose UID is not above the previous one is
//! ignored, and new UIDs start above both the header's uidnext and the highest UID seen
//! (RFC 3501 §2.3.1.1).

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use super::cache_file::CacheFile;
use super::flags::{self, Flags, MAX_KEYWORDS};
pub use super::uidlist::UIDLIST;
use super::uidlist::{self, Expunged, Recorded};
use crate::fsutil::{Durable, fsync_dir, write_atomic};

pub const KEYWORDS: &str = "dovecot-keywords";
/// The highest UID already given to a session as \Recent (RFC 3501 §2.3.2), kept on disk so
/// that neither a restart nor the hub dropping the folder announces a message twice or never.
pub const RECENT: &str = "postern-recent";
/// Parsed-message cache entries kept per mailbox (bounded memory on huge folders).
const CACHE_MAX: usize = 20_000;

#[derive(Debug, Clone)]
pub struct Msg {
    pub uid: u32,
    /// Maildir base name (file name up to the `:`).
    pub base: Box<str>,
    /// Current file name inside new/ or cur/.
    pub file: Box<str>,
    pub in_new: bool,
    pub flags: Flags,
    /// MODSEQ of the last change (RFC 7162): persisted, never reused.
    pub modseq: u64,
}

/// What parsing a message yields, kept so a second FETCH does not re-read the file. Contents
/// are opaque to the store (the IMAP layer renders them); messages never change on disk in
/// Maildir (only their names do), so an entry stays valid until the message is expunged.
pub type Parsed = Arc<dyn std::any::Any + Send + Sync>;

pub struct Index {
    pub uidvalidity: u32,
    pub uidnext: u32,
    /// Sorted by UID.
    pub msgs: Vec<Msg>,
    pub keywords: Vec<String>,
    /// HIGHESTMODSEQ (RFC 7162 §3.1.2.1): every modseq up to here was made durable first.
    pub modseq: u64,
    /// UIDs expunged per modseq, for QRESYNC's VANISHED (EARLIER).
    pub expunged: Expunged,
    by_base: HashMap<Box<str>, u32>,
    /// What the UID list said about each message at open (emptied by the first scan).
    recorded: HashMap<u32, Recorded>,
    /// `M` lines appended since the last rewrite.
    log_lines: usize,
    /// The file must be rewritten before anything is appended (old format, torn tail,
    /// failed append).
    needs_rewrite: bool,
    /// Highest UID already given to a session as \Recent (RFC 3501 §2.3.2).
    recent_upto: u32,
    /// new/ and cur/ modification times at the last full scan.
    stamp: Option<(SystemTime, SystemTime)>,
    cache: HashMap<u32, Parsed>,
    /// The same, on disk (`postern-cache`): survives restarts and covers what the in-memory
    /// cache had to drop.
    disk: CacheFile,
}

pub struct Mailbox {
    pub dir: PathBuf,
    index: Mutex<Index>,
    changes: tokio::sync::watch::Sender<u64>,
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

/// The result of a STORE: highest modseq before and after, and the UIDs that failed an
/// UNCHANGEDSINCE test (RFC 7162 §3.1.3).
#[derive(Debug, Default)]
pub struct Stored {
    pub before: u64,
    pub after: u64,
    pub modified: Vec<u32>,
}

/// One session's picture of a selected mailbox: sequence number n is `uids[n-1]`.
#[derive(Debug, Default, Clone)]
pub struct View {
    pub uids: Vec<u32>,
    pub modseq: u64,
    pub recent: HashSet<u32>,
}

impl View {
    pub fn seq_of(&self, uid: u32) -> Option<u32> {
        self.uids.binary_search(&uid).ok().map(|i| i as u32 + 1)
    }
}

/// A UIDVALIDITY for a folder that has none: the clock, but above every value this process
/// gave before, so a folder deleted and created again within one second still gets a greater
/// one (RFC 3501 §2.3.1.1). Across restarts the clock has moved on.
fn new_uidvalidity() -> u32 {
    static LAST: AtomicU32 = AtomicU32::new(0);
    let now = (crate::clock::unix_now() as u32).max(1);
    let prev = LAST
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
            Some(now.max(last.wrapping_add(1)))
        })
        .unwrap_or_default();
    now.max(prev.wrapping_add(1))
}

fn mtime(p: &Path) -> io::Result<SystemTime> {
    fs::metadata(p)?.modified()
}

impl Mailbox {
    /// Open (and load the index of) an existing Maildir folder.
    pub fn open(dir: PathBuf) -> io::Result<Mailbox> {
        if !dir.join("cur").is_dir() {
            return Err(io::Error::new(io::ErrorKind::NotFound, "no such mailbox"));
        }
        for sub in ["cur", "new", "tmp"] {
            fs::create_dir_all(dir.join(sub))?;
        }
        let l = uidlist::load(&dir)?;
        let mut index = Index {
            uidvalidity: l.uidvalidity,
            uidnext: l.uidnext,
            msgs: Vec::new(),
            keywords: load_keywords(&dir),
            modseq: l.modseq.max(1),
            expunged: l.expunged,
            by_base: l.by_base,
            recorded: l.recorded,
            log_lines: l.log_lines,
            needs_rewrite: l.version != 2 || l.torn,
            recent_upto: 0,
            stamp: None,
            cache: HashMap::new(),
            disk: CacheFile::new(&dir),
        };
        index.recent_upto = load_recent(&dir, index.uidnext);
        let (tx, _) = tokio::sync::watch::channel(0);
        let mb = Mailbox {
            dir,
            index: Mutex::new(index),
            changes: tx,
        };
        {
            let mut ix = mb.lock();
            ix.scan(&mb.dir, true)?;
            ix.recorded = HashMap::new();
            // Also for an empty mailbox without a UID list: its UIDVALIDITY is fixed now, so
            // the one a client sees first (and resyncs with, RFC 7162 §3.2.5) stays valid.
            if ix.needs_rewrite {
                ix.write_uidlist(&mb.dir)?;
            }
        }
        Ok(mb)
    }

    pub fn lock(&self) -> MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bring the shared index up to date with the disk (STATUS, LIST-STATUS).
    pub fn refresh(&self) -> io::Result<()> {
        let changed = self.lock().scan(&self.dir, false)?;
        if changed {
            self.notify();
        }
        Ok(())
    }

    /// Tell every session on this mailbox to sync (IDLE wakes up).
    pub fn notify(&self) {
        self.changes.send_modify(|v| *v = v.wrapping_add(1));
    }

    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    pub fn path_of(&self, m: &Msg) -> PathBuf {
        self.dir
            .join(if m.in_new { "new" } else { "cur" })
            .join(&*m.file)
    }

    /// Look at the disk and bring the view up to date. `expunges` false holds expunges back
    /// (RFC 3501 §7.4.1: not during FETCH, STORE or SEARCH); `rw` moves new/ into cur/ and
    /// claims new messages as \Recent for this view alone (RFC 3501 §2.3.2: the first session
    /// to select the mailbox after they arrived; EXAMINE sees them as recent but does not
    /// take that from a later SELECT, §6.3.2).
    pub fn sync(&self, view: &mut View, expunges: bool, rw: bool) -> io::Result<Vec<Update>> {
        let mut ix = self.lock();
        let changed = ix.scan(&self.dir, false)?;
        if rw {
            ix.move_new_to_cur(&self.dir);
        }
        if changed {
            self.notify();
        }
        let mut out = Vec::new();
        if expunges {
            let mut seq = view.uids.len();
            let mut gone = Vec::new();
            while seq > 0 {
                let uid = view.uids[seq - 1];
                if ix.find(uid).is_none() {
                    gone.push(seq - 1);
                    out.push(Update::Expunge(seq as u32, uid));
                }
                seq -= 1;
            }
            for i in gone {
                let uid = view.uids.remove(i);
                view.recent.remove(&uid);
            }
        }
        let last = view.uids.last().copied().unwrap_or(0);
        let start = ix.msgs.partition_point(|m| m.uid <= last);
        let mut new_recent = 0;
        let upto = ix.recent_upto;
        for m in &ix.msgs[start..] {
            view.uids.push(m.uid);
            if m.uid > upto {
                view.recent.insert(m.uid);
                new_recent += 1;
            }
        }
        if rw && let Some(top) = ix.msgs.last().map(|m| m.uid).filter(|u| *u > upto) {
            ix.recent_upto = top;
            if let Err(e) =
                write_atomic(&self.dir.join(RECENT), format!("{top}\n").as_bytes(), 0o600)
            {
                tracing::warn!(
                    "cannot record recent messages in {}: {e}",
                    self.dir.display()
                );
            }
        }
        let first = view.modseq == 0;
        if start < ix.msgs.len() || first {
            out.push(Update::Exists(view.uids.len() as u32));
            if new_recent > 0 || first {
                out.push(Update::Recent(view.recent.len() as u32));
            }
        }
        if view.modseq != 0 && ix.modseq > view.modseq {
            for (i, uid) in view.uids.iter().enumerate() {
                if let Some(m) = ix.find(*uid)
                    && m.modseq > view.modseq
                    && *uid <= last
                {
                    out.push(Update::Flags(i as u32 + 1, m.uid, m.flags, m.modseq));
                }
            }
        }
        view.modseq = ix.modseq;
        Ok(out)
    }

    /// Store a new message (APPEND): durable file in cur/ with its flags, then a UID.
    pub fn append(
        &self,
        data: &[u8],
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
        let base = super::unique_name(data.len());
        let file = format!("{base}:2,{}", flags.to_info());
        Durable::new(&self.dir.join("cur").join(&file))
            .tmp_in(&self.dir.join("tmp"))
            .mtime(internal_date)
            .write(data)?;
        let uid = ix.add(&self.dir, vec![(base.into(), file.into(), false, flags)])?[0];
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
        let mut entries = Vec::new();
        let mut done_src = Vec::new();
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
            let base = super::unique_name(size);
            let file = format!("{base}:2,{}", flags.to_info());
            let dst = dest.dir.join("cur").join(&file);
            if fs::hard_link(&path, &dst).is_err() {
                // Another file system (or no links): a durable copy; the directory is synced
                // once below, before any of the copies is reported.
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
            entries.push((base.into(), file.into(), false, flags));
            done_src.push(uid);
        }
        fsync_dir(&dest.dir.join("cur"))?;
        let new = dix.add(&dest.dir, entries)?;
        let v = dix.uidvalidity;
        drop(dix);
        dest.notify();
        Ok((v, done_src.into_iter().zip(new).collect()))
    }

    /// Change flags of the given UIDs. `op`: +1 add, -1 remove, 0 replace.
    /// Returns the modseq before and after, so a session can skip echoing its own change.
    pub fn store(
        &self,
        uids: &[u32],
        op: i8,
        system: u8,
        keywords: &[String],
    ) -> io::Result<(u64, u64)> {
        let s = self.store_if(uids, op, system, keywords, None)?;
        Ok((s.before, s.after))
    }

    /// STORE with an optional UNCHANGEDSINCE (RFC 7162 §3.1.3): messages whose modseq is
    /// above it are left alone and listed in `modified`. Each changed message gets its own
    /// new modseq, recorded durably before the lock is released.
    pub fn store_if(
        &self,
        uids: &[u32],
        op: i8,
        system: u8,
        keywords: &[String],
        unchanged_since: Option<u64>,
    ) -> io::Result<Stored> {
        let mut ix = self.lock();
        let before = ix.modseq;
        let kw = ix.keyword_bits(&self.dir, keywords, op >= 0)?;
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
                1 => Flags {
                    system: old.system | system,
                    keywords: old.keywords | kw,
                },
                -1 => Flags {
                    system: old.system & !system,
                    keywords: old.keywords & !kw,
                },
                _ => Flags {
                    system,
                    keywords: kw,
                },
            };
            if new == old && !ix.msgs[pos].in_new {
                continue;
            }
            let m = &ix.msgs[pos];
            let from = self.path_of(m);
            let file = format!("{}:2,{}", m.base, new.to_info());
            let to = self.dir.join("cur").join(&file);
            match fs::rename(&from, &to) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => {
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
        let mut gone = Vec::new();
        for m in &ix.msgs {
            if m.flags.has(flags::DELETED) && wanted.as_ref().is_none_or(|w| w.contains(&m.uid)) {
                match fs::remove_file(self.path_of(m)) {
                    Ok(()) => gone.push(m.uid),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => gone.push(m.uid),
                    Err(e) => return Err(e),
                }
            }
        }
        if !gone.is_empty() {
            fsync_dir(&self.dir.join("cur"))?;
            ix.remove(&gone);
            ix.expunged_now(gone.clone());
            ix.write_uidlist(&self.dir)?;
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
        for uid in uids {
            if let Some(m) = ix.find(*uid) {
                match fs::remove_file(self.path_of(m)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
        fsync_dir(&self.dir.join("cur"))?;
        let present: Vec<u32> = uids
            .iter()
            .copied()
            .filter(|u| ix.pos(*u).is_some())
            .collect();
        ix.remove(uids);
        ix.expunged_now(present);
        ix.write_uidlist(&self.dir)?;
        drop(ix);
        self.notify();
        Ok(())
    }

    /// Keyword names for a flag set.
    pub fn keyword_names(&self, f: Flags) -> Vec<String> {
        let ix = self.lock();
        ix.keyword_names(f)
    }

    pub fn cached(&self, uid: u32) -> Option<Parsed> {
        self.lock().cache.get(&uid).cloned()
    }

    /// Bytes kept for `uid` in the on-disk parse cache (opaque to the store, like `Parsed`).
    pub fn cached_bytes(&self, uid: u32) -> Option<Vec<u8>> {
        let mut ix = self.lock();
        let uv = ix.uidvalidity;
        ix.disk.get(uv, uid)
    }

    pub fn put_cached_bytes(&self, uid: u32, data: &[u8]) {
        let mut ix = self.lock();
        if ix.find(uid).is_some() {
            let uv = ix.uidvalidity;
            ix.disk.put(uv, uid, data);
        }
    }

    pub fn put_cache(&self, uid: u32, p: Parsed) {
        let mut ix = self.lock();
        if ix.cache.len() >= CACHE_MAX {
            // Bounded: drop an arbitrary half rather than track recency per entry.
            let drop_keys: Vec<u32> = ix.cache.keys().copied().take(CACHE_MAX / 2).collect();
            for k in drop_keys {
                ix.cache.remove(&k);
            }
        }
        if ix.find(uid).is_some() {
            ix.cache.insert(uid, p);
        }
    }
}

impl Index {
    pub fn pos(&self, uid: u32) -> Option<usize> {
        self.msgs.binary_search_by_key(&uid, |m| m.uid).ok()
    }

    pub fn find(&self, uid: u32) -> Option<&Msg> {
        self.pos(uid).map(|p| &self.msgs[p])
    }

    /// Messages no session has claimed as \Recent yet (STATUS RECENT).
    pub fn unclaimed_recent(&self) -> usize {
        self.msgs.len() - self.msgs.partition_point(|m| m.uid <= self.recent_upto)
    }

    pub fn keyword_names(&self, f: Flags) -> Vec<String> {
        (0..MAX_KEYWORDS)
            .filter(|i| f.keywords & (1 << i) != 0)
            .filter_map(|i| self.keywords.get(i).cloned())
            .collect()
    }

    /// Bits for keyword names; unknown ones are added (and persisted) when `create`.
    /// Keywords another process added to `dovecot-keywords` (`postern import` writes the
    /// file before the message files that use the new letters): adopted when the file
    /// extends what this index knows, so their letters are not read as unknown and a later
    /// addition here does not overwrite them.
    fn adopt_disk_keywords(&mut self, dir: &Path) {
        let disk = load_keywords(dir);
        if disk.len() > self.keywords.len()
            && disk
                .iter()
                .zip(&self.keywords)
                .all(|(a, b)| a.eq_ignore_ascii_case(b))
        {
            self.keywords = disk;
        }
    }

    fn keyword_bits(&mut self, dir: &Path, names: &[String], create: bool) -> io::Result<u32> {
        if create {
            self.adopt_disk_keywords(dir);
        }
        let mut bits = 0;
        let mut added = false;
        for n in names {
            let i = match self.keywords.iter().position(|k| k.eq_ignore_ascii_case(n)) {
                Some(i) => i,
                None if create => {
                    if self.keywords.len() >= MAX_KEYWORDS {
                        return Err(io::Error::other("too many keywords in this mailbox"));
                    }
                    self.keywords.push(n.clone());
                    added = true;
                    self.keywords.len() - 1
                }
                None => continue,
            };
            bits |= 1 << i;
        }
        if added {
            let mut text = String::new();
            for (i, k) in self.keywords.iter().enumerate() {
                text.push_str(&format!("{i} {k}\n"));
            }
            write_atomic(&dir.join(KEYWORDS), text.as_bytes(), 0o600)?;
        }
        Ok(bits)
    }

    /// Give an expunge its modseq and remember the UIDs (the caller rewrites the file).
    fn expunged_now(&mut self, uids: Vec<u32>) {
        if uids.is_empty() {
            return;
        }
        self.modseq += 1;
        let m = self.modseq;
        self.expunged.push(m, uids);
    }

    /// Make records durable: append + fsync, or a full rewrite when the file needs one or
    /// the log of changes has grown past the size of the mailbox.
    fn record(&mut self, dir: &Path, lines: &str, n: usize) -> io::Result<()> {
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

    fn remove(&mut self, uids: &[u32]) {
        let set: HashSet<u32> = uids.iter().copied().collect();
        self.msgs.retain(|m| !set.contains(&m.uid));
        self.by_base.retain(|_, u| !set.contains(u));
        self.cache.retain(|u, _| !set.contains(u));
        self.disk.forget(uids);
    }

    /// Give UIDs to new files and make them durable in the UID list before anyone sees them.
    fn add(
        &mut self,
        dir: &Path,
        entries: Vec<(Box<str>, Box<str>, bool, Flags)>,
    ) -> io::Result<Vec<u32>> {
        let mut lines = String::new();
        let mut uids = Vec::new();
        let first = self.msgs.is_empty() && self.uidvalidity == 0;
        if first {
            self.uidvalidity = new_uidvalidity();
        }
        for (base, file, in_new, flags) in entries {
            let uid = self.uidnext;
            self.uidnext += 1;
            self.modseq += 1;
            lines.push_str(&uidlist::entry_line(uid, self.modseq, flags, &base));
            self.by_base.insert(base.clone(), uid);
            self.msgs.push(Msg {
                uid,
                base,
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
    fn write_uidlist(&mut self, dir: &Path) -> io::Result<()> {
        if self.uidvalidity == 0 {
            self.uidvalidity = new_uidvalidity();
        }
        let mut text = uidlist::header(self.uidvalidity, self.uidnext, self.modseq, &self.expunged);
        text.reserve(self.msgs.len() * 56);
        for m in &self.msgs {
            text.push_str(&uidlist::entry_line(m.uid, m.modseq, m.flags, &m.base));
        }
        write_atomic(&dir.join(UIDLIST), text.as_bytes(), 0o600)?;
        self.log_lines = 0;
        self.needs_rewrite = false;
        Ok(())
    }

    /// Re-read new/ and cur/ (skipped when neither changed since a scan that is safely in the
    /// past). New files get UIDs in name order; vanished files are expunged; renamed files
    /// carry new flags. Returns whether anything changed.
    fn scan(&mut self, dir: &Path, force: bool) -> io::Result<bool> {
        let stamp = (mtime(&dir.join("new"))?, mtime(&dir.join("cur"))?);
        if !force && self.stamp == Some(stamp) {
            return Ok(false);
        }
        self.adopt_disk_keywords(dir);
        let mut found: HashMap<Box<str>, (Box<str>, bool)> =
            HashMap::with_capacity(self.msgs.len() + 16);
        for (sub, in_new) in [("cur", false), ("new", true)] {
            for e in fs::read_dir(dir.join(sub))? {
                let e = e?;
                let Ok(name) = e.file_name().into_string() else {
                    continue;
                };
                if name.starts_with('.') {
                    continue;
                }
                let base = name.split(':').next().unwrap_or(&name);
                found.insert(base.into(), (name.as_str().into(), in_new));
            }
        }
        let mut changed = false;
        let mut gone = Vec::new();
        let mut modseq = self.modseq;
        // Flag changes made by other programs get new modseqs, recorded before anyone sees
        // them (RFC 7162 §3.1: every change to a message's metadata).
        let mut lines = String::new();
        let mut n_lines = 0;
        for m in &mut self.msgs {
            match found.remove(&m.base) {
                None => gone.push(m.uid),
                Some((file, in_new)) => {
                    if file != m.file || in_new != m.in_new {
                        let flags = file_flags(&file, in_new);
                        if flags != m.flags {
                            modseq += 1;
                            m.modseq = modseq;
                            m.flags = flags;
                            lines.push_str(&uidlist::change_line(m.uid, modseq, flags));
                            n_lines += 1;
                        }
                        m.file = file;
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
        let mut fresh: Vec<(Box<str>, Box<str>, bool)> = Vec::new();
        let mut known: Vec<(u32, Box<str>, Box<str>, bool)> = Vec::new();
        for (base, (file, in_new)) in found {
            match self.by_base.get(&base) {
                Some(uid) if self.pos(*uid).is_none() => known.push((*uid, base, file, in_new)),
                _ => fresh.push((base, file, in_new)),
            }
        }
        if !known.is_empty() {
            for (uid, base, file, in_new) in known {
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
                    base,
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
                .map(|(base, file, in_new)| {
                    let flags = file_flags(&file, in_new);
                    (base, file, in_new, flags)
                })
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
        // A stamp from the last two seconds may hide a change made in the same clock tick.
        let recent = SystemTime::now() - Duration::from_secs(2);
        self.stamp = (stamp.0 < recent && stamp.1 < recent).then_some(stamp);
        Ok(changed)
    }

    fn move_new_to_cur(&mut self, dir: &Path) {
        let mut moved = false;
        for m in self.msgs.iter_mut().filter(|m| m.in_new) {
            let file = format!("{}:2,{}", m.base, m.flags.to_info());
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

fn load_keywords(dir: &Path) -> Vec<String> {
    let Ok(text) = fs::read_to_string(dir.join(KEYWORDS)) else {
        return Vec::new();
    };
    let mut out: Vec<String> = Vec::new();
    for line in text.lines() {
        if let Some((i, name)) = line.split_once(' ')
            && let Ok(i) = i.parse::<usize>()
            && i < MAX_KEYWORDS
        {
            if out.len() <= i {
                out.resize(i + 1, String::new());
            }
            out[i] = name.to_string();
        }
    }
    out
}

/// The recent watermark; a folder without the file (made before it existed) counts everything
/// it already has UIDs for as seen, so an upgrade does not re-announce whole mailboxes.
fn load_recent(dir: &Path, uidnext: u32) -> u32 {
    let path = dir.join(RECENT);
    match fs::read_to_string(&path) {
        Ok(t) => t.trim().parse::<u32>().unwrap_or(0).min(uidnext - 1),
        Err(_) => {
            let upto = uidnext - 1;
            // Recorded now, so UIDs given out before the first claim stay recent.
            let _ = write_atomic(&path, format!("{upto}\n").as_bytes(), 0o600);
            upto
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk() -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("box");
        for s in ["cur", "new", "tmp"] {
            fs::create_dir_all(p.join(s)).unwrap();
        }
        (d, p)
    }

    #[test]
    fn uids_ascend_and_survive_reopen() {
        let (_d, p) = mk();
        super::super::deliver_to_maildir(&p, b"a").unwrap();
        super::super::deliver_to_maildir(&p, b"b").unwrap();
        let mb = Mailbox::open(p.clone()).unwrap();
        let mut v = View::default();
        let up = mb.sync(&mut v, true, true).unwrap();
        assert!(up.contains(&Update::Exists(2)));
        assert_eq!(v.uids, vec![1, 2]);
        let (uv, uid) = mb
            .append(b"c", flags::SEEN, &["$Label1".into()], None)
            .unwrap();
        assert_eq!(uid, 3);
        mb.store(&[1], 1, flags::DELETED, &[]).unwrap();
        assert_eq!(mb.expunge(None).unwrap(), vec![1]);
        drop(mb);
        let mb = Mailbox::open(p.clone()).unwrap();
        let ix = mb.lock();
        assert_eq!(ix.uidvalidity, uv);
        let uids: Vec<u32> = ix.msgs.iter().map(|m| m.uid).collect();
        assert_eq!(uids, vec![2, 3]);
        assert_eq!(
            ix.keyword_names(ix.msgs[1].flags),
            vec!["$Label1".to_string()]
        );
        assert!(ix.msgs[1].flags.has(flags::SEEN));
        drop(ix);
        // New UIDs stay above every UID ever given, even the expunged highest one.
        mb.store(&[3], 1, flags::DELETED, &[]).unwrap();
        mb.expunge(None).unwrap();
        let (_, uid) = mb.append(b"d", 0, &[], None).unwrap();
        assert_eq!(uid, 4);
    }

    #[test]
    fn uidvalidity_of_an_empty_folder_stays_when_mail_arrives() {
        let (_d, p) = mk();
        let mb = Mailbox::open(p.clone()).unwrap();
        let uv = mb.lock().uidvalidity;
        assert_ne!(uv, 0);
        // The same after a restart, before any message arrived...
        drop(mb);
        let mb = Mailbox::open(p.clone()).unwrap();
        assert_eq!(mb.lock().uidvalidity, uv);
        // ...and after the first delivery and the first APPEND.
        super::super::deliver_to_maildir(&p, b"a").unwrap();
        mb.sync(&mut View::default(), true, true).unwrap();
        assert_eq!(mb.lock().uidvalidity, uv);
        let (uv2, uid) = mb.append(b"b", 0, &[], None).unwrap();
        assert_eq!((uv2, uid), (uv, 2));
    }

    #[test]
    fn uidvalidities_ascend_within_one_second() {
        let (a, b, c) = (new_uidvalidity(), new_uidvalidity(), new_uidvalidity());
        assert!(a < b && b < c, "{a} {b} {c}");
        assert!(a as i64 >= crate::clock::unix_now() - 1);
    }

    #[test]
    fn torn_uidlist_line_is_ignored() {
        let (_d, p) = mk();
        fs::write(p.join(UIDLIST), "P1 77 5\n3 abc\n4 de").unwrap();
        fs::write(p.join("cur/abc:2,S"), "x").unwrap();
        let mb = Mailbox::open(p).unwrap();
        let ix = mb.lock();
        assert_eq!(ix.uidvalidity, 77);
        assert_eq!(ix.msgs[0].uid, 3);
        assert!(ix.msgs[0].flags.has(flags::SEEN));
        assert_eq!(ix.uidnext, 5);
    }

    #[test]
    fn recent_is_claimed_once_and_survives_reopen() {
        let (_d, p) = mk();
        super::super::deliver_to_maildir(&p, b"a").unwrap();
        let mb = Mailbox::open(p.clone()).unwrap();
        // UIDs given (STATUS, APPEND) but no session has selected: still unclaimed on reopen.
        mb.append(b"b", 0, &[], None).unwrap();
        assert_eq!(mb.lock().unclaimed_recent(), 2);
        drop(mb);
        let mb = Mailbox::open(p.clone()).unwrap();
        let mut ro = View::default();
        mb.sync(&mut ro, true, false).unwrap();
        assert_eq!(ro.recent.len(), 2, "EXAMINE sees them");
        let (mut a, mut b) = (View::default(), View::default());
        mb.sync(&mut a, true, true).unwrap();
        mb.sync(&mut b, true, true).unwrap();
        assert_eq!((a.recent.len(), b.recent.len()), (2, 0));
        drop(mb);
        let mb = Mailbox::open(p.clone()).unwrap();
        assert_eq!(mb.lock().unclaimed_recent(), 0);
        let mut c = View::default();
        mb.sync(&mut c, true, true).unwrap();
        assert!(c.recent.is_empty());
    }

    #[test]
    fn sessions_see_each_others_changes() {
        let (_d, p) = mk();
        let mb = Mailbox::open(p.clone()).unwrap();
        mb.append(b"1", 0, &[], None).unwrap();
        mb.append(b"2", 0, &[], None).unwrap();
        let (mut a, mut b) = (View::default(), View::default());
        mb.sync(&mut a, true, true).unwrap();
        mb.sync(&mut b, true, true).unwrap();
        mb.store(&[2], 1, flags::FLAGGED | flags::DELETED, &[])
            .unwrap();
        let up = mb.sync(&mut b, true, true).unwrap();
        assert!(matches!(up[..], [Update::Flags(2, 2, _, _)]), "{up:?}");
        mb.expunge(None).unwrap();
        super::super::deliver_to_maildir(&p, b"3").unwrap();
        // Held back during FETCH/STORE/SEARCH...
        let up = mb.sync(&mut a, false, true).unwrap();
        assert_eq!(a.uids, vec![1, 2, 3]);
        assert!(up.contains(&Update::Exists(3)));
        // ...and reported afterwards.
        let up = mb.sync(&mut a, true, true).unwrap();
        assert_eq!(up[0], Update::Expunge(2, 2));
        assert_eq!(a.uids, vec![1, 3]);
    }

    fn modseqs(mb: &Mailbox) -> (u64, Vec<(u32, u64)>) {
        let ix = mb.lock();
        (
            ix.modseq,
            ix.msgs.iter().map(|m| (m.uid, m.modseq)).collect(),
        )
    }

    #[test]
    fn modseqs_persist_and_never_go_backwards() {
        let (_d, p) = mk();
        let mb = Mailbox::open(p.clone()).unwrap();
        mb.append(b"1", 0, &[], None).unwrap();
        mb.append(b"2", 0, &[], None).unwrap();
        mb.store(&[1], 1, flags::SEEN, &[]).unwrap();
        let (high, per) = modseqs(&mb);
        assert_eq!(per[0].1, high);
        assert!(per[1].1 < high);
        mb.store(&[2], 1, flags::DELETED, &[]).unwrap();
        mb.expunge(None).unwrap();
        let (high, per) = modseqs(&mb);
        drop(mb);
        let mb = Mailbox::open(p.clone()).unwrap();
        assert_eq!(modseqs(&mb), (high, per.clone()));
        // The expunge is remembered with its modseq, across the reopen.
        assert_eq!(mb.lock().expunged.since(per[0].1).unwrap(), vec![2]);
        let st = mb.store_if(&[1], 1, flags::FLAGGED, &[], Some(1)).unwrap();
        assert_eq!(st.modified, vec![1]);
        mb.store(&[1], 1, flags::FLAGGED, &[]).unwrap();
        assert_eq!(modseqs(&mb).1[0].1, high + 1);
    }

    #[test]
    fn torn_or_truncated_log_never_reuses_an_acknowledged_modseq() {
        let (_d, p) = mk();
        let mb = Mailbox::open(p.clone()).unwrap();
        for i in 0..3 {
            mb.append(format!("{i}").as_bytes(), 0, &[], None).unwrap();
        }
        let (acked, _) = modseqs(&mb);
        let acked_len = fs::metadata(p.join(UIDLIST)).unwrap().len() as usize;
        // Changes whose append the "crash" tears somewhere: never acknowledged.
        mb.store(&[1, 2], 1, flags::SEEN, &[]).unwrap();
        mb.store(&[3], 1, flags::ANSWERED, &[]).unwrap();
        drop(mb);
        let full = fs::read(p.join(UIDLIST)).unwrap();
        let files: Vec<_> = fs::read_dir(p.join("cur")).unwrap().collect();
        assert_eq!(files.len(), 3);
        for cut in acked_len..=full.len() {
            fs::write(p.join(UIDLIST), &full[..cut]).unwrap();
            let mb = Mailbox::open(p.clone()).unwrap();
            let (high, per) = modseqs(&mb);
            assert!(high >= acked, "cut {cut}: {high} < {acked}");
            // Every message whose flags are not what the surviving log says got a modseq
            // above everything that survived, and the flags on disk won.
            let ix = mb.lock();
            assert!(ix.msgs[0].flags.has(flags::SEEN) && ix.msgs[2].flags.has(flags::ANSWERED));
            drop(ix);
            assert_eq!(per.len(), 3);
            // A new change after the reopen gets a number nobody saw before.
            mb.store(&[1], 1, flags::FLAGGED, &[]).unwrap();
            let (h2, _) = modseqs(&mb);
            assert!(h2 > high, "cut {cut}");
            if cut == full.len() {
                assert!(high >= acked + 3);
            }
            drop(mb);
            // The reopen rewrote a torn file: it loads cleanly and keeps the number.
            let mb = Mailbox::open(p.clone()).unwrap();
            assert_eq!(modseqs(&mb).0, h2, "cut {cut}");
            mb.store(&[1], -1, flags::FLAGGED, &[]).unwrap();
        }
    }

    #[test]
    fn external_renames_and_deletions_get_modseqs() {
        let (_d, p) = mk();
        let mb = Mailbox::open(p.clone()).unwrap();
        mb.append(b"1", 0, &[], None).unwrap();
        mb.append(b"2", 0, &[], None).unwrap();
        let mut v = View::default();
        mb.sync(&mut v, true, true).unwrap();
        let (high, _) = modseqs(&mb);
        // Another program marks message 1 seen while we run.
        let f = mb.lock().msgs[0].file.to_string();
        fs::rename(p.join("cur").join(&f), p.join("cur").join(format!("{f}S"))).unwrap();
        mb.lock().stamp = None;
        let up = mb.sync(&mut v, true, true).unwrap();
        assert!(
            matches!(up[..], [Update::Flags(1, 1, f, m)] if f.has(flags::SEEN) && m == high + 1),
            "{up:?}"
        );
        drop(mb);
        // ...and while we are down: message 2 deleted, message 1 unflagged.
        let f2 = fs::read_dir(p.join("cur"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .find(|n| !n.ends_with('S'))
            .unwrap();
        fs::remove_file(p.join("cur").join(f2)).unwrap();
        let f1 = format!("{f}S");
        fs::rename(p.join("cur").join(&f1), p.join("cur").join(&f)).unwrap();
        let mb = Mailbox::open(p.clone()).unwrap();
        let (h, per) = modseqs(&mb);
        assert_eq!(per.len(), 1);
        assert!(per[0].1 > high + 1 && h >= per[0].1);
        assert_eq!(mb.lock().expunged.since(high + 1).unwrap(), vec![2]);
        drop(mb);
        assert_eq!(modseqs(&Mailbox::open(p).unwrap()).0, h);
    }

    #[test]
    fn old_uidlist_is_upgraded_in_place() {
        let (_d, p) = mk();
        fs::write(p.join(UIDLIST), "P1 77 5\n3 abc\n4 de\n").unwrap();
        fs::write(p.join("cur/abc:2,S"), "x").unwrap();
        fs::write(p.join("cur/de:2,"), "y").unwrap();
        let mb = Mailbox::open(p.clone()).unwrap();
        assert_eq!(modseqs(&mb), (1, vec![(3, 1), (4, 1)]));
        drop(mb);
        let text = fs::read_to_string(p.join(UIDLIST)).unwrap();
        assert!(text.starts_with("P2 77 5 1 0\n"), "{text}");
        let mb = Mailbox::open(p.clone()).unwrap();
        assert_eq!(modseqs(&mb), (1, vec![(3, 1), (4, 1)]));
        assert!(mb.lock().msgs[0].flags.has(flags::SEEN));
    }

    #[test]
    fn empty_mailbox_keeps_the_uidvalidity_it_showed_first() {
        let (_d, p) = mk();
        let uv = Mailbox::open(p.clone()).unwrap().lock().uidvalidity;
        assert_ne!(uv, 0);
        let mb = Mailbox::open(p.clone()).unwrap();
        assert_eq!(mb.append(b"x", 0, &[], None).unwrap(), (uv, 1));
    }
}
