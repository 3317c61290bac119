//! STATUS (RFC 3501 §6.3.10, RFC 9051 §6.3.11; SIZE RFC 8438, HIGHESTMODSEQ RFC 7162
//! §3.1.6). `status_line` also serves LIST-STATUS (RFC 5819).

use imap_codec::imap_types::mailbox::Mailbox as WireMailbox;
use imap_codec::imap_types::status::StatusDataItemName;

use super::super::session::{Session, cmd_no, cmd_ok};
use super::super::wire;
use crate::store::MailboxName;
use crate::store::flags;

impl Session {
    pub fn status_line(
        &self,
        name: &MailboxName,
        items: &[StatusDataItemName],
    ) -> Result<String, String> {
        let mb = self.open(name)?;
        mb.refresh().map_err(|e| format!("[SERVERBUG] {e}"))?;
        let ix = mb.lock();
        let mut parts = Vec::new();
        for it in items {
            let s = match it {
                StatusDataItemName::Messages => format!("MESSAGES {}", ix.msgs.len()),
                StatusDataItemName::Recent => format!(
                    "RECENT {}",
                    self.state
                        .selected()
                        .filter(|s| s.name == *name)
                        .map_or_else(|| ix.unclaimed_recent(), |s| s.view.recent.len())
                ),
                StatusDataItemName::UidNext => format!("UIDNEXT {}", ix.uidnext),
                StatusDataItemName::UidValidity => format!("UIDVALIDITY {}", ix.uidvalidity.max(1)),
                StatusDataItemName::Unseen => format!(
                    "UNSEEN {}",
                    ix.msgs.iter().filter(|m| !m.flags.has(flags::SEEN)).count()
                ),
                StatusDataItemName::Deleted => format!(
                    "DELETED {}",
                    ix.msgs
                        .iter()
                        .filter(|m| m.flags.has(flags::DELETED))
                        .count()
                ),
                StatusDataItemName::HighestModSeq => format!("HIGHESTMODSEQ {}", ix.modseq),
                StatusDataItemName::Size => {
                    // The `S=` of each file name when present: no stat per message.
                    let total: u64 = ix.msgs.iter().map(|m| mb.msg_size(m)).sum();
                    format!("SIZE {total}")
                }
                _ => continue,
            };
            parts.push(s);
        }
        let mut line = b"* STATUS ".to_vec();
        let utf8 = self.utf8_names();
        wire::mailbox(&mut line, &name.shown(utf8), utf8);
        line.extend_from_slice(format!(" ({})\r\n", parts.join(" ")).as_bytes());
        Ok(String::from_utf8_lossy(&line).into_owned())
    }

    pub(crate) fn status(
        &mut self,
        tag: &str,
        m: &WireMailbox<'_>,
        items: &[StatusDataItemName],
        out: &mut Vec<u8>,
    ) {
        let name = match self.name_of(m) {
            Ok(n) => n,
            Err(e) => return cmd_no(out, tag, &e),
        };
        if items.contains(&StatusDataItemName::HighestModSeq) {
            self.enable_condstore(out);
        }
        match self.status_line(&name, items) {
            Ok(l) => {
                out.extend_from_slice(l.as_bytes());
                cmd_ok(out, tag, "STATUS completed");
            }
            Err(e) => cmd_no(out, tag, &e),
        }
    }
}
