//! `Services`: everything the listeners and background tasks share, built once in
//! `Services::build` and passed explicitly (never global). Only listeners and task spawners
//! take the whole thing; lower layers take the parts they use.

use std::sync::Arc;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::accounts::Accounts;
use crate::accounts::Logins;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::net::ConnLimiter;
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
    /// The one login entry point (throttle, verification, auth cache, fail2ban line).
    pub logins: Arc<Logins>,
    /// Cancelled when the server shuts down.
    pub shutdown: CancellationToken,
    /// Every session and background task; shutdown waits on it.
    pub tasks: TaskTracker,
    /// SPF/DKIM/DMARC/iprev verifier for port 25, sharing `dns`.
    pub authenticator: crate::inbound::Authenticator,
    /// SRS for forwarded mail and its bounces; None when `[delivery] srs = false`.
    pub srs: Option<Arc<crate::delivery::srs::Srs>>,
    /// Open connections, in total and per client IP, over every listener (SMTP, IMAP, HTTP).
    pub conns: Arc<ConnLimiter>,
    /// MTA-STS policies of remote domains (RFC 8461 §5), persisted in data_dir.
    pub mta_sts: crate::outbound::mta_sts::PolicyCache,
    /// Trust anchors for outbound TLS, loaded on first use.
    pub outbound_roots: crate::outbound::tls::Roots,
    /// Idle outbound SMTP sessions (connection reuse).
    pub outbound_sessions: Arc<crate::outbound::session_cache::SessionCache>,
    /// Our DKIM signing keys, loaded (or created) on first use.
    pub dkim: crate::delivery::dkim::KeyCache,
    /// Counts of outbound TLS outcomes for TLS reports (RFC 8460), persisted in data_dir.
    pub tlsrpt: Arc<crate::tlsrpt::Store>,
    /// The junk-filter databases of recently classified users, reloaded when their file
    /// changes.
    pub junk_dbs: Arc<crate::spam::DbCache>,
    /// Temp files for large message bodies on their way in (`data_dir/spool/tmp`).
    pub spool: crate::spool::Spool,
    /// The maildrops open in a POP3 session (RFC 1939 §8 lock, `-ERR [IN-USE]`).
    pub pop3_in_use: Arc<crate::pop3::in_use::InUse>,
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
        // Refuse to start with a relay password others may read (checked again per attempt).
        crate::outbound::relay::credentials(&config.outbound)?;
        if config.outbound.dane
            && let Err(why) = crate::dns::dnssec::AdResolver::from_config(&config.dns)
        {
            tracing::info!("DANE is off: {why}");
        }
        let accounts = Arc::new(Accounts::open(&config.data_dir, &config.domain)?);
        let store = Store::new(&config.data_dir);
        let tls = Arc::new(
            TlsService::start(&config).context("TLS setup failed (see [tls] in the config)")?,
        );
        let queue =
            Arc::new(Queue::open(&config.data_dir).context("cannot open the queue directory")?);
        let dns = crate::dns::build_resolver(&config.dns)?;
        let authenticator = crate::inbound::Authenticator::new(dns.clone());
        let metrics = Arc::new(Metrics::default());
        let logins = Arc::new(Logins::new(
            accounts.clone(),
            config.limits.max_auth_failures,
            metrics.clone(),
        ));
        let srs = if config.delivery.srs {
            Some(Arc::new(
                crate::delivery::srs::Srs::load_or_create(&config.data_dir, &config.domain)
                    .context("cannot read or create the SRS secret data_dir/srs.key")?,
            ))
        } else {
            None
        };
        let conns = ConnLimiter::new(
            config.limits.max_connections,
            config.limits.max_connections_per_ip,
        );
        let mta_sts = crate::outbound::mta_sts::PolicyCache::open(&config.data_dir);
        let outbound_roots = crate::outbound::tls::Roots::new(&config.outbound.ca_file);
        let tlsrpt = Arc::new(crate::tlsrpt::Store::open(
            &config.data_dir,
            config.outbound.tlsrpt_period_secs,
        ));
        // Keep one and a half largest messages free for the final copies (Postfix's
        // queue_minfree rule), whatever the spooled bodies of other connections take.
        let spool = crate::spool::Spool::open(&config.data_dir)
            .context("cannot create the spool directory data_dir/spool/tmp")?
            .with_reserve(config.limits.max_message_size.saturating_mul(3) / 2);
        Ok(Arc::new(Services {
            config: Arc::new(config),
            accounts,
            store,
            tls,
            queue,
            dns,
            metrics,
            logins,
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            authenticator,
            srs,
            conns,
            mta_sts,
            outbound_roots,
            outbound_sessions: Default::default(),
            dkim: crate::delivery::dkim::KeyCache::default(),
            tlsrpt,
            junk_dbs: Arc::default(),
            spool,
            pop3_in_use: Arc::default(),
        }))
    }
}

impl Services {
    /// What outbound delivery uses.
    pub fn outbound_env(&self) -> crate::outbound::Env<'_> {
        crate::outbound::Env {
            config: &self.config,
            dns: &self.dns,
            mta_sts: &self.mta_sts,
            roots: &self.outbound_roots,
            metrics: &self.metrics,
            shutdown: &self.shutdown,
            tlsrpt: &self.tlsrpt,
            sessions: &self.outbound_sessions,
        }
    }

    /// What local delivery through Sieve scripts uses.
    pub fn sieve_env(&self) -> crate::delivery::sieve::SieveEnv<'_> {
        crate::delivery::sieve::SieveEnv {
            config: &self.config,
            store: &self.store,
            queue: &self.queue,
            srs: self.srs.as_deref(),
            dkim: &self.dkim,
        }
    }
}
