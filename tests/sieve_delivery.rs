//! Sieve at local delivery, end to end with independent clients (Python smtplib/imaplib):
//! a script files by List-Id into a folder it creates, flagged \Seen (IMAP shows both), a reject is a 550 to
//! the SMTP client, and a vacation reply reaches the sender's INBOX exactly once over two
//! messages. Scripts are managed with `postern sieve put/activate/list`.

mod common;

use std::time::{Duration, Instant};

use common::{Postern, python};

const SCRIPT: &str = r#"require ["fileinto", "mailbox", "reject", "vacation", "imap4flags"];
if header :contains "List-Id" "dev.lists.example.org" {
    fileinto :create :flags "\\Seen" "Lists";
    stop;
}
if header :is "Subject" "reject me" {
    reject "No thanks, robot.";
    stop;
}
vacation :days 1 :subject "Away" "I am away until Monday.";
"#;

fn smtp25(port: u16, from: &str, to: &str, msg: &str) -> String {
    python(&format!(
        r#"
import smtplib
s = smtplib.SMTP('127.0.0.1', {port}, timeout=30)
s.ehlo('mx.lists.example.org')
try:
    s.sendmail({from:?}, [{to:?}], {msg:?}.encode())
    print("SENT")
except smtplib.SMTPDataError as e:
    print("DATA", e.smtp_code, e.smtp_error.decode())
s.quit()
"#
    ))
}

fn submit(port: u16, user: &str, pw: &str, to: &str, msg: &str) -> String {
    python(&format!(
        r#"
import smtplib, ssl
ctx = ssl._create_unverified_context()
s = smtplib.SMTP('127.0.0.1', {port}, timeout=30)
s.starttls(context=ctx)
s.login({user:?}, {pw:?})
s.sendmail({user:?}, [{to:?}], {msg:?}.encode())
print("SENT")
s.quit()
"#
    ))
}

fn cli_ok(p: &Postern, args: &[&str]) -> String {
    let out = p.cli(args, None);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn list_filing_reject_and_vacation_once() {
    let mut p = Postern::start();
    p.wait_port(p.ports.smtp);
    p.add_user("me@example.test", "pw-me-123456");
    p.add_user("friend@example.test", "pw-friend-123456");
    let file = p.dir.path().join("main.sieve");
    std::fs::write(&file, SCRIPT).unwrap();
    // A script that does not compile is refused, naming the line.
    let bad = p.dir.path().join("bad.sieve");
    std::fs::write(&bad, "keep;\nfileinto \"x\";\n").unwrap();
    let out = p.cli(
        &[
            "sieve",
            "put",
            "me@example.test",
            "bad",
            bad.to_str().unwrap(),
        ],
        None,
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("line 2"),
        "{out:?}"
    );
    cli_ok(
        &p,
        &[
            "sieve",
            "put",
            "me@example.test",
            "main",
            file.to_str().unwrap(),
        ],
    );
    cli_ok(&p, &["sieve", "activate", "me@example.test", "main"]);
    assert_eq!(
        cli_ok(&p, &["sieve", "list", "me@example.test"]),
        "* main\n"
    );

    // 1. List mail lands in "Lists", which IMAP lists and holds it.
    let list_msg = "From: Ann <ann@lists.example.org>\r\nTo: dev@lists.example.org\r\nSubject: [dev] news\r\n\
                    List-Id: Developers <dev.lists.example.org>\r\nMessage-ID: <l1@lists.example.org>\r\n\r\nhello list\r\n";
    assert_eq!(
        smtp25(
            p.ports.smtp,
            "ann@lists.example.org",
            "me@example.test",
            list_msg
        )
        .trim(),
        "SENT"
    );
    let imap = python(&format!(
        r#"
import imaplib, ssl
m = imaplib.IMAP4('127.0.0.1', {port})
m.starttls(ssl_context=ssl._create_unverified_context())
m.login('me@example.test', 'pw-me-123456')
typ, boxes = m.list()
print([b.decode() for b in boxes])
typ, n = m.select('Lists')
print("LISTS", n[0].decode())
typ, d = m.fetch('1', '(FLAGS)')
print("FLAGS", d[0].decode())
typ, n = m.select('INBOX')
print("INBOX", n[0].decode())
"#,
        port = p.ports.imap
    ));
    assert!(
        imap.contains("\"Lists\"") || imap.contains(" Lists'"),
        "{imap}"
    );
    assert!(imap.contains("LISTS 1"), "{imap}");
    assert!(
        imap.contains("\\Seen"),
        "imap4flags :flags reach the stored copy: {imap}"
    );
    assert!(imap.contains("INBOX 0"), "{imap}");

    // 2. A reject is the SMTP client's 550 5.7.1 with the script's reason; nothing stored.
    let rej = "From: bot@remote.example\r\nTo: me@example.test\r\nSubject: reject me\r\n\r\nx\r\n";
    let r = smtp25(p.ports.smtp, "bot@remote.example", "me@example.test", rej);
    assert!(
        r.contains("DATA 550") && r.contains("5.7.1") && r.contains("No thanks, robot."),
        "{r}"
    );
    assert!(p.messages("me@example.test", "").is_empty());

    // 3. Two messages from a friend: two kept copies, one vacation reply.
    for i in 1..=2 {
        let m = format!(
            "From: friend@example.test\r\nTo: me@example.test\r\nSubject: lunch {i}\r\nMessage-ID: <f{i}@example.test>\r\n\r\nlunch?\r\n"
        );
        assert_eq!(
            submit(
                p.ports.submission,
                "friend@example.test",
                "pw-friend-123456",
                "me@example.test",
                &m
            )
            .trim(),
            "SENT"
        );
    }
    assert_eq!(
        p.wait_messages("me@example.test", "", 2, Duration::from_secs(20))
            .len(),
        2
    );
    // The replies were queued before each 250; wait for the queue to drain, then count.
    let deadline = Instant::now() + Duration::from_secs(30);
    while cli_ok(&p, &["queue", "list"]).trim() != "queue is empty" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let replies = p.wait_messages("friend@example.test", "", 1, Duration::from_secs(20));
    assert_eq!(replies.len(), 1, "exactly one vacation reply");
    let r = String::from_utf8_lossy(&replies[0]);
    assert!(r.contains("Auto-Submitted: auto-replied"), "{r}");
    assert!(r.contains("Subject: Away"), "{r}");
    assert!(r.contains("In-Reply-To: <f1@example.test>"), "{r}");
    assert!(r.contains("DKIM-Signature:"), "{r}");
    assert!(r.contains("I am away until Monday."), "{r}");
}

/// `postern vacation` for a user who never wrote Sieve: one command sets the reply (dated
/// around today), a message gets it, `--off` removes it again.
#[test]
fn postern_vacation_without_sieve() {
    let mut p = Postern::start();
    p.wait_port(p.ports.smtp);
    p.add_user("me@example.test", "pw-me-123456");
    p.add_user("friend@example.test", "pw-friend-123456");
    let text = p.dir.path().join("away.txt");
    std::fs::write(&text, "Back on Monday.\n.leading dot kept\n").unwrap();
    let day = |d: i64| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        python(&format!("import datetime\nprint(datetime.datetime.fromtimestamp({}, datetime.timezone.utc).strftime('%Y-%m-%d'))", t + d * 86400))
            .trim()
            .to_string()
    };
    let (from, until) = (day(-1), day(1));
    let set = cli_ok(
        &p,
        &[
            "vacation",
            "me@example.test",
            "--subject",
            "Out of office",
            "--message-file",
            text.to_str().unwrap(),
            "--from",
            &from,
            "--until",
            &until,
        ],
    );
    assert!(set.contains("vacation reply set"), "{set}");
    assert_eq!(
        cli_ok(&p, &["sieve", "list", "me@example.test"]),
        "* main\n"
    );
    let m = "From: friend@example.test\r\nTo: me@example.test\r\nSubject: hello\r\nMessage-ID: <v1@example.test>\r\n\r\nhi\r\n";
    assert_eq!(
        submit(
            p.ports.submission,
            "friend@example.test",
            "pw-friend-123456",
            "me@example.test",
            m
        )
        .trim(),
        "SENT"
    );
    let replies = p.wait_messages("friend@example.test", "", 1, Duration::from_secs(30));
    assert_eq!(replies.len(), 1);
    let r = String::from_utf8_lossy(&replies[0]);
    assert!(
        r.contains("Subject: Out of office") && r.contains("Back on Monday.\r\n.leading dot kept"),
        "{r}"
    );
    cli_ok(&p, &["vacation", "me@example.test", "--off"]);
    assert!(!cli_ok(&p, &["sieve", "get", "me@example.test", "main"]).contains("vacation"));
}
