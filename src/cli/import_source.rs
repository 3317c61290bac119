//! Sources for `postern import`: an mbox file read as a stream (one message in memory at a
//! time, each bounded by the size limit) and a Maildir/Maildir++ tree. Each yields messages
//! in the canonical CRLF form with their flags, keywords and internal date, or a refusal
//! with its reason; nothing here is fatal.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::pop3::body::Canon;
use crate::store::flags::{self, Flags};

/// One message ready for the store.
pub struct Message {
    /// Target folder as the user names it ("INBOX", "Lists.rust").
    pub folder: String,
    pub data: Vec<u8>,
    pub system: u8,
    pub keywords: Vec<String>,
    pub date: Option<SystemTime>,
}

pub enum Item {
    Msg(Message),
    /// Not imported: where (folder and position) and why.
    Refused {
        folder: String,
        at: String,
        why: String,
    },
}

/// LF/CRLF/lone-CR input to CRLF line ends (no dot-stuffing).
pub fn to_crlf(raw: &[u8]) -> Vec<u8> {
    let mut c = Canon::counting();
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 40);
    c.feed(raw, &mut out);
    c.finish(&mut out);
    out
}

// ----- mbox ------------------------------------------------------------------------------

/// Header fields that are the mbox's own bookkeeping (mutt, Dovecot, Python `mailbox`), not
/// part of the message: read for flags, then dropped.
const MBOX_FIELDS: [&str; 6] = [
    "status",
    "x-status",
    "x-keywords",
    "x-uid",
    "x-imap",
    "x-imapbase",
];

pub struct Mbox {
    r: BufReader<File>,
    folder: String,
    max: u64,
    /// The `From ` line that starts the next message (already read).
    next_from: Option<Vec<u8>>,
    /// Messages started so far (for positions in reports).
    count: u64,
    /// Bytes of the file consumed (progress).
    pub consumed: u64,
}

/// Read one line (LF included) keeping at most `cap` bytes of it; returns (bytes read,
/// whether it was cut).
fn read_line_capped<R: BufRead>(
    r: &mut R,
    out: &mut Vec<u8>,
    cap: usize,
) -> io::Result<(usize, bool)> {
    let mut total = 0;
    let mut cut = false;
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            return Ok((total, cut));
        }
        let (chunk, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..=i], true),
            None => (buf, false),
        };
        let room = cap.saturating_sub(out.len());
        if chunk.len() > room {
            cut = true;
        }
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let n = chunk.len();
        total += n;
        r.consume(n);
        if done {
            return Ok((total, cut));
        }
    }
}

fn is_from_line(line: &[u8]) -> bool {
    line.starts_with(b"From ")
}

impl Mbox {
    pub fn open(path: &Path, folder: String, max: u64) -> io::Result<Mbox> {
        let mut r = BufReader::with_capacity(256 * 1024, File::open(path)?);
        let mut first = Vec::new();
        let (n, _) = read_line_capped(&mut r, &mut first, 64 * 1024)?;
        if !is_from_line(&first) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "not an mbox file (it does not start with a \"From \" line)",
            ));
        }
        Ok(Mbox {
            r,
            folder,
            max,
            next_from: Some(first),
            count: 0,
            consumed: n as u64,
        })
    }

    /// The next message, or None at the end of the file.
    pub fn next_item(&mut self) -> io::Result<Option<Item>> {
        let Some(from) = self.next_from.take() else {
            return Ok(None);
        };
        self.count += 1;
        let at = format!("message {} of the mbox", self.count);
        let mut body: Vec<u8> = Vec::new();
        let mut too_big = false;
        let mut prev_blank = false;
        let mut line = Vec::new();
        loop {
            line.clear();
            let (n, cut) = read_line_capped(&mut self.r, &mut line, 1 << 20)?;
            self.consumed += n as u64;
            if n == 0 {
                break;
            }
            // A new message starts at a From_ line after a blank line (mboxo/mboxrd).
            if prev_blank && !cut && is_from_line(&line) {
                self.next_from = Some(std::mem::take(&mut line));
                break;
            }
            prev_blank = line == b"\n" || line == b"\r\n";
            if too_big {
                continue;
            }
            // mboxrd: ">From " and ">>From " lose one '>'.
            let start = line.iter().take_while(|&&b| b == b'>').count();
            let unquote = start > 0 && line[start..].starts_with(b"From ");
            body.extend_from_slice(if unquote { &line[1..] } else { &line[..] });
            if cut || body.len() as u64 > self.max {
                too_big = true;
                body = Vec::new();
            }
        }
        if too_big {
            return Ok(Some(Item::Refused {
                folder: self.folder.clone(),
                at,
                why: format!("over the size limit ({} octets)", self.max),
            }));
        }
        // The blank line before the next From_ line (or at the end) is the separator.
        if self.next_from.is_some() || body.ends_with(b"\n\n") || body.ends_with(b"\r\n\r\n") {
            if body.ends_with(b"\r\n") {
                body.truncate(body.len() - 2);
            } else if body.ends_with(b"\n") {
                body.truncate(body.len() - 1);
            }
        }
        Ok(Some(mbox_message(&self.folder, &from, body, at)))
    }
}

/// Split off the mbox bookkeeping fields, read the flags from them, and normalise.
fn mbox_message(folder: &str, from: &[u8], raw: Vec<u8>, at: String) -> Item {
    let mut system = 0u8;
    let mut keywords = Vec::new();
    let mut kept: Vec<u8> = Vec::with_capacity(raw.len());
    let mut in_header = true;
    let mut dropping = false;
    let mut saw_field = false;
    let mut date_header = None;
    for line in raw.split_inclusive(|&b| b == b'\n') {
        if in_header {
            let bare = line.strip_suffix(b"\n").unwrap_or(line);
            let bare = bare.strip_suffix(b"\r").unwrap_or(bare);
            if bare.is_empty() {
                in_header = false;
                kept.extend_from_slice(line);
                continue;
            }
            if bare[0] == b' ' || bare[0] == b'\t' {
                if !dropping {
                    kept.extend_from_slice(line);
                }
                continue;
            }
            let Some(colon) = bare.iter().position(|&b| b == b':') else {
                if !saw_field {
                    return Item::Refused {
                        folder: folder.into(),
                        at,
                        why: "not a message (no header fields)".into(),
                    };
                }
                // A broken header line: keep it as it is.
                kept.extend_from_slice(line);
                continue;
            };
            saw_field = true;
            let name = String::from_utf8_lossy(&bare[..colon])
                .trim()
                .to_ascii_lowercase();
            let value = String::from_utf8_lossy(&bare[colon + 1..])
                .trim()
                .to_string();
            dropping = MBOX_FIELDS.contains(&name.as_str());
            match name.as_str() {
                "status" if value.contains('R') => system |= flags::SEEN,
                "x-status" => {
                    for c in value.chars() {
                        system |= match c {
                            'A' => flags::ANSWERED,
                            'F' => flags::FLAGGED,
                            'T' => flags::DRAFT,
                            'D' => flags::DELETED,
                            _ => 0,
                        };
                    }
                }
                "x-keywords" => keywords.extend(
                    value
                        .split([',', ' '])
                        .filter(|k| !k.is_empty())
                        .map(str::to_owned),
                ),
                "date" => date_header = Some(value),
                _ => {}
            }
            if !dropping {
                kept.extend_from_slice(line);
            }
        } else {
            kept.extend_from_slice(line);
        }
    }
    if !saw_field {
        return Item::Refused {
            folder: folder.into(),
            at,
            why: "not a message (no header fields)".into(),
        };
    }
    let date = from_line_date(from).or_else(|| date_header.as_deref().and_then(rfc2822_date));
    Item::Msg(Message {
        folder: folder.into(),
        data: to_crlf(&kept),
        system,
        keywords,
        date,
    })
}

/// The asctime date of a From_ line: `From sender Sat Dec  6 16:00:00 2026`.
fn from_line_date(line: &[u8]) -> Option<SystemTime> {
    let text = String::from_utf8_lossy(line);
    let words: Vec<&str> = text.split_whitespace().collect();
    let rest = words.get(2..7)?.join(" ");
    let t = chrono::NaiveDateTime::parse_from_str(&rest, "%a %b %d %H:%M:%S %Y").ok()?;
    Some(SystemTime::from(t.and_utc()))
}

fn rfc2822_date(v: &str) -> Option<SystemTime> {
    chrono::DateTime::parse_from_rfc2822(v)
        .ok()
        .map(|d| SystemTime::from(d.with_timezone(&chrono::Utc)))
}

// ----- Maildir ---------------------------------------------------------------------------

/// A Maildir (cur/ new/) or Maildir++ tree (plus `.Folder` directories): every folder with
/// its files, listed up front (names only), read one by one.
pub struct MaildirTree {
    files: std::vec::IntoIter<(String, PathBuf, Vec<String>)>,
    max: u64,
    /// Folders that could not be imported at all.
    pub refused: Vec<Item>,
}

pub fn is_maildir(p: &Path) -> bool {
    p.join("cur").is_dir()
}

/// Keyword names of a Dovecot-style Maildir (`dovecot-keywords`: "index name" lines).
fn source_keywords(dir: &Path) -> Vec<String> {
    let mut out = vec![String::new(); flags::MAX_KEYWORDS];
    if let Ok(text) = std::fs::read_to_string(dir.join("dovecot-keywords")) {
        for l in text.lines() {
            if let Some((i, name)) = l.split_once(' ')
                && let Ok(i) = i.parse::<usize>()
                && i < out.len()
            {
                out[i] = name.trim().to_owned();
            }
        }
    }
    out
}

impl MaildirTree {
    /// `base`: the folder the tree's INBOX goes to; subfolders keep their names below it
    /// (or at the top when `base` is INBOX).
    pub fn open(root: &Path, base: &str, max: u64) -> io::Result<MaildirTree> {
        let mut folders = vec![(base.to_owned(), root.to_path_buf())];
        let mut refused = Vec::new();
        let mut subs: Vec<_> = std::fs::read_dir(root)?.filter_map(Result::ok).collect();
        subs.sort_by_key(|e| e.file_name());
        for e in subs {
            let name = e.file_name();
            let Some(n) = name.to_str() else {
                refused.push(Item::Refused {
                    folder: name.to_string_lossy().into_owned(),
                    at: "folder".into(),
                    why: "folder name is not UTF-8 or modified UTF-7".into(),
                });
                continue;
            };
            let Some(n) = n.strip_prefix('.') else {
                continue;
            };
            if n.is_empty() || n == "." || !is_maildir(&e.path()) {
                continue;
            }
            // Maildir++ names are modified UTF-7 (RFC 3501 §5.1.3) with '.' as separator.
            let Some(utf8) = crate::store::names::decode_mutf7(n) else {
                refused.push(Item::Refused {
                    folder: n.into(),
                    at: "folder".into(),
                    why: "folder name is not valid modified UTF-7".into(),
                });
                continue;
            };
            // The separator is '.' on both sides (store::names::DELIM).
            let target = if base.eq_ignore_ascii_case("INBOX") {
                utf8
            } else {
                format!("{base}.{utf8}")
            };
            folders.push((target, e.path()));
        }
        let mut files = Vec::new();
        for (folder, dir) in folders {
            let kw = source_keywords(&dir);
            for sub in ["cur", "new"] {
                let Ok(rd) = std::fs::read_dir(dir.join(sub)) else {
                    continue;
                };
                let mut names: Vec<PathBuf> = rd.filter_map(Result::ok).map(|e| e.path()).collect();
                // Delivery order: Maildir names start with the delivery time.
                names.sort();
                files.extend(names.into_iter().map(|p| (folder.clone(), p, kw.clone())));
            }
        }
        Ok(MaildirTree {
            files: files.into_iter(),
            max,
            refused,
        })
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn next_item(&mut self) -> Option<Item> {
        let (folder, path, kw) = self.files.next()?;
        let at = path.display().to_string();
        let refuse = |why: String| Item::Refused {
            folder: folder.clone(),
            at: at.clone(),
            why,
        };
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) => return Some(refuse(format!("cannot read: {e}"))),
        };
        if !meta.is_file() {
            return Some(refuse("not a file".into()));
        }
        if meta.len() > self.max {
            return Some(refuse(format!("over the size limit ({} octets)", self.max)));
        }
        let raw = match std::fs::read(&path) {
            Ok(r) => r,
            Err(e) => return Some(refuse(format!("cannot read: {e}"))),
        };
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let f = name
            .rsplit_once(":2,")
            .map(|(_, info)| Flags::from_info(info))
            .unwrap_or_default();
        let keywords = (0..flags::MAX_KEYWORDS)
            .filter(|i| f.keywords & (1 << i) != 0)
            .filter_map(|i| kw.get(i).filter(|k| !k.is_empty()).cloned())
            .collect();
        Some(Item::Msg(Message {
            folder,
            data: to_crlf(&raw),
            system: f.system,
            keywords,
            date: meta.modified().ok(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mbox(text: &[u8]) -> Vec<Item> {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("m");
        std::fs::write(&p, text).unwrap();
        let mut m = Mbox::open(&p, "INBOX".into(), 200).unwrap();
        let mut out = Vec::new();
        while let Some(i) = m.next_item().unwrap() {
            out.push(i);
        }
        out
    }

    #[test]
    fn mbox_messages_flags_dates_and_quoting() {
        let items = mbox(
            b"From a@b Sat Dec  6 16:00:00 2025\nSubject: one\nStatus: RO\nX-Status: AF\nX-Keywords: $Work, later\n\nbody\n>From here\n\nFrom c@d Sun Dec  7 10:00:00 2025\nSubject: two\n\nx\n",
        );
        assert_eq!(items.len(), 2);
        let Item::Msg(m) = &items[0] else { panic!() };
        assert_eq!(m.data, b"Subject: one\r\n\r\nbody\r\nFrom here\r\n");
        assert_eq!(m.system, flags::SEEN | flags::ANSWERED | flags::FLAGGED);
        assert_eq!(m.keywords, ["$Work", "later"]);
        let secs = m
            .date
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert_eq!(secs, 1765036800);
        let Item::Msg(m) = &items[1] else { panic!() };
        assert_eq!(m.data, b"Subject: two\r\n\r\nx\r\n");
        assert_eq!(m.system, 0);
    }

    #[test]
    fn mbox_refuses_big_and_headerless_and_survives_truncation() {
        let big = format!(
            "From a Sat Dec  6 16:00:00 2025\nSubject: big\n\n{}\n\nFrom b Sat Dec  6 16:00:00 2025\nno header here\n\nFrom c Sat Dec  6 16:00:00 2025\nSubject: cut\n\nhalf a li",
            "x".repeat(300)
        );
        let items = mbox(big.as_bytes());
        assert_eq!(items.len(), 3);
        assert!(matches!(&items[0], Item::Refused { why, .. } if why.contains("size limit")));
        assert!(matches!(&items[1], Item::Refused { why, .. } if why.contains("no header")));
        let Item::Msg(m) = &items[2] else { panic!() };
        assert_eq!(m.data, b"Subject: cut\r\n\r\nhalf a li\r\n");
    }

    #[test]
    fn not_an_mbox_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("m");
        std::fs::write(&p, b"Subject: x\n\n").unwrap();
        assert!(Mbox::open(&p, "INBOX".into(), 100).is_err());
    }
}
