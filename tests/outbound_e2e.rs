//! End to end: a real client submits on 465, the queue finds the MX through DNS, the message
//! reaches the MX DKIM-signed and verifies with dkimpy against the record `postern dns`
//! publishes; and postern-to-postern delivery over opportunistic STARTTLS.

mod common;
mod outbound_support;

use std::time::Duration;

use common::{Postern, Setup, free_port, peers, python};
use outbound_support::*;

const WAIT: Duration = Duration::from_secs(40);

/// The TXT value of `name` in `postern dns` output (quoted strings joined, RFC 1035 §5.1).
fn zone_txt(zone: &str, name: &str) -> String {
    let line = zone
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("no {name} in:\n{zone}"));
    line.split('"')
        .skip(1)
        .step_by(2)
        .collect::<Vec<_>>()
        .concat()
}

#[test]
fn submitted_on_465_reaches_the_mx_and_dkim_verifies() {
    if !peers::dkimpy().available() {
        return;
    }
    let port = free_port();
    let dns = Dns::start(&[
        "mx-host=e2e.test,mx.e2e.test,10".into(),
        "host-record=mx.e2e.test,127.0.0.27".into(),
    ]);
    let sink = SmtpSink::start("127.0.0.27", port, &[]);
    let p = sender(&dns, port, "");
    p.add_user("alice@example.test", "pw-alice-secret");
    let script = format!(
        r#"
import smtplib, ssl
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP_SSL("127.0.0.1", {port}, context=ctx, timeout=30)
s.login("alice@example.test", "pw-alice-secret")
msg = ("From: Alice <alice@example.test>\r\nTo: Omar <omar@e2e.test>\r\n"
       "Subject: end to end\r\n\r\nSent with smtplib over implicit TLS.\r\n")
print(s.sendmail("alice@example.test", ["omar@e2e.test"], msg))
s.quit()
"#,
        port = p.ports.submissions
    );
    assert_eq!(python(&script).trim(), "{}", "every recipient accepted");
    let got = sink.wait_messages(1, WAIT);
    assert_eq!(got.len(), 1, "log:\n{}", p.log());
    let raw = &got[0];
    assert!(raw.contains("Subject: end to end"));
    let start = raw
        .find("DKIM-Signature:")
        .expect("the message is DKIM-signed");
    let message = &raw[start..];

    let zone = p.cli(&["dns"], None);
    assert!(zone.status.success());
    let zone = String::from_utf8_lossy(&zone.stdout).into_owned();
    let record = zone_txt(&zone, "postern._domainkey.example.test.");
    assert!(record.starts_with("v=DKIM1; k=rsa; p="), "{record}");
    let out = python(&format!(
        r#"
import dkim
msg = {message:?}.replace("\n", "\r\n").encode()
def dnsfunc(name, timeout=5):
    assert name == b"postern._domainkey.example.test.", name
    return {record:?}.encode()
print("verified" if dkim.verify(msg, dnsfunc=dnsfunc) else "FAILED")
"#
    ));
    assert!(out.contains("verified"), "{out}");
    assert!(wait_queue_empty(&p, WAIT));
}

#[test]
fn postern_delivers_to_another_postern_over_starttls() {
    // The receiving postern hosts remote.test and listens for port-25 mail on 127.0.0.1.
    let receiver = Postern::start_with(Setup {
        domain: "remote.test".into(),
        hostname: "mx.remote.test".into(),
        extra: "[inbound]\nverify = false\n".into(),
        tls: None,
    });
    receiver.add_user("pat@remote.test", "pw-pat-secret");
    let dns = Dns::start(&[
        "mx-host=remote.test,mx.remote.test,10".into(),
        "host-record=mx.remote.test,127.0.0.1".into(),
    ]);
    let p = sender(&dns, receiver.ports.smtp, "");
    sendmail(
        &p,
        &["-f", "alice@example.test", "pat@remote.test"],
        "From: alice@example.test\nTo: pat@remote.test\nSubject: postern to postern\n\nhello pat\n",
    );
    let inbox = receiver.wait_messages("pat@remote.test", "", 1, WAIT);
    assert_eq!(
        inbox.len(),
        1,
        "sender log:\n{}\nreceiver log:\n{}",
        p.log(),
        receiver.log()
    );
    let m = String::from_utf8_lossy(&inbox[0]);
    assert!(m.contains("Subject: postern to postern"));
    assert!(m.contains("DKIM-Signature:"));
    // The receiver's self-signed certificate does not verify: encrypted anyway, and logged.
    assert!(
        p.wait_log("tls=true tls_verified=false", WAIT),
        "log:\n{}",
        p.log()
    );
    assert!(wait_queue_empty(&p, WAIT));
}
