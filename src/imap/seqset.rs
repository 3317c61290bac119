//! Sequence sets (RFC 3501 §9 `sequence-set`, RFC 9051 §9): reading the client's sets as
//! ranges, and writing sorted numbers back as "1:3,7" (COPYUID, VANISHED, ESEARCH ALL,
//! MODIFIED, `$`). The one place for this arithmetic; sequence numbers vs UIDs is `view.rs`.

use imap_codec::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};

/// The value of one end of a range, `*` being `max` (the largest number in use).
fn value(s: &SeqOrUid, max: u32) -> u32 {
    match s {
        SeqOrUid::Value(v) => v.get(),
        SeqOrUid::Asterisk => max,
    }
}

/// Each element of the set as an inclusive (low, high) pair, in the client's order.
pub fn bounds(set: &SequenceSet, max: u32) -> impl Iterator<Item = (u32, u32)> + '_ {
    set.0.as_ref().iter().map(move |s| match s {
        Sequence::Single(a) => (value(a, max), value(a, max)),
        Sequence::Range(a, b) => {
            let (a, b) = (value(a, max), value(b, max));
            (a.min(b), a.max(b))
        }
    })
}

/// Is `n` in the set?
pub fn contains(set: &SequenceSet, n: u32, max: u32) -> bool {
    bounds(set, max).any(|(lo, hi)| lo <= n && n <= hi)
}

/// The set as sorted, merged ranges clipped to 1..=max.
pub fn clipped(set: &SequenceSet, max: u32) -> Vec<(u32, u32)> {
    let mut r: Vec<(u32, u32)> = bounds(set, max)
        .filter(|(lo, _)| *lo <= max)
        .map(|(lo, hi)| (lo, hi.min(max)))
        .collect();
    r.sort_unstable();
    let mut merged: Vec<(u32, u32)> = Vec::new();
    for (lo, hi) in r {
        match merged.last_mut() {
            Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
            _ => merged.push((lo, hi)),
        }
    }
    merged
}

/// The parts of lo..=hi not in `present` (sorted), as ranges: bounded by present's size.
pub fn gaps(lo: u32, hi: u32, present: &[u32]) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    let mut next = lo;
    let start = present.partition_point(|u| *u < lo);
    for &u in &present[start..] {
        if u > hi {
            break;
        }
        if u > next {
            out.push((next, u - 1));
        }
        match u.checked_add(1) {
            Some(n) => next = n,
            None => return out,
        }
    }
    if next <= hi {
        out.push((next, hi));
    }
    out
}

/// Ascending numbers as runs of consecutive values.
pub fn ranges(nums: impl IntoIterator<Item = u32>) -> Vec<(u32, u32)> {
    let mut out: Vec<(u32, u32)> = Vec::new();
    for u in nums {
        match out.last_mut() {
            Some(last) if Some(u) == last.1.checked_add(1) => last.1 = u,
            _ => out.push((u, u)),
        }
    }
    out
}

/// Ranges in wire form: "1:3,5".
pub fn render_ranges(r: &[(u32, u32)]) -> String {
    let mut out = String::new();
    for (a, b) in r {
        if !out.is_empty() {
            out.push(',');
        }
        if a == b {
            out.push_str(&a.to_string());
        } else {
            out.push_str(&format!("{a}:{b}"));
        }
    }
    out
}

/// Ascending numbers in wire form: [1,2,3,7] is "1:3,7".
pub fn render(nums: &[u32]) -> String {
    render_ranges(&ranges(nums.iter().copied()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_compresses_runs() {
        assert_eq!(render(&[1, 2, 3, 5, 7, 8]), "1:3,5,7:8");
        assert_eq!(
            render(&[u32::MAX - 1, u32::MAX]),
            format!("{}:{}", u32::MAX - 1, u32::MAX)
        );
        assert_eq!(render(&[u32::MAX]), u32::MAX.to_string());
        assert_eq!(render(&[]), "");
    }

    #[test]
    fn gaps_clip_and_contains() {
        assert_eq!(gaps(1, 10, &[2, 3, 7]), vec![(1, 1), (4, 6), (8, 10)]);
        assert_eq!(gaps(4, 4, &[4]), vec![]);
        let set = SequenceSet::try_from("5:*,1,2").unwrap();
        assert_eq!(clipped(&set, 7), vec![(1, 2), (5, 7)]);
        assert!(contains(&set, 6, 7) && !contains(&set, 3, 7));
        let rev = SequenceSet::try_from("9:4").unwrap();
        assert!(contains(&rev, 5, 10));
    }
}
