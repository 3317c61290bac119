//! `postern init`: write the commented config.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::config::{Config, render_initial};

#[derive(clap::Args, Debug)]
pub struct InitArgs {
    /// Mail domain (the part right of @), e.g. example.com
    #[arg(long)]
    pub domain: String,
    /// Fully qualified host name of this server, e.g. mail.example.com (MX and PTR name it)
    #[arg(long)]
    pub hostname: String,
    /// Where postern keeps its data (written to the config as an absolute path).
    #[arg(long, default_value = "/var/lib/postern")]
    pub data_dir: PathBuf,
}

/// `--hostname` must be a fully qualified name: MX, PTR and the certificate name a host, and
/// an IP address or a single label yields records that do not work (RFC 5321 §2.3.5).
fn check_hostname(hostname: &str, domain: &str) -> anyhow::Result<()> {
    let h = hostname.trim_end_matches('.');
    if h.parse::<std::net::IpAddr>().is_ok()
        || h.trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok()
    {
        bail!(
            "--hostname {hostname} is an IP address; give this server's fully qualified host name, e.g. mail.{domain} (MX and PTR records name a host, not an address)"
        );
    }
    if !h.contains('.') {
        bail!(
            "--hostname {hostname} is not fully qualified; give the whole name, e.g. {h}.{domain}"
        );
    }
    Ok(())
}

pub fn run(config_path: &Path, args: InitArgs) -> anyhow::Result<()> {
    if config_path.exists() {
        bail!(
            "{} already exists; not overwriting it (edit it, or remove it first)",
            config_path.display()
        );
    }
    if !args.domain.trim_end_matches('.').contains('.') {
        bail!(
            "--domain {} is not a registered domain name; give e.g. example.com",
            args.domain
        );
    }
    check_hostname(&args.hostname, &args.domain)?;
    // Absolute, so every later command finds the same data_dir wherever it is run from.
    let data_dir = std::path::absolute(&args.data_dir)
        .with_context(|| format!("cannot resolve --data-dir {}", args.data_dir.display()))?;
    let text = render_initial(
        &args.domain.to_ascii_lowercase(),
        &args.hostname.to_ascii_lowercase(),
        &data_dir,
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
    // An empty account store, so `user list` on a new instance lists nobody rather than
    // asking whether data_dir is right.
    crate::accounts::Accounts::open(&config.data_dir, &config.domain)
        .with_context(|| format!("cannot create accounts in {}", config.data_dir.display()))?;
    println!("wrote {}", config_path.display());
    print!("{}", next_steps(config_path, &config));
    Ok(())
}

/// What to do after `postern init`, ending with the DNS records to publish.
fn next_steps(config_path: &Path, config: &Config) -> String {
    let cfg = config_path.display();
    let d = &config.domain;
    let h = &config.hostname;
    let default = Path::new(crate::config::DEFAULT_CONFIG_PATH);
    let packaged = std::env::current_exe().is_ok_and(|e| e == Path::new("/usr/bin/postern"));
    let mut lines = vec![
        String::new(),
        "Next steps (INSTALL.md has the details):".into(),
        "1. Publish the DNS records below at your DNS provider, and ask your hosting provider"
            .into(),
        format!("   to set the reverse DNS (PTR) of this server's addresses to {h}."),
        "2. Open ports 25, 80, 143, 443, 465, 587, 993 and 4190 in the firewall (and make sure"
            .into(),
        "   outgoing port 25 is not blocked: many providers block it until you ask).".into(),
        "   If it stays blocked, send through a relay (smarthost): set [outbound] relay,".into(),
        "   relay_user and relay_password_file (INSTALL.md, \"Sending through a relay\").".into(),
        format!("3. Create your first user:  postern --config {cfg} user add you@{d}"),
    ];
    // The service in the order it works: the unit in place, pointed at this config, then on.
    if packaged {
        lines.push("4. The systemd unit came with the package (postern.service).".into());
    } else {
        lines.push(
            "4. Install the unit:        install -m 0644 systemd/postern.service /etc/systemd/system/"
                .into(),
        );
    }
    if config_path != default {
        let abs = std::path::absolute(config_path).unwrap_or_else(|_| config_path.to_owned());
        lines.push(format!(
            "   It reads {}: point it at this config with `systemctl edit postern`,",
            default.display()
        ));
        lines.push(format!(
            "   adding [Service] and Environment=POSTERN_CONFIG={}",
            abs.display()
        ));
    }
    lines.extend([
        "5. Start the service:       systemctl daemon-reload && systemctl enable --now postern"
            .into(),
        format!("6. Check everything:        postern --config {cfg} check"),
        format!("7. Mail clients: IMAP {h} port 993 (TLS); SMTP {h} port 465 (TLS)"),
        "   or 587 (STARTTLS); the user name is the full address.".into(),
        format!("   Mail filters and vacation replies (ManageSieve): {h} port 4190 (STARTTLS)."),
        String::new(),
    ]);
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
    fn hostname_must_be_fully_qualified() {
        for bad in ["192.0.2.1", "[2001:db8::1]", "2001:db8::1", "mail"] {
            assert!(super::check_hostname(bad, "example.com").is_err(), "{bad}");
        }
        let e = super::check_hostname("mail", "example.com").unwrap_err();
        assert!(e.to_string().contains("e.g. mail.example.com"), "{e}");
        assert!(super::check_hostname("mail.example.com", "example.com").is_ok());
    }

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
        // The unit is installed before the service starts, and it reads the default config.
        let install = s.find("4. ").unwrap();
        assert!(s.find("systemctl enable --now").unwrap() > install, "{s}");
        assert!(!s.contains("POSTERN_CONFIG="), "{s}");
        let s = super::next_steps(std::path::Path::new("/srv/p.toml"), &c);
        assert!(s.contains("Environment=POSTERN_CONFIG=/srv/p.toml"), "{s}");
        assert!(s.contains("IN MX    10 mail.example.com."));
        assert!(s.contains("[outbound] relay"));
    }
}
