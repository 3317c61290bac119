//! `postern init`: write the commented config.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::config::{Config, render_initial};

#[derive(clap::Args, Debug)]
pub struct InitArgs {
    /// Mail domain (the part right of @), e.g. example.com
    #[arg(long)]
    pub domain: String,
    /// Host name of this server, e.g. mail.example.com
    #[arg(long)]
    pub hostname: String,
    /// Where postern keeps its data.
    #[arg(long, default_value = "/var/lib/postern")]
    pub data_dir: PathBuf,
}

pub fn run(config_path: &Path, args: InitArgs) -> anyhow::Result<()> {
    if config_path.exists() {
        bail!(
            "{} already exists; not overwriting it (edit it, or remove it first)",
            config_path.display()
        );
    }
    let text = render_initial(
        &args.domain.to_ascii_lowercase(),
        &args.hostname.to_ascii_lowercase(),
        &args.data_dir,
    );
    // Validate what we are about to write so a bad --domain fails here, not at `serve`.
    let config = Config::parse(&text, config_path)
        .map_err(|e| anyhow::anyhow!("{e}").context("check --domain/--hostname/--data-dir"))?;
    if let Some(dir) = config_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    crate::fsutil::write_atomic(config_path, text.as_bytes(), 0o644)
        .with_context(|| format!("cannot write {}", config_path.display()))?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data_dir {}", config.data_dir.display()))?;
    crate::delivery::dkim::ensure_keys(&config)?;
    println!("wrote {}", config_path.display());
    println!(
        "next: `postern user add you@{}`, then `postern serve`",
        config.domain
    );
    Ok(())
}
