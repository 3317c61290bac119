//! Certificate resolvers. `CertResolver` holds the certificate every listener serves and can be
//! replaced at any time: rustls asks it once per handshake, so a swap reaches new connections
//! only while established sessions keep theirs. `HttpsResolver` wraps it for the HTTPS listener
//! and answers ACME TLS-ALPN-01 validation handshakes (RFC 8737) with the challenge certificate.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// The ALPN protocol id of TLS-ALPN-01 validations (RFC 8737 §6.2).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

#[derive(Debug)]
pub struct CertResolver {
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertResolver {
    pub fn new(initial: Arc<CertifiedKey>) -> CertResolver {
        CertResolver {
            current: RwLock::new(initial),
        }
    }

    /// Serve `ck` from the next handshake on.
    pub fn swap(&self, ck: Arc<CertifiedKey>) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = ck;
    }

    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// TLS-ALPN-01 challenge certificates being offered, by lower-case DNS name.
pub type ChallengeCerts = RwLock<HashMap<String, Arc<CertifiedKey>>>;

/// The HTTPS listener's resolver: the shared certificate, except for `acme-tls/1` handshakes.
#[derive(Debug)]
pub struct HttpsResolver {
    pub certs: Arc<CertResolver>,
    pub challenges: Arc<ChallengeCerts>,
}

impl ResolvesServerCert for HttpsResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let acme = hello
            .alpn()
            .is_some_and(|mut protos| protos.any(|p| p == ACME_TLS_ALPN));
        if !acme {
            return self.certs.resolve(hello);
        }
        // RFC 8737 §3: the validation handshake names the identifier in SNI and must get the
        // self-signed certificate carrying the acmeIdentifier extension; with no challenge
        // pending for that name there is nothing valid to answer, so the handshake fails.
        let name = hello.server_name()?.to_ascii_lowercase();
        self.challenges
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&name)
            .cloned()
    }
}
