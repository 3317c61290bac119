//! IDLE (RFC 2177; RFC 9051 §6.3.13, valid in the authenticated state too). The driver in
//! `imap/mod.rs` waits for input or mailbox changes while `Pending::Idle` is set.

use super::super::session::{Pending, Session, cmd_bad, cmd_ok};

impl Session {
    pub(crate) fn idle(&mut self, tag: String, out: &mut Vec<u8>) {
        // Continuation first, then what is pending (RFC 2177 §3 example): clients such as
        // async-imap (Delta Chat) set untagged data received before the "+" aside and would
        // sit in IDLE without fetching mail that arrived earlier.
        out.extend_from_slice(b"+ idling\r\n");
        self.sync(out, true);
        self.pending = Pending::Idle(tag);
        // The step continues rather than idles: a pipelined DONE may already be buffered.
    }

    /// The line after IDLE: DONE ends it.
    pub(crate) fn idle_done(&mut self, tag: &str, line: &[u8], out: &mut Vec<u8>) {
        if line.trim_ascii().eq_ignore_ascii_case(b"DONE") {
            self.sync(out, true);
            cmd_ok(out, tag, "IDLE terminated");
        } else {
            cmd_bad(out, tag, "expected DONE");
        }
    }
}
