//! A message as POP3 sends it (RFC 1939 §3): lines ending in CRLF, a line starting with "."
//! gets one more "." in front (byte-stuffing), and the body ends with ".CRLF". Messages on
//! disk may end lines in LF alone (imported mail) or lack a final newline; `Canon` turns any of
//! that into the canonical CRLF form incrementally, so a message is never loaded whole.
//!
//! RFC 1939 §5 (LIST, STAT) counts octets of the message as sent, without the stuffing dots
//! and the final ".CRLF": `crlf_size` runs the same canonicaliser without stuffing, so the size
//! announced and the bytes sent can never disagree.

use std::io::{self, Read};

/// Incremental canonicaliser: LF or CRLF end a line (a CR not before LF is content), the
/// output ends every line with CRLF, and optionally stuffs dots and stops after `body_lines`
/// lines of body (TOP, RFC 1939 §7).
#[derive(Debug, Clone)]
pub struct Canon {
    stuff: bool,
    /// Body lines still wanted after the header; None = the whole message.
    body_lines: Option<u64>,
    at_line_start: bool,
    pending_cr: bool,
    in_header: bool,
    /// The current line has no content yet (for the blank line that ends the header).
    line_empty: bool,
    done: bool,
}

impl Canon {
    /// For sending: dot-stuffed, and for TOP cut after `body_lines` body lines.
    pub fn wire(body_lines: Option<u64>) -> Canon {
        Canon {
            stuff: true,
            body_lines,
            at_line_start: true,
            pending_cr: false,
            in_header: true,
            line_empty: true,
            done: false,
        }
    }

    /// For counting octets (RFC 1939 §5): no stuffing, whole message.
    pub fn counting() -> Canon {
        Canon {
            stuff: false,
            ..Canon::wire(None)
        }
    }

    /// Nothing more will be written: TOP has sent all the lines it wants.
    pub fn is_done(&self) -> bool {
        self.done
    }

    fn end_line(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"\r\n");
        self.at_line_start = true;
        if self.in_header {
            if self.line_empty {
                self.in_header = false;
                if self.body_lines == Some(0) {
                    self.done = true;
                }
            }
        } else if let Some(n) = self.body_lines.as_mut() {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.done = true;
            }
        }
        self.line_empty = true;
    }

    fn content(&mut self, b: u8, out: &mut Vec<u8>) {
        if self.at_line_start {
            if self.stuff && b == b'.' {
                out.push(b'.');
            }
            self.at_line_start = false;
        }
        self.line_empty = false;
        out.push(b);
    }

    /// Feed the next bytes of the message.
    pub fn feed(&mut self, data: &[u8], out: &mut Vec<u8>) {
        for &b in data {
            if self.done {
                return;
            }
            if self.pending_cr {
                self.pending_cr = false;
                if b == b'\n' {
                    self.end_line(out);
                    continue;
                }
                // A lone CR is content (never a line end: the wire form has CRLF only).
                self.content(b'\r', out);
            }
            match b {
                b'\r' => self.pending_cr = true,
                b'\n' => self.end_line(out),
                _ => self.content(b, out),
            }
        }
    }

    /// The message ended: close an unterminated last line (RFC 1939 §3: the terminating
    /// ".CRLF" must follow a CRLF).
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        if self.pending_cr {
            self.pending_cr = false;
            self.content(b'\r', out);
        }
        if !self.at_line_start {
            self.end_line(out);
        }
        self.done = true;
    }
}

/// Octets of the canonical CRLF form of a message (no stuffing, no final ".CRLF").
pub fn crlf_size<R: Read>(mut r: R) -> io::Result<u64> {
    let mut c = Canon::counting();
    let mut buf = vec![0u8; 64 * 1024];
    let mut out = Vec::with_capacity(80 * 1024);
    let mut total = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        c.feed(&buf[..n], &mut out);
        total += out.len() as u64;
        out.clear();
    }
    c.finish(&mut out);
    Ok(total + out.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(msg: &[u8], top: Option<u64>, chunk: usize) -> Vec<u8> {
        let mut c = Canon::wire(top);
        let mut out = Vec::new();
        for part in msg.chunks(chunk.max(1)) {
            c.feed(part, &mut out);
        }
        c.finish(&mut out);
        out
    }

    #[test]
    fn crlf_lf_and_missing_newline_become_crlf() {
        for chunk in [1, 2, 3, 100] {
            assert_eq!(wire(b"a\r\nb\nc", None, chunk), b"a\r\nb\r\nc\r\n");
            assert_eq!(wire(b"a\rb\r\n", None, chunk), b"a\rb\r\n");
            assert_eq!(wire(b"x\r", None, chunk), b"x\r\r\n");
            assert_eq!(wire(b"", None, chunk), b"");
        }
    }

    #[test]
    fn dots_are_stuffed_at_line_start_only() {
        for chunk in [1, 4, 100] {
            assert_eq!(
                wire(b".a\r\nb.c\n..\r\n.", None, chunk),
                b"..a\r\nb.c\r\n...\r\n..\r\n"
            );
        }
    }

    #[test]
    fn size_matches_unstuffed_wire_form() {
        for msg in [
            &b"Subject: x\r\n\r\n.body\r\n"[..],
            b"Subject: x\n\nbody\nmore",
            b"a\rb",
            b"",
        ] {
            let sent = wire(msg, None, 7);
            let dots = sent.windows(3).filter(|w| w == b"\n..").count()
                + usize::from(sent.starts_with(b".."));
            assert_eq!(
                crlf_size(msg).unwrap(),
                (sent.len() - dots) as u64,
                "{msg:?}"
            );
        }
        assert_eq!(crlf_size(&b"a\nb\n"[..]).unwrap(), 6);
    }

    #[test]
    fn top_sends_header_blank_line_and_n_body_lines() {
        let m = b"A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\n.l3\r\n";
        assert_eq!(wire(m, Some(0), 3), b"A: 1\r\nB: 2\r\n\r\n");
        assert_eq!(wire(m, Some(1), 3), b"A: 1\r\nB: 2\r\n\r\nl1\r\n");
        assert_eq!(
            wire(m, Some(3), 3),
            b"A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\n..l3\r\n"
        );
        assert_eq!(wire(m, Some(99), 3), wire(m, None, 3));
        // No blank line at all: the whole header and nothing more.
        assert_eq!(wire(b"A: 1\nB: 2", Some(0), 1), b"A: 1\r\nB: 2\r\n");
    }
}
