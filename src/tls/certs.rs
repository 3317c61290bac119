//! Loading and making certificates.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use super::TlsError;
use crate::fsutil::write_atomic;

/// Load a PEM chain and key into a `CertifiedKey` (uses `PemObject`, not rustls-pemfile).
pub fn load_pem_files(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, TlsError> {
    let ferr = |p: &Path, m: String| TlsError::File {
        path: p.display().to_string(),
        message: m,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| ferr(cert, format!("cannot read certificate chain: {e}")))?
        .collect::<Result<_, _>>()
        .map_err(|e| ferr(cert, format!("bad PEM certificate: {e}")))?;
    if chain.is_empty() {
        return Err(ferr(cert, "no CERTIFICATE block found".into()));
    }
    let key_der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| ferr(key, format!("cannot read private key: {e}")))?;
    certified_key(chain, key_der)
        .map_err(|e| ferr(key, format!("key unusable with certificate: {e}")))
}

/// Build a `CertifiedKey` from DER parts with the process crypto provider.
pub fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<CertifiedKey>, rustls::Error> {
    let provider = rustls::crypto::ring::default_provider();
    let ck = CertifiedKey::from_der(chain, key, &provider)?;
    Ok(Arc::new(ck))
}

/// The self-signed certificate for `hostname` kept in `dir`, generated on first use.
pub fn self_signed_for(dir: &Path, hostname: &str) -> Result<Arc<CertifiedKey>, TlsError> {
    let (c, k) = (
        dir.join("self-signed-cert.pem"),
        dir.join("self-signed-key.pem"),
    );
    if c.exists()
        && k.exists()
        && let Ok(ck) = load_pem_files(&c, &k)
    {
        return Ok(ck);
    }
    let mut names = vec![hostname.to_string()];
    if hostname != "localhost" {
        names.push("localhost".into());
    }
    // Clients pointed at 127.0.0.1 (`postern dev`, the README) check an IP SAN, not a name
    // (RFC 6125 §1.7.2); rcgen makes these strings iPAddress entries.
    names.extend(["127.0.0.1".to_string(), "::1".to_string()]);
    let generated =
        rcgen::generate_simple_self_signed(names).map_err(|e| TlsError::Generate(e.to_string()))?;
    write_atomic(&k, generated.signing_key.serialize_pem().as_bytes(), 0o600)?;
    write_atomic(&c, generated.cert.pem().as_bytes(), 0o644)?;
    load_pem_files(&c, &k)
}

/// The TLS-ALPN-01 validation certificate for `name` (RFC 8737 §3): self-signed, the name as
/// its only SAN, and the critical acmeIdentifier extension holding SHA-256 of the key
/// authorization. Built with `CertifiedKey::new` because rustls' own parsing (`from_der`,
/// `with_single_cert`) rejects the unknown critical extension.
pub fn tls_alpn_challenge_cert(name: &str, digest: &[u8]) -> Result<Arc<CertifiedKey>, TlsError> {
    let gen_err = |e: rcgen::Error| TlsError::Generate(e.to_string());
    let mut params = rcgen::CertificateParams::new(vec![name.to_string()]).map_err(gen_err)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let key = rcgen::KeyPair::generate().map_err(gen_err)?;
    let cert = params.self_signed(&key).map_err(gen_err)?;
    let key_der = PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let signing = rustls::crypto::ring::default_provider()
        .key_provider
        .load_private_key(key_der)?;
    Ok(Arc::new(CertifiedKey::new(
        vec![cert.der().clone()],
        signing,
    )))
}

/// What `postern tls status` / `postern check` report about a certificate.
#[derive(Debug, Clone)]
pub struct CertInfo {
    pub names: Vec<String>,
    pub issuer: String,
    pub serial: String,
    pub not_before: i64,
    pub not_after: i64,
    /// Issuer and subject are the same name: self-signed (the stand-in, `postern dev`).
    pub self_signed: bool,
}

impl CertInfo {
    pub fn of(ck: &CertifiedKey) -> Option<CertInfo> {
        let der = ck.cert.first()?;
        let (_, x) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
        let names = x
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|san| {
                san.value
                    .general_names
                    .iter()
                    .filter_map(|g| match g {
                        x509_parser::extensions::GeneralName::DNSName(n) => Some(n.to_string()),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some(CertInfo {
            names,
            issuer: x.issuer().to_string(),
            serial: x.raw_serial_as_string(),
            not_before: x.validity().not_before.timestamp(),
            not_after: x.validity().not_after.timestamp(),
            self_signed: x.issuer().as_raw() == x.subject().as_raw(),
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn self_signed_is_kept() {
        super::super::install_crypto_provider();
        let d = tempfile::tempdir().unwrap();
        let a = super::self_signed_for(d.path(), "mail.example.com").unwrap();
        let b = super::self_signed_for(d.path(), "mail.example.com").unwrap();
        assert_eq!(a.cert[0], b.cert[0]);
        let info = super::CertInfo::of(&a).unwrap();
        assert!(info.names.contains(&"mail.example.com".to_string()));
    }

    #[test]
    fn self_signed_covers_the_loopback_addresses() {
        use x509_parser::extensions::GeneralName;
        super::super::install_crypto_provider();
        let d = tempfile::tempdir().unwrap();
        let ck = super::self_signed_for(d.path(), "localhost").unwrap();
        let (_, x) = x509_parser::parse_x509_certificate(ck.cert[0].as_ref()).unwrap();
        let san = x.subject_alternative_name().unwrap().unwrap();
        let ips: Vec<&[u8]> = san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::IPAddress(b) => Some(*b),
                _ => None,
            })
            .collect();
        assert!(ips.contains(&&[127u8, 0, 0, 1][..]), "{ips:?}");
        assert!(ips.iter().any(|b| b.len() == 16), "{ips:?}");
    }
}
