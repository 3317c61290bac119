//! Vacation replies (RFC 5230) from a Sieve `vacation` action: whether to answer at all
//! (§4.5 and RFC 3834 §2), the per-sender memory, and the reply itself.

use crate::sieve::{MessageView, Vacation};

/// Why no reply goes out, or `None` when one may. `user_addrs` are the recipient's own
/// addresses (the RCPT address, the account, and `:addresses`).
pub fn suppressed(
    msg: &MessageView<'_>,
    mail_from: &str,
    user_addrs: &[String],
) -> Option<&'static str> {
    // RFC 3834 §2: never answer the null sender (bounces) …
    if mail_from.is_empty() {
        return Some("null sender");
    }
    let local = mail_from
        .rsplit_once('@')
        .map_or(mail_from, |(l, _)| l)
        .to_ascii_lowercase();
    // … nor list and system senders (RFC 5230 §4.5 lists these conventions).
    if local.starts_with("owner-")
        || local.ends_with("-request")
        || [
            "mailer-daemon",
            "listserv",
            "majordomo",
            "postmaster",
            "noreply",
            "no-reply",
        ]
        .contains(&local.as_str())
    {
        return Some("list or system sender");
    }
    if [
        "list-id",
        "list-post",
        "list-help",
        "list-subscribe",
        "list-unsubscribe",
        "list-owner",
        "list-archive",
    ]
    .iter()
    .any(|h| msg.has_header(h))
    {
        return Some("mailing list");
    }
    if msg.header_values("auto-submitted").iter().any(|v| {
        !v.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .eq_ignore_ascii_case("no")
    }) {
        return Some("auto-submitted");
    }
    if msg
        .header_values("precedence")
        .iter()
        .any(|v| ["bulk", "list", "junk"].contains(&v.to_ascii_lowercase().as_str()))
    {
        return Some("bulk precedence");
    }
    let norm = |a: &str| {
        let a = a.to_ascii_lowercase();
        match a.rsplit_once('@') {
            Some((l, d)) => format!("{}@{d}", l.split_once('+').map_or(l, |(u, _)| u)),
            None => a,
        }
    };
    let mine: Vec<String> = user_addrs.iter().map(|a| norm(a)).collect();
    if mine.contains(&norm(mail_from)) {
        return Some("own address");
    }
    // §4.5: only answer mail that names the user in To/Cc/Bcc (not a list copy or Bcc
    // blast that merely reached the mailbox).
    let named = ["to", "cc", "bcc", "resent-to", "resent-cc", "resent-bcc"]
        .iter()
        .flat_map(|h| msg.addresses(h))
        .any(|(a, ok)| ok && mine.contains(&norm(&a)));
    if !named {
        return Some("user not in To/Cc/Bcc");
    }
    None
}

/// The reply message (without DKIM signature). `from` is the address it comes from.
pub fn reply(
    msg: &MessageView<'_>,
    v: &Vacation,
    from: &str,
    to: &str,
    hostname: &str,
    now: i64,
) -> Vec<u8> {
    let clean = |s: &str| s.replace(['\r', '\n'], " ");
    let orig_subject = msg
        .header_values("subject")
        .into_iter()
        .next()
        .unwrap_or_default();
    let subject = v.subject.clone().unwrap_or_else(|| {
        format!(
            "Auto: {}",
            if orig_subject.is_empty() {
                "your message"
            } else {
                &orig_subject
            }
        )
    });
    let mut m = String::new();
    m.push_str(&format!(
        "From: {}\r\n",
        clean(v.from.as_deref().unwrap_or(from))
    ));
    m.push_str(&format!("To: <{}>\r\n", clean(to)));
    m.push_str(&format!("Subject: {}\r\n", encode_header(&clean(&subject))));
    let date = chrono::DateTime::from_timestamp(now, 0)
        .unwrap_or_default()
        .to_rfc2822();
    m.push_str(&format!("Date: {date}\r\n"));
    m.push_str(&format!(
        "Message-ID: <{:016x}.vacation@{hostname}>\r\n",
        crate::fsutil::unique()
    ));
    // RFC 5230 §5.8 / RFC 3834 §3.1.7.
    m.push_str("Auto-Submitted: auto-replied (vacation)\r\n");
    if let Some(id) = msg.raw_values("message-id").next() {
        let id = String::from_utf8_lossy(id).trim().to_string();
        m.push_str(&format!("In-Reply-To: {}\r\n", clean(&id)));
        let refs = msg
            .raw_values("references")
            .next()
            .map(|r| String::from_utf8_lossy(r).trim().to_string());
        match refs {
            Some(r) if !r.is_empty() => {
                m.push_str(&format!("References: {} {}\r\n", clean(&r), clean(&id)))
            }
            _ => m.push_str(&format!("References: {}\r\n", clean(&id))),
        }
    }
    m.push_str("MIME-Version: 1.0\r\n");
    if v.mime {
        // §5.4: the reason is a MIME entity, its own header included.
        m.push_str(&v.reason.replace("\r\n", "\n").replace('\n', "\r\n"));
    } else {
        m.push_str(
            "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
        );
        m.push_str(&v.reason.replace("\r\n", "\n").replace('\n', "\r\n"));
    }
    if !m.ends_with("\r\n") {
        m.push_str("\r\n");
    }
    m.into_bytes()
}

/// RFC 2047 B-encoding when the text is not plain ASCII.
fn encode_header(s: &str) -> String {
    if s.is_ascii() {
        return s.to_string();
    }
    use base64::Engine as _;
    format!(
        "=?utf-8?B?{}?=",
        base64::engine::general_purpose::STANDARD.encode(s)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v() -> Vacation {
        Vacation {
            period: 86400,
            subject: None,
            from: None,
            addresses: vec![],
            mime: false,
            handle: "h".into(),
            reason: "Away.\n".into(),
        }
    }

    #[test]
    fn who_gets_no_reply() {
        let me = vec!["me@example.com".to_string()];
        let ok = MessageView::new(b"From: a@x.org\r\nTo: Me <me+tag@example.com>\r\nMessage-ID: <1@x>\r\nSubject: Hi\r\n\r\nb");
        assert_eq!(suppressed(&ok, "a@x.org", &me), None);
        assert_eq!(suppressed(&ok, "", &me), Some("null sender"));
        assert_eq!(
            suppressed(&ok, "owner-list@x.org", &me),
            Some("list or system sender")
        );
        assert_eq!(suppressed(&ok, "me@example.com", &me), Some("own address"));
        let list = MessageView::new(b"To: me@example.com\r\nList-Id: <l.x.org>\r\n\r\n");
        assert_eq!(suppressed(&list, "a@x.org", &me), Some("mailing list"));
        let auto = MessageView::new(b"To: me@example.com\r\nAuto-Submitted: auto-replied\r\n\r\n");
        assert_eq!(suppressed(&auto, "a@x.org", &me), Some("auto-submitted"));
        let no = MessageView::new(b"To: me@example.com\r\nAuto-Submitted: no\r\n\r\n");
        assert_eq!(suppressed(&no, "a@x.org", &me), None);
        let bulk = MessageView::new(b"To: me@example.com\r\nPrecedence: bulk\r\n\r\n");
        assert_eq!(suppressed(&bulk, "a@x.org", &me), Some("bulk precedence"));
        let bcc = MessageView::new(b"To: other@example.com\r\n\r\n");
        assert_eq!(
            suppressed(&bcc, "a@x.org", &me),
            Some("user not in To/Cc/Bcc")
        );
        let r = String::from_utf8(reply(
            &ok,
            &v(),
            "me@example.com",
            "a@x.org",
            "mx.example.com",
            0,
        ))
        .unwrap();
        assert!(r.contains("Auto-Submitted: auto-replied"));
        assert!(r.contains("In-Reply-To: <1@x>\r\nReferences: <1@x>\r\n"));
        assert!(r.contains("Subject: Auto: Hi\r\n"));
        assert!(r.ends_with("\r\n\r\nAway.\r\n"));
    }
}
