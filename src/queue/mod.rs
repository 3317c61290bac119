//! The outbound queue: durable spool under `data_dir/queue`, scheduler, DSN bounces.
//!
//! Layout: `msg/ID` holds the message bytes (written once), `env/ID.json` the envelope and
//! per-recipient state (rewritten after every attempt). Both are written temp+fsync+rename+
//! dir fsync, the message first, so an envelope never points at a missing message. Every
//! read-modify-write of an envelope holds an exclusive lock on `queue/.lock`, so the server
//! and `postern queue …` / `postern sendmail` never lose each other's changes. The scheduler
//! notices new or changed envelopes by rescanning `env/` (cheap: mtimes), so a CLI enqueue
//! or `queue retry` reaches a running server without any signal.

pub mod dsn;
pub mod scheduler;

pub use crate::fsutil::group_commit;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fs4::fs_std::FileExt;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Other(String),
}

impl QueueError {
    /// The spool's disk or quota is full (see `fsutil::is_disk_full`).
    pub fn is_disk_full(&self) -> bool {
        matches!(self, QueueError::Io(e) if crate::fsutil::is_disk_full(e))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RcptStatus {
    /// Not delivered yet; will be tried at `next_attempt`.
    Pending,
    Delivered,
    /// Permanently failed (or expired); a DSN goes to the sender.
    Failed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RcptState {
    pub addr: String,
    pub status: RcptStatus,
    #[serde(default)]
    pub attempts: u32,
    /// Unix time of the next attempt (pending only).
    #[serde(default)]
    pub next_attempt: i64,
    /// The last reply or reason, for `queue show` and the DSN's Diagnostic-Code.
    #[serde(default)]
    pub last_error: Option<String>,
    /// Enhanced status code of the last outcome (RFC 3463).
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub remote_mta: Option<String>,
    /// A failure DSN was sent (or deliberately not sent: null sender) for this recipient.
    #[serde(default)]
    pub reported: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    pub id: String,
    /// Reverse-path; empty for the null sender (bounces).
    pub mail_from: String,
    /// Unix time the message entered the queue.
    pub created: i64,
    pub size: u64,
    pub rcpts: Vec<RcptState>,
    /// The one delay notice (RFC 3464 Action: delayed) went out.
    #[serde(default)]
    pub delay_notified: bool,
}

impl Envelope {
    pub fn pending(&self) -> impl Iterator<Item = &RcptState> {
        self.rcpts
            .iter()
            .filter(|r| r.status == RcptStatus::Pending)
    }
    pub fn next_attempt(&self) -> Option<i64> {
        self.pending().map(|r| r.next_attempt).min()
    }
}

/// A queued message's octets (`Spool::body`): in memory, or a mapping of its file.
pub enum Body {
    Mem(Vec<u8>),
    Map(memmap2::Mmap),
}

impl std::ops::Deref for Body {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Body::Mem(v) => v,
            Body::Map(m) => m,
        }
    }
}

/// Queue ids: time-ordered, unique across processes, safe as file names. The SMTP
/// transaction takes one before it enqueues, so the id in its 250 reply, its log line and
/// `postern queue list/show` is the same (issue 20, item 10).
pub fn new_id() -> String {
    use rand::Rng;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{:016X}{:06X}",
        nanos as u64,
        rand::rng().random::<u32>() & 0xFF_FFFF
    )
}

/// Ids come from the command line too: only what `new_id` makes is accepted.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The queue of one data dir: the spool on disk plus the scheduler's wake-up.
pub struct Queue {
    spool: Spool,
    /// Wakes the scheduler when this process enqueues.
    wake: tokio::sync::Notify,
    /// Ids this process enqueued since the scheduler last looked: it takes them without
    /// rescanning `env/` (the rescan, once a second, finds everything else).
    fresh: std::sync::Mutex<Vec<String>>,
}

impl std::ops::Deref for Queue {
    type Target = Spool;
    fn deref(&self) -> &Spool {
        &self.spool
    }
}

impl Queue {
    pub fn open(data_dir: &Path) -> std::io::Result<Queue> {
        let dir = data_dir.join("queue");
        std::fs::create_dir_all(dir.join("msg"))?;
        std::fs::create_dir_all(dir.join("env"))?;
        Ok(Queue {
            spool: Spool {
                msg_sync: Arc::new(group_commit::DirSync::new(dir.join("msg"))),
                env_sync: Arc::new(group_commit::DirSync::new(dir.join("env"))),
                dir,
            },
            wake: tokio::sync::Notify::new(),
            fresh: std::sync::Mutex::new(Vec::new()),
        })
    }

    pub(crate) fn wake(&self) -> &tokio::sync::Notify {
        &self.wake
    }

    /// The ids enqueued by this process since the last call.
    pub(crate) fn take_fresh(&self) -> Vec<String> {
        std::mem::take(&mut *self.fresh.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Store a message for remote delivery. When this returns Ok, the message and its
    /// envelope are fsynced; the caller may answer 250. `mail_from` is empty for the null
    /// reverse-path (bounces). Returns the queue id.
    /// The message is streamed from the SMTP spool into the queue file, never copied whole.
    pub async fn enqueue(
        &self,
        mail_from: &str,
        rcpts: &[String],
        message: crate::spool::Outgoing,
    ) -> Result<String, QueueError> {
        self.enqueue_as(new_id(), mail_from, rcpts, message).await
    }

    /// `enqueue` under an id from `new_id` that the caller already announced (the SMTP
    /// transaction's id). Refused if that id is queued already.
    pub async fn enqueue_as(
        &self,
        id: String,
        mail_from: &str,
        rcpts: &[String],
        message: crate::spool::Outgoing,
    ) -> Result<String, QueueError> {
        let spool = self.spool.clone();
        let (from, rcpts) = (mail_from.to_string(), rcpts.to_vec());
        let id = tokio::task::spawn_blocking(move || {
            spool.enqueue_id(id, &from, &rcpts, message.len() as u64, |f| {
                message.write_to(f)
            })
        })
        .await
        .map_err(|e| QueueError::Other(format!("enqueue task failed: {e}")))??;
        self.fresh
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(id.clone());
        self.wake.notify_one();
        Ok(id)
    }
}

/// The files of the queue; blocking calls (async callers use `Queue::enqueue` or
/// `spawn_blocking`).
#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
    /// Group commit of `msg/` after enqueues (see `group_commit`).
    msg_sync: Arc<group_commit::DirSync>,
    /// Group commit of `env/` after enqueues and removals.
    env_sync: Arc<group_commit::DirSync>,
}

impl Spool {
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn msg_path(&self, id: &str) -> PathBuf {
        self.dir.join("msg").join(id)
    }

    fn env_path(&self, id: &str) -> PathBuf {
        self.dir.join("env").join(format!("{id}.json"))
    }

    fn lock(&self) -> Result<File, QueueError> {
        let f = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join(".lock"))?;
        f.lock_exclusive()?;
        Ok(f)
    }

    /// `enqueue` for blocking callers (`postern sendmail`, the scheduler's DSNs).
    pub fn enqueue_blocking(
        &self,
        mail_from: &str,
        rcpts: &[String],
        message: &[u8],
    ) -> Result<String, QueueError> {
        self.enqueue_with(mail_from, rcpts, message.len() as u64, |f| {
            f.write_all(message)
        })
    }

    /// Enqueue a message of `size` octets that `fill` writes into the queue's temp file.
    fn enqueue_with(
        &self,
        mail_from: &str,
        rcpts: &[String],
        size: u64,
        fill: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
    ) -> Result<String, QueueError> {
        self.enqueue_id(new_id(), mail_from, rcpts, size, fill)
    }

    fn enqueue_id(
        &self,
        id: String,
        mail_from: &str,
        rcpts: &[String],
        size: u64,
        fill: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
    ) -> Result<String, QueueError> {
        if rcpts.is_empty() {
            return Err(QueueError::Other("no recipients".into()));
        }
        if !valid_id(&id) || self.msg_path(&id).exists() || self.env_path(&id).exists() {
            return Err(QueueError::Other(format!(
                "queue id {id:?} is taken or invalid"
            )));
        }
        let now = crate::clock::unix_now();
        let env = Envelope {
            id: id.clone(),
            mail_from: mail_from.to_string(),
            created: now,
            size,
            rcpts: rcpts
                .iter()
                .map(|a| RcptState {
                    addr: a.clone(),
                    status: RcptStatus::Pending,
                    attempts: 0,
                    next_attempt: now,
                    last_error: None,
                    code: None,
                    remote_mta: None,
                    reported: false,
                })
                .collect(),
            delay_notified: false,
        };
        // Message first: an envelope must never name a message that is not on disk. The
        // directory fsyncs are shared with the enqueues running at the same time (group
        // commit); each still waits for one that started after its own rename.
        let msg = self.msg_path(&id);
        crate::fsutil::Durable::new(&msg)
            .defer_dir_sync()
            .write_with(fill)?;
        if let Err(e) = self.msg_sync.sync() {
            let _ = std::fs::remove_file(&msg);
            return Err(e.into());
        }
        if let Err(e) = self.write_env_grouped(&env) {
            let _ = std::fs::remove_file(self.env_path(&id));
            let _ = std::fs::remove_file(&msg);
            return Err(e);
        }
        Ok(id)
    }

    /// A new envelope, durable once its `env/` fsync (shared, `group_commit`) is done.
    fn write_env_grouped(&self, env: &Envelope) -> Result<(), QueueError> {
        let json = serde_json::to_vec_pretty(env)
            .map_err(|e| QueueError::Other(format!("envelope encoding: {e}")))?;
        crate::fsutil::Durable::new(&self.env_path(&env.id))
            .defer_dir_sync()
            .write(&json)?;
        self.env_sync.sync()?;
        Ok(())
    }

    fn write_env(&self, env: &Envelope) -> Result<(), QueueError> {
        let json = serde_json::to_vec_pretty(env)
            .map_err(|e| QueueError::Other(format!("envelope encoding: {e}")))?;
        crate::fsutil::write_atomic(&self.env_path(&env.id), &json, 0o600)?;
        Ok(())
    }

    /// The envelope, or None if the message is no longer queued.
    pub fn load(&self, id: &str) -> Result<Option<Envelope>, QueueError> {
        if !valid_id(id) {
            return Ok(None);
        }
        match std::fs::read(self.env_path(id)) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| QueueError::Other(format!("envelope {id}: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub fn message(&self, id: &str) -> Result<Vec<u8>, QueueError> {
        if !valid_id(id) {
            return Err(QueueError::Other(format!("bad queue id {id:?}")));
        }
        Ok(std::fs::read(self.msg_path(id))?)
    }

    /// The message for delivery: read when small, mapped when larger than the SMTP spool's
    /// threshold, so a large message is never copied onto the heap (the client dot-stuffs
    /// it block by block from the mapping).
    pub fn body(&self, id: &str) -> Result<Body, QueueError> {
        if !valid_id(id) {
            return Err(QueueError::Other(format!("bad queue id {id:?}")));
        }
        let mut f = File::open(self.msg_path(id))?;
        let len = f.metadata()?.len();
        if len <= crate::spool::THRESHOLD as u64 {
            let mut v = Vec::with_capacity(len as usize);
            std::io::Read::read_to_end(&mut f, &mut v)?;
            return Ok(Body::Mem(v));
        }
        // SAFETY: a queue file is written once (temp file, fsync, rename) and never written
        // or truncated afterwards, only unlinked, which leaves a mapping valid.
        let map = unsafe { memmap2::Mmap::map(&f)? };
        let _ = map.advise(memmap2::Advice::Sequential);
        Ok(Body::Map(map))
    }

    /// Read-modify-write one envelope under the lock. None if it is gone (delivered or
    /// deleted meanwhile): nothing is recreated.
    pub fn update(
        &self,
        id: &str,
        change: impl FnOnce(&mut Envelope),
    ) -> Result<Option<Envelope>, QueueError> {
        let lock = self.lock()?;
        let result = (|| {
            let Some(mut env) = self.load(id)? else {
                return Ok(None);
            };
            change(&mut env);
            self.write_env(&env)?;
            Ok(Some(env))
        })();
        let _ = FileExt::unlock(&lock);
        result
    }

    /// Remove a message from the queue (envelope first, so a crash leaves no live envelope
    /// without its message). Returns false if it was not queued.
    pub fn delete(&self, id: &str) -> Result<bool, QueueError> {
        if !valid_id(id) {
            return Ok(false);
        }
        let lock = self.lock()?;
        let existed = match std::fs::remove_file(self.env_path(id)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(QueueError::from(e)),
        };
        let _ = FileExt::unlock(&lock);
        let existed = existed?;
        self.finish_removal(id)?;
        Ok(existed)
    }

    /// After an envelope was unlinked: make that durable (one `env/` fsync shared with the
    /// other removals in flight, `group_commit`), then remove the message file. A crash
    /// before the fsync leaves the envelope, so the message is delivered again, never lost.
    fn finish_removal(&self, id: &str) -> Result<(), QueueError> {
        self.env_sync.sync()?;
        match std::fs::remove_file(self.msg_path(id)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Record the outcome of an attempt: like `update`, but when nothing is left to do
    /// (every recipient delivered, or failed with its DSN done) the envelope is removed
    /// instead of rewritten, so a delivered message costs one shared directory fsync rather
    /// than an envelope write (file + directory fsync) and then a removal. Returns the
    /// envelope as changed and whether it was removed; None if it was not queued.
    pub fn settle(
        &self,
        id: &str,
        change: impl FnOnce(&mut Envelope),
    ) -> Result<Option<(Envelope, bool)>, QueueError> {
        let lock = self.lock()?;
        let result = (|| {
            let Some(mut env) = self.load(id)? else {
                return Ok(None);
            };
            change(&mut env);
            let done = env.rcpts.iter().all(|r| {
                r.status == RcptStatus::Delivered || (r.status == RcptStatus::Failed && r.reported)
            });
            if done {
                std::fs::remove_file(self.env_path(id))?;
            } else {
                self.write_env(&env)?;
            }
            Ok(Some((env, done)))
        })();
        let _ = FileExt::unlock(&lock);
        if let Ok(Some((_, true))) = &result {
            self.finish_removal(id)?;
        }
        result
    }

    /// Directory fsyncs of `env/` made by enqueues and removals so far (figures, tests).
    pub fn removal_syncs(&self) -> u64 {
        self.env_sync.syncs()
    }

    /// Ids of queued messages (oldest first).
    pub fn ids(&self) -> Result<Vec<String>, QueueError> {
        let mut ids = Vec::new();
        for e in std::fs::read_dir(self.dir.join("env"))? {
            let name = e?.file_name();
            let name = name.to_string_lossy();
            if let Some(id) = name.strip_suffix(".json").filter(|id| valid_id(id)) {
                ids.push(id.to_string());
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Every queued envelope (oldest first); unreadable ones are skipped with a log line.
    pub fn list(&self) -> Result<Vec<Envelope>, QueueError> {
        let mut out = Vec::new();
        for id in self.ids()? {
            match self.load(&id) {
                Ok(Some(e)) => out.push(e),
                Ok(None) => {}
                Err(e) => tracing::warn!("queue: skipping {id}: {e}"),
            }
        }
        Ok(out)
    }

    /// Make the pending recipients of `id` due now. False if no such message.
    pub fn retry(&self, id: &str) -> Result<bool, QueueError> {
        Ok(self
            .update(id, |env| {
                for r in env
                    .rcpts
                    .iter_mut()
                    .filter(|r| r.status == RcptStatus::Pending)
                {
                    r.next_attempt = 0;
                }
            })?
            .is_some())
    }

    /// Remove message files that have no envelope (a crash between the two writes of an
    /// enqueue, or of a delete). Only files older than a minute, so an enqueue in progress in
    /// another process is never touched.
    pub fn remove_orphans(&self) -> Result<usize, QueueError> {
        let mut n = 0;
        let cutoff = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        for e in std::fs::read_dir(self.dir.join("msg"))? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let old = e.metadata()?.modified()? < cutoff;
            if old && valid_id(&name) && !self.env_path(&name).exists() {
                std::fs::remove_file(e.path())?;
                n += 1;
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enqueue_update_retry_delete() {
        let d = tempfile::tempdir().unwrap();
        let q = Queue::open(d.path()).unwrap();
        let id = q
            .enqueue_blocking(
                "a@x.test",
                &["b@y.test".into(), "c@y.test".into()],
                b"hi\r\n",
            )
            .unwrap();
        assert!(valid_id(&id));
        assert_eq!(q.message(&id).unwrap(), b"hi\r\n");
        assert_eq!(&*q.body(&id).unwrap(), b"hi\r\n");
        let env = q.load(&id).unwrap().unwrap();
        assert_eq!(env.rcpts.len(), 2);
        q.update(&id, |e| {
            e.rcpts[0].status = RcptStatus::Delivered;
            e.rcpts[1].next_attempt = i64::MAX;
        })
        .unwrap();
        assert!(q.retry(&id).unwrap());
        let env = q.load(&id).unwrap().unwrap();
        // A large message is mapped, with the same octets.
        let big: Vec<u8> = (0..crate::spool::THRESHOLD + 10).map(|i| i as u8).collect();
        let big_id = q
            .enqueue_blocking("a@x", &["b@y.test".into()], &big)
            .unwrap();
        let body = q.body(&big_id).unwrap();
        assert!(matches!(body, Body::Map(_)));
        assert_eq!(&*body, &big[..]);
        assert!(q.delete(&big_id).unwrap());
        assert_eq!(env.rcpts[0].status, RcptStatus::Delivered);
        assert_eq!(env.rcpts[1].next_attempt, 0);
        assert_eq!(q.ids().unwrap(), vec![id.clone()]);
        assert!(q.delete(&id).unwrap());
        assert!(!q.delete(&id).unwrap());
        assert!(q.load(&id).unwrap().is_none());
        assert!(q.update(&id, |_| {}).unwrap().is_none());
        assert!(q.message(&id).is_err());
        assert!(!q.retry("../etc").unwrap());
        assert!(q.enqueue_blocking("a@x", &[], b"x").is_err());
    }

    #[test]
    fn settle_removes_a_finished_message_and_keeps_an_unfinished_one() {
        let d = tempfile::tempdir().unwrap();
        let q = Queue::open(d.path()).unwrap();
        let rcpts = ["b@y.test".to_string(), "c@y.test".to_string()];
        let id = q.enqueue_blocking("a@x.test", &rcpts, b"hi\r\n").unwrap();
        // One delivered, one still pending: rewritten, not removed.
        let (env, removed) = q
            .settle(&id, |e| e.rcpts[0].status = RcptStatus::Delivered)
            .unwrap()
            .unwrap();
        assert!(!removed);
        assert_eq!(env.pending().count(), 1);
        assert_eq!(q.load(&id).unwrap().unwrap().pending().count(), 1);
        // A failure without its DSN yet: kept for `finish` to report.
        let (_, removed) = q
            .settle(&id, |e| e.rcpts[1].status = RcptStatus::Failed)
            .unwrap()
            .unwrap();
        assert!(!removed);
        assert!(q.message(&id).is_ok());
        let syncs = q.removal_syncs();
        let (_, removed) = q
            .settle(&id, |e| e.rcpts[1].reported = true)
            .unwrap()
            .unwrap();
        assert!(removed);
        assert!(q.load(&id).unwrap().is_none());
        assert!(q.message(&id).is_err());
        assert_eq!(q.removal_syncs(), syncs + 1);
        assert!(q.settle(&id, |_| {}).unwrap().is_none());
    }
}
