//! Mailbox names: IMAP's modified UTF-7 (RFC 3501 §5.1.3) and UTF-8 names, mapped onto
//! Maildir++ folder directories (`.Parent.Child`, names stored in modified UTF-7 as Dovecot
//! does). The hierarchy delimiter is `.`. Every check that keeps a name inside the user's
//! directory lives here: no empty component (so no `..`), no `/`, no NUL or control
//! characters, no leading `~` and a bounded length.

use base64::Engine;

/// The IMAP hierarchy delimiter (Maildir++ separator).
pub const DELIM: char = '.';

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    #[error("mailbox name is empty")]
    Empty,
    #[error("mailbox name has an empty hierarchy level (\"..\" or a leading/trailing \".\")")]
    EmptyLevel,
    #[error("mailbox name contains a forbidden character")]
    BadChar,
    #[error("mailbox name is not valid modified UTF-7")]
    BadUtf7,
    #[error("mailbox name is too long")]
    TooLong,
}

/// A validated mailbox name: `Inbox`, or an other name in its on-disk modified UTF-7 form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MailboxName {
    Inbox,
    Other(String),
}

impl MailboxName {
    /// Parse a name as a client sent it. 8-bit bytes mean UTF-8 (RFC 6855 clients, or a client
    /// that does not know modified UTF-7); otherwise the name must be valid modified UTF-7.
    pub fn from_wire(raw: &[u8]) -> Result<MailboxName, NameError> {
        let utf7 = if raw.is_ascii() {
            let s = std::str::from_utf8(raw).map_err(|_| NameError::BadUtf7)?;
            // Strict: it must decode, and re-encode to the same text, so one mailbox has
            // exactly one spelling on disk.
            let decoded = decode_mutf7(s).ok_or(NameError::BadUtf7)?;
            if encode_mutf7(&decoded) != s {
                return Err(NameError::BadUtf7);
            }
            s.to_string()
        } else {
            let s = std::str::from_utf8(raw).map_err(|_| NameError::BadChar)?;
            encode_mutf7(s)
        };
        Self::from_utf7(&utf7)
    }

    /// Parse a name from a client that has enabled UTF-8 names (IMAP4rev2, RFC 9051 §5.1;
    /// UTF8=ACCEPT, RFC 6855 §3): the bytes are UTF-8 text, so `&` stands for itself and is
    /// not a modified UTF-7 shift.
    pub fn from_utf8_wire(raw: &[u8]) -> Result<MailboxName, NameError> {
        let s = std::str::from_utf8(raw).map_err(|_| NameError::BadChar)?;
        if s.eq_ignore_ascii_case("INBOX") {
            return Ok(MailboxName::Inbox);
        }
        Self::from_utf7(&encode_mutf7(s))
    }

    /// Validate a modified UTF-7 name (as found on disk or sent by a client).
    pub fn from_utf7(name: &str) -> Result<MailboxName, NameError> {
        if name.eq_ignore_ascii_case("INBOX") {
            return Ok(MailboxName::Inbox);
        }
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        if name.len() > 512 {
            return Err(NameError::TooLong);
        }
        let decoded = decode_mutf7(name).ok_or(NameError::BadUtf7)?;
        for level in decoded.split(DELIM) {
            if level.is_empty() {
                return Err(NameError::EmptyLevel);
            }
            if level
                .chars()
                .any(|c| c == '/' || c == '\\' || c.is_control())
            {
                return Err(NameError::BadChar);
            }
        }
        if decoded.starts_with('~') || name.contains(['/', '\0', '*', '%']) {
            return Err(NameError::BadChar);
        }
        // "INBOX.x" keeps INBOX's spelling canonical so it is found case-insensitively.
        let mut name = name.to_string();
        if name.len() > 6 && name[..6].eq_ignore_ascii_case("INBOX.") {
            name.replace_range(..6, "INBOX.");
        }
        Ok(MailboxName::Other(name))
    }

    /// The name as IMAP sends it (modified UTF-7).
    pub fn wire(&self) -> &str {
        match self {
            MailboxName::Inbox => "INBOX",
            MailboxName::Other(s) => s,
        }
    }

    /// The Maildir++ directory name below the user's root ("" for INBOX).
    pub fn dir_name(&self) -> String {
        match self {
            MailboxName::Inbox => String::new(),
            MailboxName::Other(s) => format!(".{s}"),
        }
    }

    /// The name in UTF-8 (for UTF8=ACCEPT sessions and logs).
    pub fn utf8(&self) -> String {
        decode_mutf7(self.wire()).unwrap_or_else(|| self.wire().to_string())
    }

    /// The name as a session shows it: UTF-8 once the client enabled UTF-8 names, modified
    /// UTF-7 otherwise.
    pub fn shown(&self, utf8: bool) -> String {
        if utf8 {
            self.utf8()
        } else {
            self.wire().to_string()
        }
    }

    /// Parent names, nearest last: "a.b.c" gives ["a", "a.b"].
    pub fn parents(&self) -> Vec<MailboxName> {
        let w = self.wire();
        w.match_indices(DELIM)
            .map(|(i, _)| match &w[..i] {
                // "INBOX.x" is a child of the one INBOX (RFC 3501 §6.3.8), never of a
                // second folder spelled INBOX. `from_utf7` made that spelling canonical.
                "INBOX" => MailboxName::Inbox,
                p => MailboxName::Other(p.to_string()),
            })
            .collect()
    }
}

fn b64() -> base64::engine::GeneralPurpose {
    // Modified BASE64 (RFC 3501 §5.1.3): ',' instead of '/', no padding.
    let alphabet = base64::alphabet::Alphabet::new(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,",
    )
    .expect("valid alphabet");
    base64::engine::GeneralPurpose::new(
        &alphabet,
        base64::engine::GeneralPurposeConfig::new()
            .with_encode_padding(false)
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireNone),
    )
}

/// Encode UTF-8 text as modified UTF-7.
pub fn encode_mutf7(s: &str) -> String {
    let mut out = String::new();
    let mut pending: Vec<u16> = Vec::new();
    let flush = |pending: &mut Vec<u16>, out: &mut String| {
        if pending.is_empty() {
            return;
        }
        let bytes: Vec<u8> = pending.iter().flat_map(|u| u.to_be_bytes()).collect();
        out.push('&');
        out.push_str(&b64().encode(bytes));
        out.push('-');
        pending.clear();
    };
    for c in s.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut pending, &mut out);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut buf = [0u16; 2];
            pending.extend_from_slice(c.encode_utf16(&mut buf));
        }
    }
    flush(&mut pending, &mut out);
    out
}

/// Decode modified UTF-7; None if it is malformed.
pub fn decode_mutf7(s: &str) -> Option<String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let end = after.find('-')?;
        let chunk = &after[..end];
        if chunk.is_empty() {
            out.push('&');
        } else {
            let bytes = b64().decode(chunk).ok()?;
            if bytes.len() % 2 != 0 {
                return None;
            }
            let units: Vec<u16> = bytes
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            let text = String::from_utf16(&units).ok()?;
            // Printable ASCII must not be base64-encoded.
            if text.chars().any(|c| (' '..='~').contains(&c)) {
                return None;
            }
            out.push_str(&text);
        }
        rest = &after[end + 1..];
    }
    if rest.bytes().any(|b| !(0x20..=0x7e).contains(&b)) {
        return None;
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutf7_round_trip() {
        for s in ["Entwürfe", "日本語", "a&b", "Smile 😀 ok", "plain"] {
            let e = encode_mutf7(s);
            assert!(e.is_ascii());
            assert_eq!(decode_mutf7(&e).as_deref(), Some(s), "{e}");
        }
        assert_eq!(encode_mutf7("Entwürfe"), "Entw&APw-rfe");
        assert_eq!(encode_mutf7("&"), "&-");
        assert_eq!(
            decode_mutf7("~peter/mail/&U,BTFw-/&ZeVnLIqe-").unwrap(),
            "~peter/mail/台北/日本語"
        );
        assert!(decode_mutf7("&Jjo!").is_none());
        assert!(decode_mutf7("&AGE-").is_none()); // "a" must not be encoded
    }

    #[test]
    fn names_are_validated() {
        assert_eq!(
            MailboxName::from_wire(b"inbox").unwrap(),
            MailboxName::Inbox
        );
        assert_eq!(
            MailboxName::from_wire(b"InBoX").unwrap(),
            MailboxName::Inbox
        );
        assert_eq!(
            MailboxName::from_wire("Entwürfe".as_bytes()).unwrap(),
            MailboxName::Other("Entw&APw-rfe".into())
        );
        assert_eq!(MailboxName::from_wire(b"a.b").unwrap().dir_name(), ".a.b");
        for bad in [
            &b"../x"[..],
            b"..",
            b"a..b",
            b".a",
            b"a.",
            b"a/b",
            b"/etc/passwd",
            b"a\0b",
            b"",
            b"~root",
            b"a\x01",
            b"&Jjo",
        ] {
            assert!(MailboxName::from_wire(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            MailboxName::from_wire(b"a.b.c").unwrap().parents(),
            vec![
                MailboxName::Other("a".into()),
                MailboxName::Other("a.b".into())
            ]
        );
        assert_eq!(
            MailboxName::from_wire(b"inbox.x").unwrap(),
            MailboxName::Other("INBOX.x".into())
        );
    }

    #[test]
    fn utf8_names() {
        let n = MailboxName::from_utf8_wire("Entwürfe".as_bytes()).unwrap();
        assert_eq!(n, MailboxName::Other("Entw&APw-rfe".into()));
        assert_eq!(n.shown(true), "Entwürfe");
        assert_eq!(n.shown(false), "Entw&APw-rfe");
        // In UTF-8 mode "&" is a plain character, not a shift.
        let a = MailboxName::from_utf8_wire(b"a&b").unwrap();
        assert_eq!(a.wire(), "a&-b");
        assert_eq!(a.shown(true), "a&b");
        assert_eq!(
            MailboxName::from_utf8_wire(b"inbox").unwrap(),
            MailboxName::Inbox
        );
        for bad in [&b"a..b"[..], b"\xff", b"a/b", b"~x", b""] {
            assert!(MailboxName::from_utf8_wire(bad).is_err(), "{bad:?}");
        }
    }
}
