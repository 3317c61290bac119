//! `postern import USER PATH [--folder NAME]`: bring existing mail from an mbox file or a
//! Maildir/Maildir++ tree (detected by shape) into a user's folders, safely while the server
//! runs.
//!
//! Each message is written as a Maildir delivery (temp file, fsync, rename into `cur/`, fsync
//! of the directory, `fsutil::Durable`) with its flags in the file name and its internal date
//! as the file's mtime; the store gives it a UID when a session (or the next start) scans the
//! folder, exactly as for mail another program delivered, so UIDs are never handed out by two
//! processes at once and running IMAP sessions see the new mail at their next poll.
//!
//! Resumable: after a message is durable, its key (folder, SHA-1 and length of the stored
//! bytes) is appended to `postern-import-keys` in the user's Maildir root and fsynced; a
//! second run skips those as duplicates. Ctrl-C between the two leaves at worst one message
//! imported twice, never one lost or half-written.

use std::collections::HashSet;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};
use sha1::{Digest, Sha1};

use super::import_source::{Item, MaildirTree, Mbox, Message, is_maildir};
use crate::config::Config;
use crate::fsutil::{Durable, write_atomic};
use crate::store::flags::{Flags, MAX_KEYWORDS};
use crate::store::{MailboxName, Store};

/// Keys of messages already imported, per user.
const KEYS: &str = "postern-import-keys";
/// Keyword names of a folder (the format `store/` reads).
const KEYWORDS: &str = "dovecot-keywords";

#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// The user (an address of this domain).
    pub user: String,
    /// An mbox file, or a Maildir / Maildir++ directory.
    #[arg(required_unless_present = "from_imap", conflicts_with = "from_imap")]
    pub path: Option<PathBuf>,
    /// Copy every folder from another IMAP server instead: imaps://HOST[:PORT].
    #[arg(long, value_name = "URL", requires_all = ["login", "password_file"])]
    pub from_imap: Option<String>,
    /// Login name on that server.
    #[arg(long)]
    pub login: Option<String>,
    /// File holding the password for that server (first line).
    #[arg(long)]
    pub password_file: Option<PathBuf>,
    /// Only these source folders (default: all).
    #[arg(long, num_args = 1..)]
    pub folders: Vec<String>,
    /// Extra CA certificate (PEM) to trust for that server besides the system roots.
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// Folder to import into (default INBOX); a Maildir++ tree's subfolders go below it.
    #[arg(long)]
    pub folder: Option<String>,
    /// No progress bar (also off when stderr is not a terminal).
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Default, Debug)]
pub(super) struct Summary {
    pub imported: u64,
    pub duplicates: u64,
    pub refused: Vec<String>,
    pub bytes: u64,
}

/// Writes messages into one user's folders and remembers what it wrote.
pub(super) struct Target {
    store: Store,
    user: String,
    keys: HashSet<String>,
    keys_file: std::fs::File,
    /// Folder name → (directory, its keyword names).
    folders: std::collections::HashMap<String, (PathBuf, Vec<String>)>,
}

fn key_of(folder: &str, data: &[u8]) -> String {
    let mut h = Sha1::new();
    h.update(data);
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    format!("{hex} {} {folder}", data.len())
}

impl Target {
    fn open(store: Store, user: String) -> anyhow::Result<Target> {
        store.ensure_user(&user)?;
        let path = store.user_dir(&user)?.join(KEYS);
        let keys = match std::fs::read_to_string(&path) {
            // A torn last line (crash mid-append) is simply not a key.
            Ok(t) => t
                .split_inclusive('\n')
                .filter(|l| l.ends_with('\n'))
                .map(|l| l.trim_end().to_owned())
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashSet::new(),
            Err(e) => return Err(e).context(format!("cannot read {}", path.display())),
        };
        let keys_file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(Target {
            store,
            user,
            keys,
            keys_file,
            folders: Default::default(),
        })
    }

    /// The folder's directory (created if needed) and keyword names.
    fn folder(&mut self, name: &str) -> Result<&mut (PathBuf, Vec<String>), String> {
        if !self.folders.contains_key(name) {
            let mb = MailboxName::from_utf8_wire(name.as_bytes())
                .map_err(|e| format!("bad folder name {name:?}: {e}"))?;
            if !self.store.mailbox_exists(&self.user, &mb) {
                self.store
                    .create_mailbox(&self.user, &mb)
                    .map_err(|e| format!("cannot create folder {name:?}: {e}"))?;
            }
            let dir = self
                .store
                .mailbox_dir(&self.user, &mb)
                .map_err(|e| e.to_string())?;
            let mut kws = Vec::new();
            if let Ok(text) = std::fs::read_to_string(dir.join(KEYWORDS)) {
                for l in text.lines() {
                    if let Some((_, n)) = l.split_once(' ') {
                        kws.push(n.trim().to_owned());
                    }
                }
            }
            self.folders.insert(name.to_owned(), (dir, kws));
        }
        Ok(self.folders.get_mut(name).expect("inserted"))
    }

    pub(super) fn has_key(&self, key: &str) -> bool {
        self.keys.contains(key)
    }

    /// Remember a key durably (content keys after the message is stored; source keys too).
    pub(super) fn record_key(&mut self, key: String) -> Result<(), String> {
        self.keys_file
            .write_all(format!("{key}\n").as_bytes())
            .and_then(|()| self.keys_file.sync_data())
            .map_err(|e| format!("cannot record the import key: {e}"))?;
        self.keys.insert(key);
        Ok(())
    }

    pub(super) fn put(&mut self, m: Message, sum: &mut Summary) -> Result<(), String> {
        let key = key_of(&m.folder, &m.data);
        if self.keys.contains(&key) {
            sum.duplicates += 1;
            return Ok(());
        }
        let (dir, kws) = self.folder(&m.folder)?;
        let mut bits = 0u32;
        let mut new_kw = false;
        for k in &m.keywords {
            let i = match kws.iter().position(|x| x.eq_ignore_ascii_case(k)) {
                Some(i) => i,
                // More custom keywords than Maildir has letters: the rest are dropped.
                None if kws.len() >= MAX_KEYWORDS => continue,
                None => {
                    kws.push(k.clone());
                    new_kw = true;
                    kws.len() - 1
                }
            };
            bits |= 1 << i;
        }
        if new_kw {
            let text: String = kws
                .iter()
                .enumerate()
                .map(|(i, k)| format!("{i} {k}\n"))
                .collect();
            write_atomic(&dir.join(KEYWORDS), text.as_bytes(), 0o600)
                .map_err(|e| format!("cannot record keywords: {e}"))?;
        }
        let flags = Flags {
            system: m.system,
            keywords: bits,
        };
        let file = format!(
            "{}:2,{}",
            crate::store::unique_name(m.data.len()),
            flags.to_info()
        );
        Durable::new(&dir.join("cur").join(&file))
            .tmp_in(&dir.join("tmp"))
            .mtime(m.date)
            .write(&m.data)
            .map_err(|e| format!("cannot store: {e}"))?;
        // The message is durable: now remember it (a crash before this line only means it
        // is imported again by a second run).
        self.record_key(key)?;
        sum.imported += 1;
        sum.bytes += m.data.len() as u64;
        Ok(())
    }
}

pub(super) fn progress(total: u64, template: &str, quiet: bool) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if quiet || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(total);
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb
}

/// Import `path` for `user`; returns the summary (also printed).
pub(super) fn import(config: &Config, args: &ImportArgs) -> anyhow::Result<Summary> {
    let accounts = crate::accounts::Accounts::open(&config.data_dir, &config.domain)?;
    let Some(user) = accounts.user_exists(&args.user)? else {
        bail!("no such user {:?} (see `postern user list`)", args.user);
    };
    let store = Store::new(&config.data_dir);
    let mut target = Target::open(store, user)?;
    let folder = args.folder.clone().unwrap_or_else(|| "INBOX".into());
    let max = config.limits.max_message_size;
    let mut sum = Summary::default();
    let handle = |item: Item, sum: &mut Summary, target: &mut Target| match item {
        Item::Msg(m) => {
            let (f, s) = (m.folder.clone(), m.data.len());
            if let Err(why) = target.put(m, sum) {
                sum.refused
                    .push(format!("{f}: a message of {s} octets: {why}"));
            }
        }
        Item::Refused { folder, at, why } => sum.refused.push(format!("{folder}: {at}: {why}")),
    };
    if let Some(url) = &args.from_imap {
        super::import_imap_copy::run(config, args, url, &mut target, &mut sum)?;
        print_summary(&sum, url);
        return Ok(sum);
    }
    let path = args
        .path
        .as_deref()
        .expect("clap requires PATH without --from-imap");
    if path.is_dir() {
        if !is_maildir(path) {
            bail!(
                "{} is a directory but not a Maildir (no cur/ inside)",
                path.display()
            );
        }
        let mut tree = MaildirTree::open(path, &folder, max)
            .with_context(|| format!("cannot read {}", path.display()))?;
        for r in std::mem::take(&mut tree.refused) {
            handle(r, &mut sum, &mut target);
        }
        let pb = progress(
            tree.len() as u64,
            "{msg} [{bar:30}] {pos}/{len} messages ETA {eta}",
            args.quiet,
        );
        while let Some(item) = tree.next_item() {
            if let Item::Msg(m) = &item {
                pb.set_message(m.folder.clone());
            }
            handle(item, &mut sum, &mut target);
            pb.inc(1);
        }
        pb.finish_and_clear();
    } else {
        let len = std::fs::metadata(path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .len();
        let mut mbox = Mbox::open(path, folder.clone(), max)
            .with_context(|| format!("cannot import {}", path.display()))?;
        let pb = progress(
            len,
            "{msg} [{bar:30}] {bytes}/{total_bytes} ETA {eta}",
            args.quiet,
        );
        pb.set_message(folder.clone());
        loop {
            match mbox.next_item() {
                Ok(Some(item)) => handle(item, &mut sum, &mut target),
                Ok(None) => break,
                Err(e) => {
                    sum.refused
                        .push(format!("{folder}: the rest of the mbox is unreadable: {e}"));
                    break;
                }
            }
            pb.set_position(mbox.consumed);
            pb.set_message(format!("{folder}: {} messages", sum.imported));
        }
        pb.finish_and_clear();
    }
    print_summary(&sum, &path.display().to_string());
    Ok(sum)
}

fn print_summary(sum: &Summary, from: &str) {
    println!(
        "imported {} messages ({} octets) from {}; skipped {} already imported; refused {}",
        sum.imported,
        sum.bytes,
        from,
        sum.duplicates,
        sum.refused.len()
    );
    for r in &sum.refused {
        println!("  refused: {r}");
    }
}

pub fn run(config: &Config, args: ImportArgs) -> anyhow::Result<()> {
    import(config, &args).map(|_| ())
}
