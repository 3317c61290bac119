//! A randomized multi-session model test (issue 14): several sessions of one account run
//! mixed SELECT/FETCH/STORE/EXPUNGE/APPEND/COPY/MOVE/NOOP on the same mailboxes, one command
//! at a time in a seeded order. Each session keeps a model of what its client may know —
//! sequence number → UID, announced keywords, UIDs it saw expunged — and every response is
//! checked against it: EXISTS never shrinks the mailbox, EXPUNGE and FETCH numbers are in
//! range, a sequence number's UID never changes, UIDs ascend and never come back, a keyword
//! is announced with FLAGS before a FETCH shows it, and no command gets BAD or an unexplained
//! NO. `cargo test model_long -- --ignored` runs it much longer.

use std::collections::{BTreeSet, HashSet};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::super::Session;
use super::{services, talk};

const BOXES: [&str; 3] = ["INBOX", "Other", "Third"];

#[derive(Default)]
struct Client {
    /// Sequence number n is `seqs[n-1]`; 0 = UID not yet learnt.
    seqs: Vec<u32>,
    mailbox: Option<usize>,
    keywords: BTreeSet<String>,
    /// UIDs of the selected mailbox this client saw expunged.
    gone: HashSet<u32>,
}

impl Client {
    fn check(&mut self, cmd: &str, reply: &str) {
        let ctx = || format!("after {cmd:?}:\n{reply}");
        for line in reply.split("\r\n").filter(|l| !l.is_empty()) {
            let w: Vec<&str> = line.split(' ').collect();
            if w[0] != "*" {
                // The tagged reply.
                let ok = w[1] == "OK" || (w[1] == "NO" && w.get(2) == Some(&"[EXPUNGEISSUED]"));
                assert!(ok, "unexpected tagged reply {line:?} {}", ctx());
                continue;
            }
            if w[1] == "FLAGS" {
                self.keywords = line[line.find('(').unwrap() + 1..line.rfind(')').unwrap()]
                    .split(' ')
                    .filter(|f| !f.starts_with('\\') && !f.is_empty())
                    .map(str::to_string)
                    .collect();
                continue;
            }
            let Ok(n) = w[1].parse::<usize>() else {
                continue;
            };
            match w.get(2).copied() {
                Some("EXISTS") => {
                    assert!(n >= self.seqs.len(), "EXISTS shrank {}", ctx());
                    self.seqs.resize(n, 0);
                }
                Some("EXPUNGE") => {
                    assert!(
                        n >= 1 && n <= self.seqs.len(),
                        "EXPUNGE {n} out of range {}",
                        ctx()
                    );
                    let u = self.seqs.remove(n - 1);
                    if u != 0 {
                        self.gone.insert(u);
                    }
                }
                Some("FETCH") => {
                    assert!(
                        n >= 1 && n <= self.seqs.len(),
                        "FETCH {n} out of range {}",
                        ctx()
                    );
                    if let Some(i) = w.iter().position(|x| *x == "(UID" || *x == "UID") {
                        let u: u32 = w[i + 1].trim_end_matches(')').parse().unwrap();
                        assert!(
                            !self.gone.contains(&u),
                            "expunged UID {u} came back {}",
                            ctx()
                        );
                        let known = self.seqs[n - 1];
                        assert!(
                            known == 0 || known == u,
                            "seq {n} was UID {known}, now {u} {}",
                            ctx()
                        );
                        self.seqs[n - 1] = u;
                        let below = self.seqs[..n - 1].iter().rev().find(|x| **x != 0);
                        let above = self.seqs[n..].iter().find(|x| **x != 0);
                        assert!(
                            below.is_none_or(|b| *b < u) && above.is_none_or(|a| *a > u),
                            "UIDs out of order {}",
                            ctx()
                        );
                    }
                    if let Some(f) = line.find("FLAGS (") {
                        let list = &line[f + 7..f + 7 + line[f + 7..].find(')').unwrap()];
                        for k in list
                            .split(' ')
                            .filter(|k| !k.is_empty() && !k.starts_with('\\'))
                        {
                            assert!(
                                self.keywords.contains(k),
                                "keyword {k} not announced {}",
                                ctx()
                            );
                        }
                    }
                }
                _ => {}
            }
        }
    }

    fn select(&mut self, m: usize) {
        *self = Client {
            mailbox: Some(m),
            ..Default::default()
        };
    }
}

fn random_set(rng: &mut StdRng, n: usize) -> String {
    let a = rng.random_range(1..=n);
    let b = rng.random_range(a..=n);
    if a == b {
        a.to_string()
    } else {
        format!("{a}:{b}")
    }
}

fn run(seed: u64, steps: usize, sessions: usize) {
    let (_d, svc) = services(true);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut ss: Vec<(Session, Client)> = (0..sessions)
        .map(|_| {
            let mut s = Session::new(svc.clone(), "127.0.0.1".parse().unwrap(), false);
            assert!(talk(&mut s, "l LOGIN u@example.com pw\r\n").contains("l OK"));
            (s, Client::default())
        })
        .collect();
    for b in &BOXES[1..] {
        talk(&mut ss[0].0, &format!("c CREATE {b}\r\n"));
    }
    for step in 0..steps {
        let i = rng.random_range(0..ss.len());
        let (s, c) = &mut ss[i];
        let n = c.seqs.len();
        let kw = format!("$k{}", rng.random_range(0..6));
        let flag = ["\\Seen", "\\Flagged", "\\Deleted", kw.as_str()][rng.random_range(0..4)];
        let other = BOXES[rng.random_range(0..BOXES.len())];
        let cmd = match (c.mailbox, rng.random_range(0..12)) {
            (None, _) | (_, 0) => {
                let m = rng.random_range(0..BOXES.len());
                let r = talk(s, &format!("t SELECT {}\r\n", BOXES[m]));
                assert!(r.contains("t OK"), "{r}");
                c.select(m);
                c.check("SELECT", &r);
                continue;
            }
            (_, 1 | 2) => {
                let body = format!("Subject: {step}\r\n\r\nbody {step}\r\n");
                let fl = if rng.random_bool(0.5) {
                    format!("({flag}) ")
                } else {
                    String::new()
                };
                format!("t APPEND {other} {fl}{{{}+}}\r\n{body}\r\n", body.len())
            }
            (_, 3) if n > 0 => format!("t FETCH {} (UID FLAGS)\r\n", random_set(&mut rng, n)),
            (_, 4) => "t UID FETCH 1:* (FLAGS)\r\n".to_string(),
            (_, 5) if n > 0 => {
                let op = if rng.random_bool(0.7) { "+" } else { "-" };
                format!("t STORE {} {op}FLAGS ({flag})\r\n", random_set(&mut rng, n))
            }
            (_, 6) => format!("t UID STORE 1:* +FLAGS.SILENT ({flag})\r\n"),
            (_, 7) => "t EXPUNGE\r\n".to_string(),
            (_, 8) if n > 0 => format!("t COPY {} {other}\r\n", random_set(&mut rng, n)),
            (_, 9) if n > 0 => format!("t MOVE {} {other}\r\n", random_set(&mut rng, n)),
            (_, 10) if n > 0 => format!("t SEARCH {}\r\n", random_set(&mut rng, n)),
            _ => "t NOOP\r\n".to_string(),
        };
        let r = talk(s, &cmd);
        c.check(&cmd, &r);
        if cmd.starts_with("t SEARCH") {
            let hits = r.lines().find(|l| l.starts_with("* SEARCH")).expect(&r);
            for h in hits.split(' ').skip(2) {
                let h: usize = h.parse().unwrap();
                assert!(
                    h >= 1 && h <= c.seqs.len(),
                    "SEARCH hit {h} out of range: {r}"
                );
            }
        }
    }
    // Finally every session syncs; the views must agree with the store.
    for (s, c) in &mut ss {
        let r = talk(s, "y NOOP\r\n");
        c.check("final", &r);
        let r = talk(s, "z UID FETCH 1:* (UID)\r\n");
        c.check("final", &r);
        assert!(
            !c.seqs.contains(&0),
            "an unknown UID after UID FETCH 1:*: {r}"
        );
        assert!(c.seqs.windows(2).all(|w| w[0] < w[1]));
        let m = BOXES[c.mailbox.expect("selected")];
        let st = talk(s, &format!("x STATUS {m} (MESSAGES)\r\n"));
        assert!(
            st.contains(&format!("(MESSAGES {})", c.seqs.len())),
            "{st} vs {:?}",
            c.seqs
        );
    }
}

#[test]
fn model_sessions_agree_with_their_clients() {
    for seed in 0..3 {
        run(seed, 150, 4);
    }
}

#[test]
#[ignore = "long: cargo test --lib model_long -- --ignored"]
fn model_long() {
    for seed in 100..108 {
        run(seed, 1500, 6);
    }
}
