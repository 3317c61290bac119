//! Per-user Sieve scripts on disk: `DATA_DIR/sieve/DOMAIN/LOCAL/NAME.sieve`, the name of the
//! active one in `active`, and the vacation reply memory in `vacation.db`. Every write goes
//! through `fsutil::Durable`. (File I/O lives here, apart from the sans-IO interpreter.)

use std::io;
use std::path::{Path, PathBuf};

use crate::fsutil::Durable;

use super::{CompileError, Limits};

#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    #[error(
        "invalid script name {0:?} (letters, digits, '.', '-', '_' and spaces; 1-128 characters)"
    )]
    BadName(String),
    #[error("no script named {0:?}")]
    NotFound(String),
    #[error("script {0:?} is active; activate another one (or none) first")]
    Active(String),
    #[error("a script named {0:?} already exists")]
    Exists(String),
    #[error("{0}")]
    Compile(#[from] CompileError),
    #[error(transparent)]
    Io(#[from] io::Error),
}

#[derive(Debug, Clone)]
pub struct ScriptStore {
    root: PathBuf,
}

/// RFC 5804 §1.6 allows most of Unicode; we keep names that are safe as file names.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with(['.', ' '])
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ' ' | '+' | '@'))
}

impl ScriptStore {
    pub fn new(data_dir: &Path) -> ScriptStore {
        ScriptStore {
            root: data_dir.join("sieve"),
        }
    }

    fn user_dir(&self, user: &str) -> io::Result<PathBuf> {
        let (local, domain) = user
            .rsplit_once('@')
            .ok_or_else(|| io::Error::other("user is not an address"))?;
        for part in [local, domain] {
            if part.is_empty() || part.starts_with('.') || part.contains(['/', '\0']) {
                return Err(io::Error::other(format!("unsafe user name {user:?}")));
            }
        }
        Ok(self.root.join(domain.to_ascii_lowercase()).join(local))
    }

    fn path(&self, user: &str, name: &str) -> Result<PathBuf, ScriptError> {
        if !valid_name(name) {
            return Err(ScriptError::BadName(name.into()));
        }
        Ok(self.user_dir(user)?.join(format!("{name}.sieve")))
    }

    /// Script names with whether each is the active one, sorted.
    pub fn list(&self, user: &str) -> Result<Vec<(String, bool)>, ScriptError> {
        let dir = self.user_dir(user)?;
        let active = self.active_name(user)?;
        let mut out = Vec::new();
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e.into()),
        };
        for e in rd {
            let n = e?.file_name().to_string_lossy().into_owned();
            if let Some(name) = n.strip_suffix(".sieve")
                && valid_name(name)
            {
                out.push((name.to_string(), active.as_deref() == Some(name)));
            }
        }
        out.sort();
        Ok(out)
    }

    pub fn get(&self, user: &str, name: &str) -> Result<String, ScriptError> {
        match std::fs::read_to_string(self.path(user, name)?) {
            Ok(s) => Ok(s),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(ScriptError::NotFound(name.into()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Checks the script compiles, then stores it durably (replacing one of the same name).
    pub fn put(&self, user: &str, name: &str, content: &str) -> Result<(), ScriptError> {
        super::compile(content, &Limits::default())?;
        let path = self.path(user, name)?;
        std::fs::create_dir_all(path.parent().expect("has a parent"))?;
        Durable::new(&path).write(content.as_bytes())?;
        Ok(())
    }

    pub fn active_name(&self, user: &str) -> Result<Option<String>, ScriptError> {
        match std::fs::read_to_string(self.user_dir(user)?.join("active")) {
            Ok(s) => {
                let n = s.trim().to_string();
                Ok((valid_name(&n)).then_some(n))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The active script's name and text, if there is one.
    pub fn active(&self, user: &str) -> Result<Option<(String, String)>, ScriptError> {
        let Some(name) = self.active_name(user)? else {
            return Ok(None);
        };
        match self.get(user, &name) {
            Ok(s) => Ok(Some((name, s))),
            Err(ScriptError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Makes `name` the active script; `None` deactivates every script.
    pub fn activate(&self, user: &str, name: Option<&str>) -> Result<(), ScriptError> {
        let marker = self.user_dir(user)?.join("active");
        match name {
            Some(n) => {
                if !self.path(user, n)?.exists() {
                    return Err(ScriptError::NotFound(n.into()));
                }
                Durable::new(&marker).write(n.as_bytes())?;
            }
            None => match std::fs::remove_file(&marker) {
                Ok(()) => crate::fsutil::fsync_dir(marker.parent().expect("has a parent"))?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            },
        }
        Ok(())
    }

    /// Deletes a script; the active one cannot be deleted (RFC 5804 §2.10).
    pub fn delete(&self, user: &str, name: &str) -> Result<(), ScriptError> {
        let path = self.path(user, name)?;
        if self.active_name(user)?.as_deref() == Some(name) {
            return Err(ScriptError::Active(name.into()));
        }
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(crate::fsutil::fsync_dir(
                path.parent().expect("has a parent"),
            )?),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(ScriptError::NotFound(name.into()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Renames a script, keeping it active if it was (RFC 5804 §2.11.1).
    pub fn rename(&self, user: &str, old: &str, new: &str) -> Result<(), ScriptError> {
        let (from, to) = (self.path(user, old)?, self.path(user, new)?);
        if !from.exists() {
            return Err(ScriptError::NotFound(old.into()));
        }
        if to.exists() {
            return Err(ScriptError::Exists(new.into()));
        }
        let was_active = self.active_name(user)?.as_deref() == Some(old);
        std::fs::rename(&from, &to)?;
        crate::fsutil::fsync_dir(to.parent().expect("has a parent"))?;
        if was_active {
            self.activate(user, Some(new))?;
        }
        Ok(())
    }

    /// Has `sender` been answered under `handle` within the period? If not, remember it now
    /// (RFC 5230 §4.2: one reply per sender per period), durably, and say no.
    pub fn vacation_replied(
        &self,
        user: &str,
        handle: &str,
        sender: &str,
        period: u64,
        now: i64,
    ) -> Result<bool, ScriptError> {
        let key = format!(
            "{}\t{}",
            handle.replace(['\t', '\n'], " "),
            sender.to_ascii_lowercase()
        );
        self.seen_within(user, "vacation.db", &key, period, now)
    }

    /// Has the script-error notice `key` gone to the user within the period? If not,
    /// remember it now and say no (one notice per error a day, see `delivery::sieve`).
    pub fn error_noticed(
        &self,
        user: &str,
        key: &str,
        period: u64,
        now: i64,
    ) -> Result<bool, ScriptError> {
        let key = key.replace(['\t', '\n', '\r'], " ");
        self.seen_within(user, "errors.db", &key, period, now)
    }

    /// A small memory of keys with expiry times, one `EXPIRY\tKEY` a line in `file`. The
    /// read-modify-write holds an exclusive lock on `file.lock`, so concurrent deliveries to
    /// one user (several SMTP sessions, the queue) neither both answer nor lose each other's
    /// entries; the new file is written durably (temp file, fsync, rename, directory fsync)
    /// before the lock is released. The lock is on a file of its own because the memory
    /// itself is replaced by rename.
    fn seen_within(
        &self,
        user: &str,
        file: &str,
        key: &str,
        period: u64,
        now: i64,
    ) -> Result<bool, ScriptError> {
        let dir = self.user_dir(user)?;
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(file);
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(format!("{file}.lock")))?;
        // Released when `lock` is dropped (also when the process dies).
        lock.lock()?;
        let old = match std::fs::read_to_string(&path) {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e.into()),
        };
        let mut keep = String::new();
        for line in old.lines() {
            let Some((exp, rest)) = line.split_once('\t') else {
                continue;
            };
            let Ok(exp) = exp.parse::<i64>() else {
                continue;
            };
            if exp <= now {
                continue;
            }
            if rest == key {
                return Ok(true);
            }
            keep.push_str(line);
            keep.push('\n');
        }
        keep.push_str(&format!("{}\t{key}\n", now.saturating_add(period as i64)));
        Durable::new(&path).write(keep.as_bytes())?;
        drop(lock);
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_list_activate_rename_delete() {
        let d = tempfile::tempdir().unwrap();
        let s = ScriptStore::new(d.path());
        let u = "a@example.com";
        assert!(s.list(u).unwrap().is_empty());
        assert!(matches!(
            s.put(u, "x", "fileinto \"a\";"),
            Err(ScriptError::Compile(_))
        ));
        assert!(matches!(
            s.put(u, "../x", "keep;"),
            Err(ScriptError::BadName(_))
        ));
        s.put(u, "one", "keep;").unwrap();
        s.put(u, "two", "discard;").unwrap();
        s.activate(u, Some("one")).unwrap();
        assert_eq!(
            s.list(u).unwrap(),
            vec![("one".into(), true), ("two".into(), false)]
        );
        assert!(matches!(s.delete(u, "one"), Err(ScriptError::Active(_))));
        s.rename(u, "one", "uno").unwrap();
        assert_eq!(
            s.active(u).unwrap().unwrap(),
            ("uno".into(), "keep;".into())
        );
        s.activate(u, None).unwrap();
        s.delete(u, "uno").unwrap();
        assert!(matches!(s.get(u, "uno"), Err(ScriptError::NotFound(_))));
        assert!(s.active(u).unwrap().is_none());
    }

    #[test]
    fn vacation_memory() {
        let d = tempfile::tempdir().unwrap();
        let s = ScriptStore::new(d.path());
        let u = "a@example.com";
        assert!(!s.vacation_replied(u, "h", "X@y.org", 100, 1000).unwrap());
        assert!(s.vacation_replied(u, "h", "x@y.org", 100, 1050).unwrap());
        assert!(
            !s.vacation_replied(u, "other", "x@y.org", 100, 1050)
                .unwrap()
        );
        assert!(!s.vacation_replied(u, "h", "x@y.org", 100, 1101).unwrap());
    }

    /// Concurrent deliveries: one sender is answered once, and distinct senders recorded at
    /// the same moment are all remembered (no lost update of the read-modify-write).
    #[test]
    fn vacation_memory_under_concurrent_deliveries() {
        let d = tempfile::tempdir().unwrap();
        let s = ScriptStore::new(d.path());
        let u = "a@example.com";
        let answered: Vec<bool> = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..12)
                .map(|_| sc.spawn(|| !s.vacation_replied(u, "h", "same@y.org", 100, 1000).unwrap()))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(answered.iter().filter(|a| **a).count(), 1, "{answered:?}");
        std::thread::scope(|sc| {
            for i in 0..12 {
                let s = &s;
                sc.spawn(move || {
                    assert!(
                        !s.vacation_replied(u, "h", &format!("s{i}@y.org"), 100, 1000)
                            .unwrap()
                    )
                });
            }
        });
        for i in 0..12 {
            assert!(
                s.vacation_replied(u, "h", &format!("s{i}@y.org"), 100, 1001)
                    .unwrap(),
                "s{i} forgotten"
            );
        }
        // The lock file is not a script.
        assert!(s.list(u).unwrap().is_empty());
    }
}
