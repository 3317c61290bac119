//! Port 25 receiver against the real binary: Python smtplib, swaks, lettre and raw sockets.

mod common;

use std::time::Duration;

use common::{Postern, Raw, Setup, peers, python};

const T: Duration = Duration::from_secs(20);

fn start() -> Postern {
    let p = Postern::start();
    p.add_user("alice@example.test", "alice-pw");
    p.add_user("bob@example.test", "bob-pw");
    p
}

fn text(m: &[u8]) -> String {
    String::from_utf8_lossy(m).into_owned()
}

/// Greeting + EHLO on a raw connection.
fn raw_ehlo(port: u16) -> (Raw, String) {
    let mut c = Raw::connect(port);
    let g = c.reply();
    assert!(g.starts_with("220 "), "{g}");
    c.send("EHLO client.example\r\n");
    let e = c.reply();
    assert!(e.starts_with("250"), "{e}");
    (c, e)
}

fn smtplib_send(port: u16, rcpt: &str, body: &str) -> String {
    python(&format!(
        r#"
import smtplib
s = smtplib.SMTP("127.0.0.1", {port}, timeout=20)
s.ehlo("client.example")
r = s.sendmail("sender@remote.example", ["{rcpt}"], {body:?}.encode())
print("refused", r)
s.quit()
"#
    ))
}

#[test]
fn delivers_to_user_alias_tag_and_catchall() {
    let p = start();
    p.add_alias(
        "info@example.test",
        &["alice@example.test", "bob@example.test"],
    );
    let port = p.ports.smtp;
    smtplib_send(
        port,
        "alice@example.test",
        "Subject: one\r\n\r\nto alice\r\n",
    );
    smtplib_send(
        port,
        "alice+news@example.test",
        "Subject: two\r\n\r\ntagged\r\n",
    );
    smtplib_send(port, "info@example.test", "Subject: three\r\n\r\nalias\r\n");
    let a = p.wait_messages("alice@example.test", "", 3, T);
    assert_eq!(a.len(), 3);
    let all: String = a.iter().map(|m| text(m)).collect();
    for s in ["Subject: one", "Subject: two", "Subject: three"] {
        assert!(all.contains(s), "{s} missing");
    }
    let b = p.messages("bob@example.test", "");
    assert_eq!(b.len(), 1);
    assert!(text(&b[0]).contains("Subject: three"));
    // Unknown before the catch-all exists, delivered to bob after.
    let mut c = raw_ehlo(port).0;
    c.send("MAIL FROM:<x@remote.example>\r\nRCPT TO:<random@example.test>\r\n");
    assert!(c.reply().starts_with("250"));
    assert!(c.reply().starts_with("550 5.1.1"));
    p.add_alias("@example.test", &["bob@example.test"]);
    smtplib_send(
        port,
        "random@example.test",
        "Subject: four\r\n\r\ncatch-all\r\n",
    );
    let b = p.wait_messages("bob@example.test", "", 2, T);
    assert!(b.iter().any(|m| text(m).contains("Subject: four")));
}

#[test]
fn unknown_recipient_is_550_at_rcpt() {
    let p = start();
    let (mut c, _) = raw_ehlo(p.ports.smtp);
    c.send("MAIL FROM:<x@remote.example>\r\n");
    assert!(c.reply().starts_with("250 2.1.0"));
    c.send("RCPT TO:<nobody@example.test>\r\n");
    assert!(c.reply().starts_with("550 5.1.1"));
    c.send("RCPT TO:<alice@example.test>\r\n");
    assert!(c.reply().starts_with("250 2.1.5"));
}

#[test]
fn relay_and_relay_tricks_refused() {
    let p = start();
    for rcpt in [
        "<someone@elsewhere.example>",
        "<alice%elsewhere.example@example.test>",
        "<alice!elsewhere.example@example.test>",
        "<@example.test:someone@elsewhere.example>",
        "<@elsewhere.example:alice@example.test>",
        "<\"someone@elsewhere.example\"@example.test>",
        "<alice@[127.0.0.1]>",
    ] {
        let (mut c, _) = raw_ehlo(p.ports.smtp);
        c.send("MAIL FROM:<x@remote.example>\r\n");
        assert!(c.reply().starts_with("250"));
        c.send(&format!("RCPT TO:{rcpt}\r\n"));
        let r = c.reply();
        assert!(r.starts_with("554 5.7.1"), "{rcpt}: {r}");
    }
}

#[test]
fn size_limit_declared_and_actual() {
    let p = Postern::start_with(Setup {
        extra: "[limits]\nmax_message_size = 4096\n".into(),
        ..Setup::default()
    });
    p.add_user("alice@example.test", "pw");
    let (mut c, ehlo) = raw_ehlo(p.ports.smtp);
    assert!(ehlo.contains("SIZE 4096"), "{ehlo}");
    c.send("MAIL FROM:<x@remote.example> SIZE=10000\r\n");
    assert!(c.reply().starts_with("552 5.3.4"));
    // A client that lies about SIZE (or omits it) is stopped after the data.
    c.send("MAIL FROM:<x@remote.example>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n");
    assert!(c.reply().starts_with("250"));
    assert!(c.reply().starts_with("250"));
    assert!(c.reply().starts_with("354"));
    let line = format!("{}\r\n", "x".repeat(70));
    let mut body = String::from("Subject: big\r\n\r\n");
    while body.len() < 10_000 {
        body.push_str(&line);
    }
    c.send(&body);
    c.send(".\r\n");
    assert!(c.reply().starts_with("552 5.3.4"));
    // The session goes on.
    c.send("NOOP\r\n");
    assert!(c.reply().starts_with("250"));
    assert!(p.messages("alice@example.test", "").is_empty());
}

#[test]
fn pipelined_transaction() {
    let p = start();
    let (mut c, ehlo) = raw_ehlo(p.ports.smtp);
    assert!(ehlo.contains("PIPELINING"));
    // RFC 2920: the whole transaction in one write up to DATA, then the body.
    c.send(
        "MAIL FROM:<x@remote.example>\r\nRCPT TO:<alice@example.test>\r\nRCPT TO:<nobody@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n",
    );
    assert!(c.reply().starts_with("250 2.1.0"));
    assert!(c.reply().starts_with("250 2.1.5"));
    assert!(c.reply().starts_with("550 5.1.1"));
    assert!(c.reply().starts_with("250 2.1.5"));
    assert!(c.reply().starts_with("354"));
    c.send("Subject: piped\r\n\r\nbody\r\n.\r\nMAIL FROM:<y@remote.example>\r\nRCPT TO:<bob@example.test>\r\nRSET\r\nQUIT\r\n");
    assert!(c.reply().starts_with("250 2.0.0"));
    assert!(c.reply().starts_with("250 2.1.0"));
    assert!(c.reply().starts_with("250 2.1.5"));
    assert!(c.reply().starts_with("250"));
    assert!(c.reply().starts_with("221"));
    assert_eq!(p.messages("alice@example.test", "").len(), 1);
    assert_eq!(p.messages("bob@example.test", "").len(), 1);
}

#[test]
fn starttls_then_mail_with_swaks_and_python() {
    let p = start();
    let out = python(&format!(
        r#"
import smtplib, ssl
s = smtplib.SMTP("127.0.0.1", {}, timeout=20)
s.ehlo("client.example")
assert s.has_extn("starttls")
s.starttls(context=ssl._create_unverified_context())
s.ehlo("client.example")
assert not s.has_extn("starttls")
s.sendmail("sender@remote.example", ["alice@example.test"], b"Subject: tls\r\n\r\nsecret\r\n")
s.quit()
print("ok")
"#,
        p.ports.smtp
    ));
    assert!(out.contains("ok"));
    let m = p.wait_messages("alice@example.test", "", 1, T);
    let m = text(&m[0]);
    assert!(m.contains("with ESMTPS"), "{m}");
    assert!(m.contains("(using TLSv1."), "{m}");
    if peers::swaks().available() {
        let out = std::process::Command::new("swaks")
            .args(["--server", &format!("127.0.0.1:{}", p.ports.smtp), "-tls"])
            .args(["--to", "bob@example.test", "--from", "x@remote.example"])
            .args(["--header", "Subject: via swaks"])
            .output()
            .unwrap();
        let so = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{so}");
        let b = p.wait_messages("bob@example.test", "", 1, T);
        assert!(text(&b[0]).contains("Subject: via swaks"));
    }
}

#[test]
fn trace_headers_are_added() {
    let p = start();
    smtplib_send(
        p.ports.smtp,
        "alice@example.test",
        "Subject: trace\r\n\r\nx\r\n",
    );
    let m = p.wait_messages("alice@example.test", "", 1, T);
    let m = text(&m[0]);
    assert!(
        m.starts_with("Return-Path: <sender@remote.example>\r\n"),
        "{m}"
    );
    assert!(m.contains("Received: from client.example ([127.0.0.1])\r\n\tby mail.example.test (postern) with ESMTP id "), "{m}");
    assert!(m.contains("for <alice@example.test>;"), "{m}");
    assert!(m.ends_with("Subject: trace\r\n\r\nx\r\n"), "{m}");
}

#[test]
fn eight_bit_and_smtputf8() {
    let p = start();
    let out = python(&format!(
        r#"
import smtplib
s = smtplib.SMTP("127.0.0.1", {}, timeout=20)
s.ehlo("client.example")
assert s.has_extn("smtputf8") and s.has_extn("8bitmime")
body = "From: Jörg <jörg@bücher.example>\r\nSubject: Grüße\r\n\r\nÄpfel und Öl — ✓\r\n".encode()
s.sendmail("jörg@bücher.example", ["alice@example.test"], body, mail_options=["SMTPUTF8", "BODY=8BITMIME"])
s.quit()
print("ok")
"#,
        p.ports.smtp
    ));
    assert!(out.contains("ok"));
    let m = p.wait_messages("alice@example.test", "", 1, T);
    let m = String::from_utf8(m[0].clone()).expect("stored as UTF-8");
    assert!(m.starts_with("Return-Path: <jörg@bücher.example>"), "{m}");
    assert!(m.contains("with UTF8SMTP id"), "{m}");
    assert!(
        m.ends_with("Subject: Grüße\r\n\r\nÄpfel und Öl — ✓\r\n"),
        "{m}"
    );
}

#[test]
fn dot_stuffing_round_trip() {
    let p = start();
    // smtplib stuffs leading dots; the server must unstuff them exactly once.
    let body = "Subject: dots\r\n\r\n.\r\n..\r\n.leading\r\n...three\r\n. space\r\nend\r\n";
    smtplib_send(p.ports.smtp, "alice@example.test", body);
    let m = p.wait_messages("alice@example.test", "", 1, T);
    let m = text(&m[0]);
    assert!(m.ends_with(body), "{m}");
}

#[test]
fn bare_lf_and_long_lines() {
    let p = start();
    let port = p.ports.smtp;
    // A command line over 512 octets (MAIL/RCPT: over 2048, room for extension parameters).
    let (mut c, _) = raw_ehlo(port);
    c.send(&format!("NOOP {}\r\n", "a".repeat(600)));
    assert!(c.reply().starts_with("500 5.5.2"));
    c.send(&format!(
        "MAIL FROM:<{}@remote.example>\r\n",
        "a".repeat(2100)
    ));
    assert!(c.reply().starts_with("500 5.5.2"));
    c.send("NOOP\r\n");
    assert!(c.reply().starts_with("250"));
    // A text line over 1000 octets is refused after the data.
    c.send("MAIL FROM:<x@remote.example>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n");
    for _ in 0..3 {
        c.reply();
    }
    c.send(&format!(
        "Subject: long\r\n\r\n{}\r\n.\r\n",
        "y".repeat(1200)
    ));
    assert!(c.reply().starts_with("550 5.5.2"));
    // SMTP smuggling: "\n.\n" does not end the data, so the "MAIL FROM" after it is content,
    // and on port 25 a bare LF gets the whole message refused (tests/faults_smtp_smuggling.rs
    // has every variant).
    c.send("MAIL FROM:<x@remote.example>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n");
    for _ in 0..3 {
        c.reply();
    }
    c.send("Subject: smuggle\r\n\r\nfirst\n.\nMAIL FROM:<evil@remote.example>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n\r\nsecond\r\n.\r\n");
    assert!(c.reply().starts_with("550 5.5.2"));
    c.send("QUIT\r\n");
    assert!(c.reply().starts_with("221"));
    std::thread::sleep(Duration::from_millis(300));
    assert!(p.messages("alice@example.test", "").is_empty());
    assert!(p.messages("bob@example.test", "").is_empty());
}

#[test]
fn bdat_chunking() {
    let p = start();
    let (mut c, ehlo) = raw_ehlo(p.ports.smtp);
    assert!(ehlo.contains("CHUNKING"));
    c.send("MAIL FROM:<x@remote.example>\r\nRCPT TO:<alice@example.test>\r\n");
    assert!(c.reply().starts_with("250"));
    assert!(c.reply().starts_with("250"));
    let part1 = "Subject: chunks\r\n\r\n";
    let part2 = ".not stuffed\r\n";
    c.send(&format!("BDAT {}\r\n{part1}", part1.len()));
    assert!(c.reply().starts_with("250"));
    c.send(&format!("BDAT {} LAST\r\n{part2}", part2.len()));
    assert!(c.reply().starts_with("250 2.0.0"));
    let m = p.wait_messages("alice@example.test", "", 1, T);
    assert!(text(&m[0]).ends_with("Subject: chunks\r\n\r\n.not stuffed\r\n"));
}

#[test]
fn misc_commands_and_sequence() {
    let p = start();
    let mut c = Raw::connect(p.ports.smtp);
    assert!(c.reply().starts_with("220 mail.example.test"));
    c.send("MAIL FROM:<x@remote.example>\r\n");
    assert!(c.reply().starts_with("503 5.5.1"));
    c.send("HELO client.example\r\n");
    assert!(c.reply().starts_with("250"));
    c.send("VRFY alice\r\n");
    assert!(c.reply().starts_with("252"));
    c.send("HELP\r\n");
    assert!(c.reply().starts_with("214"));
    c.send("NOOP\r\n");
    assert!(c.reply().starts_with("250"));
    c.send("RCPT TO:<alice@example.test>\r\n");
    assert!(c.reply().starts_with("503 5.5.1"));
    c.send("DATA\r\n");
    assert!(c.reply().starts_with("503 5.5.1"));
    c.send("XYZZY\r\n");
    assert!(c.reply().starts_with("500 5.5.1"));
    c.send("MAIL FROM:bad\r\n");
    assert!(c.reply().starts_with("501"));
    c.send("AUTH PLAIN AGFAYg==\r\n");
    assert!(c.reply().starts_with("502 5.5.1"));
    c.send("RSET\r\n");
    assert!(c.reply().starts_with("250"));
    c.send("QUIT\r\n");
    assert!(c.reply().starts_with("221"));
    assert_eq!(c.rest(), "");
}

#[test]
fn lettre_delivers_over_starttls() {
    use lettre::message::Mailbox;
    use lettre::transport::smtp::client::{Tls, TlsParameters};
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
    let p = start();
    let tls = TlsParameters::builder("mail.example.test".into())
        .dangerous_accept_invalid_certs(true)
        .build()
        .unwrap();
    let mailer = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(p.ports.smtp)
        .tls(Tls::Required(tls))
        .build();
    let email = Message::builder()
        .from("Sender <sender@remote.example>".parse::<Mailbox>().unwrap())
        .to("alice@example.test".parse::<Mailbox>().unwrap())
        .subject("from lettre")
        .body("hello from lettre\r\n.leading dot\r\n".to_string())
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let resp = rt.block_on(mailer.send(email)).expect("lettre send");
    assert_eq!(resp.code().to_string(), "250");
    let m = p.wait_messages("alice@example.test", "", 1, T);
    let m = text(&m[0]);
    assert!(m.contains("Subject: from lettre"), "{m}");
    assert!(m.contains("\r\n.leading dot\r\n"), "{m}");
}

#[test]
fn forwarding_alias_goes_to_the_queue_and_local_copies_are_delivered() {
    let p = start();
    p.add_alias(
        "team@example.test",
        &["alice@example.test", "friend@elsewhere.example"],
    );
    let (mut c, _) = raw_ehlo(p.ports.smtp);
    c.send("MAIL FROM:<x@remote.example>\r\nRCPT TO:<team@example.test>\r\nDATA\r\n");
    assert!(c.reply().starts_with("250"));
    assert!(c.reply().starts_with("250 2.1.5"));
    assert!(c.reply().starts_with("354"));
    c.send("Subject: for the team\r\n\r\nx\r\n.\r\n");
    let r = c.reply();
    // 250 only once the remote copy is queued and the local one stored.
    assert!(r.starts_with("250 2.0.0"), "{r}");
    assert_eq!(p.messages("alice@example.test", "").len(), 1);
    let queued = walk(&p.data_dir().join("queue"));
    let copy = queued
        .iter()
        .map(|b| text(b))
        .find(|t| t.contains("Subject: for the team"))
        .expect("forwarded copy not in the queue");
    // Forwarded as received: with our trace header, without a Return-Path.
    assert!(copy.contains("Received: from client.example"), "{copy}");
    assert!(!copy.contains("Return-Path:"), "{copy}");
}

fn walk(dir: &std::path::Path) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else if let Ok(b) = std::fs::read(&p) {
                out.push(b);
            }
        }
    }
    out
}

#[test]
fn starttls_discards_pipelined_plaintext() {
    // CVE-2011-0411: commands sent in the clear after STARTTLS must not run inside TLS.
    let p = start();
    let out = python(&format!(
        r#"
import socket, ssl
s = socket.create_connection(("127.0.0.1", {}), timeout=20)
f = s.makefile("rb")
def reply(f):
    lines = []
    while True:
        l = f.readline().decode()
        lines.append(l.strip())
        if len(l) < 4 or l[3] != "-":
            return lines
reply(f)
s.sendall(b"EHLO c\r\n")
reply(f)
s.sendall(b"STARTTLS\r\nMAIL FROM:<injected@remote.example>\r\n")
print(reply(f)[0])
t = ssl._create_unverified_context().wrap_socket(s, server_hostname="mail.example.test")
tf = t.makefile("rb")
t.sendall(b"EHLO c\r\n")
print(reply(tf)[0])
t.sendall(b"RCPT TO:<alice@example.test>\r\n")
print(reply(tf)[0])
"#,
        p.ports.smtp
    ));
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("220 2.0.0"), "{out}");
    assert!(lines[1].starts_with("250-mail.example.test"), "{out}");
    // The injected MAIL FROM never ran, so RCPT is out of sequence.
    assert!(lines[2].starts_with("503 5.5.1"), "{out}");
}
