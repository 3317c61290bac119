//! SEARCH evaluation (RFC 3501 §6.4.4). Keys on flags, UIDs, sizes and dates are answered
//! from the index; header and text keys read the message (one at a time, never the whole
//! mailbox in memory). Matching is case-insensitive substring on decoded text, so CHARSET
//! UTF-8 searches work on encoded-word subjects and base64 bodies.
//!
//! OLDER/YOUNGER (RFC 5032, WITHIN) arrive as a HEADER key on a stand-in field name
//! (`parse/within.rs`), which `matches` reads back.

use std::path::PathBuf;
use std::time::SystemTime;

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use imap_codec::imap_types::search::SearchKey;
use mail_parser::{HeaderValue, MessageParser};

use crate::store::flags::{self, Flags};

use super::parse::within::{OLDER_MARK, YOUNGER_MARK};

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
        // Keep the raw text too, so searches for undecoded forms match as well; but not
        // when it holds encoded words (RFC 2047): "iso" or "utf-8" would then match every
        // encoded subject, which the decoded text does not contain.
        out.push(' ');
        if let Some(raw) = super::mime::header_value(&data[..hend], name)
            && !raw.windows(2).any(|w| w == b"=?")
        {
            out.push_str(&String::from_utf8_lossy(raw));
        }
    }
    out
}

/// The text BODY searches (RFC 3501 §6.4.4 "in the body of the message"): the charset-decoded
/// text parts as mail-parser reads them, then every `text/*` part of the MIME tree, nested
/// message/rfc822 parts included, with its Content-Transfer-Encoding undone. With `headers`
/// (for TEXT) the header blocks of every entity below the top, MIME part headers and
/// embedded messages' headers, are added too: they are part of the message's text.
fn body_text(data: &[u8], headers: bool) -> String {
    let mut out = String::new();
    if let Some(m) = MessageParser::default().parse(data) {
        for i in 0..m.text_body.len().max(m.html_body.len()) {
            if let Some(t) = m.body_text(i) {
                out.push_str(&t);
                out.push('\n');
            }
        }
    }
    let root = super::mime::parse(data);
    part_text(&root, data, headers, true, &mut out);
    out
}

fn part_text(p: &super::mime::Part, data: &[u8], headers: bool, top: bool, out: &mut String) {
    let header = data.get(p.header.0..p.header.1).unwrap_or_default();
    if headers && !top {
        out.push_str(&String::from_utf8_lossy(header));
    }
    if let Some(m) = &p.message {
        if headers {
            out.push_str(&String::from_utf8_lossy(
                data.get(m.header.0..m.header.1).unwrap_or_default(),
            ));
        }
        // Its header was added just above: `top` keeps it from being added twice.
        part_text(m, data, headers, true, out);
    } else if !p.children.is_empty() {
        for c in &p.children {
            part_text(c, data, headers, false, out);
        }
    } else if p.ctype.eq_ignore_ascii_case("text") {
        let body = data.get(p.body.0..p.body.1).unwrap_or_default();
        let decoded = super::command::fetch::decode_cte(header, body);
        out.push_str(&String::from_utf8_lossy(decoded.as_deref().unwrap_or(body)));
        out.push('\n');
    }
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
            .is_some_and(|d| contains(&body_text(d, false), s.as_ref())),
        K::Text(s) => c.data().is_some_and(|d| {
            let hend = super::mime::header_end(d, 0);
            contains(&String::from_utf8_lossy(&d[..hend]), s.as_ref())
                || contains(&header_text_all(d), s.as_ref())
                || contains(&body_text(d, true), s.as_ref())
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

/// RFC 3501 §6.4.4: FROM, SUBJECT, … look in the envelope's field, so a message without
/// that field never matches, not even the empty string.
fn header_matches(c: &mut Candidate<'_>, name: &str, needle: &[u8]) -> bool {
    c.data().is_some_and(|d| {
        let hend = super::mime::header_end(d, 0);
        super::mime::header_value(&d[..hend], name).is_some()
            && contains(&header_text(d, name), needle)
    })
}

/// The answer for a message another session expunged and this one has not been told about
/// (RFC 3501 §7.4.1 allows no EXPUNGE during SEARCH, so its sequence number still stands):
/// Some only when the key is decided by what the session still knows, the sequence number
/// and UID; None when it needs the message's flags or content, which are gone. Such a
/// message is reported only on a definite Some(true) (RFC 2180 §4.1 leaves the server that
/// choice for messages it can no longer read).
pub fn matches_without_message(key: &SearchKey<'_>, c: &Candidate<'_>) -> Option<bool> {
    use SearchKey as K;
    match key {
        K::All => Some(true),
        K::SequenceSet(s) => Some(super::seqset::contains(s, c.seq, c.max_seq)),
        K::Uid(s) => Some(super::seqset::contains(s, c.uid, c.max_uid)),
        K::Not(k) => matches_without_message(k, c).map(|b| !b),
        K::And(keys) => {
            let mut all = Some(true);
            for k in keys.as_ref() {
                match matches_without_message(k, c) {
                    Some(false) => return Some(false),
                    Some(true) => {}
                    None => all = None,
                }
            }
            all
        }
        K::Or(a, b) => match (matches_without_message(a, c), matches_without_message(b, c)) {
            (Some(true), _) | (_, Some(true)) => Some(true),
            (Some(false), Some(false)) => Some(false),
            _ => None,
        },
        _ => None,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 3501 §6.4.4: BODY looks in the body, TEXT in the header and body. Text parts of
    /// any subtype are searched with their transfer encoding undone, and the entities of
    /// embedded messages (their headers for TEXT) are part of the message.
    #[test]
    fn body_and_text_reach_every_part() {
        let m = b"Subject: outer\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n\
            Content-Type: text/x-own; charset=us-ascii\r\nContent-Transfer-Encoding: base64\r\n\r\n\
            aGVsbG8gd29ybGQ=\r\n--b\r\nContent-Type: multipart/digest; boundary=\"d\"\r\n\r\n--d\r\n\r\n\
            From: m1@example.com\r\nSubject: m1\r\n\r\nm1 body\r\n--d--\r\n--b--\r\n";
        let m = &m[..];
        let body = body_text(m, false);
        assert!(contains(&body, b"hello world"), "{body}");
        assert!(contains(&body, b"m1 body"), "{body}");
        assert!(!contains(&body, b"From: m1"), "{body}");
        let text = body_text(m, true);
        assert!(contains(&text, b"From: m1@example.com"), "{text}");
        assert!(contains(&text, b"charset=us-ascii"), "{text}");
        assert!(contains(&text, b"hello world"), "{text}");
    }

    #[test]
    fn header_keys_match_decoded_text_of_present_fields() {
        let m = b"Subject: =?iso-8859-1?q?RE:_C?=\r\n\r\nbody\r\n";
        assert!(contains(&header_text(m, "Subject"), b"re: c"));
        assert!(!contains(&header_text(m, "Subject"), b"iso"));
        let plain = b"Subject: plain words\r\n\r\nbody\r\n";
        assert!(contains(&header_text(plain, "Subject"), b"WORDS"));
    }

    /// A message expunged elsewhere but still in this session's view: decided only on
    /// what the session knows (sequence number, UID).
    #[test]
    fn expunged_messages_match_on_numbers_only() {
        use imap_codec::CommandCodec;
        use imap_codec::decode::Decoder;
        use imap_codec::imap_types::command::CommandBody;
        let c = Candidate {
            seq: 5,
            uid: 50,
            flags: Flags::default(),
            keywords: &[],
            recent: false,
            modseq: 0,
            path: PathBuf::new(),
            max_seq: 9,
            max_uid: 90,
            content: Some(None),
        };
        let eval = |s: &str| {
            let line = format!("a SEARCH {s}\r\n");
            let (_, cmd) = CommandCodec::default().decode(line.as_bytes()).unwrap();
            let CommandBody::Search { criteria, .. } = cmd.body else {
                panic!("not a SEARCH");
            };
            matches_without_message(&SearchKey::And(criteria), &c)
        };
        assert_eq!(eval("1:3,5"), Some(true));
        assert_eq!(eval("UID 1:40 SEEN"), Some(false));
        assert_eq!(eval("5 SEEN"), None);
        assert_eq!(eval("OR 5 SUBJECT x"), Some(true));
        assert_eq!(eval("NOT 4"), Some(true));
        assert_eq!(eval("SMALLER 10"), None);
    }
}
