//! Sieve on every local delivery path, end to end: `postern sendmail` to a local user and
//! the queue scheduler (a redirect from another user's script reaches the target through
//! the queue) both run the recipient's script; imap4flags keywords are stored and IMAP
//! (Python imaplib) shows them; a reject after the transaction is an RFC 3464 DSN with
//! Status 5.7.1; a failing script keeps the message and leaves one notice in INBOX.

mod common;

use std::time::Duration;

use common::{Postern, python};

const ME: &str = r#"require ["fileinto", "mailbox", "imap4flags", "reject"];
if header :contains "Subject" "tagged" {
    addflag "$Work";
    addflag "\\Flagged";
    fileinto :create "Tagged";
    stop;
}
if header :is "Subject" "reject me" {
    reject "Not wanted here.";
    stop;
}
if header :is "Subject" "loop" {
    redirect "friend@example.test";
    stop;
}
if header :is "Subject" "broken" {
    fileinto "NoSuchBox";
}
"#;

fn cli_ok(p: &Postern, args: &[&str], stdin: Option<&str>) {
    let out = p.cli(args, stdin);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn install(p: &Postern, user: &str, script: &str) {
    let file = p.dir.path().join(format!("{user}.sieve"));
    std::fs::write(&file, script).unwrap();
    cli_ok(
        p,
        &["sieve", "put", user, "main", file.to_str().unwrap()],
        None,
    );
    cli_ok(p, &["sieve", "activate", user, "main"], None);
}

fn sendmail(p: &Postern, from: &str, to: &str, subject: &str) {
    cli_ok(
        p,
        &["sendmail", "-f", from, to],
        Some(&format!(
            "From: {from}\nTo: {to}\nSubject: {subject}\n\nhello\n"
        )),
    );
}

fn smtp25(port: u16, from: &str, to: &str, subject: &str) {
    let out = python(&format!(
        r#"
import smtplib
s = smtplib.SMTP('127.0.0.1', {port}, timeout=30)
s.ehlo('mx.outside.example')
s.sendmail({from:?}, [{to:?}], "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <r1@outside.example>\r\n\r\nhi\r\n".encode())
print("SENT")
s.quit()
"#
    ));
    assert_eq!(out.trim(), "SENT");
}

#[test]
fn every_local_path_runs_the_script() {
    let mut p = Postern::start();
    p.wait_port(p.ports.smtp);
    p.add_user("me@example.test", "pw-me-123456");
    p.add_user("friend@example.test", "pw-friend-123456");
    p.add_user("boss@example.test", "pw-boss-123456");
    install(&p, "me@example.test", ME);
    install(&p, "friend@example.test", "redirect \"me@example.test\";\n");

    // 1. sendmail to a local user: filed by the script, with its flags and keyword.
    sendmail(
        &p,
        "boss@example.test",
        "me@example.test",
        "tagged by sendmail",
    );
    assert_eq!(p.messages("me@example.test", "Tagged").len(), 1);
    assert!(p.messages("me@example.test", "").is_empty());

    // 2. The queue scheduler: friend's script redirects through the queue; my script
    //    files the copy too.
    smtp25(
        p.ports.smtp,
        "ann@outside.example",
        "friend@example.test",
        "tagged via redirect",
    );
    let tagged = p.wait_messages("me@example.test", "Tagged", 2, Duration::from_secs(30));
    assert_eq!(
        tagged.len(),
        2,
        "the redirected copy did not arrive through the queue"
    );
    assert!(p.messages("friend@example.test", "").is_empty());

    // IMAP shows the keyword in FLAGS (the announcement) and on both messages.
    let imap = python(&format!(
        r#"
import imaplib, ssl
m = imaplib.IMAP4('127.0.0.1', {port})
m.starttls(ssl_context=ssl._create_unverified_context())
m.login('me@example.test', 'pw-me-123456')
typ, n = m.select('Tagged')
print("FLAGS", m.untagged_responses.get('FLAGS'))
typ, d = m.fetch('1:*', '(FLAGS)')
for x in d: print("MSG", x.decode())
"#,
        port = p.ports.imap
    ));
    assert!(
        imap.contains("FLAGS [b'(") && imap.contains("$Work"),
        "{imap}"
    );
    let msgs: Vec<&str> = imap.lines().filter(|l| l.starts_with("MSG")).collect();
    assert_eq!(msgs.len(), 2, "{imap}");
    for m in msgs {
        assert!(m.contains("$Work") && m.contains("\\Flagged"), "{imap}");
    }

    // 3. A reject on a path with no SMTP reply to give: a DSN to the envelope sender.
    sendmail(&p, "boss@example.test", "me@example.test", "reject me");
    let got = p.wait_messages("boss@example.test", "", 1, Duration::from_secs(30));
    assert_eq!(got.len(), 1, "no DSN for the reject");
    let dsn = String::from_utf8_lossy(&p.messages("boss@example.test", "")[0]).into_owned();
    for want in [
        "Content-Type: multipart/report; report-type=delivery-status;",
        "Content-Type: message/delivery-status",
        "Final-Recipient: rfc822; me@example.test",
        "Action: failed",
        "Status: 5.7.1",
        "Not wanted here.",
        "Subject: reject me",
    ] {
        assert!(dsn.contains(want), "missing {want:?} in\n{dsn}");
    }
    // The rejected message itself was not stored.
    assert!(
        p.messages("me@example.test", "")
            .iter()
            .all(|m| !String::from_utf8_lossy(m).contains("Subject: reject me"))
    );

    // 3b. The same reject met in the queue scheduler (friend's redirect reaches my script
    //     there): the recipient fails with 5.7.1 and the scheduler's DSN goes to boss.
    sendmail(&p, "boss@example.test", "friend@example.test", "reject me");
    let got = p.wait_messages("boss@example.test", "", 2, Duration::from_secs(30));
    assert_eq!(got.len(), 2, "no DSN for the reject met in the queue");
    let dsn2 = got
        .iter()
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .find(|m| m != &dsn)
        .unwrap();
    for want in [
        "Content-Type: message/delivery-status",
        "Final-Recipient: rfc822; me@example.test",
        "Action: failed",
        "Status: 5.7.1",
        "Not wanted here.",
    ] {
        assert!(dsn2.contains(want), "missing {want:?} in\n{dsn2}");
    }

    // 4. A runtime error (fileinto a missing mailbox): kept in INBOX, and one notice that
    //    names the script and the error, however often it happens in a day.
    sendmail(&p, "boss@example.test", "me@example.test", "broken");
    sendmail(&p, "boss@example.test", "me@example.test", "broken");
    let inbox: Vec<String> = p
        .messages("me@example.test", "")
        .iter()
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .collect();
    let kept = inbox
        .iter()
        .filter(|m| m.contains("Subject: broken\r\n") && !m.contains("Mail filter"))
        .count();
    let notices: Vec<&String> = inbox
        .iter()
        .filter(|m| m.contains("Subject: Your mail filter \"main\" failed"))
        .collect();
    assert_eq!(kept, 2, "{inbox:?}");
    assert_eq!(notices.len(), 1, "{inbox:?}");
    assert!(notices[0].contains("NoSuchBox"), "{}", notices[0]);

    // 5. A redirect loop through the queue (me -> friend -> me) stops at the second pass
    //    through my script: the message is kept in my INBOX, once.
    sendmail(&p, "boss@example.test", "me@example.test", "loop");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let looped = loop {
        let n = p
            .messages("me@example.test", "")
            .iter()
            .filter(|m| String::from_utf8_lossy(m).contains("\r\nSubject: loop\r\n"))
            .count();
        if n > 0 || std::time::Instant::now() > deadline {
            break n;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(looped, 1, "the looping message was not kept once");
    assert!(p.messages("friend@example.test", "").is_empty());

    // Nothing else arrived anywhere (each DSN went to boss only, once).
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(p.messages("boss@example.test", "").len(), 2);
    let loops = p
        .messages("me@example.test", "")
        .iter()
        .filter(|m| String::from_utf8_lossy(m).contains("\r\nSubject: loop\r\n"))
        .count();
    assert_eq!(loops, 1);
}
