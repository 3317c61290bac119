//! CONDSTORE and QRESYNC (RFC 7162): enabling, the SELECT/EXAMINE parameters, FETCH
//! CHANGEDSINCE/VANISHED, the STORE UNCHANGEDSINCE answer and how updates are reported once
//! enabled. The store keeps durable per-message MODSEQs and remembers expunges
//! (`store/uidlist.rs`); every mailbox has them, so NOMODSEQ is never answered.

use imap_codec::imap_types::command::{FetchModifier, SelectParameter};
use imap_codec::imap_types::search::SearchKey;
use imap_codec::imap_types::sequence::SequenceSet;

use super::command::fetch::Item;
use super::flag_list::flag_list;
use super::seqset::{self, clipped as set_ranges, contains as in_set, gaps, ranges, render_ranges};
use super::session::Session;
use super::view::{Update, View};
use crate::store::Mailbox;
use crate::store::flags::Flags;

/// Connection state of the two extensions.
#[derive(Debug, Default, Clone, Copy)]
pub struct Modes {
    pub condstore: bool,
    pub qresync: bool,
}

impl Session {
    /// ENABLE one capability this module owns (RFC 5161); returns the name to list in
    /// `* ENABLED` when it was newly enabled. None: not ours, or already on.
    pub fn enable_ext(&mut self, name: &str, out: &mut Vec<u8>) -> Option<&'static str> {
        match name.to_ascii_uppercase().as_str() {
            "CONDSTORE" if !self.modes.condstore => {
                self.enable_condstore(out);
                Some("CONDSTORE")
            }
            // QRESYNC implies CONDSTORE (RFC 7162 §3.2.3).
            "QRESYNC" if !self.modes.qresync => {
                self.modes.qresync = true;
                self.enable_condstore(out);
                Some("QRESYNC")
            }
            _ => None,
        }
    }

    /// A CONDSTORE-enabling command was seen (RFC 7162 §3.1): from now on FETCH responses
    /// about flag changes carry MODSEQ; a selected mailbox's HIGHESTMODSEQ is told at once.
    pub fn enable_condstore(&mut self, out: &mut Vec<u8>) {
        if self.modes.condstore {
            return;
        }
        self.modes.condstore = true;
        if let Some(sel) = self.state.selected() {
            let m = sel.mb.lock().modseq;
            out.extend_from_slice(format!("* OK [HIGHESTMODSEQ {m}] modseqs on\r\n").as_bytes());
        }
    }

    /// Check SELECT/EXAMINE parameters before anything changes; Err is a BAD text.
    pub fn check_select_params(&mut self, params: &[SelectParameter]) -> Result<(), String> {
        for p in params {
            if let SelectParameter::QResync { .. } = p
                && !self.modes.qresync
            {
                // RFC 7162 §3.2.5: QRESYNC without ENABLE QRESYNC is a BAD.
                return Err("QRESYNC parameter without ENABLE QRESYNC".into());
            }
        }
        if params.len() > 1 {
            return Err("one SELECT parameter at most".into());
        }
        Ok(())
    }

    /// The CONDSTORE/QRESYNC part of a SELECT reply, after UIDNEXT: HIGHESTMODSEQ and, for
    /// a QRESYNC with a matching UIDVALIDITY, VANISHED (EARLIER) and the changed flags.
    pub fn select_ext(
        &mut self,
        mb: &Mailbox,
        view: &View,
        params: &[SelectParameter],
        out: &mut Vec<u8>,
    ) {
        if !params.is_empty() {
            self.modes.condstore = true;
        }
        if !self.modes.condstore {
            return;
        }
        let ix = mb.lock();
        out.extend_from_slice(format!("* OK [HIGHESTMODSEQ {}] highest\r\n", ix.modseq).as_bytes());
        let Some(SelectParameter::QResync {
            uid_validity,
            mod_sequence_value,
            known_uids,
            seq_match_data,
        }) = params.first()
        else {
            return;
        };
        // A different UIDVALIDITY: the client's cache is worthless; a normal SELECT
        // (RFC 7162 §3.2.5).
        if uid_validity.get() != ix.uidvalidity.max(1) {
            return;
        }
        let since = mod_sequence_value.get();
        let top = ix.uidnext.saturating_sub(1);
        let known = |u: u32| known_uids.as_ref().is_none_or(|k| in_set(k, u, top));
        let vanished: Vec<(u32, u32)> = match ix.expunged.since(since) {
            Some(uids) => ranges(uids.into_iter().filter(|u| known(*u))),
            None => {
                // Forgotten: every UID of the client's range that is not here now
                // (RFC 7162 §3.2.5.2), less those the sequence match data proves present.
                let floor = seq_match_data
                    .as_ref()
                    .map_or(0, |(seqs, uids)| matched_uid(seqs, uids, view));
                let present: Vec<u32> = ix.msgs.iter().map(|m| m.uid).collect();
                let span = match known_uids {
                    Some(k) => set_ranges(k, top),
                    None => vec![(1, top)],
                };
                let mut out = Vec::new();
                for (lo, hi) in span {
                    let lo = lo.max(floor + 1);
                    if lo <= hi {
                        out.extend(gaps(lo, hi, &present));
                    }
                }
                out
            }
        };
        if !vanished.is_empty() {
            out.extend_from_slice(b"* VANISHED (EARLIER) ");
            out.extend_from_slice(render_ranges(&vanished).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        let kws = ix.keywords.clone();
        for (i, uid) in view.uids.iter().enumerate() {
            if let Some(m) = ix.find(*uid)
                && m.modseq > since
                && known(*uid)
            {
                let recent = view.recent.contains(uid);
                out.extend_from_slice(
                    fetch_line(i as u32 + 1, *uid, m.flags, &kws, recent, Some(m.modseq))
                        .as_bytes(),
                );
            }
        }
    }

    /// FETCH modifiers and MODSEQ (RFC 7162 §3.1.4, §3.2.6): narrows `targets` to messages
    /// changed since CHANGEDSINCE, adds the MODSEQ item, and sends VANISHED (EARLIER) for
    /// `UID FETCH ... (CHANGEDSINCE n VANISHED)`. Err is a BAD text.
    pub fn fetch_ext(
        &mut self,
        set: &SequenceSet,
        uid: bool,
        modifiers: &[FetchModifier],
        targets: &mut Vec<(u32, u32)>,
        items: &mut Vec<Item>,
        out: &mut Vec<u8>,
    ) -> Result<(), String> {
        let mut changed_since = None;
        let mut vanished = false;
        for m in modifiers {
            match m {
                FetchModifier::ChangedSince(n) => changed_since = Some(n.get()),
                FetchModifier::Vanished => vanished = true,
            }
        }
        if vanished && !uid {
            return Err("VANISHED is for UID FETCH only".into());
        }
        if vanished && !self.modes.qresync {
            return Err("VANISHED needs ENABLE QRESYNC".into());
        }
        if vanished && changed_since.is_none() {
            return Err("VANISHED needs CHANGEDSINCE".into());
        }
        let wants_modseq = items.iter().any(|i| matches!(i, Item::ModSeq));
        if changed_since.is_none() && !wants_modseq {
            return Ok(());
        }
        self.enable_condstore(out);
        if !wants_modseq {
            items.push(Item::ModSeq);
        }
        let Some(since) = changed_since else {
            return Ok(());
        };
        let Some(sel) = self.state.selected() else {
            return Ok(()); // FETCH runs only when selected
        };
        let ix = sel.mb.lock();
        if vanished {
            let top = ix.uidnext.saturating_sub(1);
            let v: Vec<(u32, u32)> = match ix.expunged.since(since) {
                Some(uids) => ranges(uids.into_iter().filter(|u| in_set(set, *u, top))),
                None => {
                    let present: Vec<u32> = ix.msgs.iter().map(|m| m.uid).collect();
                    set_ranges(set, top)
                        .into_iter()
                        .flat_map(|(lo, hi)| gaps(lo, hi, &present))
                        .collect()
                }
            };
            if !v.is_empty() {
                out.extend_from_slice(b"* VANISHED (EARLIER) ");
                out.extend_from_slice(render_ranges(&v).as_bytes());
                out.extend_from_slice(b"\r\n");
            }
        }
        targets.retain(|(_, u)| ix.find(*u).is_some_and(|m| m.modseq > since));
        Ok(())
    }

    /// Render view updates: EXPUNGE, or VANISHED once QRESYNC is on (RFC 7162 §3.2.10);
    /// flag changes with MODSEQ once CONDSTORE is on (§3.1.4).
    pub fn render_updates(&self, updates: Vec<Update>, view: &View, kws: &[String]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut gone: Vec<u32> = Vec::new();
        for u in updates {
            match u {
                Update::Expunge(s, uid) => {
                    if self.modes.qresync {
                        gone.push(uid);
                    } else {
                        out.extend_from_slice(format!("* {s} EXPUNGE\r\n").as_bytes());
                    }
                    continue;
                }
                _ if !gone.is_empty() => {
                    gone.sort_unstable();
                    out.extend_from_slice(
                        format!("* VANISHED {}\r\n", seqset::render(&gone)).as_bytes(),
                    );
                    gone.clear();
                }
                _ => {}
            }
            match u {
                Update::Expunge(..) => {}
                Update::Exists(n) => out.extend_from_slice(format!("* {n} EXISTS\r\n").as_bytes()),
                Update::Recent(n) => out.extend_from_slice(format!("* {n} RECENT\r\n").as_bytes()),
                Update::Flags(seq, uid, f, m) => {
                    let recent = view.recent.contains(&uid);
                    let m = self.modes.condstore.then_some(m);
                    out.extend_from_slice(fetch_line(seq, uid, f, kws, recent, m).as_bytes());
                }
            }
        }
        if !gone.is_empty() {
            gone.sort_unstable();
            out.extend_from_slice(format!("* VANISHED {}\r\n", seqset::render(&gone)).as_bytes());
        }
        out
    }
}

/// `* n FETCH (UID u FLAGS (..) [MODSEQ (m)])`.
pub fn fetch_line(
    seq: u32,
    uid: u32,
    f: Flags,
    kws: &[String],
    recent: bool,
    modseq: Option<u64>,
) -> String {
    let fl = flag_list(f, kws, recent);
    match modseq {
        Some(m) => format!("* {seq} FETCH (UID {uid} FLAGS {fl} MODSEQ ({m}))\r\n"),
        None => format!("* {seq} FETCH (UID {uid} FLAGS {fl})\r\n"),
    }
}

/// Does a SEARCH key use MODSEQ (so the result ends with `(MODSEQ n)`, RFC 7162 §3.1.5)?
pub fn search_uses_modseq(key: &SearchKey<'_>) -> bool {
    use SearchKey as K;
    match key {
        K::ModSequence { .. } => true,
        K::And(k) => k.as_ref().iter().any(search_uses_modseq),
        K::Not(k) => search_uses_modseq(k),
        K::Or(a, b) => search_uses_modseq(a) || search_uses_modseq(b),
        _ => false,
    }
}

/// The highest UID of the client's (sequence, UID) pairs that our view maps the same way:
/// no message below it can have been expunged since (RFC 7162 §3.2.5.2).
fn matched_uid(seqs: &SequenceSet, uids: &SequenceSet, view: &View) -> u32 {
    let expand = |s: &SequenceSet| -> Vec<u32> {
        let mut v = Vec::new();
        for (lo, hi) in set_ranges(s, u32::MAX) {
            if v.len() as u64 + (hi - lo) as u64 > 100_000 {
                break;
            }
            v.extend(lo..=hi);
        }
        v
    };
    let (seqs, uids) = (expand(seqs), expand(uids));
    let mut best = 0;
    for (s, u) in seqs.iter().zip(&uids) {
        // Pairs must match from the start; the first mismatch ends the proof.
        if view.uids.get(*s as usize - 1) == Some(u) {
            best = *u;
        } else {
            break;
        }
    }
    best
}

#[cfg(test)]
mod tests;
