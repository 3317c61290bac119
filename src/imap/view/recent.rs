//! The UIDs that are \Recent for one session (RFC 3501 §2.3.2), kept as runs of consecutive
//! messages of the view rather than one entry each: a session that first selects a large
//! mailbox is given every message as \Recent, and a set of 100,000 UIDs would cost a
//! megabyte per session where one run costs eight bytes.

/// Runs `(lo, hi)` of UIDs, ascending and disjoint. Every UID of the view inside a run is
/// recent: a run is only extended with the UID that follows its last one in the view, so a
/// UID inside a run that is not recent can only be one the view never held (nor will: UIDs
/// only grow).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecentSet {
    runs: Vec<(u32, u32)>,
    len: usize,
}

impl RecentSet {
    /// `uid` was just added to the view after `prev` (the view's last UID before it, if any)
    /// and is recent. UIDs come in ascending order.
    pub fn push(&mut self, prev: Option<u32>, uid: u32) {
        match self.runs.last_mut() {
            Some(run) if prev == Some(run.1) && uid > run.1 => run.1 = uid,
            Some(run) if uid <= run.1 => return,
            _ => self.runs.push((uid, uid)),
        }
        self.len += 1;
    }

    pub fn contains(&self, uid: &u32) -> bool {
        let i = self.runs.partition_point(|r| r.1 < *uid);
        self.runs.get(i).is_some_and(|r| r.0 <= *uid)
    }

    /// `uid` left the view (expunged).
    pub fn remove(&mut self, uid: &u32) {
        let uid = *uid;
        let i = self.runs.partition_point(|r| r.1 < uid);
        let Some(&(lo, hi)) = self.runs.get(i) else {
            return;
        };
        if lo > uid {
            return;
        }
        self.len -= 1;
        match (lo == uid, hi == uid) {
            (true, true) => {
                self.runs.remove(i);
            }
            (true, false) => self.runs[i].0 = uid + 1,
            (false, true) => self.runs[i].1 = uid - 1,
            (false, false) => {
                self.runs[i].1 = uid - 1;
                self.runs.insert(i + 1, (uid + 1, hi));
            }
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn clear(&mut self) {
        *self = RecentSet::default();
    }
}

#[cfg(test)]
mod tests {
    use super::RecentSet;
    use std::collections::BTreeSet;

    #[test]
    fn runs_follow_the_view() {
        // View 1 2 5 7 9 10 where 1 is not recent (claimed elsewhere) and the rest are.
        let mut r = RecentSet::default();
        let view = [1u32, 2, 5, 7, 9, 10];
        for (i, u) in view.iter().enumerate().skip(1) {
            r.push(Some(view[i - 1]), *u);
        }
        assert_eq!(r.len(), 5);
        assert_eq!(r.runs, vec![(2, 10)]);
        assert!(!r.contains(&1) && r.contains(&2) && r.contains(&10) && !r.contains(&11));
        r.remove(&7);
        r.remove(&2);
        r.remove(&10);
        r.remove(&1); // not recent: nothing changes
        assert_eq!(r.len(), 2);
        assert!(r.contains(&5) && r.contains(&9) && !r.contains(&7) && !r.contains(&2));
        // A new message after a non-recent one starts a run of its own.
        let mut s = RecentSet::default();
        s.push(None, 3);
        s.push(Some(4), 6);
        assert_eq!(s.runs, vec![(3, 3), (6, 6)]);
        assert!(!s.contains(&4) && !s.contains(&5));
    }

    #[test]
    fn agrees_with_a_plain_set() {
        // Pseudo-random pushes and removals against a BTreeSet (deterministic LCG).
        let mut x: u64 = 7;
        let mut next = || {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) as u32
        };
        let (mut r, mut model, mut view) = (RecentSet::default(), BTreeSet::new(), Vec::new());
        let mut uid = 0u32;
        for _ in 0..5000 {
            match next() % 4 {
                0 | 1 => {
                    uid += 1 + next() % 3;
                    let prev = view.last().copied();
                    view.push(uid);
                    if next() % 5 != 0 {
                        r.push(prev, uid);
                        model.insert(uid);
                    }
                }
                _ if !view.is_empty() => {
                    let u = view.remove(next() as usize % view.len());
                    r.remove(&u);
                    model.remove(&u);
                }
                _ => {}
            }
            assert_eq!(r.len(), model.len());
            for u in &view {
                assert_eq!(r.contains(u), model.contains(u), "uid {u}");
            }
        }
    }
}
