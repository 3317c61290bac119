//! QUOTA (RFC 9208): GETQUOTAROOT, GETQUOTA, SETQUOTA. One quota root per account, named ""
//! (§3.2 lets the server choose), holding every folder, with the one resource STORAGE
//! (§5.1, in units of 1024 octets).
//!
//! With no `[limits] mailbox_quota` (0) there is no limit to report: QUOTA is still
//! advertised, GETQUOTAROOT answers `* QUOTAROOT <mailbox>` with no root (§4.3 allows a
//! mailbox without quota root) and GETQUOTA "" is NO [NONEXISTENT]. The `* QUOTA "" ()` form
//! is not grammatical (§9: quota-list holds at least one resource). Enforcement
//! (`NO [OVERQUOTA]`, §4.2) is in APPEND and COPY, through `Store::check_quota`.

use imap_codec::imap_types::core::AString;
use imap_codec::imap_types::mailbox::Mailbox as WireMailbox;

use super::super::session::{Session, cmd_no, cmd_ok};
use super::super::wire;

/// The one quota root's name.
const ROOT: &str = "";

/// `* QUOTA "" (STORAGE used limit)` with the figures in KiB: usage rounded up (a mailbox at
/// its limit shows full), the limit rounded down (RFC 9208 §5.1).
pub(crate) fn quota_line(used: u64, limit: u64) -> String {
    format!(
        "* QUOTA \"\" (STORAGE {} {})\r\n",
        used.div_ceil(1024),
        limit / 1024
    )
}

impl Session {
    fn quota_limit(&self) -> u64 {
        self.svc.config.limits.mailbox_quota
    }

    /// The QUOTA response for the root, or the NO text.
    fn quota_response(&self) -> Result<String, String> {
        let used = self
            .svc
            .store
            .usage(self.state.user())
            .map_err(|e| format!("[SERVERBUG] {e}"))?;
        Ok(quota_line(used, self.quota_limit()))
    }

    pub(crate) fn getquotaroot(&mut self, tag: &str, m: &WireMailbox<'_>, out: &mut Vec<u8>) {
        let name = match self.name_of(m) {
            Ok(n) => n,
            Err(e) => return cmd_no(out, tag, &e),
        };
        if !self.svc.store.mailbox_exists(self.state.user(), &name) {
            return cmd_no(out, tag, "[NONEXISTENT] no such mailbox");
        }
        let utf8 = self.utf8_names();
        let mut line = b"* QUOTAROOT ".to_vec();
        wire::mailbox(&mut line, &name.shown(utf8), utf8);
        if self.quota_limit() == 0 {
            line.extend_from_slice(b"\r\n");
            out.extend_from_slice(&line);
            return cmd_ok(out, tag, "GETQUOTAROOT completed (no quota)");
        }
        let quota = match self.quota_response() {
            Ok(q) => q,
            Err(e) => return cmd_no(out, tag, &e),
        };
        line.extend_from_slice(b" \"\"\r\n");
        out.extend_from_slice(&line);
        out.extend_from_slice(quota.as_bytes());
        cmd_ok(out, tag, "GETQUOTAROOT completed");
    }

    pub(crate) fn getquota(&mut self, tag: &str, root: &AString<'_>, out: &mut Vec<u8>) {
        if root.as_ref() != ROOT.as_bytes() || self.quota_limit() == 0 {
            return cmd_no(out, tag, "[NONEXISTENT] no such quota root");
        }
        match self.quota_response() {
            Ok(q) => {
                out.extend_from_slice(q.as_bytes());
                cmd_ok(out, tag, "GETQUOTA completed");
            }
            Err(e) => cmd_no(out, tag, &e),
        }
    }

    /// RFC 9208 §4.1.3: limits are the administrator's (`[limits] mailbox_quota`).
    pub(crate) fn setquota(&mut self, tag: &str, out: &mut Vec<u8>) {
        cmd_no(
            out,
            tag,
            "[NOPERM] quota limits are set by the administrator",
        );
    }

    /// APPEND/COPY: may `adding` more octets be stored? Err is the NO text.
    pub(crate) fn quota_allows(&self, adding: u64) -> Result<(), String> {
        self.svc
            .store
            .check_quota(self.state.user(), self.quota_limit(), adding)
            .map_err(|e| super::write_failed(&e))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn storage_figures_are_kib_usage_up_limit_down() {
        assert_eq!(
            super::quota_line(0, 10 * 1024),
            "* QUOTA \"\" (STORAGE 0 10)\r\n"
        );
        assert_eq!(
            super::quota_line(1, 10 * 1024 + 1023),
            "* QUOTA \"\" (STORAGE 1 10)\r\n"
        );
        assert_eq!(
            super::quota_line(2048, 4096),
            "* QUOTA \"\" (STORAGE 2 4)\r\n"
        );
    }
}
