//! Helpers for the ACME and TLS tests: a private Pebble (test ACME CA) with its own DNS
//! (pebble-challtestsrv answering 127.0.0.1 for every name), and a TLS probe that reports the
//! certificate a port serves and keeps the connection for later use.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};

use crate::common::{Postern, free_port};

pub struct Pebble {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub mgmt: u16,
    children: Vec<Child>,
}

/// A CA and a certificate for localhost/127.0.0.1 signed by it, for Pebble's own HTTPS API.
pub fn make_api_cert(dir: &Path) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "postern test API CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    leaf.subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(dir.join("api-cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("api-key.pem"), key.serialize_pem()).unwrap();
}

impl Pebble {
    /// Start Pebble validating HTTP-01 on `http_port` and TLS-ALPN-01 on `tls_port`.
    pub fn start(http_port: u16, tls_port: u16) -> Pebble {
        crate::common::peers::pebble().essential();
        let dir = tempfile::tempdir().unwrap();
        make_api_cert(dir.path());
        let (port, mgmt, dns, dns_mgmt) = (free_port(), free_port(), free_port(), free_port());
        let config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{port}"),
            "managementListenAddress": format!("127.0.0.1:{mgmt}"),
            "certificate": dir.path().join("api-cert.pem"),
            "privateKey": dir.path().join("api-key.pem"),
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        }});
        std::fs::write(dir.path().join("pebble.json"), config.to_string()).unwrap();
        let log = |name: &str| Stdio::from(std::fs::File::create(dir.path().join(name)).unwrap());
        let dns_srv = Command::new("pebble-challtestsrv")
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .args(["-dns01", &format!("127.0.0.1:{dns}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &format!("127.0.0.1:{dns_mgmt}")])
            .stdout(log("challtestsrv.log"))
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble-challtestsrv (Debian package pebble)");
        let pebble = Command::new("pebble")
            .arg("-config")
            .arg(dir.path().join("pebble.json"))
            .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            // Every order proves control again, so each issuance exercises the challenge.
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdout(log("pebble.log"))
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble (Debian package pebble)");
        let p = Pebble {
            dir,
            port,
            mgmt,
            children: vec![dns_srv, pebble],
        };
        for port in [port, mgmt, dns_mgmt] {
            let deadline = Instant::now() + Duration::from_secs(20);
            while TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "pebble did not start: {}",
                    p.log()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        p
    }

    pub fn directory(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.port)
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pebble.log")).unwrap_or_default()
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Restart `p` with `tls` as its [tls] section and an HTTPS listener on `https`. The harness
/// writes [listen] itself and puts [tls] right after its keys, so the `https` line written
/// before the [tls] header lands in [listen].
pub fn respawn_with_tls(p: &mut Postern, https: u16, tls: &str) {
    respawn_with(p, &format!("https = [\"127.0.0.1:{https}\"]\n"), tls);
    p.wait_port(https);
}

/// Like `respawn_with_tls`, with any extra [listen] lines.
pub fn respawn_with(p: &mut Postern, listen: &str, tls: &str) {
    p.stop();
    let text = std::fs::read_to_string(&p.config).unwrap();
    let text = text.replacen(
        "[tls]\nsource = \"self-signed\"\n",
        &format!("{listen}{tls}\n"),
        1,
    );
    assert!(text.contains(tls), "harness config layout changed:\n{text}");
    std::fs::write(&p.config, text).unwrap();
    spawn_again(p);
}

/// Start the stopped server again. While it was down, a client socket elsewhere on the
/// machine may have been given one of its ports as an ephemeral port; such a connection is
/// short-lived, so a bind failure is retried a few times before it counts.
pub fn spawn_again(p: &mut Postern) {
    for attempt in 1.. {
        let before = p.log().matches("Address already in use").count();
        let Err(e) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| p.spawn())) else {
            return;
        };
        // Let the log reader catch up with the exited process's last line.
        std::thread::sleep(Duration::from_millis(500));
        let in_use = p.log().matches("Address already in use").count() > before;
        if attempt >= 5 || !in_use {
            std::panic::resume_unwind(e);
        }
    }
}

/// The ACME [tls] section for `pebble`.
pub fn acme_tls(pebble: &Pebble, challenge: &str) -> String {
    format!(
        "[tls]\nsource = \"acme\"\nacme_directory = \"{}\"\nacme_ca_file = \"{}\"\n\
         acme_contact = \"mailto:postmaster@example.test\"\n\
         acme_extra_names = [\"mta-sts.example.test\"]\nacme_challenge = \"{challenge}\"",
        pebble.directory(),
        pebble.ca_file().display()
    )
}

/// Accepts any certificate: the tests look at what is served, not whether it chains.
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
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// What a TLS port served.
#[derive(Debug, Clone, PartialEq)]
pub struct Served {
    pub serial: String,
    pub issuer: String,
    pub names: Vec<String>,
    pub not_after: i64,
}

fn served(der: &CertificateDer<'_>) -> Served {
    let (_, x) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
    let names = x
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|s| {
            s.value
                .general_names
                .iter()
                .filter_map(|g| match g {
                    x509_parser::extensions::GeneralName::DNSName(n) => Some(n.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Served {
        serial: x.raw_serial_as_string(),
        issuer: x.issuer().to_string(),
        names,
        not_after: x.validity().not_after.timestamp(),
    }
}

pub type Tls = StreamOwned<ClientConnection, TcpStream>;

/// Handshake with implicit TLS on `port` (SNI mail.example.test) and keep the connection.
pub fn tls_open(port: u16) -> (Tls, Served) {
    let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    tls_over(sock)
}

/// Handshake over an already connected socket (after STARTTLS, or for implicit TLS).
pub fn tls_over(sock: TcpStream) -> (Tls, Served) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut cfg = ClientConfig::builder()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert))
        .with_no_client_auth();
    cfg.alpn_protocols = vec![];
    let name = ServerName::try_from("mail.example.test").unwrap();
    let conn = ClientConnection::new(Arc::new(cfg), name).unwrap();
    let mut tls = StreamOwned::new(conn, sock);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).unwrap();
    }
    let s = served(&tls.conn.peer_certificates().unwrap()[0]);
    (tls, s)
}

/// The certificate `port` serves to a new connection.
pub fn serving(port: u16) -> Served {
    tls_open(port).1
}

/// Poll until `port` serves a certificate for which `pred` holds.
pub fn wait_serving(port: u16, what: &str, pred: impl Fn(&Served) -> bool) -> Served {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = serving(port);
        if pred(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "port {port} never served {what}; last {s:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One HTTP/1.1 request on a kept-alive TLS connection; returns the status line.
pub fn http_get(tls: &mut Tls, path: &str) -> String {
    write!(
        tls,
        "GET {path} HTTP/1.1\r\nHost: mail.example.test\r\nConnection: keep-alive\r\n\r\n"
    )
    .unwrap();
    tls.flush().unwrap();
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    // Read the head, then the body by Content-Length, so the connection stays reusable.
    while !buf.ends_with(b"\r\n\r\n") {
        assert_eq!(tls.read(&mut byte).unwrap(), 1, "connection closed");
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    tls.read_exact(&mut body).unwrap();
    head.lines().next().unwrap_or_default().to_string()
}

/// The certificate an open connection was given.
pub fn served_on(tls: &Tls) -> Served {
    served(&tls.conn.peer_certificates().unwrap()[0])
}
