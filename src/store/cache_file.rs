//! The on-disk parse cache of one folder, `postern-cache`: what parsing a message yields
//! (the IMAP layer stores its size, ENVELOPE and BODYSTRUCTURE there as opaque bytes), so that
//! neither a second FETCH on a mailbox larger than the in-memory cache nor a restart re-reads
//! and re-parses every message file — the role of Dovecot's `dovecot.index.cache`.
//!
//! ```text
//! "PCACHE1\n" <uidvalidity: u32 LE>                      header, 12 bytes
//! <uid: u32 LE> <len: u32 LE> <crc32: u32 LE> <len bytes> one record per cached message
//! ```
//!
//! It is a cache, never the only copy of anything: appends are not fsynced, and whatever
//! cannot be trusted is dropped and recomputed from the message file. A torn last record (a
//! crash during an append) is cut off on load; a record whose CRC does not match is ignored;
//! a header with another UIDVALIDITY (the UIDs now name other messages, RFC 3501 §2.3.1.1)
//! empties the file. Maildir message files never change (only their names do), so a record
//! stays right until its message is expunged; expunged records are dead space, reclaimed by
//! rewriting the file (temp + rename) once they outweigh the live ones.
//!
//! Memory: only an offset per cached UID (the index is built on first use, not at SELECT).

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

pub const CACHE_FILE: &str = "postern-cache";
const MAGIC: &[u8; 8] = b"PCACHE1\n";
const HEADER: u64 = 12;
const RECORD_HEADER: u64 = 12;
/// No single record is larger than this (a BODYSTRUCTURE of a pathological message can be
/// big, but not this big); a larger length on disk means corruption.
const MAX_RECORD: u32 = 16 << 20;
/// Dead space tolerated before a rewrite.
const COMPACT_MIN_DEAD: u64 = 1 << 20;

pub struct CacheFile {
    path: PathBuf,
    /// Opened (and indexed) on first use.
    open: Option<Opened>,
}

struct Opened {
    file: File,
    uidvalidity: u32,
    /// UID → (offset of the payload, its length).
    index: HashMap<u32, (u64, u32)>,
    end: u64,
    live: u64,
    dead: u64,
}

impl CacheFile {
    pub fn new(dir: &Path) -> CacheFile {
        CacheFile {
            path: dir.join(CACHE_FILE),
            open: None,
        }
    }

    /// The cached bytes of `uid`, if any (and intact).
    pub fn get(&mut self, uidvalidity: u32, uid: u32) -> Option<Vec<u8>> {
        let o = self.opened(uidvalidity).ok()?;
        let &(off, len) = o.index.get(&uid)?;
        let mut buf = vec![0u8; len as usize + 4];
        let ok = o.file.read_exact_at(&mut buf, off - 4).is_ok() && {
            let sum = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
            sum == crc32fast::hash(&buf[4..])
        };
        if !ok {
            // Unreadable or corrupt: forget it; the caller parses the message again.
            o.index.remove(&uid);
            let n = RECORD_HEADER + len as u64;
            o.live = o.live.saturating_sub(n);
            o.dead += n;
            return None;
        }
        Some(buf.split_off(4))
    }

    /// Remember `data` for `uid`. Failures only cost a re-parse later, so they are logged
    /// and otherwise ignored.
    pub fn put(&mut self, uidvalidity: u32, uid: u32, data: &[u8]) {
        if data.len() > MAX_RECORD as usize {
            return;
        }
        let Ok(o) = self.opened(uidvalidity) else {
            return;
        };
        if o.index.contains_key(&uid) {
            return;
        }
        let mut rec = Vec::with_capacity(RECORD_HEADER as usize + data.len());
        rec.extend_from_slice(&uid.to_le_bytes());
        rec.extend_from_slice(&(data.len() as u32).to_le_bytes());
        rec.extend_from_slice(&crc32fast::hash(data).to_le_bytes());
        rec.extend_from_slice(data);
        match o.file.write_all_at(&rec, o.end) {
            Ok(()) => {
                o.index
                    .insert(uid, (o.end + RECORD_HEADER, data.len() as u32));
                o.end += rec.len() as u64;
                o.live += rec.len() as u64;
            }
            Err(e) => {
                tracing::warn!(path = %self.path.display(), "parse cache append failed: {e}");
                // Whatever part was written lies beyond `end` and is overwritten next time.
            }
        }
    }

    /// Expunged messages: their records become dead space, reclaimed when it outweighs the
    /// live records.
    pub fn forget(&mut self, uids: &[u32]) {
        let Some(o) = self.open.as_mut() else {
            return;
        };
        for u in uids {
            if let Some((_, len)) = o.index.remove(u) {
                let n = RECORD_HEADER + len as u64;
                o.live = o.live.saturating_sub(n);
                o.dead += n;
            }
        }
        if o.dead >= COMPACT_MIN_DEAD
            && o.dead > o.live
            && let Err(e) = self.compact()
        {
            tracing::warn!(path = %self.path.display(), "parse cache rewrite failed: {e}");
            // Start over rather than keep a file in an unknown state.
            self.open = None;
            let _ = fs::remove_file(&self.path);
        }
    }

    fn opened(&mut self, uidvalidity: u32) -> io::Result<&mut Opened> {
        if self
            .open
            .as_ref()
            .is_some_and(|o| o.uidvalidity != uidvalidity)
        {
            self.open = None;
            let _ = fs::remove_file(&self.path);
        }
        if self.open.is_none() {
            self.open = Some(load(&self.path, uidvalidity)?);
        }
        Ok(self.open.as_mut().expect("opened"))
    }

    /// Rewrite the live records into a new file and swap it in.
    fn compact(&mut self) -> io::Result<()> {
        let Some(o) = self.open.as_mut() else {
            return Ok(());
        };
        let mut index = HashMap::with_capacity(o.index.len());
        let mut end = HEADER;
        crate::fsutil::Durable::new(&self.path).write_with(|out| {
            out.write_all(MAGIC)?;
            out.write_all(&o.uidvalidity.to_le_bytes())?;
            let mut entries: Vec<(u32, u64, u32)> = o
                .index
                .iter()
                .map(|(&u, &(off, len))| (u, off, len))
                .collect();
            entries.sort_by_key(|e| e.1);
            let mut buf = Vec::new();
            for (uid, off, len) in entries {
                buf.resize(RECORD_HEADER as usize + len as usize, 0);
                o.file.read_exact_at(&mut buf, off - RECORD_HEADER)?;
                out.write_all(&buf)?;
                index.insert(uid, (end + RECORD_HEADER, len));
                end += buf.len() as u64;
            }
            Ok(())
        })?;
        let file = OpenOptions::new().read(true).write(true).open(&self.path)?;
        *o = Opened {
            file,
            uidvalidity: o.uidvalidity,
            index,
            end,
            live: end - HEADER,
            dead: 0,
        };
        Ok(())
    }
}

fn create(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

/// Open the file and index its records; start a new one when it is missing, foreign or
/// belongs to another UIDVALIDITY.
fn load(path: &Path, uidvalidity: u32) -> io::Result<Opened> {
    let fresh = |path: &Path| -> io::Result<Opened> {
        let mut file = create(path)?;
        file.write_all(MAGIC)?;
        file.write_all(&uidvalidity.to_le_bytes())?;
        Ok(Opened {
            file,
            uidvalidity,
            index: HashMap::new(),
            end: HEADER,
            live: 0,
            dead: 0,
        })
    };
    let file = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return fresh(path),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    let mut r = BufReader::new(&file);
    let mut head = [0u8; HEADER as usize];
    if len < HEADER
        || r.read_exact(&mut head).is_err()
        || &head[..8] != MAGIC
        || head[8..12] != uidvalidity.to_le_bytes()
    {
        drop(r);
        return fresh(path);
    }
    let mut index = HashMap::new();
    let (mut pos, mut live, mut dead) = (HEADER, 0u64, 0u64);
    while pos + RECORD_HEADER <= len {
        let mut rh = [0u8; RECORD_HEADER as usize];
        if r.read_exact(&mut rh).is_err() {
            break;
        }
        let uid = u32::from_le_bytes(rh[0..4].try_into().expect("4 bytes"));
        let n = u32::from_le_bytes(rh[4..8].try_into().expect("4 bytes"));
        if n > MAX_RECORD || pos + RECORD_HEADER + n as u64 > len {
            break;
        }
        r.seek(SeekFrom::Current(n as i64))?;
        if let Some((_, old)) = index.insert(uid, (pos + RECORD_HEADER, n)) {
            dead += RECORD_HEADER + old as u64;
            live -= RECORD_HEADER + old as u64;
        }
        live += RECORD_HEADER + n as u64;
        pos += RECORD_HEADER + n as u64;
    }
    drop(r);
    if pos < len {
        // A torn or garbled tail: cut it so appends start on a record boundary.
        file.set_len(pos)?;
    }
    Ok(Opened {
        file,
        uidvalidity,
        index,
        end: pos,
        live,
        dead,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_reopen_and_a_torn_tail_is_cut() {
        let d = tempfile::tempdir().unwrap();
        let mut c = CacheFile::new(d.path());
        assert_eq!(c.get(7, 1), None);
        c.put(7, 1, b"one");
        c.put(7, 2, b"two two");
        c.put(7, 2, b"ignored: already cached");
        assert_eq!(c.get(7, 2).as_deref(), Some(&b"two two"[..]));
        // A crash in the middle of the next append.
        let path = d.path().join(CACHE_FILE);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[3, 0, 0, 0, 100, 0, 0, 0, 1, 2]).unwrap();
        drop(f);
        let mut c = CacheFile::new(d.path());
        assert_eq!(c.get(7, 1).as_deref(), Some(&b"one"[..]));
        assert_eq!(c.get(7, 3), None);
        c.put(7, 3, b"three");
        let mut c = CacheFile::new(d.path());
        assert_eq!(c.get(7, 3).as_deref(), Some(&b"three"[..]));
        assert_eq!(c.get(7, 2).as_deref(), Some(&b"two two"[..]));
        // Another UIDVALIDITY: the UIDs name other messages now.
        assert_eq!(c.get(8, 1), None);
        let mut c = CacheFile::new(d.path());
        assert_eq!(c.get(7, 1), None);
    }

    #[test]
    fn a_corrupt_record_is_not_served() {
        let d = tempfile::tempdir().unwrap();
        let mut c = CacheFile::new(d.path());
        c.put(1, 5, b"payload");
        drop(c);
        let path = d.path().join(CACHE_FILE);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&path, bytes).unwrap();
        let mut c = CacheFile::new(d.path());
        assert_eq!(c.get(1, 5), None);
    }

    #[test]
    fn expunged_records_are_reclaimed() {
        let d = tempfile::tempdir().unwrap();
        let mut c = CacheFile::new(d.path());
        let big = vec![b'x'; 300 << 10];
        for uid in 1..=5 {
            c.put(1, uid, &big);
        }
        c.put(1, 6, b"small");
        let path = d.path().join(CACHE_FILE);
        let before = fs::metadata(&path).unwrap().len();
        c.forget(&[1, 2, 3, 4]);
        let after = fs::metadata(&path).unwrap().len();
        assert!(after < before / 2, "{before} -> {after}");
        assert_eq!(c.get(1, 5).map(|v| v.len()), Some(big.len()));
        assert_eq!(c.get(1, 6).as_deref(), Some(&b"small"[..]));
        assert_eq!(c.get(1, 1), None);
        // And the rewritten file loads.
        let mut c = CacheFile::new(d.path());
        assert_eq!(c.get(1, 6).as_deref(), Some(&b"small"[..]));
        c.put(1, 7, b"after");
        assert_eq!(c.get(1, 7).as_deref(), Some(&b"after"[..]));
    }
}
