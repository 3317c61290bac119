//! Sans-IO parser of SMTP replies (RFC 5321 §4.2): bytes in, complete replies out.
//! Multi-line replies (`250-…` … `250 …`) are joined; the enhanced status code (RFC 3463)
//! is taken from the first line when present. Bounded: a line longer than `MAX_LINE` or a
//! reply of more than `MAX_LINES` lines is an error, never unbounded memory.

use std::fmt;

const MAX_LINE: usize = 4096;
const MAX_LINES: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// Enhanced status code ("5.1.1") if the server sent one.
    pub enhanced: Option<String>,
    /// Text of each line, without the code and separator.
    pub lines: Vec<String>,
}

impl Reply {
    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }
    pub fn is_permanent(&self) -> bool {
        self.code >= 500
    }
    /// The enhanced status, or one derived from the class (RFC 3463 §3.1 "X.0.0").
    pub fn status(&self) -> String {
        self.enhanced
            .clone()
            .unwrap_or_else(|| format!("{}.0.0", self.code / 100))
    }
    /// EHLO keywords (upper case), from the lines after the greeting line.
    pub fn ehlo_keywords(&self) -> Vec<(String, String)> {
        self.lines
            .iter()
            .skip(1)
            .map(|l| {
                let (k, v) = l.split_once(' ').unwrap_or((l.as_str(), ""));
                (k.to_ascii_uppercase(), v.trim().to_string())
            })
            .collect()
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The enhanced code, when sent, is already part of the text.
        write!(f, "{} {}", self.code, self.lines.join(" / "))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("malformed reply line {0:?}")]
    Malformed(String),
    #[error("reply line longer than {MAX_LINE} bytes")]
    LineTooLong,
    #[error("reply with more than {MAX_LINES} lines")]
    TooManyLines,
    #[error("reply lines with different codes ({0} then {1})")]
    CodeMismatch(u16, u16),
}

#[derive(Default, Debug)]
pub struct ReplyParser {
    buf: Vec<u8>,
    pending: Vec<String>,
    code: Option<u16>,
}

impl ReplyParser {
    pub fn new() -> ReplyParser {
        ReplyParser::default()
    }

    pub fn feed(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    fn reset(&mut self) {
        self.pending.clear();
        self.code = None;
    }

    /// Bytes buffered but not yet part of a complete reply.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete reply, if the buffer holds one.
    pub fn next_reply(&mut self) -> Option<Result<Reply, ReplyError>> {
        loop {
            let Some(nl) = self.buf.iter().position(|&b| b == b'\n') else {
                if self.buf.len() > MAX_LINE {
                    // Reported once; the partial reply is dropped (the caller gives up on
                    // the connection).
                    self.buf.clear();
                    self.reset();
                    return Some(Err(ReplyError::LineTooLong));
                }
                return None;
            };
            if nl > MAX_LINE {
                self.buf.drain(..=nl);
                self.reset();
                return Some(Err(ReplyError::LineTooLong));
            }
            let mut line: Vec<u8> = self.buf.drain(..=nl).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line).into_owned();
            let b = line.as_bytes();
            if b.len() < 3
                || !b[..3].iter().all(u8::is_ascii_digit)
                || !(b'2'..=b'5').contains(&b[0])
            {
                return Some(Err(ReplyError::Malformed(line)));
            }
            let code: u16 = line[..3].parse().unwrap_or(0);
            let sep = b.get(3).copied();
            if !matches!(sep, None | Some(b' ') | Some(b'-')) {
                return Some(Err(ReplyError::Malformed(line)));
            }
            if let Some(prev) = self.code.filter(|&prev| prev != code) {
                self.pending.clear();
                self.code = None;
                return Some(Err(ReplyError::CodeMismatch(prev, code)));
            }
            self.code = Some(code);
            self.pending.push(line.get(4..).unwrap_or("").to_string());
            if self.pending.len() > MAX_LINES {
                self.pending.clear();
                self.code = None;
                return Some(Err(ReplyError::TooManyLines));
            }
            if sep != Some(b'-') {
                let lines = std::mem::take(&mut self.pending);
                self.code = None;
                let enhanced = enhanced_code(code, &lines[0]);
                return Some(Ok(Reply {
                    code,
                    enhanced,
                    lines,
                }));
            }
        }
    }
}

/// An RFC 3463 status at the start of the text whose class matches the reply's.
fn enhanced_code(code: u16, text: &str) -> Option<String> {
    let word = text.split_whitespace().next()?;
    let parts: Vec<&str> = word.split('.').collect();
    if parts.len() != 3
        || !parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    if parts[0] != (code / 100).to_string() {
        return None;
    }
    Some(word.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiline_and_split_reads() {
        let mut p = ReplyParser::new();
        p.feed(b"250-mx.example Hello\r\n250-SIZE 1000\r\n250-PIPE");
        assert!(p.next_reply().is_none());
        p.feed(b"LINING\r\n250 8BITMIME\r\n220 next\r\n");
        let r = p.next_reply().unwrap().unwrap();
        assert_eq!(r.code, 250);
        assert_eq!(r.lines.len(), 4);
        let kw = r.ehlo_keywords();
        assert_eq!(kw[0], ("SIZE".to_string(), "1000".to_string()));
        assert_eq!(kw[1].0, "PIPELINING");
        let r2 = p.next_reply().unwrap().unwrap();
        assert_eq!(r2.code, 220);
        assert!(p.next_reply().is_none());
    }

    #[test]
    fn enhanced_codes() {
        let mut p = ReplyParser::new();
        p.feed(b"550 5.1.1 no such user\r\n451 4.3.0 try later\r\n250 ok\r\n550 2.0.0 odd\r\n");
        assert_eq!(p.next_reply().unwrap().unwrap().status(), "5.1.1");
        let r = p.next_reply().unwrap().unwrap();
        assert!(r.is_transient());
        assert_eq!(r.status(), "4.3.0");
        assert_eq!(p.next_reply().unwrap().unwrap().status(), "2.0.0");
        // A class that contradicts the code is not taken as enhanced status.
        assert_eq!(p.next_reply().unwrap().unwrap().enhanced, None);
    }

    #[test]
    fn bad_input_is_an_error() {
        let mut p = ReplyParser::new();
        p.feed(b"hello\r\n");
        assert!(matches!(
            p.next_reply(),
            Some(Err(ReplyError::Malformed(_)))
        ));
        p.feed(b"250-a\r\n251 b\r\n");
        assert!(matches!(
            p.next_reply(),
            Some(Err(ReplyError::CodeMismatch(250, 251)))
        ));
        p.feed(&vec![b'2'; MAX_LINE + 10]);
        assert_eq!(p.next_reply(), Some(Err(ReplyError::LineTooLong)));
        let mut p = ReplyParser::new();
        p.feed(b"250\n");
        assert_eq!(p.next_reply().unwrap().unwrap().code, 250);
        p.feed(b"250x\r\n");
        assert!(p.next_reply().unwrap().is_err());
    }

    #[test]
    fn random_input_never_panics_and_stays_bounded() {
        use rand::Rng;
        let mut rng = rand::rng();
        let alphabet = b"0123456789 -.\r\n25x\xff25 250-250 ";
        for _ in 0..500 {
            let mut p = ReplyParser::new();
            for _ in 0..rng.random_range(1..20) {
                // Sometimes one long line without a newline.
                let max = if rng.random_bool(0.1) { 6000 } else { 600 };
                let len = rng.random_range(0..max);
                let chunk: Vec<u8> = (0..len)
                    .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                    .collect();
                p.feed(&chunk);
                while let Some(r) = p.next_reply() {
                    if let Ok(r) = r {
                        assert!((200..600).contains(&r.code));
                        assert!(r.lines.len() <= MAX_LINES);
                    }
                }
                // Only an unfinished line may stay buffered, and it is never longer than
                // MAX_LINE before an error is reported.
                assert!(p.buffered() <= MAX_LINE + 6000);
            }
        }
    }
}
