//! Abuse limits and lifecycle on port 25: connections per IP, recipients, invalid recipients,
//! messages per connection, greeting delay, timeouts, error storms, one slow client among
//! many, and graceful shutdown.

mod common;

use std::time::Duration;

use common::{Postern, Raw, Setup};

const T: Duration = Duration::from_secs(20);

fn start_with(extra: &str) -> Postern {
    let p = Postern::start_with(Setup {
        extra: extra.into(),
        ..Setup::default()
    });
    p.add_user("alice@example.test", "pw");
    p
}

fn ehlo(port: u16) -> Raw {
    let mut c = Raw::connect(port);
    assert!(c.reply().starts_with("220"));
    c.send("EHLO client.example\r\n");
    assert!(c.reply().starts_with("250"));
    c
}

#[test]
fn connections_per_ip_limited() {
    let p = start_with("[limits]\nmax_connections_per_ip = 2\n");
    let a = ehlo(p.ports.smtp);
    let b = ehlo(p.ports.smtp);
    let mut c = Raw::connect(p.ports.smtp);
    let r = c.reply();
    assert!(r.starts_with("421 4.7.0"), "{r}");
    assert_eq!(c.rest(), "");
    assert!(p.wait_log("smtp connection refused", T), "{}", p.log());
    // A slot frees up when a client leaves.
    drop(a);
    let deadline = std::time::Instant::now() + T;
    loop {
        let mut d = Raw::connect(p.ports.smtp);
        if d.reply().starts_with("220") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "slot never freed");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(b);
}

#[test]
fn connections_in_total_limited() {
    let p = start_with("[limits]\nmax_connections = 1\n");
    let _a = ehlo(p.ports.smtp);
    let mut c = Raw::connect(p.ports.smtp);
    let r = c.reply();
    assert!(r.starts_with("421 4.7.0"), "{r}");
}

#[test]
fn recipients_per_message_limited() {
    let p = start_with("[limits]\nmax_recipients = 2\n");
    let mut c = ehlo(p.ports.smtp);
    c.send("MAIL FROM:<x@remote.example>\r\n");
    assert!(c.reply().starts_with("250"));
    c.send("RCPT TO:<alice@example.test>\r\nRCPT TO:<alice+a@example.test>\r\nRCPT TO:<alice+b@example.test>\r\n");
    assert!(c.reply().starts_with("250"));
    assert!(c.reply().starts_with("250"));
    assert!(c.reply().starts_with("452 4.5.3"));
    // The accepted ones still get the message.
    c.send("DATA\r\n");
    assert!(c.reply().starts_with("354"));
    c.send("Subject: two\r\n\r\nx\r\n.\r\n");
    assert!(c.reply().starts_with("250"));
    assert_eq!(p.wait_messages("alice@example.test", "", 1, T).len(), 1);
}

#[test]
fn invalid_recipients_then_drop() {
    let p = start_with("[limits]\nmax_invalid_recipients = 2\n");
    let mut c = ehlo(p.ports.smtp);
    c.send("MAIL FROM:<x@remote.example>\r\n");
    assert!(c.reply().starts_with("250"));
    c.send("RCPT TO:<a@example.test>\r\n");
    assert!(c.reply().starts_with("550 5.1.1"));
    c.send("RCPT TO:<b@other.example>\r\n");
    assert!(c.reply().starts_with("554 5.7.1"));
    c.send("RCPT TO:<c@example.test>\r\n");
    assert!(c.reply().starts_with("421 4.7.0"));
    assert_eq!(c.rest(), "");
    assert!(p.wait_log("Too many invalid recipients", T));
}

#[test]
fn messages_per_connection_limited() {
    let p = start_with("[limits]\nmax_messages_per_connection = 1\n");
    let mut c = ehlo(p.ports.smtp);
    c.send("MAIL FROM:<x@remote.example>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n");
    for _ in 0..3 {
        c.reply();
    }
    c.send("Subject: one\r\n\r\nx\r\n.\r\n");
    assert!(c.reply().starts_with("250"));
    c.send("MAIL FROM:<x@remote.example>\r\n");
    assert!(c.reply().starts_with("421 4.7.0"));
    assert_eq!(c.rest(), "");
}

#[test]
fn early_talker_dropped_when_greeting_delay_on() {
    let p = start_with("[limits]\nsmtp_greeting_delay_secs = 2\n");
    let mut bot = Raw::connect(p.ports.smtp);
    bot.send("EHLO bot.example\r\n");
    let r = bot.reply();
    assert!(r.starts_with("554 5.5.0"), "{r}");
    assert_eq!(bot.rest(), "");
    assert!(p.wait_log("smtp early talker", T));
    // A patient client gets the banner.
    let mut ok = Raw::connect(p.ports.smtp);
    assert!(ok.reply().starts_with("220"));
}

#[test]
fn command_timeout_closes_with_421() {
    let p = start_with("[limits]\nsmtp_command_timeout_secs = 1\n");
    let mut c = ehlo(p.ports.smtp);
    let r = c.reply();
    assert!(r.starts_with("421 4.4.2"), "{r}");
    assert_eq!(c.rest(), "");
}

#[test]
fn data_timeout_closes_with_421() {
    let p = start_with("[limits]\nsmtp_data_timeout_secs = 1\n");
    let mut c = ehlo(p.ports.smtp);
    c.send("MAIL FROM:<x@remote.example>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n");
    for _ in 0..3 {
        c.reply();
    }
    c.send("Subject: stalled\r\n\r\npart");
    let r = c.reply();
    assert!(r.starts_with("421 4.4.2"), "{r}");
    assert!(p.messages("alice@example.test", "").is_empty());
}

#[test]
fn error_storm_closes() {
    let p = start_with("");
    let mut c = ehlo(p.ports.smtp);
    let mut last = String::new();
    for _ in 0..20 {
        c.send("BOGUS\r\n");
        last = c.reply();
        if !last.starts_with("500") {
            break;
        }
    }
    assert!(last.starts_with("421 4.7.0"), "{last}");
    assert_eq!(c.rest(), "");
}

#[test]
fn slow_client_does_not_block_others() {
    let p = start_with("");
    // One client stalls in the middle of DATA and another in the middle of a command line.
    let mut slow = ehlo(p.ports.smtp);
    slow.send("MAIL FROM:<x@remote.example>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n");
    for _ in 0..3 {
        slow.reply();
    }
    slow.send("Subject: slow\r\n\r\nhalf a mess");
    let mut half = Raw::connect(p.ports.smtp);
    half.send("EHL");
    for i in 0..3 {
        let mut c = ehlo(p.ports.smtp);
        c.send("MAIL FROM:<x@remote.example>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n");
        for _ in 0..3 {
            c.reply();
        }
        c.send(&format!("Subject: fast {i}\r\n\r\nx\r\n.\r\n"));
        assert!(c.reply().starts_with("250"));
    }
    assert_eq!(p.messages("alice@example.test", "").len(), 3);
    slow.send("age\r\n.\r\n");
    assert!(slow.reply().starts_with("250"));
    assert_eq!(p.messages("alice@example.test", "").len(), 4);
}

#[test]
fn graceful_shutdown_keeps_acknowledged_mail() {
    let mut p = start_with("");
    // A transaction in DATA when SIGTERM arrives is finished and acknowledged.
    let mut c = ehlo(p.ports.smtp);
    c.send("MAIL FROM:<x@remote.example>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n");
    for _ in 0..3 {
        c.reply();
    }
    c.send("Subject: in flight\r\n\r\nfirst half\r\n");
    let mut idle = ehlo(p.ports.smtp);
    p.signal(15);
    // An idle session is told to come back later.
    let r = idle.reply();
    assert!(r.starts_with("421 4.3.2"), "{r}");
    c.send("second half\r\n.\r\n");
    let r = c.reply();
    assert!(r.starts_with("250 2.0.0"), "{r}");
    p.stop();
    let m = p.messages("alice@example.test", "");
    assert_eq!(m.len(), 1);
    let m = String::from_utf8_lossy(&m[0]).into_owned();
    assert!(
        m.ends_with("Subject: in flight\r\n\r\nfirst half\r\nsecond half\r\n"),
        "{m}"
    );
}
