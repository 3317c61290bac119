//! APPEND (RFC 3501 §6.3.11, RFC 9051 §6.3.12; UIDPLUS APPENDUID RFC 4315, BINARY literal8
//! RFC 3516). The UTF8 (RFC 6855 §4) form is rewritten in `parse/` before decoding.

use std::time::SystemTime;

use imap_codec::imap_types::datetime::DateTime;
use imap_codec::imap_types::extensions::binary::LiteralOrLiteral8;
use imap_codec::imap_types::flag::Flag;
use imap_codec::imap_types::mailbox::Mailbox as WireMailbox;

use base64::Engine;

use super::super::flag_list::split_flags;
use super::super::mime::{self, Part};
use super::super::session::{Session, cmd_bad, cmd_no, cmd_ok};

impl Session {
    pub(crate) fn append_cmd(
        &mut self,
        tag: &str,
        m: &WireMailbox<'_>,
        fl: &[Flag<'_>],
        date: Option<&DateTime>,
        message: &LiteralOrLiteral8<'_>,
        out: &mut Vec<u8>,
    ) {
        let data: &[u8] = match message {
            LiteralOrLiteral8::Literal(l) => l.data(),
            LiteralOrLiteral8::Literal8(l) => &l.data,
        };
        let date = date.map(|d| SystemTime::from(*d.as_ref()));
        match encode_nul_parts(data) {
            Some(converted) => self.append(tag, m, fl, date, &converted, out),
            None => self.append(tag, m, fl, date, data, out),
        }
    }

    pub(crate) fn append(
        &mut self,
        tag: &str,
        m: &WireMailbox<'_>,
        fl: &[Flag<'_>],
        date: Option<SystemTime>,
        data: &[u8],
        out: &mut Vec<u8>,
    ) {
        let name = match self.name_of(m) {
            Ok(n) => n,
            Err(e) => return cmd_no(out, tag, &e),
        };
        // A large literal was streamed to the spool (`framer.rs`); the decoded one is empty.
        let spooled = match self.append_body.take() {
            None => None,
            Some(Ok(body)) => Some(body),
            Some(Err(e)) => {
                tracing::warn!("imap APPEND: cannot spool the message: {e}");
                return cmd_no(out, tag, &super::write_failed(&e));
            }
        };
        let data = spooled.as_ref().map_or(data, |b| b.as_bytes());
        if data.len() as u64 > self.svc.config.limits.max_message_size {
            return cmd_no(out, tag, "[TOOBIG] message too large");
        }
        if !self.svc.store.mailbox_exists(self.state.user(), &name) {
            return cmd_no(out, tag, "[TRYCREATE] no such mailbox");
        }
        let Some((sys, kws)) = split_flags(fl) else {
            return cmd_bad(out, tag, "invalid flag");
        };
        // RFC 9208 §4.2: nothing is stored when the quota would be exceeded.
        if let Err(e) = self.quota_allows(data.len() as u64) {
            return cmd_no(out, tag, &e);
        }
        let mb = match self.open(&name) {
            Ok(mb) => mb,
            Err(e) => return cmd_no(out, tag, &e),
        };
        let stored = match &spooled {
            // Streamed from the spool file into the Maildir, never read into memory.
            Some(body) => mb.append_with(
                body.len(),
                |f| body.copy_range_to(0..body.len(), f),
                sys,
                &kws,
                date,
            ),
            None => mb.append(data, sys, &kws, date),
        };
        match stored {
            Ok((v, uid)) => {
                self.sync(out, true);
                cmd_ok(out, tag, &format!("[APPENDUID {v} {uid}] APPEND completed"));
            }
            Err(e) => cmd_no(out, tag, &super::write_failed(&e)),
        }
    }
}

/// Binary content APPENDed in a literal8 (RFC 3516 §4.4): a part whose body holds NUL octets
/// cannot be sent back in BODY[] (RFC 3501 §4.3: a literal's CHAR8 excludes NUL, and only
/// BINARY[] may use literal8), so such parts are stored base64-encoded with their
/// Content-Transfer-Encoding changed to match; BINARY[] still returns the original octets.
/// None when nothing needs converting (the common case: no NUL anywhere).
pub(crate) fn encode_nul_parts(data: &[u8]) -> Option<Vec<u8>> {
    if !data.contains(&0) {
        return None;
    }
    let raw = data;
    let data = mime::to_crlf(data.to_vec());
    let root = mime::parse(&data);
    let mut leaves = Vec::new();
    nul_leaves(&root, &data, &mut leaves);
    if leaves.is_empty() {
        return None;
    }
    leaves.sort_by_key(|p| p.header.0);
    let mut out = Vec::with_capacity(data.len() * 4 / 3 + 256);
    let mut at = 0;
    for p in leaves {
        if p.header.0 < at {
            continue; // nested in a part already rewritten (cannot happen for leaves)
        }
        out.extend_from_slice(&data[at..p.header.0]);
        let block = &data[p.header.0..p.header.1];
        let mut kept = 0;
        for (name, _, (s, e)) in mime::fields(block) {
            if name.eq_ignore_ascii_case(b"Content-Transfer-Encoding") {
                out.extend_from_slice(&block[kept..s]);
                kept = e;
            }
        }
        // The header block ends with its empty line (or is empty for a part without one).
        let end = if block.ends_with(b"\r\n\r\n") {
            block.len() - 2
        } else {
            block.len()
        };
        out.extend_from_slice(&block[kept.min(end)..end]);
        out.extend_from_slice(b"Content-Transfer-Encoding: base64\r\n\r\n");
        // The octets as the client sent them: binary content keeps its bare CRs and LFs
        // (RFC 3516 §4.4), only the rest of the message gets CRLF line ends.
        let body = &raw[raw_offset(raw, p.body.0)..raw_offset(raw, p.body.1)];
        let encoded = base64::engine::general_purpose::STANDARD.encode(body);
        // RFC 2045 §6.8: lines of at most 76 characters.
        for (i, line) in encoded.as_bytes().chunks(76).enumerate() {
            if i > 0 {
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(line);
        }
        at = p.body.1;
    }
    out.extend_from_slice(&data[at..]);
    Some(out)
}

/// Where offset `norm` of `to_crlf(raw)` lies in `raw`.
fn raw_offset(raw: &[u8], norm: usize) -> usize {
    let mut n = 0;
    for (i, &b) in raw.iter().enumerate() {
        if n >= norm {
            return i;
        }
        n += if b == b'\n' && (i == 0 || raw[i - 1] != b'\r') {
            2
        } else {
            1
        };
    }
    raw.len()
}

fn nul_leaves<'a>(p: &'a Part, data: &[u8], out: &mut Vec<&'a Part>) {
    if let Some(m) = &p.message {
        nul_leaves(m, data, out);
    } else if !p.children.is_empty() {
        for c in &p.children {
            nul_leaves(c, data, out);
        }
    } else if data.get(p.body.0..p.body.1).is_some_and(|b| b.contains(&0)) {
        out.push(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_parts_become_base64() {
        let plain = b"Subject: x\r\n\r\nno nul here\r\n";
        assert!(encode_nul_parts(plain).is_none());
        let single = b"Content-Type: application/octet-stream\r\n\
            Content-Transfer-Encoding: binary\r\n\r\n\x00-\xe4\r\n";
        let got = encode_nul_parts(single).unwrap();
        assert_eq!(
            got,
            b"Content-Type: application/octet-stream\r\n\
              Content-Transfer-Encoding: base64\r\n\r\nAC3kDQo="
        );
        let multi = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
            Content-Type: text/plain\r\n\r\nhello\r\n--b\r\n\
            Content-Type: application/x\r\nContent-Transfer-Encoding:\r\n binary\r\n\r\n\
            a\x00b\r\n--b--\r\n";
        let got = encode_nul_parts(multi).unwrap();
        let text = String::from_utf8(got.clone()).unwrap();
        assert!(text.contains("\r\n\r\nhello\r\n--b\r\n"), "{text}");
        assert!(
            text.contains("Content-Type: application/x\r\nContent-Transfer-Encoding: base64\r\n\r\nYQBi\r\n--b--"),
            "{text}"
        );
        assert!(!got.contains(&0));
        // Bare LFs of the binary body are kept as sent; the header gets CRLF.
        let bare = b"Content-Transfer-Encoding: binary\n\n\x00-\xe4\n\r\n\n";
        let got = encode_nul_parts(bare).unwrap();
        assert_eq!(
            got,
            b"Content-Transfer-Encoding: base64\r\n\r\nAC3kCg0KCg=="
        );
    }
}
