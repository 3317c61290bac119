//! DNS blocklists (RFC 5782) over real port-25 sessions: dnsmasq serves a test list
//! `bl.test` where 127.0.0.2 (the RFC 5782 §5 test entry) is listed with a TXT reason,
//! 127.0.0.3 gets an answer outside 127/8 (what an NXDOMAIN-rewriting resolver returns)
//! and 127.0.0.4 is listed but allowlisted; Python's smtplib connects from each of those
//! source addresses.

mod common;
use common::dnsmasq::TestDns;
use common::*;

use std::time::Duration;

const RCPT: &str = "user@example.test";

fn zone(blackhole_port: u16) -> String {
    let mut z = String::new();
    z += "host-record=2.0.0.127.bl.test,127.0.0.2\n";
    z += "txt-record=2.0.0.127.bl.test,\"Listed for testing; see http://bl.test/?127.0.0.2\"\n";
    z += "host-record=3.0.0.127.bl.test,10.0.0.1\n";
    z += "host-record=4.0.0.127.bl.test,127.0.0.2\n";
    // A list whose server never answers: every query to it times out.
    z += &format!("server=/slow.test/127.0.0.1#{blackhole_port}\n");
    z
}

fn start(dns: &TestDns, spam: &str) -> Postern {
    let p = Postern::start_with(Setup {
        extra: format!(
            "[dns]\nnameservers = [\"{}\"]\ntimeout_secs = 1\n[spam]\n{spam}\n",
            dns.addr()
        ),
        ..Setup::default()
    });
    p.add_user(RCPT, "pw-unused-here");
    p
}

/// Deliver over port 25 from `source`; "OK" or "ERR <code> <text>".
fn send(p: &Postern, source: &str, tag: &str, extra_headers: &str) -> String {
    python(&format!(
        r#"
import smtplib
msg = ("{extra_headers}From: Sender <a@sender.test>\r\nTo: {RCPT}\r\nSubject: {tag}\r\n"
       "Message-ID: <{tag}@sender.test>\r\n\r\nHello.\r\n").encode()
s = smtplib.SMTP('127.0.0.1', {port}, local_hostname='client.sender.test', timeout=60,
                 source_address=('{source}', 0))
try:
    s.sendmail('a@sender.test', ['{RCPT}'], msg)
    print('OK')
except smtplib.SMTPRecipientsRefused as e:
    code, text = e.recipients['{RCPT}']
    print('ERR', code, text.decode())
except smtplib.SMTPResponseException as e:
    print('ERR', e.smtp_code, e.smtp_error.decode())
try:
    s.quit()
except Exception:
    pass
"#,
        port = p.ports.smtp,
    ))
    .trim()
    .to_string()
}

fn header_value(msg: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(msg);
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    head.split("\r\n")
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with(&format!("{}:", name.to_ascii_lowercase()))
        })
        .map(|l| l[name.len() + 1..].trim().to_string())
}

fn find<'a>(msgs: &'a [Vec<u8>], tag: &str) -> Option<&'a Vec<u8>> {
    msgs.iter()
        .find(|m| String::from_utf8_lossy(m).contains(&format!("Subject: {tag}\r\n")))
}

#[test]
fn listed_client_is_refused_at_rcpt() {
    if !client_available("dnsmasq", which("dnsmasq")) {
        return;
    }
    let blackhole = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let dns = TestDns::start(&zone(blackhole.local_addr().unwrap().port()));
    let p = start(
        &dns,
        "dnsbl = [\"slow.test\", \"bl.test\"]\ndnsbl_action = \"reject\"\ndnsbl_allowlist = [\"127.0.0.4/32\"]",
    );

    // 127.0.0.2 is on bl.test: 554 5.7.1 at RCPT naming the zone and the TXT reason.
    let r = send(&p, "127.0.0.2", "listed", "");
    assert!(r.starts_with("ERR 554 5.7.1"), "{r}");
    assert!(r.contains("bl.test"), "{r}");
    assert!(
        r.contains("Listed for testing; see http://bl.test/?127.0.0.2"),
        "{r}"
    );
    assert!(p.log().contains("dnsbl: client listed"), "{}", p.log());

    // 127.0.0.1 is not listed; slow.test times out and that never rejects.
    assert_eq!(send(&p, "127.0.0.1", "clean", ""), "OK");
    assert!(p.log().contains("treated as not listed"), "{}", p.log());
    // 127.0.0.3 gets 10.0.0.1: not a listing, logged.
    assert_eq!(send(&p, "127.0.0.3", "hijacked", ""), "OK");
    assert!(p.log().contains("dnsbl answer ignored"), "{}", p.log());
    // 127.0.0.4 is listed but allowlisted.
    assert_eq!(send(&p, "127.0.0.4", "allowed", ""), "OK");

    let inbox = p.wait_messages(RCPT, "", 3, Duration::from_secs(10));
    assert_eq!(inbox.len(), 3);
    assert!(find(&inbox, "listed").is_none());
    for tag in ["clean", "hijacked", "allowed"] {
        let m = find(&inbox, tag).unwrap_or_else(|| panic!("{tag} not in INBOX"));
        assert!(header_value(m, "X-Postern-Spam").is_none());
    }
    assert!(p.messages(RCPT, "Junk").is_empty());
}

#[test]
fn listed_client_goes_to_junk_with_a_header() {
    if !client_available("dnsmasq", which("dnsmasq")) {
        return;
    }
    let dns = TestDns::start(&zone(1));
    let p = start(&dns, "dnsbl = [\"bl.test\"]\ndnsbl_action = \"junk\"");

    assert_eq!(send(&p, "127.0.0.2", "listed", ""), "OK");
    let junk = p.wait_messages(RCPT, "Junk", 1, Duration::from_secs(10));
    let m = find(&junk, "listed").expect("listed mail in Junk");
    let h = header_value(m, "X-Postern-Spam").expect("X-Postern-Spam header");
    assert!(h.starts_with("dnsbl=bl.test (127.0.0.2)"), "{h}");
    assert!(h.contains("Listed for testing"), "{h}");

    // Unlisted: INBOX, and a forged X-Postern-Spam header from outside is removed.
    assert_eq!(
        send(
            &p,
            "127.0.0.1",
            "clean",
            "X-Postern-Spam: dnsbl=forged\\r\\n"
        ),
        "OK"
    );
    let inbox = p.wait_messages(RCPT, "", 1, Duration::from_secs(10));
    let m = find(&inbox, "clean").expect("clean mail in INBOX");
    assert!(
        header_value(m, "X-Postern-Spam").is_none(),
        "{}",
        String::from_utf8_lossy(m)
    );
    assert_eq!(p.messages(RCPT, "Junk").len(), 1);
}
