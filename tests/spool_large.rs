//! Messages larger than the in-memory spool threshold (256 KiB) through the ways in: port 25
//! DATA and BDAT, submission relayed to Postfix's smtp-sink (and kept locally), IMAP APPEND.
//! The stored and relayed bytes must be exact, and `data_dir/spool/tmp` must be empty
//! afterwards, whether the message was accepted, refused or abandoned mid-transfer.

mod common;
mod outbound_support;

use std::time::{Duration, Instant};

use common::{Postern, Raw, Setup, free_port, path_str, python};
use outbound_support::{Dns, SmtpSink, sender, wait_queue_empty};

const T: Duration = Duration::from_secs(60);
const USER: &str = "user@example.test";

/// A message of about `size` octets: CRLF lines, some starting with dots (stuffed on the
/// wire), one of the longest allowed length (998), 8-bit text.
fn big_message(from: &str, to: &str, size: usize) -> Vec<u8> {
    let mut m = format!(
        "From: <{from}>\r\nTo: <{to}>\r\nSubject: large\r\nMessage-ID: <{}.big@client.test>\r\n\
         Date: Sun, 06 Dec 2026 12:00:00 +0000\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
        free_port()
    )
    .into_bytes();
    let mut i = 0u64;
    while m.len() < size {
        let line = match i % 7 {
            0 => ".a line that starts with a dot".to_string(),
            1 => "..two dots".to_string(),
            2 => "x".repeat(998),
            3 => "caf\u{e9} \u{2603} 8-bit text".to_string(),
            4 => String::new(),
            _ => format!("line {i} {}", "abcdefghij".repeat(6)),
        };
        m.extend_from_slice(line.as_bytes());
        m.extend_from_slice(b"\r\n");
        i += 1;
    }
    m
}

fn spool_files(p: &Postern) -> usize {
    std::fs::read_dir(p.data_dir().join("spool").join("tmp"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Wait until the spool holds `n` files.
fn wait_spool(p: &Postern, n: usize) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if spool_files(p) == n {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// smtplib on port 25 with the message in a file: "OK" or "ERR code text".
fn send25(p: &Postern, from: &str, to: &str, msg: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("msg.eml");
    std::fs::write(&path, msg).unwrap();
    python(&format!(
        r#"
import smtplib
msg = open({path:?}, 'rb').read()
s = smtplib.SMTP('127.0.0.1', {port}, local_hostname='client.test', timeout=120)
try:
    s.sendmail({from:?}, [{to:?}], msg)
    print('OK')
except smtplib.SMTPResponseException as e:
    print('ERR', e.smtp_code, e.smtp_error.decode())
try:
    s.quit()
except Exception:
    pass
"#,
        path = path_str(&path),
        port = p.ports.smtp,
    ))
    .trim()
    .to_string()
}

/// The names of the header fields of `head` (continuation lines skipped).
fn field_names(head: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(head)
        .split("\r\n")
        .filter(|l| !l.is_empty() && !l.starts_with([' ', '\t']))
        .map(|l| l.split(':').next().unwrap_or("").to_string())
        .collect()
}

/// `stored` is `msg` exactly, below the given header fields we add.
fn assert_stored(stored: &[u8], msg: &[u8], added: &[&str]) {
    assert!(
        stored.len() > msg.len() && stored.ends_with(msg),
        "stored message ({} octets) does not end with the {} octets sent",
        stored.len(),
        msg.len()
    );
    let head = &stored[..stored.len() - msg.len()];
    assert_eq!(
        field_names(head),
        added,
        "{}",
        String::from_utf8_lossy(head)
    );
}

#[test]
fn port_25_data_and_bdat_are_stored_exactly() {
    let p = Postern::start();
    p.add_user(USER, "pw-unused");
    let msg = big_message("a@remote.test", USER, 2 << 20);
    assert_eq!(send25(&p, "a@remote.test", USER, &msg), "OK");
    let stored = p.wait_messages(USER, "", 1, T);
    assert_eq!(stored.len(), 1);
    assert_stored(
        &stored[0],
        &msg,
        &["Return-Path", "Authentication-Results", "Received"],
    );
    assert!(wait_spool(&p, 0), "spool not empty after DATA");

    // BDAT (RFC 3030) in two chunks, raw octets.
    let msg2 = big_message("b@remote.test", USER, 3 << 20);
    let (one, two) = msg2.split_at(700_000);
    let mut c = Raw::connect(p.ports.smtp);
    assert!(c.reply().starts_with("220"));
    c.send("EHLO client.test\r\n");
    assert!(c.reply().contains("CHUNKING"));
    c.send("MAIL FROM:<b@remote.test>\r\n");
    assert!(c.reply().starts_with("250"));
    c.send(&format!("RCPT TO:<{USER}>\r\n"));
    assert!(c.reply().starts_with("250"));
    c.send(&format!("BDAT {}\r\n", one.len()));
    c.send_bytes(one);
    assert!(c.reply().starts_with("250"));
    c.send(&format!("BDAT {} LAST\r\n", two.len()));
    c.send_bytes(two);
    let r = c.reply();
    assert!(r.starts_with("250"), "{r}");
    c.send("QUIT\r\n");
    let stored = p.wait_messages(USER, "", 2, T);
    let got = stored
        .iter()
        .find(|m| m.ends_with(&msg2))
        .expect("BDAT message stored exactly");
    assert_stored(
        got,
        &msg2,
        &["Return-Path", "Authentication-Results", "Received"],
    );
    assert!(wait_spool(&p, 0), "spool not empty after BDAT");
}

#[test]
fn refused_and_abandoned_bodies_leave_the_spool_empty() {
    let p = Postern::start_with(Setup {
        extra: "[limits]\nmax_message_size = 1048576\n".into(),
        ..Setup::default()
    });
    p.add_user(USER, "pw-unused");
    // Over the size limit: 552 after the whole body was read (and spooled, then dropped).
    let msg = big_message("a@remote.test", USER, 2 << 20);
    let r = send25(&p, "a@remote.test", USER, &msg);
    assert!(r.starts_with("ERR 552"), "{r}");
    assert!(wait_spool(&p, 0), "spool not empty after 552");

    // Abandoned halfway: the body is in a spool file while it arrives, gone once the
    // client has left.
    let mut c = Raw::connect(p.ports.smtp);
    assert!(c.reply().starts_with("220"));
    c.send("EHLO client.test\r\nMAIL FROM:<a@remote.test>\r\n");
    c.reply();
    c.reply();
    c.send(&format!("RCPT TO:<{USER}>\r\nDATA\r\n"));
    assert!(c.reply().starts_with("250"));
    assert!(c.reply().starts_with("354"));
    c.send_bytes(&msg[..600_000]);
    assert!(
        wait_spool(&p, 1),
        "a body over 256 KiB is spooled to a file"
    );
    drop(c);
    assert!(wait_spool(&p, 0), "spool not empty after the client left");

    // BDAT over the limit, and a refused BDAT transaction.
    let mut c = Raw::connect(p.ports.smtp);
    assert!(c.reply().starts_with("220"));
    c.send("EHLO client.test\r\n");
    c.reply();
    c.send("MAIL FROM:<a@remote.test>\r\n");
    assert!(c.reply().starts_with("250"));
    c.send(&format!("RCPT TO:<{USER}>\r\n"));
    assert!(c.reply().starts_with("250"));
    c.send(&format!("BDAT {}\r\n", 600_000));
    c.send_bytes(&msg[..600_000]);
    assert!(c.reply().starts_with("250"));
    c.send(&format!("BDAT {} LAST\r\n", msg.len() - 600_000));
    c.send_bytes(&msg[600_000..]);
    let r = c.reply();
    assert!(r.starts_with("552"), "{r}");
    assert!(wait_spool(&p, 0), "spool not empty after BDAT 552");
    // After RSET mid-BDAT the chunks already spooled are dropped.
    c.send("MAIL FROM:<a@remote.test>\r\n");
    assert!(c.reply().starts_with("250"));
    c.send(&format!("RCPT TO:<{USER}>\r\n"));
    assert!(c.reply().starts_with("250"));
    c.send(&format!("BDAT {}\r\n", 600_000));
    c.send_bytes(&msg[..600_000]);
    assert!(c.reply().starts_with("250"));
    assert_eq!(spool_files(&p), 1);
    c.send("RSET\r\n");
    assert!(c.reply().starts_with("250"));
    assert!(wait_spool(&p, 0), "spool not empty after RSET");
    c.send("QUIT\r\n");
    assert!(p.messages(USER, "").is_empty());
}

#[test]
fn large_submission_is_relayed_exactly_signed_and_kept_locally() {
    let port = free_port();
    let dns = Dns::start(&[
        "mx-host=big.test,mx.big.test,10".into(),
        "host-record=mx.big.test,127.0.0.41".into(),
    ]);
    let sink = SmtpSink::start("127.0.0.41", port, &[]);
    let p = sender(&dns, port, "[dkim]\ned25519 = false\n");
    p.add_user("alice@example.test", "alice-pw");
    let msg = big_message("alice@example.test", "frank@big.test", 2 << 20);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("msg.eml");
    std::fs::write(&path, &msg).unwrap();
    let out = python(&format!(
        r#"
import smtplib, ssl
ctx = ssl._create_unverified_context()
s = smtplib.SMTP('127.0.0.1', {port}, timeout=120)
s.ehlo('laptop.example')
s.starttls(context=ctx)
s.ehlo('laptop.example')
s.login('alice@example.test', 'alice-pw')
s.sendmail('alice@example.test', ['frank@big.test', 'alice@example.test'], open({path:?}, 'rb').read())
print('SENT')
s.quit()
"#,
        port = p.ports.submission,
        path = path_str(&path),
    ));
    assert_eq!(out.trim(), "SENT");

    // The local copy: exact below Return-Path and Received.
    let local = p.wait_messages("alice@example.test", "", 1, T);
    assert_eq!(local.len(), 1);
    assert_stored(&local[0], &msg, &["Return-Path", "Received"]);

    // The relayed copy, as smtp-sink dumped it (its X- lines, then the message with LF);
    // complete once the queue has its 250.
    assert!(wait_queue_empty(&p, T));
    let got = sink.wait_messages(1, T);
    assert_eq!(got.len(), 1, "log:\n{}", p.log());
    let raw = &got[0];
    let start = raw.find("DKIM-Signature:").expect("signed");
    // smtp-sink ends its dump with one newline of its own.
    let relayed = raw[start..]
        .strip_suffix('\n')
        .expect("dump ends with a newline");
    let want = String::from_utf8(msg.clone())
        .unwrap()
        .replace("\r\n", "\n");
    assert!(
        relayed.ends_with(&want),
        "relayed message differs from the one submitted"
    );
    let head = &relayed[..relayed.len() - want.len()];
    assert_eq!(
        field_names(head.replace('\n', "\r\n").as_bytes()),
        ["DKIM-Signature", "Received"]
    );
    // The signature, made over the mapped spool file, verifies (dkimpy, key from openssl).
    let key = p.data_dir().join("dkim/rsa.pem");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl rsa -in {} -pubout -outform DER 2>/dev/null | base64 -w0",
            key.display()
        ))
        .output()
        .unwrap();
    let rsa = String::from_utf8(out.stdout).unwrap();
    assert!(rsa.len() > 300, "openssl produced a key");
    let relayed_path = dir.path().join("relayed.eml");
    std::fs::write(&relayed_path, relayed).unwrap();
    let out = python(&format!(
        r#"
import dkim
msg = open({relayed:?}, 'rb').read().replace(b"\n", b"\r\n")
recs = {{b"postern._domainkey.example.test.": b"v=DKIM1; k=rsa; p={rsa}"}}
print("verified" if dkim.verify(msg, dnsfunc=lambda name, timeout=5: recs[name]) else "FAILED")
"#,
        relayed = path_str(&relayed_path),
    ));
    assert_eq!(out.trim(), "verified");
    assert!(wait_spool(&p, 0), "spool not empty after submission");
}

/// imaplib: log in on 143 and APPEND `msg` to INBOX; prints the tagged reply.
fn imap_append(p: &Postern, msg: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("msg.eml");
    std::fs::write(&path, msg).unwrap();
    python(&format!(
        r#"
import imaplib
m = imaplib.IMAP4('127.0.0.1', {port})
m.login({USER:?}, 'pw')
try:
    typ, data = m.append('INBOX', '(\\Seen)', None, open({path:?}, 'rb').read())
    print(typ, data[0].decode())
except imaplib.IMAP4.error as e:
    print('ERR', e)
m.logout()
"#,
        port = p.ports.imap,
        path = path_str(&path),
    ))
    .trim()
    .to_string()
}

#[test]
fn imap_append_of_a_large_literal_is_stored_exactly() {
    let p = Postern::start_with(Setup {
        extra: "[imap]\nallow_plaintext_auth = true\n[limits]\nmax_message_size = 4194304\n".into(),
        ..Setup::default()
    });
    p.add_user(USER, "pw");
    // Synchronizing literal (imaplib waits for the "+").
    let msg = big_message("a@example.test", USER, 2 << 20);
    let r = imap_append(&p, &msg);
    assert!(r.starts_with("OK [APPENDUID"), "{r}");
    let stored = p.messages(USER, "");
    assert_eq!(stored.len(), 1);
    assert!(stored[0] == msg, "stored message differs from the literal");
    assert!(wait_spool(&p, 0), "spool not empty after APPEND");

    // LITERAL+ (RFC 7888), the command and the next one pipelined behind the literal.
    let msg2 = big_message("b@example.test", USER, 3 << 20);
    let mut c = Raw::connect(p.ports.imap);
    assert!(c.line().starts_with("* OK"));
    c.send(&format!("a LOGIN {USER} pw\r\n"));
    assert!(c.line().starts_with("a OK"));
    c.send(&format!(
        "b APPEND INBOX (\\Flagged) {{{}+}}\r\n",
        msg2.len()
    ));
    c.send_bytes(&msg2);
    c.send("\r\nc NOOP\r\n");
    let r = c.line();
    assert!(r.starts_with("b OK [APPENDUID"), "{r}");
    assert!(c.line().starts_with("c OK"));
    let stored = p.messages(USER, "");
    assert_eq!(stored.len(), 2);
    assert!(stored.contains(&msg2), "LITERAL+ message differs");

    // The UTF8 form (RFC 6855 §4) with a literal8, binary octets included.
    c.send("u ENABLE UTF8=ACCEPT\r\n");
    assert!(c.line().starts_with("* ENABLED"));
    assert!(c.line().starts_with("u OK"));
    let mut msg8 = big_message("u@example.test", USER, 1 << 20);
    msg8.extend_from_slice(b"\x00\x01\xff binary\r\n");
    c.send(&format!("f APPEND INBOX UTF8 (~{{{}+}}\r\n", msg8.len()));
    c.send_bytes(&msg8);
    c.send(")\r\n");
    let r = c.line();
    assert!(r.starts_with("f OK [APPENDUID"), "{r}");
    assert!(
        p.messages(USER, "").contains(&msg8),
        "UTF8 APPEND message differs"
    );

    // Over max_message_size (but within imap_max_literal): read to the end, refused, gone.
    let msg3 = big_message("c@example.test", USER, 5 << 20);
    c.send(&format!("d APPEND INBOX {{{}+}}\r\n", msg3.len()));
    c.send_bytes(&msg3);
    c.send("\r\n");
    let r = c.line();
    assert!(r.starts_with("d NO [TOOBIG]"), "{r}");
    assert!(wait_spool(&p, 0), "spool not empty after a refused APPEND");

    // Abandoned halfway: spooled while it arrives, removed when the client leaves.
    c.send(&format!("e APPEND INBOX {{{}+}}\r\n", msg3.len()));
    c.send_bytes(&msg3[..1 << 20]);
    assert!(
        wait_spool(&p, 1),
        "a literal over 256 KiB is spooled to a file"
    );
    drop(c);
    assert!(wait_spool(&p, 0), "spool not empty after the client left");
    assert_eq!(p.messages(USER, "").len(), 3);
}

#[test]
fn large_bodies_are_refused_when_the_disk_reserve_would_be_used() {
    // The spool keeps 1.5 × max_message_size free on the data disk; with an absurd maximum
    // no disk has that much, so every body that spills is refused as "disk full" while small
    // messages still go through.
    let p = Postern::start_with(Setup {
        extra:
            "[imap]\nallow_plaintext_auth = true\n[limits]\nmax_message_size = 1000000000000000\n"
                .into(),
        ..Setup::default()
    });
    p.add_user(USER, "pw");
    let big = big_message("a@remote.test", USER, 1 << 20);
    let r = send25(&p, "a@remote.test", USER, &big);
    assert!(r.starts_with("ERR 452 4.3.1"), "{r}");
    let small = big_message("a@remote.test", USER, 100_000);
    assert_eq!(send25(&p, "a@remote.test", USER, &small), "OK");
    let r = imap_append(&p, &big);
    assert!(r.contains("[LIMIT]"), "{r}");
    assert!(wait_spool(&p, 0), "spool not empty");
    let stored = p.messages(USER, "");
    assert_eq!(stored.len(), 1);
    assert!(stored[0].ends_with(&small));
}

#[test]
fn large_literals_before_login_are_not_read() {
    let p = Postern::start_with(Setup {
        extra: "[imap]\nallow_plaintext_auth = true\n".into(),
        ..Setup::default()
    });
    p.add_user(USER, "pw");
    let mut c = Raw::connect(p.ports.imap);
    assert!(c.line().starts_with("* OK"));
    // Synchronizing: refused without a continuation, the session goes on.
    c.send("a APPEND INBOX {1000000}\r\n");
    let r = c.line();
    assert!(r.starts_with("a NO [TOOBIG]"), "{r}");
    // A password in a literal still works.
    c.send(&format!("b LOGIN {USER} {{2}}\r\n"));
    assert!(c.line().starts_with("+"));
    c.send("pw\r\n");
    let r = c.line();
    assert!(r.starts_with("b OK"), "{r}");
    drop(c);
    // Non-synchronizing: the octets are on their way, so the connection ends.
    let mut c = Raw::connect(p.ports.imap);
    assert!(c.line().starts_with("* OK"));
    c.send("a APPEND INBOX {1000000+}\r\n");
    assert!(c.line().starts_with("* BYE [TOOBIG]"));
    assert_eq!(spool_files(&p), 0);
}
