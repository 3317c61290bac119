//! Durable Maildir delivery. The `maildir` crate creates trees and lists messages but does not
//! fsync on delivery; this fills that gap with `fsutil::Durable` (temp file in tmp/, renamed
//! into new/) and Maildir's own unique names.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::fsutil::{Durable, unique};

/// A unique Maildir base name: `SECS.M<usec>P<pid>Q<n>.HOST,S=<size>` (the Dovecot form; the
/// `S=` size lets IMAP answer RFC822.SIZE without a stat). The microseconds are zero-padded
/// to six digits so that name order is arrival order within a second too: new files get
/// their UIDs in name order (`mailbox/index.rs`), and `postern import` relies on it to keep
/// an mbox's order.
pub fn unique_name(size: usize) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let host = hostname();
    format!(
        "{}.M{:06}P{}Q{}.{},S={}",
        now.as_secs(),
        now.subsec_micros(),
        std::process::id(),
        unique(),
        host,
        size
    )
}

fn hostname() -> String {
    static HOST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HOST.get_or_init(|| {
        let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .unwrap_or_else(|_| "localhost".into());
        // '/' and ':' would break the name; Maildir says to encode them.
        raw.trim().replace('/', "\\057").replace(':', "\\072")
    })
    .clone()
}

/// Write `message` into `maildir/new/` durably (temp file in `tmp/`); returns the final path.
pub fn deliver_to_maildir(maildir: &Path, message: &[u8]) -> io::Result<PathBuf> {
    let dst = maildir.join("new").join(unique_name(message.len()));
    Durable::new(&dst)
        .tmp_in(&maildir.join("tmp"))
        .write(message)?;
    Ok(dst)
}

/// Like [`deliver_to_maildir`], with Maildir flag letters (`"FS"`): the message goes straight
/// into `cur/` as `NAME:2,FLAGS` (flags sorted), as a client that had read it would leave it.
/// Empty `flags` is plain delivery into `new/`.
pub fn deliver_to_maildir_flagged(
    maildir: &Path,
    message: &[u8],
    flags: &str,
) -> io::Result<PathBuf> {
    if flags.is_empty() {
        return deliver_to_maildir(maildir, message);
    }
    let mut f: Vec<char> = flags.chars().filter(|c| c.is_ascii_uppercase()).collect();
    f.sort_unstable();
    f.dedup();
    let f: String = f.into_iter().collect();
    let dst = maildir
        .join("cur")
        .join(format!("{}:2,{f}", unique_name(message.len())));
    Durable::new(&dst)
        .tmp_in(&maildir.join("tmp"))
        .write(message)?;
    Ok(dst)
}

/// Write a message of `size` octets, produced by `fill` (streamed from the spool), into
/// `maildir/new/` durably; returns the final path.
pub fn deliver_to_maildir_with(
    maildir: &Path,
    size: usize,
    fill: impl FnOnce(&mut dyn io::Write) -> io::Result<()>,
) -> io::Result<PathBuf> {
    let dst = maildir.join("new").join(unique_name(size));
    Durable::new(&dst)
        .tmp_in(&maildir.join("tmp"))
        .write_with(fill)?;
    Ok(dst)
}

/// [`deliver_to_maildir_with`] with the `new/` fsync shared among concurrent deliveries
/// (group commit): the file is fsynced and renamed by this caller, then it waits for a
/// directory fsync that started after the rename. Ok means both are durable.
pub fn deliver_grouped(
    maildir: &Path,
    size: usize,
    fill: impl FnOnce(&mut dyn io::Write) -> io::Result<()>,
    syncs: &crate::fsutil::group_commit::DirSyncs,
) -> io::Result<PathBuf> {
    let new = maildir.join("new");
    let dst = new.join(unique_name(size));
    Durable::new(&dst)
        .tmp_in(&maildir.join("tmp"))
        .defer_dir_sync()
        .write_with(fill)?;
    if let Err(e) = syncs.sync(&new) {
        // Not acknowledged: take it back so a retry by the sender makes no duplicate.
        let _ = std::fs::remove_file(&dst);
        return Err(e);
    }
    Ok(dst)
}
