//! `tls.source = "files"` (certbot-style PEM files): the certificate is reloaded when the
//! files change on disk and on SIGHUP; a broken file is logged and the current one keeps
//! serving.

mod acme_support;
mod common;

use std::path::Path;
use std::time::Duration;

use acme_support::*;
use common::*;

/// Write a fresh self-signed certificate for mail.example.test the way certbot does: new
/// files renamed over the old ones, key first. Returns its serial as the probe shows it.
fn write_pair(dir: &Path) -> String {
    let g = rcgen::generate_simple_self_signed(vec!["mail.example.test".to_string()]).unwrap();
    for (name, data) in [
        ("key.pem", g.signing_key.serialize_pem()),
        ("cert.pem", g.cert.pem()),
    ] {
        let tmp = dir.join(format!("{name}.new"));
        std::fs::write(&tmp, data).unwrap();
        std::fs::rename(&tmp, dir.join(name)).unwrap();
    }
    let (_, x) = x509_parser::parse_x509_certificate(g.cert.der()).unwrap();
    x.raw_serial_as_string()
}

/// Replace both files in place with a new pair of exactly the same sizes, then put their
/// modification times back: the metadata the watcher compares stays the same.
fn rewrite_unnoticed(dir: &Path) -> String {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let old = |p: &Path| std::fs::metadata(p).unwrap();
    let (cm, km) = (old(&cert), old(&key));
    for _ in 0..500 {
        let g = rcgen::generate_simple_self_signed(vec!["mail.example.test".to_string()]).unwrap();
        let (c, k) = (g.cert.pem(), g.signing_key.serialize_pem());
        if c.len() as u64 != cm.len() || k.len() as u64 != km.len() {
            continue;
        }
        for (path, data, meta) in [(&key, &k, &km), (&cert, &c, &cm)] {
            let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
            std::io::Write::write_all(&mut f, data.as_bytes()).unwrap();
            f.set_modified(meta.modified().unwrap()).unwrap();
        }
        let (_, x) = x509_parser::parse_x509_certificate(g.cert.der()).unwrap();
        return x.raw_serial_as_string();
    }
    panic!("no certificate of the same size in 500 tries");
}

#[test]
fn files_reload_on_change_and_sighup_and_survive_a_bad_file() {
    let mut p = Postern::start();
    let certs = tempfile::tempdir().unwrap();
    let first = write_pair(certs.path());
    let https = free_port();
    let tls = format!(
        "[tls]\nsource = \"files\"\ncert_file = \"{}\"\nkey_file = \"{}\"",
        certs.path().join("cert.pem").display(),
        certs.path().join("key.pem").display()
    );
    respawn_with_tls(&mut p, https, &tls);
    assert_eq!(serving(https).serial, first);
    let (mut old, _) = tls_open(https);

    // Changed on disk: picked up without a signal.
    let second = write_pair(certs.path());
    wait_serving(https, "the replaced files", |s| s.serial == second);
    // The log line may trail the swap that wait_serving saw (and the stderr reader thread).
    assert!(
        p.wait_log("(file changed)", Duration::from_secs(10)),
        "{}",
        p.log()
    );
    assert!(http_get(&mut old, "/mail/config-v1.1.xml").starts_with("HTTP/1.1 "));

    // SIGHUP reloads too: files rewritten in place with their old size and mtime, so the
    // watcher sees no change and only the signal can make the new certificate serve.
    let hidden = rewrite_unnoticed(certs.path());
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        serving(https).serial,
        second,
        "the watcher must not have noticed"
    );
    p.signal(1);
    wait_serving(https, "the certificate loaded on SIGHUP", |s| {
        s.serial == hidden
    });
    assert!(
        p.wait_log(
            &format!("(SIGHUP): serial {hidden}"),
            Duration::from_secs(10)
        ),
        "{}",
        p.log()
    );
    let second = hidden;

    // A broken chain is reported and the current certificate stays.
    std::fs::write(certs.path().join("cert.pem"), "not a certificate\n").unwrap();
    assert!(
        p.wait_log(
            "certificate reload (file changed) failed, keeping the current one",
            Duration::from_secs(20)
        ),
        "{}",
        p.log()
    );
    assert_eq!(serving(https).serial, second);

    // `postern tls status` reads the configured files.
    let third = write_pair(certs.path());
    wait_serving(https, "the repaired files", |s| s.serial == third);
    let out = p.cli(&["tls", "status"], None);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("source: files"), "{text}");
    assert!(text.contains(&format!("serial: {third}")), "{text}");

    // `postern tls renew` with files: the running server reloads them.
    let out = p.cli(&["tls", "renew"], None);
    assert!(out.status.success());
    assert!(
        p.wait_log(
            &format!("(renewal requested): serial {third}"),
            Duration::from_secs(20)
        ),
        "{}",
        p.log()
    );
}
