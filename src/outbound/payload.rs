//! What goes on the wire after DATA: the message canonicalised to CRLF and dot-stuffed
//! (RFC 5321 §4.5.2), and whether it needs SMTPUTF8 (RFC 6531). Pure functions over bytes,
//! used by the SMTP client (`client`) and its users.

/// The message as it goes on the wire after DATA: canonical CRLF line ends, dot-stuffed
/// (RFC 5321 §4.5.2), terminated by CRLF.CRLF. Whatever was submitted (SMTP, `sendmail`, a
/// DSN), a bare CR or bare LF is sent as CRLF (RFC 5321 §2.3.8) and the line after it is
/// dot-stuffed like any other, so no receiver, strict or lax about line ends, can read an
/// end of data inside the message (the SMTP smuggling class, CVE-2023-51764).
/// The whole payload at once; the SMTP client streams it with `DataEncoder`, which this is
/// built on, so both are the same transformation.
pub fn data_payload(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 50 + 5);
    let mut enc = DataEncoder::new();
    enc.push(message, &mut out);
    enc.finish(&mut out);
    out
}

/// `data_payload` block by block, for a message streamed from its file: the state between
/// blocks is whether the next octet starts a line (dot-stuffing), whether the last one was
/// a CR (an LF right after it belongs to the same line end) and whether the output ends in
/// CRLF.
#[derive(Debug, Clone)]
pub struct DataEncoder {
    at_line_start: bool,
    after_cr: bool,
    ends_crlf: bool,
}

impl Default for DataEncoder {
    fn default() -> Self {
        DataEncoder::new()
    }
}

impl DataEncoder {
    pub fn new() -> DataEncoder {
        DataEncoder {
            at_line_start: true,
            after_cr: false,
            ends_crlf: false,
        }
    }

    /// Append the wire form of the next `input` octets to `out`.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len() + input.len() / 50 + 2);
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            if b == b'\n' && self.after_cr {
                // The LF of a CRLF whose CR was already sent as a line end.
                self.after_cr = false;
                i += 1;
                continue;
            }
            self.after_cr = false;
            if b == b'\r' || b == b'\n' {
                // CRLF, a bare CR or a bare LF: one line end.
                out.extend_from_slice(b"\r\n");
                self.after_cr = b == b'\r';
                self.at_line_start = true;
                self.ends_crlf = true;
                i += 1;
                continue;
            }
            if self.at_line_start && b == b'.' {
                out.push(b'.');
            }
            // The rest of the line up to the next CR or LF, copied as one run.
            let run = input[i..]
                .iter()
                .position(|&c| c == b'\r' || c == b'\n')
                .map_or(input.len(), |p| i + p);
            out.extend_from_slice(&input[i..run]);
            self.at_line_start = false;
            self.ends_crlf = false;
            i = run;
        }
    }

    /// End the data: CRLF if the last line was not ended, then ".\r\n".
    pub fn finish(self, out: &mut Vec<u8>) {
        if !self.ends_crlf {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
    }
}

/// Does the message need SMTPUTF8 (non-ASCII in the envelope or the header section)?
pub fn needs_smtputf8(mail_from: &str, rcpts: &[String], message: &[u8]) -> bool {
    let header_end = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .or_else(|| message.windows(2).position(|w| w == b"\n\n"))
        .unwrap_or(message.len());
    !mail_from.is_ascii()
        || rcpts.iter().any(|r| !r.is_ascii())
        || !message[..header_end].is_ascii()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_stuffing_and_crlf() {
        assert_eq!(data_payload(b"a\r\n.b\r\n"), b"a\r\n..b\r\n.\r\n");
        assert_eq!(data_payload(b".x\nb"), b"..x\r\nb\r\n.\r\n");
        assert_eq!(data_payload(b"a\r\n.\r\n"), b"a\r\n..\r\n.\r\n");
    }

    #[test]
    fn bare_cr_and_lf_become_crlf_and_dots_after_them_are_stuffed() {
        // Every smuggling shape a sender might have stored: none may reach the wire as an
        // end of data or as a bare CR/LF.
        assert_eq!(data_payload(b"a\n.\r\nb"), b"a\r\n..\r\nb\r\n.\r\n");
        assert_eq!(data_payload(b"a\r.\r\nb"), b"a\r\n..\r\nb\r\n.\r\n");
        assert_eq!(data_payload(b"a\r\n.\rb"), b"a\r\n..\r\nb\r\n.\r\n");
        assert_eq!(data_payload(b"a\n.\n"), b"a\r\n..\r\n.\r\n");
        assert_eq!(data_payload(b"a\r\r\nb"), b"a\r\n\r\nb\r\n.\r\n");
        assert_eq!(data_payload(b""), b"\r\n.\r\n");
        for m in [&b"x\r"[..], b"\r", b"\n\r", b".\r.\n."] {
            let p = data_payload(m);
            let body = &p[..p.len() - 3];
            for (i, &c) in body.iter().enumerate() {
                if c == b'\r' {
                    assert_eq!(body.get(i + 1), Some(&b'\n'), "{m:?}");
                }
                if c == b'\n' {
                    assert_eq!(body[i - 1], b'\r', "{m:?}");
                }
            }
            assert!(!body.windows(5).any(|w| w == b"\r\n.\r\n"), "{m:?}");
        }
    }

    /// The streamed encoder gives the same bytes as the whole-message one, wherever the
    /// blocks are cut (a CRLF split between blocks, a dot at a block start).
    #[test]
    fn block_by_block_equals_whole() {
        let samples: [&[u8]; 8] = [
            b"a\r\n.b\r\n",
            b"a\n.\r\nb",
            b"a\r.\r\nb",
            b"a\r\r\nb\r",
            b".\r.\n.",
            b"",
            b"\r\n\r\n..\n\r\n.",
            b"Subject: x\r\n\r\nline\r\n.\r\nmore\nend",
        ];
        for m in samples {
            let whole = data_payload(m);
            for cut in 0..=m.len() {
                for cut2 in cut..=m.len() {
                    let mut enc = DataEncoder::new();
                    let mut out = Vec::new();
                    enc.push(&m[..cut], &mut out);
                    enc.push(&m[cut..cut2], &mut out);
                    enc.push(&m[cut2..], &mut out);
                    enc.finish(&mut out);
                    assert_eq!(out, whole, "{m:?} cut at {cut}, {cut2}");
                }
            }
        }
    }

    #[test]
    fn smtputf8_detection() {
        assert!(!needs_smtputf8(
            "a@b",
            &["c@d".into()],
            b"Subject: x\r\n\r\n\xc3\xa9"
        ));
        assert!(needs_smtputf8("a@b", &["\u{e9}@d".into()], b"S: x\r\n\r\n"));
        assert!(needs_smtputf8("a@b", &[], b"Subject: \xc3\xa9\r\n\r\nx"));
    }
}
