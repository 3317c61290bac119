//! Outbound delivery through DNS: MX preference and fallback, implicit MX, null MX, per-
//! recipient outcomes with DSNs, 4xx then success on retry, DKIM verified by dkimpy.
//! Peers: dnsmasq (DNS), Postfix's smtp-sink and a scripted sink (MX hosts on 127.0.0.x).

mod common;
mod outbound_support;

use std::time::Duration;

use common::{free_port, peers, python};
use outbound_support::*;

const WAIT: Duration = Duration::from_secs(40);

fn msg(subject: &str, to: &str) -> String {
    format!("From: alice@example.test\nTo: {to}\nSubject: {subject}\n\nHello from the test.\n")
}

#[test]
fn mx_preference_then_fallback_when_first_mx_is_down() {
    let port = free_port();
    let dns = Dns::start(&[
        "mx-host=pref.test,mx1.pref.test,10".into(),
        "mx-host=pref.test,mx2.pref.test,20".into(),
        "host-record=mx1.pref.test,127.0.0.11".into(),
        "host-record=mx2.pref.test,127.0.0.12".into(),
    ]);
    let mut mx1 = SmtpSink::start("127.0.0.11", port, &[]);
    let mx2 = SmtpSink::start("127.0.0.12", port, &[]);
    let p = sender(&dns, port, "[queue]\nretry_schedule_secs = [2]\n");

    // Both up: the lower preference wins.
    sendmail(
        &p,
        &["-f", "alice@example.test", "bob@pref.test"],
        &msg("first", "bob@pref.test"),
    );
    let got = mx1.wait_messages(1, WAIT);
    assert_eq!(got.len(), 1, "first message at mx1; log:\n{}", p.log());
    assert!(got[0].contains("Subject: first"));
    assert!(mx2.messages().is_empty());

    // mx1 down: delivery falls back to mx2 in the same attempt.
    mx1.stop();
    sendmail(
        &p,
        &["-f", "alice@example.test", "bob@pref.test"],
        &msg("second", "bob@pref.test"),
    );
    let got = mx2.wait_messages(1, WAIT);
    assert_eq!(got.len(), 1, "second message at mx2; log:\n{}", p.log());
    assert!(got[0].contains("Subject: second"));
    assert!(p.log().contains("trying the next address"));
    assert!(wait_queue_empty(&p, WAIT));
}

#[test]
fn implicit_mx_uses_the_domain_address() {
    let port = free_port();
    let dns = Dns::start(&["host-record=implicit.test,127.0.0.13".into()]);
    let sink = SmtpSink::start("127.0.0.13", port, &[]);
    let p = sender(&dns, port, "");
    sendmail(
        &p,
        &["carol@implicit.test"],
        &msg("implicit", "carol@implicit.test"),
    );
    let got = sink.wait_messages(1, WAIT);
    assert_eq!(got.len(), 1, "log:\n{}", p.log());
    assert!(got[0].contains("carol@implicit.test"));
}

#[test]
fn null_mx_bounces_to_the_sender() {
    let dns = Dns::start(&["mx-host=nullmx.test,.,0".into()]);
    let p = sender(&dns, free_port(), "");
    p.add_user("alice@example.test", "pw-alice-1");
    sendmail(
        &p,
        &["-f", "alice@example.test", "dave@nullmx.test"],
        &msg("to null mx", "dave@nullmx.test"),
    );
    let inbox = p.wait_messages("alice@example.test", "", 1, WAIT);
    assert_eq!(inbox.len(), 1, "DSN in alice's INBOX; log:\n{}", p.log());
    let dsn = String::from_utf8_lossy(&inbox[0]);
    assert!(
        dsn.contains("Final-Recipient: rfc822; dave@nullmx.test"),
        "{dsn}"
    );
    assert!(dsn.contains("Status: 5.1.10"), "{dsn}");
    assert!(dsn.contains("Action: failed"));
    assert!(
        dsn.contains("Return-Path: <>"),
        "DSNs come from the null sender"
    );
    assert!(wait_queue_empty(&p, WAIT));
}

#[test]
fn one_recipient_rejected_one_accepted_gives_a_dsn() {
    let port = free_port();
    let dns = Dns::start(&[
        "mx-host=mixed.test,mx.mixed.test,10".into(),
        "host-record=mx.mixed.test,127.0.0.14".into(),
    ]);
    let sink = ScriptSink::start("127.0.0.14", port);
    let p = sender(&dns, port, "");
    p.add_user("alice@example.test", "pw-alice-1");
    sendmail(
        &p,
        &[
            "-f",
            "alice@example.test",
            "good@mixed.test",
            "bad@mixed.test",
        ],
        &msg("mixed outcome", "good@mixed.test, bad@mixed.test"),
    );
    let got = sink.wait(1, WAIT);
    assert_eq!(got.len(), 1, "log:\n{}", p.log());
    assert_eq!(got[0].rcpts, vec!["good@mixed.test".to_string()]);
    let inbox = p.wait_messages("alice@example.test", "", 1, WAIT);
    assert_eq!(inbox.len(), 1, "log:\n{}", p.log());
    let dsn = String::from_utf8_lossy(&inbox[0]).into_owned();
    // An independent parser checks the RFC 3464 structure.
    let out = python(&format!(
        r#"
import email, sys
m = email.message_from_bytes({dsn:?}.encode())
assert m.get_content_type() == "multipart/report", m.get_content_type()
assert m.get_param("report-type") == "delivery-status"
parts = m.get_payload()
assert [p.get_content_type() for p in parts] == ["text/plain", "message/delivery-status", "text/rfc822-headers"], [p.get_content_type() for p in parts]
blocks = parts[1].get_payload()
per_rcpt = blocks[1]
print(per_rcpt["Final-Recipient"], per_rcpt["Action"], per_rcpt["Status"], per_rcpt["Remote-MTA"], sep="|")
print(per_rcpt["Diagnostic-Code"])
print("orig-subject:", "Subject: mixed outcome" in parts[2].get_payload())
"#
    ));
    assert!(
        out.contains("rfc822; bad@mixed.test|failed|5.1.1|dns; mx.mixed.test"),
        "{out}"
    );
    assert!(
        out.contains("smtp; 550 5.1.1 <bad@mixed.test>: no such user"),
        "{out}"
    );
    assert!(out.contains("orig-subject: True"), "{out}");
    assert!(
        !dsn.contains("good@mixed.test>: "),
        "only the failed recipient is reported"
    );
    assert!(wait_queue_empty(&p, WAIT));
}

#[test]
fn transient_failure_then_success_on_retry() {
    let port = free_port();
    let dns = Dns::start(&[
        "mx-host=later.test,mx.later.test,10".into(),
        "host-record=mx.later.test,127.0.0.15".into(),
    ]);
    let mut busy = SmtpSink::start("127.0.0.15", port, &["-r", "rcpt"]);
    // A long schedule: only `postern queue retry` brings the message back early.
    let p = sender(&dns, port, "[queue]\nretry_schedule_secs = [3600]\n");
    sendmail(
        &p,
        &["erin@later.test"],
        &msg("retry me", "erin@later.test"),
    );
    assert!(
        p.wait_log("deferred=1", WAIT),
        "4xx must defer; log:\n{}",
        p.log()
    );
    // The envelope records the attempt right after the transaction.
    let deadline = std::time::Instant::now() + WAIT;
    let mut list = queue_list(&p);
    while !list.contains("1 attempts") && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        list = queue_list(&p);
    }
    assert!(list.contains("erin@later.test"), "{list}");
    assert!(list.contains("450 4.3.0"), "the 4xx reply is shown: {list}");
    assert!(list.contains("retry in"), "{list}");
    assert!(list.contains("1 attempts"), "{list}");
    busy.stop();
    let ok = SmtpSink::start("127.0.0.15", port, &[]);
    let out = p.cli(&["queue", "retry", "--all"], None);
    assert!(out.status.success());
    let got = ok.wait_messages(1, WAIT);
    assert_eq!(got.len(), 1, "log:\n{}", p.log());
    assert!(got[0].contains("Subject: retry me"));
    assert!(wait_queue_empty(&p, WAIT));
}

#[test]
fn dkim_signature_verifies_with_dkimpy() {
    // PyNaCl is what lets dkimpy verify ed25519-sha256: without it this is a missing peer,
    // not a DKIM failure.
    if !peers::dkimpy_ed25519().available() {
        return;
    }
    peers::openssl().essential();
    let port = free_port();
    let dns = Dns::start(&[
        "mx-host=dkim.test,mx.dkim.test,10".into(),
        "host-record=mx.dkim.test,127.0.0.16".into(),
    ]);
    let sink = SmtpSink::start("127.0.0.16", port, &[]);
    let p = sender(&dns, port, "");
    sendmail(
        &p,
        &["-f", "alice@example.test", "frank@dkim.test"],
        "From: Alice <alice@example.test>\nTo: frank@dkim.test\nSubject: signed =?utf-8?q?caf=C3=A9?=\n\n.leading dot line\nline two   \n\n\n",
    );
    let got = sink.wait_messages(1, WAIT);
    assert_eq!(got.len(), 1, "log:\n{}", p.log());
    // Drop smtp-sink's X- lines; the message itself follows.
    let raw = &got[0];
    let start = raw.find("DKIM-Signature:").expect("signed");
    let message = &raw[start..];
    // The RSA public key, derived independently from the private key file with openssl.
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
    // The Ed25519 public key, derived by PyNaCl from the 32-byte seed in the PKCS#8 file
    // (OpenSSL 3.0 does not read ring's PKCS#8 v2 documents).
    let ed_pem = std::fs::read_to_string(p.data_dir().join("dkim/ed25519.pem")).unwrap();
    let ed = python(&format!(
        r#"
import base64, nacl.signing
der = base64.b64decode("".join(l for l in {ed_pem:?}.splitlines() if "-----" not in l))
i = der.index(bytes([4, 34, 4, 32])) + 4
print(base64.b64encode(bytes(nacl.signing.SigningKey(der[i:i+32]).verify_key)).decode())
"#
    ));
    let ed = ed.trim().to_string();
    assert_eq!(ed.len(), 44, "PyNaCl derived an Ed25519 key: {ed}");
    let script = format!(
        r#"
import dkim
msg = {message:?}.replace("\n", "\r\n").encode()
recs = {{b"postern._domainkey.example.test.": b"v=DKIM1; k=rsa; p={rsa}",
        b"postern-ed._domainkey.example.test.": b"v=DKIM1; k=ed25519; p={ed}"}}
def dnsfunc(name, timeout=5):
    return recs[name]
n = msg.split(b"\r\n\r\n", 1)[0].count(b"\r\nDKIM-Signature:") + msg.startswith(b"DKIM-Signature:")
print("signatures", n)
for idx in range(n):
    d = dkim.DKIM(msg)
    ok = d.verify(idx=idx, dnsfunc=dnsfunc)
    print("verified" if ok else "FAILED", d.signature_fields.get(b"a").decode())
# Tampering with an oversigned header must break the signature.
bad = msg.replace(b"\r\n\r\n", b"\r\nSubject: injected\r\n\r\n", 1)
print("tampered-fails" if not dkim.verify(bad, dnsfunc=dnsfunc) else "TAMPER-PASSED")
"#
    );
    let out = python(&script);
    assert!(out.contains("signatures 2"), "{out}");
    assert!(out.contains("verified rsa-sha256"), "{out}");
    assert!(out.contains("verified ed25519-sha256"), "{out}");
    assert!(!out.contains("FAILED"), "{out}");
    assert!(out.contains("tampered-fails"), "{out}");
}

#[test]
fn opportunistic_starttls_with_an_unverifiable_certificate() {
    let port = free_port();
    let dns = Dns::start(&[
        "mx-host=tls.test,mx.tls.test,10".into(),
        "host-record=mx.tls.test,127.0.0.25".into(),
    ]);
    let sink = ScriptSink::start_tls("127.0.0.25", port);
    let p = sender(&dns, port, "");
    sendmail(&p, &["mia@tls.test"], &msg("over tls", "mia@tls.test"));
    let got = sink.wait(1, WAIT);
    assert_eq!(got.len(), 1, "log:\n{}", p.log());
    assert!(got[0].tls, "the message went over STARTTLS");
    assert!(got[0].data.contains("Subject: over tls"));
    // The sink records the message before postern logs the transaction: wait for the line.
    assert!(
        p.wait_log("tls=true tls_verified=false", WAIT),
        "log:\n{}",
        p.log()
    );
    assert!(
        p.log().contains("does not verify"),
        "the log says the certificate did not verify"
    );
}

#[test]
fn require_tls_refuses_an_unverifiable_certificate() {
    let port = free_port();
    let dns = Dns::start(&[
        "mx-host=strict.test,mx.strict.test,10".into(),
        "host-record=mx.strict.test,127.0.0.26".into(),
    ]);
    let sink = ScriptSink::start_tls("127.0.0.26", port);
    let p = sender(&dns, port, "require_tls = true\n");
    sendmail(
        &p,
        &["noel@strict.test"],
        &msg("must not go", "noel@strict.test"),
    );
    assert!(
        p.wait_log("policy requires TLS with a valid certificate", WAIT),
        "log:\n{}",
        p.log()
    );
    assert!(sink.received.lock().unwrap().is_empty());
    assert!(queue_list(&p).contains("noel@strict.test"));
}

#[test]
fn connections_per_domain_are_limited() {
    let port = free_port();
    let dns = Dns::start(&[
        "mx-host=busy.test,mx.busy.test,10".into(),
        "host-record=mx.busy.test,127.0.0.32".into(),
    ]);
    // Each session waits before its greeting, so unlimited deliveries would overlap.
    let sink = ScriptSink::start_slow("127.0.0.32", port, Duration::from_millis(700));
    let p = sender(&dns, port, "max_connections_per_domain = 2\n");
    for i in 0..6 {
        sendmail(
            &p,
            &[&format!("user{i}@busy.test")],
            &msg(&format!("busy {i}"), "x@busy.test"),
        );
    }
    let got = sink.wait(6, WAIT);
    assert_eq!(got.len(), 6, "log:\n{}", p.log());
    let peak = sink.peak.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        peak <= 2,
        "at most 2 connections at once to busy.test, saw {peak}"
    );
    assert!(wait_queue_empty(&p, WAIT));
}
