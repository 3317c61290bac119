//! Command line framing: bytes in, CRLF-terminated lines out, with bounded memory. A line
//! longer than `HARD_MAX` is discarded up to its end and reported as too long so the session
//! can answer 500 5.5.2 and stay in sync with the client.

/// Longest line kept in memory: AUTH responses may be 12288 octets (RFC 4954 §4); ordinary
/// commands are held to 512 by the session (RFC 5321 §4.5.3.1.4).
pub const HARD_MAX: usize = 12288;

#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A whole line including its LF.
    Complete(Vec<u8>),
    /// A line over `HARD_MAX` was dropped.
    TooLong,
}

#[derive(Default)]
pub struct LineReader {
    buf: Vec<u8>,
    discarding: bool,
}

impl LineReader {
    pub fn new() -> LineReader {
        LineReader::default()
    }

    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn clear(&mut self) {
        self.buf.clear();
        self.discarding = false;
    }

    /// Bytes buffered but not yet returned as lines (handed to the DATA decoder).
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    /// Put bytes back at the front (what the DATA decoder did not consume).
    pub fn unread(&mut self, mut data: Vec<u8>) {
        data.extend_from_slice(&self.buf);
        self.buf = data;
    }

    pub fn next_line(&mut self) -> Option<Line> {
        match self.buf.iter().position(|&b| b == b'\n') {
            Some(pos) => {
                let rest = self.buf.split_off(pos + 1);
                let line = std::mem::replace(&mut self.buf, rest);
                if self.discarding || line.len() > HARD_MAX {
                    self.discarding = false;
                    Some(Line::TooLong)
                } else {
                    Some(Line::Complete(line))
                }
            }
            None => {
                if self.buf.len() > HARD_MAX {
                    self.discarding = true;
                    self.buf.clear();
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_bounds() {
        let mut r = LineReader::new();
        r.push(b"EHLO a\r\nNOOP\r\nQU");
        assert_eq!(r.next_line(), Some(Line::Complete(b"EHLO a\r\n".to_vec())));
        assert_eq!(r.next_line(), Some(Line::Complete(b"NOOP\r\n".to_vec())));
        assert_eq!(r.next_line(), None);
        r.push(&vec![b'x'; HARD_MAX + 10]);
        assert_eq!(r.next_line(), None);
        assert!(r.buf.len() <= HARD_MAX);
        r.push(b"yyy\r\nNOOP\r\n");
        assert_eq!(r.next_line(), Some(Line::TooLong));
        assert_eq!(r.next_line(), Some(Line::Complete(b"NOOP\r\n".to_vec())));
    }
}
