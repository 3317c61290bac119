//! FETCH (RFC 3501 §6.4.5, §7.4.2; BINARY RFC 3516): item parsing and a resumable job that
//! renders a bounded slice of messages per step, so `FETCH 1:* BODY[]` on a huge mailbox
//! streams instead of building one giant reply. ENVELOPE, BODY, BODYSTRUCTURE and the
//! CRLF size are cached per message in the store's parse cache.
//!
//! Messages another session expunged that this session has not yet been told of (RFC 2180
//! §4.1): the Maildir file is gone, so their data is not served. FETCH returns everything
//! that still exists, then answers `NO [EXPUNGEISSUED]` (RFC 5530 §3), and the client learns
//! of the expunge at its next NOOP or UID command. STORE (`store.rs`) and COPY/MOVE
//! (`copy_move.rs`) act on the messages that still exist and answer OK (RFC 2180 §4.2, §4.4:
//! the expunged ones simply have nothing left to change or copy).

use std::sync::Arc;
use std::time::SystemTime;

use base64::Engine;
use chrono::{DateTime, Utc};
use imap_codec::imap_types::fetch::{MacroOrMessageDataItemNames, MessageDataItemName, Section};

use imap_codec::imap_types::command::FetchModifier;
use imap_codec::imap_types::sequence::SequenceSet;

use super::super::flag_list::flag_list;
use super::super::mime::{self, SectionText};
use super::super::session::{Pending, Session, cmd_bad, cmd_no, cmd_ok};
use super::super::wire;
use crate::store::FlagOp;
use crate::store::flags;

#[derive(Debug, Clone)]
pub enum Item {
    Uid,
    Flags,
    InternalDate,
    Size,
    Envelope,
    Body,
    BodyStructure,
    Section {
        label: String,
        path: Vec<u32>,
        text: SectionText,
        partial: Option<(u32, u32)>,
        peek: bool,
        binary: bool,
    },
    BinarySize(Vec<u32>),
    /// RFC 7162 §3.1.4.1.
    ModSeq,
}

/// What parsing yields, kept in the store's parse cache (in memory, and as bytes on disk).
#[derive(Debug, PartialEq, Eq)]
pub struct Cached {
    pub size: u32,
    pub envelope: Vec<u8>,
    pub body: Vec<u8>,
    pub bodystructure: Vec<u8>,
}

/// Leads the on-disk form; bump the last byte whenever ENVELOPE/BODY/BODYSTRUCTURE rendering
/// changes, so entries written by an older postern are rendered again rather than served
/// (one message would otherwise look different from its copies). The first form had no
/// marker (it began with the size, never 0xFFFFFF.. for a message within limits).
const CACHE_FORMAT: [u8; 4] = [0xff, 0xff, 0xff, 2];

impl Cached {
    /// The on-disk form: the format marker, size, then each rendering with a length in front
    /// (u32 LE).
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = CACHE_FORMAT.to_vec();
        out.extend_from_slice(&self.size.to_le_bytes());
        for part in [&self.envelope, &self.body, &self.bodystructure] {
            out.extend_from_slice(&(part.len() as u32).to_le_bytes());
            out.extend_from_slice(part);
        }
        out
    }

    fn from_bytes(b: &[u8]) -> Option<Cached> {
        let b = b.strip_prefix(&CACHE_FORMAT[..])?;
        let (size, mut rest) = b.split_first_chunk::<4>()?;
        let mut part = || -> Option<Vec<u8>> {
            let (len, tail) = rest.split_first_chunk::<4>()?;
            let len = u32::from_le_bytes(*len) as usize;
            if tail.len() < len {
                return None;
            }
            let (p, tail) = tail.split_at(len);
            rest = tail;
            Some(p.to_vec())
        };
        let (envelope, body, bodystructure) = (part()?, part()?, part()?);
        Some(Cached {
            size: u32::from_le_bytes(*size),
            envelope,
            body,
            bodystructure,
        })
    }
}

fn section_label(s: &Option<Section<'_>>) -> (String, Vec<u32>, SectionText) {
    let path = |p: &imap_codec::imap_types::fetch::Part| -> Vec<u32> {
        p.0.as_ref().iter().map(|n| n.get()).collect()
    };
    let join = |v: &[u32]| {
        v.iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(".")
    };
    let names = |v: &[imap_codec::imap_types::core::AString<'_>]| -> Vec<Vec<u8>> {
        v.iter().map(|a| a.as_ref().to_vec()).collect()
    };
    let pre = |p: &[u32], s: &str| {
        if p.is_empty() {
            s.to_string()
        } else {
            format!("{}.{s}", join(p))
        }
    };
    match s {
        None => (String::new(), vec![], SectionText::Full),
        Some(Section::Part(p)) => (join(&path(p)), path(p), SectionText::Full),
        Some(Section::Header(p)) => {
            let p = p.as_ref().map(path).unwrap_or_default();
            (pre(&p, "HEADER"), p, SectionText::Header)
        }
        Some(Section::Text(p)) => {
            let p = p.as_ref().map(path).unwrap_or_default();
            (pre(&p, "TEXT"), p, SectionText::Text)
        }
        Some(Section::Mime(p)) => (pre(&path(p), "MIME"), path(p), SectionText::Mime),
        Some(Section::HeaderFields(p, f)) | Some(Section::HeaderFieldsNot(p, f)) => {
            let not = matches!(s, Some(Section::HeaderFieldsNot(..)));
            let p = p.as_ref().map(path).unwrap_or_default();
            let n = names(f.as_ref());
            let list: Vec<String> = n
                .iter()
                .map(|x| String::from_utf8_lossy(x).to_ascii_uppercase())
                .collect();
            let kw = if not {
                "HEADER.FIELDS.NOT"
            } else {
                "HEADER.FIELDS"
            };
            (
                pre(&p, &format!("{kw} ({})", list.join(" "))),
                p,
                SectionText::Fields(n, not),
            )
        }
    }
}

pub fn parse_items(m: &MacroOrMessageDataItemNames<'_>, uid: bool) -> Vec<Item> {
    let names: Vec<MessageDataItemName<'_>> = match m {
        MacroOrMessageDataItemNames::Macro(m) => m.expand(),
        MacroOrMessageDataItemNames::MessageDataItemNames(v) => v.clone(),
    };
    let mut items = Vec::new();
    if uid {
        items.push(Item::Uid);
    }
    for n in names {
        let it = match n {
            MessageDataItemName::Uid if uid => continue,
            MessageDataItemName::Uid => Item::Uid,
            MessageDataItemName::Flags => Item::Flags,
            MessageDataItemName::InternalDate => Item::InternalDate,
            MessageDataItemName::Rfc822Size => Item::Size,
            MessageDataItemName::Envelope => Item::Envelope,
            MessageDataItemName::Body => Item::Body,
            MessageDataItemName::BodyStructure => Item::BodyStructure,
            MessageDataItemName::Rfc822 => Item::Section {
                label: "RFC822".into(),
                path: vec![],
                text: SectionText::Full,
                partial: None,
                peek: false,
                binary: false,
            },
            MessageDataItemName::Rfc822Header => Item::Section {
                label: "RFC822.HEADER".into(),
                path: vec![],
                text: SectionText::Header,
                partial: None,
                peek: true,
                binary: false,
            },
            MessageDataItemName::Rfc822Text => Item::Section {
                label: "RFC822.TEXT".into(),
                path: vec![],
                text: SectionText::Text,
                partial: None,
                peek: false,
                binary: false,
            },
            MessageDataItemName::BodyExt {
                section,
                partial,
                peek,
            } => {
                let (spec, path, text) = section_label(&section);
                Item::Section {
                    label: format!("BODY[{spec}]"),
                    path,
                    text,
                    partial: partial.map(|(a, b)| (a, b.get())),
                    peek,
                    binary: false,
                }
            }
            MessageDataItemName::Binary {
                section,
                partial,
                peek,
            } => {
                let path: Vec<u32> = section.iter().map(|n| n.get()).collect();
                let spec = path
                    .iter()
                    .map(|n| n.to_string())
                    .collect::<Vec<_>>()
                    .join(".");
                Item::Section {
                    label: format!("BINARY[{spec}]"),
                    path,
                    text: SectionText::Full,
                    partial: partial.map(|(a, b)| (a, b.get())),
                    peek,
                    binary: true,
                }
            }
            MessageDataItemName::BinarySize { section } => {
                Item::BinarySize(section.iter().map(|n| n.get()).collect())
            }
            MessageDataItemName::ModSeq => Item::ModSeq,
            #[allow(unreachable_patterns)]
            _ => continue,
        };
        items.push(it);
    }
    items
}

pub struct FetchJob {
    pub tag: String,
    pub uid: bool,
    targets: Vec<(u32, u32)>,
    pos: usize,
    items: Vec<Item>,
    pub failed: bool,
    pub unknown_cte: bool,
}

fn internal_date(t: SystemTime) -> String {
    DateTime::<Utc>::from(t)
        .format("\"%d-%b-%Y %H:%M:%S +0000\"")
        .to_string()
}

/// Undo the part's Content-Transfer-Encoding (BINARY, RFC 3516).
/// None for an encoding we cannot undo (answered NO [UNKNOWN-CTE], RFC 3516 §4.3).
pub(crate) fn decode_cte(header: &[u8], body: &[u8]) -> Option<Vec<u8>> {
    let cte = mime::header_value(header, "Content-Transfer-Encoding")
        .map(|v| String::from_utf8_lossy(&mime::unfold(v)).to_ascii_lowercase())
        .unwrap_or_default();
    Some(match cte.as_str() {
        "base64" => {
            let clean: Vec<u8> = body
                .iter()
                .copied()
                .filter(|b| !b.is_ascii_whitespace())
                .collect();
            base64::engine::general_purpose::STANDARD
                .decode(&clean)
                .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(&clean))
                .unwrap_or_else(|_| body.to_vec())
        }
        "quoted-printable" => qp_decode(body),
        "" | "7bit" | "8bit" | "binary" => body.to_vec(),
        _ => return None,
    })
}

/// Quoted-printable (RFC 2045 §6.7): `=XX` octets, `=` at a line end is a soft break, and
/// whitespace at the end of an encoded line is transport padding, deleted (rule 3). A `=`
/// not followed by two hex digits is kept as is (the robust reading §6.7 suggests).
fn qp_decode(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut lines = body.split(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let had_lf = lines.peek().is_some();
        let mut l = line.strip_suffix(b"\r").unwrap_or(line);
        while let Some((&last, rest)) = l.split_last()
            && (last == b' ' || last == b'\t')
        {
            l = rest;
        }
        let soft = l.last() == Some(&b'=');
        if soft {
            l = &l[..l.len() - 1];
        }
        let mut i = 0;
        while i < l.len() {
            if l[i] == b'='
                && let Some(h) = l.get(i + 1..i + 3)
                && h.iter().all(u8::is_ascii_hexdigit)
                && let Ok(v) = u8::from_str_radix(std::str::from_utf8(h).unwrap_or("x"), 16)
            {
                out.push(v);
                i += 3;
                continue;
            }
            out.push(l[i]);
            i += 1;
        }
        if had_lf && !soft {
            out.extend_from_slice(b"\r\n");
        }
    }
    out
}

impl FetchJob {
    pub fn new(tag: String, uid: bool, targets: Vec<(u32, u32)>, items: Vec<Item>) -> FetchJob {
        FetchJob {
            tag,
            uid,
            targets,
            pos: 0,
            items,
            failed: false,
            unknown_cte: false,
        }
    }

    /// Render the next slice; true when all messages are done.
    pub fn run(&mut self, s: &mut Session, out: &mut Vec<u8>) -> bool {
        const BATCH: usize = 5000;
        const OUT_LIMIT: usize = 2 * 1024 * 1024;
        let Some(sel) = s.state.selected_mut() else {
            return true;
        };
        let end = (self.pos + BATCH).min(self.targets.len());
        let batch = &self.targets[self.pos..end];
        let sets_seen = !sel.ro
            && self
                .items
                .iter()
                .any(|i| matches!(i, Item::Section { peek: false, .. }));
        // Messages this FETCH marks \Seen (RFC 3501 §6.4.5): rendered with the flag, stored
        // once they have been emitted (a slice may stop early at the output limit).
        let mut seen_now = std::collections::HashSet::new();
        if sets_seen {
            let ix = sel.mb.lock();
            seen_now.extend(
                batch
                    .iter()
                    .filter(|(_, u)| ix.find(*u).is_some_and(|m| !m.flags.has(flags::SEEN)))
                    .map(|(_, u)| *u),
            );
        }
        let mut emitted_seen = Vec::new();
        let info: Vec<_> = {
            let ix = sel.mb.lock();
            batch
                .iter()
                .map(|(seq, u)| {
                    let m = ix.find(*u);
                    (*seq, *u, m.map(|m| (m.flags, sel.mb.path_of(m), m.modseq)))
                })
                .collect()
        };
        let keywords = sel.announce_keywords(out);
        let needs_cache = self.items.iter().any(|i| {
            matches!(
                i,
                Item::Size | Item::Envelope | Item::Body | Item::BodyStructure
            )
        });
        let needs_data = self
            .items
            .iter()
            .any(|i| matches!(i, Item::Section { .. } | Item::BinarySize(_)));
        let mut done = self.pos;
        for (seq, uid, m) in info {
            done += 1;
            let Some((fl, path, modseq)) = m else {
                // Expunged by another session but still in our view: nothing to show.
                self.failed = true;
                continue;
            };
            let mut data: Option<Vec<u8>> = None;
            let load = |data: &mut Option<Vec<u8>>| -> bool {
                if data.is_none() {
                    match std::fs::read(&path) {
                        Ok(d) => *data = Some(mime::to_crlf(d)),
                        Err(_) => return false,
                    }
                }
                true
            };
            if needs_data && !load(&mut data) {
                self.failed = true;
                continue;
            }
            let cached: Option<Arc<Cached>> = if needs_cache {
                let from_disk = || {
                    let c = Arc::new(Cached::from_bytes(&sel.mb.cached_bytes(uid)?)?);
                    sel.mb.put_cache(uid, c.clone());
                    Some(c)
                };
                match sel
                    .mb
                    .cached(uid)
                    .and_then(|c| c.downcast::<Cached>().ok())
                    .or_else(from_disk)
                {
                    Some(c) => Some(c),
                    None => {
                        if !load(&mut data) {
                            self.failed = true;
                            continue;
                        }
                        let d = data.as_ref().expect("loaded");
                        let root = mime::parse(d);
                        let mut body = Vec::new();
                        mime::body_structure(&mut body, &root, d, false);
                        let mut bs = Vec::new();
                        mime::body_structure(&mut bs, &root, d, true);
                        let c = Arc::new(Cached {
                            size: d.len() as u32,
                            envelope: mime::envelope(&d[root.header.0..root.header.1]),
                            body,
                            bodystructure: bs,
                        });
                        sel.mb.put_cached_bytes(uid, &c.to_bytes());
                        sel.mb.put_cache(uid, c.clone());
                        Some(c)
                    }
                }
            } else {
                None
            };
            let root = data.as_ref().filter(|_| needs_data).map(|d| mime::parse(d));
            let mut parts: Vec<Vec<u8>> = Vec::new();
            let mut has_flags = false;
            // RFC 3516 §4.3: a part we cannot decode fails the FETCH of that message.
            let mut undecodable = false;
            for it in &self.items {
                let mut p = Vec::new();
                match it {
                    Item::Uid => p.extend_from_slice(format!("UID {uid}").as_bytes()),
                    Item::Flags => {
                        has_flags = true;
                        let recent = sel.view.recent.contains(&uid);
                        let f = if seen_now.contains(&uid) {
                            crate::store::flags::Flags {
                                system: fl.system | flags::SEEN,
                                ..fl
                            }
                        } else {
                            fl
                        };
                        p.extend_from_slice(
                            format!("FLAGS {}", flag_list(f, &keywords, recent)).as_bytes(),
                        );
                    }
                    Item::InternalDate => {
                        let t = std::fs::metadata(&path)
                            .and_then(|m| m.modified())
                            .unwrap_or(SystemTime::UNIX_EPOCH);
                        p.extend_from_slice(
                            format!("INTERNALDATE {}", internal_date(t)).as_bytes(),
                        );
                    }
                    Item::Size => {
                        let c = cached.as_ref().expect("cached");
                        p.extend_from_slice(format!("RFC822.SIZE {}", c.size).as_bytes());
                    }
                    Item::Envelope => {
                        p.extend_from_slice(b"ENVELOPE ");
                        p.extend_from_slice(&cached.as_ref().expect("cached").envelope);
                    }
                    Item::Body => {
                        p.extend_from_slice(b"BODY ");
                        p.extend_from_slice(&cached.as_ref().expect("cached").body);
                    }
                    Item::BodyStructure => {
                        p.extend_from_slice(b"BODYSTRUCTURE ");
                        p.extend_from_slice(&cached.as_ref().expect("cached").bodystructure);
                    }
                    Item::Section {
                        label,
                        path: sp,
                        text,
                        partial,
                        binary,
                        ..
                    } => {
                        let d = data.as_ref().expect("loaded");
                        let root = root.as_ref().expect("parsed");
                        let mut bytes = mime::section_bytes(root, d, sp, text).unwrap_or_default();
                        if *binary
                            && !sp.is_empty()
                            && let Some(part) = mime::locate(root, sp)
                        {
                            match decode_cte(&d[part.header.0..part.header.1], &bytes) {
                                Some(b) => bytes = b,
                                None => undecodable = true,
                            }
                        }
                        let mut l = label.clone();
                        if let Some((start, len)) = partial {
                            let s0 = (*start as usize).min(bytes.len());
                            let e0 = (s0 + *len as usize).min(bytes.len());
                            bytes = bytes[s0..e0].to_vec();
                            l.push_str(&format!("<{start}>"));
                        }
                        p.extend_from_slice(l.as_bytes());
                        p.push(b' ');
                        if *binary && bytes.contains(&0) {
                            p.push(b'~');
                        }
                        wire::literal(&mut p, &bytes);
                    }
                    Item::ModSeq => p.extend_from_slice(format!("MODSEQ ({modseq})").as_bytes()),
                    Item::BinarySize(sp) => {
                        let d = data.as_ref().expect("loaded");
                        let root = root.as_ref().expect("parsed");
                        let mut bytes = mime::section_bytes(root, d, sp, &SectionText::Full)
                            .unwrap_or_default();
                        if !sp.is_empty()
                            && let Some(part) = mime::locate(root, sp)
                        {
                            match decode_cte(&d[part.header.0..part.header.1], &bytes) {
                                Some(b) => bytes = b,
                                None => undecodable = true,
                            }
                        }
                        let spec = sp
                            .iter()
                            .map(|n| n.to_string())
                            .collect::<Vec<_>>()
                            .join(".");
                        p.extend_from_slice(
                            format!("BINARY.SIZE[{spec}] {}", bytes.len()).as_bytes(),
                        );
                    }
                }
                parts.push(p);
            }
            if undecodable {
                self.unknown_cte = true;
                continue;
            }
            if seen_now.contains(&uid) && !has_flags {
                let f = crate::store::flags::Flags {
                    system: fl.system | flags::SEEN,
                    ..fl
                };
                parts.push(
                    format!(
                        "FLAGS {}",
                        flag_list(f, &keywords, sel.view.recent.contains(&uid))
                    )
                    .into_bytes(),
                );
            }
            out.extend_from_slice(format!("* {seq} FETCH (").as_bytes());
            out.extend_from_slice(&parts.join(&b' '));
            out.extend_from_slice(b")\r\n");
            if seen_now.contains(&uid) {
                emitted_seen.push(uid);
            }
            if out.len() > OUT_LIMIT {
                break;
            }
        }
        // With CONDSTORE the next sync reports the new MODSEQ of messages this FETCH marked
        // \Seen (RFC 7162 §3.1: every FETCH about a flag change carries it).
        if !emitted_seen.is_empty()
            && let Ok(st) = sel
                .mb
                .store(&emitted_seen, FlagOp::Add, flags::SEEN, &[], None)
            && sel.view.modseq == st.before
            && !s.modes.condstore
        {
            sel.view.modseq = st.after;
        }
        self.pos = done;
        self.pos >= self.targets.len()
    }
}

impl Session {
    /// FETCH and UID FETCH: resolve the set, then run (or start) a job.
    pub(crate) fn fetch(
        &mut self,
        tag: String,
        set: &SequenceSet,
        names: &MacroOrMessageDataItemNames<'_>,
        uid: bool,
        modifiers: &[FetchModifier],
        out: &mut Vec<u8>,
    ) {
        let Some(mut targets) = self.state.selected().and_then(|s| s.view.resolve(set, uid)) else {
            return cmd_bad(out, &tag, "invalid sequence set");
        };
        let mut items = parse_items(names, uid);
        if let Err(e) = self.fetch_ext(set, uid, modifiers, &mut targets, &mut items, out) {
            return cmd_bad(out, &tag, &e);
        }
        let mut job = Box::new(FetchJob::new(tag, uid, targets, items));
        let done = job.run(self, out);
        if done {
            self.after_fetch(&job, out);
        } else {
            self.pending = Pending::Fetch(job);
        }
    }

    pub(crate) fn after_fetch(&mut self, job: &FetchJob, out: &mut Vec<u8>) {
        // UID FETCH may report expunges; FETCH may not (RFC 3501 §7.4.1).
        self.sync(out, job.uid);
        if job.unknown_cte {
            cmd_no(
                out,
                &job.tag,
                "[UNKNOWN-CTE] cannot decode a part's transfer encoding",
            );
        } else if job.failed {
            cmd_no(
                out,
                &job.tag,
                "[EXPUNGEISSUED] some of the requested messages no longer exist",
            );
        } else {
            cmd_ok(out, &job.tag, "FETCH completed");
        }
    }
}

#[cfg(test)]
mod cache_bytes_tests {
    use super::Cached;

    #[test]
    fn cached_renderings_round_trip_and_truncation_is_refused() {
        let c = Cached {
            size: 1234,
            envelope: b"(NIL \"s\")".to_vec(),
            body: b"(\"TEXT\" \"PLAIN\")".to_vec(),
            bodystructure: Vec::new(),
        };
        let b = c.to_bytes();
        assert_eq!(Cached::from_bytes(&b), Some(c));
        for cut in 0..b.len() {
            assert_eq!(Cached::from_bytes(&b[..cut]), None, "cut at {cut}");
        }
        // An entry from an older rendering is not served.
        let mut old = b.clone();
        old[3] = 1;
        assert_eq!(Cached::from_bytes(&old), None);
        assert_eq!(Cached::from_bytes(&b[4..]), None);
    }
}
