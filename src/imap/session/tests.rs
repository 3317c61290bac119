//! Unit tests of the sans-IO session: bytes in, replies out, no sockets.

use std::sync::Arc;

use super::{Session, Step};
use crate::config::Config;
use crate::services::Services;

pub(crate) fn services(plain: bool) -> (tempfile::TempDir, Arc<Services>) {
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
pub(crate) fn talk(s: &mut Session, input: &str) -> String {
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

/// A cheap fuzz shared by the session tests: feed `rounds` random mutations of the `seeds`
/// (bytes changed, dropped, or taken from `alphabet` inserted), stepping the session until it
/// waits after each, and leaving IDLE when a mutation entered it.
pub(crate) fn feed_mutations(
    s: &mut Session,
    seeds: &[&str],
    seed: u64,
    rounds: usize,
    alphabet: &[u8],
) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    for i in 0..rounds {
        let mut b = seeds[i % seeds.len()].as_bytes().to_vec();
        for _ in 0..rng.random_range(1..4) {
            let p = rng.random_range(0..b.len());
            match rng.random_range(0..3) {
                0 => b[p] = rng.random(),
                1 => {
                    b.remove(p);
                }
                _ => b.insert(p, alphabet[rng.random_range(0..alphabet.len())]),
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
            talk(s, "DONE\r\n");
        }
    }
}

/// A cheap fuzz: random mutations of valid commands never panic or hang the session.
#[test]
fn random_input_never_panics() {
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
        "x UID SEARCH RETURN (SAVE MIN) OR OLDER 5 NOT YOUNGER 7 $\r\n",
        "x UID FETCH $ (FLAGS)\r\n",
        "x APPEND INBOX (\\Seen) UTF8 (~{14+}\r\nSubject: u\r\n\r\n\r\n)\r\n",
        "x ENABLE IMAP4rev2 UTF8=ACCEPT\r\n",
        "x RENAME \"Entwürfe\" \"R&D\"\r\n",
    ];
    feed_mutations(&mut s, &seeds, 7, 3000, b"(){}[]<>*%\"\\ \r\n0~+");
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

fn logged_in(svc: &Arc<Services>) -> Session {
    let mut s = Session::new(svc.clone(), "127.0.0.1".parse().unwrap(), false);
    let r = talk(&mut s, "a LOGIN u@example.com pw\r\n");
    assert!(r.starts_with("a OK"), "{r}");
    s
}

#[test]
fn rev2_enable_changes_responses() {
    let (_d, svc) = services(true);
    let mut s = logged_in(&svc);
    let r = talk(&mut s, "b CAPABILITY\r\n");
    assert!(
        r.contains(" IMAP4rev1 IMAP4rev2 ") && r.contains(" UTF8=ACCEPT") && r.contains(" WITHIN"),
        "{r}"
    );
    talk(
        &mut s,
        "c APPEND INBOX {14+}\r\nSubject: x\r\n\r\n\r\nc APPEND INBOX (\\Deleted) {14+}\r\nSubject: y\r\n\r\n\r\n",
    );
    // Unknown and repeated capabilities are not listed (RFC 5161 §3.1).
    let r = talk(&mut s, "d ENABLE X-NONE IMAP4rev2\r\n");
    assert_eq!(r, "* ENABLED IMAP4rev2\r\nd OK ENABLE completed\r\n");
    let r = talk(&mut s, "e ENABLE IMAP4REV2\r\n");
    assert_eq!(r, "* ENABLED\r\ne OK ENABLE completed\r\n");
    let r = talk(&mut s, "f SELECT INBOX\r\n");
    assert!(
        !r.contains("RECENT") && !r.contains("UNSEEN") && !r.contains("CLOSED"),
        "{r}"
    );
    assert!(
        r.contains("* 2 EXISTS\r\n* LIST (\\HasNoChildren) \".\" \"INBOX\"\r\n"),
        "{r}"
    );
    let r = talk(&mut s, "g FETCH 1:* FLAGS\r\n");
    assert!(!r.contains("\\Recent") && r.contains("g OK"), "{r}");
    let r = talk(&mut s, "h SEARCH ALL\r\n");
    assert!(r.starts_with("* ESEARCH (TAG \"h\") ALL 1:2\r\n"), "{r}");
    let r = talk(&mut s, "i UID SEARCH DELETED\r\n");
    assert!(r.starts_with("* ESEARCH (TAG \"i\") UID ALL 2\r\n"), "{r}");
    let r = talk(&mut s, "j SEARCH SUBJECT nothing-like-this\r\n");
    assert!(r.starts_with("* ESEARCH (TAG \"j\")\r\nj OK"), "{r}");
    let r = talk(&mut s, "k SEARCH RETURN (COUNT) ALL\r\n");
    assert!(r.starts_with("* ESEARCH (TAG \"k\") COUNT 2\r\n"), "{r}");
    let r = talk(&mut s, "l STATUS INBOX (MESSAGES DELETED SIZE)\r\n");
    assert!(
        r.starts_with("* STATUS \"INBOX\" (MESSAGES 2 DELETED 1 SIZE 28)\r\n"),
        "{r}"
    );
    // BINARY and BINARY.SIZE (RFC 9051 §6.4.5, from RFC 3516) on the whole message.
    let r = talk(&mut s, "l2 FETCH 1 (BINARY.SIZE[] BINARY.PEEK[])\r\n");
    assert!(
        r.starts_with("* 1 FETCH (BINARY.SIZE[] 14 BINARY[] {14}\r\nSubject: x\r\n"),
        "{r}"
    );
    let r = talk(&mut s, "l3 CREATE p.q\r\nl4 DELETE p\r\n");
    assert!(r.contains("l4 NO [HASCHILDREN]"), "{r}");
    let r = talk(&mut s, "m EXAMINE Sent\r\n");
    assert!(
        r.starts_with("* OK [CLOSED]") && r.contains("\\HasNoChildren \\Sent) \".\" \"Sent\""),
        "{r}"
    );
}

#[test]
fn rev1_responses_unchanged() {
    let (_d, svc) = services(true);
    let mut s = logged_in(&svc);
    talk(&mut s, "b APPEND INBOX {14+}\r\nSubject: x\r\n\r\n\r\n");
    let r = talk(&mut s, "c SELECT INBOX\r\n");
    assert!(
        r.contains("* 1 RECENT\r\n") && r.contains("[UNSEEN 1]") && !r.contains("* LIST"),
        "{r}"
    );
    let r = talk(&mut s, "d SEARCH ALL\r\n");
    assert!(r.starts_with("* SEARCH 1\r\n"), "{r}");
    let r = talk(&mut s, "e FETCH 1 FLAGS\r\n");
    assert!(r.contains("\\Recent"), "{r}");
    let r = talk(&mut s, "f SELECT INBOX\r\n");
    assert!(!r.contains("CLOSED"), "{r}");
}

#[test]
fn utf8_accept_names_append_and_charset() {
    let (_d, svc) = services(true);
    let mut s = logged_in(&svc);
    // Before ENABLE: names in modified UTF-7 (8-bit input is still understood).
    let r = talk(&mut s, "b CREATE \"Entwürfe\"\r\n");
    assert!(r.starts_with("b OK"), "{r}");
    let r = talk(&mut s, "c LIST \"\" Entw*\r\n");
    assert!(r.contains("\"Entw&APw-rfe\""), "{r}");
    let r = talk(&mut s, "d ENABLE UTF8=ACCEPT\r\n");
    assert_eq!(r, "* ENABLED UTF8=ACCEPT\r\nd OK ENABLE completed\r\n");
    let r = talk(&mut s, "e LIST \"\" Entw*\r\n");
    assert!(
        r.contains("* LIST (\\HasNoChildren) \".\" \"Entwürfe\"\r\n"),
        "{r}"
    );
    // "&" is a plain character now.
    let r = talk(&mut s, "f CREATE \"R&D\"\r\ng LIST \"\" R*\r\n");
    assert!(r.contains("\"R&D\"\r\n") && r.contains("f OK"), "{r}");
    let r = talk(&mut s, "h STATUS \"Entwürfe\" (MESSAGES)\r\n");
    assert!(r.starts_with("* STATUS \"Entwürfe\" (MESSAGES 0)"), "{r}");
    let msg = "Subject: Grüße\r\n\r\nhé\r\n";
    let r = talk(
        &mut s,
        &format!(
            "i APPEND \"Entwürfe\" (\\Seen) UTF8 (~{{{}+}}\r\n{msg})\r\n",
            msg.len()
        ),
    );
    assert!(r.starts_with("i OK [APPENDUID "), "{r}");
    // A synchronizing literal8 inside UTF8 (...) gets its continuation.
    let r = talk(
        &mut s,
        &format!("j APPEND INBOX UTF8 (~{{{}}}\r\n", msg.len()),
    );
    assert_eq!(r, "+ Ready for literal data\r\n");
    let r = talk(&mut s, &format!("{msg})\r\n"));
    assert!(r.starts_with("j OK [APPENDUID "), "{r}");
    let r = talk(
        &mut s,
        "k SELECT \"Entwürfe\"\r\nl FETCH 1 BODY.PEEK[HEADER]\r\n",
    );
    assert!(r.contains("Subject: Grüße\r\n"), "{r}");
    let r = talk(&mut s, "m SEARCH CHARSET UTF-8 SUBJECT Grüße\r\n");
    assert!(r.starts_with("m BAD"), "{r}");
    let r = talk(&mut s, "n SEARCH SUBJECT \"Grüße\"\r\n");
    assert!(r.starts_with("* SEARCH 1\r\n"), "{r}");
    let r = talk(&mut s, "o APPEND INBOX UTF8 ({3+}\r\nabc)\r\n");
    assert!(r.starts_with("o BAD"), "{r}");
}

#[test]
fn search_older_younger() {
    let (_d, svc) = services(true);
    let mut s = logged_in(&svc);
    talk(
        &mut s,
        "b APPEND INBOX \"01-Jan-2020 00:00:00 +0000\" {14+}\r\nSubject: o\r\n\r\n\r\nc APPEND INBOX {14+}\r\nSubject: n\r\n\r\n\r\nd SELECT INBOX\r\n",
    );
    let r = talk(&mut s, "e SEARCH OLDER 3600\r\n");
    assert!(r.starts_with("* SEARCH 1\r\n"), "{r}");
    let r = talk(&mut s, "f UID SEARCH YOUNGER 3600\r\n");
    assert!(r.starts_with("* SEARCH 2\r\n"), "{r}");
    let r = talk(&mut s, "g SEARCH RETURN (COUNT) NOT OLDER 100000000\r\n");
    assert!(r.starts_with("* ESEARCH (TAG \"g\") COUNT 1\r\n"), "{r}");
    let r = talk(&mut s, "h SEARCH CHARSET UTF-8 OR OLDER 60 YOUNGER 60\r\n");
    assert!(r.starts_with("* SEARCH 1 2\r\n"), "{r}");
    // An argument spelled OLDER is an argument.
    let r = talk(&mut s, "i SEARCH SUBJECT older\r\n");
    assert!(r.starts_with("* SEARCH\r\n"), "{r}");
    for bad in [
        "j SEARCH OLDER 0\r\n",
        "j SEARCH YOUNGER\r\n",
        "j SEARCH OLDER x\r\n",
        "j SEARCH HEADER postern:older 5\r\n",
    ] {
        let r = talk(&mut s, bad);
        assert!(r.starts_with("j BAD"), "{bad}: {r}");
    }
}

#[test]
fn rename_of_selected_mailbox() {
    let (_d, svc) = services(true);
    let mut a = logged_in(&svc);
    let mut b = logged_in(&svc);
    talk(
        &mut a,
        "b CREATE Work.sub\r\nc APPEND Work {14+}\r\nSubject: w\r\n\r\n\r\nc APPEND Work.sub {14+}\r\nSubject: s\r\n\r\n\r\n",
    );
    talk(&mut b, "b SELECT Work\r\n");
    let mut idler = logged_in(&svc);
    let r = talk(&mut idler, "b SELECT Work.sub\r\nc IDLE\r\n");
    assert!(r.ends_with("+ idling\r\n"), "{r}");
    let r = talk(&mut a, "d SELECT Work\r\ne RENAME Work Done\r\n");
    assert!(r.contains("e OK RENAME completed"), "{r}");
    // The renaming session follows the mailbox to its new name.
    let r = talk(
        &mut a,
        "f FETCH 1 (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\n",
    );
    assert!(r.contains("Subject: w") && r.contains("f OK"), "{r}");
    let r = talk(
        &mut a,
        "g STORE 1 +FLAGS (\\Flagged)\r\nh STATUS Done (MESSAGES)\r\n",
    );
    assert!(r.contains("\\Flagged") && r.contains("(MESSAGES 1)"), "{r}");
    let r = talk(
        &mut a,
        "i APPEND Done {14+}\r\nSubject: z\r\n\r\n\r\ni2 NOOP\r\n",
    );
    assert!(r.contains("* 2 EXISTS"), "{r}");
    // Another session with the old name selected is told to go (as Dovecot does).
    let mut out = Vec::new();
    b.input(b"c NOOP\r\n");
    assert_eq!(b.step(&mut out), Step::Close);
    assert!(
        String::from_utf8_lossy(&out).starts_with("* BYE"),
        "{out:?}"
    );
    // So is one idling on a child of the renamed mailbox, without waiting for a command.
    let mut out = Vec::new();
    idler.idle_sync(&mut out);
    assert!(String::from_utf8_lossy(&out).starts_with("* BYE") && idler.is_closing());
    // A child that is selected follows its parent's rename; IMAP4rev2 gets OLDNAME.
    let r = talk(
        &mut a,
        "j ENABLE IMAP4rev2\r\nk SELECT Done.sub\r\nl RENAME Done Old\r\n",
    );
    assert!(
        r.contains("* LIST (\\HasChildren) \".\" \"Old\" (\"OLDNAME\" (\"Done\"))\r\nl OK"),
        "{r}"
    );
    let r = talk(&mut a, "m FETCH 1 BODY.PEEK[HEADER.FIELDS (SUBJECT)]\r\n");
    assert!(r.contains("Subject: s") && r.contains("m OK"), "{r}");
    // Renaming the selected INBOX moves its messages and leaves it empty (RFC 3501 §6.3.5).
    talk(
        &mut a,
        "n APPEND INBOX {14+}\r\nSubject: i\r\n\r\n\r\no SELECT INBOX\r\n",
    );
    let r = talk(&mut a, "p RENAME INBOX Kept\r\n");
    assert!(r.contains("* 1 EXPUNGE\r\n") && r.contains("p OK"), "{r}");
    let r = talk(&mut a, "q STATUS Kept (MESSAGES)\r\nr NOOP\r\n");
    assert!(r.contains("(MESSAGES 1)") && r.contains("r OK"), "{r}");
}

#[test]
fn recent_belongs_to_one_session() {
    let (_d, svc) = services(true);
    let u = "u@example.com";
    svc.store.ensure_user(u).unwrap();
    svc.store
        .deliver(u, crate::store::Folder::Inbox, b"Subject: 1\r\n\r\n")
        .unwrap();
    let (mut ex, mut a, mut c) = (logged_in(&svc), logged_in(&svc), logged_in(&svc));
    // EXAMINE sees it as recent but does not take it from a later SELECT (RFC 3501 §6.3.2).
    let r = talk(&mut ex, "b EXAMINE INBOX\r\n");
    assert!(r.contains("* 1 RECENT"), "{r}");
    let r = talk(&mut c, "b STATUS INBOX (RECENT)\r\n");
    assert!(r.contains("(RECENT 1)"), "{r}");
    let r = talk(&mut a, "b SELECT INBOX\r\nc FETCH 1 FLAGS\r\n");
    assert!(r.contains("* 1 RECENT") && r.contains("\\Recent"), "{r}");
    let r = talk(
        &mut c,
        "c SELECT INBOX\r\nd FETCH 1 FLAGS\r\ne SEARCH RECENT\r\n",
    );
    assert!(r.contains("* 0 RECENT") && !r.contains("\\Recent"), "{r}");
    assert!(r.contains("* SEARCH\r\n"), "{r}");
    // A new message goes to whichever selected session hears of it first.
    svc.store
        .deliver(u, crate::store::Folder::Inbox, b"Subject: 2\r\n\r\n")
        .unwrap();
    let r = talk(&mut c, "f NOOP\r\n");
    assert!(r.contains("* 2 EXISTS\r\n* 1 RECENT\r\n"), "{r}");
    let r = talk(&mut a, "d NOOP\r\ne SEARCH RECENT\r\n");
    assert!(r.starts_with("* 2 EXISTS\r\nd OK"), "{r}");
    assert!(r.contains("* SEARCH 1\r\n"), "{r}");
}

#[test]
fn searchres_saves_and_dollar_reuses() {
    let (_d, svc) = services(true);
    let mut s = logged_in(&svc);
    talk(
        &mut s,
        "b APPEND INBOX (\\Seen) {14+}\r\nSubject: a\r\n\r\n\r\nc APPEND INBOX {14+}\r\nSubject: b\r\n\r\n\r\nc APPEND INBOX {14+}\r\nSubject: c\r\n\r\n\r\nd SELECT INBOX\r\n",
    );
    // SAVE alone: no ESEARCH response (RFC 5182 §2.1).
    let r = talk(&mut s, "e SEARCH RETURN (SAVE) UNSEEN\r\n");
    assert_eq!(r, "e OK SEARCH completed\r\n");
    let r = talk(&mut s, "f FETCH $ (FLAGS)\r\n");
    assert!(
        !r.contains("* 1 FETCH") && r.contains("* 2 FETCH") && r.contains("* 3 FETCH"),
        "{r}"
    );
    let r = talk(&mut s, "g UID SEARCH RETURN (ALL) $ SUBJECT c\r\n");
    assert!(r.starts_with("* ESEARCH (TAG \"g\") UID ALL 3\r\n"), "{r}");
    let r = talk(
        &mut s,
        "h UID SEARCH RETURN (SAVE MAX) ALL\r\ni UID FETCH $ UID\r\n",
    );
    assert!(
        r.contains("* 3 FETCH (UID 3)\r\ni OK") && !r.contains("* 2 FETCH"),
        "{r}"
    );
    let r = talk(
        &mut s,
        "j STORE $ +FLAGS (\\Deleted)\r\nk EXPUNGE\r\nl FETCH $ UID\r\n",
    );
    assert!(
        r.contains("* 3 EXPUNGE") && r.contains("l OK FETCH completed (no messages)"),
        "{r}"
    );
    // A new SELECT forgets the saved result.
    let r = talk(
        &mut s,
        "m SEARCH RETURN (SAVE) ALL\r\nn SELECT INBOX\r\no COPY $ Trash\r\n",
    );
    assert!(r.ends_with("o OK COPY completed (no messages)\r\n"), "{r}");
}

#[test]
fn idle_without_a_mailbox_and_unknown_commands_in_authenticated_state() {
    let (_d, svc) = services(true);
    let mut s = Session::new(svc, "127.0.0.1".parse().unwrap(), false);
    talk(&mut s, "a LOGIN u@example.com pw\r\n");
    // RFC 9051 §6.3.13: IDLE is an authenticated-state command.
    assert_eq!(talk(&mut s, "b IDLE\r\n"), "+ idling\r\n");
    assert!(s.is_idle());
    assert_eq!(talk(&mut s, "DONE\r\n"), "b OK IDLE terminated\r\n");
    // A command we do not implement is called that, not "select a mailbox first".
    let r = talk(&mut s, "c SORT (DATE) UTF-8 ALL\r\n");
    assert!(r.starts_with("c BAD") && !r.contains("select"), "{r}");
    let r = talk(&mut s, "d FETCH 1 FLAGS\r\n");
    assert_eq!(r, "d BAD select a mailbox first\r\n");
}

#[test]
fn parse_cache_on_disk_serves_a_restarted_server() {
    let (d, svc) = services(true);
    let mut s = Session::new(svc, "127.0.0.1".parse().unwrap(), false);
    let r = talk(
        &mut s,
        "a LOGIN u@example.com pw\r\nb APPEND INBOX {24+}\r\nSubject: first\r\n\r\nbody\r\n\r\nc SELECT INBOX\r\n",
    );
    assert!(r.contains("c OK"), "{r}");
    let first = talk(&mut s, "d FETCH 1 (ENVELOPE BODYSTRUCTURE RFC822.SIZE)\r\n");
    assert!(first.contains("\"first\""), "{first}");
    drop(s);
    // A new server on the same data directory (nothing shared in memory). The message file is
    // rewritten behind its back, which Maildir never does: only the cache can still say "first".
    let text = format!(
        "domain = \"example.com\"\nhostname = \"mail.example.com\"\ndata_dir = \"{}\"\n[tls]\nsource = \"self-signed\"\n[imap]\nallow_plaintext_auth = true\n",
        d.path().display()
    );
    let cfg = Config::parse(&text, std::path::Path::new("test.toml")).unwrap();
    let svc2 = Services::build(cfg).unwrap();
    let cur = d.path().join("mail/example.com/u/cur");
    let file = std::fs::read_dir(&cur)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::write(&file, "Subject: other\r\n\r\nbody\r\n").unwrap();
    let mut s = Session::new(svc2, "127.0.0.1".parse().unwrap(), false);
    talk(&mut s, "a LOGIN u@example.com pw\r\nc SELECT INBOX\r\n");
    let again = talk(&mut s, "d FETCH 1 (ENVELOPE BODYSTRUCTURE RFC822.SIZE)\r\n");
    assert_eq!(again, first);
    // The cached record goes with the message.
    talk(&mut s, "e STORE 1 +FLAGS (\\Deleted)\r\nf EXPUNGE\r\n");
    let r = talk(
        &mut s,
        "g APPEND INBOX {24+}\r\nSubject: third\r\n\r\nbody\r\n\r\nh NOOP\r\n",
    );
    assert!(r.contains("g OK"), "{r}");
    let r = talk(&mut s, "i FETCH 1 (ENVELOPE)\r\n");
    assert!(r.contains("\"third\""), "{r}");
}

#[test]
fn inbox_children_live_under_the_one_inbox() {
    // RFC 3501 §6.3.8: INBOX.x is a child of INBOX; LIST never shows a second INBOX.
    let (d, svc) = services(true);
    let mut s = Session::new(svc, "127.0.0.1".parse().unwrap(), false);
    talk(&mut s, "a LOGIN u@example.com pw\r\n");
    let r = talk(&mut s, "b CREATE \"INBOX.x\"\r\n");
    assert!(r.starts_with("b OK"), "{r}");
    let r = talk(&mut s, "c LIST \"\" \"*\"\r\n");
    assert_eq!(
        r.matches("\"INBOX\"").count() + r.matches(" INBOX\r\n").count(),
        1,
        "{r}"
    );
    assert!(!r.contains("\\Noselect"), "{r}");
    assert!(r.contains("INBOX.x"), "{r}");
    let r = talk(&mut s, "d LIST \"\" \"%\"\r\n");
    assert!(
        r.contains("\\HasChildren") && !r.contains("\\Noselect"),
        "{r}"
    );
    let r = talk(&mut s, "e SELECT INBOX.x\r\ne2 SELECT inbox.x\r\n");
    assert!(r.contains("e OK") && r.contains("e2 OK"), "{r}");
    // No `.INBOX` folder appeared on disk.
    let user = d.path().join("mail/example.com/u");
    assert!(!user.join(".INBOX").exists());
    assert!(user.join(".INBOX.x/cur").is_dir());
}

mod conformance;
#[cfg(test)]
mod limits;
mod model;
mod status_size;
mod subscriptions;

#[test]
fn unauthenticate_returns_to_the_start() {
    let (_d, svc) = services(true);
    let mut s = Session::new(svc, "127.0.0.1".parse().unwrap(), false);
    let r = talk(&mut s, "a UNAUTHENTICATE\r\n");
    assert!(r.starts_with("a BAD"), "{r}");
    talk(&mut s, "b LOGIN u@example.com pw\r\n");
    let r = talk(&mut s, "c CAPABILITY\r\n");
    assert!(
        r.contains(" UNAUTHENTICATE") && r.contains(" QUOTA "),
        "{r}"
    );
    talk(&mut s, "d ENABLE UTF8=ACCEPT\r\ne SELECT INBOX\r\n");
    let r = talk(&mut s, "f UNAUTHENTICATE x\r\n");
    assert!(r.starts_with("f BAD"), "{r}");
    let r = talk(&mut s, "g UNAUTHENTICATE\r\n");
    assert_eq!(r, "g OK UNAUTHENTICATE completed\r\n");
    assert!(!s.utf8 && !s.state.is_authenticated());
    let r = talk(&mut s, "h SELECT INBOX\r\ni CAPABILITY\r\n");
    assert!(r.contains("h BAD") && r.contains("AUTH=PLAIN"), "{r}");
    assert!(!r.contains("UNAUTHENTICATE"), "{r}");
    let r = talk(
        &mut s,
        "j LOGIN u@example.com pw\r\nk GETQUOTAROOT INBOX\r\n",
    );
    assert!(r.contains("* QUOTAROOT \"INBOX\"\r\nk OK"), "{r}");
    let r = talk(&mut s, "l SETQUOTA \"\" (STORAGE 1)\r\n");
    assert!(r.starts_with("l NO [NOPERM]"), "{r}");
}
