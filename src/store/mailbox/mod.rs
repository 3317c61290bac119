//! One Maildir folder with UIDs: the UID index (`postern-uidlist`), custom keywords
//! (`dovecot-keywords`), flags in file names, and the in-memory state shared by every session
//! that has the folder open (the hub in `store/mod.rs`). Blocking code; async callers use
//! spawn_blocking. The store speaks UIDs only; sequence numbers are the IMAP view's.
//!
//! | file          | holds                                                           |
//! |---------------|-----------------------------------------------------------------|
//! | `mod.rs`      | `Mailbox`, `Index`, opening, the change signal, the parse cache |
//! | `index.rs`    | scanning the Maildir, giving UIDs/MODSEQs, UID list I/O         |
//! | `ops.rs`      | APPEND, COPY, STORE, EXPUNGE, MOVE's removal                    |
//! | `changes.rs`  | what changed since a MODSEQ, in UIDs (`Changes`)                |
//! | `keywords.rs` | custom keyword names (`dovecot-keywords`)                       |
//! | `recent.rs`   | the \Recent watermark (`postern-recent`)                        |
//! | `own_changes.rs` | when a scan of new/ and cur/ can be skipped                   |
//!
//! The UID list (format and crash-safety argument in `uidlist.rs`) is the durable map from
//! Maildir base names to UIDs and MODSEQs (RFC 7162). New UIDs and flag changes are appended
//! and fsynced before any client sees them; expunges rewrite the file with temp + fsync +
//! rename. UIDs are strictly ascending: a line whose UID is not above the previous one is
//! ignored, and new UIDs start above both the header's uidnext and the highest UID seen
//! (RFC 3501 §2.3.1.1).

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use super::cache_file::CacheFile;
use super::flags::Flags;
pub use super::uidlist::UIDLIST;
use super::uidlist::{self, Expunged, Recorded};
use keywords::load_keywords;
use recent::load_recent;

mod changes;
mod index;
mod keywords;
mod ops;
mod own_changes;
mod recent;

pub use changes::Changes;
pub use keywords::KEYWORDS;
pub use recent::RECENT;
/// Parsed-message cache entries kept per mailbox (bounded memory on huge folders).
const CACHE_MAX: usize = 20_000;

#[derive(Debug, Clone)]
pub struct Msg {
    pub uid: u32,
    /// Current file name inside new/ or cur/ (the base name, then `:2,` and the flags). The
    /// base name is not kept apart: one string a message is what a large mailbox can afford.
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
    /// Base name to UID as the UID list recorded them (emptied by the first scan).
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
    /// The mtimes the index is known to match, even if recent (`own_changes.rs`).
    seen: Option<own_changes::Stamp>,
    /// When the directories were last read in full.
    last_full: Option<std::time::Instant>,
    cache: HashMap<u32, Parsed>,
    /// The same, on disk (`postern-cache`): survives restarts and covers what the in-memory
    /// cache had to drop.
    disk: CacheFile,
}

pub struct Mailbox {
    pub dir: PathBuf,
    index: Mutex<Index>,
    changes: tokio::sync::watch::Sender<u64>,
    /// A poller (one per mailbox, run by the IMAP layer while sessions idle on it) looks at
    /// the disk for changes made by other programs: `start_poller` / `keep_polling`.
    poller: std::sync::atomic::AtomicBool,
}

/// How STORE changes flags (RFC 3501 §6.4.6: +FLAGS, -FLAGS, FLAGS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagOp {
    Add,
    Remove,
    Replace,
}

/// The result of a STORE: highest modseq before and after, and the UIDs that failed an
/// UNCHANGEDSINCE test (RFC 7162 §3.1.3).
#[derive(Debug, Default)]
pub struct Stored {
    pub before: u64,
    pub after: u64,
    pub modified: Vec<u32>,
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
            seen: None,
            last_full: None,
            cache: HashMap::new(),
            disk: CacheFile::new(&dir),
        };
        index.recent_upto = load_recent(&dir, index.uidnext);
        let (tx, _) = tokio::sync::watch::channel(0);
        let mb = Mailbox {
            dir,
            index: Mutex::new(index),
            changes: tx,
            poller: std::sync::atomic::AtomicBool::new(false),
        };
        {
            let mut ix = mb.lock();
            ix.scan(&mb.dir, true)?;
            // Both only serve the first scan: afterwards every file the UID list named is in
            // `msgs` or was expunged, and a later scan matches files against `msgs`. (A map of
            // base names would cost ~100 bytes a message in a large mailbox.)
            ix.recorded = HashMap::new();
            ix.by_base = HashMap::new();
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

    /// Sessions waiting on the change signal (idling).
    pub fn watchers(&self) -> usize {
        self.changes.receiver_count()
    }

    /// Claim the one poller of this mailbox: true for the caller who must run it. Changes
    /// made through this server signal at once; the poller is for the ones made by other
    /// programs (an MDA, `postern` commands, a second server).
    pub fn start_poller(&self) -> bool {
        !self.poller.swap(true, Ordering::SeqCst)
    }

    /// Asked by the running poller each round: false when nobody watches any more, and the
    /// poller must stop (its claim is given back). A session that subscribed meanwhile either
    /// saw the claim still held (then this sees its subscription and keeps polling) or
    /// claimed it after it was given back (then this returns false and that one polls).
    pub fn keep_polling(&self) -> bool {
        if self.watchers() > 0 {
            return true;
        }
        self.poller.store(false, Ordering::SeqCst);
        self.watchers() > 0 && self.start_poller()
    }

    /// Look for changes on disk and wake every session on this mailbox if there are any,
    /// or if the folder can no longer be read (it was deleted or renamed: each session then
    /// finds out and says BYE). Blocking.
    pub fn poll_disk(&self) {
        if self.refresh().is_err() {
            self.notify();
        }
    }

    pub fn path_of(&self, m: &Msg) -> PathBuf {
        self.dir
            .join(if m.in_new { "new" } else { "cur" })
            .join(&*m.file)
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

impl Msg {
    /// Maildir base name (the file name up to the `:`).
    pub fn base(&self) -> &str {
        self.file.split(':').next().unwrap_or(&self.file)
    }
}

impl Index {
    pub fn pos(&self, uid: u32) -> Option<usize> {
        self.msgs.binary_search_by_key(&uid, |m| m.uid).ok()
    }

    pub fn find(&self, uid: u32) -> Option<&Msg> {
        self.pos(uid).map(|p| &self.msgs[p])
    }
}

#[cfg(test)]
mod tests;
