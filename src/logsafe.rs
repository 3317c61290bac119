//! The one way a client-supplied string reaches a log line. Every byte a client sends is
//! hostile (a login name with CR/LF would otherwise write a whole forged line that fail2ban
//! counts, banning any address the attacker names), so `Untrusted` escapes everything that
//! is not printable ASCII and bounds the length:
//!
//! - printable ASCII except `\` passes as is;
//! - `\` becomes `\\`, space `\x20` (so a value stays one token: `user=a\x20ip=…` cannot pass
//!   for a second field), other ASCII controls and DEL `\xHH`;
//! - any other character `\u{HHHH}` (no look-alike, bidi control or line separator survives);
//! - after `MAX_CHARS` (`MAX_TEXT_CHARS`) input characters the rest is dropped and `…(N more)` appended.
//!
//! Use it as `tracing::warn!("… user={}", Untrusted(&name))`. `UntrustedText` is the same for
//! free text in quotes (an SMTP reply, a remote server's answer): it keeps spaces.

use std::fmt;

/// Input characters shown before a value is cut (an address is at most 254).
pub const MAX_CHARS: usize = 256;
/// The same for free text.
pub const MAX_TEXT_CHARS: usize = 512;

/// A client-supplied string, escaped and bounded when displayed.
#[derive(Clone, Copy)]
pub struct Untrusted<'a>(pub &'a str);

/// Client- or peer-supplied free text: escaped like `Untrusted`, but spaces pass.
#[derive(Clone, Copy)]
pub struct UntrustedText<'a>(pub &'a str);

fn escape(f: &mut fmt::Formatter<'_>, s: &str, keep_space: bool, max: usize) -> fmt::Result {
    use fmt::Write;
    for (shown, c) in s.chars().enumerate() {
        if shown == max {
            let rest = s.chars().count() - max;
            return write!(f, "…({rest} more)");
        }
        match c {
            '\\' => f.write_str("\\\\")?,
            '!'..='~' => f.write_char(c)?,
            ' ' if keep_space => f.write_char(c)?,
            '\0'..='\x7f' => write!(f, "\\x{:02x}", c as u32)?,
            _ => write!(f, "\\u{{{:04x}}}", c as u32)?,
        }
    }
    Ok(())
}

impl fmt::Display for Untrusted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        escape(f, self.0, false, MAX_CHARS)
    }
}

impl fmt::Display for UntrustedText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        escape(f, self.0, true, MAX_TEXT_CHARS)
    }
}

impl fmt::Debug for Untrusted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Bytes that may not be UTF-8 (an IMAP literal, an SMTP line): decoded lossily, then escaped.
pub struct UntrustedBytes<'a>(pub &'a [u8]);

impl fmt::Display for UntrustedBytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cut = &self.0[..self.0.len().min(MAX_CHARS * 4)];
        fmt::Display::fmt(&Untrusted(&String::from_utf8_lossy(cut)), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(s: &str) -> String {
        Untrusted(s).to_string()
    }

    #[test]
    fn plain_names_pass() {
        assert_eq!(show("bob@example.test"), "bob@example.test");
    }

    #[test]
    fn no_line_break_or_field_survives() {
        let forged =
            "x\r\n2026-01-01T00:00:00Z  WARN auth failed: service=imap ip=203.0.113.77 user=x";
        let out = show(forged);
        assert!(!out.contains(['\r', '\n', ' ']), "{out}");
        assert!(out.starts_with("x\\x0d\\x0a2026"), "{out}");
        for c in ["\u{2028}", "\u{85}", "\u{202e}", "\u{0}", "\u{7f}", "\t"] {
            let out = show(c);
            assert!(out.chars().all(|c| c.is_ascii_graphic()), "{c:?} -> {out}");
        }
        assert_eq!(show("\u{212a}"), "\\u{212a}");
    }

    #[test]
    fn escapes_are_unambiguous_and_bounded() {
        assert_eq!(show("a\\x0d"), "a\\\\x0d");
        let long = "a".repeat(10_000);
        let out = show(&long);
        assert!(out.len() < MAX_CHARS + 20, "{}", out.len());
        assert!(out.ends_with("…(9744 more)"));
        assert_eq!(
            UntrustedText("550 5.7.1 no\r\nWARN x").to_string(),
            "550 5.7.1 no\\x0d\\x0aWARN x"
        );
        let bytes = UntrustedBytes(b"a\xff\nb").to_string();
        assert_eq!(bytes, "a\\u{fffd}\\x0ab");
    }
}
