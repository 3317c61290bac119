//! The async-imap crate (a Rust IMAP client) against the real binary over implicit TLS that
//! verifies the server's self-signed certificate.
mod common;

use common::*;
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;

const USER: &str = "carol@example.test";
const PASS: &str = "carols password";

async fn connect(
    p: &Postern,
) -> async_imap::Client<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(p.self_signed_cert()).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let cfg = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", p.ports.imaps))
        .await
        .unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let mut c = async_imap::Client::new(tls);
    c.read_response().await.unwrap().unwrap();
    c
}

#[test]
fn async_imap_client() {
    let p = Postern::start();
    p.add_user(USER, PASS);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = connect(&p).await;
        let mut s = c.login(USER, PASS).await.map_err(|e| e.0).unwrap();
        let caps = s.capabilities().await.unwrap();
        assert!(caps.has_str("IDLE") && caps.has_str("MOVE") && caps.has_str("UIDPLUS"));
        let names: Vec<String> = s
            .list(Some(""), Some("*"))
            .await
            .unwrap()
            .map(|n| n.unwrap().name().to_string())
            .collect()
            .await;
        assert!(names.contains(&"INBOX".to_string()) && names.contains(&"Trash".to_string()));
        let raw = b"From: carol@example.test\r\nSubject: rust client\r\n\r\nbody text\r\n";
        s.append("INBOX", Some("(\\Seen)"), None, raw)
            .await
            .unwrap();
        let mb = s.select("INBOX").await.unwrap();
        assert_eq!(mb.exists, 1);
        let msgs: Vec<_> = s
            .uid_fetch("1:*", "(UID FLAGS BODY.PEEK[] ENVELOPE)")
            .await
            .unwrap()
            .collect()
            .await;
        let m = msgs[0].as_ref().unwrap();
        assert_eq!(m.body().unwrap(), raw);
        assert_eq!(
            m.envelope().unwrap().subject.as_deref(),
            Some(&b"rust client"[..])
        );
        let _: Vec<_> = s
            .store("1", "+FLAGS (\\Flagged)")
            .await
            .unwrap()
            .collect()
            .await;
        let found = s.uid_search("FLAGGED SUBJECT \"rust\"").await.unwrap();
        assert_eq!(found.len(), 1);
        s.mv("1", "Archive").await.unwrap();
        let st = s.status("Archive", "(MESSAGES)").await.unwrap();
        assert_eq!(st.exists, 1);
        // IDLE: a delivery by another process (Store::deliver in this test process, so only
        // the server's poll of new/ can see it) is pushed.
        let mut idle = s.idle();
        idle.init().await.unwrap();
        let data = p.data_dir();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(500));
            postern::store::Store::new(&data)
                .deliver(
                    USER,
                    postern::store::Folder::Inbox,
                    b"Subject: pushed\r\n\r\nx\r\n",
                )
                .unwrap();
        });
        let (fut, _stop) = idle.wait_with_timeout(Duration::from_secs(20));
        let r = fut.await.unwrap();
        assert!(
            matches!(r, async_imap::extensions::idle::IdleResponse::NewData(_)),
            "{r:?}"
        );
        let mut s = idle.done().await.unwrap();
        s.logout().await.unwrap();
    });
}
