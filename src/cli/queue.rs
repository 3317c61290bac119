//! `postern queue list | show ID | retry [ID|--all] | del ID`: work on the spool files
//! directly, under the queue lock, so they act on a running server too (its scheduler
//! rescans the spool every second).

use std::io::Write;

use anyhow::{Context, bail};

use crate::config::Config;
use crate::queue::{Envelope, Queue, RcptStatus};

/// println! that does not panic when stdout is a closed pipe (`postern queue list | head`).
macro_rules! say {
    ($($t:tt)*) => {{
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

#[derive(clap::Subcommand, Debug)]
pub enum QueueCmd {
    /// Show the queued messages and their recipients.
    List,
    /// Show one message: envelope, per-recipient state and headers.
    Show {
        /// The message's queue id (from `postern queue list`).
        id: String,
    },
    /// Retry now: one message, or every message with --all.
    Retry {
        /// The message's queue id (from `postern queue list`).
        id: Option<String>,
        /// Retry every queued message now.
        #[arg(long)]
        all: bool,
    },
    /// Remove a message from the queue without delivering it (no bounce is sent).
    #[command(visible_alias = "delete")]
    Del {
        /// The message's queue id (from `postern queue list`).
        id: String,
    },
}

fn age(secs: i64) -> String {
    let s = secs.max(0);
    if s < 120 {
        format!("{s}s")
    } else if s < 7200 {
        format!("{}m", s / 60)
    } else if s < 172_800 {
        format!("{}h", s / 3600)
    } else {
        format!("{}d", s / 86400)
    }
}

fn status_word(env: &Envelope, i: usize, now: i64) -> String {
    let r = &env.rcpts[i];
    match r.status {
        RcptStatus::Delivered => "delivered".into(),
        RcptStatus::Failed => "failed".into(),
        RcptStatus::Pending if r.next_attempt <= now => "due now".into(),
        RcptStatus::Pending => format!("retry in {}", age(r.next_attempt - now)),
    }
}

/// Run as the owner of `data_dir` when started as root (cron's `sendmail`, an admin's
/// `postern queue retry`): files written as root with mode 0600 would be unreadable for the
/// server, which runs as its own user, and the mail would be stuck.
pub(crate) fn become_data_dir_owner(config: &Config) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(());
    }
    let Ok(meta) = std::fs::metadata(&config.data_dir) else {
        return Ok(());
    };
    let (uid, gid) = (meta.uid(), meta.gid());
    if uid == 0 {
        return Ok(());
    }
    // SAFETY: plain system calls on integers; order matters (groups and gid before uid).
    let ok = unsafe {
        libc::setgroups(0, std::ptr::null()) == 0
            && libc::setgid(gid) == 0
            && libc::setuid(uid) == 0
    };
    if !ok {
        bail!(
            "cannot switch to the owner (uid {uid}) of {}: {}",
            config.data_dir.display(),
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

pub fn run(config: &Config, cmd: QueueCmd) -> anyhow::Result<()> {
    become_data_dir_owner(config)?;
    let q = Queue::open(&config.data_dir)
        .with_context(|| format!("cannot open {}/queue", config.data_dir.display()))?;
    let now = crate::clock::unix_now();
    match cmd {
        QueueCmd::List => {
            let all = q.list()?;
            if all.is_empty() {
                say!("queue is empty");
                return Ok(());
            }
            for env in &all {
                let from = if env.mail_from.is_empty() {
                    "<>"
                } else {
                    env.mail_from.as_str()
                };
                say!(
                    "{}  {:>8}  {:>5}  {from}",
                    env.id,
                    env.size,
                    age(now - env.created)
                );
                for (i, r) in env.rcpts.iter().enumerate() {
                    let err = r
                        .last_error
                        .as_deref()
                        .map(|e| format!("  ({e})"))
                        .unwrap_or_default();
                    say!(
                        "    {}  [{}, {} attempts]{err}",
                        r.addr,
                        status_word(env, i, now),
                        r.attempts
                    );
                }
            }
            say!("{} message(s)", all.len());
        }
        QueueCmd::Show { id } => {
            let Some(env) = q.load(&id)? else {
                bail!("no message {id} in the queue (see `postern queue list`)");
            };
            say!("id: {}", env.id);
            say!(
                "from: <{}>\nsize: {}\nqueued: {} ago\ndelay notice sent: {}",
                env.mail_from,
                env.size,
                age(now - env.created),
                env.delay_notified
            );
            for (i, r) in env.rcpts.iter().enumerate() {
                say!("rcpt: {}", r.addr);
                say!("  status: {}", status_word(&env, i, now));
                say!("  attempts: {}", r.attempts);
                if let Some(c) = &r.code {
                    say!("  code: {c}");
                }
                if let Some(m) = &r.remote_mta {
                    say!("  remote: {m}");
                }
                if let Some(e) = &r.last_error {
                    say!("  last error: {e}");
                }
            }
            let msg = q.message(&id)?;
            say!("--- headers ---");
            let _ = write!(
                std::io::stdout(),
                "{}",
                String::from_utf8_lossy(&crate::queue::dsn::header_section(&msg))
                    .replace("\r\n", "\n")
            );
        }
        QueueCmd::Retry { id, all } => match (id, all) {
            (Some(_), true) => bail!("give either a queue id or --all, not both"),
            (None, false) => bail!("give a queue id, or --all to retry every message"),
            (Some(id), false) => {
                if !q.retry(&id)? {
                    bail!("no message {id} in the queue (see `postern queue list`)");
                }
                say!("{id}: scheduled for immediate retry");
            }
            (None, true) => {
                let mut n = 0;
                for id in q.ids()? {
                    if q.retry(&id)? {
                        n += 1;
                    }
                }
                say!("{n} message(s) scheduled for immediate retry");
            }
        },
        QueueCmd::Del { id } => {
            if !q.delete(&id)? {
                bail!("no message {id} in the queue (see `postern queue list`)");
            }
            say!("{id}: deleted");
        }
    }
    Ok(())
}
