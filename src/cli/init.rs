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
    print!("{}", next_steps(config_path, &config));
    Ok(())
}

/// What to do after `postern init`, ending with the DNS records to publish.
fn next_steps(config_path: &Path, config: &Config) -> String {
    let cfg = config_path.display();
    let d = &config.domain;
    let h = &config.hostname;
    let lines = [
        String::new(),
        "Next steps (INSTALL.md has the details):".into(),
        "1. Publish the DNS records below at your DNS provider, and ask your hosting provider"
            .into(),
        format!("   to set the reverse DNS (PTR) of this server's addresses to {h}."),
        "2. Open ports 25, 80, 143, 443, 465, 587 and 993 in the firewall (and make sure".into(),
        "   outgoing port 25 is not blocked: many providers block it until you ask).".into(),
        "   If it stays blocked, send through a relay (smarthost): set [outbound] relay,".into(),
        "   relay_user and relay_password_file (INSTALL.md, \"Sending through a relay\").".into(),
        format!("3. Create your first user:  postern --config {cfg} user add you@{d}"),
        "4. Start the service:       systemctl enable --now postern".into(),
        format!("5. Check everything:        postern --config {cfg} check"),
        format!("6. Mail clients: IMAP {h} port 993 (TLS); SMTP {h} port 465 (TLS)"),
        "   or 587 (STARTTLS); the user name is the full address.".into(),
        String::new(),
    ];
    let mut out = lines.join("\n");
    out.push('\n');
    out.push_str(&super::dns::render(
        config,
        &super::dns::public_addresses(config),
    ));
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn next_steps_end_with_the_records() {
        let c = crate::config::Config::parse(
            &crate::config::render_initial(
                "example.com",
                "mail.example.com",
                std::path::Path::new("/nonexistent"),
            ),
            std::path::Path::new("t.toml"),
        )
        .unwrap();
        let s = super::next_steps(std::path::Path::new("/etc/postern/postern.toml"), &c);
        assert!(s.contains("user add you@example.com"));
        assert!(s.contains("IN MX    10 mail.example.com."));
        assert!(s.contains("[outbound] relay"));
    }
}
