//! A small tokenizer for the command forms imap-codec does not parse (LIST-EXTENDED, SEARCH
//! RETURN, WITHIN, `$`, APPEND UTF8): atoms, strings (quoted and literal) and parentheses,
//! each with its byte span so a command can be rewritten in place.

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
                    if line[i] == b'[' && line[i..].contains(&b']') {
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
        assert!(tokenize(b"a \"unterminated").is_none());
        assert!(tokenize(b"a {18446744073709551615}\r\nx").is_none());
    }
}
