//! The POP3 session against an in-memory maildrop: states, replies, octet counts, UPDATE.

use std::io::{self, Read};
use std::sync::{Arc, Mutex};

use super::body::crlf_size;
use super::maildrop::{Entry, Maildrop};
use super::session::{LoginError, MAX_LINE, Session, State, Step};

#[derive(Default)]
struct Shared {
    msgs: Vec<(u32, Vec<u8>)>,
    expunged: Vec<u32>,
    seen: Vec<u32>,
    fail_expunge: bool,
}

#[derive(Clone, Default)]
struct Fake(Arc<Mutex<Shared>>);

impl Fake {
    fn with(msgs: &[&[u8]]) -> Fake {
        let f = Fake::default();
        f.0.lock().unwrap().msgs = msgs
            .iter()
            .enumerate()
            .map(|(i, m)| (10 + i as u32 * 5, m.to_vec()))
            .collect();
        f
    }
}

impl Maildrop for Fake {
    fn uidvalidity(&self) -> u32 {
        1234
    }
    fn list(&mut self) -> io::Result<Vec<Entry>> {
        Ok(self
            .0
            .lock()
            .unwrap()
            .msgs
            .iter()
            .map(|(uid, m)| Entry {
                uid: *uid,
                size: crlf_size(&m[..]).unwrap(),
            })
            .collect())
    }
    fn open(&mut self, uid: u32) -> io::Result<Box<dyn io::Read + Send>> {
        let s = self.0.lock().unwrap();
        let m = s.msgs.iter().find(|(u, _)| *u == uid);
        match m {
            Some((_, m)) => Ok(Box::new(io::Cursor::new(m.clone()))),
            None => Err(io::ErrorKind::NotFound.into()),
        }
    }
    fn expunge(&mut self, uids: &[u32]) -> io::Result<()> {
        let mut s = self.0.lock().unwrap();
        if s.fail_expunge {
            return Err(io::Error::other("disk full"));
        }
        s.msgs.retain(|(u, _)| !uids.contains(u));
        s.expunged.extend_from_slice(uids);
        Ok(())
    }
    fn mark_seen(&mut self, uids: &[u32]) -> io::Result<()> {
        self.0.lock().unwrap().seen.extend_from_slice(uids);
        Ok(())
    }
}

/// Feed `input`, run steps until the session wants input or ends; login attempts with
/// password "secret" succeed with `md`.
fn run(s: &mut Session, md: &Fake, input: &[u8]) -> (String, Step) {
    s.input(input);
    let mut out = Vec::new();
    loop {
        match s.step(&mut out) {
            Step::Continue | Step::Malformed => continue,
            Step::Login(c) => {
                let r = if c.password == "secret" {
                    Ok(Box::new(md.clone()) as Box<dyn Maildrop>)
                } else if c.password == "busy" {
                    Err(LoginError::Throttled)
                } else if c.password == "locked" {
                    Err(LoginError::InUse)
                } else {
                    Err(LoginError::Invalid)
                };
                s.login_done(r, &mut out);
            }
            st => return (String::from_utf8_lossy(&out).into_owned(), st),
        }
    }
}

fn logged_in(md: &Fake) -> Session {
    let mut s = Session::new(true, false);
    let (out, _) = run(&mut s, md, b"USER bob\r\nPASS secret\r\n");
    assert!(
        out.ends_with("+OK maildrop has 3 messages (57 octets)\r\n"),
        "{out}"
    );
    assert_eq!(s.state(), State::Transaction);
    s
}

const M1: &[u8] = b"Subject: a\r\n\r\nhello\r\n"; // 21
const M2: &[u8] = b"Subject: b\n\n.dot\nlast"; // 12 + 2 + 6 + 6 = 26
const M3: &[u8] = b"X: y\r\n\r\n\r\n"; // 10

fn three() -> Fake {
    Fake::with(&[M1, M2, M3])
}

#[test]
fn capa_hides_user_and_sasl_before_tls() {
    let md = three();
    let mut s = Session::new(false, false);
    let (out, _) = run(&mut s, &md, b"CAPA\r\n");
    assert!(out.contains("STLS\r\n"), "{out}");
    assert!(!out.contains("USER"), "{out}");
    assert!(!out.contains("SASL"), "{out}");
    assert!(out.ends_with(".\r\n"));
    let (out, _) = run(&mut s, &md, b"USER bob\r\n");
    assert!(out.starts_with("-ERR plaintext login refused"), "{out}");
    let (out, _) = run(&mut s, &md, b"AUTH PLAIN AGJvYgBzZWNyZXQ=\r\n");
    assert!(out.starts_with("-ERR plaintext login refused"), "{out}");
    assert_eq!(s.state(), State::Authorization);
    let (out, st) = run(&mut s, &md, b"STLS\r\nUSER injected\r\n");
    assert_eq!(out, "+OK begin TLS negotiation\r\n");
    assert_eq!(st, Step::StartTls);
    s.tls_started();
    let (out, _) = run(&mut s, &md, b"CAPA\r\n");
    assert!(out.contains("USER\r\nSASL PLAIN\r\n"), "{out}");
    assert!(!out.contains("STLS"), "{out}");
    // The injected USER was dropped: PASS has no user to go with.
    let (out, _) = run(&mut s, &md, b"PASS secret\r\n");
    assert!(out.starts_with("-ERR USER first"), "{out}");
}

#[test]
fn login_with_user_pass_and_auth_plain() {
    let md = three();
    let mut s = Session::new(true, false);
    let (out, _) = run(&mut s, &md, b"USER bob\r\nPASS wrong\r\n");
    assert_eq!(
        out,
        "+OK send PASS\r\n-ERR [AUTH] invalid user name or password\r\n"
    );
    let (out, _) = run(&mut s, &md, b"USER bob\r\nPASS busy\r\n");
    assert!(out.ends_with("-ERR [SYS/TEMP] too many failed logins, try again later\r\n"));
    let (out, _) = run(&mut s, &md, b"STAT\r\n");
    assert_eq!(out, "-ERR not logged in\r\n");
    // AUTH PLAIN with a continuation; "\0bob\0secret".
    let (out, _) = run(&mut s, &md, b"AUTH PLAIN\r\n");
    assert_eq!(out, "+ \r\n");
    let (out, _) = run(&mut s, &md, b"AGJvYgBzZWNyZXQ=\r\n");
    assert_eq!(out, "+OK maildrop has 3 messages (57 octets)\r\n");
    let (out, _) = run(&mut s, &md, b"USER x\r\n");
    assert_eq!(out, "-ERR already logged in\r\n");

    let mut s = Session::new(true, false);
    let (out, _) = run(&mut s, &md, b"AUTH PLAIN AGJvYgBzZWNyZXQ=\r\nSTAT\r\n");
    assert_eq!(
        out,
        "+OK maildrop has 3 messages (57 octets)\r\n+OK 3 57\r\n"
    );
    let mut s = Session::new(true, false);
    let (out, _) = run(
        &mut s,
        &md,
        b"AUTH PLAIN\r\n*\r\nAUTH PLAIN !!\r\nAUTH CRAM-MD5\r\n",
    );
    assert_eq!(
        out,
        "+ \r\n-ERR authentication cancelled\r\n-ERR [AUTH] malformed PLAIN response\r\n-ERR unsupported mechanism \"CRAM-MD5\"\r\n"
    );
    let (out, _) = run(&mut s, &md, b"AUTH\r\n");
    assert_eq!(out, "+OK mechanisms follow\r\nPLAIN\r\n.\r\n");
}

#[test]
fn stat_list_uidl_count_crlf_octets() {
    let md = three();
    let mut s = logged_in(&md);
    let (out, _) = run(&mut s, &md, b"STAT\r\nLIST\r\nLIST 2\r\nUIDL\r\nUIDL 3\r\n");
    assert_eq!(
        out,
        "+OK 3 57\r\n\
         +OK 3 messages (57 octets)\r\n1 21\r\n2 26\r\n3 10\r\n.\r\n\
         +OK 2 26\r\n\
         +OK 3 messages (57 octets)\r\n1 1234.10\r\n2 1234.15\r\n3 1234.20\r\n.\r\n\
         +OK 3 1234.20\r\n"
    );
}

#[test]
fn retr_sends_the_counted_octets_stuffed_and_top_cuts() {
    let md = three();
    let mut s = logged_in(&md);
    let (out, _) = run(&mut s, &md, b"RETR 2\r\n");
    assert_eq!(
        out,
        "+OK 26 octets\r\nSubject: b\r\n\r\n..dot\r\nlast\r\n.\r\n"
    );
    // 26 = the body as sent minus the one stuffing dot.
    let body = &out["+OK 26 octets\r\n".len()..out.len() - 3];
    assert_eq!(body.len() - 1, 26);
    let (out, _) = run(&mut s, &md, b"TOP 1 0\r\nTOP 2 1\r\nTOP 2 x\r\nTOP 2\r\n");
    assert_eq!(
        out,
        "+OK top of message follows\r\nSubject: a\r\n\r\n.\r\n\
         +OK top of message follows\r\nSubject: b\r\n\r\n..dot\r\n.\r\n\
         -ERR TOP line count must be a non-negative number\r\n\
         -ERR TOP takes a message number and a line count\r\n"
    );
}

#[test]
fn dele_rset_and_bad_numbers() {
    let md = three();
    let mut s = logged_in(&md);
    let (out, _) = run(
        &mut s,
        &md,
        b"DELE 1\r\nDELE 1\r\nRETR 1\r\nLIST 1\r\nSTAT\r\nLIST\r\nRETR 4\r\nRETR 0\r\nRETR -1\r\nDELE\r\n",
    );
    assert_eq!(
        out,
        "+OK message 1 deleted\r\n\
         -ERR message 1 is deleted\r\n\
         -ERR message 1 is deleted\r\n\
         -ERR message 1 is deleted\r\n\
         +OK 2 36\r\n\
         +OK 2 messages (36 octets)\r\n2 26\r\n3 10\r\n.\r\n\
         -ERR no such message 4\r\n\
         -ERR no such message 0\r\n\
         -ERR message number expected, got \"-1\"\r\n\
         -ERR DELE takes one message number\r\n"
    );
    let (out, _) = run(&mut s, &md, b"RSET\r\nSTAT\r\nNOOP\r\n");
    assert_eq!(
        out,
        "+OK maildrop has 3 messages (57 octets)\r\n+OK 3 57\r\n+OK \r\n"
    );
}

#[test]
fn quit_in_transaction_expunges_marked_and_marks_retrieved_seen() {
    let md = three();
    let mut s = logged_in(&md);
    let (out, st) = run(
        &mut s,
        &md,
        b"RETR 1\r\nRETR 3\r\nDELE 3\r\nDELE 2\r\nQUIT\r\nNOOP\r\n",
    );
    assert!(
        out.ends_with("+OK postern POP3 signing off (1 messages left)\r\n"),
        "{out}"
    );
    assert_eq!(st, Step::Close);
    let sh = md.0.lock().unwrap();
    assert_eq!(sh.expunged, vec![15, 20]);
    assert_eq!(sh.seen, vec![10]);
    assert_eq!(sh.msgs.len(), 1);
}

#[test]
fn no_quit_no_deletion_and_update_failure_is_reported() {
    let md = three();
    let mut s = logged_in(&md);
    run(&mut s, &md, b"DELE 1\r\n");
    drop(s);
    assert!(md.0.lock().unwrap().expunged.is_empty());
    let mut s = logged_in(&md);
    md.0.lock().unwrap().fail_expunge = true;
    let (out, _) = run(&mut s, &md, b"DELE 1\r\nQUIT\r\n");
    assert!(
        out.ends_with("-ERR [SYS/TEMP] some deleted messages not removed\r\n"),
        "{out}"
    );
    // QUIT in AUTHORIZATION just closes.
    let mut s = Session::new(true, false);
    let (out, st) = run(&mut s, &md, b"QUIT\r\n");
    assert_eq!(
        (out.as_str(), st),
        ("+OK postern POP3 signing off\r\n", Step::Close)
    );
}

#[test]
fn message_removed_meanwhile_is_an_error_not_a_crash() {
    let md = three();
    let mut s = logged_in(&md);
    md.0.lock().unwrap().msgs.remove(0);
    let (out, _) = run(&mut s, &md, b"RETR 1\r\nRETR 2\r\n");
    assert!(
        out.starts_with("-ERR message 1 was removed by another session\r\n+OK 26 octets"),
        "{out}"
    );
}

#[test]
fn hostile_input_gets_precise_errors() {
    let md = three();
    let mut s = Session::new(true, false);
    let long = vec![b'A'; MAX_LINE * 3];
    let (out, st) = run(&mut s, &md, &long);
    assert_eq!(
        (out.as_str(), st),
        ("-ERR line too long\r\n", Step::NeedInput)
    );
    // The rest of that line is skipped, then commands work again.
    let (out, _) = run(&mut s, &md, b"AAAA\r\nNOOP\r\n\xff\r\nFOO\r\n\r\n");
    assert_eq!(
        out,
        "-ERR not logged in\r\n-ERR command line is not UTF-8\r\n-ERR unknown command \"FOO\"\r\n-ERR empty command\r\n"
    );
    // Too many errors end the session.
    let (out, st) = run(&mut s, &md, &b"XX\r\n".repeat(30));
    assert!(
        out.ends_with("-ERR too many bad commands, closing\r\n"),
        "{out}"
    );
    assert_eq!(st, Step::Close);
}

#[test]
fn random_input_never_panics() {
    let md = three();
    let words: [&[u8]; 14] = [
        b"USER ",
        b"PASS ",
        b"secret",
        b"STAT",
        b"LIST ",
        b"RETR ",
        b"TOP ",
        b"DELE ",
        b"1",
        b"99",
        b" ",
        b"\r\n",
        b"\n",
        b"AUTH PLAIN ",
    ];
    let mut seed = 0x9e3779b97f4a7c15u64;
    for _ in 0..300 {
        let mut s = Session::new(true, false);
        let mut input = Vec::new();
        for _ in 0..60 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            input.extend_from_slice(words[(seed % words.len() as u64) as usize]);
        }
        run(&mut s, &md, &input);
    }
}

#[test]
fn store_maildrop_sizes_cache_and_expunge_by_uid() {
    use super::maildrop::StoreMaildrop;
    use crate::store::{Folder, Store};
    let d = tempfile::tempdir().unwrap();
    let store = Store::new(d.path());
    let user = "a@example.com";
    let locks = std::sync::Arc::new(super::in_use::InUse::default());
    store
        .deliver(user, Folder::Inbox, b"Subject: lf\n\nbody\n")
        .unwrap();
    store
        .deliver(user, Folder::Inbox, b"Subject: crlf\r\n\r\nx\r\n")
        .unwrap();
    let mut md = StoreMaildrop::open(&store, user, locks.take(user).unwrap()).unwrap();
    let list = md.list().unwrap();
    assert_eq!(list.iter().map(|e| e.size).collect::<Vec<_>>(), [21, 20]);
    let cache =
        std::fs::read_to_string(d.path().join("mail/example.com/a/postern-pop3-sizes")).unwrap();
    assert!(
        cache.starts_with(&format!("V {}\n", md.uidvalidity())),
        "{cache}"
    );
    // A second login reads the sizes from the cache (a wrong entry would show).
    assert_eq!(md.list().unwrap(), list);
    let mut body = String::new();
    md.open(list[0].uid)
        .unwrap()
        .read_to_string(&mut body)
        .unwrap();
    assert_eq!(body, "Subject: lf\n\nbody\n");
    md.expunge(&[list[0].uid, 999]).unwrap();
    md.mark_seen(&[list[1].uid]).unwrap();
    // The maildrop holds its session's lock until it is dropped (RFC 1939 §8).
    assert!(locks.take(user).is_none());
    drop(md);
    let mut md = StoreMaildrop::open(&store, user, locks.take(user).unwrap()).unwrap();
    let after = md.list().unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].uid, list[1].uid);
}

#[test]
fn maildrop_in_use_is_refused_with_in_use_code() {
    let md = Fake::default();
    let mut s = Session::new(true, false);
    let (out, _) = run(&mut s, &md, b"USER bob\r\nPASS locked\r\n");
    assert!(
        out.ends_with("-ERR [IN-USE] the maildrop is open in another session\r\n"),
        "{out}"
    );
    assert_eq!(s.state(), State::Authorization);
    // RFC 2449 §8.1.1 lists the code the server may send; CAPA says RESP-CODES.
    let (out, _) = run(&mut s, &md, b"CAPA\r\n");
    assert!(out.contains("RESP-CODES"), "{out}");
}
