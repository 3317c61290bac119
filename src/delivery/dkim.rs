//! DKIM signing (RFC 6376) of mail leaving the domain, with the key(s) in `data_dir/dkim/`.
//!
//! Keys: `rsa.pem` (RSA-2048, PKCS#1 PEM) under selector `[dkim].selector`, and, when
//! `[dkim].ed25519` is on, `ed25519.pem` (PKCS#8 PEM, RFC 8463) under `SELECTOR-ed`.
//! Both files are mode 0600. Parsed keys are cached per data dir, so signing a message never
//! touches the disk.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::generate::DkimKeyPair;
use mail_auth::dkim::{Canonicalization, DkimSigner, Done};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer};

#[derive(Debug, thiserror::Error)]
#[error("DKIM: {0}")]
pub struct DkimError(pub String);

/// Headers we sign. Those in `OVERSIGNED` are listed once more than they occur, so a header
/// of that name added later in transit breaks the signature (RFC 6376 §8.15, "oversigning").
const SIGNED: &[&str] = &[
    "From",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
];
const OVERSIGNED: &[&str] = &[
    "From",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
];

fn dkim_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("dkim")
}

fn rsa_path(data_dir: &Path) -> PathBuf {
    dkim_dir(data_dir).join("rsa.pem")
}

/// The RSA key file every instance has (`init` creates it); the CLI checks for it.
pub fn rsa_key_path(data_dir: &Path) -> PathBuf {
    rsa_path(data_dir)
}

fn ed_path(data_dir: &Path) -> PathBuf {
    dkim_dir(data_dir).join("ed25519.pem")
}

/// The selector of the Ed25519 key: a second record beside the RSA one.
pub fn ed25519_selector(selector: &str) -> String {
    format!("{selector}-ed")
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = B64.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Write a new key file unless one exists: temp file, fsync, then hard-link into place, which
/// fails if another process (server and `postern sendmail` at once) created it first. The
/// first key stays, so no two processes ever sign with different keys.
fn create_key_file(path: &Path, pem: &str) -> std::io::Result<()> {
    match crate::fsutil::Durable::new(path)
        .no_replace()
        .write(pem.as_bytes())
    {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        r => r,
    }
}

/// Create the DKIM key(s) in `data_dir/dkim/` if missing (called by `init` and `dev`).
pub fn ensure_keys(config: &crate::config::Config) -> Result<(), DkimError> {
    let dir = dkim_dir(&config.data_dir);
    std::fs::create_dir_all(&dir)
        .map_err(|e| DkimError(format!("cannot create {}: {e}", dir.display())))?;
    let rsa = rsa_path(&config.data_dir);
    if !rsa.exists() {
        let pair = DkimKeyPair::generate_rsa(2048)
            .map_err(|e| DkimError(format!("RSA key generation failed: {e}")))?;
        create_key_file(&rsa, &pem("RSA PRIVATE KEY", pair.private_key()))
            .map_err(|e| DkimError(format!("cannot write {}: {e}", rsa.display())))?;
        tracing::info!("created DKIM RSA-2048 key {}", rsa.display());
    }
    let ed = ed_path(&config.data_dir);
    if config.dkim.ed25519 && !ed.exists() {
        let pair = DkimKeyPair::generate_ed25519()
            .map_err(|e| DkimError(format!("Ed25519 key generation failed: {e}")))?;
        create_key_file(&ed, &pem("PRIVATE KEY", pair.private_key()))
            .map_err(|e| DkimError(format!("cannot write {}: {e}", ed.display())))?;
        tracing::info!("created DKIM Ed25519 key {}", ed.display());
    }
    Ok(())
}

/// Ready signers (parsed keys) of one data dir, and their public keys.
struct Keys {
    rsa: DkimSigner<RsaKey<Sha256>, Done>,
    rsa_public: Vec<u8>,
    ed: Option<DkimSigner<Ed25519Key, Done>>,
    ed_public: Option<Vec<u8>>,
}

fn signer<T: mail_auth::common::crypto::SigningKey>(
    key: T,
    domain: &str,
    selector: String,
) -> DkimSigner<T, Done> {
    DkimSigner::from_key(key)
        .domain(domain.to_string())
        .selector(selector)
        .headers(header_list())
        .header_canonicalization(Canonicalization::Relaxed)
        .body_canonicalization(Canonicalization::Relaxed)
}

fn load_keys(config: &crate::config::Config) -> Result<Keys, DkimError> {
    let rsa_file = rsa_path(&config.data_dir);
    let rsa_der = PrivatePkcs1KeyDer::from_pem_file(&rsa_file).map_err(|e| {
        DkimError(format!(
            "cannot read DKIM key {}: {e} (run `postern init` or check permissions)",
            rsa_file.display()
        ))
    })?;
    let rsa = RsaKey::<Sha256>::from_key_der(PrivateKeyDer::Pkcs1(rsa_der))
        .map_err(|e| DkimError(format!("bad DKIM key {}: {e}", rsa_file.display())))?;
    let rsa_public = rsa.public_key();
    let ed = if config.dkim.ed25519 {
        let ed_file = ed_path(&config.data_dir);
        match PrivatePkcs8KeyDer::from_pem_file(&ed_file) {
            Ok(der) => Some(
                Ed25519Key::from_pkcs8_der(der.secret_pkcs8_der())
                    .map_err(|e| DkimError(format!("bad DKIM key {}: {e}", ed_file.display())))?,
            ),
            Err(e) => {
                tracing::warn!(
                    "no Ed25519 DKIM key at {} ({e}); signing with RSA only",
                    ed_file.display()
                );
                None
            }
        }
    } else {
        None
    };
    let ed_public = ed.as_ref().map(|k| k.public_key());
    Ok(Keys {
        rsa: signer(rsa, &config.domain, config.dkim.selector.clone()),
        rsa_public,
        ed: ed.map(|k| signer(k, &config.domain, ed25519_selector(&config.dkim.selector))),
        ed_public,
    })
}

/// The signing keys, loaded (or created) on first use and kept for the server's life.
#[derive(Default)]
pub struct KeyCache {
    keys: Mutex<Option<Arc<Keys>>>,
}

impl KeyCache {
    fn get(&self, config: &crate::config::Config) -> Result<Arc<Keys>, DkimError> {
        let mut slot = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(k) = slot.as_ref() {
            return Ok(k.clone());
        }
        // A server started on a data dir without keys (config written by hand) creates them once.
        ensure_keys(config)?;
        let keys = Arc::new(load_keys(config)?);
        *slot = Some(keys.clone());
        Ok(keys)
    }

    /// Create (if needed) and load the keys now, so the first message signed does not wait.
    pub fn warm_up(&self, config: &crate::config::Config) -> Result<(), DkimError> {
        self.get(config).map(|_| ())
    }

    /// The DKIM-Signature header line(s) (CRLF-terminated) to prepend to `message`.
    pub fn sign(
        &self,
        config: &crate::config::Config,
        message: &[u8],
    ) -> Result<String, DkimError> {
        self.sign_parts(config, &[message])
    }

    /// The DKIM-Signature header line(s) for a message on its way to the queue: our header
    /// lines and the mapped spool file, never copied into one buffer.
    pub fn sign_outgoing(
        &self,
        config: &crate::config::Config,
        message: &crate::spool::Outgoing,
    ) -> Result<String, DkimError> {
        // An empty part (no prefix) would end mail-auth's header walk early.
        let parts: Vec<&[u8]> = message
            .parts()
            .into_iter()
            .filter(|p| !p.is_empty())
            .collect();
        self.sign_parts(config, &parts)
    }

    /// `sign` for a message given as consecutive parts. Each part but the last holds whole
    /// header fields only (mail-auth reads the body from the last part).
    fn sign_parts(
        &self,
        config: &crate::config::Config,
        parts: &[&[u8]],
    ) -> Result<String, DkimError> {
        let keys = self.get(config)?;
        let mut out = String::new();
        // Ed25519 first, RSA on top: receivers that do not know ed25519-sha256 ignore it
        // (RFC 8463).
        if let Some(ed) = &keys.ed {
            let sig = ed
                .sign_chained(parts.iter().copied())
                .map_err(|e| DkimError(format!("Ed25519 signing failed: {e}")))?;
            out.push_str(&sig.to_header());
        }
        let sig = keys
            .rsa
            .sign_chained(parts.iter().copied())
            .map_err(|e| DkimError(format!("RSA signing failed: {e}")))?;
        Ok(sig.to_header() + &out)
    }
}

fn header_list() -> Vec<String> {
    SIGNED
        .iter()
        .chain(OVERSIGNED.iter())
        .map(|s| s.to_string())
        .collect()
}

/// DER of `SubjectPublicKeyInfo` for an RSA key given as PKCS#1 `RSAPublicKey`: the form
/// DKIM's `p=` carries (RFC 6376 §3.6.1 and common practice, `openssl rsa -pubout`).
fn rsa_spki(pkcs1: &[u8]) -> Vec<u8> {
    fn der_len(n: usize, out: &mut Vec<u8>) {
        if n < 0x80 {
            out.push(n as u8);
        } else {
            let bytes = n.to_be_bytes();
            let skip = bytes.iter().take_while(|&&b| b == 0).count();
            out.push(0x80 | (bytes.len() - skip) as u8);
            out.extend_from_slice(&bytes[skip..]);
        }
    }
    // AlgorithmIdentifier { rsaEncryption, NULL }
    const ALG: &[u8] = &[
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut bit = vec![0x03];
    der_len(pkcs1.len() + 1, &mut bit);
    bit.push(0);
    bit.extend_from_slice(pkcs1);
    let mut out = vec![0x30];
    der_len(ALG.len() + bit.len(), &mut out);
    out.extend_from_slice(ALG);
    out.extend_from_slice(&bit);
    out
}

/// The DNS records to publish for the key(s): (owner name, TXT value), e.g.
/// ("postern._domainkey.example.com", "v=DKIM1; k=rsa; p=...").
///
/// Reads the keys; never creates one (a new key would not be the one a running server signs
/// with, and `postern dns` would print a record that breaks DKIM).
pub fn dns_records(config: &crate::config::Config) -> Result<Vec<(String, String)>, DkimError> {
    let keys = load_keys(config)?;
    let mut out = vec![(
        format!("{}._domainkey.{}", config.dkim.selector, config.domain),
        format!(
            "v=DKIM1; k=rsa; p={}",
            B64.encode(rsa_spki(&keys.rsa_public))
        ),
    )];
    if let Some(ed) = &keys.ed_public {
        out.push((
            format!(
                "{}._domainkey.{}",
                ed25519_selector(&config.dkim.selector),
                config.domain
            ),
            format!("v=DKIM1; k=ed25519; p={}", B64.encode(ed)),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path) -> crate::config::Config {
        let text = format!(
            "domain = \"example.test\"\nhostname = \"mail.example.test\"\ndata_dir = \"{}\"\n",
            dir.display()
        );
        crate::config::Config::parse(&text, Path::new("t.toml")).unwrap()
    }

    #[test]
    fn keys_sign_and_records() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let cfg = config(d.path());
        ensure_keys(&cfg).unwrap();
        let mode = std::fs::metadata(rsa_path(d.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let msg = b"From: a@example.test\r\nTo: b@remote.test\r\nSubject: hi\r\n\r\nbody\r\n";
        let h = KeyCache::default().sign(&cfg, msg).unwrap();
        assert_eq!(h.matches("DKIM-Signature:").count(), 2);
        assert!(h.contains("s=postern;"));
        assert!(h.contains("s=postern-ed;"));
        assert!(h.contains("c=relaxed/relaxed"));
        // From is present once and listed twice: oversigned.
        let rsa_line = h.split("DKIM-Signature:").nth(1).unwrap();
        let hval: String = rsa_line
            .split("h=")
            .nth(1)
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .split_whitespace()
            .collect();
        assert_eq!(
            hval.split(':')
                .filter(|n| n.eq_ignore_ascii_case("from"))
                .count(),
            2
        );
        let recs = dns_records(&cfg).unwrap();
        assert_eq!(recs[0].0, "postern._domainkey.example.test");
        assert!(recs[0].1.starts_with("v=DKIM1; k=rsa; p=MII"));
        assert!(recs[1].1.starts_with("v=DKIM1; k=ed25519; p="));
    }

    #[test]
    fn spki_wraps_pkcs1() {
        let spki = rsa_spki(&[0x30, 0x03, 0x02, 0x01, 0x05]);
        assert_eq!(spki[0], 0x30);
        assert_eq!(spki[1] as usize, spki.len() - 2);
    }
}
