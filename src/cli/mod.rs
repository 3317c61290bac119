//! The command line: `postern [--config PATH] <command>`. Errors surface here as one line
//! (what, which file/key, what to do) and a non-zero exit.

mod backup;
mod check;
mod dev;
pub mod dns;
mod export;
mod import;
mod import_imap;
mod import_imap_copy;
mod import_source;
mod init;
mod queue;
mod sendmail;
mod spam;
mod tls;
mod users;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, DEFAULT_CONFIG_PATH};

#[derive(Parser, Debug)]
#[command(
    name = "postern",
    version,
    about = "Your own mail domain in one binary: SMTP, submission, IMAP, ACME"
)]
pub struct Cli {
    /// Config file.
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
    Dev(dev::DevArgs),
    /// Manage users.
    #[command(subcommand)]
    User(users::UserCmd),
    /// Manage aliases (`@DOMAIN` as ALIAS is the catch-all).
    #[command(subcommand)]
    Alias(users::AliasCmd),
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
}

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
    let cli = Cli::parse_from(argv);
    init_logging();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the chain of causes joined with ": ".
            eprintln!("postern: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("POSTERN_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Init(args) => init::run(&cli.config, args),
        Command::Serve => {
            let config = Config::load(&cli.config)?;
            runtime()?.block_on(crate::server::run(config))
        }
        Command::Dev(args) => dev::run(args),
        Command::User(cmd) => users::run_user(&load(&cli.config)?, cmd),
        Command::Alias(cmd) => users::run_alias(&load(&cli.config)?, cmd),
        Command::Dns => dns::run(&load(&cli.config)?),
        Command::Check(args) => {
            if check::run(&load(&cli.config)?, args)? {
                Ok(())
            } else {
                // The report said what failed; only the exit status remains to set.
                std::process::exit(1)
            }
        }
        Command::Tls(cmd) => tls::run(&load(&cli.config)?, cmd),
        Command::Queue(cmd) => queue::run(&load(&cli.config)?, cmd),
        Command::Spam(cmd) => spam::run(&load(&cli.config)?, cmd),
        Command::Sendmail(args) => sendmail::run(&load(&cli.config)?, args),
        Command::Import(args) => import::run(&load(&cli.config)?, args),
        Command::Export(args) => export::run(&load(&cli.config)?, args),
        Command::Backup(args) => backup::backup(&load(&cli.config)?, args),
        Command::Restore(args) => backup::restore(&load(&cli.config)?, args),
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
