//! Message bodies on their way in (SMTP DATA and BDAT, IMAP APPEND literals). A body stays in
//! memory while it is small and moves to a temp file under `<data_dir>/spool/tmp` once it
//! passes `THRESHOLD`, so memory does not grow with message size × connections: 20
//! connections each halfway through a 40 MiB DATA hold a few hundred KiB each, not 20 MiB.
//!
//! * `SpoolWriter` takes the decoded bytes as they arrive. Writing is infallible for the
//!   caller: the first I/O error (disk full) is kept, later bytes are dropped, and `finish`
//!   reports it, so the protocol can read on to the end of the body and answer 452.
//! * `SpooledMessage` is the finished body: a `Vec` below the threshold, else the file,
//!   mapped read-only so every check that wants one `&[u8]` (header parsing, mail-auth's
//!   DKIM/DMARC verifiers, the DKIM signer) works on it unchanged. Mapped pages are page
//!   cache the kernel may drop and re-read; a heap copy could only be swapped. The file is
//!   deleted when the message is dropped.
//! * `Outgoing` (compose.rs) is what a final write takes: our header lines in front of the
//!   spooled message, minus some of its header fields; the body is copied file to file by
//!   the kernel (copy_file_range), never through a buffer of its size.
//!
//! The spool is scratch space: nothing in it is acknowledged, so it is never fsynced; the
//! final Maildir or queue file goes through `fsutil`'s durability rule. Writes go to the page
//! cache one 64 KiB block at a time, inline (the SMTP reader) or on the IMAP session's
//! blocking thread; mapping, verifying and the final copies run off the async workers.
//!
//! Why a mapping and not a semaphore around post-DATA processing: a semaphore bounds how many
//! big messages are checked at once but still copies each into the heap, and makes the 21st
//! sender wait on the 20th; the mapping needs no copy, and its pages are clean file pages the
//! kernel takes back when memory is short.

mod compose;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use compose::Outgoing;

/// Bodies up to this size stay in memory.
pub const THRESHOLD: usize = 256 * 1024;

/// Once spilled, writes go to the file in blocks of this size.
const WRITE_BLOCK: usize = 64 * 1024;

/// Free space on the data disk is checked when a body spills and then every this many octets.
const SPACE_CHECK_EVERY: u64 = 4 << 20;

/// Where bodies are spooled; cheap to clone (one per session).
#[derive(Debug, Clone)]
pub struct Spool {
    dir: Option<Arc<PathBuf>>,
    threshold: usize,
    /// Octets that must stay free on the data disk: a body that would eat into them is
    /// refused (452 4.3.1 / NO [LIMIT]), so spooled bodies of many connections cannot fill
    /// the disk that the Maildir and the queue need (Postfix's `queue_minfree`).
    reserve: u64,
}

impl Spool {
    /// The spool of a data dir: `<data_dir>/spool/tmp`, mode 0700, emptied of what a
    /// previous process left behind (a crash mid-DATA).
    pub fn open(data_dir: &Path) -> io::Result<Spool> {
        let dir = data_dir.join("spool").join("tmp");
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
        remove_stale(&dir)?;
        Ok(Spool {
            dir: Some(Arc::new(dir)),
            threshold: THRESHOLD,
            reserve: 0,
        })
    }

    /// A spool that never touches the disk (unit tests, fuzzing, the CLI).
    pub fn memory() -> Spool {
        Spool {
            dir: None,
            threshold: usize::MAX,
            reserve: 0,
        }
    }

    /// The same spool with another threshold (tests spill tiny bodies).
    pub fn with_threshold(mut self, threshold: usize) -> Spool {
        self.threshold = threshold;
        self
    }

    /// The same spool keeping `reserve` octets free on its disk.
    pub fn with_reserve(mut self, reserve: u64) -> Spool {
        self.reserve = reserve;
        self
    }

    /// Fail with StorageFull when the disk has less than the reserve available.
    fn check_space(&self) -> io::Result<()> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        if self.reserve == 0 {
            return Ok(());
        }
        let free = fs4::available_space(dir.as_path())?;
        if free < self.reserve {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                format!(
                    "only {} MiB free on the data disk, {} MiB kept in reserve",
                    free >> 20,
                    self.reserve >> 20
                ),
            ));
        }
        Ok(())
    }

    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref().map(PathBuf::as_path)
    }

    pub fn writer(&self) -> SpoolWriter {
        SpoolWriter {
            spool: self.clone(),
            buf: Vec::new(),
            file: None,
            len: 0,
            next_space_check: 0,
            error: None,
        }
    }
}

/// Temp files are named `PID.N`; remove those whose process is gone.
fn remove_stale(dir: &Path) -> io::Result<()> {
    for e in fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name();
        let pid = name.to_string_lossy();
        let pid = pid.split('.').next().unwrap_or("");
        let alive = pid.parse::<u32>().is_ok_and(|p| {
            p == std::process::id() || Path::new("/proc").join(p.to_string()).exists()
        });
        if !alive {
            tracing::info!("spool: removing {} left by an earlier run", name.display());
            let _ = fs::remove_file(e.path());
        }
    }
    Ok(())
}

/// A temp file that is removed when dropped.
#[derive(Debug)]
struct TempPath(PathBuf);

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// Collects one body as it arrives.
pub struct SpoolWriter {
    spool: Spool,
    /// The whole body while small; after spilling, the block not yet written to the file.
    buf: Vec<u8>,
    file: Option<(File, TempPath)>,
    len: u64,
    /// `len` at which free space is checked next.
    next_space_check: u64,
    error: Option<io::Error>,
}

impl std::fmt::Debug for SpoolWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpoolWriter")
            .field("len", &self.len)
            .field("spilled", &self.file.is_some())
            .finish()
    }
}

impl SpoolWriter {
    /// Octets written so far (also those dropped after an error).
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The body went to a spool file (so `finish` does file I/O).
    pub fn is_spilled(&self) -> bool {
        self.file.is_some()
    }

    pub fn write(&mut self, bytes: &[u8]) {
        self.len += bytes.len() as u64;
        if self.error.is_some() {
            return;
        }
        let r = if self.file.is_some() {
            self.write_spilled(bytes)
        } else {
            self.buf.extend_from_slice(bytes);
            if self.buf.len() > self.spool.threshold {
                self.spill()
            } else {
                Ok(())
            }
        };
        if let Err(e) = r {
            self.fail(e);
        }
    }

    /// Small writes (the DATA decoder writes octet by octet) are gathered into one block;
    /// the buffer never grows past it.
    fn write_spilled(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.len >= self.next_space_check {
            self.spool.check_space()?;
            self.next_space_check = self.len + SPACE_CHECK_EVERY;
        }
        if self.buf.len() + bytes.len() > WRITE_BLOCK {
            self.flush()?;
        }
        if bytes.len() >= WRITE_BLOCK {
            if let Some((f, _)) = &mut self.file {
                f.write_all(bytes)?;
            }
        } else {
            self.buf.extend_from_slice(bytes);
        }
        Ok(())
    }

    fn fail(&mut self, e: io::Error) {
        tracing::warn!("spool: write failed: {e}");
        self.error = Some(e);
        self.buf = Vec::new();
        // Dropping the file removes it: the space comes back at once.
        self.file = None;
    }

    /// Move the body to a new temp file.
    fn spill(&mut self) -> io::Result<()> {
        let Some(dir) = &self.spool.dir else {
            return Ok(());
        };
        self.spool.check_space()?;
        self.next_space_check = self.len + SPACE_CHECK_EVERY;
        let path = dir.join(format!(
            "{}.{}",
            std::process::id(),
            crate::fsutil::unique()
        ));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        self.file = Some((file, TempPath(path)));
        self.flush()?;
        // The threshold-sized buffer is not needed any more; keep one block.
        self.buf = Vec::with_capacity(WRITE_BLOCK);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if let Some((f, _)) = &mut self.file {
            f.write_all(&self.buf)?;
        }
        self.buf.clear();
        Ok(())
    }

    /// The complete body, or the first write error.
    pub fn finish(mut self) -> io::Result<SpooledMessage> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        if self.file.is_none() {
            return Ok(SpooledMessage(Repr::Mem(std::mem::take(&mut self.buf))));
        }
        self.flush()?;
        let (file, path) = self.file.take().expect("checked above");
        // SAFETY: the file is ours alone: created with create_new, mode 0600, in a 0700
        // directory, and nothing writes to or truncates it from here on (it is only read and
        // finally unlinked, which leaves a mapping valid).
        let map = unsafe { memmap2::Mmap::map(&file)? };
        // Read once, front to back: the kernel may drop pages behind the reader early.
        let _ = map.advise(memmap2::Advice::Sequential);
        Ok(SpooledMessage(Repr::File { map, path }))
    }
}

/// A finished body: in memory or in a mapped spool file (deleted when dropped).
pub struct SpooledMessage(Repr);

enum Repr {
    Mem(Vec<u8>),
    File { map: memmap2::Mmap, path: TempPath },
}

impl SpooledMessage {
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Mem(v) => v,
            Repr::File { map, .. } => map,
        }
    }

    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The spool file, when the body is in one.
    pub fn path(&self) -> Option<&Path> {
        match &self.0 {
            Repr::Mem(_) => None,
            Repr::File { path, .. } => Some(&path.0),
        }
    }

    /// Write the octets `range` of the body to `out`, read from the file in small blocks
    /// (by the kernel alone, copy_file_range, when `out` is a `File`), so no buffer of the
    /// body's size is made.
    pub fn copy_range_to<W: Write + ?Sized>(
        &self,
        range: std::ops::Range<usize>,
        out: &mut W,
    ) -> io::Result<()> {
        match &self.0 {
            Repr::Mem(v) => out.write_all(&v[range]),
            Repr::File { path, .. } => {
                use std::io::{Read, Seek, SeekFrom};
                // A handle of our own (a dup would share its offset with other readers).
                let mut src = File::open(&path.0)?;
                src.seek(SeekFrom::Start(range.start as u64))?;
                let want = (range.end - range.start) as u64;
                let n = io::copy(&mut (&mut src).take(want), out)?;
                if n != want {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "spool file shorter than its message",
                    ));
                }
                Ok(())
            }
        }
    }

    /// The body as an owned vector (small messages; tests).
    pub fn to_vec(&self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }
}

impl From<Vec<u8>> for SpooledMessage {
    fn from(v: Vec<u8>) -> SpooledMessage {
        SpooledMessage(Repr::Mem(v))
    }
}

impl std::fmt::Debug for SpooledMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Repr::Mem(v) => write!(f, "SpooledMessage(memory, {} octets)", v.len()),
            Repr::File { map, path, .. } => write!(
                f,
                "SpooledMessage({}, {} octets)",
                path.0.display(),
                map.len()
            ),
        }
    }
}

impl PartialEq<[u8]> for SpooledMessage {
    fn eq(&self, other: &[u8]) -> bool {
        self.as_bytes() == other
    }
}

impl<const N: usize> PartialEq<&[u8; N]> for SpooledMessage {
    fn eq(&self, other: &&[u8; N]) -> bool {
        self.as_bytes() == other.as_slice()
    }
}

#[cfg(test)]
mod tests;
