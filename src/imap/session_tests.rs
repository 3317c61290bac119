//! Unit tests of the sans-IO session: bytes in, replies out, no sockets.

use std::sync::Arc;

use super::session::{Session, Step};
use crate::config::Config;
use crate::server::Services;

pub(super) fn services(plain: bool) -> (tempfile::TempDir, Arc<Services>) {
    crate::tls::install_crypto_provider();
    let d = tempfile::tempdir().unwrap();
    let text = format!(
        "domain = \"example.com\"\nhostname = \"mail.example.com\"\ndata_dir = \"{}\"\n[tls]\nsource = \"self-signed\"\n[imap]\nallow_plaintext_auth = {plain}\n[limits]\nimap_max_literal = 1000\n",
        d.path().display()
    );
    let cfg = Config::parse(&text, std::path::Path::new("test.toml")).unwrap();
    let svc = Services::build(cfg).unwrap();
    svc.accounts.add_user("u@example.com", "pw").unwrap();
    (d, svc)
}

/// Feed `input` and run steps until the session waits; returns the output.
pub(super) fn talk(s: &mut Session, input: &str) -> String {
    s.input(input.as_bytes());
    let mut out = Vec::new();
    while let Step::Continue = s.step(&mut out) {}
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn login_disabled_without_tls() {
    let (_d, svc) = services(false);
    let mut s = Session::new(svc, "127.0.0.1".parse().unwrap(), false);
    assert!(String::from_utf8_lossy(&s.greeting()).contains("LOGINDISABLED"));
    let r = talk(&mut s, "a LOGIN u@example.com pw\r\n");
    assert!(r.starts_with("a NO [PRIVACYREQUIRED]"), "{r}");
    let mut out = Vec::new();
    s.input(b"b STARTTLS\r\nc LOGIN injected pw\r\n");
    assert_eq!(s.step(&mut out), Step::StartTls);
    // Plaintext sent after STARTTLS is dropped.
    s.tls_started();
    let r = talk(&mut s, "d CAPABILITY\r\n");
    assert!(r.contains("AUTH=PLAIN") && !r.contains("injected"), "{r}");
    assert!(!r.contains("c NO") && !r.contains("c OK"), "{r}");
}

#[test]
fn full_session_flow() {
    let (_d, svc) = services(true);
    let mut s = Session::new(svc, "127.0.0.1".parse().unwrap(), false);
    let r = talk(&mut s, "a AUTHENTICATE PLAIN\r\n");
    assert_eq!(r, "+ \r\n");
    let r = talk(&mut s, "AHVAZXhhbXBsZS5jb20AcHc=\r\n");
    assert!(r.starts_with("a OK [CAPABILITY"), "{r}");
    // Synchronizing literal gets a continuation; LITERAL+ does not.
    let r = talk(&mut s, "b APPEND INBOX (\\Seen) {14}\r\n");
    assert_eq!(r, "+ Ready for literal data\r\n");
    let r = talk(&mut s, "Subject: x\r\n\r\n\r\n");
    assert!(r.contains("b OK [APPENDUID "), "{r}");
    let r = talk(&mut s, "c APPEND INBOX {14+}\r\nSubject: y\r\n\r\n\r\n");
    assert!(r.contains("c OK [APPENDUID ") && r.contains(" 2] "), "{r}");
    let r = talk(&mut s, "d SELECT inbox\r\n");
    assert!(
        r.contains("* 2 EXISTS") && r.contains("d OK [READ-WRITE]"),
        "{r}"
    );
    let r = talk(&mut s, "e UID FETCH 1:* (FLAGS RFC822.SIZE)\r\n");
    assert!(
        r.contains("* 1 FETCH (UID 1 FLAGS (\\Seen") && r.contains("RFC822.SIZE 14"),
        "{r}"
    );
    let r = talk(&mut s, "f STORE 2 +FLAGS.SILENT (\\Deleted)\r\n");
    assert_eq!(r, "f OK STORE completed\r\n");
    let r = talk(&mut s, "g SEARCH DELETED\r\n");
    assert!(r.starts_with("* SEARCH 2\r\n"), "{r}");
    let r = talk(&mut s, "h EXPUNGE\r\n");
    assert!(r.starts_with("* 2 EXPUNGE\r\n"), "{r}");
    let r = talk(&mut s, "i FETCH 5 FLAGS\r\n");
    assert!(r.starts_with("i BAD"), "{r}");
    // Literal above imap_max_literal: refused without continuation; the session goes on.
    let r = talk(&mut s, "j APPEND INBOX {5000}\r\n");
    assert!(r.starts_with("j NO [TOOBIG]"), "{r}");
    let r = talk(&mut s, "k NOOP\r\n");
    assert_eq!(r, "k OK NOOP completed\r\n");
    let r = talk(&mut s, "l CREATE ../../etc\r\n");
    assert!(r.starts_with("l NO"), "{r}");
    let r = talk(&mut s, "m IDLE\r\n");
    assert!(r.ends_with("+ idling\r\n") && s.is_idle(), "{r}");
    let r = talk(&mut s, "DONE\r\n");
    assert_eq!(r, "m OK IDLE terminated\r\n");
    let r = talk(&mut s, "m2 IDLE\r\nDONE\r\n");
    assert!(r.ends_with("m2 OK IDLE terminated\r\n"), "{r}");
    let r = talk(&mut s, "n LIST \"\" %\r\n");
    assert!(r.contains("\\Sent) \".\" \"Sent\""), "{r}");
    let r = talk(&mut s, "o LOGOUT\r\n");
    assert!(r.starts_with("* BYE"), "{r}");
}

#[test]
fn garbage_never_panics() {
    let (_d, svc) = services(true);
    let mut s = Session::new(svc, "127.0.0.1".parse().unwrap(), false);
    talk(&mut s, "a LOGIN u@example.com pw\r\nb SELECT INBOX\r\n");
    for junk in [
        "\r\n",
        "x\r\n",
        "x FETCH\r\n",
        "x FETCH 1:* (BODY[1.2.3.HEADER.FIELDS ()])\r\n",
        "x UID SEARCH RETURN (\r\n",
        "x LIST (\r\n",
        "x SEARCH CHARSET KOI8 ALL\r\n",
        "x STORE 1 +FLAGS (\\Recent)\r\n",
        "\0\0\0\r\n",
        "x APPEND INBOX {1}\r\n",
    ] {
        let r = talk(&mut s, junk);
        if junk.contains("KOI8") {
            assert!(r.starts_with("x NO [BADCHARSET"), "{r}");
        }
        assert!(
            !r.is_empty() || junk == "x APPEND INBOX {1}\r\n",
            "{junk:?}"
        );
    }
}

/// A cheap fuzz: random mutations of valid commands never panic or hang the session.
#[test]
fn random_input_never_panics() {
    use rand::{Rng, SeedableRng};
    let (_d, svc) = services(true);
    let mut s = Session::new(svc, "127.0.0.1".parse().unwrap(), false);
    talk(
        &mut s,
        "a LOGIN u@example.com pw\r\nb APPEND INBOX {14+}\r\nSubject: z\r\n\r\n\r\nc SELECT INBOX\r\n",
    );
    let seeds = [
        "x FETCH 1:* (UID FLAGS BODY.PEEK[1.MIME] BODY[HEADER.FIELDS (A B)]<0.5> BINARY[1] BODYSTRUCTURE ENVELOPE)\r\n",
        "x UID SEARCH RETURN (MIN MAX) OR FROM a NOT (SEEN LARGER 5) HEADER X y\r\n",
        "x LIST (SUBSCRIBED) \"\" (\"*\" \"%\") RETURN (CHILDREN STATUS (MESSAGES))\r\n",
        "x STORE 1 FLAGS.SILENT (\\Seen $x)\r\n",
        "x UID MOVE 1:* Trash\r\n",
        "x STATUS INBOX (MESSAGES UIDNEXT SIZE)\r\n",
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for i in 0..3000 {
        let mut b = seeds[i % seeds.len()].as_bytes().to_vec();
        for _ in 0..rng.random_range(1..4) {
            let p = rng.random_range(0..b.len());
            match rng.random_range(0..3) {
                0 => b[p] = rng.random(),
                1 => {
                    b.remove(p);
                }
                _ => {
                    let alphabet = b"(){}[]<>*%\"\\ \r\n0~+";
                    b.insert(p, alphabet[rng.random_range(0..alphabet.len())]);
                }
            }
        }
        if !b.ends_with(b"\r\n") {
            b.extend_from_slice(b"\r\n");
        }
        s.input(&b);
        let mut out = Vec::new();
        for _ in 0..1000 {
            if s.step(&mut out) != Step::Continue {
                break;
            }
        }
        if s.is_idle() {
            talk(&mut s, "DONE\r\n");
        }
    }
    // Still alive and in sync after the noise.
    let r = talk(&mut s, "\r\nz1 NOOP\r\n");
    assert!(r.contains("z1 OK") || r.contains("z1 BAD"), "{r}");
}

#[test]
fn list_shows_missing_parent_as_noselect() {
    let (d, svc) = services(true);
    let mut s = Session::new(svc, "127.0.0.1".parse().unwrap(), false);
    talk(&mut s, "a LOGIN u@example.com pw\r\n");
    // A folder created by another program without its parent.
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(d.path().join("mail/example.com/u/.x.y").join(sub)).unwrap();
    }
    let r = talk(&mut s, "b LIST \"\" *\r\n");
    assert!(
        r.contains("* LIST (\\Noselect \\HasChildren) \".\" \"x\"\r\n"),
        "{r}"
    );
    assert!(
        r.contains("* LIST (\\HasNoChildren) \".\" \"x.y\"\r\n"),
        "{r}"
    );
    assert!(
        r.starts_with("* LIST (\\HasNoChildren) \".\" \"INBOX\""),
        "{r}"
    );
    let r = talk(&mut s, "c SELECT x\r\n");
    assert!(r.starts_with("c NO"), "{r}");
}
