//! `postern sieve …`: try a script on a message (no config needed).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;

use crate::sieve::{self, Envelope, Limits, MessageView};

#[derive(Subcommand, Debug)]
pub enum SieveCmd {
    /// Run SCRIPT on MESSAGE and print the resulting actions, one per line (the implicit
    /// keep is marked `# implicit`; runtime errors print as `error: …`).
    Test {
        script: PathBuf,
        message: PathBuf,
        #[arg(long, default_value = "sender@example.net")]
        envelope_from: String,
        #[arg(long, default_value = "user@example.com")]
        envelope_to: String,
        /// A mailbox that exists for `mailboxexists` (repeatable; INBOX always exists).
        #[arg(long = "mailbox")]
        mailboxes: Vec<String>,
    },
}

pub fn run_test(cmd: SieveCmd) -> anyhow::Result<()> {
    let SieveCmd::Test {
        script,
        message,
        envelope_from,
        envelope_to,
        mailboxes,
    } = cmd;
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
