//! `postern dev`: a whole instance on 127.0.0.1 high ports, self-signed TLS, a `dev@localhost`
//! user; state in ./postern-dev so a second run keeps the mail and the password.

use std::path::{Path, PathBuf};

use anyhow::Context;
use rand::Rng;

use crate::accounts::Accounts;
use crate::config::{Config, TlsSource};

#[derive(clap::Args, Debug)]
pub struct DevArgs {
    /// Where the dev instance keeps its data.
    #[arg(long, default_value = "postern-dev")]
    pub data_dir: PathBuf,
    /// Refused (dev writes its own config), and hidden so `dev --help` does not offer it: an
    /// argument of the subcommand's own shadows the global `--config` there.
    #[arg(long, hide = true)]
    pub config: Option<PathBuf>,
}

/// The dev config: loopback only, high ports, self-signed certificate.
pub fn dev_config(data_dir: &Path) -> Config {
    let text = format!(
        r#"domain = "localhost"
hostname = "localhost"
data_dir = "{}"
[listen]
smtp = ["127.0.0.1:2525"]
submission = ["127.0.0.1:2587"]
submissions = ["127.0.0.1:2465"]
imap = ["127.0.0.1:2143"]
imaps = ["127.0.0.1:2993"]
pop3 = ["127.0.0.1:2110"]
pop3s = ["127.0.0.1:2995"]
managesieve = ["127.0.0.1:24190"]
http = ["127.0.0.1:2080"]
[tls]
source = "self-signed"
"#,
        data_dir.display()
    );
    let cfg =
        Config::parse(&text, Path::new("<postern dev>")).expect("the built-in dev config is valid");
    debug_assert_eq!(cfg.tls.source, TlsSource::SelfSigned);
    cfg
}

pub fn run(args: DevArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    let data_dir = std::fs::canonicalize(&args.data_dir)?;
    let _lock = super::data_dir::ServerLock::take(&data_dir)?;
    super::data_dir::check_format(&data_dir)?;
    let config = dev_config(&data_dir);
    let accounts = Accounts::open(&config.data_dir, &config.domain)?;
    if accounts.user_exists("dev@localhost")?.is_none() {
        let password: String = rand::rng()
            .sample_iter(rand::distr::Alphanumeric)
            .take(16)
            .map(char::from)
            .collect();
        accounts.add_user("dev@localhost", &password)?;
        accounts.ensure_role_aliases("dev@localhost")?;
        println!("created user dev@localhost with password: {password}");
        println!(
            "(shown once; change it with `postern --config {} user passwd dev@localhost`)",
            data_dir.join("postern.toml").display()
        );
    }
    crate::store::Store::new(&config.data_dir).ensure_user("dev@localhost")?;
    crate::delivery::dkim::ensure_keys(&config)?;
    // Keep a copy of the config so the other commands can be pointed at this instance.
    let cfg_path = data_dir.join("postern.toml");
    if !cfg_path.exists() {
        crate::fsutil::write_atomic(&cfg_path, toml::to_string(&config)?.as_bytes(), 0o644)?;
    }
    println!(
        "postern dev: smtp 127.0.0.1:2525, submission 2587/2465, imap 2143/2993, pop3 2110/2995, managesieve 24190, http 2080; data in {}",
        data_dir.display()
    );
    println!(
        "note: mail to addresses outside localhost is NOT held: it is queued and really sent to their MX on port 25; see it with `postern --config {} queue list`",
        data_dir.join("postern.toml").display()
    );
    super::runtime()?.block_on(crate::server::run(config))
}
