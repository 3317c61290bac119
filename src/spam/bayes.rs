//! The token database of one user and the classifier over it (sans-IO: bytes in, bytes out).
//!
//! Scoring follows Gary Robinson's method as SpamBayes implements it (and mox's junk filter
//! in spirit):
//! 1. per token, `p = (spam/nspam) / (spam/nspam + ham/nham)`, then Robinson's smoothing
//!    towards the unknown-word probability `x = 0.5` with strength `s = 0.45`:
//!    `f = (s·x + n·p) / (s + n)`, `n` = messages the token was seen in;
//! 2. only tokens with `|f − 0.5| ≥ 0.1` count, at most the 150 strongest;
//! 3. Fisher's method combines them: `S = 1 − χ²Q(−2·Σ ln(1−f), 2k)` (spam evidence),
//!    `H = 1 − χ²Q(−2·Σ ln f, 2k)` (ham evidence), and the spam probability is
//!    `(1 + S − H) / 2`. Without clues it is 0.5 (unsure).
//!
//! The database counts, per token, the trained ham and spam messages that contained it, and
//! keeps a trained-as record per message (keyed by a hash of its bytes), so retraining a
//! message is a no-op and reclassifying it first subtracts the old training. It is bounded:
//! past `MAX_TOKENS` the rarest and least recently trained tokens go, past `MAX_TRAINED` the
//! oldest records.

use std::collections::{BTreeSet, HashMap};

/// Robinson's strength of the unknown-word prior, and that prior (SpamBayes defaults).
const S: f64 = 0.45;
const X: f64 = 0.5;
const MIN_STRENGTH: f64 = 0.1;
const MAX_CLUES: usize = 150;

pub const MAX_TOKENS: usize = 300_000;
pub const MAX_TRAINED: usize = 100_000;

const MAGIC: &str = "postern-junk 1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Ham,
    Spam,
}

impl Class {
    fn letter(self) -> char {
        match self {
            Class::Ham => 'H',
            Class::Spam => 'S',
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    ham: u32,
    spam: u32,
    /// The generation (training counter) when the token was last trained.
    last: u32,
}

#[derive(Debug, Clone, Default)]
pub struct TokenDb {
    pub nham: u32,
    pub nspam: u32,
    generation: u32,
    tokens: HashMap<String, Counts>,
    /// Message hash → (class, generation trained).
    trained: HashMap<String, (Class, u32)>,
}

/// What a training request changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trained {
    /// Counted for the first time.
    New,
    /// It was trained as the other class; that training was subtracted first.
    Reclassified,
    /// Already trained as this class: nothing changed.
    Already,
}

/// A classification: the spam probability and the strongest clues (token, probability).
#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    pub spam: f64,
    pub clues: Vec<(String, f64)>,
}

impl TokenDb {
    pub fn token_count(&self) -> usize {
        self.tokens.len()
    }

    pub fn trained_as(&self, hash: &str) -> Option<Class> {
        self.trained.get(hash).map(|(c, _)| *c)
    }

    /// Count `tokens` of the message `hash` as `class`.
    pub fn train(&mut self, hash: &str, tokens: &BTreeSet<String>, class: Class) -> Trained {
        let outcome = match self.trained.get(hash) {
            Some((c, _)) if *c == class => return Trained::Already,
            Some((old, _)) => {
                let old = *old;
                self.count(tokens, old, false);
                Trained::Reclassified
            }
            None => Trained::New,
        };
        self.generation = self.generation.wrapping_add(1);
        self.count(tokens, class, true);
        self.trained
            .insert(hash.to_string(), (class, self.generation));
        self.prune();
        outcome
    }

    /// Remove a message's training altogether (e.g. moved from Junk to Trash is not this:
    /// that keeps it; this is for tests and tools).
    pub fn forget(&mut self, hash: &str, tokens: &BTreeSet<String>) -> bool {
        match self.trained.remove(hash) {
            Some((c, _)) => {
                self.count(tokens, c, false);
                true
            }
            None => false,
        }
    }

    fn count(&mut self, tokens: &BTreeSet<String>, class: Class, add: bool) {
        let total = match class {
            Class::Ham => &mut self.nham,
            Class::Spam => &mut self.nspam,
        };
        *total = if add {
            total.saturating_add(1)
        } else {
            total.saturating_sub(1)
        };
        for t in tokens {
            if add {
                let c = self.tokens.entry(t.clone()).or_default();
                match class {
                    Class::Ham => c.ham = c.ham.saturating_add(1),
                    Class::Spam => c.spam = c.spam.saturating_add(1),
                }
                c.last = self.generation;
            } else if let Some(c) = self.tokens.get_mut(t) {
                match class {
                    Class::Ham => c.ham = c.ham.saturating_sub(1),
                    Class::Spam => c.spam = c.spam.saturating_sub(1),
                }
                if c.ham == 0 && c.spam == 0 {
                    self.tokens.remove(t);
                }
            }
        }
    }

    /// Keep the database bounded: drop the rarest, least recently trained tokens (to 90 %
    /// of the limit, so pruning is not done on every training), and the oldest records.
    fn prune(&mut self) {
        if self.tokens.len() > MAX_TOKENS {
            let keep = MAX_TOKENS * 9 / 10;
            let mut order: Vec<(u32, u32, String)> = self
                .tokens
                .iter()
                .map(|(t, c)| (c.ham.saturating_add(c.spam), c.last, t.clone()))
                .collect();
            order.sort();
            for (_, _, t) in order.into_iter().take(self.tokens.len() - keep) {
                self.tokens.remove(&t);
            }
        }
        if self.trained.len() > MAX_TRAINED {
            let keep = MAX_TRAINED * 9 / 10;
            let mut order: Vec<(u32, String)> = self
                .trained
                .iter()
                .map(|(h, (_, g))| (*g, h.clone()))
                .collect();
            order.sort();
            for (_, h) in order.into_iter().take(self.trained.len() - keep) {
                self.trained.remove(&h);
            }
        }
    }

    /// Robinson's smoothed probability that a message containing the token is spam.
    fn token_prob(&self, c: &Counts) -> f64 {
        let b = if self.nspam == 0 {
            0.0
        } else {
            c.spam as f64 / self.nspam as f64
        };
        let g = if self.nham == 0 {
            0.0
        } else {
            c.ham as f64 / self.nham as f64
        };
        if b + g == 0.0 {
            return X;
        }
        let p = b / (b + g);
        let n = (c.ham + c.spam) as f64;
        (S * X + n * p) / (S + n)
    }

    pub fn score(&self, tokens: &BTreeSet<String>) -> Score {
        let mut clues: Vec<(String, f64)> = tokens
            .iter()
            .filter_map(|t| self.tokens.get(t).map(|c| (t.clone(), self.token_prob(c))))
            .filter(|(_, f)| (f - 0.5).abs() >= MIN_STRENGTH)
            .collect();
        clues.sort_by(|a, b| {
            (b.1 - 0.5)
                .abs()
                .total_cmp(&(a.1 - 0.5).abs())
                .then_with(|| a.0.cmp(&b.0))
        });
        clues.truncate(MAX_CLUES);
        Score {
            spam: combine(clues.iter().map(|(_, f)| *f)),
            clues,
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = String::with_capacity(32 * (self.tokens.len() + self.trained.len()) + 64);
        out.push_str(MAGIC);
        out.push('\n');
        out.push_str(&format!(
            "counts {} {} {}\n",
            self.nham, self.nspam, self.generation
        ));
        let mut toks: Vec<_> = self.tokens.iter().collect();
        toks.sort_by(|a, b| a.0.cmp(b.0));
        for (t, c) in toks {
            out.push_str(&format!("t {t}\t{}\t{}\t{}\n", c.ham, c.spam, c.last));
        }
        let mut recs: Vec<_> = self.trained.iter().collect();
        recs.sort_by(|a, b| a.0.cmp(b.0));
        for (h, (c, g)) in recs {
            out.push_str(&format!("m {h}\t{}\t{g}\n", c.letter()));
        }
        out.into_bytes()
    }

    /// Parse a database file; malformed lines are skipped (a torn or edited file loses those
    /// entries, never the rest).
    pub fn from_bytes(data: &[u8]) -> Result<TokenDb, String> {
        let text = String::from_utf8_lossy(data);
        let mut lines = text.lines();
        if lines.next() != Some(MAGIC) {
            return Err("not a postern junk-filter database".into());
        }
        let mut db = TokenDb::default();
        for line in lines {
            if let Some(rest) = line.strip_prefix("counts ") {
                let n: Vec<u32> = rest.split(' ').filter_map(|x| x.parse().ok()).collect();
                if let [h, s, g] = n[..] {
                    (db.nham, db.nspam, db.generation) = (h, s, g);
                }
            } else if let Some(rest) = line.strip_prefix("t ") {
                let f: Vec<&str> = rest.split('\t').collect();
                if let [t, h, s, l] = f[..]
                    && let (Ok(ham), Ok(spam), Ok(last)) = (h.parse(), s.parse(), l.parse())
                    && !t.is_empty()
                {
                    db.tokens.insert(t.to_string(), Counts { ham, spam, last });
                }
            } else if let Some(rest) = line.strip_prefix("m ") {
                let f: Vec<&str> = rest.split('\t').collect();
                if let [h, c, g] = f[..]
                    && let Ok(g) = g.parse()
                {
                    let class = match c {
                        "H" => Class::Ham,
                        "S" => Class::Spam,
                        _ => continue,
                    };
                    db.trained.insert(h.to_string(), (class, g));
                }
            }
        }
        Ok(db)
    }
}

/// Fisher's combination of token probabilities as SpamBayes does it (see the module doc).
fn combine(probs: impl Iterator<Item = f64>) -> f64 {
    let (mut ln_spam, mut ln_ham, mut n) = (0.0f64, 0.0f64, 0usize);
    for f in probs {
        // Clamp so a token seen only in one class cannot make a logarithm infinite.
        let f = f.clamp(1e-6, 1.0 - 1e-6);
        ln_spam += (1.0 - f).ln();
        ln_ham += f.ln();
        n += 1;
    }
    if n == 0 {
        return 0.5;
    }
    let s = 1.0 - chi2q(-2.0 * ln_spam, 2 * n);
    let h = 1.0 - chi2q(-2.0 * ln_ham, 2 * n);
    (1.0 + s - h) / 2.0
}

/// The survival function of the χ² distribution for an even number of degrees of freedom
/// `v`: P(χ² ≥ x2) = e^(−m) Σ_{i<v/2} m^i / i!, m = x2/2.
fn chi2q(x2: f64, v: usize) -> f64 {
    let m = x2 / 2.0;
    let mut term = (-m).exp();
    let mut sum = term;
    for i in 1..v / 2 {
        term *= m / i as f64;
        sum += term;
    }
    sum.min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(words: &[&str]) -> BTreeSet<String> {
        words.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn chi2q_matches_known_values() {
        // P(χ²(2) ≥ 2) = e^-1; P(χ²(4) ≥ 4) = 3·e^-2.
        assert!((chi2q(2.0, 2) - (-1.0f64).exp()).abs() < 1e-12);
        assert!((chi2q(4.0, 4) - 3.0 * (-2.0f64).exp()).abs() < 1e-12);
        assert_eq!(chi2q(0.0, 10), 1.0);
        assert_eq!(combine(std::iter::empty()), 0.5);
        assert!(combine([0.99, 0.98].into_iter()) > 0.9);
        assert!(combine([0.01, 0.02].into_iter()) < 0.1);
    }

    #[test]
    fn training_is_idempotent_and_reclassifies() {
        let mut db = TokenDb::default();
        let spam = set(&["viagra", "cheap", "meeting"]);
        assert_eq!(db.train("h1", &spam, Class::Spam), Trained::New);
        assert_eq!(db.train("h1", &spam, Class::Spam), Trained::Already);
        assert_eq!((db.nham, db.nspam), (0, 1));
        assert_eq!(db.train("h1", &spam, Class::Ham), Trained::Reclassified);
        assert_eq!((db.nham, db.nspam), (1, 0));
        assert_eq!(
            db.tokens["viagra"],
            Counts {
                ham: 1,
                spam: 0,
                last: 2
            }
        );
        assert_eq!(db.trained_as("h1"), Some(Class::Ham));
        assert!(db.forget("h1", &spam));
        assert_eq!((db.nham, db.nspam, db.token_count()), (0, 0, 0));
    }

    #[test]
    fn scores_follow_the_training() {
        let mut db = TokenDb::default();
        for i in 0..20 {
            db.train(
                &format!("s{i}"),
                &set(&["viagra", "cheap", "winner"]),
                Class::Spam,
            );
            db.train(
                &format!("h{i}"),
                &set(&["meeting", "agenda", "lunch"]),
                Class::Ham,
            );
        }
        let s = db.score(&set(&["cheap", "viagra", "unknown"]));
        assert!(s.spam > 0.99, "{s:?}");
        assert_eq!(s.clues.len(), 2);
        let h = db.score(&set(&["agenda", "lunch"]));
        assert!(h.spam < 0.01, "{h:?}");
        assert_eq!(db.score(&set(&["nothing", "known"])).spam, 0.5);
    }

    #[test]
    fn round_trips_and_survives_garbage() {
        let mut db = TokenDb::default();
        db.train("abc", &set(&["x1", "s:y"]), Class::Spam);
        db.train("def", &set(&["x1", "z"]), Class::Ham);
        let bytes = db.to_bytes();
        let back = TokenDb::from_bytes(&bytes).unwrap();
        assert_eq!(back.to_bytes(), bytes);
        let mut torn = bytes.clone();
        torn.truncate(bytes.len() - 5);
        torn.extend_from_slice(b"\nt bad line\nm x\tQ\t1\n\xff\xfe");
        let t = TokenDb::from_bytes(&torn).unwrap();
        assert_eq!(t.nspam, 1);
        assert!(TokenDb::from_bytes(b"something else").is_err());
    }

    #[test]
    fn bounded() {
        let mut db = TokenDb::default();
        // Many one-off tokens, then a few frequent ones: the frequent ones survive pruning.
        let frequent = set(&["alpha", "beta"]);
        for i in 0..5 {
            db.train(&format!("f{i}"), &frequent, Class::Ham);
        }
        let mut i = 0;
        while db.token_count() <= MAX_TOKENS - 10_000 {
            let many: BTreeSet<String> = (0..10_000).map(|j| format!("t{i}_{j}")).collect();
            db.train(&format!("m{i}"), &many, Class::Spam);
            i += 1;
        }
        let many: BTreeSet<String> = (0..20_000).map(|j| format!("last_{j}")).collect();
        db.train("last", &many, Class::Spam);
        assert!(db.token_count() <= MAX_TOKENS);
        assert!(db.tokens.contains_key("alpha") && db.tokens.contains_key("beta"));
    }
}
