//! The on-disk format of `postern-uidlist`: UIDs, per-message MODSEQs and the memory of
//! expunges that CONDSTORE/QRESYNC (RFC 7162) need. Parsing and rendering only; the mailbox
//! decides when to append and when to rewrite.
//!
//! ```text
//! P2 <uidvalidity> <uidnext> <highestmodseq> <expunge-floor>
//! <uid> <modseq> :<info> <basename>      a message (info = Maildir flag letters)
//! M <uid> <modseq> :<info>               a later flag change of that message
//! X <modseq> <uid-set>                   UIDs expunged at that modseq
//! ```
//!
//! `M` and `X` lines are appended as changes happen (an `X` line after the entries it
//! removes, which then do not count); a rewrite folds them into the header and entries.
//!
//! Crash safety: every MODSEQ is written to this file (append + fsync, or temp + fsync +
//! rename on a rewrite) *before* any session can see it, all under the mailbox lock, so the
//! highest modseq found on load (header, entries and `M`/`X` lines) is at least any modseq
//! ever handed out and new ones start above it: HIGHESTMODSEQ never goes backwards and no
//! number is reused. A crash between a flag rename and its `M` line leaves a file whose
//! flags differ from the recorded info; load notices and gives it a new modseq, as it does
//! for changes made by other programs while we were down. A torn last line (no newline) was
//! never acknowledged; it is ignored and the file rewritten on open, so later appends never
//! glue onto it. `P1` files (UIDs only) load with every message at modseq 1 and are
//! rewritten as `P2` in place (atomically) on first open.
//!
//! Expunges are remembered per modseq for QRESYNC's VANISHED (EARLIER) (RFC 7162 §3.2.5.2);
//! the memory is bounded, and forgotten ones raise the floor: below it the server cannot say
//! precisely what vanished and reports every missing UID of the client's range instead.

use std::collections::{HashMap, VecDeque};
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use super::flags::Flags;

pub const UIDLIST: &str = "postern-uidlist";
/// Expunge operations remembered for VANISHED (EARLIER).
const EXPUNGE_GROUPS: usize = 1000;
/// UIDs remembered across those operations.
const EXPUNGE_UIDS: usize = 200_000;

/// What a message's last durable record says.
#[derive(Debug, Clone, Copy)]
pub struct Recorded {
    pub modseq: u64,
    /// None for `P1` files, which kept no flags.
    pub flags: Option<Flags>,
}

#[derive(Debug, Default)]
pub struct Loaded {
    /// 0 no file, 1 or 2 the format version.
    pub version: u8,
    pub torn: bool,
    pub uidvalidity: u32,
    pub uidnext: u32,
    pub modseq: u64,
    pub by_base: HashMap<Box<str>, u32>,
    pub recorded: HashMap<u32, Recorded>,
    pub expunged: Expunged,
    /// `M` lines read (to decide when to compact).
    pub log_lines: usize,
}

/// Remembered expunges: (modseq, UIDs) oldest first; everything at or below `floor` is
/// forgotten.
#[derive(Debug, Default, Clone)]
pub struct Expunged {
    pub floor: u64,
    pub groups: VecDeque<(u64, Vec<u32>)>,
    total: usize,
}

impl Expunged {
    pub fn push(&mut self, modseq: u64, mut uids: Vec<u32>) {
        if uids.is_empty() {
            return;
        }
        uids.sort_unstable();
        self.total += uids.len();
        self.groups.push_back((modseq, uids));
        while self.groups.len() > EXPUNGE_GROUPS || self.total > EXPUNGE_UIDS {
            let Some((m, u)) = self.groups.pop_front() else {
                break;
            };
            self.total -= u.len();
            self.floor = self.floor.max(m);
        }
    }

    /// UIDs expunged after `modseq` (sorted), or None when that is older than what is
    /// remembered.
    pub fn since(&self, modseq: u64) -> Option<Vec<u32>> {
        if modseq < self.floor {
            return None;
        }
        let mut out: Vec<u32> = self
            .groups
            .iter()
            .filter(|(m, _)| *m > modseq)
            .flat_map(|(_, u)| u.iter().copied())
            .collect();
        out.sort_unstable();
        out.dedup();
        Some(out)
    }
}

pub fn entry_line(uid: u32, modseq: u64, flags: Flags, base: &str) -> String {
    format!("{uid} {modseq} :{} {base}\n", flags.to_info())
}

pub fn change_line(uid: u32, modseq: u64, flags: Flags) -> String {
    format!("M {uid} {modseq} :{}\n", flags.to_info())
}

/// An expunge appended to the log (the same line a rewrite puts in the header).
pub fn expunge_line(modseq: u64, uids: &[u32]) -> String {
    format!("X {modseq} {}\n", uid_set(uids))
}

pub fn header(uidvalidity: u32, uidnext: u32, modseq: u64, ex: &Expunged) -> String {
    let mut s = format!("P2 {uidvalidity} {uidnext} {modseq} {}\n", ex.floor);
    for (m, uids) in &ex.groups {
        s.push_str(&format!("X {m} {}\n", uid_set(uids)));
    }
    s
}

/// Append records and fsync them (the caller holds the mailbox lock).
pub fn append(dir: &Path, text: &str) -> io::Result<()> {
    let mut f = OpenOptions::new().append(true).open(dir.join(UIDLIST))?;
    f.write_all(text.as_bytes())?;
    f.sync_data()
}

fn uid_set(nums: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < nums.len() {
        let start = nums[i];
        while i + 1 < nums.len() && Some(nums[i + 1]) == nums[i].checked_add(1) {
            i += 1;
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == nums[i] {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{}", nums[i]));
        }
        i += 1;
    }
    out
}

fn parse_set(s: &str) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let (a, b) = part.split_once(':').unwrap_or((part, part));
        let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
        if b < a || b - a > 10_000_000 {
            return None;
        }
        out.extend(a..=b);
    }
    Some(out)
}

fn info(s: &str) -> Option<Flags> {
    s.strip_prefix(':').map(Flags::from_info)
}

pub fn load(dir: &Path) -> io::Result<Loaded> {
    let mut l = Loaded {
        uidnext: 1,
        ..Loaded::default()
    };
    let text = match fs::read(dir.join(UIDLIST)) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(l),
        Err(e) => return Err(e),
    };
    let text = String::from_utf8_lossy(&text);
    // Only complete lines count: a crash during an append may leave a torn last line.
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    l.torn = complete.len() != text.len();
    let mut lines = complete.lines();
    if let Some(h) = lines.next() {
        let f: Vec<&str> = h.split(' ').collect();
        if f.len() >= 3 && (f[0] == "P1" || f[0] == "P2") {
            l.version = if f[0] == "P1" { 1 } else { 2 };
            l.uidvalidity = f[1].parse().unwrap_or(0);
            l.uidnext = f[2].parse().unwrap_or(1).max(1);
        }
        if l.version == 2 && f.len() >= 5 {
            l.modseq = f[3].parse().unwrap_or(0);
            l.expunged.floor = f[4].parse().unwrap_or(0);
        }
    }
    let mut last = 0u32;
    // UIDs of `X` lines: an expunge appended after the entries it removes.
    let mut gone: std::collections::HashSet<u32> = std::collections::HashSet::new();
    for line in lines {
        if l.version == 2 {
            if let Some(rest) = line.strip_prefix("M ") {
                let mut p = rest.splitn(3, ' ');
                if let (Some(u), Some(m), Some(i)) = (p.next(), p.next(), p.next())
                    && let (Ok(u), Ok(m), Some(fl)) = (u.parse::<u32>(), m.parse::<u64>(), info(i))
                {
                    l.modseq = l.modseq.max(m);
                    l.log_lines += 1;
                    if let Some(r) = l.recorded.get_mut(&u) {
                        r.modseq = r.modseq.max(m);
                        r.flags = Some(fl);
                    }
                }
                continue;
            }
            if let Some(rest) = line.strip_prefix("X ") {
                if let Some((m, set)) = rest.split_once(' ')
                    && let (Ok(m), Some(uids)) = (m.parse::<u64>(), parse_set(set))
                {
                    l.modseq = l.modseq.max(m);
                    // Appended ones count toward compaction; the header's do not.
                    if last > 0 {
                        l.log_lines += 1;
                    }
                    gone.extend(uids.iter().copied());
                    l.expunged.push(m, uids);
                }
                continue;
            }
            let mut p = line.splitn(4, ' ');
            if let (Some(u), Some(m), Some(i), Some(base)) =
                (p.next(), p.next(), p.next(), p.next())
                && let (Ok(u), Ok(m), Some(fl)) = (u.parse::<u32>(), m.parse::<u64>(), info(i))
                && u > last
                && !base.is_empty()
            {
                l.by_base.insert(base.into(), u);
                l.recorded.insert(
                    u,
                    Recorded {
                        modseq: m,
                        flags: Some(fl),
                    },
                );
                l.modseq = l.modseq.max(m);
                last = u;
            }
        } else if let Some((u, base)) = line.split_once(' ')
            && let Ok(u) = u.parse::<u32>()
            && u > last
            && !base.is_empty()
        {
            l.by_base.insert(base.into(), u);
            last = u;
        }
    }
    l.uidnext = l.uidnext.max(last + 1);
    if !gone.is_empty() {
        l.by_base.retain(|_, u| !gone.contains(u));
        l.recorded.retain(|u, _| !gone.contains(u));
    }
    Ok(l)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expunge_memory_is_bounded_and_raises_the_floor() {
        let mut e = Expunged::default();
        for i in 0..(EXPUNGE_GROUPS as u64 + 5) {
            e.push(i + 10, vec![i as u32 + 1]);
        }
        assert_eq!(e.groups.len(), EXPUNGE_GROUPS);
        assert_eq!(e.floor, 14);
        assert_eq!(e.since(13), None);
        assert_eq!(e.since(14).unwrap().len(), EXPUNGE_GROUPS);
        assert_eq!(e.since(EXPUNGE_GROUPS as u64 + 13).unwrap(), vec![1005]);
    }

    #[test]
    fn sets_round_trip() {
        assert_eq!(uid_set(&[1, 2, 3, 5, 7, 8]), "1:3,5,7:8");
        assert_eq!(parse_set("1:3,5,7:8").unwrap(), vec![1, 2, 3, 5, 7, 8]);
        assert_eq!(parse_set("3:1"), None);
        assert_eq!(parse_set("x"), None);
    }

    #[test]
    fn parses_records_and_ignores_garbage() {
        let d = tempfile::tempdir().unwrap();
        fs::write(
            d.path().join(UIDLIST),
            "P2 7 10 20 3\n1 4 :S a b\n2 5 : c\nM 2 21 :F\nM 9 30 :S\nX 22 3:4\nzz\n5 99 :T d",
        )
        .unwrap();
        let l = load(d.path()).unwrap();
        assert!(l.torn && l.version == 2);
        assert_eq!(l.by_base.get("a b"), Some(&1));
        assert_eq!(l.recorded[&2].modseq, 21);
        assert_eq!(l.recorded[&2].flags, Some(Flags::from_info("F")));
        // The M line of an unknown UID still counts: that modseq was handed out.
        assert_eq!(l.modseq, 30);
        assert_eq!(l.expunged.since(3).unwrap(), vec![3, 4]);
        assert!(!l.by_base.contains_key("d"));
    }
}
