//! ENABLE (RFC 5161, RFC 9051 §6.3.1): IMAP4rev2, UTF8=ACCEPT (RFC 6855) here, CONDSTORE
//! and QRESYNC in `condstore.rs`.

use super::super::session::{Session, cmd_ok};

impl Session {
    pub(crate) fn enable_cmd(&mut self, tag: &str, caps: &[String], out: &mut Vec<u8>) {
        // CONDSTORE may announce HIGHESTMODSEQ; that goes after the ENABLED line.
        let mut after = Vec::new();
        let on = self.enable(caps, &mut after);
        let mut line = String::from("* ENABLED");
        for c in on {
            line.push(' ');
            line.push_str(c);
        }
        out.extend_from_slice(format!("{line}\r\n").as_bytes());
        out.extend_from_slice(&after);
        cmd_ok(out, tag, "ENABLE completed");
    }

    /// Turn on what we know; the ENABLED response lists only what this command turned on.
    pub(crate) fn enable(&mut self, caps: &[String], after: &mut Vec<u8>) -> Vec<&'static str> {
        let mut on = Vec::new();
        for c in caps {
            if c.eq_ignore_ascii_case("IMAP4rev2") && !self.rev2 {
                self.rev2 = true;
                if let Some(sel) = self.state.selected_mut() {
                    sel.view.recent.clear();
                }
                on.push("IMAP4rev2");
            } else if c.eq_ignore_ascii_case("UTF8=ACCEPT") && !self.utf8 {
                self.utf8 = true;
                on.push("UTF8=ACCEPT");
            } else if let Some(n) = self.enable_ext(c, after) {
                on.push(n);
            }
        }
        on
    }
}
