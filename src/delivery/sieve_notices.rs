//! Messages the Sieve delivery writes itself: the delivery status notification for a
//! `reject` that comes after the message was accepted (RFC 5429 §2.1), and the notice that
//! tells a script's author why the script failed (RFC 5228 §2.10.6).

use crate::config::Config;
use crate::queue::dsn;
use crate::queue::{Envelope, RcptState, RcptStatus};
use crate::sieve::MessageView;

/// RFC 5429 §2.1: a reject after the SMTP transaction ended (the script ran after the 250,
/// or from the queue) is "a DSN (RFC 3464) ... the Action field MUST be failed and the
/// Status 5.7.1". Built by the queue's DSN builder, so it has the same multipart/report
/// shape as every other bounce: explanation, `message/delivery-status`, the original header
/// section. `rcpt` is the address the message was sent to. The caller sends it from the
/// null reverse-path, and never to the null sender.
pub fn reject_dsn(
    config: &Config,
    mail_from: &str,
    rcpt: &str,
    reason: &str,
    original: &[u8],
    now: i64,
) -> Vec<u8> {
    let env = Envelope {
        id: crate::queue::new_id(),
        mail_from: mail_from.to_string(),
        created: now,
        size: original.len() as u64,
        rcpts: vec![],
        delay_notified: false,
    };
    let reason = reason.trim();
    let r = RcptState {
        addr: rcpt.to_string(),
        status: RcptStatus::Failed,
        attempts: 1,
        next_attempt: 0,
        last_error: Some(if reason.is_empty() {
            "rejected by the recipient's mail filter (Sieve)".into()
        } else {
            format!("rejected by the recipient's mail filter (Sieve): {reason}")
        }),
        code: Some("5.7.1".into()),
        remote_mta: None,
        reported: true,
    };
    dsn::build(config, &env, &[&r], dsn::Action::Failed, original, now)
}

/// The notice put into the user's INBOX when their active script failed on a message
/// (it does not compile, a runtime error, `fileinto` a mailbox that does not exist): which
/// script, what went wrong, which message, and that the message was kept in INBOX. Mail
/// clients show it like any message; the server log has the same line.
pub fn error_notice(
    config: &Config,
    user: &str,
    script: &str,
    errors: &[String],
    msg: &[u8],
    mail_from: &str,
    now: i64,
) -> Vec<u8> {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(300)
            .collect()
    };
    let view = MessageView::new(msg);
    let first = |h: &str| {
        view.header_values(h)
            .into_iter()
            .next()
            .map(|v| clean(&v))
            .unwrap_or_default()
    };
    let date = chrono::DateTime::from_timestamp(now, 0)
        .unwrap_or_default()
        .to_rfc2822();
    let mut m = format!(
        "From: Mail filter <MAILER-DAEMON@{domain}>\r\nTo: <{user}>\r\n\
         Subject: Your mail filter \"{script}\" failed\r\nDate: {date}\r\n\
         Message-ID: <{id:016x}.sieve-error@{host}>\r\nAuto-Submitted: auto-generated\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\r\n\
         Your active Sieve script \"{script}\" failed on a message, so the message was kept\r\n\
         in your INBOX instead (RFC 5228 section 2.10.6: an error means keep).\r\n\r\n\
         The message:\r\n  From: {from}\r\n  Subject: {subject}\r\n  Message-ID: {msgid}\r\n  \
         Envelope sender: <{sender}>\r\n\r\nWhat went wrong:\r\n",
        domain = config.domain,
        host = config.hostname,
        id = crate::fsutil::unique(),
        script = clean(script).replace('"', "'"),
        user = clean(user),
        from = first("from"),
        subject = first("subject"),
        msgid = first("message-id"),
        sender = clean(mail_from),
    );
    for e in errors.iter().take(20) {
        m.push_str(&format!("  - {}\r\n", clean(e)));
    }
    m.push_str(
        "\r\nFix the script with your Sieve client (ManageSieve) or `postern sieve`.\r\n\
         The same error is reported once a day; the server log has every occurrence.\r\n",
    );
    m.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn cfg() -> Config {
        Config::parse(
            "domain='example.com'\nhostname='mail.example.com'\ndata_dir='/x'\n",
            Path::new("t.toml"),
        )
        .unwrap()
    }

    #[test]
    fn reject_is_an_rfc3464_report_with_5_7_1() {
        let orig = b"From: a@x.org\r\nSubject: hi\r\nMessage-ID: <1@x>\r\n\r\nbody\r\n";
        let d = String::from_utf8(reject_dsn(
            &cfg(),
            "a@x.org",
            "me@example.com",
            "Go away.",
            orig,
            1_700_000_000,
        ))
        .unwrap();
        assert!(d.contains("To: <a@x.org>\r\n"), "{d}");
        assert!(d.contains("Content-Type: multipart/report; report-type=delivery-status;"));
        assert!(d.contains("Content-Type: message/delivery-status\r\n"));
        assert!(d.contains("Final-Recipient: rfc822; me@example.com\r\n"));
        assert!(d.contains("Action: failed\r\n"));
        assert!(d.contains("Status: 5.7.1\r\n"));
        assert!(d.contains("Go away."));
        assert!(d.contains("Content-Type: text/rfc822-headers\r\n\r\nFrom: a@x.org\r\n"));
        assert!(!d.contains("body"), "the body is not returned");
    }

    #[test]
    fn error_notice_names_script_error_and_message() {
        let n = String::from_utf8(error_notice(
            &cfg(),
            "me@example.com",
            "main",
            &["fileinto \"Nope\": no such mailbox\r\nX-Injected: 1".into()],
            b"From: a@x.org\r\nSubject: hello\r\n\r\nb",
            "a@x.org",
            0,
        ))
        .unwrap();
        assert!(n.contains("Subject: Your mail filter \"main\" failed\r\n"));
        assert!(n.contains("Subject: hello"));
        assert!(n.contains("no such mailbox"));
        // Error text cannot add header lines.
        assert!(!n.contains("\r\nX-Injected"));
    }
}
