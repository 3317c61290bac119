//! Submission (587 STARTTLS, 465 implicit TLS) against the real binary.

mod common;

use std::time::Duration;

use common::{Postern, Raw, Setup, python};

const T: Duration = Duration::from_secs(20);

fn start_with(extra: &str) -> Postern {
    let p = Postern::start_with(Setup {
        extra: extra.into(),
        ..Setup::default()
    });
    p.add_user("alice@example.test", "alice-pw");
    p.add_user("bob@example.test", "bob-pw");
    p.add_alias("sales@example.test", &["alice@example.test"]);
    p
}

fn text(m: &[u8]) -> String {
    String::from_utf8_lossy(m).into_owned()
}

/// Python: log in on 587 (STARTTLS) or 465 (implicit TLS) and send; prints the outcome.
fn submit(
    port: u16,
    implicit: bool,
    user: &str,
    pw: &str,
    from: &str,
    to: &str,
    msg: &str,
) -> String {
    let connect = if implicit {
        format!(
            "s = smtplib.SMTP_SSL('127.0.0.1', {port}, context=ctx, timeout=30)\ns.ehlo('laptop.example')"
        )
    } else {
        format!(
            "s = smtplib.SMTP('127.0.0.1', {port}, timeout=30)\ns.ehlo('laptop.example')\ns.starttls(context=ctx)\ns.ehlo('laptop.example')"
        )
    };
    python(&format!(
        r#"
import smtplib, ssl
ctx = ssl._create_unverified_context()
{connect}
assert "PLAIN" in s.esmtp_features.get("auth", ""), s.esmtp_features
try:
    s.login({user:?}, {pw:?})
except smtplib.SMTPAuthenticationError as e:
    print("AUTH", e.smtp_code, e.smtp_error.decode())
    raise SystemExit(0)
try:
    s.sendmail({from:?}, [{to:?}], {msg:?}.encode())
    print("SENT")
except smtplib.SMTPSenderRefused as e:
    print("SENDER", e.smtp_code, e.smtp_error.decode())
except smtplib.SMTPDataError as e:
    print("DATA", e.smtp_code, e.smtp_error.decode())
except smtplib.SMTPRecipientsRefused as e:
    print("RCPT", e.recipients)
s.quit()
"#
    ))
}

#[test]
fn auth_refused_before_starttls() {
    let p = start_with("");
    let mut c = Raw::connect(p.ports.submission);
    assert!(c.reply().starts_with("220"));
    c.send("EHLO laptop.example\r\n");
    let e = c.reply();
    assert!(e.contains("STARTTLS"), "{e}");
    assert!(
        !e.contains("AUTH"),
        "AUTH must not be offered in the clear: {e}"
    );
    // alice / alice-pw, never checked in the clear.
    c.send("AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABhbGljZS1wdw==\r\n");
    assert!(c.reply().starts_with("530 5.7.0"));
    c.send("MAIL FROM:<alice@example.test>\r\n");
    assert!(c.reply().starts_with("530 5.7.0"));
    assert!(!p.log().contains("auth ok"));
}

#[test]
fn submission_587_delivers_locally_and_adds_message_id_and_date() {
    let p = start_with("");
    let out = submit(
        p.ports.submission,
        false,
        "alice@example.test",
        "alice-pw",
        "alice@example.test",
        "bob@example.test",
        "From: Alice <alice@example.test>\r\nTo: bob@example.test\r\nSubject: hi bob\r\n\r\nhello\r\n",
    );
    assert!(out.contains("SENT"), "{out}");
    let m = p.wait_messages("bob@example.test", "", 1, T);
    let m = text(&m[0]);
    assert!(m.starts_with("Return-Path: <alice@example.test>"), "{m}");
    assert!(m.contains("with ESMTPSA id"), "{m}");
    assert!(
        m.contains("\r\nMessage-ID: <") && m.contains("@mail.example.test>\r\n"),
        "{m}"
    );
    assert!(m.contains("\r\nDate: "), "{m}");
    assert!(m.ends_with("Subject: hi bob\r\n\r\nhello\r\n"), "{m}");
    // A message that has both keeps its own.
    let out = submit(
        p.ports.submission,
        false,
        "alice",
        "alice-pw",
        "alice+tag@example.test",
        "bob@example.test",
        "From: alice+tag@example.test\r\nMessage-ID: <own@id>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\nx\r\n",
    );
    assert!(out.contains("SENT"), "{out}");
    let m = p.wait_messages("bob@example.test", "", 2, T);
    let own = m
        .iter()
        .map(|x| text(x))
        .find(|x| x.contains("<own@id>"))
        .unwrap();
    assert_eq!(own.matches("Message-ID:").count(), 1, "{own}");
    assert_eq!(own.matches("\r\nDate:").count(), 1, "{own}");
}

#[test]
fn submissions_465_with_lettre() {
    use lettre::message::Mailbox;
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::transport::smtp::client::{Tls, TlsParameters};
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
    let p = start_with("");
    let tls = TlsParameters::builder("mail.example.test".into())
        .dangerous_accept_invalid_certs(true)
        .build()
        .unwrap();
    let mailer = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(p.ports.submissions)
        .tls(Tls::Wrapper(tls))
        .credentials(Credentials::new(
            "alice@example.test".into(),
            "alice-pw".into(),
        ))
        .build();
    let email = Message::builder()
        .from("Sales <sales@example.test>".parse::<Mailbox>().unwrap())
        .to("bob@example.test".parse::<Mailbox>().unwrap())
        .subject("over 465")
        .body("implicit TLS\r\n".to_string())
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let resp = rt
        .block_on(mailer.send(email))
        .expect("lettre send over 465");
    assert_eq!(resp.code().to_string(), "250");
    let m = p.wait_messages("bob@example.test", "", 1, T);
    let m = text(&m[0]);
    assert!(m.contains("Subject: over 465"), "{m}");
    assert!(m.contains("(using TLSv1."), "{m}");
}

#[test]
fn auth_login_and_cancel_raw_over_465() {
    // Exercised through openssl-free Python: AUTH LOGIN continuation and "*" cancel.
    let p = start_with("");
    let out = python(&format!(
        r#"
import smtplib, ssl, base64
s = smtplib.SMTP_SSL('127.0.0.1', {}, context=ssl._create_unverified_context(), timeout=30)
s.ehlo('laptop.example')
print(s.docmd("AUTH", "LOGIN"))
print(s.docmd("*"))
print(s.docmd("AUTH", "LOGIN " + base64.b64encode(b"alice@example.test").decode()))
print(s.docmd(base64.b64encode(b"alice-pw").decode()))
s.quit()
"#,
        p.ports.submissions
    ));
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("(334, b'VXNlcm5hbWU6')"), "{out}");
    assert!(lines[1].starts_with("(501, b'5.0.0"), "{out}");
    assert!(lines[2].starts_with("(334, b'UGFzc3dvcmQ6')"), "{out}");
    assert!(lines[3].starts_with("(235, b'2.7.0"), "{out}");
}

#[test]
fn wrong_password_is_throttled_and_logged() {
    let p = start_with("[limits]\nmax_auth_failures = 3\n");
    let out = python(&format!(
        r#"
import smtplib, ssl, base64
s = smtplib.SMTP_SSL('127.0.0.1', {}, context=ssl._create_unverified_context(), timeout=60)
s.ehlo('laptop.example')
bad = base64.b64encode(b"\0alice@example.test\0wrong").decode()
good = base64.b64encode(b"\0alice@example.test\0alice-pw").decode()
for _ in range(4):
    print(s.docmd("AUTH", "PLAIN " + bad)[0])
# Even the right password is refused while the account is throttled.
print(s.docmd("AUTH", "PLAIN " + good)[0])
s.quit()
"#,
        p.ports.submissions
    ));
    let codes: Vec<&str> = out.lines().collect();
    assert_eq!(codes, ["535", "535", "535", "454", "454"], "{out}");
    let log = p.log();
    assert!(
        log.contains(
            "WARN auth failed: service=smtp-submission ip=127.0.0.1 user=alice@example.test"
        ),
        "{log}"
    );
    assert!(!log.contains("auth ok"), "{log}");
}

#[test]
fn sending_as_someone_else_is_553() {
    let p = start_with("");
    // Envelope sender of another user.
    let out = submit(
        p.ports.submission,
        false,
        "alice@example.test",
        "alice-pw",
        "bob@example.test",
        "bob@example.test",
        "From: alice@example.test\r\n\r\nx\r\n",
    );
    assert!(out.starts_with("SENDER 553 5.7.1"), "{out}");
    // Header From of another user with the user's own envelope.
    let out = submit(
        p.ports.submission,
        false,
        "alice@example.test",
        "alice-pw",
        "alice@example.test",
        "bob@example.test",
        "From: Bob <bob@example.test>\r\n\r\nx\r\n",
    );
    assert!(out.starts_with("DATA 553 5.7.1"), "{out}");
    // An address outside the domain.
    let out = submit(
        p.ports.submission,
        false,
        "alice@example.test",
        "alice-pw",
        "ceo@bigbank.example",
        "bob@example.test",
        "From: ceo@bigbank.example\r\n\r\nx\r\n",
    );
    assert!(out.starts_with("SENDER 553 5.7.1"), "{out}");
    // An alias that maps to the user is hers.
    let out = submit(
        p.ports.submission,
        false,
        "alice@example.test",
        "alice-pw",
        "sales@example.test",
        "bob@example.test",
        "From: sales@example.test\r\n\r\nx\r\n",
    );
    assert!(out.starts_with("SENT"), "{out}");
    assert_eq!(p.wait_messages("bob@example.test", "", 1, T).len(), 1);
}

#[test]
fn remote_recipient_goes_to_the_queue() {
    // A DNS server that never answers keeps the message in the queue while we look at it.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let p = start_with(&format!(
        "[dns]\nnameservers = [\"{}\"]\ntimeout_secs = 30\n",
        silent.local_addr().unwrap()
    ));
    let out = submit(
        p.ports.submission,
        false,
        "alice@example.test",
        "alice-pw",
        "alice@example.test",
        "friend@elsewhere.example",
        "From: alice@example.test\r\nSubject: out\r\n\r\nx\r\n",
    );
    // RCPT is accepted for any domain once authenticated; 250 only once the DKIM-signed
    // message is in the queue (fsynced by Queue::enqueue).
    assert!(out.starts_with("SENT"), "{out}");
    let queued = walk(&p.data_dir().join("queue"));
    let copy = queued
        .iter()
        .map(|b| text(b))
        .find(|t| t.contains("Subject: out"))
        .expect("message not in the queue");
    assert!(copy.contains("DKIM-Signature:"), "{copy}");
    assert!(copy.contains("Message-ID: <"), "{copy}");
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
