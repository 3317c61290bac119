//! The command line: `postern [--config PATH] <command>`. Errors surface here as one line
//! (what, which file/key, what to do) and a non-zero exit.

mod aliases;
mod backup;
mod check;
mod data_dir;
mod dev;
pub mod dns;
mod export;
mod import;
mod import_imap;
mod import_imap_copy;
mod import_source;
mod init;
mod manuals;
mod password;
mod queue;
mod sendmail;
mod sieve;
mod spam;
mod tls;
mod users;
mod vacation;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::config::{Config, DEFAULT_CONFIG_PATH};

#[derive(Parser, Debug)]
#[command(
    name = "postern",
    version = VERSION,
    about = "Your own mail domain in one binary: SMTP, submission, IMAP, ACME"
)]
pub struct Cli {
    /// Config file (a relative data_dir in it is relative to the file's directory).
    #[arg(long, global = true, env = "POSTERN_CONFIG", default_value = DEFAULT_CONFIG_PATH)]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Write a commented config file (refuses to overwrite one).
    Init(init::InitArgs),
    /// Run the server until SIGTERM/SIGINT.
    Serve,
    /// A complete local instance on 127.0.0.1 high ports: no root, no DNS.
    ///
    /// Creates the user dev@localhost (its password is printed once) and keeps mail, keys and
    /// its own config in --data-dir (DATA_DIR/postern.toml; --config is refused). Mail to
    /// localhost addresses is delivered locally. Mail to any other address is NOT held: it is
    /// queued and really sent to that domain's MX on port 25. See it with
    /// `postern --config DATA_DIR/postern.toml queue list`; drop it with `queue del ID`.
    Dev(dev::DevArgs),
    /// Manage users.
    #[command(subcommand)]
    User(users::UserCmd),
    /// Manage aliases (`@DOMAIN` as ALIAS is the catch-all).
    #[command(subcommand)]
    Alias(aliases::AliasCmd),
    /// Print the DNS records to publish (zone-file style).
    Dns,
    /// Check DNS, listeners and certificate; one line per check, non-zero exit on failure.
    Check(check::CheckArgs),
    /// TLS certificate status and renewal.
    #[command(subcommand)]
    Tls(tls::TlsCmd),
    /// Inspect and manage the outbound queue (works while the server runs).
    #[command(subcommand)]
    Queue(queue::QueueCmd),
    /// The per-user junk filter: statistics and bulk training.
    #[command(subcommand)]
    Spam(spam::SpamCmd),
    /// Import mail from an mbox file or a Maildir/Maildir++ tree (safe while serving).
    Import(import::ImportArgs),
    /// Export a user's folders as a Maildir++ tree or mbox files (safe while serving).
    Export(export::ExportArgs),
    /// Copy the data directory consistently while the server runs (hard links for mail).
    Backup(backup::BackupArgs),
    /// Put a backup back into the (empty) data directory; the server must be stopped.
    Restore(backup::RestoreArgs),
    /// sendmail(8)-compatible submission from stdin (-t, -f, -i, -F, recipients).
    Sendmail(sendmail::SendmailArgs),
    /// Sieve filtering scripts: list, get, put, activate, del; test a script on a message.
    #[command(subcommand)]
    Sieve(sieve::SieveCmd),
    /// Set (or with --off remove) an out-of-office reply, without writing Sieve.
    Vacation(vacation::VacationArgs),
    /// Print the shell completion script for bash, zsh or fish.
    Completions(manuals::CompletionsArgs),
    /// Write the man pages and completion files into a directory (for packaging).
    #[command(hide = true)]
    Manuals(manuals::ManualsArgs),
}

/// `postern --version`: the crate version and the commit it was built from (build.rs).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("POSTERN_SOURCE_COMMIT"),
    ")"
);

pub fn main() -> ExitCode {
    // Installed as /usr/sbin/sendmail (a symlink to postern): behave as `postern sendmail`.
    let mut argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if argv
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .is_some_and(|n| n == "sendmail")
    {
        argv.insert(1, "sendmail".into());
    }
    let matches = Cli::command().get_matches_from(argv);
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    // `serve` logs in its config's `[log] format`, so it starts logging once that is loaded.
    if !matches!(cli.command, Command::Serve) {
        init_logging(crate::config::LogFormat::Text);
    }
    // `dev` runs on its own built-in config: a --config given to it would be silently unused.
    let given = |m: &clap::ArgMatches| {
        m.value_source("config") == Some(clap::parser::ValueSource::CommandLine)
    };
    if matches!(cli.command, Command::Dev(_))
        && (given(&matches) || matches.subcommand_matches("dev").is_some_and(given))
    {
        eprintln!(
            "postern: error: `postern dev` uses its own config (DATA_DIR/postern.toml) and ignores --config; leave it out, or run `postern --config FILE serve`"
        );
        return ExitCode::FAILURE;
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("postern: error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The chain of causes joined with ": ", each said once: a cause whose text its context
/// already quotes (an io::Error inside a message, a transparent wrapper) is left out.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

fn init_logging(format: crate::config::LogFormat) {
    use tracing_subscriber::EnvFilter;
    let mut spec = std::env::var("POSTERN_LOG").unwrap_or_else(|_| "info".into());
    // rustls warns (without naming the peer) about every client that sends an IP address as
    // SNI, e.g. any connection to 127.0.0.1 under `postern dev`; its real failures reach us as
    // handshake errors, which the listeners log with the peer. POSTERN_LOG=rustls=… overrides.
    if !spec.contains("rustls") {
        spec.push_str(",rustls=error");
    }
    let filter = EnvFilter::try_new(&spec).unwrap_or_else(|_| EnvFilter::new("info,rustls=error"));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        crate::config::LogFormat::Text => fmt
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_target(false)
            .try_init(),
        // One JSON object per line: timestamp, level, target, message and the event's fields
        // at the top level (flattened), never ANSI colours.
        crate::config::LogFormat::Json => fmt.json().flatten_event(true).try_init(),
    };
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let path = &cli.config;
    match cli.command {
        Command::Init(args) => init::run(path, args),
        Command::Serve => {
            let config = Config::load(path)?;
            init_logging(config.log.format);
            std::fs::create_dir_all(&config.data_dir)
                .with_context(|| format!("cannot create data_dir {}", config.data_dir.display()))?;
            let _lock = data_dir::ServerLock::take(&config.data_dir)?;
            data_dir::check_format(&config.data_dir)?;
            runtime()?.block_on(crate::server::run(config))
        }
        Command::Dev(args) => dev::run(args),
        Command::User(cmd) => users::run(&load(path)?, path, cmd),
        Command::Alias(cmd) => aliases::run(&load(path)?, path, cmd),
        Command::Dns => {
            let config = load(path)?;
            data_dir::require_dkim_key(&config, path)?;
            dns::run(&config)
        }
        Command::Check(args) => {
            let config = load(path)?;
            data_dir::require_dkim_key(&config, path)?;
            if check::run(&config, args)? {
                Ok(())
            } else {
                // The report said what failed; only the exit status remains to set.
                std::process::exit(1)
            }
        }
        Command::Tls(cmd) => tls::run(&load(&cli.config)?, cmd),
        Command::Queue(cmd) => queue::run(&load(&cli.config)?, cmd),
        Command::Spam(cmd) => spam::run(&load(path)?, cmd),
        Command::Sendmail(args) if args.args == ["--help"] => {
            let mut cmd = Cli::command();
            if let Some(sub) = cmd.find_subcommand_mut("sendmail") {
                sub.print_long_help()?;
            }
            Ok(())
        }
        Command::Sendmail(args) => sendmail::run(&load(path)?, args),
        Command::Completions(args) => manuals::completions(args),
        Command::Manuals(args) => manuals::write_all(args),
        Command::Import(args) => import::run(&load(path)?, args),
        Command::Export(args) => export::run(&load(path)?, args),
        Command::Backup(args) => backup::backup(&load(path)?, args),
        Command::Restore(args) => backup::restore(&load(path)?, args),
        Command::Sieve(cmd) => sieve::run(path, cmd),
        Command::Vacation(args) => vacation::run(&load(path)?, args),
    }
}

pub(crate) fn load(path: &std::path::Path) -> anyhow::Result<Config> {
    Ok(Config::load(path)?)
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Issue 20, item 15: every argument and option a user can see says what it is for.
    #[test]
    fn every_visible_argument_is_described() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for a in cmd.get_arguments() {
                if a.is_hide_set() || a.get_id() == "help" || a.get_id() == "version" {
                    continue;
                }
                if a.get_help().is_none() && a.get_long_help().is_none() {
                    missing.push(format!("{path} {}", a.get_id()));
                }
            }
            for sub in cmd.get_subcommands() {
                if !sub.is_hide_set() {
                    walk(sub, &format!("{path} {}", sub.get_name()), missing);
                }
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), "postern", &mut missing);
        assert!(missing.is_empty(), "undescribed: {missing:#?}");
    }
}
