//! A `ResolvesServerCert` whose certificate can be replaced at any time. rustls asks it once per
//! handshake, so a swap reaches new connections only; established sessions are untouched.

use std::sync::{Arc, RwLock};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

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
