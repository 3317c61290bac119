//! Inbound trust over real port-25 sessions: dnsmasq publishes SPF, DKIM, DMARC and PTR
//! records for test sender domains, Python's dkimpy signs, smtplib delivers from 127.0.0.1,
//! and the stored message's Authentication-Results header (or the SMTP reply) is checked.

mod common;
use common::*;

use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const RCPT: &str = "user@example.test";
const AUTHSERV: &str = "mail.example.test";

use common::dnsmasq::TestDns;

/// An RSA-2048 DKIM key made with openssl: the PEM for dkimpy and the p= value.
struct Key {
    _dir: tempfile::TempDir,
    pem: PathBuf,
    public_b64: String,
}

fn dkim_key() -> Key {
    // The signer of the test messages (send() below) and the key generator.
    peers::dkimpy().essential();
    peers::openssl().essential();
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("key.pem");
    let out = Command::new("openssl")
        .args(["genrsa", "-traditional", "-out"])
        .arg(&pem)
        .arg("2048")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new("openssl")
        .args(["rsa", "-pubout", "-outform", "DER", "-in"])
        .arg(&pem)
        .output()
        .unwrap();
    assert!(out.status.success());
    use base64::Engine;
    let public_b64 = base64::engine::general_purpose::STANDARD.encode(&out.stdout);
    Key {
        _dir: dir,
        pem,
        public_b64,
    }
}

/// A TXT record line for dnsmasq, split into strings of at most 200 bytes (RFC 7208 §3.3,
/// RFC 6376 §3.6.2.2: the strings of one record are concatenated).
fn txt(name: &str, value: &str) -> String {
    let parts: Vec<String> = value
        .as_bytes()
        .chunks(200)
        .map(|c| format!("\"{}\"", std::str::from_utf8(c).unwrap()))
        .collect();
    format!("txt-record={name},{}\n", parts.join(","))
}

/// The published world:
/// - sender.test: SPF allows 127.0.0.1, DKIM key `sel`, DMARC p=reject; its HELO name
///   mail.sender.test has SPF, an A record and the PTR of 127.0.0.1.
/// - forbid.test: SPF forbids 127.0.0.1, DMARC p=reject.
/// - quar.test: SPF forbids 127.0.0.1, DMARC p=quarantine.
/// - pct0.test, testing.test: SPF forbids 127.0.0.1, DMARC p=reject with pct=0 / t=y.
/// - example.test (our own domain): SPF allows only 192.0.2.25, DMARC p=reject.
/// - nopolicy.test: nothing.
fn zone(key: &Key) -> String {
    let mut z = String::new();
    z += &txt("sender.test", "v=spf1 ip4:127.0.0.1 -all");
    z += &txt("mail.sender.test", "v=spf1 ip4:127.0.0.1 -all");
    z += &txt(
        "sel._domainkey.sender.test",
        &format!("v=DKIM1; k=rsa; p={}", key.public_b64),
    );
    z += &txt("_dmarc.sender.test", "v=DMARC1; p=reject");
    z += "host-record=mail.sender.test,127.0.0.1\n";
    z += "ptr-record=1.0.0.127.in-addr.arpa,mail.sender.test\n";
    z += &txt("forbid.test", "v=spf1 ip4:192.0.2.1 -all");
    z += &txt("_dmarc.forbid.test", "v=DMARC1; p=reject");
    z += &txt("quar.test", "v=spf1 ip4:192.0.2.1 -all");
    z += &txt("_dmarc.quar.test", "v=DMARC1; p=quarantine");
    z += &txt("pct0.test", "v=spf1 ip4:192.0.2.1 -all");
    z += &txt("_dmarc.pct0.test", "v=DMARC1; p=reject; pct=0");
    z += &txt("testing.test", "v=spf1 ip4:192.0.2.1 -all");
    z += &txt("_dmarc.testing.test", "v=DMARC1; p=reject; t=y");
    z += &txt("example.test", "v=spf1 ip4:192.0.2.25 -all");
    z += &txt("_dmarc.example.test", "v=DMARC1; p=reject");
    z
}

fn start_postern(dns: &str, extra: &str) -> Postern {
    let p = Postern::start_with(Setup {
        extra: format!("[dns]\nnameservers = [\"{dns}\"]\ntimeout_secs = 2\n{extra}"),
        ..Setup::default()
    });
    p.add_user(RCPT, "pw-unused-here");
    p
}

fn message(from: &str, extra_headers: &str) -> String {
    format!(
        "{extra_headers}From: Sender <{from}>\r\nTo: {RCPT}\r\nSubject: inbound test\r\n\
         Date: Sun, 29 Nov 2026 05:00:00 +0000\r\nMessage-ID: <{}@client.test>\r\n\r\n\
         Hello from the test.\r\n",
        free_port()
    )
}

struct Send<'a> {
    helo: &'a str,
    mail_from: &'a str,
    message: String,
    sign: Option<&'a Key>,
    tamper: bool,
}

/// Deliver over port 25 with smtplib; "OK" or "ERR <code> <text>".
fn send(p: &Postern, s: Send<'_>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let msg_path = dir.path().join("msg.eml");
    std::fs::write(&msg_path, &s.message).unwrap();
    let key = s.sign.map_or(String::new(), |k| path_str(&k.pem));
    python(&format!(
        r#"
import smtplib
msg = open({msg:?}, 'rb').read()
key = {key:?}
if key:
    import dkim
    sig = dkim.sign(msg, b'sel', b'sender.test', open(key, 'rb').read(),
                    include_headers=[b'from', b'to', b'subject', b'date', b'message-id'])
    msg = sig + msg
if {tamper}:
    msg = msg.replace(b'Hello from the test.', b'Wire the money today.')
s = smtplib.SMTP('127.0.0.1', {port}, local_hostname={helo:?}, timeout=120)
try:
    s.sendmail({mail_from:?}, [{rcpt:?}], msg)
    print('OK')
except smtplib.SMTPResponseException as e:
    print('ERR', e.smtp_code, e.smtp_error.decode())
try:
    s.quit()
except Exception:
    pass
"#,
        msg = path_str(&msg_path),
        tamper = if s.tamper { "True" } else { "False" },
        port = p.ports.smtp,
        helo = s.helo,
        mail_from = s.mail_from,
        rcpt = RCPT,
    ))
    .trim()
    .to_string()
}

/// The unfolded Authentication-Results fields of a stored message's header section.
fn auth_results(stored: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(stored);
    let header = text.split("\r\n\r\n").next().unwrap_or("");
    let mut fields: Vec<String> = Vec::new();
    for line in header.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = fields.last_mut() {
                last.push(' ');
                last.push_str(line.trim());
            }
        } else {
            fields.push(line.to_string());
        }
    }
    fields
        .into_iter()
        .filter(|f| {
            f.to_ascii_lowercase()
                .starts_with("authentication-results:")
        })
        .collect()
}

/// Our one Authentication-Results field (asserts there is exactly one with our id).
fn ours(stored: &[u8]) -> String {
    let ours: Vec<String> = auth_results(stored)
        .into_iter()
        .filter(|f| {
            f["Authentication-Results:".len()..]
                .trim_start()
                .to_ascii_lowercase()
                .starts_with(&format!("{AUTHSERV};"))
        })
        .collect();
    assert_eq!(ours.len(), 1, "{}", String::from_utf8_lossy(stored));
    ours[0].clone()
}

fn one_message(p: &Postern, folder: &str) -> Vec<u8> {
    let m = p.wait_messages(RCPT, folder, 1, Duration::from_secs(30));
    assert_eq!(m.len(), 1, "folder {folder:?}");
    m.into_iter().next().unwrap()
}

fn assert_has(h: &str, parts: &[&str]) {
    for part in parts {
        assert!(h.contains(part), "missing {part:?} in {h}");
    }
}

#[test]
fn spf_dkim_dmarc_iprev_pass_and_forged_results_removed() {
    let key = dkim_key();
    let dns = TestDns::start(&zone(&key));
    let p = start_postern(&format!("127.0.0.1:{}", dns.port), "");
    let forged = format!(
        "Authentication-Results: {AUTHSERV};\r\n\tdkim=pass header.d=bank.test\r\n\
         Authentication-Results: other.example; spf=pass smtp.mailfrom=kept@other.example\r\n"
    );
    let r = send(
        &p,
        Send {
            helo: "mail.sender.test",
            mail_from: "alice@sender.test",
            message: message("alice@sender.test", &forged),
            sign: Some(&key),
            tamper: false,
        },
    );
    assert_eq!(r, "OK");
    let stored = one_message(&p, "");
    let h = ours(&stored);
    assert_has(
        &h,
        &[
            "spf=pass",
            "smtp.mailfrom=alice@sender.test",
            "smtp.helo=mail.sender.test",
            "dkim=pass header.d=sender.test",
            "header.s=sel",
            "dmarc=pass header.from=sender.test",
            "iprev=pass policy.iprev=127.0.0.1",
        ],
    );
    let text = String::from_utf8_lossy(&stored);
    assert!(!text.contains("bank.test"), "forged field kept: {text}");
    assert!(text.contains("kept@other.example"), "foreign field removed");
    assert!(p.messages(RCPT, "Junk").is_empty());
}

#[test]
fn dkim_fails_on_tampered_body_while_spf_carries_dmarc() {
    let key = dkim_key();
    let dns = TestDns::start(&zone(&key));
    let p = start_postern(&format!("127.0.0.1:{}", dns.port), "");
    let r = send(
        &p,
        Send {
            helo: "mail.sender.test",
            mail_from: "alice@sender.test",
            message: message("alice@sender.test", ""),
            sign: Some(&key),
            tamper: true,
        },
    );
    assert_eq!(r, "OK");
    let h = ours(&one_message(&p, ""));
    assert_has(
        &h,
        &[
            "spf=pass",
            "dkim=fail",
            "header.d=sender.test",
            "dmarc=pass",
        ],
    );
}

#[test]
fn dkim_alone_passes_dmarc_when_spf_fails() {
    let key = dkim_key();
    let dns = TestDns::start(&zone(&key));
    let p = start_postern(&format!("127.0.0.1:{}", dns.port), "");
    // Envelope from a domain whose SPF forbids us; the From domain signs.
    let r = send(
        &p,
        Send {
            helo: "mail.sender.test",
            mail_from: "bounces@forbid.test",
            message: message("alice@sender.test", ""),
            sign: Some(&key),
            tamper: false,
        },
    );
    assert_eq!(r, "OK");
    let h = ours(&one_message(&p, ""));
    assert_has(
        &h,
        &[
            "spf=fail",
            "smtp.mailfrom=bounces@forbid.test",
            "dkim=pass",
            "dmarc=pass",
        ],
    );
}

#[test]
fn dmarc_reject_gives_550_and_quarantine_goes_to_junk() {
    let key = dkim_key();
    let dns = TestDns::start(&zone(&key));
    let p = start_postern(&format!("127.0.0.1:{}", dns.port), "");
    let r = send(
        &p,
        Send {
            helo: "mail.sender.test",
            mail_from: "x@forbid.test",
            message: message("x@forbid.test", ""),
            sign: None,
            tamper: false,
        },
    );
    assert!(r.starts_with("ERR 550 5.7.1"), "{r}");
    // A signature that does not verify does not save it either.
    let r = send(
        &p,
        Send {
            helo: "mail.sender.test",
            mail_from: "x@forbid.test",
            message: message("alice@sender.test", ""),
            sign: Some(&key),
            tamper: true,
        },
    );
    assert!(r.starts_with("ERR 550 5.7.1"), "{r}");

    let r = send(
        &p,
        Send {
            helo: "mail.sender.test",
            mail_from: "y@quar.test",
            message: message("y@quar.test", ""),
            sign: None,
            tamper: false,
        },
    );
    assert_eq!(r, "OK");
    let h = ours(&one_message(&p, "Junk"));
    assert_has(
        &h,
        &[
            "spf=fail",
            "dkim=none",
            "dmarc=fail",
            "header.from=quar.test",
            "policy.dmarc=quarantine",
        ],
    );
    assert!(p.messages(RCPT, "").is_empty(), "nothing reached the INBOX");
}

#[test]
fn our_own_domain_from_outside_fails_dmarc() {
    let key = dkim_key();
    let dns = TestDns::start(&zone(&key));
    let p = start_postern(&format!("127.0.0.1:{}", dns.port), "");
    let r = send(
        &p,
        Send {
            helo: "mail.sender.test",
            mail_from: "ceo@example.test",
            message: message("ceo@example.test", ""),
            sign: None,
            tamper: false,
        },
    );
    assert!(r.starts_with("ERR 550 5.7.1"), "{r}");
    assert!(p.messages(RCPT, "").is_empty());
    assert!(p.messages(RCPT, "Junk").is_empty());
}

#[test]
fn nothing_published_is_none_and_delivered() {
    let key = dkim_key();
    let dns = TestDns::start(&zone(&key));
    let p = start_postern(&format!("127.0.0.1:{}", dns.port), "");
    let r = send(
        &p,
        Send {
            helo: "client.nopolicy.test",
            mail_from: "z@nopolicy.test",
            message: message("z@nopolicy.test", ""),
            sign: None,
            tamper: false,
        },
    );
    assert_eq!(r, "OK");
    let h = ours(&one_message(&p, ""));
    assert_has(
        &h,
        &[
            "spf=none",
            "smtp.mailfrom=z@nopolicy.test",
            "dkim=none",
            "dmarc=none",
        ],
    );
}

#[test]
fn relaxed_switches_accept_into_inbox() {
    let key = dkim_key();
    let dns = TestDns::start(&zone(&key));
    let p = start_postern(
        &format!("127.0.0.1:{}", dns.port),
        "[inbound]\ndmarc_reject = false\ndmarc_quarantine = false\n",
    );
    for from in ["x@forbid.test", "y@quar.test"] {
        let r = send(
            &p,
            Send {
                helo: "mail.sender.test",
                mail_from: from,
                message: message(from, ""),
                sign: None,
                tamper: false,
            },
        );
        assert_eq!(r, "OK", "{from}");
    }
    let inbox = p.wait_messages(RCPT, "", 2, Duration::from_secs(30));
    assert_eq!(inbox.len(), 2);
    for m in &inbox {
        assert_has(&ours(m), &["spf=fail", "dmarc=fail"]);
    }
}

#[test]
fn verification_off_still_removes_forged_results() {
    let p = start_postern("127.0.0.1:9", "[inbound]\nverify = false\n");
    let forged = format!("Authentication-Results: {AUTHSERV}; dkim=pass header.d=bank.test\r\n");
    let r = send(
        &p,
        Send {
            helo: "client.nopolicy.test",
            mail_from: "z@nopolicy.test",
            message: message("z@nopolicy.test", &forged),
            sign: None,
            tamper: false,
        },
    );
    assert_eq!(r, "OK");
    let stored = one_message(&p, "");
    assert_eq!(
        ours(&stored),
        format!("Authentication-Results: {AUTHSERV}; none")
    );
    assert!(!String::from_utf8_lossy(&stored).contains("bank.test"));
}

#[test]
fn dns_timeout_gives_451_never_a_pass() {
    // A name server that receives queries and never answers.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let p = Postern::start_with(Setup {
        extra: format!("[dns]\nnameservers = [\"{addr}\"]\ntimeout_secs = 1\n"),
        ..Setup::default()
    });
    p.add_user(RCPT, "pw-unused-here");
    let r = send(
        &p,
        Send {
            helo: "mail.sender.test",
            mail_from: "alice@sender.test",
            message: message("alice@sender.test", ""),
            sign: None,
            tamper: false,
        },
    );
    assert!(r.starts_with("ERR 451 4.4.3"), "{r}");
    assert!(p.messages(RCPT, "").is_empty());
    let log = p.log();
    let line = log
        .lines()
        .find(|l| l.contains("inbound verdict"))
        .expect("one log line per verdict");
    for part in [
        "peer=127.0.0.1",
        "from_domain=sender.test",
        "spf_mailfrom=TempError",
        "dkim=none",
        "dmarc=TempError",
        "TempFail",
    ] {
        assert!(line.contains(part), "missing {part} in {line}");
    }
    drop(silent);
}

#[test]
fn pct_zero_and_test_mode_soften_reject_to_junk() {
    let key = dkim_key();
    let dns = TestDns::start(&zone(&key));
    let p = start_postern(&format!("127.0.0.1:{}", dns.port), "");
    // RFC 7489 §6.6.4: with pct=0 no message is selected, so the next lower policy
    // (quarantine) applies; DMARCbis t=y does the same.
    for (i, from) in ["x@pct0.test", "x@testing.test"].into_iter().enumerate() {
        let r = send(
            &p,
            Send {
                helo: "mail.sender.test",
                mail_from: from,
                message: message(from, ""),
                sign: None,
                tamper: false,
            },
        );
        assert_eq!(r, "OK", "{from}");
        let junk = p.wait_messages(RCPT, "Junk", i + 1, Duration::from_secs(30));
        assert_eq!(junk.len(), i + 1, "{from}");
    }
    assert!(p.messages(RCPT, "").is_empty());
}

#[test]
fn null_sender_is_checked_on_the_helo_identity() {
    let key = dkim_key();
    let dns = TestDns::start(&zone(&key));
    let p = start_postern(&format!("127.0.0.1:{}", dns.port), "");
    let r = send(
        &p,
        Send {
            helo: "mail.sender.test",
            mail_from: "",
            message: message("mailer-daemon@mail.sender.test", ""),
            sign: None,
            tamper: false,
        },
    );
    assert_eq!(r, "OK");
    let h = ours(&one_message(&p, ""));
    assert_has(
        &h,
        &[
            "spf=pass",
            "smtp.helo=mail.sender.test",
            "smtp.mailfrom=postmaster@mail.sender.test",
            "dmarc=pass header.from=mail.sender.test",
        ],
    );
}

/// A name server that answers every query with SERVFAIL (RFC 1035 §4.1.1 RCODE 2), on a
/// thread that lives as long as the test process.
fn servfail_server() -> std::net::SocketAddr {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sock.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, peer)) = sock.recv_from(&mut buf) {
            let q = &buf[..n];
            if n < 12 {
                continue;
            }
            // The question: QNAME labels up to the root label, then QTYPE and QCLASS.
            let mut i = 12;
            while i < n && q[i] != 0 {
                i += 1 + q[i] as usize;
            }
            let end = i + 5;
            if end > n {
                continue;
            }
            let mut resp = Vec::with_capacity(end);
            resp.extend_from_slice(&q[..2]); // ID
            resp.extend_from_slice(&[0x81, 0x82]); // QR, RD, RA, RCODE=SERVFAIL
            resp.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // one question, nothing else
            resp.extend_from_slice(&q[12..end]);
            let _ = sock.send_to(&resp, peer);
        }
    });
    addr
}

#[test]
fn servfail_gives_451_never_a_pass() {
    let addr = servfail_server();
    let p = Postern::start_with(Setup {
        extra: format!("[dns]\nnameservers = [\"{addr}\"]\ntimeout_secs = 2\n"),
        ..Setup::default()
    });
    p.add_user(RCPT, "pw-unused-here");
    let r = send(
        &p,
        Send {
            helo: "mail.sender.test",
            mail_from: "alice@sender.test",
            message: message("alice@sender.test", ""),
            sign: None,
            tamper: false,
        },
    );
    assert!(r.starts_with("ERR 451 4.4.3"), "{r}");
    assert!(p.messages(RCPT, "").is_empty());
}

#[test]
fn large_signed_message_is_verified_from_the_spool_and_stored_exactly() {
    // 2 MiB: over the 256 KiB in-memory threshold, so the body is verified from the mapped
    // spool file. Nine more DKIM-Signature fields than are verified make the verifier work
    // on a cut copy (spooled too); the forged Authentication-Results field is left out when
    // the stored file is written from the spool.
    let key = dkim_key();
    let dns = TestDns::start(&zone(&key));
    let p = start_postern(&format!("127.0.0.1:{}", dns.port), "");
    let mut extra = format!("Authentication-Results: {AUTHSERV}; dkim=pass header.d=bank.test\r\n");
    for i in 0..9 {
        extra.push_str(&format!("DKIM-Signature: v=1; broken{i}\r\n"));
    }
    let base = message("alice@sender.test", "");
    let mut body = String::new();
    let mut i = 0;
    while body.len() < 2 << 20 {
        body.push_str(&format!(
            ".line {i} of a large message, {}\r\n",
            "xyz".repeat(20)
        ));
        i += 1;
    }
    let r = send(
        &p,
        Send {
            helo: "mail.sender.test",
            mail_from: "alice@sender.test",
            message: format!("{extra}{base}{body}"),
            sign: Some(&key),
            tamper: false,
        },
    );
    assert_eq!(r, "OK");
    let stored = one_message(&p, "");
    assert_has(
        &ours(&stored),
        &["spf=pass", "dkim=pass header.d=sender.test", "dmarc=pass"],
    );
    let text = String::from_utf8_lossy(&stored);
    assert!(!text.contains("bank.test"), "forged field kept");
    let kept = format!(
        "{}{base}{body}",
        &extra[extra.find("DKIM-Signature").unwrap()..]
    );
    assert!(text.ends_with(&kept), "stored message is not the one sent");
    let spool = p.data_dir().join("spool").join("tmp");
    assert_eq!(
        std::fs::read_dir(spool).unwrap().count(),
        0,
        "spool not empty"
    );
}
