//! SELECT and EXAMINE (RFC 3501 §6.3.1–§6.3.2, RFC 9051 §6.3.2–§6.3.3; CONDSTORE/QRESYNC
//! parameters in `condstore.rs`), CLOSE (§6.4.2) and UNSELECT (RFC 3691).

use imap_codec::imap_types::command::SelectParameter;
use imap_codec::imap_types::mailbox::Mailbox as WireMailbox;

use super::super::session::{Selected, Session, cmd_bad, cmd_no, cmd_ok, flags_lines};
use crate::imap::view::View;
use crate::logsafe::Untrusted;
use crate::store::flags;

impl Session {
    pub(crate) fn select(
        &mut self,
        tag: &str,
        m: &WireMailbox<'_>,
        ro: bool,
        params: &[SelectParameter],
        out: &mut Vec<u8>,
    ) {
        if let Err(e) = self.check_select_params(params) {
            return cmd_bad(out, tag, &e);
        }
        self.saved.clear();
        // RFC 9051 §7.1 and RFC 7162 §3.2.11: CLOSED separates the old mailbox's responses
        // from the new one's.
        if self.state.deselect().is_some() && (self.rev2 || self.modes.qresync) {
            out.extend_from_slice(b"* OK [CLOSED] previous mailbox closed\r\n");
        }
        let name = match self.name_of(m) {
            Ok(n) => n,
            Err(e) => return cmd_no(out, tag, &e),
        };
        let mb = match self.open(&name) {
            Ok(mb) => mb,
            Err(e) => return cmd_no(out, tag, &e),
        };
        let mut view = View::default();
        if let Err(e) = view.sync(&mb, true, !ro) {
            return cmd_no(out, tag, &format!("[SERVERBUG] {e}"));
        }
        if self.rev2 {
            view.recent.clear();
        }
        let (uidvalidity, uidnext, unseen, kws) = {
            let ix = mb.lock();
            let unseen = ix
                .msgs
                .iter()
                .position(|m| !m.flags.has(flags::SEEN))
                .map(|p| p + 1);
            (
                ix.uidvalidity.max(1),
                ix.uidnext,
                unseen,
                ix.keywords.clone(),
            )
        };
        let (flags_line, perm_line) = flags_lines(&kws, ro);
        out.extend_from_slice(flags_line.as_bytes());
        out.extend_from_slice(format!("* {} EXISTS\r\n", view.uids.len()).as_bytes());
        if self.rev2 {
            // RFC 9051 §6.3.2: a LIST response instead of RECENT and UNSEEN.
            out.extend_from_slice(&self.list_line(&name, None));
        } else {
            out.extend_from_slice(format!("* {} RECENT\r\n", view.recent.len()).as_bytes());
            if let Some(u) = unseen {
                out.extend_from_slice(format!("* OK [UNSEEN {u}] first unseen\r\n").as_bytes());
            }
        }
        out.extend_from_slice(perm_line.as_bytes());
        out.extend_from_slice(
            format!("* OK [UIDVALIDITY {uidvalidity}] UIDs valid\r\n").as_bytes(),
        );
        out.extend_from_slice(
            format!("* OK [UIDNEXT {uidnext}] predicted next UID\r\n").as_bytes(),
        );
        self.select_ext(&mb, &view, params, out);
        tracing::info!(peer = %self.peer, user = %self.state.user(), mailbox = %Untrusted(&name.utf8()), messages = view.uids.len(), "imap select");
        let keywords_shown = kws.len();
        self.state.select(Selected {
            mb,
            name,
            view,
            ro,
            keywords_shown,
        });
        cmd_ok(
            out,
            tag,
            if ro {
                "[READ-ONLY] EXAMINE completed"
            } else {
                "[READ-WRITE] SELECT completed"
            },
        );
    }

    pub(crate) fn close(&mut self, tag: &str, out: &mut Vec<u8>) {
        self.saved.clear();
        // CLOSE expunges silently (RFC 3501 §6.4.2), not after EXAMINE.
        if let Some(sel) = self.state.deselect()
            && !sel.ro
        {
            let _ = sel.mb.expunge(None);
        }
        cmd_ok(out, tag, "CLOSE completed");
    }

    pub(crate) fn unselect(&mut self, tag: &str, out: &mut Vec<u8>) {
        self.saved.clear();
        self.state.deselect();
        cmd_ok(out, tag, "UNSELECT completed");
    }
}
