//! SEARCH and UID SEARCH (RFC 3501 §6.4.4, RFC 9051 §6.4.4): runs the criteria over the view
//! (`imap/search.rs` evaluates one message) and answers SEARCH, or ESEARCH with the RETURN
//! options of RFC 4731 and SAVE of RFC 5182; MODSEQ per RFC 7162 §3.1.5.

use imap_codec::imap_types::core::Charset;
use imap_codec::imap_types::search::SearchKey;

use super::super::seqset;
use super::super::session::{Session, cmd_bad, cmd_no, cmd_ok};
use crate::store::flags::Flags;

impl Session {
    pub(crate) fn search_cmd(
        &mut self,
        tag: &str,
        charset: Option<&Charset<'_>>,
        criteria: &[SearchKey<'_>],
        uid: bool,
        esearch: Option<Vec<String>>,
        out: &mut Vec<u8>,
    ) {
        if let Some(cs) = charset {
            if self.utf8 {
                // RFC 6855 §3: after ENABLE UTF8=ACCEPT a charset label conflicts.
                return cmd_bad(out, tag, "no CHARSET after ENABLE UTF8=ACCEPT");
            }
            if !["UTF-8", "US-ASCII"]
                .iter()
                .any(|c| c.eq_ignore_ascii_case(cs.as_ref()))
            {
                return cmd_no(
                    out,
                    tag,
                    "[BADCHARSET (UTF-8 US-ASCII)] unsupported charset",
                );
            }
        }
        // RFC 9051 §6.4.4: IMAP4rev2 answers SEARCH with ESEARCH, RETURN () is ALL.
        let esearch = esearch.or_else(|| self.rev2.then(Vec::new));
        self.search(tag, criteria, uid, esearch, out)
    }

    pub(crate) fn search(
        &mut self,
        tag: &str,
        criteria: &[SearchKey<'_>],
        uid: bool,
        esearch: Option<Vec<String>>,
        out: &mut Vec<u8>,
    ) {
        if criteria
            .iter()
            .any(crate::imap::condstore::search_uses_modseq)
        {
            self.enable_condstore(out);
        }
        let Some(sel) = self.state.selected() else {
            return; // allowed() admits this only when selected
        };
        let key = SearchKey::And(
            imap_codec::imap_types::core::Vec1::try_from(criteria.to_vec())
                .unwrap_or_else(|_| SearchKey::All.into()),
        );
        let content = crate::imap::search::needs_content(&key);
        let (entries, keywords) = {
            let ix = sel.mb.lock();
            // None: expunged by another session, still in this view (see
            // `matches_without_message`).
            type Entry = (u32, u32, Option<(Flags, u64, std::path::PathBuf)>);
            let entries: Vec<Entry> = sel
                .view
                .uids
                .iter()
                .enumerate()
                .map(|(i, u)| {
                    let known = ix.find(*u).map(|m| (m.flags, m.modseq, sel.mb.path_of(m)));
                    (i as u32 + 1, *u, known)
                })
                .collect();
            (entries, ix.keywords.clone())
        };
        let max_seq = sel.view.uids.len() as u32;
        let max_uid = sel.view.uids.last().copied().unwrap_or(0);
        let mut hits = Vec::new();
        let mut hit_uids = Vec::new();
        let mut hit_modseq = 0;
        let mut hit_modseqs = Vec::new();
        for (seq, u, known) in entries {
            let gone = known.is_none();
            let (f, modseq, path) = known.unwrap_or_default();
            let mut c = crate::imap::search::Candidate {
                seq,
                uid: u,
                flags: f,
                keywords: &keywords,
                recent: sel.view.recent.contains(&u),
                modseq,
                path,
                max_seq,
                max_uid,
                content: if content { None } else { Some(None) },
            };
            let hit = if gone {
                crate::imap::search::matches_without_message(&key, &c) == Some(true)
            } else {
                crate::imap::search::matches(&key, &mut c)
            };
            if hit {
                hits.push(if uid { u } else { seq });
                hit_uids.push(u);
                hit_modseq = hit_modseq.max(modseq);
                hit_modseqs.push(modseq);
            }
        }
        if let Some(opts) = &esearch
            && opts.iter().any(|o| o == "SAVE")
        {
            // RFC 5182 §2.1: with MIN and/or MAX but neither ALL nor COUNT, only those
            // messages are saved.
            let has = |w: &str| opts.iter().any(|o| o == w);
            self.saved = if (has("MIN") || has("MAX")) && !has("ALL") && !has("COUNT") {
                let mut v = Vec::new();
                if has("MIN") {
                    v.extend(hit_uids.first());
                }
                if has("MAX") {
                    v.extend(hit_uids.last());
                }
                v.dedup();
                v
            } else {
                hit_uids
            };
        }
        // RFC 7162 §3.1.5: a MODSEQ search reports the highest modseq of what it found.
        let modseq_tail = if crate::imap::condstore::search_uses_modseq(&key) && !hits.is_empty() {
            format!(" (MODSEQ {hit_modseq})")
        } else {
            String::new()
        };
        match esearch {
            None => {
                let mut line = String::from("* SEARCH");
                for h in &hits {
                    line.push(' ');
                    line.push_str(&h.to_string());
                }
                line.push_str(&modseq_tail);
                out.extend_from_slice(line.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            // RFC 5182 §2.1: SAVE alone returns no ESEARCH response.
            Some(opts) if opts.len() == 1 && opts[0] == "SAVE" => {}
            Some(opts) => {
                // RFC 4731: an empty RETURN () means ALL.
                let opts = if opts.is_empty() {
                    vec!["ALL".to_string()]
                } else {
                    opts
                };
                let mut line = format!("* ESEARCH (TAG \"{tag}\")");
                if uid {
                    line.push_str(" UID");
                }
                for o in &opts {
                    match o.as_str() {
                        "MIN" if !hits.is_empty() => line.push_str(&format!(" MIN {}", hits[0])),
                        "MAX" if !hits.is_empty() => {
                            line.push_str(&format!(" MAX {}", hits[hits.len() - 1]))
                        }
                        "COUNT" => line.push_str(&format!(" COUNT {}", hits.len())),
                        "ALL" if !hits.is_empty() => {
                            line.push_str(&format!(" ALL {}", seqset::render(&hits)))
                        }
                        _ => {}
                    }
                }
                if !modseq_tail.is_empty() {
                    // RFC 7162 §3.1.5: with MIN and/or MAX but neither ALL nor COUNT, the
                    // MODSEQ is the highest of the messages reported, not of all matches.
                    let has = |w: &str| opts.iter().any(|o| o == w);
                    let reported = if (has("MIN") || has("MAX")) && !has("ALL") && !has("COUNT") {
                        let first = has("MIN").then(|| hit_modseqs[0]);
                        let last = has("MAX").then(|| hit_modseqs[hit_modseqs.len() - 1]);
                        first.into_iter().chain(last).max().unwrap_or(hit_modseq)
                    } else {
                        hit_modseq
                    };
                    line.push_str(&format!(" MODSEQ {reported}"));
                }
                out.extend_from_slice(line.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
        }
        self.sync(out, uid);
        cmd_ok(out, tag, "SEARCH completed");
    }
}
