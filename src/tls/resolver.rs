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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, ServerConnection};

    use super::*;
    use crate::tls::{TlsService, install_crypto_provider, tls_alpn_challenge_cert};

    #[derive(Debug)]
    struct AnyCert;
    impl ServerCertVerifier for AnyCert {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Ok(HandshakeSignatureValid::assertion())
        }
        fn verify_tls13_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Ok(HandshakeSignatureValid::assertion())
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            rustls::crypto::ring::default_provider()
                .signature_verification_algorithms
                .supported_schemes()
        }
    }

    /// An in-memory handshake: the certificate and ALPN protocol the client ends up with.
    fn handshake(
        svc: &TlsService,
        sni: &str,
        alpn: &[&[u8]],
    ) -> Result<(CertificateDer<'static>, Option<Vec<u8>>), rustls::Error> {
        let mut cc = ClientConfig::builder()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCert))
            .with_no_client_auth();
        cc.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let mut client =
            ClientConnection::new(Arc::new(cc), ServerName::try_from(sni.to_string()).unwrap())?;
        let mut server = ServerConnection::new(svc.https_config.clone())?;
        for _ in 0..10 {
            let mut buf = Vec::new();
            client.write_tls(&mut buf).unwrap();
            server.read_tls(&mut &buf[..]).unwrap();
            let served = server.process_new_packets();
            let mut back = Vec::new();
            server.write_tls(&mut back).unwrap();
            client.read_tls(&mut &back[..]).unwrap();
            served?;
            client.process_new_packets()?;
            if !client.is_handshaking() {
                let cert = client.peer_certificates().unwrap()[0].clone().into_owned();
                return Ok((cert, client.alpn_protocol().map(|p| p.to_vec())));
            }
        }
        panic!("handshake did not finish");
    }

    #[test]
    fn acme_tls_alpn_gets_the_challenge_certificate_only_for_pending_names() {
        install_crypto_provider();
        let d = tempfile::tempdir().unwrap();
        let cfg = crate::config::Config::parse(
            &format!(
                "domain='example.test'\nhostname='mail.example.test'\ndata_dir='{}'\n[tls]\nsource='self-signed'\n",
                d.path().display()
            ),
            std::path::Path::new("t.toml"),
        )
        .unwrap();
        let svc = TlsService::start(&cfg).unwrap();
        let normal = svc.resolver().current().cert[0].clone();

        // Ordinary clients: the shared certificate, HTTP/1.1.
        let (c, p) = handshake(&svc, "mail.example.test", &[b"h2", b"http/1.1"]).unwrap();
        assert_eq!(c, normal);
        assert_eq!(p.as_deref(), Some(&b"http/1.1"[..]));

        // acme-tls/1 without a pending challenge: no certificate to give.
        assert!(handshake(&svc, "mail.example.test", &[ACME_TLS_ALPN]).is_err());

        let ck = tls_alpn_challenge_cert("mail.example.test", &[7u8; 32]).unwrap();
        svc.set_alpn_challenge("Mail.Example.Test", Some(ck.clone()));
        let (c, p) = handshake(&svc, "mail.example.test", &[ACME_TLS_ALPN]).unwrap();
        assert_eq!(c, ck.cert[0]);
        assert_eq!(p.as_deref(), Some(ACME_TLS_ALPN));
        // RFC 8737 §3: the acmeIdentifier extension is critical and holds the digest.
        let (_, x) = x509_parser::parse_x509_certificate(c.as_ref()).unwrap();
        let ext = x
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.31")
            .expect("acmeIdentifier extension");
        assert!(ext.critical);
        assert!(ext.value.ends_with(&[7u8; 32]));
        // Other names and ordinary clients are unaffected.
        assert!(handshake(&svc, "other.example.test", &[ACME_TLS_ALPN]).is_err());
        assert_eq!(handshake(&svc, "mail.example.test", &[]).unwrap().0, normal);

        svc.set_alpn_challenge("mail.example.test", None);
        assert!(handshake(&svc, "mail.example.test", &[ACME_TLS_ALPN]).is_err());
    }
}
