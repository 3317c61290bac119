//! STORE and UID STORE (RFC 3501 §6.4.6, RFC 9051 §6.4.6; UNCHANGEDSINCE and MODIFIED,
//! RFC 7162 §3.1.3).

use imap_codec::imap_types::command::StoreModifier;
use imap_codec::imap_types::flag::{Flag, StoreResponse, StoreType};
use imap_codec::imap_types::sequence::SequenceSet;

use super::super::flag_list::{flag_list, split_flags};
use super::super::seqset;
use super::super::session::{Session, cmd_bad, cmd_no, cmd_ok};
use crate::store::FlagOp;

/// How a STORE was asked for.
pub(crate) struct StoreArgs {
    kind: StoreType,
    response: StoreResponse,
    uid: bool,
    /// UNCHANGEDSINCE (RFC 7162 §3.1.3).
    unchanged: Option<u64>,
}

impl Session {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn store_cmd(
        &mut self,
        tag: &str,
        set: &SequenceSet,
        kind: StoreType,
        response: StoreResponse,
        fl: &[Flag<'_>],
        uid: bool,
        modifiers: &[StoreModifier],
        out: &mut Vec<u8>,
    ) {
        let unchanged = modifiers.first().map(|m| match m {
            StoreModifier::UnchangedSince(n) => *n,
        });
        if unchanged.is_some() {
            self.enable_condstore(out);
        }
        let st = StoreArgs {
            kind,
            response,
            uid,
            unchanged,
        };
        self.store(tag, set, st, fl, out)
    }

    pub(crate) fn store(
        &mut self,
        tag: &str,
        set: &SequenceSet,
        st: StoreArgs,
        fl: &[Flag<'_>],
        out: &mut Vec<u8>,
    ) {
        let StoreArgs {
            kind,
            response,
            uid,
            unchanged,
        } = st;
        let Some(targets) = self.state.selected().and_then(|s| s.view.resolve(set, uid)) else {
            return cmd_bad(out, tag, "invalid sequence set");
        };
        let condstore = self.modes.condstore;
        let user = self.state.user().to_string();
        let Some(sel) = self.state.selected_mut() else {
            return; // allowed() admits this only when selected
        };
        if sel.ro {
            return cmd_no(out, tag, "[READ-ONLY] mailbox is read-only");
        }
        let Some((sys, kws)) = split_flags(fl) else {
            return cmd_bad(out, tag, "invalid flag");
        };
        let op = match kind {
            StoreType::Add => FlagOp::Add,
            StoreType::Remove => FlagOp::Remove,
            StoreType::Replace => FlagOp::Replace,
        };
        let uids: Vec<u32> = targets.iter().map(|t| t.1).collect();
        match sel.mb.store(&uids, op, sys, &kws, unchanged) {
            Ok(stored) => {
                // $Junk / $NotJunk set: the user's junk filter learns.
                if op != FlagOp::Remove
                    && let Some(class) = crate::spam::events::class_of_keywords(&kws)
                {
                    let changed: Vec<u32> = uids
                        .iter()
                        .copied()
                        .filter(|u| stored.modified.binary_search(u).is_err())
                        .collect();
                    let paths = crate::spam::events::paths(&sel.mb, &changed);
                    let (store, cfg) = (&self.svc.store, &self.svc.config.spam);
                    crate::spam::events::learn_files(store, cfg, &user, class, &paths);
                }
                // Our own change is answered below, not echoed again by the next sync.
                // A conditional STORE answers even when .SILENT (RFC 7162 §3.1.3).
                let silent = matches!(response, StoreResponse::Silent) && unchanged.is_none();
                let mut modified = Vec::new();
                {
                    let kw_names = sel.announce_keywords(out);
                    let ix = sel.mb.lock();
                    if sel.view.modseq == stored.before {
                        sel.view.modseq = stored.after;
                    }
                    for (seq, u) in &targets {
                        if stored.modified.binary_search(u).is_ok() {
                            modified.push(if uid { *u } else { *seq });
                            continue;
                        }
                        if silent {
                            continue;
                        }
                        if let Some(m) = ix.find(*u) {
                            let recent = sel.view.recent.contains(u);
                            let f = flag_list(m.flags, &kw_names, recent);
                            let line = if condstore {
                                format!(
                                    "* {seq} FETCH (UID {u} FLAGS {f} MODSEQ ({}))\r\n",
                                    m.modseq
                                )
                            } else if uid {
                                format!("* {seq} FETCH (UID {u} FLAGS {f})\r\n")
                            } else {
                                format!("* {seq} FETCH (FLAGS {f})\r\n")
                            };
                            out.extend_from_slice(line.as_bytes());
                        }
                    }
                }
                self.sync(out, uid);
                if modified.is_empty() {
                    cmd_ok(out, tag, "STORE completed");
                } else {
                    let text = format!(
                        "[MODIFIED {}] conditional STORE failed",
                        seqset::render(&modified)
                    );
                    cmd_ok(out, tag, &text);
                }
            }
            Err(e) => cmd_no(out, tag, &format!("[LIMIT] {e}")),
        }
    }
}
