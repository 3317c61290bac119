//! A forced ACME renewal reaches every mail listener: new connections on 465 and 993 (implicit
//! TLS) and after STARTTLS on 25, 587 and 143 get the new certificate, while sessions opened
//! before the swap keep working.

mod acme_support;
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use acme_support::*;
use common::*;

/// One line (through CRLF) read byte by byte, so nothing past it is consumed.
fn line<S: Read>(s: &mut S) -> String {
    let mut buf = Vec::new();
    let mut b = [0u8; 1];
    while !buf.ends_with(b"\r\n") {
        assert_eq!(s.read(&mut b).unwrap(), 1, "closed after {buf:?}");
        buf.push(b[0]);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// An SMTP reply: lines up to the one with a space after the code.
fn smtp_reply<S: Read>(s: &mut S) -> String {
    let mut all = String::new();
    loop {
        let l = line(s);
        all.push_str(&l);
        if l.as_bytes().get(3) == Some(&b' ') {
            return all;
        }
    }
}

fn smtp_cmd<S: Read + Write>(s: &mut S, cmd: &str) -> String {
    s.write_all(format!("{cmd}\r\n").as_bytes()).unwrap();
    s.flush().unwrap();
    smtp_reply(s)
}

/// IMAP: lines until the tagged one.
fn imap_cmd<S: Read + Write>(s: &mut S, tag: &str, cmd: &str) -> String {
    s.write_all(format!("{tag} {cmd}\r\n").as_bytes()).unwrap();
    s.flush().unwrap();
    loop {
        let l = line(s);
        if l.starts_with(&format!("{tag} ")) {
            return l;
        }
    }
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

/// 465: implicit TLS, greeted and EHLO'd.
fn open_465(port: u16) -> (Tls, Served) {
    let (mut t, s) = tls_open(port);
    assert!(smtp_reply(&mut t).starts_with("220"));
    assert!(smtp_cmd(&mut t, "EHLO client.example.test").starts_with("250"));
    (t, s)
}

/// 993: implicit TLS, greeted.
fn open_993(port: u16) -> (Tls, Served) {
    let (mut t, s) = tls_open(port);
    assert!(line(&mut t).starts_with("* OK"));
    (t, s)
}

/// 25 / 587: EHLO, STARTTLS, handshake.
fn starttls_smtp(port: u16) -> Served {
    let mut s = connect(port);
    assert!(smtp_reply(&mut s).starts_with("220"));
    assert!(smtp_cmd(&mut s, "EHLO client.example.test").contains("STARTTLS"));
    assert!(smtp_cmd(&mut s, "STARTTLS").starts_with("220"));
    tls_over(s).1
}

/// 143: STARTTLS, handshake.
fn starttls_imap(port: u16) -> Served {
    let mut s = connect(port);
    assert!(line(&mut s).starts_with("* OK"));
    assert!(imap_cmd(&mut s, "a", "STARTTLS").starts_with("a OK"));
    tls_over(s).1
}

/// A connection opened before the renewal; `check` proves it still works afterwards.
struct Open {
    tls: Tls,
    check: fn(&mut Tls) -> bool,
}

/// Get a Pebble certificate, open sessions with `open`, force a renewal, and check that
/// `probe` (every listener of the family) sees the new certificate while the sessions live on.
fn renewal_reaches(
    probe: fn(&Postern) -> Vec<(&'static str, Served)>,
    open: fn(&Postern) -> Vec<Open>,
) {
    let mut p = Postern::start();
    let https = free_port();
    let pebble = Pebble::start(p.ports.http, https);
    respawn_with_tls(&mut p, https, &acme_tls(&pebble, "tls-alpn-01"));
    let first = wait_serving(https, "the Pebble certificate", |s| {
        s.issuer.contains("Pebble")
    });
    for (port, s) in probe(&p) {
        assert_eq!(s.serial, first.serial, "port {port}");
    }
    let mut sessions = open(&p);

    let out = p.cli(&["tls", "renew", "--wait"], None);
    assert!(out.status.success(), "{}", p.log());
    let second = wait_serving(https, "the renewed certificate", |s| {
        s.issuer.contains("Pebble") && s.serial != first.serial
    });
    for (port, s) in probe(&p) {
        assert_eq!(s.serial, second.serial, "port {port}");
    }
    // The sessions opened before the swap still answer, on their old certificate.
    for o in &mut sessions {
        assert!((o.check)(&mut o.tls));
        assert_eq!(served_on(&o.tls).serial, first.serial);
    }
}

#[test]
fn forced_renewal_reaches_25_587_465_and_keeps_open_sessions() {
    renewal_reaches(
        |p| {
            vec![
                ("465", open_465(p.ports.submissions).1),
                ("25", starttls_smtp(p.ports.smtp)),
                ("587", starttls_smtp(p.ports.submission)),
            ]
        },
        |p| {
            vec![Open {
                tls: open_465(p.ports.submissions).0,
                check: |t| smtp_cmd(t, "NOOP").starts_with("250"),
            }]
        },
    );
}

#[test]
fn forced_renewal_reaches_143_993_and_keeps_open_sessions() {
    renewal_reaches(
        |p| {
            vec![
                ("993", open_993(p.ports.imaps).1),
                ("143", starttls_imap(p.ports.imap)),
            ]
        },
        |p| {
            vec![Open {
                tls: open_993(p.ports.imaps).0,
                check: |t| imap_cmd(t, "b", "NOOP").starts_with("b OK"),
            }]
        },
    );
}
