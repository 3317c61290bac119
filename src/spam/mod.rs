//! The per-user junk filter: a Bayesian token classifier each user trains with what they do
//! in any IMAP client (issue 17 §2).
//!
//! - `tokenize` turns a message into tokens (decoded text, subject, link hosts, a few header
//!   features); `bayes` holds the counts and scores with Robinson/Fisher combining as
//!   SpamBayes does (the method is documented there).
//! - The database of a user is one file beside their mail, `<maildir root>/postern-junk`,
//!   rewritten through `fsutil::write_atomic` after each training, under an advisory lock
//!   (`postern-junk.lock`) so the CLI and the server never lose each other's updates. It is
//!   bounded (see `bayes::MAX_TOKENS`, `MAX_TRAINED`).
//! - Training: a message moved or copied into the `\Junk` folder, or given `$Junk`, is spam;
//!   one moved out of Junk to anything but Trash, or given `$NotJunk`, is ham (the store
//!   reports these, see `TrainEvent`). `postern spam train` trains from a Maildir or mbox.
//!   A message is keyed by the SHA-1 of its bytes: training it again is a no-op, training it
//!   as the other class first subtracts the old training.
//! - Delivery: mail that would go to the INBOX is scored per recipient; above
//!   `[spam] junk_threshold` it goes to Junk with an `X-Postern-Spam` header giving the score
//!   and the strongest tokens. Until a user has trained `junk_min_ham` ham and
//!   `junk_min_spam` spam messages the filter says nothing.

pub mod bayes;
pub mod events;
pub mod settings;
pub mod tokenize;

use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};

use fs4::fs_std::FileExt;
use sha1::Digest;

pub use bayes::{Class, Score, TokenDb, Trained};

use crate::config::Spam;
use crate::store::Store;

const DB_FILE: &str = "postern-junk";
const LOCK_FILE: &str = "postern-junk.lock";

/// The key of a message in the trained-as records.
pub fn message_hash(message: &[u8]) -> String {
    let d = sha1::Sha1::digest(message);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn db_path(store: &Store, user: &str) -> io::Result<PathBuf> {
    Ok(store.user_dir(user)?.join(DB_FILE))
}

/// The user's database (empty when there is none yet).
pub fn load(store: &Store, user: &str) -> io::Result<TokenDb> {
    load_path(&db_path(store, user)?)
}

fn load_path(path: &Path) -> io::Result<TokenDb> {
    match std::fs::read(path) {
        Ok(data) => TokenDb::from_bytes(&data).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(TokenDb::default()),
        Err(e) => Err(e),
    }
}

/// Parsed databases of the last few users classified, each with the identity of the file
/// it was read from (inode, size, mtime): a training rewrites the file (a new inode through
/// the rename), so the next classification reads it again. Parsing a full database costs
/// about 0.3 s (BENCHMARKS.md), too much to repeat for every message.
#[derive(Default)]
pub struct DbCache {
    dbs: std::sync::Mutex<Vec<(PathBuf, FileId, std::sync::Arc<TokenDb>)>>,
}

/// Users whose database stays parsed (a full one takes tens of MB).
const CACHED_DBS: usize = 4;

type FileId = (u64, u64, i64, i64);

fn file_id(path: &Path) -> io::Result<Option<FileId>> {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(path) {
        Ok(m) => Ok(Some((m.ino(), m.size(), m.mtime(), m.mtime_nsec()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

impl DbCache {
    /// The user's database, from the cache when its file did not change.
    pub fn get(&self, store: &Store, user: &str) -> io::Result<std::sync::Arc<TokenDb>> {
        let path = db_path(store, user)?;
        let Some(id) = file_id(&path)? else {
            return Ok(std::sync::Arc::default());
        };
        {
            let dbs = self.dbs.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((_, _, db)) = dbs.iter().find(|(p, i, _)| *p == path && *i == id) {
                return Ok(db.clone());
            }
        }
        let db = std::sync::Arc::new(load_path(&path)?);
        let mut dbs = self.dbs.lock().unwrap_or_else(|e| e.into_inner());
        dbs.retain(|(p, _, _)| *p != path);
        if dbs.len() >= CACHED_DBS {
            dbs.remove(0);
        }
        dbs.push((path, id, db.clone()));
        Ok(db)
    }
}

/// Totals of one training run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TrainStats {
    pub new: usize,
    pub reclassified: usize,
    pub already: usize,
}

/// Train `messages` of `user` as `class`, durably (one rewrite of the database for the lot).
/// `progress` is called after each message.
pub fn train<'a>(
    store: &Store,
    user: &str,
    messages: impl IntoIterator<Item = io::Result<std::borrow::Cow<'a, [u8]>>>,
    class: Class,
    mut progress: impl FnMut(usize),
) -> io::Result<TrainStats> {
    let dir = store.user_dir(user)?;
    std::fs::create_dir_all(&dir)?;
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(LOCK_FILE))?;
    lock.lock_exclusive()?;
    let path = dir.join(DB_FILE);
    let mut db = load_path(&path)?;
    let mut stats = TrainStats::default();
    for (i, m) in messages.into_iter().enumerate() {
        let m = m?;
        let hash = message_hash(&m);
        if db.trained_as(&hash) == Some(class) {
            stats.already += 1;
        } else {
            match db.train(&hash, &tokenize::tokens(&m), class) {
                Trained::New => stats.new += 1,
                Trained::Reclassified => stats.reclassified += 1,
                Trained::Already => stats.already += 1,
            }
        }
        progress(i + 1);
    }
    if stats.new + stats.reclassified > 0 {
        crate::fsutil::write_atomic(&path, &db.to_bytes(), 0o600)?;
    }
    let _ = FileExt::unlock(&lock);
    Ok(stats)
}

/// A message's verdict for one user: Some(score) once the user's filter is trained enough.
pub fn classify(cfg: &Spam, db: &TokenDb, message: &[u8]) -> Option<Score> {
    if !cfg.junk_filter || db.nham < cfg.junk_min_ham || db.nspam < cfg.junk_min_spam {
        return None;
    }
    Some(db.score(&tokenize::tokens(message)))
}

/// The X-Postern-Spam value for a message the filter sent to Junk.
pub fn header_value(score: &Score) -> String {
    let clues: Vec<String> = score
        .clues
        .iter()
        .take(8)
        .map(|(t, p)| format!("{}:{p:.2}", t.replace([';', ','], "_")))
        .collect();
    let mut v = format!(
        "junk-filter score={:.4} tokens={}",
        score.spam,
        clues.join(",")
    );
    // A header line stays well under 998 octets (RFC 5322 §2.1.1).
    if v.len() > 900 {
        let mut end = 900;
        while !v.is_char_boundary(end) {
            end -= 1;
        }
        v.truncate(end);
    }
    v
}

/// Where each local recipient's copy of an inbound message goes.
#[derive(Debug, Default)]
pub struct Sorted {
    pub inbox: Vec<String>,
    /// Users whose filter says spam, each with the X-Postern-Spam value.
    pub junk: Vec<(String, String)>,
}

/// Score `message` for each user (blocking file reads: call from a blocking task). A user
/// whose database cannot be read gets the INBOX (and a log line).
pub fn sort_users(
    store: &Store,
    cache: &DbCache,
    cfg: &Spam,
    users: &[String],
    message: &[u8],
) -> Sorted {
    let mut out = Sorted::default();
    if !cfg.junk_filter {
        out.inbox = users.to_vec();
        return out;
    }
    let mut tokens = None;
    for user in users {
        let db = match cache.get(store, user) {
            Ok(db) => db,
            Err(e) => {
                tracing::warn!(user, "junk filter database unreadable, filter skipped: {e}");
                out.inbox.push(user.clone());
                continue;
            }
        };
        if db.nham < cfg.junk_min_ham || db.nspam < cfg.junk_min_spam {
            out.inbox.push(user.clone());
            continue;
        }
        let tokens = tokens.get_or_insert_with(|| tokenize::tokens(message));
        let score = db.score(tokens);
        tracing::info!(user, score = score.spam, "junk filter score");
        if score.spam > cfg.junk_threshold {
            out.junk.push((user.clone(), header_value(&score)));
        } else {
            out.inbox.push(user.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests;
