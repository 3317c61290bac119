//! Outbound session reuse (issue 15): several queued messages for one destination go over
//! fewer SMTP sessions than messages, each arrives exactly once, and a 4xx to one message in
//! a reused session leaves the next one alone.
//! Peers: dnsmasq (DNS), Postfix's smtp-sink and the scripted sink (MX hosts on 127.0.0.x).

mod common;
mod outbound_support;

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::free_port;
use outbound_support::*;

const WAIT: Duration = Duration::from_secs(60);

fn msg(subject: &str, to: &str) -> String {
    format!(
        "From: alice@example.test\nTo: {to}\nSubject: {subject}\nMessage-ID: <{subject}@example.test>\n\nHello.\n"
    )
}

#[test]
fn queued_messages_to_one_mx_share_sessions_and_arrive_once() {
    const N: usize = 12;
    let port = free_port();
    let dns = Dns::start(&[
        "mx-host=reuse.test,mx.reuse.test,10".into(),
        "host-record=mx.reuse.test,127.0.0.85".into(),
    ]);
    let sink = SmtpSink::start("127.0.0.85", port, &[]);
    // Two deliveries at a time, so the other messages wait for a session to come free.
    let p = sender(&dns, port, "max_connections_per_domain = 2\n");
    for i in 0..N {
        let to = format!("user{i}@reuse.test");
        sendmail(
            &p,
            &["-f", "alice@example.test", &to],
            &msg(&format!("m{i}"), &to),
        );
    }
    let got = sink.wait_messages(N, WAIT);
    assert!(wait_queue_empty(&p, WAIT), "log:\n{}", p.log());
    // A little longer: a duplicate would show up now.
    std::thread::sleep(Duration::from_millis(500));
    let got2 = sink.messages();
    assert_eq!(got.len(), N, "log:\n{}", p.log());
    assert_eq!(got2.len(), N, "each message exactly once");
    let subjects: HashSet<String> = got2
        .iter()
        .filter_map(|m| m.lines().find(|l| l.starts_with("Subject: ")))
        .map(str::to_string)
        .collect();
    assert_eq!(subjects.len(), N, "{subjects:?}");

    // Sessions: every transaction is logged with whether it ran on a kept session.
    let log = p.log();
    let tx: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("outbound transaction"))
        .collect();
    assert_eq!(tx.len(), N, "log:\n{log}");
    let fresh = tx.iter().filter(|l| l.contains("reused=false")).count();
    assert!(
        fresh < N / 2,
        "{fresh} new sessions for {N} messages; log:\n{log}"
    );
    assert!(
        tx.iter().filter(|l| l.contains("reused=true")).count() == N - fresh,
        "log:\n{log}"
    );
}

#[test]
fn a_4xx_in_a_reused_session_only_defers_its_own_message() {
    let port = free_port();
    let dns = Dns::start(&[
        "mx-host=mixed.test,mx.mixed.test,10".into(),
        "host-record=mx.mixed.test,127.0.0.86".into(),
    ]);
    let sink = ScriptSink::start("127.0.0.86", port);
    let p = sender(
        &dns,
        port,
        "max_connections_per_domain = 1\n[queue]\nretry_schedule_secs = [600]\n",
    );
    // "later…" gets 451 4.2.1 at RCPT from the scripted sink.
    let send = |subject: &str, to: &str| {
        sendmail(&p, &["-f", "alice@example.test", to], &msg(subject, to))
    };
    send("first", "one@mixed.test");
    send("deferred", "later@mixed.test");
    send("second", "two@mixed.test");
    send("third", "three@mixed.test");
    let got = sink.wait(3, WAIT);
    assert_eq!(got.len(), 3, "log:\n{}", p.log());
    let rcpts: HashSet<String> = got.iter().flat_map(|r| r.rcpts.clone()).collect();
    assert_eq!(
        rcpts,
        ["one@mixed.test", "two@mixed.test", "three@mixed.test"]
            .map(String::from)
            .into()
    );
    // The deferred one stays queued with the server's reply; the others are gone.
    let show = wait_queue_show(&p, "4.2.1");
    assert!(show.contains("later@mixed.test"), "{show}");
    for r in ["one@", "two@", "three@"] {
        assert!(!show.contains(r), "{r} still queued:\n{show}");
    }
    // The four transactions shared sessions: fewer connections than messages.
    let conns = sink.connections.load(Ordering::SeqCst);
    assert!(
        conns < 4,
        "{conns} connections for 4 messages; log:\n{}",
        p.log()
    );
    assert!(p.log().contains("reused=true"), "log:\n{}", p.log());
}
