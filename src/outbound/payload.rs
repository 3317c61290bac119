//! What goes on the wire after DATA: the message canonicalised to CRLF and dot-stuffed
//! (RFC 5321 §4.5.2), and whether it needs SMTPUTF8 (RFC 6531). Pure functions over bytes,
//! used by the SMTP client (`client`) and its users.

/// The message as it goes on the wire after DATA: canonical CRLF line ends, dot-stuffed
/// (RFC 5321 §4.5.2), terminated by CRLF.CRLF. Whatever was submitted (SMTP, `sendmail`, a
/// DSN), a bare CR or bare LF is sent as CRLF (RFC 5321 §2.3.8) and the line after it is
/// dot-stuffed like any other, so no receiver, strict or lax about line ends, can read an
/// end of data inside the message (the SMTP smuggling class, CVE-2023-51764).
pub fn data_payload(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 50 + 5);
    let mut at_line_start = true;
    let mut i = 0;
    while i < message.len() {
        let b = message[i];
        if b == b'\r' || b == b'\n' {
            // CRLF, a bare CR or a bare LF: one line end.
            if b == b'\r' && message.get(i + 1) == Some(&b'\n') {
                i += 1;
            }
            out.extend_from_slice(b"\r\n");
            at_line_start = true;
        } else {
            if at_line_start && b == b'.' {
                out.push(b'.');
            }
            out.push(b);
            at_line_start = false;
        }
        i += 1;
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// Does the message need SMTPUTF8 (non-ASCII in the envelope or the header section)?
pub fn needs_smtputf8(mail_from: &str, rcpts: &[String], message: &[u8]) -> bool {
    let header_end = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .or_else(|| message.windows(2).position(|w| w == b"\n\n"))
        .unwrap_or(message.len());
    !mail_from.is_ascii()
        || rcpts.iter().any(|r| !r.is_ascii())
        || !message[..header_end].is_ascii()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_stuffing_and_crlf() {
        assert_eq!(data_payload(b"a\r\n.b\r\n"), b"a\r\n..b\r\n.\r\n");
        assert_eq!(data_payload(b".x\nb"), b"..x\r\nb\r\n.\r\n");
        assert_eq!(data_payload(b"a\r\n.\r\n"), b"a\r\n..\r\n.\r\n");
    }

    #[test]
    fn bare_cr_and_lf_become_crlf_and_dots_after_them_are_stuffed() {
        // Every smuggling shape a sender might have stored: none may reach the wire as an
        // end of data or as a bare CR/LF.
        assert_eq!(data_payload(b"a\n.\r\nb"), b"a\r\n..\r\nb\r\n.\r\n");
        assert_eq!(data_payload(b"a\r.\r\nb"), b"a\r\n..\r\nb\r\n.\r\n");
        assert_eq!(data_payload(b"a\r\n.\rb"), b"a\r\n..\r\nb\r\n.\r\n");
        assert_eq!(data_payload(b"a\n.\n"), b"a\r\n..\r\n.\r\n");
        assert_eq!(data_payload(b"a\r\r\nb"), b"a\r\n\r\nb\r\n.\r\n");
        assert_eq!(data_payload(b""), b"\r\n.\r\n");
        for m in [&b"x\r"[..], b"\r", b"\n\r", b".\r.\n."] {
            let p = data_payload(m);
            let body = &p[..p.len() - 3];
            for (i, &c) in body.iter().enumerate() {
                if c == b'\r' {
                    assert_eq!(body.get(i + 1), Some(&b'\n'), "{m:?}");
                }
                if c == b'\n' {
                    assert_eq!(body[i - 1], b'\r', "{m:?}");
                }
            }
            assert!(!body.windows(5).any(|w| w == b"\r\n.\r\n"), "{m:?}");
        }
    }

    #[test]
    fn smtputf8_detection() {
        assert!(!needs_smtputf8(
            "a@b",
            &["c@d".into()],
            b"Subject: x\r\n\r\n\xc3\xa9"
        ));
        assert!(needs_smtputf8("a@b", &["\u{e9}@d".into()], b"S: x\r\n\r\n"));
        assert!(needs_smtputf8("a@b", &[], b"Subject: \xc3\xa9\r\n\r\nx"));
    }
}
