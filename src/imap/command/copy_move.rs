//! COPY (RFC 3501 §6.4.7, RFC 9051 §6.4.7; COPYUID RFC 4315 §3) and MOVE (RFC 6851), with
//! their UID forms.

use imap_codec::imap_types::mailbox::Mailbox as WireMailbox;
use imap_codec::imap_types::sequence::SequenceSet;

use super::super::seqset;
use super::super::session::{Session, cmd_bad, cmd_no, cmd_ok};

impl Session {
    pub(crate) fn copy(
        &mut self,
        tag: &str,
        set: &SequenceSet,
        m: &WireMailbox<'_>,
        uid: bool,
        mv: bool,
        out: &mut Vec<u8>,
    ) {
        let Some(targets) = self.state.selected().and_then(|s| s.view.resolve(set, uid)) else {
            return cmd_bad(out, tag, "invalid sequence set");
        };
        let name = match self.name_of(m) {
            Ok(n) => n,
            Err(e) => return cmd_no(out, tag, &e),
        };
        if !self.svc.store.mailbox_exists(self.state.user(), &name) {
            return cmd_no(out, tag, "[TRYCREATE] no such mailbox");
        }
        let dest = match self.open(&name) {
            Ok(d) => d,
            Err(e) => return cmd_no(out, tag, &e),
        };
        let Some(sel) = self.state.selected() else {
            return; // allowed() admits this only when selected
        };
        if mv && sel.ro {
            return cmd_no(out, tag, "[READ-ONLY] mailbox is read-only");
        }
        let uids: Vec<u32> = targets.iter().map(|t| t.1).collect();
        let (v, pairs) = match sel.mb.copy_to(&uids, &dest) {
            Ok(r) => r,
            Err(e) => return cmd_no(out, tag, &super::write_failed(&e)),
        };
        // Into or out of \Junk: the user's junk filter learns (before a MOVE removes them).
        if let Some(class) = crate::spam::events::class_of_copy(&sel.name, &name) {
            let paths = crate::spam::events::paths(&sel.mb, &uids);
            let (store, cfg) = (&self.svc.store, &self.svc.config.spam);
            crate::spam::events::learn_files(store, cfg, self.state.user(), class, &paths);
        }
        let src: Vec<u32> = pairs.iter().map(|p| p.0).collect();
        let dst: Vec<u32> = pairs.iter().map(|p| p.1).collect();
        let code = if pairs.is_empty() {
            String::new()
        } else {
            format!(
                "[COPYUID {v} {} {}] ",
                seqset::render(&src),
                seqset::render(&dst)
            )
        };
        if mv {
            // RFC 6851 §4.3: COPYUID in an untagged OK before the EXPUNGEs.
            if !code.is_empty() {
                out.extend_from_slice(format!("* OK {code}moved\r\n").as_bytes());
            }
            if let Err(e) = sel.mb.remove_uids(&src) {
                return cmd_no(out, tag, &super::write_failed(&e));
            }
            self.sync(out, true);
            cmd_ok(out, tag, "MOVE completed");
        } else {
            self.sync(out, uid);
            cmd_ok(out, tag, &format!("{code}COPY completed"));
        }
    }
}
