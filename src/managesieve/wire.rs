//! ManageSieve command syntax (RFC 5804 §4): an atom (the command), then strings — quoted
//! (`"…"` with `\"` and `\\`) or literal (`{N+}` or `{N}`, CRLF, N octets) — and atoms,
//! up to CRLF. Bounded: lines and literals past the limits are errors, never growth.

/// Longest command line (outside literals) and longest literal we take.
pub const MAX_LINE: usize = 8 * 1024;
pub const MAX_LITERAL: usize = 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    Atom(String),
    Str(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// The command could not be read; the session answers NO and skips to the line's end.
    Syntax(&'static str),
    /// Too long: the session says BYE.
    TooLong,
}

/// Parses one command from the front of `buf`. `Ok(None)`: need more bytes. On success,
/// returns the arguments (first is the command atom) and the bytes consumed.
/// `Ok(Some((arguments, consumed)))`, `Ok(None)` (need more), or the error and how many
/// bytes to drop.
pub type Parsed = Result<Option<(Vec<Arg>, usize)>, (WireError, usize)>;

pub fn parse(buf: &[u8]) -> Parsed {
    let mut args = Vec::new();
    let mut i = 0;
    let mut line_bytes = 0usize;
    loop {
        // Skip spaces.
        while i < buf.len() && buf[i] == b' ' {
            i += 1;
        }
        if line_bytes + i > MAX_LINE + MAX_LITERAL {
            return Err((WireError::TooLong, buf.len()));
        }
        let Some(&c) = buf.get(i) else {
            return if i > MAX_LINE {
                Err((WireError::TooLong, buf.len()))
            } else {
                Ok(None)
            };
        };
        match c {
            b'\r' | b'\n' => {
                let end = if c == b'\r' {
                    match buf.get(i + 1) {
                        None => return Ok(None),
                        Some(b'\n') => i + 2,
                        Some(_) => return Err((WireError::Syntax("bare CR"), skip_line(buf, i))),
                    }
                } else {
                    i + 1
                };
                if args.is_empty() {
                    return Err((WireError::Syntax("empty command"), end));
                }
                return Ok(Some((args, end)));
            }
            b'"' => {
                let mut s = Vec::new();
                let mut j = i + 1;
                loop {
                    let Some(&d) = buf.get(j) else {
                        return if j - i > MAX_LINE {
                            Err((WireError::TooLong, buf.len()))
                        } else {
                            Ok(None)
                        };
                    };
                    match d {
                        b'"' => break,
                        b'\\' => {
                            let Some(&e) = buf.get(j + 1) else {
                                return Ok(None);
                            };
                            if e != b'"' && e != b'\\' {
                                return Err((
                                    WireError::Syntax("bad escape in quoted string"),
                                    skip_line(buf, j),
                                ));
                            }
                            s.push(e);
                            j += 2;
                            continue;
                        }
                        b'\r' | b'\n' => {
                            return Err((
                                WireError::Syntax("line break in quoted string"),
                                skip_line(buf, j),
                            ));
                        }
                        _ => s.push(d),
                    }
                    j += 1;
                    if j - i > MAX_LINE {
                        return Err((WireError::TooLong, buf.len()));
                    }
                }
                args.push(Arg::Str(s));
                i = j + 1;
            }
            b'{' => {
                let close = match buf[i..].iter().take(24).position(|&d| d == b'}') {
                    Some(p) => i + p,
                    None if buf.len() - i < 24 => return Ok(None),
                    None => return Err((WireError::Syntax("bad literal"), skip_line(buf, i))),
                };
                let spec = &buf[i + 1..close];
                let spec = spec.strip_suffix(b"+").unwrap_or(spec);
                let n: usize = match std::str::from_utf8(spec).ok().and_then(|s| s.parse().ok()) {
                    Some(n) => n,
                    None => {
                        return Err((WireError::Syntax("bad literal length"), skip_line(buf, i)));
                    }
                };
                if n > MAX_LITERAL {
                    return Err((WireError::TooLong, buf.len()));
                }
                let start = match (buf.get(close + 1), buf.get(close + 2)) {
                    (Some(b'\r'), Some(b'\n')) => close + 3,
                    (Some(b'\n'), _) => close + 2,
                    (None, _) | (Some(b'\r'), None) => return Ok(None),
                    _ => {
                        return Err((
                            WireError::Syntax("literal must end its line"),
                            skip_line(buf, close),
                        ));
                    }
                };
                if buf.len() < start + n {
                    return Ok(None);
                }
                args.push(Arg::Str(buf[start..start + n].to_vec()));
                line_bytes += n;
                i = start + n;
            }
            _ => {
                let st = i;
                while i < buf.len() && !matches!(buf[i], b' ' | b'\r' | b'\n' | b'"' | b'{') {
                    i += 1;
                    if i - st > 64 {
                        return Err((WireError::Syntax("atom too long"), skip_line(buf, i)));
                    }
                }
                if i == buf.len() {
                    return Ok(None);
                }
                args.push(Arg::Atom(
                    String::from_utf8_lossy(&buf[st..i]).to_ascii_uppercase(),
                ));
            }
        }
    }
}

/// Index just past the next LF from `i` (or the end of the buffer).
fn skip_line(buf: &[u8], i: usize) -> usize {
    buf[i..]
        .iter()
        .position(|&c| c == b'\n')
        .map_or(buf.len(), |p| i + p + 1)
}

/// A string as the server sends it: quoted (with `\\` escapes) when short and on one
/// line, else a literal.
pub fn string(s: &[u8]) -> Vec<u8> {
    if s.len() < 1024 && !s.iter().any(|&c| c == b'\r' || c == b'\n' || c == 0) {
        let mut o = Vec::with_capacity(s.len() + 2);
        o.push(b'"');
        for &c in s {
            if c == b'"' || c == b'\\' {
                o.push(b'\\');
            }
            o.push(c);
        }
        o.push(b'"');
        o
    } else {
        let mut o = format!("{{{}}}\r\n", s.len()).into_bytes();
        o.extend_from_slice(s);
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        let (a, n) = parse(b"PUTSCRIPT \"x\" {5+}\r\nkeep;\r\nNOOP\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            a,
            vec![
                Arg::Atom("PUTSCRIPT".into()),
                Arg::Str(b"x".to_vec()),
                Arg::Str(b"keep;".to_vec())
            ]
        );
        assert_eq!(n, 27);
        assert!(parse(b"PUTSCRIPT \"x\" {5+}\r\nke").unwrap().is_none());
        assert!(parse(b"noop").unwrap().is_none());
        let (a, _) = parse(b"noop \"a\\\"b\"\r\n").unwrap().unwrap();
        assert_eq!(a[1], Arg::Str(b"a\"b".to_vec()));
        assert!(matches!(parse(b"\r\n"), Err((WireError::Syntax(_), 2))));
        assert!(matches!(
            parse(b"X {99999999}\r\n"),
            Err((WireError::TooLong, _))
        ));
        assert!(parse(&vec![b'a'; 20_000]).is_err());
        assert_eq!(string(b"ab"), b"\"ab\"");
        assert_eq!(string(b"a\r\nb"), b"{4}\r\na\r\nb");
    }

    #[test]
    fn random_input_never_panics() {
        let mut x: u64 = 0x1234_5678_9abc_def1;
        for _ in 0..20_000 {
            let mut b = Vec::new();
            for _ in 0..(x % 40) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                b.push(b"ab \"{}+\r\n\\0123"[(x % 14) as usize]);
            }
            if let Ok(Some((_, n))) | Err((_, n)) = parse(&b) {
                assert!(n <= b.len() && n > 0);
            }
        }
    }
}
