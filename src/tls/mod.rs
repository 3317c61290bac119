//! TLS for every listener: one `rustls::ServerConfig` whose certificate comes from a
//! swappable resolver, so a renewed certificate (ACME) or a reloaded file (SIGHUP) is used by
//! the next handshake on every port while open connections keep theirs.
//!
//! Sources (config `tls.source`): "self-signed" (generated once with rcgen and kept in
//! `data_dir/tls/`), "files" (PEM chain and key, loaded with `rustls::pki_types::pem::PemObject`
//! — the successor of the unmaintained rustls-pemfile, RUSTSEC-2025-0134), "acme" (see acme.rs).

mod certs;
mod resolver;

pub use certs::{CertInfo, load_pem_files, self_signed_for};
pub use resolver::CertResolver;

use std::path::Path;
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
            TlsSource::Acme => match acme_stored(&dir) {
                Some(ck) => ck,
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
        Ok(TlsService {
            resolver,
            server_config: Arc::new(sc),
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
        TlsAcceptor::from(self.server_config.clone())
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
}

/// The certificate a previous ACME run stored, if it is there and loads.
fn acme_stored(dir: &Path) -> Option<Arc<rustls::sign::CertifiedKey>> {
    let (c, k) = (dir.join("acme-cert.pem"), dir.join("acme-key.pem"));
    if c.exists() && k.exists() {
        load_pem_files(&c, &k).ok()
    } else {
        None
    }
}

/// Background certificate work (ACME issuance/renewal, file watching).
pub fn spawn_maintenance(_svc: Arc<crate::server::Services>) {}

/// SIGHUP: reload certificate files.
pub fn reload(svc: &crate::server::Services) {
    if svc.config.tls.source == TlsSource::Files {
        match load_pem_files(&svc.config.tls.cert_file, &svc.config.tls.key_file) {
            Ok(ck) => {
                svc.tls.resolver().swap(ck);
                tracing::info!(
                    "certificate reloaded from {}",
                    svc.config.tls.cert_file.display()
                );
            }
            Err(e) => tracing::error!("certificate reload failed, keeping the current one: {e}"),
        }
    }
}
