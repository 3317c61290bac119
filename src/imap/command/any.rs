//! Commands valid in every state (RFC 3501 §6.1: CAPABILITY, NOOP, LOGOUT; ID, RFC 2971),
//! NAMESPACE (RFC 2342) and CHECK (RFC 3501 §6.4.1, which is a NOOP here).

use super::super::session::{Session, Step, cmd_ok};

impl Session {
    pub(crate) fn capability(&mut self, tag: &str, out: &mut Vec<u8>) {
        out.extend_from_slice(format!("* CAPABILITY {}\r\n", self.capabilities()).as_bytes());
        cmd_ok(out, tag, "CAPABILITY completed");
    }

    pub(crate) fn noop(&mut self, tag: &str, out: &mut Vec<u8>) {
        self.sync(out, true);
        cmd_ok(out, tag, "NOOP completed");
    }

    pub(crate) fn logout(&mut self, tag: &str, out: &mut Vec<u8>) -> Step {
        tracing::info!(peer = %self.peer, user = %self.state.user(), "imap logout");
        out.extend_from_slice(b"* BYE postern logging out\r\n");
        cmd_ok(out, tag, "LOGOUT completed");
        self.logged_out = true;
        Step::Close
    }

    pub(crate) fn id(&mut self, tag: &str, out: &mut Vec<u8>) {
        out.extend_from_slice(b"* ID (\"name\" \"postern\" \"vendor\" \"postern\")\r\n");
        cmd_ok(out, tag, "ID completed");
    }

    pub(crate) fn namespace(&mut self, tag: &str, out: &mut Vec<u8>) {
        out.extend_from_slice(b"* NAMESPACE ((\"\" \".\")) NIL NIL\r\n");
        cmd_ok(out, tag, "NAMESPACE completed");
    }

    pub(crate) fn check(&mut self, tag: &str, out: &mut Vec<u8>) {
        self.sync(out, true);
        cmd_ok(out, tag, "CHECK completed");
    }
}
