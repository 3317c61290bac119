//! Delivery status notifications (RFC 3464) in a multipart/report (RFC 6522):
//! a human-readable part, the `message/delivery-status` part with one block per recipient
//! (Final-Recipient, Action, Status, Remote-MTA, Diagnostic-Code), and the original
//! message's header section as `text/rfc822-headers`. Sent from the null reverse-path
//! (RFC 5321 §4.5.5) so a DSN can never cause another.

use crate::config::Config;

use super::{Envelope, RcptState};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Failed,
    Delayed,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Failed => "failed",
            Action::Delayed => "delayed",
        }
    }
}

/// The header section of a message (without the blank line), CRLF line ends.
pub fn header_section(message: &[u8]) -> Vec<u8> {
    let end = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 2)
        .or_else(|| message.windows(2).position(|w| w == b"\n\n").map(|p| p + 1))
        .unwrap_or(message.len());
    let mut out = Vec::with_capacity(end + 16);
    let mut prev = 0u8;
    for &b in &message[..end] {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn rfc2822_date(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .unwrap_or_default()
        .format("%a, %d %b %Y %H:%M:%S +0000")
        .to_string()
}

/// Diagnostic text on one header line: no CR/LF, bounded length.
fn one_line(s: &str) -> String {
    let s: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    s.chars().take(900).collect()
}

/// Is this the kind of status a DSN's Status field carries (class.subject.detail)?
fn valid_status(s: &str) -> bool {
    let p: Vec<&str> = s.split('.').collect();
    p.len() == 3
        && ["2", "4", "5"].contains(&p[0])
        && p[1..]
            .iter()
            .all(|x| !x.is_empty() && x.len() <= 3 && x.bytes().all(|b| b.is_ascii_digit()))
}

/// Build the DSN for `rcpts` of `env` (the message being reported on is `original`).
pub fn build(
    config: &Config,
    env: &Envelope,
    rcpts: &[&RcptState],
    action: Action,
    original: &[u8],
    now: i64,
) -> Vec<u8> {
    use rand::Rng;
    let boundary = format!("=_postern_{:016x}", rand::rng().random::<u64>());
    let date = rfc2822_date(now);
    let msgid = format!("<{}.dsn@{}>", env.id, config.hostname);
    let subject = match action {
        Action::Failed => "Undelivered Mail Returned to Sender",
        Action::Delayed => "Delayed Mail (still being retried)",
    };
    let mut m = String::new();
    m.push_str(&format!(
        "From: Mail Delivery System <MAILER-DAEMON@{}>\r\n",
        config.domain
    ));
    m.push_str(&format!("To: <{}>\r\n", env.mail_from));
    m.push_str(&format!("Subject: {subject}\r\n"));
    m.push_str(&format!("Date: {date}\r\n"));
    m.push_str(&format!("Message-ID: {msgid}\r\n"));
    // RFC 3834 §5: automatic responses say so, to stop auto-responder loops.
    m.push_str("Auto-Submitted: auto-replied\r\n");
    m.push_str("MIME-Version: 1.0\r\n");
    m.push_str(&format!(
        "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"{boundary}\"\r\n"
    ));
    m.push_str("\r\nThis is a MIME-encapsulated message.\r\n\r\n");

    // 1. Human-readable explanation.
    m.push_str(&format!("--{boundary}\r\n"));
    m.push_str(
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
    );
    m.push_str(&format!(
        "This is the mail system at host {}.\r\n\r\n",
        config.hostname
    ));
    match action {
        Action::Failed => m.push_str(
            "I'm sorry to have to inform you that your message could not be delivered to one\r\n\
             or more recipients. It is attached below.\r\n\r\n",
        ),
        Action::Delayed => m.push_str(&format!(
            "Your message could not be delivered yet to one or more recipients. It will be\r\n\
             retried until {}. You do not need to resend it.\r\n\r\n",
            rfc2822_date(env.created + config.queue.max_age_secs as i64)
        )),
    }
    for r in rcpts {
        m.push_str(&format!(
            "<{}>: {}\r\n",
            r.addr,
            one_line(r.last_error.as_deref().unwrap_or("no further detail"))
        ));
    }
    m.push_str("\r\n");

    // 2. The machine-readable report (RFC 3464 §2.2 per-message, §2.3 per-recipient fields).
    m.push_str(&format!("--{boundary}\r\n"));
    m.push_str("Content-Type: message/delivery-status\r\n\r\n");
    m.push_str(&format!("Reporting-MTA: dns; {}\r\n", config.hostname));
    m.push_str(&format!("X-Postern-Queue-ID: {}\r\n", env.id));
    if !env.mail_from.is_empty() {
        m.push_str(&format!("X-Original-Sender: rfc822; {}\r\n", env.mail_from));
    }
    m.push_str(&format!("Arrival-Date: {}\r\n", rfc2822_date(env.created)));
    for r in rcpts {
        m.push_str("\r\n");
        m.push_str(&format!("Final-Recipient: rfc822; {}\r\n", r.addr));
        m.push_str(&format!("Action: {}\r\n", action.as_str()));
        let status = r
            .code
            .clone()
            .filter(|c| valid_status(c))
            .map(|c| {
                // A delayed recipient carries a 4.x.x status, a failed one 4.x.x (expired)
                // or 5.x.x.
                if action == Action::Delayed && c.starts_with('5') {
                    format!("4{}", &c[1..])
                } else {
                    c
                }
            })
            .unwrap_or_else(|| match action {
                Action::Failed => "5.0.0".into(),
                Action::Delayed => "4.0.0".into(),
            });
        m.push_str(&format!("Status: {status}\r\n"));
        if let Some(mta) = &r.remote_mta {
            let host = mta.split(' ').next().unwrap_or(mta);
            m.push_str(&format!("Remote-MTA: dns; {host}\r\n"));
        }
        if let Some(e) = &r.last_error {
            // "smtp;" when the text is a reply of the remote server (starts with a code).
            let kind = if e.len() >= 3 && e.as_bytes()[..3].iter().all(u8::is_ascii_digit) {
                "smtp"
            } else {
                "x-postern"
            };
            m.push_str(&format!("Diagnostic-Code: {kind}; {}\r\n", one_line(e)));
        }
        m.push_str(&format!("Last-Attempt-Date: {date}\r\n"));
        if action == Action::Delayed {
            m.push_str(&format!(
                "Will-Retry-Until: {}\r\n",
                rfc2822_date(env.created + config.queue.max_age_secs as i64)
            ));
        }
    }
    m.push_str("\r\n");

    // 3. The original header section (RFC 6522 §3: text/rfc822-headers).
    m.push_str(&format!("--{boundary}\r\n"));
    m.push_str("Content-Type: text/rfc822-headers\r\n\r\n");
    let mut out = m.into_bytes();
    out.extend_from_slice(&header_section(original));
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::RcptStatus;
    use mail_parser::MimeHeaders;

    #[test]
    fn report_parses_as_multipart_report() {
        let cfg = crate::config::Config::parse(
            "domain = \"example.test\"\nhostname = \"mail.example.test\"\ndata_dir = \"/tmp/x\"\n",
            std::path::Path::new("t"),
        )
        .unwrap();
        let r = RcptState {
            addr: "bob@remote.test".into(),
            status: RcptStatus::Failed,
            attempts: 1,
            next_attempt: 0,
            last_error: Some("550 5.1.1 no such user\r\nbogus".into()),
            code: Some("5.1.1".into()),
            remote_mta: Some("mx1.remote.test [127.0.0.3]".into()),
            reported: false,
        };
        let env = Envelope {
            id: "ABC".into(),
            mail_from: "alice@example.test".into(),
            created: 0,
            size: 10,
            rcpts: vec![r.clone()],
            delay_notified: false,
        };
        let orig = b"From: alice@example.test\nSubject: hello\n\nbody text\n";
        let dsn = build(&cfg, &env, &[&r], Action::Failed, orig, 1_700_000_000);
        let msg = mail_parser::MessageParser::default().parse(&dsn).unwrap();
        let ct = msg.content_type().unwrap();
        assert_eq!(ct.ctype(), "multipart");
        assert_eq!(ct.subtype(), Some("report"));
        assert_eq!(ct.attribute("report-type"), Some("delivery-status"));
        let text = String::from_utf8_lossy(&dsn);
        assert!(text.contains("Final-Recipient: rfc822; bob@remote.test\r\n"));
        assert!(text.contains("Action: failed\r\n"));
        assert!(text.contains("Status: 5.1.1\r\n"));
        assert!(text.contains("Remote-MTA: dns; mx1.remote.test\r\n"));
        assert!(text.contains("Diagnostic-Code: smtp; 550 5.1.1 no such user  bogus\r\n"));
        assert!(text.contains("Content-Type: text/rfc822-headers\r\n\r\nFrom: alice@example.test\r\nSubject: hello\r\n"));
        assert!(!text.contains("body text"));
        let delayed = build(&cfg, &env, &[&r], Action::Delayed, orig, 1_700_000_000);
        let t = String::from_utf8_lossy(&delayed);
        assert!(t.contains("Action: delayed\r\nStatus: 4.1.1\r\n"));
        assert!(t.contains("Will-Retry-Until: "));
    }
}
