//! `postern spam stats USER` and `postern spam train USER --spam|--ham PATH`: the per-user
//! junk filter from the command line (works while the server runs: training takes the same
//! lock as the server's).

use std::borrow::Cow;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::accounts::Accounts;
use crate::config::Config;
use crate::spam::{self, Class};
use crate::store::Store;

#[derive(clap::Subcommand, Debug)]
pub enum SpamCmd {
    /// How much a user's junk filter has learnt, and whether it is active yet.
    Stats {
        /// The user's mail address.
        user: String,
    },
    /// Train a user's junk filter from a Maildir (cur/ and new/) or an mbox file.
    Train {
        /// The user's mail address.
        user: String,
        /// The messages are spam.
        #[arg(long, conflicts_with = "ham", required_unless_present = "ham")]
        spam: bool,
        /// The messages are wanted mail.
        #[arg(long)]
        ham: bool,
        /// A Maildir (its cur/ and new/ are read) or an mbox file.
        path: PathBuf,
    },
}

pub fn run(config: &Config, cmd: SpamCmd) -> anyhow::Result<()> {
    super::queue::become_data_dir_owner(config)?;
    let accounts = Accounts::open(&config.data_dir, &config.domain)?;
    let store = Store::new(&config.data_dir);
    let canonical = |u: &str| -> anyhow::Result<String> {
        accounts
            .user_exists(u)?
            .with_context(|| format!("no user {u} (see `postern user list`)"))
    };
    match cmd {
        SpamCmd::Stats { user } => {
            let user = canonical(&user)?;
            let db = spam::load(&store, &user)?;
            let s = &config.spam;
            let active = s.junk_filter && db.nham >= s.junk_min_ham && db.nspam >= s.junk_min_spam;
            println!("user: {user}");
            println!("trained ham: {}", db.nham);
            println!("trained spam: {}", db.nspam);
            println!("tokens: {}", db.token_count());
            if active {
                println!("filter: active (threshold {})", s.junk_threshold);
            } else if !s.junk_filter {
                println!("filter: off ([spam] junk_filter = false)");
            } else {
                println!(
                    "filter: learning (active from {} ham and {} spam)",
                    s.junk_min_ham, s.junk_min_spam
                );
            }
            Ok(())
        }
        SpamCmd::Train {
            user,
            spam: _,
            ham,
            path,
        } => {
            let user = canonical(&user)?;
            let class = if ham { Class::Ham } else { Class::Spam };
            let messages = read_messages(&path)?;
            let total = messages.len();
            let tty = std::io::stderr().is_terminal();
            let stats = spam::train(
                &store,
                &user,
                messages.iter().map(|m| Ok(Cow::Borrowed(&m[..]))),
                class,
                |n| {
                    if tty && (n % 50 == 0 || n == total) {
                        progress(n, total);
                    }
                },
            )?;
            if tty {
                eprintln!();
            }
            println!(
                "{user}: {total} messages as {}: {} new, {} reclassified, {} already trained",
                if ham { "ham" } else { "spam" },
                stats.new,
                stats.reclassified,
                stats.already
            );
            Ok(())
        }
    }
}

fn progress(n: usize, total: usize) {
    let width = 30;
    let done = (n * width).checked_div(total).unwrap_or(width);
    let _ = write!(
        std::io::stderr(),
        "\r[{}{}] {n}/{total}",
        "#".repeat(done),
        " ".repeat(width - done)
    );
}

/// The messages of a Maildir (a directory with cur/ or new/) or an mbox file.
fn read_messages(path: &Path) -> anyhow::Result<Vec<Vec<u8>>> {
    if path.is_dir() {
        let mut files = Vec::new();
        for sub in ["cur", "new"] {
            let dir = path.join(sub);
            if !dir.is_dir() {
                continue;
            }
            for e in std::fs::read_dir(&dir).with_context(|| dir.display().to_string())? {
                let p = e?.path();
                if p.is_file() {
                    files.push(p);
                }
            }
        }
        if files.is_empty() && !path.join("cur").is_dir() && !path.join("new").is_dir() {
            bail!(
                "{} is a directory without cur/ or new/: not a Maildir",
                path.display()
            );
        }
        files.sort();
        return files
            .iter()
            .map(|p| std::fs::read(p).with_context(|| p.display().to_string()))
            .collect();
    }
    let data = std::fs::read(path).with_context(|| path.display().to_string())?;
    if !data.starts_with(b"From ") {
        bail!(
            "{} is neither a Maildir nor an mbox (no \"From \" line at the start)",
            path.display()
        );
    }
    Ok(split_mbox(&data))
}

/// Split an mbox (mboxo/mboxrd): a message starts at a "From " line at the file's start or
/// after a blank line; ">From " quoting is undone one level.
pub fn split_mbox(data: &[u8]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut cur: Option<Vec<u8>> = None;
    let mut prev_blank = true;
    for line in data.split_inclusive(|&b| b == b'\n') {
        if prev_blank && line.starts_with(b"From ") {
            if let Some(m) = cur.take() {
                out.push(m);
            }
            cur = Some(Vec::new());
            prev_blank = false;
            continue;
        }
        prev_blank = line == b"\n" || line == b"\r\n";
        if let Some(m) = cur.as_mut() {
            let unquoted = match line.iter().position(|&b| b != b'>') {
                Some(i) if i > 0 && line[i..].starts_with(b"From ") => &line[1..],
                _ => line,
            };
            m.extend_from_slice(unquoted);
        }
    }
    out.extend(cur);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn mbox_split_and_unquote() {
        let mbox = b"From a@b Mon Jan  1 00:00:00 2024\nSubject: one\n\nbody\n>From here\n\nFrom c@d Mon Jan  1 00:00:00 2024\nSubject: two\n\nhi\nFrom inside is not a separator\n";
        let m = super::split_mbox(mbox);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0], b"Subject: one\n\nbody\nFrom here\n\n");
        assert_eq!(
            m[1],
            b"Subject: two\n\nhi\nFrom inside is not a separator\n".to_vec()
        );
    }
}
