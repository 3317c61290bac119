//! `postern serve`: build the services once, bind every configured listener, run until
//! SIGTERM/SIGINT, then stop accepting and let sessions in flight finish (bounded).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::accounts::Accounts;
use crate::accounts::throttle::LoginThrottle;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::queue::Queue;
use crate::store::Store;
use crate::tls::TlsService;

/// Everything a protocol session may use, built once and passed explicitly (never global).
pub struct Services {
    pub config: Arc<Config>,
    pub accounts: Arc<Accounts>,
    pub store: Store,
    pub tls: Arc<TlsService>,
    pub queue: Arc<Queue>,
    pub dns: hickory_resolver::TokioResolver,
    pub metrics: Arc<Metrics>,
    pub login_throttle: Arc<LoginThrottle>,
    /// Cancelled when the server shuts down.
    pub shutdown: CancellationToken,
    /// Every session and background task; shutdown waits on it.
    pub tasks: TaskTracker,
    /// SPF/DKIM/DMARC/iprev verifier for port 25, sharing `dns`.
    pub authenticator: crate::inbound::Authenticator,
    /// SRS for forwarded mail and its bounces; None when `[delivery] srs = false`.
    pub srs: Option<Arc<crate::delivery::srs::Srs>>,
    /// Temp files for large message bodies on their way in (`data_dir/spool/tmp`).
    pub spool: crate::spool::Spool,
}

impl Services {
    /// Build the services from a validated config. Opens (and creates) the data directory.
    pub fn build(config: Config) -> anyhow::Result<Arc<Services>> {
        std::fs::create_dir_all(&config.data_dir).with_context(|| {
            format!(
                "cannot create data_dir {} (check the path and permissions)",
                config.data_dir.display()
            )
        })?;
        let accounts = Arc::new(Accounts::open(&config.data_dir, &config.domain)?);
        let store = Store::new(&config.data_dir);
        let tls = Arc::new(
            TlsService::start(&config).context("TLS setup failed (see [tls] in the config)")?,
        );
        let queue =
            Arc::new(Queue::open(&config.data_dir).context("cannot open the queue directory")?);
        let dns = crate::dns::build_resolver(&config.dns)?;
        let authenticator = crate::inbound::Authenticator::new(dns.clone());
        let login_throttle = Arc::new(LoginThrottle::new(config.limits.max_auth_failures));
        let srs = if config.delivery.srs {
            Some(Arc::new(
                crate::delivery::srs::Srs::load_or_create(&config.data_dir, &config.domain)
                    .context("cannot read or create the SRS secret data_dir/srs.key")?,
            ))
        } else {
            None
        };
        let spool = crate::spool::Spool::open(&config.data_dir)
            .context("cannot create the spool directory data_dir/spool/tmp")?;
        Ok(Arc::new(Services {
            config: Arc::new(config),
            accounts,
            store,
            tls,
            queue,
            dns,
            metrics: Arc::new(Metrics::default()),
            login_throttle,
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            authenticator,
            srs,
            spool,
        }))
    }
}

/// Bind one listener with an error that names the config key.
async fn bind(addr: SocketAddr, key: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr} (listen.{key}): is another server using it, or does the port need root / CAP_NET_BIND_SERVICE?")
    })
}

/// Start every listener and background task; returns once all are bound.
pub async fn start(svc: &Arc<Services>) -> anyhow::Result<()> {
    let cfg = svc.config.clone();
    for &addr in &cfg.listen.smtp {
        let l = bind(addr, "smtp").await?;
        tracing::info!("smtp listening on {addr}");
        crate::smtp::spawn_listener(svc.clone(), l, crate::smtp::Mode::Mx);
    }
    for &addr in &cfg.listen.submission {
        let l = bind(addr, "submission").await?;
        tracing::info!("submission listening on {addr}");
        crate::smtp::spawn_listener(svc.clone(), l, crate::smtp::Mode::Submission);
    }
    for &addr in &cfg.listen.submissions {
        let l = bind(addr, "submissions").await?;
        tracing::info!("submissions listening on {addr}");
        crate::smtp::spawn_listener(svc.clone(), l, crate::smtp::Mode::Submissions);
    }
    for &addr in &cfg.listen.imap {
        let l = bind(addr, "imap").await?;
        tracing::info!("imap listening on {addr}");
        crate::imap::spawn_listener(svc.clone(), l, false);
    }
    for &addr in &cfg.listen.imaps {
        let l = bind(addr, "imaps").await?;
        tracing::info!("imaps listening on {addr}");
        crate::imap::spawn_listener(svc.clone(), l, true);
    }
    for &addr in &cfg.listen.http {
        let l = bind(addr, "http").await?;
        tracing::info!("http listening on {addr}");
        crate::http::spawn_listener(svc.clone(), l, crate::http::Kind::Http);
    }
    for &addr in &cfg.listen.https {
        let l = bind(addr, "https").await?;
        tracing::info!("https listening on {addr}");
        crate::http::spawn_listener(svc.clone(), l, crate::http::Kind::Https);
    }
    for &addr in &cfg.listen.metrics {
        let l = bind(addr, "metrics").await?;
        tracing::info!("metrics listening on {addr}");
        crate::http::spawn_listener(svc.clone(), l, crate::http::Kind::Metrics);
    }
    crate::queue::spawn_scheduler(svc.clone());
    crate::tls::spawn_maintenance(svc.clone());
    Ok(())
}

/// Run until SIGTERM or SIGINT, then shut down gracefully.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let svc = Services::build(config)?;
    start(&svc).await?;
    tracing::info!(domain = %svc.config.domain, hostname = %svc.config.hostname, "postern started");
    wait_for_signal(&svc).await;
    tracing::info!("shutting down: no new connections; waiting up to 30 s for sessions in flight");
    svc.shutdown.cancel();
    svc.tasks.close();
    if tokio::time::timeout(Duration::from_secs(30), svc.tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            "sessions still open after 30 s; exiting (acknowledged mail is already on disk)"
        );
    }
    tracing::info!("stopped");
    Ok(())
}

async fn wait_for_signal(svc: &Arc<Services>) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    let mut hup = signal(SignalKind::hangup()).expect("SIGHUP handler");
    loop {
        tokio::select! {
            _ = term.recv() => return,
            _ = int.recv() => return,
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading certificates");
                crate::tls::reload(svc);
            }
        }
    }
}
