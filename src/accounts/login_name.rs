//! The canonical form of a login name, computed once per attempt before the throttle and the
//! lookup, so every spelling that reaches an account also counts against that account.
//!
//! Decisions (a login name is typed by a person into a mail client, not a mail path):
//! - Refused, never trimmed: surrounding or inner white space, `<…>` brackets, quotes, control
//!   characters, and anything RFC 5321 §4.1.2 would need quoting for (`" \ ( ) , ; : [ ] < >`).
//!   Silently trimming would make ` bob` and `bob` the same account but different spellings.
//! - The local part is ASCII, compared case-insensitively (lower-cased). Non-ASCII local parts
//!   are refused: Unicode case folding maps look-alikes onto ASCII (U+212A KELVIN SIGN lowers to
//!   `k`), which is exactly the ambiguity to avoid.
//! - Without `@domain` the name is a user of our domain (what most clients send).
//! - The domain goes through IDNA (UTS 46, STD3 rules, RFC 5891): lower case, NFC, U-labels to
//!   A-labels, so `EXAMPLE.test` and a full-width `ｅｘａｍｐｌｅ.test` both become `example.test`.
//! - A trailing dot (the DNS root, `bob@example.test.`) is refused, as is any empty label.
//! - At most 64 octets of local part (RFC 5321 §4.5.3.1.1) and 254 in all.

use std::fmt;

/// Why a login name was refused before any password check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadName {
    Empty,
    TooLong,
    /// A control, space, bracket, quote or other character no login name contains.
    Forbidden,
    /// Non-ASCII in the local part.
    NonAscii,
    /// Local part starting or ending with a dot, or with `..`, or relay syntax (`%`, `!`).
    LocalPart,
    /// Domain with a trailing dot, an empty label, or refused by IDNA.
    Domain,
}

impl fmt::Display for BadName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BadName::Empty => "empty",
            BadName::TooLong => "too-long",
            BadName::Forbidden => "forbidden-character",
            BadName::NonAscii => "non-ascii-local-part",
            BadName::LocalPart => "bad-local-part",
            BadName::Domain => "bad-domain",
        })
    }
}

/// `local@domain`, lower case, for a login name as a client sent it; `domain` is ours (ASCII,
/// lower case) and completes a bare local part.
pub fn canonical_login(name: &str, our_domain: &str) -> Result<String, BadName> {
    if name.is_empty() {
        return Err(BadName::Empty);
    }
    if name.len() > 254 {
        return Err(BadName::TooLong);
    }
    if name.chars().any(forbidden) {
        return Err(BadName::Forbidden);
    }
    let (local, domain) = match name.rsplit_once('@') {
        Some((l, d)) => (l, Some(d)),
        None => (name, None),
    };
    if !local.is_ascii() {
        return Err(BadName::NonAscii);
    }
    if local.is_empty()
        || local.len() > 64
        || local.starts_with('.')
        || local.ends_with('.')
        || local.contains("..")
        || local.contains(['@', '%', '!'])
    {
        return Err(BadName::LocalPart);
    }
    let domain = match domain {
        None => our_domain.to_ascii_lowercase(),
        Some(d) => canonical_domain(d)?,
    };
    Ok(format!("{}@{domain}", local.to_ascii_lowercase()))
}

fn canonical_domain(d: &str) -> Result<String, BadName> {
    let ascii = if d.is_ascii() {
        d.to_ascii_lowercase()
    } else {
        idna::domain_to_ascii_strict(d).map_err(|_| BadName::Domain)?
    };
    // IDNA maps U+3002 (ideographic full stop) to '.', so test the dots after mapping.
    let ok = !ascii.is_empty()
        && ascii.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    if ok { Ok(ascii) } else { Err(BadName::Domain) }
}

fn forbidden(c: char) -> bool {
    c.is_control()
        || c.is_whitespace()
        || matches!(
            c,
            '"' | '\\' | '(' | ')' | ',' | ';' | ':' | '[' | ']' | '<' | '>'
        )
        // Invisible and direction-changing characters (zero-width, bidi, BOM).
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{206f}' | '\u{feff}')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(s: &str) -> Result<String, BadName> {
        canonical_login(s, "example.test")
    }

    #[test]
    fn spellings_of_one_account() {
        for s in [
            "bob",
            "BOB",
            "bob@example.test",
            "Bob@Example.TEST",
            "bob@ｅｘａｍｐｌｅ.test",
        ] {
            assert_eq!(canon(s).as_deref(), Ok("bob@example.test"), "{s}");
        }
        assert_eq!(
            canon("bob@bücher.example").as_deref(),
            Ok("bob@xn--bcher-kva.example")
        );
    }

    #[test]
    fn refused_spellings() {
        use BadName::*;
        let cases = [
            ("", Empty),
            (" bob@example.test", Forbidden),
            ("bob@example.test ", Forbidden),
            ("<bob@example.test>", Forbidden),
            ("\"bob\"@example.test", Forbidden),
            ("bob\r\n@example.test", Forbidden),
            ("bob\0", Forbidden),
            ("bo\u{200b}b", Forbidden),
            ("bob@example.test.", Domain),
            ("bob@example.test....", Domain),
            ("bob@example.test\u{3002}", Domain),
            ("bob@example..test", Domain),
            ("bob@", Domain),
            ("bob@-x.test", Domain),
            ("\u{212a}evin", NonAscii),
            ("b\u{43e}b", NonAscii),
            ("@example.test", LocalPart),
            (".bob", LocalPart),
            ("bob.", LocalPart),
            ("b..ob", LocalPart),
            ("bob%other@example.test", LocalPart),
            ("a@b@example.test", LocalPart),
        ];
        for (s, want) in cases {
            assert_eq!(canon(s), Err(want), "{s:?}");
        }
        assert_eq!(canon(&"a".repeat(65)), Err(LocalPart));
        assert_eq!(canon(&"a".repeat(300)), Err(TooLong));
    }
}
