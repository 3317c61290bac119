//! Sieve tokens (RFC 5228 §8.1): identifiers, tags, numbers with K/M/G quantifiers, quoted
//! strings, `text:` multi-line strings, punctuation, and the two comment forms. Every token
//! carries its 1-based line so errors can name it.

use super::CompileError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok {
    /// `identifier = (ALPHA / "_") *(ALPHA / DIGIT / "_")`, lowercased (commands are
    /// case-insensitive, §2.9 / §8.1).
    Ident(String),
    /// `:tag`, lowercased, without the colon.
    Tag(String),
    Number(u64),
    Str(String),
    LBracket,
    RBracket,
    LParen,
    RParen,
    Comma,
    Semi,
    LBrace,
    RBrace,
}

#[derive(Debug, Clone)]
pub struct Token {
    pub tok: Tok,
    pub line: usize,
}

/// Splits `src` into tokens; the script must be UTF-8 (§8.1: "Sieve scripts are UTF-8").
pub fn lex(src: &str) -> Result<Vec<Token>, CompileError> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut line = 1;
    let err = |line: usize, msg: &str| CompileError::new(line, msg);
    while i < b.len() {
        let c = b[i];
        let start_line = line;
        match c {
            b'\n' => {
                line += 1;
                i += 1;
            }
            b' ' | b'\t' | b'\r' => i += 1,
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                loop {
                    if i + 1 >= b.len() {
                        return Err(err(start_line, "unterminated /* comment"));
                    }
                    if b[i] == b'*' && b[i + 1] == b'/' {
                        i += 2;
                        break;
                    }
                    if b[i] == b'\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
            b'[' | b']' | b'(' | b')' | b',' | b';' | b'{' | b'}' => {
                let tok = match c {
                    b'[' => Tok::LBracket,
                    b']' => Tok::RBracket,
                    b'(' => Tok::LParen,
                    b')' => Tok::RParen,
                    b',' => Tok::Comma,
                    b';' => Tok::Semi,
                    b'{' => Tok::LBrace,
                    _ => Tok::RBrace,
                };
                out.push(Token { tok, line });
                i += 1;
            }
            b'"' => {
                i += 1;
                let mut s = Vec::new();
                loop {
                    let Some(&c) = b.get(i) else {
                        return Err(err(start_line, "unterminated string"));
                    };
                    i += 1;
                    match c {
                        b'"' => break,
                        // §2.4.2: `\\` and `\"` are the escapes; any other `\x` is just `x`.
                        b'\\' => {
                            let Some(&n) = b.get(i) else {
                                return Err(err(start_line, "unterminated string"));
                            };
                            if n == b'\n' {
                                line += 1;
                            }
                            s.push(n);
                            i += 1;
                        }
                        b'\n' => {
                            line += 1;
                            s.push(c);
                        }
                        _ => s.push(c),
                    }
                }
                let s = String::from_utf8(s).map_err(|_| err(start_line, "string is not UTF-8"))?;
                out.push(Token {
                    tok: Tok::Str(s),
                    line: start_line,
                });
            }
            b'0'..=b'9' => {
                let st = i;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                let mut n: u64 = src[st..i]
                    .parse()
                    .map_err(|_| err(line, "number too large"))?;
                let mult = match b.get(i).map(|c| c.to_ascii_uppercase()) {
                    Some(b'K') => 1u64 << 10,
                    Some(b'M') => 1 << 20,
                    Some(b'G') => 1 << 30,
                    _ => 1,
                };
                if mult > 1 {
                    i += 1;
                    n = n
                        .checked_mul(mult)
                        .ok_or_else(|| err(line, "number too large"))?;
                }
                out.push(Token {
                    tok: Tok::Number(n),
                    line,
                });
            }
            b':' => {
                i += 1;
                let st = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                if i == st || b[st].is_ascii_digit() {
                    return Err(err(line, "':' must start a tag such as :is"));
                }
                out.push(Token {
                    tok: Tok::Tag(src[st..i].to_ascii_lowercase()),
                    line,
                });
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let st = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                let word = src[st..i].to_ascii_lowercase();
                if word == "text" && b.get(i) == Some(&b':') {
                    i += 1;
                    let (s, ni, nl) = multiline(b, i, line)?;
                    i = ni;
                    line = nl;
                    out.push(Token {
                        tok: Tok::Str(s),
                        line: start_line,
                    });
                } else {
                    out.push(Token {
                        tok: Tok::Ident(word),
                        line,
                    });
                }
            }
            _ => {
                let ch = src[i..].chars().next().unwrap_or('?');
                return Err(err(line, &format!("unexpected character {ch:?}")));
            }
        }
    }
    Ok(out)
}

/// `text:` (§8.1): optional spaces/tabs and a comment, CRLF, then lines up to a line holding
/// only "."; a line starting ".." loses its first dot.
fn multiline(
    b: &[u8],
    mut i: usize,
    mut line: usize,
) -> Result<(String, usize, usize), CompileError> {
    let start = line;
    while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
        i += 1;
    }
    if b.get(i) == Some(&b'#') {
        while i < b.len() && b[i] != b'\n' {
            i += 1;
        }
    }
    if b.get(i) == Some(&b'\r') {
        i += 1;
    }
    if b.get(i) != Some(&b'\n') {
        return Err(CompileError::new(
            line,
            "text: must be followed by a line break",
        ));
    }
    i += 1;
    line += 1;
    let mut out = Vec::new();
    loop {
        if i >= b.len() {
            return Err(CompileError::new(
                start,
                "text: without a closing \".\" line",
            ));
        }
        let end = b[i..].iter().position(|&c| c == b'\n').map(|p| i + p);
        let (content, next) = match end {
            Some(e) => (&b[i..e], e + 1),
            None => (&b[i..], b.len()),
        };
        let content = content.strip_suffix(b"\r").unwrap_or(content);
        if content == b"." {
            i = next;
            if end.is_some() {
                line += 1;
            }
            break;
        }
        let content = if content.starts_with(b"..") {
            &content[1..]
        } else {
            content
        };
        out.extend_from_slice(content);
        out.extend_from_slice(b"\r\n");
        i = next;
        line += 1;
        if end.is_none() {
            return Err(CompileError::new(
                start,
                "text: without a closing \".\" line",
            ));
        }
    }
    let s = String::from_utf8(out).map_err(|_| CompileError::new(start, "string is not UTF-8"))?;
    Ok((s, i, line))
}
