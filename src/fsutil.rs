//! The durability rule, written once: write to a temp file in the same directory, fsync it,
//! rename over the target, fsync the directory. Only then may a protocol say "250"/"OK".

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Atomically replace `path` with `data` (mode applies to a newly created file).
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    write_atomic_with(path, mode, |f| f.write_all(data))
}

/// `write_atomic` with the content written by `fill` (streamed from the spool, say).
pub fn write_atomic_with(
    path: &Path,
    mode: u32,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<()> {
    // A bare file name ("postern.toml") has the empty path as parent: that is ".".
    let dir = match path.parent() {
        Some(p) if p.as_os_str().is_empty() => Path::new("."),
        Some(p) => p,
        None => return Err(io::Error::other("path has no parent directory")),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::other("path has no file name"))?;
    let tmp = dir.join(format!(
        ".{}.tmp{}.{}",
        name.to_string_lossy(),
        std::process::id(),
        unique()
    ));
    write_durably(&tmp, path, mode, fill)
}

/// The rule itself, for content that is written rather than handed over as one slice (a
/// message streamed from the spool, say): create `tmp` (new, with `mode`), let `fill` write
/// it, fsync it, rename it to `dst`, fsync `dst`'s directory. `tmp` and `dst` must be on one
/// file system (Maildir's tmp/ and new/, or one directory). `tmp` is removed on failure.
pub fn write_durably(
    tmp: &Path,
    dst: &Path,
    mode: u32,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<()> {
    let dst_dir = match dst.parent() {
        Some(p) if p.as_os_str().is_empty() => Path::new("."),
        Some(p) => p,
        None => return Err(io::Error::other("path has no parent directory")),
    };
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(tmp)?;
        fill(&mut f)?;
        f.sync_all()?;
        fs::rename(tmp, dst)?;
        fsync_dir(dst_dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(tmp);
    }
    result
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
    #[test]
    fn replaces_atomically() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        super::write_atomic(&p, b"one", 0o600).unwrap();
        super::write_atomic(&p, b"two", 0o600).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }
}
