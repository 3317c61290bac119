//! TLS for outbound SMTP. Opportunistic STARTTLS (RFC 3207, RFC 7435): the certificate is
//! checked against the system roots and the MX host name, and the verdict is recorded; when it
//! does not verify the connection stays encrypted and delivery goes on (the log says so),
//! unless a policy (MTA-STS enforce, `[outbound].require_tls`) demands a valid certificate.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use rustls::pki_types::pem::PemObject;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

/// The system's trust anchors plus `[outbound].ca_file` if set, loaded on first use.
pub struct Roots {
    extra_ca: PathBuf,
    loaded: OnceLock<Arc<RootCertStore>>,
}

impl Roots {
    pub fn new(extra_ca: &Path) -> Roots {
        Roots {
            extra_ca: extra_ca.to_path_buf(),
            loaded: OnceLock::new(),
        }
    }

    pub fn get(&self) -> Arc<RootCertStore> {
        self.loaded
            .get_or_init(|| load_roots(&self.extra_ca))
            .clone()
    }
}

fn load_roots(extra_ca: &Path) -> Arc<RootCertStore> {
    let mut store = RootCertStore::empty();
    if !extra_ca.as_os_str().is_empty() {
        match CertificateDer::pem_file_iter(extra_ca) {
            Ok(certs) => {
                for c in certs.flatten() {
                    if let Err(e) = store.add(c) {
                        tracing::warn!("outbound.ca_file {}: {e}", extra_ca.display());
                    }
                }
            }
            Err(e) => tracing::warn!("outbound.ca_file {}: {e}", extra_ca.display()),
        }
    }
    let loaded = rustls_native_certs::load_native_certs();
    for e in &loaded.errors {
        tracing::warn!("loading system CA certificates: {e}");
    }
    let (ok, bad) = store.add_parsable_certificates(loaded.certs);
    if ok == 0 {
        tracing::warn!(
            "no system CA certificates found ({bad} unparsable): outbound TLS cannot be verified"
        );
    }
    Arc::new(store)
}

/// Accepts any certificate but remembers whether WebPKI verification passed.
#[derive(Debug)]
pub struct RecordingVerifier {
    inner: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
    /// None = verified; Some(reason) = it did not.
    failure: Mutex<Option<String>>,
}

impl RecordingVerifier {
    pub fn new(roots: Arc<RootCertStore>) -> Arc<RecordingVerifier> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let inner = if roots.is_empty() {
            None
        } else {
            WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .ok()
        };
        Arc::new(RecordingVerifier {
            inner,
            provider,
            failure: Mutex::new(None),
        })
    }

    /// After the handshake: Ok if the certificate verified, else why not.
    pub fn verdict(&self) -> Result<(), String> {
        match self
            .failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let result = match &self.inner {
            Some(v) => v
                .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
                .map(|_| ())
                .map_err(|e| e.to_string()),
            None => Err("no trusted roots available".to_string()),
        };
        if let Err(e) = result {
            *self.failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
        }
        Ok(ServerCertVerified::assertion())
    }

    // The handshake signatures are always checked: they prove the peer holds the key of the
    // certificate it sent, whatever we think of that certificate.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A client config for one connection, with its verifier to read the verdict from.
pub fn client_config(
    roots: Arc<RootCertStore>,
) -> (Arc<rustls::ClientConfig>, Arc<RecordingVerifier>) {
    let verifier = RecordingVerifier::new(roots);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    (Arc::new(cfg), verifier)
}
