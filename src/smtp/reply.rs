//! SMTP replies (RFC 5321 §4.2) with enhanced status codes (RFC 3463, RFC 2034), rendered to
//! the wire form: every line but the last is `CODE-text`, the last `CODE text`.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// Enhanced status code ("5.1.1"); empty for replies that carry none (220, 221 banners
    /// keep one too, but 334 challenges and the EHLO list must not).
    pub enhanced: String,
    pub lines: Vec<String>,
}

impl Reply {
    pub fn new(code: u16, enhanced: &str, text: impl Into<String>) -> Reply {
        Reply {
            code,
            enhanced: enhanced.to_owned(),
            lines: vec![text.into()],
        }
    }

    /// A reply without an enhanced status code (334 challenges, EHLO capability list).
    pub fn plain(code: u16, lines: Vec<String>) -> Reply {
        Reply {
            code,
            enhanced: String::new(),
            lines,
        }
    }

    pub fn is_positive(&self) -> bool {
        self.code < 400
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        let n = self.lines.len().max(1);
        for i in 0..n {
            let text = self.lines.get(i).map(String::as_str).unwrap_or("");
            let sep = if i + 1 == n { ' ' } else { '-' };
            // Replies never carry CR/LF from client data into the stream.
            let text: String = text.chars().filter(|c| *c != '\r' && *c != '\n').collect();
            if self.enhanced.is_empty() {
                out.extend_from_slice(format!("{}{sep}{text}\r\n", self.code).as_bytes());
            } else {
                out.extend_from_slice(
                    format!("{}{sep}{} {text}\r\n", self.code, self.enhanced).as_bytes(),
                );
            }
        }
        out
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}",
            self.code,
            self.enhanced,
            self.lines.join(" / ")
        )
    }
}

/// Replies used in more than one place.
pub mod std_replies {
    use super::Reply;

    pub fn ok() -> Reply {
        Reply::new(250, "2.0.0", "OK")
    }
    pub fn bad_sequence(text: &str) -> Reply {
        Reply::new(503, "5.5.1", text)
    }
    pub fn line_too_long() -> Reply {
        // RFC 5321 §4.5.3.1.4: a command line is at most 512 octets with CRLF.
        Reply::new(500, "5.5.2", "Line too long (512 octets at most)")
    }
    pub fn timeout() -> Reply {
        Reply::new(
            421,
            "4.4.2",
            "Timeout waiting for input, closing connection",
        )
    }
    pub fn shutting_down(host: &str) -> Reply {
        Reply::new(
            421,
            "4.3.2",
            format!("{host} Service shutting down, try again later"),
        )
    }
    pub fn too_many_errors() -> Reply {
        Reply::new(421, "4.7.0", "Too many errors, closing connection")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiline_and_enhanced() {
        let r = Reply::new(550, "5.1.1", "No such user");
        assert_eq!(r.to_bytes(), b"550 5.1.1 No such user\r\n");
        let r = Reply::plain(250, vec!["mx".into(), "PIPELINING".into()]);
        assert_eq!(r.to_bytes(), b"250-mx\r\n250 PIPELINING\r\n");
        let r = Reply::new(501, "5.5.4", "bad\r\n250 injected");
        assert_eq!(r.to_bytes(), b"501 5.5.4 bad250 injected\r\n");
    }
}
