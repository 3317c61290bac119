//! One id for a message (issue 20, item 10): the id in the client's `250 … id=`, the
//! transaction log line and `postern queue list/show` are the same. Python's smtplib is the
//! client; the queued copy waits because its relay (a closed loopback port) refuses.

mod common;
use common::*;

#[test]
fn the_250_id_is_the_queue_id_in_list_show_and_the_log() {
    let closed = free_port();
    let p = Postern::start_with(Setup {
        extra: format!("[outbound]\nrelay = \"127.0.0.1:{closed}\"\n"),
        ..Setup::default()
    });
    p.add_user("alice@example.test", "alice-password");
    let out = python(&format!(
        r#"
import ssl, smtplib
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP_SSL("127.0.0.1", {subs}, context=ctx, timeout=20)
s.login("alice@example.test", "alice-password")
s.mail("alice@example.test")
s.rcpt("bob@remote.example")
code, text = s.data(b"From: alice@example.test\r\nTo: bob@remote.example\r\nSubject: ids\r\n\r\nhi\r\n")
print(code, text.decode())
s.quit()
"#,
        subs = p.ports.submissions
    ));
    let line = out
        .lines()
        .find(|l| l.starts_with("250 "))
        .unwrap_or_else(|| panic!("{out}"));
    let id = line
        .split("id=")
        .nth(1)
        .unwrap_or_else(|| panic!("{line}"))
        .trim();
    assert!(
        !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric()),
        "{line}"
    );

    let list = p.cli(&["queue", "list"], None);
    let list_out = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.status.success() && list_out.contains(id),
        "{id} not in:\n{list_out}"
    );
    let show = p.cli(&["queue", "show", id], None);
    let show_out = String::from_utf8_lossy(&show.stdout);
    assert!(
        show.status.success(),
        "{}",
        String::from_utf8_lossy(&show.stderr)
    );
    assert!(show_out.contains("bob@remote.example"), "{show_out}");

    assert!(
        p.wait_log(
            &format!("id={id} queued=1 "),
            std::time::Duration::from_secs(10)
        ),
        "no transaction line with id={id} queued=1:\n{}",
        p.log()
    );
}

/// A Sieve redirect or vacation reply is a new message with a queue id of its own; the log
/// line that queues it names the transaction that caused it (issue 20, item 10).
#[test]
fn sieve_queued_messages_name_the_transaction_that_caused_them() {
    let closed = free_port();
    let p = Postern::start_with(Setup {
        extra: format!("[outbound]\nrelay = \"127.0.0.1:{closed}\"\n"),
        ..Setup::default()
    });
    p.add_user("me@example.test", "me-password-long");
    let script = p.dir.path().join("s.sieve");
    std::fs::write(
        &script,
        "require [\"vacation\"];\nredirect \"fwd@remote.example\";\nvacation \"I am away.\";\n",
    )
    .unwrap();
    for args in [
        &[
            "sieve",
            "put",
            "me@example.test",
            "s",
            script.to_str().unwrap(),
        ][..],
        &["sieve", "activate", "me@example.test", "s"],
    ] {
        let out = p.cli(args, None);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = python(&format!(
        r#"
import smtplib
s = smtplib.SMTP("127.0.0.1", {port}, timeout=20)
s.ehlo("mx.remote.example")
s.mail("ann@remote.example")
s.rcpt("me@example.test")
code, text = s.data(b"From: ann@remote.example\r\nTo: me@example.test\r\nSubject: hi\r\nMessage-ID: <c1@remote.example>\r\n\r\nhi\r\n")
print(code, text.decode())
s.quit()
"#,
        port = p.ports.smtp
    ));
    let cause = out
        .lines()
        .find_map(|l| l.strip_prefix("250 ").and_then(|l| l.split("id=").nth(1)))
        .unwrap_or_else(|| panic!("{out}"))
        .trim()
        .to_string();
    let list = p.cli(&["queue", "list"], None);
    let list = String::from_utf8_lossy(&list.stdout).into_owned();
    for (what, needle) in [
        (
            "redirect",
            format!("sieve redirect of {cause} to <fwd@remote.example> queued as "),
        ),
        (
            "vacation",
            format!("vacation reply to <ann@remote.example> for {cause} queued as "),
        ),
    ] {
        assert!(
            p.wait_log(&needle, std::time::Duration::from_secs(10)),
            "no {what} line naming {cause}:\n{}",
            p.log()
        );
        let log = p.log();
        let line = log.lines().find(|l| l.contains(&needle)).unwrap();
        let new = line
            .split(&needle)
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap();
        assert_ne!(new, cause, "{line}");
        assert!(list.contains(new), "{what} {new} not in:\n{list}");
    }
}
