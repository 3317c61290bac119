//! `postern backup DEST` and `postern restore SRC`: a consistent copy of the data directory
//! taken while the server runs, and putting one back while it is stopped.
//!
//! - accounts/ and queue/ are copied holding their `.lock` (the same advisory lock the server
//!   and the CLI take to change them), so neither is caught half-changed;
//! - in each mail folder the UID list (`postern-uidlist`, replaced by rename or appended with
//!   a torn tail ignored on load) and `dovecot-keywords` are copied *before* the message files:
//!   a message delivered meanwhile is either absent or gets a fresh UID on restore, and one
//!   expunged meanwhile restores as expunged. UIDVALIDITY and every UID in the copy stay as
//!   they were, so IMAP clients do not download again;
//! - message files are never changed in place (Maildir), so they are hard-linked when DEST is
//!   on the same file system, else copied; tmp/ contents (unfinished deliveries) are skipped.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use fs4::fs_std::FileExt;

use crate::config::Config;

#[derive(clap::Args, Debug)]
pub struct BackupArgs {
    /// A new (or empty) directory for the copy.
    pub dest: PathBuf,
}

#[derive(clap::Args, Debug)]
pub struct RestoreArgs {
    /// A directory made by `postern backup`.
    pub src: PathBuf,
}

#[derive(Default)]
struct Counts {
    linked: u64,
    copied: u64,
}

/// Files of a Maildir folder that index the messages: copied first.
const INDEX_FILES: [&str; 3] = ["postern-uidlist", "dovecot-keywords", "postern-recent"];

fn empty_or_missing(p: &Path) -> io::Result<bool> {
    match fs::read_dir(p) {
        Ok(mut rd) => Ok(rd.next().is_none()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(e),
    }
}

fn copy_file(src: &Path, dst: &Path, link: bool, n: &mut Counts) -> io::Result<()> {
    if link && fs::hard_link(src, dst).is_ok() {
        n.linked += 1;
        return Ok(());
    }
    match fs::copy(src, dst) {
        Ok(_) => {
            File::open(dst)?.sync_all()?;
            n.copied += 1;
            Ok(())
        }
        // Gone meanwhile (an expunge, a delivered queue entry): not part of the copy.
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Copy a tree. `maildir`: index files first, message files (cur/, new/) linked, tmp/ empty.
fn copy_tree(src: &Path, dst: &Path, maildir: bool, n: &mut Counts) -> io::Result<()> {
    fs::create_dir_all(dst)?;
    if let Ok(meta) = fs::metadata(src) {
        fs::set_permissions(dst, meta.permissions())?;
    }
    let mut entries: Vec<_> = match fs::read_dir(src) {
        Ok(rd) => rd.filter_map(Result::ok).collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    // Index files before anything else in the same directory.
    entries.sort_by_key(|e| {
        let name = e.file_name();
        (!INDEX_FILES.iter().any(|f| name == *f), name)
    });
    for e in entries {
        let name = e.file_name();
        let (from, to) = (e.path(), dst.join(&name));
        let ft = match e.file_type() {
            Ok(t) => t,
            Err(_) => continue,
        };
        if ft.is_dir() {
            if maildir && name == "tmp" {
                fs::create_dir_all(&to)?;
                continue;
            }
            copy_tree(&from, &to, maildir, n)?;
        } else if ft.is_file() {
            let message = maildir && src.file_name().is_some_and(|d| d == "cur" || d == "new");
            copy_file(&from, &to, message, n)?;
        }
    }
    Ok(())
}

fn locked(dir: &Path) -> io::Result<Option<File>> {
    if !dir.is_dir() {
        return Ok(None);
    }
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(".lock"))?;
    f.lock_exclusive()?;
    Ok(Some(f))
}

pub fn backup(config: &Config, args: BackupArgs) -> anyhow::Result<()> {
    let data = &config.data_dir;
    let dest = &args.dest;
    if !empty_or_missing(dest)? {
        bail!(
            "{} is not empty: back up into a new directory",
            dest.display()
        );
    }
    if let (Ok(d), Ok(s)) = (dest.canonicalize(), data.canonicalize())
        && d.starts_with(&s)
    {
        bail!("{} is inside the data directory", dest.display());
    }
    fs::create_dir_all(dest).with_context(|| format!("cannot create {}", dest.display()))?;
    let mut n = Counts::default();
    for entry in fs::read_dir(data).with_context(|| format!("cannot read {}", data.display()))? {
        let e = entry?;
        let name = e.file_name();
        // The running server's lock file: meaningless in a copy.
        if name == "postern.pid" {
            continue;
        }
        let (from, to) = (e.path(), dest.join(&name));
        if e.file_type()?.is_dir() {
            let lock = if name == "accounts" || name == "queue" {
                locked(&from)?
            } else {
                None
            };
            copy_tree(&from, &to, name == "mail", &mut n)
                .with_context(|| format!("cannot copy {}", from.display()))?;
            drop(lock);
        } else {
            copy_file(&from, &to, false, &mut n)?;
        }
    }
    crate::fsutil::fsync_dir(dest)?;
    println!(
        "backup of {} in {}: {} message files hard-linked, {} files copied",
        data.display(),
        dest.display(),
        n.linked,
        n.copied
    );
    Ok(())
}

/// How far restore moves each folder's next UID and MODSEQ on. The server that made the
/// backup may have handed out UIDs and MODSEQs after it (to mail the backup does not hold, or
/// holds without a UID yet); restored folders must never give those numbers to other
/// messages or changes, or a client that saw them would keep stale data (RFC 3501 §2.3.1.1,
/// RFC 7162 §3.1). UIDs in the backup are kept; mail after them shows up as expunged, mail
/// without a UID gets one above the gap.
const RESTORE_GAP: u64 = 1_000_000;

/// Raise uidnext and the highest MODSEQ in every restored UID list (the `P2` header).
fn bump_uidlists(dir: &Path) -> io::Result<u64> {
    let mut n = 0;
    for e in fs::read_dir(dir)?.filter_map(Result::ok) {
        let p = e.path();
        if e.file_type()?.is_dir() {
            if e.file_name() != "cur" && e.file_name() != "new" && e.file_name() != "tmp" {
                n += bump_uidlists(&p)?;
            }
            continue;
        }
        if e.file_name() != "postern-uidlist" {
            continue;
        }
        let text = fs::read_to_string(&p)?;
        let (first, rest) = text.split_once('\n').unwrap_or((&text, ""));
        let f: Vec<&str> = first.split(' ').collect();
        let (Some(&"P2"), Some(uv), Some(next), Some(ms), Some(floor)) =
            (f.first(), f.get(1), f.get(2), f.get(3), f.get(4))
        else {
            continue;
        };
        let (Ok(next), Ok(ms)) = (next.parse::<u64>(), ms.parse::<u64>()) else {
            continue;
        };
        let next = (next + RESTORE_GAP).min(u32::MAX as u64 - 1);
        let header = format!("P2 {uv} {next} {} {floor}\n", ms + RESTORE_GAP);
        crate::fsutil::write_atomic(&p, format!("{header}{rest}").as_bytes(), 0o600)?;
        n += 1;
    }
    Ok(n)
}

pub fn restore(config: &Config, args: RestoreArgs) -> anyhow::Result<()> {
    let data = &config.data_dir;
    if !empty_or_missing(data)? {
        bail!(
            "the data directory {} is not empty: stop postern and move it aside first (restore never overwrites)",
            data.display()
        );
    }
    if !args.src.join("mail").is_dir() && !args.src.join("accounts").is_dir() {
        bail!(
            "{} does not look like a postern backup (no mail/ or accounts/)",
            args.src.display()
        );
    }
    let mut n = Counts::default();
    for entry in fs::read_dir(&args.src)? {
        let e = entry?;
        let name = e.file_name();
        let (from, to) = (e.path(), data.join(&name));
        if e.file_type()?.is_dir() {
            copy_tree(&from, &to, name == "mail", &mut n)?;
        } else {
            fs::create_dir_all(data)?;
            copy_file(&from, &to, false, &mut n)?;
        }
    }
    let mail = data.join("mail");
    if mail.is_dir() {
        bump_uidlists(&mail).context("cannot update the restored UID lists")?;
    }
    println!(
        "restored {} into {}: {} message files hard-linked, {} files copied; start postern now",
        args.src.display(),
        data.display(),
        n.linked,
        n.copied
    );
    Ok(())
}
