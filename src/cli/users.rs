//! `postern user …`: edit the account files; a running server picks the change up at its next
//! lookup. Every check that can refuse runs before the password is asked for.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Subcommand;

use super::data_dir;
use super::password::{self, PasswordArgs};
use crate::accounts::{Accounts, normalize_address};
use crate::config::Config;

#[derive(Subcommand, Debug)]
pub enum UserCmd {
    /// Create a user and its mailbox (the first user also receives postmaster@ and abuse@).
    ///
    /// The password comes from a prompt (asked twice), from stdin with --password-stdin, or is
    /// made up with --generate and printed once.
    Add {
        /// The user's mail address, also its login name (e.g. you@example.com).
        address: String,
        #[command(flatten)]
        password: PasswordArgs,
        /// Give the new user the mail a deleted user of the same address left on disk.
        #[arg(long)]
        reuse_mailbox: bool,
    },
    /// Delete a user; its mail stays on disk. Asks first unless --yes.
    #[command(visible_alias = "delete")]
    Del {
        /// The user's mail address.
        address: String,
        /// Do not ask for confirmation (scripts).
        #[arg(long, short = 'y')]
        yes: bool,
        /// Delete even though aliases point at the user (they then reach nobody through it).
        #[arg(long)]
        force: bool,
    },
    /// List users.
    List,
    /// Change a user's password.
    Passwd {
        /// The user's mail address.
        address: String,
        #[command(flatten)]
        password: PasswordArgs,
    },
}

pub(super) fn open(config: &Config) -> anyhow::Result<Accounts> {
    Accounts::open(&config.data_dir, &config.domain)
        .with_context(|| format!("cannot open accounts in {}", config.data_dir.display()))
}

/// The address as a user of our domain, or a one-line reason it cannot be one.
pub(super) fn local_address(config: &Config, address: &str) -> anyhow::Result<String> {
    let addr = normalize_address(address)?;
    match addr.rsplit_once('@') {
        Some((_, d)) if d == config.domain => Ok(addr),
        _ => bail!(
            "{addr} is not in the domain {0}; postern only hosts {0}",
            config.domain
        ),
    }
}

pub fn run(config: &Config, config_path: &Path, cmd: UserCmd) -> anyhow::Result<()> {
    match &cmd {
        UserCmd::Add { .. } => data_dir::require_exists(config, config_path)?,
        _ => data_dir::require_accounts(config, config_path)?,
    }
    // Files written as root would be unreadable for the server's own user.
    super::queue::become_data_dir_owner(config)?;
    let acc = open(config)?;
    match cmd {
        UserCmd::Add {
            address,
            password,
            reuse_mailbox,
        } => add(config, &acc, &address, password, reuse_mailbox),
        UserCmd::Del {
            address,
            yes,
            force,
        } => del(config, &acc, &address, yes, force),
        UserCmd::List => {
            for user in acc.snapshot()?.users.keys() {
                println!("{user}");
            }
            Ok(())
        }
        UserCmd::Passwd { address, password } => {
            let addr = normalize_address(&address)?;
            if !acc.snapshot()?.users.contains_key(&addr) {
                bail!("user {addr} does not exist (see `postern user list`)");
            }
            let (pw, generated) = password::obtain(password)?;
            acc.set_password(&addr, &pw)?;
            println!("password changed for {addr}");
            if generated {
                println!("new password (shown once): {pw}");
            }
            Ok(())
        }
    }
}

fn add(
    config: &Config,
    acc: &Accounts,
    address: &str,
    password: PasswordArgs,
    reuse_mailbox: bool,
) -> anyhow::Result<()> {
    let addr = local_address(config, address)?;
    let addr = acc.user_address(&addr)?;
    let snap = acc.snapshot()?;
    if snap.users.contains_key(&addr) {
        bail!("user {addr} already exists (change its password with `postern user passwd {addr}`)");
    }
    if let Some(targets) = snap.aliases.get(&addr) {
        bail!(
            "{addr} is an alias (→ {}); remove it first with `postern alias del {addr}`, or choose another address",
            targets.join(", ")
        );
    }
    let store = crate::store::Store::new(&config.data_dir);
    let mailbox = store.user_dir(&addr)?;
    let old = count_messages(&mailbox);
    if old > 0 && !reuse_mailbox {
        bail!(
            "a mailbox with {old} messages is left from an earlier {addr} in {}: pass --reuse-mailbox to give it to the new user, or move it away first",
            mailbox.display()
        );
    }
    let (pw, generated) = password::obtain(password)?;
    let addr = acc.add_user(&addr, &pw)?;
    store
        .ensure_user(&addr)
        .context("cannot create the user's Maildir")?;
    println!("added {addr}");
    if old > 0 {
        println!(
            "{addr} gets the existing mailbox with {old} messages ({})",
            mailbox.display()
        );
    }
    if generated {
        println!("password (shown once): {pw}");
    }
    for alias in acc.ensure_role_aliases(&addr)? {
        println!(
            "added alias {alias} → {addr} (every domain needs it; change with `postern alias`)"
        );
    }
    Ok(())
}

fn del(
    config: &Config,
    acc: &Accounts,
    address: &str,
    yes: bool,
    force: bool,
) -> anyhow::Result<()> {
    let addr = normalize_address(address)?;
    let snap = acc.snapshot()?;
    if !snap.users.contains_key(&addr) {
        bail!("user {addr} does not exist (see `postern user list`)");
    }
    let pointing = super::aliases::pointing_at(&snap.aliases, &addr);
    if !pointing.is_empty() && !force {
        bail!(
            "aliases point at {addr}: {}; deleting it would leave them reaching nobody through it. Point them elsewhere first (`postern alias del ALIAS`, then `postern alias add ALIAS OTHER`), or pass --force",
            pointing.join(", ")
        );
    }
    let mailbox = crate::store::Store::new(&config.data_dir).user_dir(&addr)?;
    let n = count_messages(&mailbox);
    if !yes {
        confirm(&format!(
            "Delete user {addr}? Its mailbox {} ({n} messages) stays on disk. [y/N] ",
            mailbox.display()
        ))?;
    }
    acc.delete_user(&addr)?;
    println!(
        "deleted {addr} (its {n} messages stay in {})",
        mailbox.display()
    );
    for alias in pointing {
        eprintln!(
            "warning: alias {alias} still points at {addr}, which no longer exists (fix with `postern alias`)"
        );
    }
    Ok(())
}

/// Ask on the terminal; without one, refuse (a script passes --yes).
pub(super) fn confirm(question: &str) -> anyhow::Result<()> {
    if !std::io::stdin().is_terminal() {
        bail!("not deleting without confirmation: no terminal to ask on; pass --yes");
    }
    print!("{question}");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if !matches!(answer.trim(), "y" | "Y" | "yes") {
        bail!("nothing deleted");
    }
    Ok(())
}

/// Messages in a user's Maildir++ tree: files in every `cur/` and `new/` below it.
pub(super) fn count_messages(root: &Path) -> usize {
    let mut n = 0;
    let mut dirs: Vec<PathBuf> = vec![root.to_owned()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(kind) = e.file_type() else { continue };
            if kind.is_dir() {
                let name = e.file_name();
                if name == "cur" || name == "new" {
                    n += std::fs::read_dir(e.path())
                        .map(|d| {
                            d.flatten()
                                .filter(|f| f.file_type().is_ok_and(|t| t.is_file()))
                                .count()
                        })
                        .unwrap_or(0);
                } else if name != "tmp" {
                    dirs.push(e.path());
                }
            }
        }
    }
    n
}
