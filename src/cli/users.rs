//! `postern user …` and `postern alias …`: edit the account files; a running server picks the
//! change up at its next lookup.

use std::io::{BufRead, IsTerminal};

use anyhow::{Context, bail};
use clap::Subcommand;

use crate::accounts::Accounts;
use crate::config::Config;

#[derive(Subcommand, Debug)]
pub enum UserCmd {
    /// Create a user (password from a prompt, or stdin with --password-stdin).
    Add {
        address: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Delete a user (their mail stays on disk).
    Del { address: String },
    /// List users.
    List,
    /// Change a user's password.
    Passwd {
        address: String,
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum AliasCmd {
    /// Add targets to an alias (ALIAS `@DOMAIN` is the catch-all).
    Add {
        alias: String,
        #[arg(required = true)]
        targets: Vec<String>,
    },
    /// Delete an alias.
    Del { alias: String },
    /// List aliases.
    List,
}

fn open(config: &Config) -> anyhow::Result<Accounts> {
    Accounts::open(&config.data_dir, &config.domain)
        .with_context(|| format!("cannot open accounts in {}", config.data_dir.display()))
}

pub fn run_user(config: &Config, cmd: UserCmd) -> anyhow::Result<()> {
    // Files written as root would be unreadable for the server's own user.
    super::queue::become_data_dir_owner(config)?;
    let acc = open(config)?;
    match cmd {
        UserCmd::Add {
            address,
            password_stdin,
        } => {
            let pw = read_password(password_stdin)?;
            let addr = acc.add_user(&address, &pw)?;
            crate::store::Store::new(&config.data_dir)
                .ensure_user(&addr)
                .context("cannot create the user's Maildir")?;
            println!("added {addr}");
            for alias in acc.ensure_role_aliases(&addr)? {
                println!(
                    "added alias {alias} → {addr} (every domain needs it; change with `postern alias`)"
                );
            }
        }
        UserCmd::Del { address } => {
            acc.delete_user(&address)?;
            println!(
                "deleted {address} (mail kept in {})",
                config.data_dir.join("mail").display()
            );
        }
        UserCmd::List => {
            for user in acc.snapshot()?.users.keys() {
                println!("{user}");
            }
        }
        UserCmd::Passwd {
            address,
            password_stdin,
        } => {
            let pw = read_password(password_stdin)?;
            acc.set_password(&address, &pw)?;
            println!("password changed for {address}");
        }
    }
    Ok(())
}

pub fn run_alias(config: &Config, cmd: AliasCmd) -> anyhow::Result<()> {
    // Files written as root would be unreadable for the server's own user.
    super::queue::become_data_dir_owner(config)?;
    let acc = open(config)?;
    match cmd {
        AliasCmd::Add { alias, targets } => {
            let key = acc.add_alias(&alias, &targets)?;
            println!("{key} -> {}", targets.join(", "));
        }
        AliasCmd::Del { alias } => {
            acc.delete_alias(&alias)?;
            println!("deleted {alias}");
        }
        AliasCmd::List => {
            for (alias, targets) in &acc.snapshot()?.aliases {
                println!("{alias} -> {}", targets.join(", "));
            }
        }
    }
    Ok(())
}

fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    let pw = if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from stdin")?;
        line.trim_end_matches(['\r', '\n']).to_string()
    } else if std::io::stdin().is_terminal() {
        let a = rpassword::prompt_password("Password: ")?;
        let b = rpassword::prompt_password("Repeat: ")?;
        if a != b {
            bail!("the passwords differ; nothing changed");
        }
        a
    } else {
        bail!("no terminal to ask for the password: pass it on stdin with --password-stdin");
    };
    if pw.is_empty() {
        bail!("empty password refused");
    }
    Ok(pw)
}
