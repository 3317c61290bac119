//! What ACME keeps in `data_dir/tls/`: the account credentials, the certificate chain with its
//! key, the renewal state the server reports to `postern tls status`, and the renewal request
//! file `postern tls renew` drops for the running server. Secrets are written 0600, every file
//! atomically (temp file, fsync, rename, fsync dir).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::sign::CertifiedKey;
use serde::{Deserialize, Serialize};

use crate::fsutil::write_atomic;
use crate::tls::load_pem_files;

pub const CERT_FILE: &str = "acme-cert.pem";
pub const KEY_FILE: &str = "acme-key.pem";
pub const ACCOUNT_FILE: &str = "acme-account.json";
pub const STATE_FILE: &str = "acme-state.json";
pub const RENEW_REQUEST_FILE: &str = "renew-request";

/// The account as stored: the directory it belongs to and instant-acme's credentials (the
/// account URL and its private key). A changed `tls.acme_directory` means a new account.
#[derive(Serialize, Deserialize)]
pub struct StoredAccount {
    pub directory: String,
    pub credentials: instant_acme::AccountCredentials,
}

/// What the maintenance task last decided, for `postern tls status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Unix time of the next renewal (or issuance) attempt.
    pub next_renewal: Option<i64>,
    /// Why that time: "a third of the lifetime left", "ACME renewal info window", …
    pub reason: String,
    /// The suggested window from ACME renewal information (RFC 9773), if the CA offers it.
    pub ari_window: Option<(i64, i64)>,
    /// Unix time of the last attempt, and its error if it failed.
    pub last_attempt: Option<i64>,
    pub last_error: Option<String>,
    /// The ACME directory that issued the stored certificate (a changed
    /// `tls.acme_directory`, e.g. staging to production, renews at once).
    #[serde(default)]
    pub directory: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn new(dir: &Path) -> Store {
        Store {
            dir: dir.to_path_buf(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The stored certificate, if both files are there and the key matches the chain (a crash
    /// between writing the key and the chain leaves a mismatch: then nothing is stored).
    pub fn load_cert(&self) -> Option<Arc<CertifiedKey>> {
        let (c, k) = (self.path(CERT_FILE), self.path(KEY_FILE));
        if !(c.exists() && k.exists()) {
            return None;
        }
        match load_pem_files(&c, &k) {
            Ok(ck) => Some(ck),
            Err(e) => {
                tracing::warn!("ignoring the stored ACME certificate: {e}");
                None
            }
        }
    }

    pub fn save_cert(&self, chain_pem: &str, key_pem: &str) -> io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        write_atomic(&self.path(KEY_FILE), key_pem.as_bytes(), 0o600)?;
        write_atomic(&self.path(CERT_FILE), chain_pem.as_bytes(), 0o644)
    }

    pub fn load_account(&self) -> Option<StoredAccount> {
        let text = std::fs::read(self.path(ACCOUNT_FILE)).ok()?;
        match serde_json::from_slice(&text) {
            Ok(a) => Some(a),
            Err(e) => {
                tracing::warn!(
                    "ignoring unreadable {}: {e}",
                    self.path(ACCOUNT_FILE).display()
                );
                None
            }
        }
    }

    pub fn save_account(&self, account: &StoredAccount) -> io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let json = serde_json::to_vec_pretty(account).map_err(io::Error::other)?;
        write_atomic(&self.path(ACCOUNT_FILE), &json, 0o600)
    }

    pub fn forget_account(&self) {
        let _ = std::fs::remove_file(self.path(ACCOUNT_FILE));
    }

    pub fn load_state(&self) -> Option<State> {
        let text = std::fs::read(self.path(STATE_FILE)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    pub fn save_state(&self, state: &State) -> io::Result<()> {
        let json = serde_json::to_vec_pretty(state).map_err(io::Error::other)?;
        write_atomic(&self.path(STATE_FILE), &json, 0o644)
    }

    /// `postern tls renew`: ask the running server to renew now.
    pub fn request_renewal(&self) -> io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        write_atomic(&self.path(RENEW_REQUEST_FILE), b"renew\n", 0o600)
    }

    /// Consume a pending renewal request.
    pub fn take_renew_request(&self) -> bool {
        std::fs::remove_file(self.path(RENEW_REQUEST_FILE)).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn key_files_are_private_and_requests_are_consumed_once() {
        crate::tls::install_crypto_provider();
        let d = tempfile::tempdir().unwrap();
        let s = Store::new(d.path());
        assert!(s.load_cert().is_none());
        let g = rcgen::generate_simple_self_signed(vec!["mail.example.test".into()]).unwrap();
        s.save_cert(&g.cert.pem(), &g.signing_key.serialize_pem())
            .unwrap();
        let mode = std::fs::metadata(s.path(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(s.load_cert().is_some());
        // A key that does not match the chain is not a stored certificate.
        let other = rcgen::KeyPair::generate().unwrap();
        s.save_cert(&g.cert.pem(), &other.serialize_pem()).unwrap();
        assert!(s.load_cert().is_none());

        assert!(!s.take_renew_request());
        s.request_renewal().unwrap();
        assert!(s.take_renew_request());
        assert!(!s.take_renew_request());
    }
}
