//! TLS for every listener: one `rustls::ServerConfig` whose certificate comes from a
//! swappable resolver, so a renewed certificate (ACME) or a reloaded file (SIGHUP) is used by
//! the next handshake on every port while open connections keep theirs.
//!
//! Sources (config `tls.source`): "self-signed" (generated once with rcgen and kept in
//! `data_dir/tls/`), "files" (PEM chain and key, loaded with `rustls::pki_types::pem::PemObject`
//! — the successor of the unmaintained rustls-pemfile, RUSTSEC-2025-0134, reloaded on SIGHUP
//! and when the files change, see watch.rs), "acme" (issuance and renewal, see acme/).

pub mod acme;
mod certs;
mod resolver;
mod watch;

pub use certs::{CertInfo, load_pem_files, self_signed_for, tls_alpn_challenge_cert};
pub use resolver::{ACME_TLS_ALPN, CertResolver, ChallengeCerts, HttpsResolver};

use std::sync::Arc;

use rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

use crate::config::{Config, TlsSource};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("certificate generation failed: {0}")]
    Generate(String),
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Install ring as the process-wide rustls crypto provider (one provider for the binary).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The TLS service shared by all listeners.
pub struct TlsService {
    resolver: Arc<CertResolver>,
    server_config: Arc<ServerConfig>,
    /// The HTTPS listener's config: same certificate, plus `acme-tls/1` for TLS-ALPN-01.
    https_config: Arc<ServerConfig>,
    /// TLS-ALPN-01 challenge certificates being offered (acme/ fills and clears them).
    alpn_challenges: Arc<ChallengeCerts>,
    /// ACME HTTP-01 answers being offered: token → key authorization. http/ serves them at
    /// /.well-known/acme-challenge/TOKEN; tls/acme.rs fills and clears the map.
    http01: std::sync::RwLock<std::collections::HashMap<String, String>>,
}

impl TlsService {
    /// Load or create the initial certificate for the configured source. For "acme" this is the
    /// stored certificate if there is one, else a self-signed stand-in until issuance succeeds.
    pub fn start(config: &Config) -> Result<TlsService, TlsError> {
        install_crypto_provider();
        let dir = config.data_dir.join("tls");
        std::fs::create_dir_all(&dir)?;
        let initial = match config.tls.source {
            TlsSource::Files => load_pem_files(&config.tls.cert_file, &config.tls.key_file)?,
            TlsSource::SelfSigned => self_signed_for(&dir, &config.hostname)?,
            TlsSource::Acme => match acme::Store::new(&dir).load_cert() {
                Some(ck) => {
                    tracing::info!(
                        "serving the stored ACME certificate from {}",
                        dir.join(acme::store::CERT_FILE).display()
                    );
                    ck
                }
                None => {
                    tracing::warn!(
                        "no ACME certificate yet: serving a self-signed one for {} until issuance succeeds",
                        config.hostname
                    );
                    self_signed_for(&dir, &config.hostname)?
                }
            },
        };
        let resolver = Arc::new(CertResolver::new(initial));
        let mut sc = ServerConfig::builder()
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        sc.alpn_protocols = vec![];
        let alpn_challenges: Arc<ChallengeCerts> = Default::default();
        let mut https = ServerConfig::builder()
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(HttpsResolver {
                certs: resolver.clone(),
                challenges: alpn_challenges.clone(),
            }));
        // RFC 8737 §3: a validation offers only acme-tls/1 and the server must select it;
        // ordinary clients get HTTP/1.1 (the only protocol http/ speaks).
        https.alpn_protocols = vec![ACME_TLS_ALPN.to_vec(), b"http/1.1".to_vec()];
        Ok(TlsService {
            resolver,
            server_config: Arc::new(sc),
            https_config: Arc::new(https),
            alpn_challenges,
            http01: Default::default(),
        })
    }

    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.server_config.clone())
    }

    /// Acceptor for the HTTPS listener (MTA-STS, autoconfig). It also negotiates the
    /// `acme-tls/1` ALPN protocol for TLS-ALPN-01 challenges: when a handshake ends with that
    /// protocol the caller closes the connection (RFC 8737 §3).
    pub fn https_acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.https_config.clone())
    }

    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.server_config.clone()
    }

    pub fn resolver(&self) -> &Arc<CertResolver> {
        &self.resolver
    }

    /// The key authorization for an HTTP-01 token, if a challenge is in progress.
    pub fn http01_response(&self, token: &str) -> Option<String> {
        self.http01
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(token)
            .cloned()
    }

    pub fn set_http01(&self, token: &str, key_authorization: Option<String>) {
        let mut m = self.http01.write().unwrap_or_else(|e| e.into_inner());
        match key_authorization {
            Some(k) => m.insert(token.to_owned(), k),
            None => m.remove(token),
        };
    }

    /// Offer (or withdraw) the TLS-ALPN-01 challenge certificate for `name` on listen.https.
    pub fn set_alpn_challenge(&self, name: &str, ck: Option<Arc<rustls::sign::CertifiedKey>>) {
        let mut m = self
            .alpn_challenges
            .write()
            .unwrap_or_else(|e| e.into_inner());
        match ck {
            Some(ck) => m.insert(name.to_ascii_lowercase(), ck),
            None => m.remove(&name.to_ascii_lowercase()),
        };
    }
}

/// What certificate maintenance (ACME, file watching, SIGHUP) uses, taken from the services.
#[derive(Clone)]
pub struct Maintenance {
    pub config: Arc<Config>,
    pub tls: Arc<TlsService>,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub shutdown: tokio_util::sync::CancellationToken,
    pub tasks: tokio_util::task::TaskTracker,
}

/// Serve `ck` on every listener from the next handshake on and publish its expiry metric.
pub fn install(
    tls: &TlsService,
    metrics: &crate::metrics::Metrics,
    ck: Arc<rustls::sign::CertifiedKey>,
) {
    publish_expiry(metrics, &ck);
    tls.resolver().swap(ck);
}

fn publish_expiry(metrics: &crate::metrics::Metrics, ck: &rustls::sign::CertifiedKey) {
    if let Some(info) = CertInfo::of(ck) {
        // A self-signed certificate's far-off expiry is not published as the expiry to watch.
        let t = if info.self_signed { 0 } else { info.not_after };
        metrics
            .cert_not_after
            .store(t, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Background certificate work: ACME issuance and renewal, or watching the PEM files.
pub fn spawn_maintenance(m: Maintenance) {
    publish_expiry(&m.metrics, &m.tls.resolver().current());
    let m = Arc::new(m);
    match m.config.tls.source {
        TlsSource::Acme => acme::spawn(m),
        TlsSource::Files => watch::spawn(m),
        TlsSource::SelfSigned => {}
    }
}

/// SIGHUP: reload the certificate files ("files"), or the stored ACME certificate ("acme",
/// e.g. after restoring a backup into data_dir).
pub fn reload(config: &Config, tls: &TlsService, metrics: &crate::metrics::Metrics) {
    match config.tls.source {
        TlsSource::Files => {
            watch::reload_files(config, tls, metrics, "SIGHUP");
        }
        TlsSource::Acme => {
            if let Some(ck) = acme::Store::new(&config.data_dir.join("tls")).load_cert() {
                install(tls, metrics, ck);
                tracing::info!("SIGHUP: stored ACME certificate reloaded");
            }
        }
        TlsSource::SelfSigned => {}
    }
}
