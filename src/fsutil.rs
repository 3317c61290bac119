//! The durability rule, written once: write to a temp file, fsync it, move it into place
//! (rename, or link when the target must not be replaced), fsync the directory. Only then may
//! a protocol say "250"/"OK". Every durable write in the tree goes through [`Durable`]
//! (modelled on chasquid's `safeio.WriteFile` with its file options).
//!
//! Errors come back as the `io::Error` of the failing call, kind intact (ENOSPC is
//! `StorageFull`, EDQUOT `QuotaExceeded`), so callers can map them to their protocol's answer,
//! and no temp file is left behind on any error.

pub mod group_commit;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// How to write one file durably. `Durable::new(path).mode(0o644).write(data)`.
#[derive(Debug, Clone)]
pub struct Durable<'a> {
    path: &'a Path,
    mode: u32,
    mtime: Option<SystemTime>,
    tmp_dir: Option<&'a Path>,
    no_replace: bool,
    sync_dir: bool,
}

impl<'a> Durable<'a> {
    /// Write `path` with mode 0600, replacing it atomically, directory synced.
    pub fn new(path: &'a Path) -> Durable<'a> {
        Durable {
            path,
            mode: 0o600,
            mtime: None,
            tmp_dir: None,
            no_replace: false,
            sync_dir: true,
        }
    }

    /// Permissions of a newly created file.
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// Set the file's modification time (IMAP INTERNALDATE) before it is synced.
    pub fn mtime(mut self, t: Option<SystemTime>) -> Self {
        self.mtime = t;
        self
    }

    /// Write the temp file in `dir` (Maildir `tmp/`) instead of beside the target. It must be
    /// on the same file system.
    pub fn tmp_in(mut self, dir: &'a Path) -> Self {
        self.tmp_dir = Some(dir);
        self
    }

    /// Link the temp file into place instead of renaming it: an existing target is kept and
    /// the write fails with `AlreadyExists` (a key made once must never be replaced).
    pub fn no_replace(mut self) -> Self {
        self.no_replace = true;
        self
    }

    /// Leave the directory fsync to the caller, who moves several files into one directory
    /// and syncs it once before acknowledging any of them.
    pub fn defer_dir_sync(mut self) -> Self {
        self.sync_dir = false;
        self
    }

    /// Write `data` as the file's whole content.
    pub fn write(&self, data: &[u8]) -> io::Result<()> {
        self.run(|tmp| {
            let mut f = self.create(tmp)?;
            f.write_all(data)?;
            Ok(f)
        })
    }

    /// Make the file a copy of `src` (the kernel copies; the data need not be in memory).
    pub fn copy_from(&self, src: &Path) -> io::Result<()> {
        self.run(|tmp| {
            let mut f = self.create(tmp)?;
            io::copy(&mut File::open(src)?, &mut f)?;
            Ok(f)
        })
    }

    /// Write the content through `fill` (buffered), for data produced piece by piece.
    pub fn write_with(
        &self,
        fill: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> io::Result<()> {
        self.run(|tmp| {
            let mut out = io::BufWriter::new(self.create(tmp)?);
            fill(&mut out)?;
            out.into_inner().map_err(|e| e.into_error())
        })
    }

    fn create(&self, tmp: &Path) -> io::Result<File> {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(self.mode)
            .open(tmp)
    }

    fn run(&self, fill: impl FnOnce(&Path) -> io::Result<File>) -> io::Result<()> {
        let dir = parent(self.path)?;
        let name = self
            .path
            .file_name()
            .ok_or_else(|| io::Error::other("path has no file name"))?;
        let tmp: PathBuf = self.tmp_dir.unwrap_or(dir).join(format!(
            ".{}.tmp{}.{}",
            name.to_string_lossy(),
            std::process::id(),
            unique()
        ));
        let result = (|| {
            let f = fill(&tmp)?;
            if let Some(t) = self.mtime {
                f.set_modified(t)?;
            }
            f.sync_all()?;
            drop(f);
            if self.no_replace {
                fs::hard_link(&tmp, self.path)?;
                fs::remove_file(&tmp)?;
            } else {
                fs::rename(&tmp, self.path)?;
            }
            if self.sync_dir {
                fsync_dir(dir)?;
            }
            Ok(())
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }
}

/// Atomically replace `path` with `data` (mode applies to a newly created file).
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    Durable::new(path).mode(mode).write(data)
}

/// The directory holding `path` (a bare file name is in ".").
fn parent(path: &Path) -> io::Result<&Path> {
    match path.parent() {
        Some(p) if p.as_os_str().is_empty() => Ok(Path::new(".")),
        Some(p) => Ok(p),
        None => Err(io::Error::other("path has no parent directory")),
    }
}

/// fsync a directory so a rename or create inside it survives a crash.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The write failed because the disk or the quota is full (ENOSPC, EDQUOT): a condition the
/// protocols report as "mail system full" (RFC 3463 X.3.1) rather than as a generic error.
pub fn is_disk_full(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}

/// A process-unique counter for temp names.
pub fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::Durable;
    use std::os::unix::fs::PermissionsExt;

    fn entries(d: &std::path::Path) -> usize {
        std::fs::read_dir(d).unwrap().count()
    }

    #[test]
    fn replaces_atomically() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        super::write_atomic(&p, b"one", 0o600).unwrap();
        super::write_atomic(&p, b"two", 0o640).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(entries(d.path()), 1);
    }

    #[test]
    fn options_mode_mtime_tmp_dir_copy() {
        let d = tempfile::tempdir().unwrap();
        let tmp = d.path().join("tmp");
        std::fs::create_dir(&tmp).unwrap();
        let p = d.path().join("m");
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
        Durable::new(&p)
            .mode(0o644)
            .mtime(Some(t))
            .tmp_in(&tmp)
            .write(b"x")
            .unwrap();
        let m = std::fs::metadata(&p).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o644);
        assert_eq!(m.modified().unwrap(), t);
        assert_eq!(entries(&tmp), 0);
        let q = d.path().join("q");
        Durable::new(&q).copy_from(&p).unwrap();
        assert_eq!(std::fs::read(&q).unwrap(), b"x");
    }

    #[test]
    fn no_replace_keeps_the_first_and_leaves_no_temp() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("key");
        Durable::new(&p).no_replace().write(b"first").unwrap();
        let e = Durable::new(&p).no_replace().write(b"second").unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&p).unwrap(), b"first");
        assert_eq!(entries(d.path()), 1);
    }

    #[test]
    fn errors_keep_their_kind_and_leave_nothing() {
        let d = tempfile::tempdir().unwrap();
        // Copying from a missing file fails after the temp file was created.
        let p = d.path().join("f");
        let e = Durable::new(&p)
            .copy_from(&d.path().join("missing"))
            .unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
        assert_eq!(entries(d.path()), 0);
    }

    /// No error is wrapped: `?` passes the io::Error through, so ENOSPC/EDQUOT keep their
    /// kind the same way this NotFound does.
    #[test]
    fn write_error_is_not_wrapped() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub").join("f");
        let e = Durable::new(&p).write(b"x").unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    }
}
