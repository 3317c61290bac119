//! SEARCH evaluation (RFC 3501 §6.4.4). Keys on flags, UIDs, sizes and dates are answered
//! from the index; header and text keys read the message (one at a time, never the whole
//! mailbox in memory). Matching is case-insensitive substring on decoded text, so CHARSET
//! UTF-8 searches work on encoded-word subjects and base64 bodies.
//!
//! OLDER/YOUNGER (RFC 5032, WITHIN) are not parsed by imap-codec: `rewrite_within` finds them
//! in key position with the session's tokenizer and turns them into a HEADER key on a field
//! name that no message can have (it contains ':'), which `matches` reads back.

use std::path::PathBuf;
use std::time::SystemTime;

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use imap_codec::imap_types::search::SearchKey;
use mail_parser::{HeaderValue, MessageParser};

use super::wire::Tok;
use crate::store::flags::{self, Flags};

/// Stand-in HEADER field names for OLDER and YOUNGER. A field name cannot contain ':'
/// (RFC 5322 §3.6.8), so no real header search is taken for one of these.
const OLDER_MARK: &str = "postern:older";
const YOUNGER_MARK: &str = "postern:younger";

/// What search needs of one message.
pub struct Candidate<'a> {
    pub seq: u32,
    pub uid: u32,
    pub flags: Flags,
    pub keywords: &'a [String],
    pub recent: bool,
    /// RFC 7162 §3.1.5 (one modseq per message: every metadata entry shares it).
    pub modseq: u64,
    pub path: PathBuf,
    /// Largest sequence number and UID (for `*`).
    pub max_seq: u32,
    pub max_uid: u32,
    pub content: Option<Option<Vec<u8>>>,
}

impl Candidate<'_> {
    fn data(&mut self) -> Option<&[u8]> {
        if self.content.is_none() {
            self.content = Some(std::fs::read(&self.path).ok().map(super::mime::to_crlf));
        }
        self.content.as_ref().and_then(|c| c.as_deref())
    }

    fn internal_time(&self) -> Option<SystemTime> {
        std::fs::metadata(&self.path).ok()?.modified().ok()
    }

    fn internal_date(&self) -> Option<NaiveDate> {
        let t = std::fs::metadata(&self.path).ok()?.modified().ok()?;
        Some(DateTime::<Utc>::from(t).date_naive())
    }

    fn sent_date(&mut self) -> Option<NaiveDate> {
        let data = self.data()?;
        let hend = super::mime::header_end(data, 0);
        let m = MessageParser::default().parse_headers(&data[..hend])?;
        let d = m.date()?;
        let dt = DateTime::<FixedOffset>::parse_from_rfc3339(&d.to_rfc3339()).ok()?;
        // RFC 3501: the date part of the Date header, disregarding time and timezone.
        Some(dt.date_naive())
    }
}

fn contains(hay: &str, needle: &[u8]) -> bool {
    let needle = String::from_utf8_lossy(needle).to_lowercase();
    hay.to_lowercase().contains(&needle)
}

fn header_text(data: &[u8], name: &str) -> String {
    let hend = super::mime::header_end(data, 0);
    let Some(m) = MessageParser::default().parse_headers(&data[..hend]) else {
        return String::new();
    };
    let mut out = String::new();
    for h in m.headers() {
        if !h.name.as_str().eq_ignore_ascii_case(name) {
            continue;
        }
        match &h.value {
            HeaderValue::Text(t) => out.push_str(t),
            HeaderValue::TextList(l) => out.push_str(&l.join(" ")),
            HeaderValue::Address(a) => {
                for x in a.iter() {
                    if let Some(n) = &x.name {
                        out.push_str(n);
                        out.push(' ');
                    }
                    if let Some(e) = &x.address {
                        out.push('<');
                        out.push_str(e);
                        out.push_str("> ");
                    }
                }
            }
            _ => {}
        }
        // Keep the raw text too, so searches for undecoded forms match as well.
        out.push(' ');
        if let Some(raw) = super::mime::header_value(&data[..hend], name) {
            out.push_str(&String::from_utf8_lossy(raw));
        }
    }
    out
}

fn body_text(data: &[u8]) -> String {
    let Some(m) = MessageParser::default().parse(data) else {
        return String::new();
    };
    let mut out = String::new();
    for i in 0..m.text_body.len().max(m.html_body.len()) {
        if let Some(t) = m.body_text(i) {
            out.push_str(&t);
            out.push('\n');
        }
    }
    out
}

fn date(d: &imap_codec::imap_types::datetime::NaiveDate) -> NaiveDate {
    *d.as_ref()
}

/// Does the message match the key?
pub fn matches(key: &SearchKey<'_>, c: &mut Candidate<'_>) -> bool {
    use SearchKey as K;
    let f = c.flags;
    match key {
        K::And(keys) => keys.as_ref().iter().all(|k| matches(k, c)),
        K::SequenceSet(s) => super::seqset::contains(s, c.seq, c.max_seq),
        K::Uid(s) => super::seqset::contains(s, c.uid, c.max_uid),
        K::All => true,
        K::Answered => f.has(flags::ANSWERED),
        K::Unanswered => !f.has(flags::ANSWERED),
        K::Deleted => f.has(flags::DELETED),
        K::Undeleted => !f.has(flags::DELETED),
        K::Draft => f.has(flags::DRAFT),
        K::Undraft => !f.has(flags::DRAFT),
        K::Flagged => f.has(flags::FLAGGED),
        K::Unflagged => !f.has(flags::FLAGGED),
        K::Seen => f.has(flags::SEEN),
        K::Unseen => !f.has(flags::SEEN),
        K::Recent => c.recent,
        K::New => c.recent && !f.has(flags::SEEN),
        K::Old => !c.recent,
        K::Keyword(k) => has_keyword(c, k.as_ref()),
        K::Unkeyword(k) => !has_keyword(c, k.as_ref()),
        K::Not(k) => !matches(k, c),
        K::Or(a, b) => matches(a, c) || matches(b, c),
        K::Larger(n) => c.data().is_some_and(|d| d.len() as u64 > *n as u64),
        K::Smaller(n) => c.data().is_some_and(|d| (d.len() as u64) < *n as u64),
        K::Before(d) => c.internal_date().is_some_and(|x| x < date(d)),
        K::On(d) => c.internal_date().is_some_and(|x| x == date(d)),
        K::Since(d) => c.internal_date().is_some_and(|x| x >= date(d)),
        K::SentBefore(d) => c.sent_date().is_some_and(|x| x < date(d)),
        K::SentOn(d) => c.sent_date().is_some_and(|x| x == date(d)),
        K::SentSince(d) => c.sent_date().is_some_and(|x| x >= date(d)),
        K::Bcc(s) => header_matches(c, "Bcc", s.as_ref()),
        K::Cc(s) => header_matches(c, "Cc", s.as_ref()),
        K::From(s) => header_matches(c, "From", s.as_ref()),
        K::To(s) => header_matches(c, "To", s.as_ref()),
        K::Subject(s) => header_matches(c, "Subject", s.as_ref()),
        K::Header(name, s) if within_mark(name.as_ref()).is_some() => {
            let older = within_mark(name.as_ref()) == Some(true);
            let secs: u64 = std::str::from_utf8(s.as_ref())
                .ok()
                .and_then(|x| x.parse().ok())
                .unwrap_or(0);
            let Some(t) = c.internal_time() else {
                return false;
            };
            // Age in whole seconds; a date in the future counts as age 0.
            let age = SystemTime::now()
                .duration_since(t)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            // RFC 5032 §3: OLDER is strictly older than the interval; YOUNGER is younger
            // than or equal to it.
            if older { age > secs } else { age <= secs }
        }
        K::Header(name, s) => {
            let name = String::from_utf8_lossy(name.as_ref()).to_string();
            let Some(d) = c.data() else { return false };
            let hend = super::mime::header_end(d, 0);
            let present = super::mime::header_value(&d[..hend], &name).is_some();
            // An empty string matches every message that has the field (RFC 3501 §6.4.4).
            present && (s.as_ref().is_empty() || header_matches(c, &name, s.as_ref()))
        }
        K::Body(s) => c
            .data()
            .is_some_and(|d| contains(&body_text(d), s.as_ref())),
        K::Text(s) => c.data().is_some_and(|d| {
            let hend = super::mime::header_end(d, 0);
            contains(&String::from_utf8_lossy(&d[..hend]), s.as_ref())
                || contains(&header_text_all(d), s.as_ref())
                || contains(&body_text(d), s.as_ref())
        }),
        K::ModSequence { modseq, .. } => c.modseq >= *modseq,
        #[allow(unreachable_patterns)]
        _ => false,
    }
}

fn header_text_all(d: &[u8]) -> String {
    ["Subject", "From", "To", "Cc"]
        .iter()
        .map(|h| header_text(d, h))
        .collect::<Vec<_>>()
        .join(" ")
}

fn has_keyword(c: &Candidate<'_>, k: &str) -> bool {
    if let Some(bit) = flags::system_flag(k) {
        return c.flags.has(bit);
    }
    c.keywords
        .iter()
        .enumerate()
        .any(|(i, n)| n.eq_ignore_ascii_case(k) && c.flags.keywords & (1 << i) != 0)
}

fn header_matches(c: &mut Candidate<'_>, name: &str, needle: &[u8]) -> bool {
    c.data()
        .is_some_and(|d| contains(&header_text(d, name), needle))
}

/// Does a key need message content (to decide whether to read files)?
pub fn needs_content(key: &SearchKey<'_>) -> bool {
    use SearchKey as K;
    match key {
        K::And(k) => k.as_ref().iter().any(needs_content),
        K::Not(k) => needs_content(k),
        K::Or(a, b) => needs_content(a) || needs_content(b),
        K::Header(name, _) if within_mark(name.as_ref()).is_some() => false,
        K::Larger(_)
        | K::Smaller(_)
        | K::SentBefore(_)
        | K::SentOn(_)
        | K::SentSince(_)
        | K::Bcc(_)
        | K::Cc(_)
        | K::From(_)
        | K::To(_)
        | K::Subject(_)
        | K::Header(..)
        | K::Body(_)
        | K::Text(_) => true,
        _ => false,
    }
}

/// Some(true) for the OLDER stand-in field name, Some(false) for YOUNGER.
fn within_mark(name: &[u8]) -> Option<bool> {
    if name.eq_ignore_ascii_case(OLDER_MARK.as_bytes()) {
        Some(true)
    } else if name.eq_ignore_ascii_case(YOUNGER_MARK.as_bytes()) {
        Some(false)
    } else {
        None
    }
}

/// How many arguments a search key takes before the next key (RFC 3501 §6.4.4, RFC 5032,
/// RFC 7162 §3.1.5). NOT and OR take keys, which are walked as keys; sequence sets and
/// parentheses take nothing.
fn key_args(key: &[u8], next: Option<&Tok>) -> usize {
    let k = String::from_utf8_lossy(key).to_ascii_uppercase();
    match k.as_str() {
        "BCC" | "BEFORE" | "BODY" | "CC" | "FROM" | "KEYWORD" | "LARGER" | "ON" | "SENTBEFORE"
        | "SENTON" | "SENTSINCE" | "SINCE" | "SMALLER" | "SUBJECT" | "TEXT" | "TO" | "UID"
        | "UNKEYWORD" | "OLDER" | "YOUNGER" => 1,
        "HEADER" => 2,
        // MODSEQ [entry-name entry-type-req] mod-sequence-value; the entry name is quoted.
        "MODSEQ" if matches!(next, Some(Tok::Str(_))) => 3,
        "MODSEQ" => 1,
        _ => 0,
    }
}

/// Index of the first search key after `SEARCH` (at `at`): past `RETURN (...)` (RFC 4731)
/// and `CHARSET x`.
pub fn search_keys_start(toks: &[(Tok, usize, usize)], at: usize) -> usize {
    let mut i = at + 1;
    if toks
        .get(i)
        .is_some_and(|t| super::wire::is_atom(&t.0, "RETURN"))
    {
        i += 1;
        let mut depth = 0usize;
        while let Some((t, _, _)) = toks.get(i) {
            i += 1;
            match t {
                Tok::Open => depth += 1,
                Tok::Close => depth = depth.saturating_sub(1),
                _ => {}
            }
            if depth == 0 {
                break;
            }
        }
    }
    if toks
        .get(i)
        .is_some_and(|t| super::wire::is_atom(&t.0, "CHARSET"))
    {
        i += 2;
    }
    i
}

/// Indexes of the atoms in key position from `start` on (their arguments are skipped).
pub fn key_positions(toks: &[(Tok, usize, usize)], start: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut i = start;
    while let Some((t, _, _)) = toks.get(i) {
        i += 1;
        let Tok::Atom(a) = t else { continue };
        out.push(i - 1);
        i += key_args(a, toks.get(i).map(|x| &x.0));
    }
    out
}

/// Rewrite OLDER/YOUNGER keys (RFC 5032) in a SEARCH command into stand-in HEADER keys that
/// imap-codec parses. `toks` are the command's tokens with spans and `start` the index of the
/// first search key. Ok(None): nothing to rewrite. Err: a protocol error for a BAD reply.
/// The result must not be given to this function again (it holds the stand-in names).
pub fn rewrite_within(
    msg: &[u8],
    toks: &[(Tok, usize, usize)],
    start: usize,
) -> Result<Option<Vec<u8>>, &'static str> {
    let found: Vec<usize> = key_positions(toks, start)
        .into_iter()
        .filter(|k| {
            super::wire::is_atom(&toks[*k].0, "OLDER")
                || super::wire::is_atom(&toks[*k].0, "YOUNGER")
        })
        .collect();
    // A client's own HEADER search on a stand-in name would be taken for OLDER/YOUNGER.
    let lower = String::from_utf8_lossy(msg).to_ascii_lowercase();
    if lower.contains(OLDER_MARK) || lower.contains(YOUNGER_MARK) {
        return Err("reserved header name in SEARCH");
    }
    if found.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(msg.len() + 32 * found.len());
    let mut from = 0;
    for k in found {
        let (key, kstart, _) = &toks[k];
        let Some((Tok::Atom(num), _, nend)) = toks.get(k + 1) else {
            return Err("OLDER and YOUNGER take a number of seconds");
        };
        // interval = nz-number (RFC 5032 §4).
        let secs = std::str::from_utf8(num)
            .ok()
            .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<u32>().ok())
            .filter(|n| *n > 0)
            .ok_or("OLDER and YOUNGER take a number of seconds")?;
        let mark = if super::wire::is_atom(key, "OLDER") {
            OLDER_MARK
        } else {
            YOUNGER_MARK
        };
        out.extend_from_slice(&msg[from..*kstart]);
        out.extend_from_slice(format!("HEADER \"{mark}\" \"{secs}\"").as_bytes());
        from = *nend;
    }
    out.extend_from_slice(&msg[from..]);
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::wire::tokenize;

    fn rw(cmd: &str) -> Result<Option<String>, &'static str> {
        let t = tokenize(cmd.as_bytes()).unwrap();
        rewrite_within(cmd.as_bytes(), &t, 2).map(|o| o.map(|v| String::from_utf8(v).unwrap()))
    }

    #[test]
    fn within_keys_are_rewritten_only_in_key_position() {
        assert_eq!(
            rw("a SEARCH OLDER 60 NOT YOUNGER 5\r\n").unwrap().unwrap(),
            "a SEARCH HEADER \"postern:older\" \"60\" NOT HEADER \"postern:younger\" \"5\"\r\n"
        );
        // Arguments of other keys are left alone.
        assert_eq!(
            rw("a SEARCH SUBJECT OLDER HEADER X YOUNGER\r\n").unwrap(),
            None
        );
        assert_eq!(
            rw("a SEARCH OR (SUBJECT older) OLDER 1 UNSEEN\r\n")
                .unwrap()
                .unwrap(),
            "a SEARCH OR (SUBJECT older) HEADER \"postern:older\" \"1\" UNSEEN\r\n"
        );
        assert_eq!(
            rw("a SEARCH MODSEQ \"/flags/older\" all 5 YOUNGER 9\r\n")
                .unwrap()
                .unwrap(),
            "a SEARCH MODSEQ \"/flags/older\" all 5 HEADER \"postern:younger\" \"9\"\r\n"
        );
        for bad in [
            "a SEARCH OLDER\r\n",
            "a SEARCH OLDER 0\r\n",
            "a SEARCH OLDER -5\r\n",
            "a SEARCH OLDER 99999999999\r\n",
            "a SEARCH YOUNGER (1)\r\n",
            "a SEARCH OLDER 5 HEADER postern:older 1\r\n",
        ] {
            assert!(rw(bad).is_err(), "{bad}");
        }
        let t = tokenize(b"a UID SEARCH RETURN (MIN (X)) CHARSET UTF-8 OLDER 5").unwrap();
        assert_eq!(search_keys_start(&t, 2), 12);
        let t = tokenize(b"a SEARCH OLDER 5").unwrap();
        assert_eq!(search_keys_start(&t, 1), 2);
    }
}
