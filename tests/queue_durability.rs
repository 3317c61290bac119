//! The queue on disk: kill -9 and restart deliver each message once, `postern queue`
//! commands against a running server, `postern sendmail` queues (and delivers locally),
//! the delay notice and expiry DSNs, and no bounce to the null sender.

mod common;
mod outbound_support;

use std::time::{Duration, Instant};

use common::free_port;
use outbound_support::*;

const WAIT: Duration = Duration::from_secs(40);

fn queue_ids(list: &str) -> Vec<String> {
    list.lines()
        .filter(|l| !l.starts_with(' ') && l.len() > 20 && !l.contains("message(s)"))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

#[test]
fn kill9_and_restart_deliver_each_message_once() {
    let port = free_port();
    let dns = Dns::start(&[
        "mx-host=restart.test,mx.restart.test,10".into(),
        "host-record=mx.restart.test,127.0.0.17".into(),
    ]);
    let mut p = sender(&dns, port, "[queue]\nretry_schedule_secs = [2]\n");
    for i in 0..5 {
        sendmail(
            &p,
            &["-f", "alice@example.test", "gina@restart.test"],
            &format!("From: alice@example.test\nSubject: restart-{i}\n\nbody {i}\n"),
        );
    }
    // Every message has been tried once (the MX is down) before the crash.
    assert!(
        wait_until(WAIT, || p.log().matches("trying the next address").count()
            >= 5),
        "log:\n{}",
        p.log()
    );
    p.kill9();
    // Queued while the server is down: picked up at the next start.
    sendmail(
        &p,
        &["-f", "alice@example.test", "gina@restart.test"],
        "From: alice@example.test\nSubject: restart-5\n\nbody 5\n",
    );
    assert_eq!(queue_ids(&queue_list(&p)).len(), 6);
    let sink = SmtpSink::start("127.0.0.17", port, &[]);
    p.spawn();
    assert!(wait_queue_empty(&p, WAIT), "log:\n{}", p.log());
    // The queue is empty: nothing more can be sent, so the count is final.
    let got = sink.messages();
    for i in 0..6 {
        let n = got
            .iter()
            .filter(|m| m.contains(&format!("Subject: restart-{i}\n")))
            .count();
        assert_eq!(n, 1, "restart-{i} delivered {n} times; log:\n{}", p.log());
    }
}

#[test]
fn queue_commands_work_on_a_running_server() {
    let port = free_port();
    let dns = Dns::start(&[
        "mx-host=cli.test,mx.cli.test,10".into(),
        "host-record=mx.cli.test,127.0.0.18".into(),
    ]);
    // Nothing listens on 127.0.0.18: every attempt fails temporarily.
    let p = sender(&dns, port, "[queue]\nretry_schedule_secs = [3600]\n");
    p.add_user("alice@example.test", "pw-alice-1");
    sendmail(
        &p,
        &["-f", "alice@example.test", "hank@cli.test"],
        "From: alice@example.test\nSubject: cli check\n\nbody\n",
    );
    assert!(
        p.wait_log("trying the next address", WAIT),
        "log:\n{}",
        p.log()
    );
    let list = queue_list(&p);
    let ids = queue_ids(&list);
    assert_eq!(ids.len(), 1, "{list}");
    let id = &ids[0];
    assert!(list.contains("hank@cli.test"), "{list}");
    assert!(list.contains("alice@example.test"), "{list}");

    // The log line comes before the attempt's outcome is written: wait for that.
    let show = || {
        let out = p.cli(&["queue", "show", id], None);
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    wait_until(WAIT, || show().contains("last error:"));
    let show = show();
    assert!(show.contains("rcpt: hank@cli.test"), "{show}");
    assert!(show.contains("last error:"), "{show}");
    assert!(show.contains("Subject: cli check"), "{show}");

    // retry ID: a second attempt happens now instead of in an hour.
    assert!(p.cli(&["queue", "retry", id], None).status.success());
    assert!(
        wait_until(WAIT, || {
            let s = p.cli(&["queue", "show", id], None);
            String::from_utf8_lossy(&s.stdout).contains("attempts: 2")
        }),
        "log:\n{}",
        p.log()
    );

    // Bad uses fail with a message.
    assert!(!p.cli(&["queue", "show", "NOSUCHID"], None).status.success());
    assert!(!p.cli(&["queue", "retry"], None).status.success());
    assert!(
        !p.cli(&["queue", "delete", "../../etc"], None)
            .status
            .success()
    );

    let del = p.cli(&["queue", "delete", id], None);
    assert!(
        del.status.success(),
        "{}",
        String::from_utf8_lossy(&del.stderr)
    );
    assert!(queue_list(&p).contains("queue is empty"));
    // A deleted message is not bounced.
    std::thread::sleep(Duration::from_secs(2));
    assert!(p.messages("alice@example.test", "").is_empty());
}

#[test]
fn sendmail_queues_remote_and_delivers_local() {
    let dns = Dns::start(&[
        "mx-host=far.test,mx.far.test,10".into(),
        "host-record=mx.far.test,127.0.0.19".into(),
    ]);
    let mut p = sender(&dns, free_port(), "");
    p.add_user("alice@example.test", "pw-alice-1");
    p.add_user("ivan@example.test", "pw-ivan-1");
    // Without a running server, as cron would on a stopped system: the queue keeps it.
    p.kill9();
    let out = p.cli(
        &["sendmail", "-t", "-oi", "-oem", "-F", "Cron Daemon"],
        Some("To: ivan, judy@far.test\nSubject: nightly report\n\nall good\n.\nstill body\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Local recipient: straight into the Maildir, with Message-ID and Date added.
    let inbox = p.messages("ivan@example.test", "");
    assert_eq!(inbox.len(), 1);
    let m = String::from_utf8_lossy(&inbox[0]);
    assert!(m.contains("Subject: nightly report\r\n"));
    assert!(m.contains("\r\nMessage-ID: <"), "{m}");
    assert!(m.contains("\r\nDate: "), "{m}");
    assert!(m.contains("From: \"Cron Daemon\" <"), "{m}");
    assert!(
        m.contains("\r\n.\r\nstill body"),
        "-oi keeps the dot line: {m}"
    );
    // Remote recipient: in the queue, DKIM-signed.
    let list = queue_list(&p);
    assert!(list.contains("judy@far.test"), "{list}");
    let id = &queue_ids(&list)[0];
    let show = String::from_utf8_lossy(&p.cli(&["queue", "show", id], None).stdout).into_owned();
    assert!(
        show.contains("DKIM-Signature: v=1; a=rsa-sha256; s=postern; d=example.test"),
        "{show}"
    );
    // Without -i, a lone dot ends the message (sendmail's default).
    let out = p.cli(
        &["sendmail", "-f", "alice@example.test", "ivan@example.test"],
        Some("Subject: dot\n\nbefore\n.\nafter\n"),
    );
    assert!(out.status.success());
    let inbox = p.messages("ivan@example.test", "");
    assert_eq!(inbox.len(), 2);
    assert!(inbox.iter().any(|m| {
        let s = String::from_utf8_lossy(m);
        s.contains("before") && !s.contains("after")
    }));
    // Unknown local user: an error, nothing queued.
    let out = p.cli(
        &["sendmail", "nobody@example.test"],
        Some("Subject: x\n\ny\n"),
    );
    assert!(!out.status.success());
    assert_eq!(queue_ids(&queue_list(&p)).len(), 1);
}

#[test]
fn delay_notice_then_expiry_bounce() {
    let port = free_port();
    let dns = Dns::start(&[
        "mx-host=slow.test,mx.slow.test,10".into(),
        "host-record=mx.slow.test,127.0.0.20".into(),
    ]);
    let p = sender(
        &dns,
        port,
        "[queue]\nretry_schedule_secs = [1]\ndelay_notice_secs = 1\nmax_age_secs = 6\n",
    );
    p.add_user("alice@example.test", "pw-alice-1");
    sendmail(
        &p,
        &["-f", "alice@example.test", "kim@slow.test"],
        "From: alice@example.test\nSubject: slow one\n\nbody\n",
    );
    let inbox = p.wait_messages("alice@example.test", "", 2, WAIT);
    assert_eq!(inbox.len(), 2, "delay notice and bounce; log:\n{}", p.log());
    let all: Vec<String> = inbox
        .iter()
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .collect();
    let delayed: Vec<&String> = all
        .iter()
        .filter(|m| m.contains("Action: delayed"))
        .collect();
    let failed: Vec<&String> = all
        .iter()
        .filter(|m| m.contains("Action: failed"))
        .collect();
    assert_eq!(delayed.len(), 1, "exactly one delay notice");
    assert_eq!(failed.len(), 1);
    assert!(delayed[0].contains("Will-Retry-Until:"));
    assert!(failed[0].contains("Status: 4.4.7"), "{}", failed[0]);
    assert!(failed[0].contains("Final-Recipient: rfc822; kim@slow.test"));
    assert!(
        failed[0].contains("Subject: slow one"),
        "original headers attached"
    );
    assert!(wait_queue_empty(&p, WAIT));
}

#[test]
fn null_sender_is_never_bounced() {
    let dns = Dns::start(&["mx-host=nullmx2.test,.,0".into()]);
    let p = sender(&dns, free_port(), "");
    p.add_user("alice@example.test", "pw-alice-1");
    sendmail(
        &p,
        &["-f", "<>", "lee@nullmx2.test"],
        "From: MAILER-DAEMON@example.test\nSubject: a bounce\n\nbody\n",
    );
    assert!(
        p.wait_log("(null sender): dropped", WAIT),
        "log:\n{}",
        p.log()
    );
    assert!(wait_queue_empty(&p, WAIT));
    assert!(p.messages("alice@example.test", "").is_empty());
    assert!(!p.log().contains("DSN queued"));
}
