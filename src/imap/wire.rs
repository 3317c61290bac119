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

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok {
    Atom(Vec<u8>),
    Str(Vec<u8>),
    Open,
    Close,
}

/// Tokens with their byte spans. Literals (`{n}`/`{n+}` CRLF data) are read inline, as the
/// fragmentizer hands over whole messages. None on malformed input.
pub fn tokenize(line: &[u8]) -> Option<Vec<(Tok, usize, usize)>> {
    let mut out = Vec::new();
    let mut i = 0;
    let n = line.len();
    while i < n {
        let c = line[i];
        let start = i;
        match c {
            b' ' | b'\r' | b'\n' => i += 1,
            b'(' => {
                out.push((Tok::Open, i, i + 1));
                i += 1;
            }
            b')' => {
                out.push((Tok::Close, i, i + 1));
                i += 1;
            }
            b'"' => {
                let mut s = Vec::new();
                i += 1;
                loop {
                    let b = *line.get(i)?;
                    i += 1;
                    match b {
                        b'"' => break,
                        b'\\' => {
                            s.push(*line.get(i)?);
                            i += 1;
                        }
                        b'\r' | b'\n' => return None,
                        _ => s.push(b),
                    }
                }
                out.push((Tok::Str(s), start, i));
            }
            b'{' | b'~' if line[i..].iter().position(|&b| b == b'}').is_some() => {
                let open = if c == b'~' { i + 1 } else { i };
                if line.get(open) != Some(&b'{') {
                    return None;
                }
                let close = open + line[open..].iter().position(|&b| b == b'}')?;
                let num = std::str::from_utf8(&line[open + 1..close]).ok()?;
                let len: usize = num.trim_end_matches('+').parse().ok()?;
                let data_start = close + 3; // "}\r\n"
                if line.get(close + 1..close + 3) != Some(b"\r\n") {
                    return None;
                }
                let data_end = data_start.checked_add(len)?;
                let data = line.get(data_start..data_end)?;
                i = data_end;
                out.push((Tok::Str(data.to_vec()), start, i));
            }
            _ => {
                while i < n && !matches!(line[i], b' ' | b'(' | b')' | b'\r' | b'\n') {
                    // Section brackets may hold spaces: BODY[HEADER.FIELDS (A B)].
                    if line[i] == b'[' {
                        let close = line[i..].iter().position(|&b| b == b']')?;
                        i += close;
                    }
                    i += 1;
                }
                out.push((Tok::Atom(line[start..i].to_vec()), start, i));
            }
        }
    }
    Some(out)
}

/// `APPEND mailbox [flags] [date] UTF8 (literal8)` (RFC 6855 §4) as the plain APPEND with a
/// literal8 that imap-codec parses: the `UTF8 (` and `)` around the literal are cut out.
/// None when the command does not end in that form.
pub fn utf8_append(msg: &[u8], toks: &[(Tok, usize, usize)]) -> Option<Vec<u8>> {
    let n = toks.len();
    if n < 7 || !is_atom(&toks[n - 4].0, "UTF8") {
        return None;
    }
    let (Tok::Open, Tok::Str(_), Tok::Close) = (&toks[n - 3].0, &toks[n - 2].0, &toks[n - 1].0)
    else {
        return None;
    };
    let (lit_start, lit_end) = (toks[n - 2].1, toks[n - 2].2);
    if msg.get(lit_start) != Some(&b'~') {
        return None;
    }
    let mut out = msg[..toks[n - 4].1].to_vec();
    out.extend_from_slice(&msg[lit_start..lit_end]);
    out.extend_from_slice(&msg[toks[n - 1].2..]);
    Some(out)
}

/// The tag of a command line for error replies, or `*` when it has none that is valid.
pub fn tag_of(msg: &[u8]) -> String {
    let first = msg
        .split(|&b| b == b' ' || b == b'\r')
        .next()
        .unwrap_or(b"");
    if !first.is_empty()
        && first.len() <= 64
        && first
            .iter()
            .all(|&b| b.is_ascii_graphic() && !b"(){%*\"\\+".contains(&b))
    {
        String::from_utf8_lossy(first).into_owned()
    } else {
        "*".into()
    }
}

/// Is this token the atom `word` (case-insensitive)?
pub fn is_atom(t: &Tok, word: &str) -> bool {
    matches!(t, Tok::Atom(a) if a.eq_ignore_ascii_case(word.as_bytes()))
}

/// The bytes of an atom or string token.
pub fn text(t: &Tok) -> Option<&[u8]> {
    match t {
        Tok::Atom(a) | Tok::Str(a) => Some(a),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_strings() {
        let t = tokenize(b"a LIST (SPECIAL-USE) \"\" {1+}\r\n* RETURN (STATUS (MESSAGES))\r\n")
            .unwrap();
        assert!(is_atom(&t[1].0, "list"));
        assert_eq!(t[2].0, Tok::Open);
        assert_eq!(t[5].0, Tok::Str(b"".to_vec()));
        assert_eq!(t[6].0, Tok::Str(b"*".to_vec()));
        let mut o = Vec::new();
        string(&mut o, b"a\"b");
        assert_eq!(o, b"\"a\\\"b\"");
        o.clear();
        string(&mut o, "é".as_bytes());
        assert_eq!(o, b"{2}\r\n\xc3\xa9");
        assert!(tokenize(b"a \"unterminated").is_none());
        assert!(tokenize(b"a {18446744073709551615}\r\nx").is_none());
        o.clear();
        string_utf8(&mut o, "é\"".as_bytes());
        assert_eq!(o, "\"é\\\"\"".as_bytes());
        o.clear();
        string_utf8(&mut o, b"\xff");
        assert_eq!(o, b"{1}\r\n\xff");
        let cmd = "a APPEND Drafts (\\Seen) UTF8 (~{3+}\r\nä!)\r\n".as_bytes();
        let got = utf8_append(cmd, &tokenize(cmd).unwrap()).unwrap();
        assert_eq!(got, "a APPEND Drafts (\\Seen) ~{3+}\r\nä!\r\n".as_bytes());
        for no in [
            &b"a APPEND UTF8 {1+}\r\nx\r\n"[..],
            b"a APPEND x UTF8 ({1+}\r\nx)\r\n",
            b"a APPEND x UTF8 (~{1+}\r\nx) y\r\n",
        ] {
            assert!(utf8_append(no, &tokenize(no).unwrap()).is_none());
        }
    }
}
