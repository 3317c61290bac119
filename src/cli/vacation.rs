//! `postern vacation USER …`: an out-of-office reply for users who never write Sieve. It
//! writes (or removes) a marked block at the end of the user's active script — creating and
//! activating a script named `main` when there is none — so hand-written rules stay as
//! they are. Dates are UTC days, both ends inclusive (RFC 5260 `currentdate`).

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::Args;

use crate::sieve::scripts::ScriptStore;

const BEGIN: &str = "# BEGIN postern vacation (written by `postern vacation`; change it there)";
const END: &str = "# END postern vacation";
const REQUIRE: &str = "require [\"vacation\", \"date\", \"relational\"]; # postern vacation";

#[derive(Args, Debug)]
pub struct VacationArgs {
    /// The account (local@domain).
    pub user: String,
    /// Subject of the reply.
    #[arg(long, required_unless_present = "off")]
    pub subject: Option<String>,
    /// File holding the reply's text (UTF-8).
    #[arg(long, required_unless_present = "off")]
    pub message_file: Option<PathBuf>,
    /// First day to answer (YYYY-MM-DD, UTC).
    #[arg(long)]
    pub from: Option<String>,
    /// Last day to answer (YYYY-MM-DD, UTC).
    #[arg(long)]
    pub until: Option<String>,
    /// Days before the same sender is answered again.
    #[arg(long, default_value_t = 7)]
    pub days: u32,
    /// Remove the vacation reply.
    #[arg(long, conflicts_with_all = ["subject", "message_file", "from", "until"])]
    pub off: bool,
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn check_day(d: &str) -> anyhow::Result<()> {
    if chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").is_err() {
        bail!("{d:?} is not a date like 2026-12-24");
    }
    Ok(())
}

/// `script` without a block this command wrote earlier (and its require line).
pub fn strip(script: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in script.split_inclusive('\n') {
        let t = line.trim_end();
        if t == BEGIN {
            inside = true;
        } else if t == END {
            inside = false;
        } else if !inside && t != REQUIRE {
            out.push_str(line);
        }
    }
    out
}

/// The block for these settings (without the require line).
pub fn block(
    subject: &str,
    text: &str,
    from: Option<&str>,
    until: Option<&str>,
    days: u32,
) -> String {
    let mut conds = Vec::new();
    if let Some(f) = from {
        conds.push(format!("currentdate :value \"ge\" \"date\" {}", quote(f)));
    }
    if let Some(u) = until {
        conds.push(format!("currentdate :value \"le\" \"date\" {}", quote(u)));
    }
    let mut body = String::new();
    for l in text.lines() {
        // RFC 5228 §2.4.2: dot-stuffing inside text:.
        if l.starts_with('.') {
            body.push('.');
        }
        body.push_str(l);
        body.push('\n');
    }
    let action = format!(
        "vacation :days {} :subject {} text:\n{body}.\n;\n",
        days.clamp(1, 90),
        quote(subject)
    );
    let inner = if conds.is_empty() {
        action
    } else {
        format!("if allof ({}) {{\n{action}}}\n", conds.join(", "))
    };
    format!("{BEGIN}\n{inner}{END}\n")
}

pub fn run(config: &crate::config::Config, a: VacationArgs) -> anyhow::Result<()> {
    let store = ScriptStore::new(&config.data_dir);
    let (name, current) = match store.active(&a.user)? {
        Some((n, text)) => (n, text),
        None => ("main".to_string(), String::new()),
    };
    let mut script = strip(&current);
    if !a.off {
        for d in [&a.from, &a.until].into_iter().flatten() {
            check_day(d)?;
        }
        let file = a.message_file.as_ref().expect("clap requires it");
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let subject = a.subject.as_deref().expect("clap requires it");
        if !script.is_empty() && !script.ends_with('\n') {
            script.push('\n');
        }
        script = format!(
            "{REQUIRE}\n{script}{}",
            block(
                subject,
                &text,
                a.from.as_deref(),
                a.until.as_deref(),
                a.days
            )
        );
    }
    store
        .put(&a.user, &name, &script)
        .with_context(|| format!("the script {name:?} with the vacation rule does not compile"))?;
    if store.active_name(&a.user)?.is_none() {
        store.activate(&a.user, Some(&name))?;
    }
    println!(
        "{} for {} (script {name:?})",
        if a.off {
            "vacation reply removed"
        } else {
            "vacation reply set"
        },
        a.user
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sieve::{Limits, compile};

    #[test]
    fn block_compiles_and_strips() {
        let user = "require \"fileinto\";\nif header :is \"x\" \"y\" { fileinto \"Y\"; }\n";
        let b = block(
            "Away \"now\"",
            ".dot\nline\n",
            Some("2026-12-20"),
            Some("2027-01-02"),
            5,
        );
        let full = format!("{REQUIRE}\n{user}{b}");
        compile(&full, &Limits::default()).unwrap();
        assert_eq!(strip(&full), user);
        let bare = format!("{REQUIRE}\n{}", block("A", "b", None, None, 7));
        compile(&bare, &Limits::default()).unwrap();
        assert!(strip(&bare).is_empty());
    }
}
