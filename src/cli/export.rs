//! `postern export USER DEST [--format maildir|mbox]`: a user's folders out of postern.
//!
//! - maildir: a Maildir++ tree (INBOX at DEST, `.Folder` directories), message files
//!   hard-linked or copied with their flag letters and mtimes, plus `dovecot-keywords`;
//! - mbox: one `NAME.mbox` file per folder in DEST (mboxrd: a body line matching `>*From `
//!   gets one more `>`), flags in `Status`/`X-Status`/`X-Keywords`, the internal date in the
//!   From_ line; `postern import` reads it back to the same bytes and flags.
//!
//! Reads the Maildir directly (no UIDs are given out), so it is safe while the server runs.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::config::Config;
use crate::store::Store;
use crate::store::flags::{self, Flags, MAX_KEYWORDS};

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Maildir,
    Mbox,
}

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// The user whose folders are exported.
    pub user: String,
    /// A new (or empty) directory.
    pub dest: PathBuf,
    /// A Maildir++ tree, or one mbox file per folder.
    #[arg(long, value_enum, default_value = "maildir")]
    pub format: Format,
}

fn messages(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for sub in ["cur", "new"] {
        if let Ok(rd) = fs::read_dir(dir.join(sub)) {
            let mut v: Vec<PathBuf> = rd.filter_map(Result::ok).map(|e| e.path()).collect();
            v.sort();
            out.extend(v);
        }
    }
    out
}

fn keyword_names(dir: &Path) -> Vec<String> {
    let mut out = vec![String::new(); MAX_KEYWORDS];
    if let Ok(t) = fs::read_to_string(dir.join("dovecot-keywords")) {
        for l in t.lines() {
            if let Some((i, n)) = l.split_once(' ')
                && let Ok(i) = i.parse::<usize>()
                && i < MAX_KEYWORDS
            {
                out[i] = n.to_owned();
            }
        }
    }
    out
}

/// One message in mboxrd form with its flags as headers.
fn write_mbox_message(
    w: &mut impl Write,
    raw: &[u8],
    f: Flags,
    kws: &[String],
    date: std::time::SystemTime,
) -> std::io::Result<()> {
    let when: chrono::DateTime<chrono::Utc> = date.into();
    writeln!(
        w,
        "From MAILER-DAEMON {}",
        when.format("%a %b %e %H:%M:%S %Y")
    )?;
    let mut status = String::new();
    if f.has(flags::SEEN) {
        status.push('R');
    }
    status.push('O');
    let xstatus: String = [
        (flags::ANSWERED, 'A'),
        (flags::FLAGGED, 'F'),
        (flags::DRAFT, 'T'),
        (flags::DELETED, 'D'),
    ]
    .iter()
    .filter(|(b, _)| f.has(*b))
    .map(|(_, c)| *c)
    .collect();
    let names: Vec<&str> = (0..MAX_KEYWORDS)
        .filter(|i| f.keywords & (1 << i) != 0)
        .filter_map(|i| kws.get(i).map(String::as_str).filter(|k| !k.is_empty()))
        .collect();
    let mut in_header = true;
    for line in raw.split_inclusive(|&b| b == b'\n') {
        let bare = line.strip_suffix(b"\n").unwrap_or(line);
        let bare = bare.strip_suffix(b"\r").unwrap_or(bare);
        if in_header && bare.is_empty() {
            writeln!(w, "Status: {status}")?;
            if !xstatus.is_empty() {
                writeln!(w, "X-Status: {xstatus}")?;
            }
            if !names.is_empty() {
                writeln!(w, "X-Keywords: {}", names.join(", "))?;
            }
            in_header = false;
        }
        let gt = bare.iter().take_while(|&&b| b == b'>').count();
        if !in_header && bare[gt..].starts_with(b"From ") {
            w.write_all(b">")?;
        }
        w.write_all(bare)?;
        w.write_all(b"\n")?;
    }
    if in_header {
        // No body separator at all: the flags still go into the header.
        writeln!(w, "Status: {status}")?;
        w.write_all(b"\n")?;
    }
    w.write_all(b"\n")
}

pub fn run(config: &Config, args: ExportArgs) -> anyhow::Result<()> {
    let accounts = crate::accounts::Accounts::open(&config.data_dir, &config.domain)?;
    let Some(user) = accounts.user_exists(&args.user)? else {
        bail!("no such user {:?}", args.user);
    };
    if fs::read_dir(&args.dest).is_ok_and(|mut d| d.next().is_some()) {
        bail!(
            "{} is not empty: export into a new directory",
            args.dest.display()
        );
    }
    fs::create_dir_all(&args.dest)?;
    let store = Store::new(&config.data_dir);
    let mut total = 0u64;
    for name in store.list_mailboxes(&user)? {
        let dir = store.mailbox_dir(&user, &name)?;
        let kws = keyword_names(&dir);
        let files = messages(&dir);
        match args.format {
            Format::Maildir => {
                let out = match name {
                    crate::store::MailboxName::Inbox => args.dest.clone(),
                    ref n => args.dest.join(n.dir_name()),
                };
                for sub in ["cur", "new", "tmp"] {
                    fs::create_dir_all(out.join(sub))?;
                }
                for k in ["dovecot-keywords", "maildirfolder"] {
                    if dir.join(k).is_file() {
                        fs::copy(dir.join(k), out.join(k))?;
                    }
                }
                for p in files {
                    let sub = p.parent().and_then(|d| d.file_name()).unwrap_or_default();
                    let to = out.join(sub).join(p.file_name().unwrap_or_default());
                    if fs::hard_link(&p, &to).is_err()
                        && fs::copy(&p, &to).is_ok()
                        && let Ok(t) = fs::metadata(&p).and_then(|m| m.modified())
                    {
                        // A copy keeps the internal date (the mtime) of the original.
                        let _ = File::options()
                            .write(true)
                            .open(&to)
                            .and_then(|f| f.set_modified(t));
                    }
                    total += 1;
                }
            }
            Format::Mbox => {
                let path = args
                    .dest
                    .join(format!("{}.mbox", name.utf8().replace('/', "_")));
                let mut w = BufWriter::new(
                    File::create(&path)
                        .with_context(|| format!("cannot write {}", path.display()))?,
                );
                for p in files {
                    let Ok(raw) = fs::read(&p) else { continue };
                    let fname = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                    let f = fname
                        .rsplit_once(":2,")
                        .map(|(_, i)| Flags::from_info(i))
                        .unwrap_or_default();
                    let date = fs::metadata(&p)
                        .and_then(|m| m.modified())
                        .unwrap_or(std::time::UNIX_EPOCH);
                    write_mbox_message(&mut w, &raw, f, &kws, date)?;
                    total += 1;
                }
                w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            }
        }
    }
    println!(
        "exported {total} messages of {user} to {}",
        args.dest.display()
    );
    Ok(())
}
