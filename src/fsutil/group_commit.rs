//! Group commit of one directory's fsync: callers that changed the directory (a message
//! renamed into a Maildir's `new/` or the queue's `msg/`/`env/`, a removed envelope) each
//! need a directory fsync that started after their change; one fsync serves every caller
//! whose change came before it started. While one fsync runs, the callers arriving meanwhile
//! wait and share the next one, so when several SMTP sessions finish DATA together the
//! directory is synced about once per batch instead of once per message. File fsyncs stay
//! per file (each caller's own, before its rename); each caller returns, and may
//! acknowledge, only once its own file and a directory fsync covering its rename are done.
//!
//! `DirSyncs` hands out the one `DirSync` of a directory to everyone syncing it at the same
//! time (the store's Maildirs, where the set of directories is open-ended).
//!
//! Blocking (a Mutex and a Condvar): call it from blocking threads (`spawn_blocking`, CLI).

use std::collections::{HashMap, VecDeque};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, Weak};

/// How many failed batches are remembered for their waiters.
const FAILURES_KEPT: usize = 16;

#[derive(Default)]
struct State {
    /// The last ticket handed out.
    requested: u64,
    /// Every ticket up to this one is covered by a finished fsync (or its failure).
    done: u64,
    running: bool,
    /// Ticket ranges (lo, hi] whose fsync failed, with the error, newest last.
    failures: VecDeque<(u64, u64, String)>,
    /// fsyncs actually made (for tests and figures).
    syncs: u64,
}

pub struct DirSync {
    dir: PathBuf,
    state: Mutex<State>,
    cv: Condvar,
}

impl std::fmt::Debug for DirSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DirSync({})", self.dir.display())
    }
}

impl DirSync {
    pub fn new(dir: PathBuf) -> DirSync {
        DirSync {
            dir,
            state: Mutex::new(State::default()),
            cv: Condvar::new(),
        }
    }

    /// Return once an fsync of the directory that started after this call has finished.
    pub fn sync(&self) -> io::Result<()> {
        let mut s = self.state.lock().unwrap();
        s.requested += 1;
        let ticket = s.requested;
        loop {
            if s.done >= ticket {
                return match s
                    .failures
                    .iter()
                    .find(|(lo, hi, _)| *lo < ticket && ticket <= *hi)
                {
                    Some((_, _, e)) => Err(io::Error::other(e.clone())),
                    None => Ok(()),
                };
            }
            if s.running {
                s = self.cv.wait(s).unwrap();
                continue;
            }
            // Lead a batch: every ticket handed out so far is covered by this fsync, since
            // each caller made its change before taking its ticket.
            s.running = true;
            let (lo, hi) = (s.done, s.requested);
            drop(s);
            let result = crate::fsutil::fsync_dir(&self.dir);
            s = self.state.lock().unwrap();
            s.running = false;
            s.done = hi;
            s.syncs += 1;
            if let Err(e) = &result {
                s.failures.push_back((lo, hi, e.to_string()));
                if s.failures.len() > FAILURES_KEPT {
                    s.failures.pop_front();
                }
            }
            self.cv.notify_all();
        }
    }

    /// fsyncs made so far.
    pub fn syncs(&self) -> u64 {
        self.state.lock().unwrap().syncs
    }
}

/// Directories with a `DirSync` in use, beyond which the dead entries are swept.
const SWEEP_AT: usize = 64;

/// The `DirSync` of each directory being synced right now. An entry lives while someone
/// holds it (callers sharing a batch hold the same one); dead entries are swept as the map
/// grows, so it stays as small as the number of directories synced concurrently.
#[derive(Default)]
pub struct DirSyncs {
    map: Mutex<HashMap<PathBuf, Weak<DirSync>>>,
}

impl std::fmt::Debug for DirSyncs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DirSyncs")
    }
}

impl DirSyncs {
    /// The shared `DirSync` of `dir`.
    pub fn get(&self, dir: &Path) -> Arc<DirSync> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(ds) = map.get(dir).and_then(Weak::upgrade) {
            return ds;
        }
        if map.len() >= SWEEP_AT {
            map.retain(|_, w| w.strong_count() > 0);
        }
        let ds = Arc::new(DirSync::new(dir.to_path_buf()));
        map.insert(dir.to_path_buf(), Arc::downgrade(&ds));
        ds
    }

    /// `DirSync::sync` of `dir`: returns once an fsync of `dir` that started after this call
    /// has finished (shared with concurrent callers).
    pub fn sync(&self, dir: &Path) -> io::Result<()> {
        self.get(dir).sync()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn every_caller_is_covered_and_batches_share_fsyncs() {
        let d = tempfile::tempdir().unwrap();
        let ds = Arc::new(DirSync::new(d.path().to_path_buf()));
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let ds = ds.clone();
                std::thread::spawn(move || {
                    for _ in 0..20 {
                        ds.sync().unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let s = ds.state.lock().unwrap();
        assert_eq!(s.done, 320);
        assert!(s.syncs >= 1 && s.syncs <= 320);
    }

    #[test]
    fn registry_shares_one_dirsync_per_directory_and_stays_small() {
        let d = tempfile::tempdir().unwrap();
        let reg = DirSyncs::default();
        let a = reg.get(d.path());
        let b = reg.get(d.path());
        assert!(Arc::ptr_eq(&a, &b));
        reg.sync(d.path()).unwrap();
        assert_eq!(a.syncs(), 1);
        drop((a, b));
        for i in 0..(SWEEP_AT * 3) {
            reg.sync(&d.path().join(format!("{i}"))).unwrap_err();
        }
        assert!(reg.map.lock().unwrap().len() <= SWEEP_AT + 1);
        assert!(reg.sync(&d.path().join("missing")).is_err());
    }

    #[test]
    fn a_failed_fsync_is_reported_to_its_callers() {
        let ds = DirSync::new(PathBuf::from("/nonexistent/postern-test-dir"));
        assert!(ds.sync().is_err());
        assert!(ds.sync().is_err());
    }
}
