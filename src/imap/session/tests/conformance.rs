//! Conformance checks written from the RFC text (issue 14): sections of message/rfc822
//! entities, BINARY (RFC 3516), ESEARCH with CONDSTORE, LIST patterns, atoms.

use super::super::{Session, Step};
use super::{services, talk};

fn logged_in() -> (tempfile::TempDir, Session) {
    let (d, svc) = services(true);
    let mut s = Session::new(svc, "127.0.0.1".parse().unwrap(), false);
    let r = talk(&mut s, "a LOGIN u@example.com pw\r\n");
    assert!(r.starts_with("a OK"), "{r}");
    (d, s)
}

fn talk_bytes(s: &mut Session, input: &[u8]) -> Vec<u8> {
    s.input(input);
    let mut out = Vec::new();
    while let Step::Continue = s.step(&mut out) {}
    out
}

/// APPEND `msg` to INBOX with a non-synchronizing literal (a literal8 when `binary`).
fn append(s: &mut Session, msg: &[u8], binary: bool) {
    let mut cmd = format!(
        "ap APPEND INBOX {}{{{}+}}\r\n",
        if binary { "~" } else { "" },
        msg.len()
    )
    .into_bytes();
    cmd.extend_from_slice(msg);
    cmd.extend_from_slice(b"\r\n");
    let r = String::from_utf8_lossy(&talk_bytes(s, &cmd)).into_owned();
    assert!(r.contains("ap OK"), "{r}");
}

const RFC822_ROOT: &str = "From: outer@example.com\r\nSubject: outer\r\nContent-Type: message/rfc822\r\n\r\nFrom: inner@example.com\r\nSubject: inner\r\nX-A: 1\r\n\r\ninner body\r\n";

#[test]
fn fetch_sections_of_a_message_that_is_message_rfc822() {
    let (_d, mut s) = logged_in();
    append(&mut s, RFC822_ROOT.as_bytes(), false);
    talk(&mut s, "s SELECT INBOX\r\n");
    let r = talk(
        &mut s,
        "f FETCH 1 (BODY.PEEK[1.HEADER.FIELDS (X-A)] BODY.PEEK[1.TEXT] BODY.PEEK[1.1])\r\n",
    );
    assert!(
        r.contains("BODY[1.HEADER.FIELDS (X-A)] {10}\r\nX-A: 1\r\n\r\n"),
        "{r}"
    );
    assert!(r.contains("BODY[1.TEXT] {12}\r\ninner body\r\n"), "{r}");
    assert!(r.contains("BODY[1.1] {12}\r\ninner body\r\n"), "{r}");
    let r = talk(&mut s, "g FETCH 1 (BODY.PEEK[1] BODY.PEEK[1.HEADER])\r\n");
    assert!(
        r.contains("BODY[1] {63}\r\nFrom: inner@example.com\r\n"),
        "{r}"
    );
    assert!(r.contains("BODY[1.HEADER] {51}\r\nFrom: inner"), "{r}");
    let r = talk(&mut s, "h FETCH 1 (ENVELOPE BODYSTRUCTURE)\r\n");
    assert!(r.contains("ENVELOPE (NIL \"outer\""), "{r}");
    assert!(
        r.contains("BODYSTRUCTURE (\"MESSAGE\" \"RFC822\" NIL NIL NIL \"7BIT\" 63 (NIL \"inner\""),
        "{r}"
    );
    assert!(r.contains("h OK"), "{r}");
}

const QP_B64: &str = "Subject: bin\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nJ=C3=B6rg says: a soft=\r\n break and =3D sign, long enough to wrap = \r\nhere.  \r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nAAEC\r\nAwQ=\r\n--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n\r\n--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: x-unknown\r\n\r\nzz\r\n--b--\r\n";

#[test]
fn binary_decodes_quoted_printable_and_base64() {
    let (_d, mut s) = logged_in();
    append(&mut s, QP_B64.as_bytes(), false);
    talk(&mut s, "s SELECT INBOX\r\n");
    let qp = "Jörg says: a soft break and = sign, long enough to wrap here.";
    let r = talk(
        &mut s,
        "f FETCH 1 (BINARY.SIZE[1] BINARY.SIZE[2] BINARY.SIZE[3])\r\n",
    );
    assert!(
        r.contains(&format!(
            "BINARY.SIZE[1] {} BINARY.SIZE[2] 5 BINARY.SIZE[3] 0",
            qp.len()
        )),
        "{r}"
    );
    let r = talk(
        &mut s,
        "g FETCH 1 (BINARY.PEEK[1] BINARY.PEEK[3] BINARY.PEEK[1]<0.5>)\r\n",
    );
    assert!(
        r.contains(&format!("BINARY[1] {{{}}}\r\n{qp}", qp.len())),
        "{r}"
    );
    assert!(r.contains("BINARY[3] {0}\r\n"), "{r}");
    assert!(r.contains("BINARY[1]<0> {5}\r\nJö"), "{r}");
    assert!(!r.contains("\\Seen"), "PEEK must not set \\Seen: {r}");
    let out = talk_bytes(&mut s, b"h FETCH 1 (BINARY[2])\r\n");
    assert!(
        out.windows(15).any(|w| w == b"BINARY[2] ~{5}\r"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    assert!(out.windows(5).any(|w| w == [0, 1, 2, 3, 4]));
    assert!(String::from_utf8_lossy(&out).contains("\\Seen"));
    let out = talk_bytes(&mut s, b"i FETCH 1 (BINARY[2]<1.2>)\r\n");
    assert!(
        out.windows(20)
            .any(|w| w == b"BINARY[2]<1> {2}\r\n\x01\x02"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    let r = talk(&mut s, "j FETCH 1 (BINARY.PEEK[4])\r\n");
    assert!(
        r.contains("j NO [UNKNOWN-CTE]") && !r.contains("* 1 FETCH"),
        "{r}"
    );
    let r = talk(&mut s, "k FETCH 1 (BINARY.SIZE[4])\r\n");
    assert!(r.contains("k NO [UNKNOWN-CTE]"), "{r}");
}

#[test]
fn append_binary_literal8_then_fetch() {
    let (_d, mut s) = logged_in();
    let mut msg = b"Subject: raw\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n".to_vec();
    msg.extend_from_slice(&[0, 255, 13, 10, 0, 7]);
    append(&mut s, &msg, true);
    append(&mut s, b"", false);
    talk(&mut s, "s SELECT INBOX\r\n");
    let out = talk_bytes(
        &mut s,
        b"f FETCH 1 (BINARY.PEEK[1] BINARY.SIZE[1] RFC822.SIZE)\r\n",
    );
    let needle = [b"BINARY[1] ~{6}\r\n".as_slice(), &[0, 255, 13, 10, 0, 7]].concat();
    assert!(
        out.windows(needle.len()).any(|w| w == needle),
        "{}",
        String::from_utf8_lossy(&out)
    );
    let r = String::from_utf8_lossy(&out);
    assert!(r.contains("BINARY.SIZE[1] 6") && r.contains("f OK"), "{r}");
    let r = talk(
        &mut s,
        "g FETCH 2 (RFC822.SIZE BODY.PEEK[] BINARY.PEEK[1] BODYSTRUCTURE)\r\n",
    );
    assert!(
        r.contains("RFC822.SIZE 0") && r.contains("BODY[] {0}") && r.contains("g OK"),
        "{r}"
    );
}

#[test]
fn esearch_min_max_modseq_is_that_of_the_reported_message() {
    let (_d, mut s) = logged_in();
    for _ in 0..3 {
        append(&mut s, b"Subject: m\r\n\r\nx\r\n", false);
    }
    talk(&mut s, "s SELECT INBOX (CONDSTORE)\r\n");
    talk(&mut s, "t STORE 2 +FLAGS.SILENT (\\Flagged)\r\n");
    talk(&mut s, "u STORE 3 +FLAGS.SILENT (\\Answered)\r\n");
    talk(&mut s, "v STORE 1 +FLAGS.SILENT (\\Draft)\r\n");
    let r = talk(&mut s, "w FETCH 1:3 (MODSEQ)\r\n");
    let ms: Vec<u64> = (1..=3)
        .map(|i| {
            let l = r
                .lines()
                .find(|l| l.starts_with(&format!("* {i} FETCH")))
                .unwrap();
            l.split("MODSEQ (")
                .nth(1)
                .unwrap()
                .trim_end_matches("))")
                .parse()
                .unwrap()
        })
        .collect();
    assert!(ms[0] > ms[2] && ms[2] > ms[1], "{r}");
    let r = talk(&mut s, "a SEARCH RETURN (MIN) MODSEQ 1\r\n");
    assert!(r.contains(&format!("MIN 1 MODSEQ {}\r\n", ms[0])), "{r}");
    let r = talk(&mut s, "b SEARCH RETURN (MAX) MODSEQ 1\r\n");
    assert!(r.contains(&format!("MAX 3 MODSEQ {}\r\n", ms[2])), "{r}");
    let r = talk(&mut s, "c SEARCH RETURN (MIN MAX) 2:3 MODSEQ 1\r\n");
    assert!(
        r.contains(&format!("MIN 2 MAX 3 MODSEQ {}\r\n", ms[2])),
        "{r}"
    );
    let r = talk(&mut s, "d SEARCH RETURN (MAX COUNT) MODSEQ 1\r\n");
    assert!(r.contains(&format!("MODSEQ {}\r\n", ms[0])), "{r}");
}

#[test]
fn new_keywords_are_announced_before_a_fetch_shows_them() {
    let (_d, svc) = services(true);
    let mut a = Session::new(svc.clone(), "127.0.0.1".parse().unwrap(), false);
    let mut b = Session::new(svc, "127.0.0.1".parse().unwrap(), false);
    for s in [&mut a, &mut b] {
        assert!(talk(s, "l LOGIN u@example.com pw\r\n").contains("l OK"));
    }
    append(&mut a, b"Subject: k\r\n\r\nx\r\n", false);
    append(&mut a, b"Subject: k\r\n\r\ny\r\n", false);
    talk(&mut a, "s SELECT INBOX\r\n");
    talk(&mut b, "s SELECT INBOX\r\n");
    // Another session creates the keyword: announced at this session's next sync.
    let r = talk(&mut b, "t STORE 1 +FLAGS ($Foo)\r\n");
    let flags = r.find("* FLAGS (").expect(&r);
    assert!(
        r[flags..].starts_with(
            "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Forwarded $Junk $NotJunk $Foo)\r\n"
        ),
        "{r}"
    );
    assert!(
        r.contains("[PERMANENTFLAGS (") && r.contains(" $Foo \\*)]"),
        "{r}"
    );
    assert!(flags < r.find("FETCH (FLAGS ($Foo").expect(&r), "{r}");
    let r = talk(&mut a, "n NOOP\r\n");
    let flags = r.find("* FLAGS (").expect(&r);
    assert!(
        flags
            < r.find("* 1 FETCH (UID 1 FLAGS ($Foo")
                .or(r.find("* 1 FETCH (FLAGS ($Foo"))
                .expect(&r),
        "{r}"
    );
    // Announced once: the next one is silent about FLAGS.
    let r = talk(&mut a, "f FETCH 1 FLAGS\r\n");
    assert!(!r.contains("* FLAGS") && r.contains("$Foo"), "{r}");
    // A keyword created by an APPEND in another session, shown by a FETCH before any sync.
    let cmd = b"ap APPEND INBOX ($Bar) {3+}\r\nx\r\n\r\n".to_vec();
    let r = String::from_utf8_lossy(&talk_bytes(&mut b, &cmd)).into_owned();
    assert!(r.contains("ap OK"), "{r}");
    let r = talk(&mut b, "u STORE 2 +FLAGS.SILENT ($Bar)\r\n");
    assert!(
        !r.contains("* FLAGS"),
        "announced with the APPEND already: {r}"
    );
    let r = talk(&mut a, "g FETCH 2 FLAGS\r\n");
    assert!(
        r.find("* FLAGS").expect(&r) < r.find("* 2 FETCH").unwrap(),
        "{r}"
    );
    assert!(r.contains("$Foo $Bar)"), "{r}");
}

#[test]
fn messages_expunged_elsewhere_give_expungeissued_and_the_rest() {
    let (_d, svc) = services(true);
    let mut a = Session::new(svc.clone(), "127.0.0.1".parse().unwrap(), false);
    let mut b = Session::new(svc, "127.0.0.1".parse().unwrap(), false);
    for s in [&mut a, &mut b] {
        assert!(talk(s, "l LOGIN u@example.com pw\r\n").contains("l OK"));
    }
    append(&mut a, b"Subject: one\r\n\r\n1\r\n", false);
    append(&mut a, b"Subject: two\r\n\r\n2\r\n", false);
    talk(&mut a, "c CREATE Other\r\n");
    talk(&mut a, "s SELECT INBOX\r\n");
    talk(&mut b, "s SELECT INBOX\r\n");
    let r = talk(
        &mut b,
        "e STORE 1 +FLAGS.SILENT (\\Deleted)\r\ne2 EXPUNGE\r\n",
    );
    assert!(r.contains("* 1 EXPUNGE"), "{r}");
    // RFC 3501 §7.4.1: no EXPUNGE during FETCH; what exists is returned, then EXPUNGEISSUED.
    let r = talk(
        &mut a,
        "f FETCH 1:2 (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\n",
    );
    assert!(
        r.contains(
            "* 2 FETCH (FLAGS (\\Recent) BODY[HEADER.FIELDS (SUBJECT)] {16}\r\nSubject: two"
        ),
        "{r}"
    );
    assert!(
        !r.contains("* 1 FETCH") && !r.contains("EXPUNGE\r\n"),
        "{r}"
    );
    assert!(r.contains("f NO [EXPUNGEISSUED]"), "{r}");
    let r = talk(&mut a, "g STORE 1:2 +FLAGS (\\Flagged)\r\n");
    assert!(
        r.contains("* 2 FETCH (FLAGS (\\Flagged \\Recent))") && r.contains("g OK"),
        "{r}"
    );
    assert!(
        !r.contains("* 1 FETCH") && !r.contains("EXPUNGE\r\n"),
        "{r}"
    );
    let r = talk(&mut a, "h COPY 1:2 Other\r\n");
    assert!(
        r.contains("h OK [COPYUID ") && !r.contains("EXPUNGE\r\n"),
        "{r}"
    );
    let r = talk(&mut a, "i NOOP\r\n");
    assert!(r.starts_with("* 1 EXPUNGE\r\n"), "{r}");
    let r = talk(&mut a, "j FETCH 1 (UID)\r\n");
    assert!(r.contains("* 1 FETCH (UID 2)") && r.contains("j OK"), "{r}");
    let r = talk(&mut a, "k STATUS Other (MESSAGES)\r\n");
    assert!(r.contains("(MESSAGES 1)"), "{r}");
}

#[test]
fn list_patterns_take_every_list_char() {
    let (_d, mut s) = logged_in();
    for q in [
        "a LIST \"\" \"!#$&'+,-.0123456789:;<=>?@^_`|}%*\"\r\n",
        "b LIST \"\" !#$&'+,-.0123456789:;<=>?@^_`|}%*\r\n",
        "c LIST \"\" ]%\r\n",
        "d LSUB \"\" \"!#$&'+,-.0123456789:;<=>?@^_`|}%*\"\r\n",
        "e LSUB \"\" !#$&'+,-.0123456789:;<=>?@^_`|}%*\r\n",
    ] {
        let r = talk(&mut s, q);
        assert!(r.contains(&format!("{} OK", &q[..1])), "{q}: {r}");
    }
    let r = talk(&mut s, "z NOOP\r\n");
    assert!(r.contains("z OK"), "{r}");
}

#[test]
fn list_hierarchy_subscriptions_and_childinfo() {
    let (_d, mut s) = logged_in();
    for m in ["a", "a.b", "a.b.c", "a.d", "e"] {
        let r = talk(&mut s, &format!("c CREATE {m}\r\n"));
        assert!(r.contains("c OK"), "{r}");
    }
    let names = |r: &str| -> Vec<String> {
        r.lines()
            .filter(|l| l.starts_with("* LIST") || l.starts_with("* LSUB"))
            .map(|l| l.to_string())
            .collect()
    };
    let r = talk(&mut s, "l LIST \"\" %\r\n");
    let n = names(&r);
    assert!(
        n.iter().any(|l| l.ends_with(" \".\" \"a\"")) && n.iter().any(|l| l.ends_with(" \"e\"")),
        "{r}"
    );
    assert!(!n.iter().any(|l| l.contains("a.b")), "{r}");
    // A reference with the separator: the pattern is appended to it (RFC 3501 §6.3.8).
    let r = talk(&mut s, "l LIST a. %\r\n");
    let n = names(&r);
    assert_eq!(n.len(), 2, "{r}");
    assert!(
        n.iter().any(|l| l.ends_with(" \"a.b\"")) && n.iter().any(|l| l.ends_with(" \"a.d\"")),
        "{r}"
    );
    let r = talk(&mut s, "l LIST a. *\r\n");
    assert_eq!(names(&r).len(), 3, "{r}");
    let r = talk(&mut s, "l LIST \"\" a.%.%\r\n");
    let n = names(&r);
    assert!(n.len() == 1 && n[0].ends_with(" \"a.b.c\""), "{r}");
    // Subscriptions, one to a mailbox that does not exist (RFC 5258 §3.1).
    for m in ["a.b.c", "gone", "a.d"] {
        assert!(talk(&mut s, &format!("s SUBSCRIBE {m}\r\n")).contains("s OK"));
    }
    talk(&mut s, "d DELETE a.d\r\n");
    let r = talk(&mut s, "l LIST (SUBSCRIBED) \"\" *\r\n");
    let n = names(&r);
    assert!(
        n.iter().any(|l| l.contains("\\NonExistent")
            && l.contains("\\Subscribed")
            && l.ends_with(" \"gone\"")),
        "{r}"
    );
    assert!(
        n.iter()
            .any(|l| l.contains("\\Subscribed") && l.ends_with(" \"a.b.c\"")),
        "{r}"
    );
    // RECURSIVEMATCH: a parent whose child is subscribed gets CHILDINFO (RFC 5258 §3.5).
    let r = talk(&mut s, "l LIST (SUBSCRIBED RECURSIVEMATCH) \"\" %\r\n");
    let n = names(&r);
    assert!(
        n.iter()
            .any(|l| l.contains("(\"CHILDINFO\" (\"SUBSCRIBED\"))") && l.contains(" \"a\"")),
        "{r}"
    );
    assert!(r.contains("l OK"), "{r}");
    // LSUB %: the parent of subscribed children is \Noselect (RFC 3501 §6.3.9).
    let r = talk(&mut s, "l LSUB \"\" %\r\n");
    let n = names(&r);
    assert!(
        n.iter()
            .any(|l| l.starts_with("* LSUB (\\Noselect) \".\" \"a\"")),
        "{r}"
    );
    assert!(n.iter().any(|l| l.ends_with(" \"gone\"")), "{r}");
    let r = talk(&mut s, "l LSUB \"\" *\r\n");
    assert!(names(&r).iter().any(|l| l.ends_with(" \"a.b.c\"")), "{r}");
    // UNSUBSCRIBE of what is not subscribed, SUBSCRIBE twice.
    assert!(talk(&mut s, "u SUBSCRIBE gone\r\n").contains("u OK"));
    assert!(talk(&mut s, "u UNSUBSCRIBE gone\r\n").contains("u OK"));
    let r = talk(&mut s, "u UNSUBSCRIBE gone\r\n");
    assert!(r.contains("u OK") || r.contains("u NO"), "{r}");
    let r = talk(&mut s, "l LSUB \"\" *\r\n");
    assert!(!r.contains("\"gone\""), "{r}");
}

/// Every ATOM-CHAR (RFC 3501 §9: any CHAR but atom-specials) but `\` and `%`/`*`.
const ATOM_CHARS: &str =
    "!#$&'+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[^_`abcdefghijklmnopqrstuvwxyz|}~";

#[test]
fn every_atom_char_in_tags_and_keywords() {
    let (_d, mut s) = logged_in();
    // tag = 1*<any ASTRING-CHAR except "+">: atom chars and "]".
    let tag = format!("{}]", ATOM_CHARS.replace('+', ""));
    let r = talk(&mut s, &format!("{tag} NOOP\r\n"));
    assert!(r.starts_with(&format!("{tag} OK")), "{r}");
    // flag-keyword = atom, in APPEND and STORE, then FETCH and SEARCH KEYWORD.
    let kw = format!("${}", &ATOM_CHARS[1..]);
    let msg = "Subject: kw\r\n\r\nx\r\n";
    let r = talk(
        &mut s,
        &format!("a APPEND INBOX ({kw}) {{{}+}}\r\n{msg}\r\n", msg.len()),
    );
    assert!(r.contains("a OK"), "{r}");
    let r = talk(&mut s, "s SELECT INBOX\r\n");
    assert!(r.contains(&format!(" {kw})")), "{r}");
    let kw2 = "x!#&'+,-./:;<=>?@[^_`|}~";
    let r = talk(&mut s, &format!("t STORE 1 +FLAGS ({kw2})\r\n"));
    assert!(
        r.contains(&format!("{kw} {kw2})")) && r.contains("t OK"),
        "{r}"
    );
    let r = talk(&mut s, &format!("u SEARCH KEYWORD {kw2}\r\n"));
    assert!(r.contains("* SEARCH 1\r\n"), "{r}");
    let r = talk(&mut s, &format!("v UID SEARCH UNKEYWORD {kw}\r\n"));
    assert!(r.contains("* SEARCH\r\n") && r.contains("v OK"), "{r}");
    let r = talk(&mut s, &format!("w STORE 1 -FLAGS ({kw})\r\n"));
    assert!(r.contains(&format!("FLAGS ({kw2}")), "{r}");
}

#[test]
fn compress_is_offered_after_login_and_runs_once() {
    let (_d, svc) = services(true);
    let mut s = Session::new(svc, "127.0.0.1".parse().unwrap(), false);
    assert!(!String::from_utf8_lossy(&s.greeting()).contains("COMPRESS"));
    let r = talk(&mut s, "a COMPRESS DEFLATE\r\n");
    assert!(r.starts_with("a BAD"), "{r}");
    talk(&mut s, "l LOGIN u@example.com pw\r\n");
    assert!(talk(&mut s, "c CAPABILITY\r\n").contains(" COMPRESS=DEFLATE"));
    assert!(talk(&mut s, "b COMPRESS LZMA\r\n").starts_with("b NO"));
    assert!(talk(&mut s, "b COMPRESS\r\n").starts_with("b BAD"));
    s.input(b"d COMPRESS DEFLATE\r\n");
    let mut out = Vec::new();
    assert_eq!(s.step(&mut out), Step::Compress);
    assert_eq!(out, b"d OK DEFLATE active\r\n");
    let r = talk(&mut s, "e COMPRESS DEFLATE\r\n");
    assert!(r.starts_with("e NO [COMPRESSIONACTIVE]"), "{r}");
    assert!(!talk(&mut s, "c CAPABILITY\r\n").contains("COMPRESS"));
}
