//! COMPRESS (RFC 4978 §3): after the tagged OK the listener deflates both directions
//! (`imap/compress.rs`). Valid once authenticated, like Dovecot; at most once per connection.

use super::super::session::{Session, Step, cmd_bad, cmd_no, cmd_ok};

impl Session {
    /// `alg` is the one argument; None when the command had not exactly one.
    pub(crate) fn compress(&mut self, tag: &str, alg: Option<&[u8]>, out: &mut Vec<u8>) -> Step {
        if let Err(why) = super::allowed(&self.state, "COMPRESS") {
            cmd_bad(out, tag, why);
            return Step::Continue;
        }
        match alg {
            Some(a) if a.eq_ignore_ascii_case(b"DEFLATE") => {}
            Some(_) => {
                cmd_no(out, tag, "[CANNOT] only DEFLATE is supported");
                return Step::Continue;
            }
            None => {
                cmd_bad(out, tag, "COMPRESS takes one algorithm name");
                return Step::Continue;
            }
        }
        if self.compressed {
            cmd_no(out, tag, "[COMPRESSIONACTIVE] DEFLATE is already active");
            return Step::Continue;
        }
        self.compressed = true;
        cmd_ok(out, tag, "DEFLATE active");
        Step::Compress
    }
}
