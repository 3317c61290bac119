//! EXPUNGE (RFC 3501 §6.4.3, RFC 9051 §6.4.3) and UID EXPUNGE (RFC 4315 §2.1).

use imap_codec::imap_types::sequence::SequenceSet;

use super::super::session::{Session, cmd_no, cmd_ok};

impl Session {
    pub(crate) fn uid_expunge(&mut self, tag: &str, set: &SequenceSet, out: &mut Vec<u8>) {
        let uids: Vec<u32> = self
            .state
            .selected()
            .and_then(|s| s.view.resolve(set, true))
            .unwrap_or_default()
            .into_iter()
            .map(|x| x.1)
            .collect();
        self.expunge(tag, Some(uids), out);
    }

    pub(crate) fn expunge(&mut self, tag: &str, only: Option<Vec<u32>>, out: &mut Vec<u8>) {
        let Some(sel) = self.state.selected() else {
            return; // allowed() admits this only when selected
        };
        if sel.ro {
            return cmd_no(out, tag, "[READ-ONLY] mailbox is read-only");
        }
        match sel.mb.expunge(only.as_deref()) {
            Ok(_) => {
                self.sync(out, true);
                cmd_ok(out, tag, "EXPUNGE completed");
            }
            Err(e) => cmd_no(out, tag, &format!("[SERVERBUG] {e}")),
        }
    }
}
