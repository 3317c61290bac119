//! Custom keywords (RFC 3501 §2.3.2): names kept per mailbox in `dovecot-keywords`, as
//! Dovecot does, and set as letters a–z in Maildir file names (at most 26 per mailbox).

use std::fs;
use std::io;
use std::path::Path;

use super::super::flags::{Flags, MAX_KEYWORDS};
use super::Index;
use crate::fsutil::write_atomic;

pub const KEYWORDS: &str = "dovecot-keywords";

impl Index {
    pub fn keyword_names(&self, f: Flags) -> Vec<String> {
        (0..MAX_KEYWORDS)
            .filter(|i| f.keywords & (1 << i) != 0)
            .filter_map(|i| self.keywords.get(i).cloned())
            .collect()
    }

    /// Keywords another process added to `dovecot-keywords` (`postern import` writes the
    /// file before the message files that use the new letters): adopted when the file
    /// extends what this index knows, so their letters are not read as unknown and a later
    /// addition here does not overwrite them.
    pub(super) fn adopt_disk_keywords(&mut self, dir: &Path) {
        let disk = load_keywords(dir);
        if disk.len() > self.keywords.len()
            && disk
                .iter()
                .zip(&self.keywords)
                .all(|(a, b)| a.eq_ignore_ascii_case(b))
        {
            self.keywords = disk;
        }
    }

    /// Bits for keyword names; unknown ones are added (and persisted) when `create`.
    pub(super) fn keyword_bits(
        &mut self,
        dir: &Path,
        names: &[String],
        create: bool,
    ) -> io::Result<u32> {
        // Only system flags (most STOREs and APPENDs): no keyword file to read.
        if create && !names.is_empty() {
            self.adopt_disk_keywords(dir);
        }
        let mut bits = 0;
        let mut added = false;
        for n in names {
            let i = match self.keywords.iter().position(|k| k.eq_ignore_ascii_case(n)) {
                Some(i) => i,
                None if create => {
                    if self.keywords.len() >= MAX_KEYWORDS {
                        return Err(io::Error::other("too many keywords in this mailbox"));
                    }
                    self.keywords.push(n.clone());
                    added = true;
                    self.keywords.len() - 1
                }
                None => continue,
            };
            bits |= 1 << i;
        }
        if added {
            let mut text = String::new();
            for (i, k) in self.keywords.iter().enumerate() {
                text.push_str(&format!("{i} {k}\n"));
            }
            write_atomic(&dir.join(KEYWORDS), text.as_bytes(), 0o600)?;
        }
        Ok(bits)
    }
}

pub(super) fn load_keywords(dir: &Path) -> Vec<String> {
    let Ok(text) = fs::read_to_string(dir.join(KEYWORDS)) else {
        return Vec::new();
    };
    let mut out: Vec<String> = Vec::new();
    for line in text.lines() {
        if let Some((i, name)) = line.split_once(' ')
            && let Ok(i) = i.parse::<usize>()
            && i < MAX_KEYWORDS
        {
            if out.len() <= i {
                out.resize(i + 1, String::new());
            }
            out[i] = name.to_string();
        }
    }
    out
}
