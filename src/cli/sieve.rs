//! `postern sieve …`: manage users' scripts (stored under the data dir), and try a script
//! on a message (`test`, no config needed).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;

use crate::sieve::scripts::ScriptStore;
use crate::sieve::{self, Envelope, Limits, MessageView};

#[derive(Subcommand, Debug)]
pub enum SieveCmd {
    /// List USER's scripts; the active one is marked with `*`.
    List {
        /// The user's mail address.
        user: String,
    },
    /// Print a script.
    Get {
        /// The user's mail address.
        user: String,
        /// The script's name.
        name: String,
    },
    /// Store FILE (or stdin when FILE is `-`) as script NAME after checking it compiles.
    Put {
        /// The user's mail address.
        user: String,
        /// The script's name (replaces a script of that name).
        name: String,
        /// The Sieve script (RFC 5228), or `-` for stdin.
        file: PathBuf,
    },
    /// Make NAME the active script (`--none` deactivates all).
    Activate {
        /// The user's mail address.
        user: String,
        /// The script to run on the user's incoming mail.
        #[arg(required_unless_present = "none")]
        name: Option<String>,
        /// Run no script: mail is delivered as if there were none.
        #[arg(long, conflicts_with = "name")]
        none: bool,
    },
    /// Delete a script (not the active one).
    #[command(name = "del", visible_alias = "delete")]
    Delete {
        /// The user's mail address.
        user: String,
        /// The script's name.
        name: String,
    },
    /// Run SCRIPT on MESSAGE and print the resulting actions, one per line (the implicit
    /// keep is marked `# implicit`; runtime errors print as `error: …`).
    Test {
        /// The Sieve script file.
        script: PathBuf,
        /// A message file (RFC 5322).
        message: PathBuf,
        /// The envelope sender the script sees (MAIL FROM).
        #[arg(long, default_value = "sender@example.net")]
        envelope_from: String,
        /// The envelope recipient the script sees (RCPT TO).
        #[arg(long, default_value = "user@example.com")]
        envelope_to: String,
        /// A mailbox that exists for `mailboxexists` (repeatable; INBOX always exists).
        #[arg(long = "mailbox")]
        mailboxes: Vec<String>,
    },
}

pub fn run(config_path: &std::path::Path, cmd: SieveCmd) -> anyhow::Result<()> {
    if let SieveCmd::Test { .. } = cmd {
        return run_test(cmd);
    }
    let config = super::load(config_path)?;
    let store = ScriptStore::new(&config.data_dir);
    match cmd {
        SieveCmd::List { user } => {
            for (name, active) in store.list(&user)? {
                println!("{}{name}", if active { "* " } else { "  " });
            }
        }
        SieveCmd::Get { user, name } => print!("{}", store.get(&user, &name)?),
        SieveCmd::Put { user, name, file } => {
            let text = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?
            };
            store
                .put(&user, &name, &text)
                .with_context(|| format!("script {name}"))?;
        }
        SieveCmd::Activate { user, name, none } => {
            store.activate(&user, if none { None } else { name.as_deref() })?;
        }
        SieveCmd::Delete { user, name } => store.delete(&user, &name)?,
        SieveCmd::Test { .. } => unreachable!("handled above"),
    }
    Ok(())
}

fn run_test(cmd: SieveCmd) -> anyhow::Result<()> {
    let SieveCmd::Test {
        script,
        message,
        envelope_from,
        envelope_to,
        mailboxes,
    } = cmd
    else {
        unreachable!("only called with Test")
    };
    let limits = Limits::default();
    let src = std::fs::read(&script).with_context(|| format!("reading {}", script.display()))?;
    let compiled = sieve::compile_bytes(&src, &limits)
        .map_err(|e| anyhow::anyhow!("{}: {e}", script.display()))?;
    let raw = std::fs::read(&message).with_context(|| format!("reading {}", message.display()))?;
    let from = envelope_from
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_string();
    let env = Envelope {
        from,
        to: envelope_to,
    };
    let exists = |m: &str| m.eq_ignore_ascii_case("INBOX") || mailboxes.iter().any(|x| x == m);
    let ctx = sieve::interp::Context {
        envelope: &env,
        mailbox_exists: &exists,
        now: crate::clock::unix_now(),
    };
    let out = sieve::run(&compiled, &MessageView::new(&raw), &ctx, &limits);
    let n = out.actions.len();
    for (i, a) in out.actions.iter().enumerate() {
        if out.implicit_keep && i + 1 == n {
            println!("{a} # implicit");
        } else {
            println!("{a}");
        }
    }
    for e in &out.errors {
        println!("error: {e}");
    }
    Ok(())
}
