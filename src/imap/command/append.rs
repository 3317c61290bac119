//! APPEND (RFC 3501 §6.3.11, RFC 9051 §6.3.12; UIDPLUS APPENDUID RFC 4315, BINARY literal8
//! RFC 3516). The UTF8 (RFC 6855 §4) form is rewritten in `parse/` before decoding.

use std::time::SystemTime;

use imap_codec::imap_types::datetime::DateTime;
use imap_codec::imap_types::extensions::binary::LiteralOrLiteral8;
use imap_codec::imap_types::flag::Flag;
use imap_codec::imap_types::mailbox::Mailbox as WireMailbox;

use super::super::flag_list::split_flags;
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
        self.append(tag, m, fl, date, data, out);
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
