//! SRS for forwarded mail: a port-25 message to an alias with a remote target leaves with
//! MAIL FROM:<SRS0=...@example.test>; a bounce (null sender) to that address is accepted and
//! relayed to the original sender; forged SRS addresses and non-bounces are refused.
//! Peers: dnsmasq (DNS), Postfix's smtp-sink (the remote MX on 127.0.0.x).

mod common;
mod outbound_support;

use std::time::Duration;

use common::{Raw, free_port};
use outbound_support::*;

const WAIT: Duration = Duration::from_secs(40);

/// One SMTP transaction on port 25; returns the RCPT reply and (if RCPT was accepted)
/// the reply to the end of DATA.
fn smtp(port: u16, from: &str, rcpt: &str, body: &str) -> (String, Option<String>) {
    let mut c = Raw::connect(port);
    assert!(c.reply().starts_with("220"));
    c.send("EHLO client.sender.test\r\n");
    assert!(c.reply().starts_with("250"));
    c.send(&format!("MAIL FROM:<{from}>\r\n"));
    let mail = c.reply();
    assert!(mail.starts_with("250"), "MAIL: {mail}");
    c.send(&format!("RCPT TO:<{rcpt}>\r\n"));
    let rcpt_reply = c.reply();
    if !rcpt_reply.starts_with("250") {
        c.send("QUIT\r\n");
        return (rcpt_reply, None);
    }
    c.send("DATA\r\n");
    assert!(c.reply().starts_with("354"));
    c.send(body);
    c.send("\r\n.\r\n");
    let end = c.reply();
    c.send("QUIT\r\n");
    (rcpt_reply, Some(end))
}

fn message(from: &str, subject: &str, id: &str) -> String {
    format!(
        "From: {from}\r\nTo: fwd@example.test\r\nSubject: {subject}\r\nMessage-ID: <{id}@sender.test>\r\nDate: Sun, 29 Nov 2026 06:00:00 +0000\r\n\r\nBody.\r\n"
    )
}

/// The SRS0 address in the sink's dump of the forwarded message.
fn srs_address(dump: &str) -> String {
    let start = dump.find("SRS0=").expect("an SRS0 address in the dump");
    let end = start + dump[start..].find('>').expect("closing bracket");
    dump[start..end].to_string()
}

#[test]
fn forwarded_mail_gets_srs_sender_and_its_bounce_returns() {
    let port = free_port();
    let dns = Dns::start(&[
        "mx-host=remote.test,mx.remote.test,10".into(),
        "mx-host=sender.test,mx.remote.test,10".into(),
        "host-record=mx.remote.test,127.0.0.31".into(),
    ]);
    let sink = SmtpSink::start("127.0.0.31", port, &[]);
    let p = sender(&dns, port, "");
    p.add_user("local@example.test", "pw-local-1");
    p.add_alias(
        "fwd@example.test",
        &["someone@remote.test", "local@example.test"],
    );

    // 1. Forwarding: the envelope sender is rewritten, the local copy keeps the original.
    let (rcpt, end) = smtp(
        p.ports.smtp,
        "a@sender.test",
        "fwd@example.test",
        &message("a@sender.test", "forwarded", "fwd1"),
    );
    assert!(rcpt.starts_with("250"), "RCPT: {rcpt}");
    assert!(end.unwrap().starts_with("250"));
    let got = sink.wait_messages(1, WAIT);
    assert_eq!(
        got.len(),
        1,
        "forwarded copy at the sink; log:\n{}",
        p.log()
    );
    let dump = &got[0];
    assert!(
        dump.contains("X-Mail-Args: <SRS0="),
        "MAIL FROM is SRS0; dump:\n{dump}"
    );
    let srs = srs_address(dump);
    assert!(
        srs.ends_with("=sender.test=a@example.test"),
        "SRS0 address encodes a@sender.test at example.test: {srs}"
    );
    assert!(dump.contains("someone@remote.test"));
    let local = p.wait_messages("local@example.test", "", 1, WAIT);
    assert_eq!(local.len(), 1);
    let local = String::from_utf8_lossy(&local[0]);
    assert!(
        local.starts_with("Return-Path: <a@sender.test>"),
        "local copy keeps the original Return-Path:\n{local}"
    );

    // 2. A bounce to the SRS address is accepted and relayed, null sender, to a@sender.test.
    let (rcpt, end) = smtp(
        p.ports.smtp,
        "",
        &srs,
        &message("MAILER-DAEMON@remote.test", "Undelivered", "bounce1"),
    );
    assert!(rcpt.starts_with("250"), "RCPT of the bounce: {rcpt}");
    assert!(end.unwrap().starts_with("250"));
    let got = sink.wait_messages(2, WAIT);
    assert_eq!(
        got.len(),
        2,
        "bounce relayed to the sink; log:\n{}",
        p.log()
    );
    let bounce = got
        .iter()
        .find(|m| m.contains("bounce1@sender.test"))
        .expect("the bounce at the sink");
    assert!(
        bounce.contains("X-Rcpt-Args: <a@sender.test>"),
        "bounce goes to the original sender:\n{bounce}"
    );
    assert!(
        bounce.contains("X-Mail-Args: <>"),
        "bounce keeps the null sender:\n{bounce}"
    );

    // 3. The same SRS address with a real sender: not a bounce, refused (no open relay).
    let (rcpt, _) = smtp(
        p.ports.smtp,
        "spammer@evil.test",
        &srs,
        &message("spammer@evil.test", "replay", "replay1"),
    );
    assert!(rcpt.starts_with("550 5.7.1"), "non-bounce to SRS: {rcpt}");

    // 4. A forged hash, or a well-formed address made up by someone else: 550 5.1.1.
    let forged = srs.replacen("=sender.test=a@", "=evil.test=a@", 1);
    let (rcpt, _) = smtp(p.ports.smtp, "", &forged, "");
    assert!(rcpt.starts_with("550 5.1.1"), "forged SRS: {rcpt}");
    let (rcpt, _) = smtp(
        p.ports.smtp,
        "",
        "SRS0=AAAA=AA=sender.test=a@example.test",
        "",
    );
    assert!(rcpt.starts_with("550 5.1.1"), "made-up SRS: {rcpt}");
    assert!(wait_queue_empty(&p, WAIT));
}

#[test]
fn our_own_dsn_for_a_forwarded_message_reaches_the_original_sender() {
    let port = free_port();
    let dns = Dns::start(&[
        "mx-host=reject.test,mx.reject.test,10".into(),
        "host-record=mx.reject.test,127.0.0.32".into(),
        "mx-host=sender.test,mx.sender.test,10".into(),
        "host-record=mx.sender.test,127.0.0.33".into(),
    ]);
    let _rejecting = SmtpSink::start("127.0.0.32", port, &["-f", "rcpt"]);
    let origin = SmtpSink::start("127.0.0.33", port, &[]);
    let p = sender(&dns, port, "");
    p.add_alias("fwd@example.test", &["someone@reject.test"]);

    let (rcpt, end) = smtp(
        p.ports.smtp,
        "a@sender.test",
        "fwd@example.test",
        &message("a@sender.test", "will bounce", "fwd2"),
    );
    assert!(rcpt.starts_with("250"), "RCPT: {rcpt}");
    assert!(end.unwrap().starts_with("250"));
    // The remote refuses; postern's DSN goes to the SRS0 sender, which it unwraps and
    // passes on, still with the null sender, to a@sender.test.
    let got = origin.wait_messages(1, WAIT);
    assert_eq!(
        got.len(),
        1,
        "DSN at the original sender; log:\n{}",
        p.log()
    );
    assert!(
        got[0].contains("X-Rcpt-Args: <a@sender.test>"),
        "{}",
        got[0]
    );
    assert!(got[0].contains("X-Mail-Args: <>"), "{}", got[0]);
    assert!(got[0].contains("someone@reject.test"), "{}", got[0]);
    assert!(wait_queue_empty(&p, WAIT));
}

#[test]
fn srs_off_forwards_with_the_original_sender_and_refuses_srs_recipients() {
    let port = free_port();
    let dns = Dns::start(&[
        "mx-host=remote.test,mx.remote.test,10".into(),
        "host-record=mx.remote.test,127.0.0.34".into(),
    ]);
    let sink = SmtpSink::start("127.0.0.34", port, &[]);
    let p = sender(&dns, port, "[delivery]\nsrs = false\n");
    p.add_alias("fwd@example.test", &["someone@remote.test"]);
    let (rcpt, end) = smtp(
        p.ports.smtp,
        "a@sender.test",
        "fwd@example.test",
        &message("a@sender.test", "plain forward", "fwd3"),
    );
    assert!(rcpt.starts_with("250"), "RCPT: {rcpt}");
    assert!(end.unwrap().starts_with("250"));
    let got = sink.wait_messages(1, WAIT);
    assert_eq!(got.len(), 1, "log:\n{}", p.log());
    assert!(
        got[0].contains("X-Mail-Args: <a@sender.test>"),
        "{}",
        got[0]
    );
    assert!(!p.data_dir().join("srs.key").exists());
    // Without SRS an SRS-looking address is just an unknown local user.
    let (rcpt, _) = smtp(
        p.ports.smtp,
        "",
        "SRS0=AAAA=AA=sender.test=a@example.test",
        "",
    );
    assert!(rcpt.starts_with("550 5.1.1"), "{rcpt}");
}
