//! kill -9 while several port-25 sessions are finishing DATA at the same time (the group
//! commit of directory fsyncs across sessions): every message that got its 250 is on disk
//! afterwards, in the Maildir (local user) or in the queue (an alias forwarding to a domain
//! whose MX does not answer, so it stays queued), exactly once.

mod common;
mod outbound_support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::free_port;
use outbound_support::*;

/// One SMTP reply (last line), or None when the connection broke.
fn reply(r: &mut BufReader<TcpStream>) -> Option<String> {
    loop {
        let mut l = String::new();
        if r.read_line(&mut l).ok()? == 0 {
            return None;
        }
        if l.len() < 4 || l.as_bytes()[3] != b'-' {
            return Some(l.trim_end().to_string());
        }
    }
}

/// Send messages over one session until the server dies, recording each subject that got
/// its 250 with the id in that reply.
fn client(port: u16, session: usize, rcpt: &str, acked: Arc<Mutex<Vec<(String, String)>>>) {
    let Ok(s) = TcpStream::connect(("127.0.0.1", port)) else {
        return;
    };
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    let say = |w: &mut TcpStream, r: &mut BufReader<TcpStream>, line: &str| {
        w.write_all(line.as_bytes()).ok()?;
        reply(r)
    };
    if reply(&mut r).is_none() || say(&mut w, &mut r, "EHLO crash.test\r\n").is_none() {
        return;
    }
    for i in 0.. {
        let subject = format!("crash-{session}-{i}");
        let steps = [
            "MAIL FROM:<s@crash.test>\r\n".to_string(),
            format!("RCPT TO:<{rcpt}>\r\n"),
            "DATA\r\n".to_string(),
        ];
        for step in &steps {
            match say(&mut w, &mut r, step) {
                Some(l) if l.starts_with('2') || l.starts_with('3') => {}
                _ => return,
            }
        }
        let body = format!("From: s@crash.test\r\nSubject: {subject}\r\n\r\nbody\r\n.\r\n");
        match say(&mut w, &mut r, &body) {
            Some(l) if l.starts_with("250") => {
                let id = l.rsplit("id=").next().unwrap_or("").to_string();
                acked.lock().unwrap().push((subject, id));
            }
            _ => return,
        }
    }
}

#[test]
fn kill9_during_concurrent_deliveries_loses_no_acknowledged_message() {
    let port = free_port();
    // The forward's MX accepts no connection: forwarded copies stay queued.
    let dns = Dns::start(&[
        "mx-host=down.test,mx.down.test,10".into(),
        "host-record=mx.down.test,127.0.0.19".into(),
    ]);
    let mut p = sender(
        &dns,
        port,
        "[inbound]\nverify = false\n[queue]\nretry_schedule_secs = [600]\n[limits]\nmax_messages_per_connection = 100000\n",
    );
    p.add_user("crash@example.test", "crash-password-1");
    p.add_alias("fwd@example.test", &["far@down.test"]);
    let smtp = p.ports.smtp;
    let acked = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..8)
        .map(|n| {
            let acked = acked.clone();
            let rcpt = if n % 2 == 0 {
                "crash@example.test"
            } else {
                "fwd@example.test"
            };
            std::thread::spawn(move || client(smtp, n, rcpt, acked))
        })
        .collect();
    // Kill while the sessions are in full flow.
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < 40 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    p.kill9();
    for t in threads {
        let _ = t.join();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 40, "only {} acknowledged", acked.len());

    let stored: Vec<String> = p
        .messages("crash@example.test", "")
        .iter()
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .collect();
    // A queued message is its file in `queue/msg/` (envelope head, then the message).
    let queued: Vec<String> = std::fs::read_dir(p.data_dir().join("queue").join("msg"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let (mut local, mut forwarded) = (0, 0);
    for (subject, id) in &acked {
        let session: usize = subject.split('-').nth(1).unwrap().parse().unwrap();
        if session.is_multiple_of(2) {
            let n = stored
                .iter()
                .filter(|m| m.contains(&format!("Subject: {subject}\r\n")))
                .count();
            assert_eq!(n, 1, "{subject} (250 id={id}) stored {n} times");
            local += 1;
        } else {
            assert!(
                queued.contains(id),
                "{subject}: acknowledged as id={id} but not queued"
            );
            let msg = std::fs::read(p.data_dir().join("queue").join("msg").join(id))
                .unwrap_or_else(|e| panic!("{subject}: message file of {id}: {e}"));
            assert!(String::from_utf8_lossy(&msg).contains(&format!("Subject: {subject}\r\n")));
            forwarded += 1;
        }
    }
    assert!(
        local > 0 && forwarded > 0,
        "{local} local, {forwarded} forwarded"
    );
}
