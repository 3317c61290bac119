//! `postern tls status` (which certificate is served, by whom, until when, next renewal) and
//! `postern tls renew` (ask the running server to renew now: it polls for the request file
//! every few seconds; with `--wait`, wait for the outcome).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Subcommand;

use crate::config::{Config, TlsSource};
use crate::tls::acme::{self, Store, fmt_time, schedule};
use crate::tls::{CertInfo, load_pem_files};

#[derive(Subcommand, Debug)]
pub enum TlsCmd {
    /// Show the certificate: names, issuer, expiry, next renewal.
    Status,
    /// Ask the running server to renew the ACME certificate now (or reload the files).
    Renew {
        /// Wait (up to 5 minutes) until the server reports the outcome.
        #[arg(long)]
        wait: bool,
    },
}

pub fn run(config: &Config, cmd: TlsCmd) -> anyhow::Result<()> {
    crate::tls::install_crypto_provider();
    match cmd {
        TlsCmd::Status => status(config),
        TlsCmd::Renew { wait } => renew(config, wait),
    }
}

fn store(config: &Config) -> Store {
    Store::new(&config.data_dir.join("tls"))
}

fn status(config: &Config) -> anyhow::Result<()> {
    let dir = config.data_dir.join("tls");
    let (cert, key, source) = match config.tls.source {
        TlsSource::Files => (
            config.tls.cert_file.clone(),
            config.tls.key_file.clone(),
            "files".to_string(),
        ),
        TlsSource::SelfSigned => (
            dir.join("self-signed-cert.pem"),
            dir.join("self-signed-key.pem"),
            "self-signed".into(),
        ),
        TlsSource::Acme => {
            let c = dir.join(acme::store::CERT_FILE);
            if c.exists() {
                (
                    c,
                    dir.join(acme::store::KEY_FILE),
                    format!("acme ({})", config.tls.acme_directory),
                )
            } else {
                println!("source: acme ({})", config.tls.acme_directory);
                println!("wanted names: {}", acme::wanted_names(config).join(", "));
                println!(
                    "certificate: none issued yet; the self-signed stand-in serves until issuance succeeds"
                );
                print_state(config);
                return Ok(());
            }
        }
    };
    let ck = load_pem_files(&cert, &key).context("cannot load the certificate")?;
    let info = CertInfo::of(&ck).context("cannot parse the certificate")?;
    println!("source: {source}");
    println!("certificate: {}", cert.display());
    println!("names: {}", info.names.join(", "));
    println!("issuer: {}", info.issuer);
    println!("serial: {}", info.serial);
    println!("not before: {}", fmt_time(info.not_before));
    println!("not after: {}", fmt_time(info.not_after));
    if config.tls.source == TlsSource::Acme {
        let missing: Vec<String> = acme::wanted_names(config)
            .into_iter()
            .filter(|n| !info.names.contains(n))
            .collect();
        if !missing.is_empty() {
            println!("missing names: {} (renews at once)", missing.join(", "));
        }
        match store(config).load_state().and_then(|s| s.next_renewal) {
            Some(_) => print_state(config),
            None => println!(
                "next renewal: {} (a third of the lifetime left)",
                fmt_time(schedule::lifetime_due(info.not_before, info.not_after))
            ),
        }
    }
    Ok(())
}

fn print_state(config: &Config) {
    let Some(s) = store(config).load_state() else {
        return;
    };
    if let Some(t) = s.next_renewal {
        println!("next renewal: {} ({})", fmt_time(t), s.reason);
    }
    if let Some((a, b)) = s.ari_window {
        println!("renewal window (ARI): {} to {}", fmt_time(a), fmt_time(b));
    }
    if let Some(t) = s.last_attempt {
        match &s.last_error {
            Some(e) => println!("last attempt: {} failed: {e}", fmt_time(t)),
            None => println!("last attempt: {} succeeded", fmt_time(t)),
        }
    }
}

fn renew(config: &Config, wait: bool) -> anyhow::Result<()> {
    if config.tls.source == TlsSource::SelfSigned {
        bail!("tls.source is \"self-signed\": there is nothing to renew");
    }
    let store = store(config);
    let before = store.load_state().and_then(|s| s.last_attempt);
    let asked = chrono::Utc::now().timestamp();
    store
        .request_renewal()
        .context("cannot write the renewal request into data_dir/tls")?;
    if !wait {
        println!("renewal requested; the running server starts it within a few seconds");
        return Ok(());
    }
    if config.tls.source == TlsSource::Files {
        println!("reload requested; the running server reloads the files within a few seconds");
        return Ok(());
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    while Instant::now() < deadline {
        if let Some(s) = store.load_state()
            && let Some(t) = s.last_attempt
            && Some(t) != before
            && t >= asked
        {
            return match s.last_error {
                None => {
                    println!("renewed");
                    Ok(())
                }
                Some(e) => bail!("renewal failed: {e}"),
            };
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    bail!("no outcome after 5 minutes: is `postern serve` running with this config?")
}
