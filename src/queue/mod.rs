//! The outbound queue: durable spool under `data_dir/queue`, scheduler, DSN bounces.
//!
//! Layout (`file`): `msg/ID` holds the envelope as enqueued and the message bytes, written
//! once (temp + fsync + rename + directory fsync); its presence is what "queued" means.
//! `env/ID.json` holds the envelope and per-recipient state once an attempt has changed it
//! (rewritten after every such attempt) and then overrides the head of `msg/ID`. A message
//! delivered at its first attempt never gets one. Every read-modify-write of an envelope
//! holds an exclusive lock on `queue/.lock`, so the server and `postern queue …` /
//! `postern sendmail` never lose each other's changes. The scheduler notices new or changed
//! messages by rescanning `msg/` and `env/` (cheap: mtimes), so a CLI enqueue or
//! `queue retry` reaches a running server without any signal.

pub mod dsn;
mod file;
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

/// A queued message's octets (`Spool::body`): in memory, or a mapping of its file from
/// the offset where the message starts.
pub enum Body {
    Mem(Vec<u8>),
    Map(memmap2::Mmap, usize),
}

impl std::ops::Deref for Body {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Body::Mem(v) => v,
            Body::Map(m, at) => &m[*at..],
        }
    }
}

/// What `Spool::stamps` reports per message: the mtime of its state file, or of the message
/// file when it has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stamp {
    Head(std::time::SystemTime),
    State(std::time::SystemTime),
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
    /// Group commit of `msg/` after enqueues and removals (see `group_commit`).
    msg_sync: Arc<group_commit::DirSync>,
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
        // One file, envelope head then message; its directory fsync is shared with the
        // enqueues and removals running at the same time (group commit), each still waiting
        // for one that started after its own rename.
        let head =
            file::head(&env).map_err(|e| QueueError::Other(format!("envelope encoding: {e}")))?;
        let msg = self.msg_path(&id);
        crate::fsutil::Durable::new(&msg)
            .defer_dir_sync()
            .write_with(|f| {
                f.write_all(&head)?;
                fill(f)
            })?;
        if let Err(e) = self.msg_sync.sync() {
            let _ = std::fs::remove_file(&msg);
            return Err(e.into());
        }
        Ok(id)
    }

    fn write_env(&self, env: &Envelope) -> Result<(), QueueError> {
        let json = serde_json::to_vec_pretty(env)
            .map_err(|e| QueueError::Other(format!("envelope encoding: {e}")))?;
        crate::fsutil::write_atomic(&self.env_path(&env.id), &json, 0o600)?;
        Ok(())
    }

    /// The envelope, or None if the message is no longer queued: the state file when an
    /// attempt wrote one, else the head of the message file.
    pub fn load(&self, id: &str) -> Result<Option<Envelope>, QueueError> {
        if !valid_id(id) {
            return Ok(None);
        }
        let mut f = match File::open(self.msg_path(id)) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if let Some(env) = self.load_state(id)? {
            return Ok(Some(env));
        }
        // No state file: the head is the envelope (none: an old-layout message whose
        // envelope is gone, i.e. not queued).
        Ok(file::read_head(&mut f)?.envelope)
    }

    /// The state file of `id`, if an attempt wrote one.
    fn load_state(&self, id: &str) -> Result<Option<Envelope>, QueueError> {
        match std::fs::read(self.env_path(id)) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| QueueError::Other(format!("envelope {id}: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The message octets (without the queue file's head).
    pub fn message(&self, id: &str) -> Result<Vec<u8>, QueueError> {
        Ok(self.body(id)?.to_vec())
    }

    /// The message for delivery (see `open`).
    pub fn body(&self, id: &str) -> Result<Body, QueueError> {
        if !valid_id(id) {
            return Err(QueueError::Other(format!("bad queue id {id:?}")));
        }
        Ok(self.read(id, &mut File::open(self.msg_path(id))?)?.1)
    }

    /// Envelope and message of `id` for a delivery attempt, from one open of its file; None
    /// if it is not queued.
    pub fn open(&self, id: &str) -> Result<Option<(Envelope, Body)>, QueueError> {
        if !valid_id(id) {
            return Ok(None);
        }
        let mut f = match File::open(self.msg_path(id)) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let (head, body) = self.read(id, &mut f)?;
        let env = match self.load_state(id)? {
            Some(env) => Some(env),
            None => head,
        };
        Ok(env.map(|e| (e, body)))
    }

    /// The head's envelope and the message of an open queue file: read when small, mapped
    /// when larger than the SMTP spool's threshold, so a large message is never copied onto
    /// the heap (the client dot-stuffs it block by block from the mapping).
    fn read(&self, id: &str, f: &mut File) -> Result<(Option<Envelope>, Body), QueueError> {
        let len = f.metadata()?.len();
        if len <= crate::spool::THRESHOLD as u64 {
            // Small: one read of the whole file, the head cut off in place.
            let mut v = Vec::with_capacity(len as usize);
            std::io::Read::read_to_end(f, &mut v)?;
            let head = match file::parse(&v)? {
                file::Parsed::Done(h) => h,
                // The whole file is shorter than its head says.
                file::Parsed::Need(_) => {
                    return Err(QueueError::Other(format!("queue file {id}: damaged head")));
                }
            };
            v.drain(..head.body_offset as usize);
            return Ok((head.envelope, Body::Mem(v)));
        }
        let head = file::read_head(f)?;
        // SAFETY: a queue file is written once (temp file, fsync, rename) and never written
        // or truncated afterwards, only unlinked, which leaves a mapping valid.
        let map = unsafe { memmap2::Mmap::map(&*f)? };
        let _ = map.advise(memmap2::Advice::Sequential);
        let at = (head.body_offset as usize).min(map.len());
        Ok((head.envelope, Body::Map(map, at)))
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

    /// Remove a message from the queue. Returns false if it was not queued.
    pub fn delete(&self, id: &str) -> Result<bool, QueueError> {
        if !valid_id(id) {
            return Ok(false);
        }
        let lock = self.lock()?;
        let existed = self.unlink(id);
        let _ = FileExt::unlock(&lock);
        let existed = existed?;
        self.msg_sync.sync()?;
        Ok(existed)
    }

    /// Unlink the message file (the commit point: without it nothing is queued), then the
    /// state file. A crash between the two leaves a state file without a message, which
    /// nothing reads and `remove_orphans` clears. The caller makes the unlink durable with
    /// a `msg/` fsync (shared, `group_commit`) after releasing the lock; a crash before it
    /// only delivers the message again, never loses it.
    fn unlink(&self, id: &str) -> Result<bool, QueueError> {
        let existed = match std::fs::remove_file(self.msg_path(id)) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(e.into()),
        };
        match std::fs::remove_file(self.env_path(id)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        Ok(existed)
    }

    /// Record the outcome of an attempt: like `update`, but when nothing is left to do
    /// (every recipient delivered, or failed with its DSN done) the envelope is removed
    /// instead of rewritten, so a delivered message costs an unlink and one shared directory
    /// fsync rather than an envelope write (file + directory fsync) and then a removal. Returns the
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
                self.unlink(id)?;
            } else {
                self.write_env(&env)?;
            }
            Ok(Some((env, done)))
        })();
        let _ = FileExt::unlock(&lock);
        if let Ok(Some((_, true))) = &result {
            self.msg_sync.sync()?;
        }
        result
    }

    /// Directory fsyncs of `msg/` made by enqueues and removals so far (figures, tests).
    pub fn removal_syncs(&self) -> u64 {
        self.msg_sync.syncs()
    }

    /// Ids of queued messages (oldest first).
    pub fn ids(&self) -> Result<Vec<String>, QueueError> {
        let mut ids = Vec::new();
        for e in std::fs::read_dir(self.dir.join("msg"))? {
            let name = e?.file_name();
            let name = name.to_string_lossy();
            if valid_id(&name) {
                ids.push(name.into_owned());
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Every queued id with a stamp that changes whenever its envelope does: the state
    /// file's mtime when there is one, else the message file's (written once). Two directory
    /// listings, no file opened; the scheduler re-reads an envelope only when its stamp moved.
    pub fn stamps(&self) -> Result<Vec<(String, Stamp)>, QueueError> {
        let mut states = std::collections::HashMap::new();
        for e in std::fs::read_dir(self.dir.join("env"))? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(id) = name.strip_suffix(".json").filter(|id| valid_id(id))
                && let Ok(t) = e.metadata().and_then(|m| m.modified())
            {
                states.insert(id.to_string(), t);
            }
        }
        let mut out = Vec::new();
        for e in std::fs::read_dir(self.dir.join("msg"))? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            if !valid_id(&name) {
                continue;
            }
            let stamp = match states.get(&name) {
                Some(t) => Stamp::State(*t),
                None => match e.metadata().and_then(|m| m.modified()) {
                    Ok(t) => Stamp::Head(t),
                    Err(_) => continue,
                },
            };
            out.push((name, stamp));
        }
        Ok(out)
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

    /// Clear what a crash can leave behind: temp files of writes that never finished,
    /// old-layout message files without their envelope, and state files whose message was
    /// removed. Only files older than a minute, so a write in progress in another process is
    /// never touched. Returns how many files were removed.
    pub fn remove_orphans(&self) -> Result<usize, QueueError> {
        let mut n = 0;
        let cutoff = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        let old = |e: &std::fs::DirEntry| -> std::io::Result<bool> {
            Ok(e.metadata()?.modified()? < cutoff)
        };
        for e in std::fs::read_dir(self.dir.join("msg"))? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            let orphan = if name.starts_with('.') {
                name.contains(".tmp")
            } else if valid_id(&name) && !self.env_path(&name).exists() {
                let mut f = File::open(e.path())?;
                // A head that cannot be read is kept (and reported when delivery reads it).
                file::read_head(&mut f).is_ok_and(|h| h.envelope.is_none())
            } else {
                false
            };
            if orphan && old(&e)? {
                std::fs::remove_file(e.path())?;
                n += 1;
            }
        }
        for e in std::fs::read_dir(self.dir.join("env"))? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            let orphan = match name.strip_suffix(".json") {
                _ if name.starts_with('.') => name.contains(".tmp"),
                Some(id) => valid_id(id) && !self.msg_path(id).exists(),
                None => false,
            };
            if orphan && old(&e)? {
                std::fs::remove_file(e.path())?;
                n += 1;
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests;
