//! Each configured listener, probed locally: connect, TLS where implicit, read the greeting
//! (or GET a page) — and keep the certificate the server presented for the certificate check.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::Outcome;
use crate::config::Config;

pub(super) fn listeners(config: &Config) -> Vec<(&'static str, SocketAddr)> {
    let l = &config.listen;
    let mut v = vec![];
    for (key, addrs) in [
        ("smtp", &l.smtp),
        ("submission", &l.submission),
        ("submissions", &l.submissions),
        ("imap", &l.imap),
        ("imaps", &l.imaps),
        ("managesieve", &l.managesieve),
        ("http", &l.http),
        ("https", &l.https),
        ("metrics", &l.metrics),
    ] {
        for a in addrs {
            v.push((key, *a));
        }
    }
    v
}

/// Where to connect for a listener bound to `addr`: the wildcard becomes loopback.
fn local_target(addr: SocketAddr) -> SocketAddr {
    let mut a = addr;
    match a.ip() {
        IpAddr::V4(v) if v.is_unspecified() => a.set_ip(std::net::Ipv4Addr::LOCALHOST.into()),
        IpAddr::V6(v) if v.is_unspecified() => a.set_ip(std::net::Ipv6Addr::LOCALHOST.into()),
        _ => {}
    }
    a
}

/// Accepts any certificate: the handshake is only a way to fetch what the server presents;
/// `check_certificate` judges it properly afterwards.
#[derive(Debug)]
struct CaptureVerifier(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for CaptureVerifier {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn capture_connector() -> tokio_rustls::TlsConnector {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(CaptureVerifier(provider)))
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

/// The first line the server sends, with a deadline.
async fn greeting<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    wait: Duration,
) -> Result<String, String> {
    let mut r = BufReader::new(s);
    let mut line = String::new();
    match tokio::time::timeout(wait, r.read_line(&mut line)).await {
        Ok(Ok(0)) => Err("closed the connection without a greeting".into()),
        Ok(Ok(_)) => Ok(line.trim_end().to_string()),
        Ok(Err(e)) => Err(format!("read failed: {e}")),
        Err(_) => Err(format!("no greeting within {} s", wait.as_secs())),
    }
}

/// Speak just enough of the protocol to know the service answers.
async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    key: &str,
    wait: Duration,
    host: &str,
) -> Result<String, String> {
    match key {
        "smtp" | "submission" | "submissions" => {
            let g = greeting(s, wait).await?;
            if !g.starts_with("220") {
                return Err(format!("unexpected SMTP greeting {g:?}"));
            }
            let _ = s.write_all(b"QUIT\r\n").await;
            Ok(g)
        }
        "imap" | "imaps" => {
            let g = greeting(s, wait).await?;
            if !g.starts_with("* OK") {
                return Err(format!("unexpected IMAP greeting {g:?}"));
            }
            let _ = s.write_all(b"a LOGOUT\r\n").await;
            Ok(g)
        }
        // RFC 5804 §1.7: the greeting is the capability list, its first line a quoted
        // capability name ("IMPLEMENTATION" for us).
        "managesieve" => {
            let g = greeting(s, wait).await?;
            if !g.starts_with('"') {
                return Err(format!("unexpected ManageSieve greeting {g:?}"));
            }
            let _ = s.write_all(b"LOGOUT\r\n").await;
            Ok(g)
        }
        _ => {
            let path = if key == "metrics" {
                "/metrics"
            } else {
                "/.well-known/mta-sts.txt"
            };
            s.write_all(
                format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await
            .map_err(|e| format!("write failed: {e}"))?;
            let g = greeting(s, wait).await?;
            if g.starts_with("HTTP/1.1 200") || g.starts_with("HTTP/1.0 200") {
                Ok(format!("GET {path}: {g}"))
            } else {
                Err(format!("GET {path} answered {g:?}"))
            }
        }
    }
}

pub(super) async fn probe_listener(
    config: &Config,
    key: &str,
    addr: SocketAddr,
) -> (Outcome, Option<Vec<CertificateDer<'static>>>) {
    let target = local_target(addr);
    let fix = format!(
        "start postern (`systemctl start postern`; see `journalctl -u postern`), or change listen.{key}"
    );
    let wait = Duration::from_secs(10 + config.limits.smtp_greeting_delay_secs);
    let tcp = match tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(target)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return (Err((format!("cannot connect to {target}: {e}"), fix)), None),
        Err(_) => {
            return (
                Err((format!("connecting to {target} timed out"), fix)),
                None,
            );
        }
    };
    let implicit_tls = matches!(key, "submissions" | "imaps" | "https");
    if !implicit_tls {
        let mut tcp = tcp;
        let r = converse(&mut tcp, key, wait, &config.hostname).await;
        return (r.map_err(|p| (p, fix)), None);
    }
    // The HTTPS listener is reached as mta-sts.DOMAIN by senders fetching the policy.
    let sni = if key == "https" {
        format!("mta-sts.{}", config.domain)
    } else {
        config.hostname.clone()
    };
    let name = ServerName::try_from(sni)
        .unwrap_or_else(|_| ServerName::try_from("localhost").expect("static name"));
    let mut tls = match tokio::time::timeout(wait, capture_connector().connect(name, tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            return (
                Err((format!("TLS handshake with {target} failed: {e}"), fix)),
                None,
            );
        }
        Err(_) => {
            return (
                Err((format!("TLS handshake with {target} timed out"), fix)),
                None,
            );
        }
    };
    let certs = tls
        .get_ref()
        .1
        .peer_certificates()
        .map(|c| c.iter().map(|c| c.clone().into_owned()).collect());
    let r = converse(&mut tls, key, wait, &config.hostname).await;
    (r.map(|g| format!("TLS, {g}")).map_err(|p| (p, fix)), certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_becomes_loopback() {
        assert_eq!(
            local_target("[::]:25".parse().unwrap()),
            "[::1]:25".parse().unwrap()
        );
        assert_eq!(
            local_target("0.0.0.0:80".parse().unwrap()),
            "127.0.0.1:80".parse().unwrap()
        );
    }
}
