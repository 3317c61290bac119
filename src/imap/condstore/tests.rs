//! CONDSTORE/QRESYNC (RFC 7162) through the sans-IO session: two sessions on one store.

use super::super::session::Session;
use super::super::session::tests::{feed_mutations, services, talk};
use super::super::view::View;
use super::matched_uid;
use imap_codec::imap_types::sequence::SequenceSet;

fn login(svc: &std::sync::Arc<crate::services::Services>) -> Session {
    let mut s = Session::new(svc.clone(), "127.0.0.1".parse().unwrap(), false);
    let r = talk(&mut s, "a LOGIN u@example.com pw\r\n");
    assert!(r.starts_with("a OK"), "{r}");
    s
}

/// The number after `key` in `r` (e.g. "HIGHESTMODSEQ ").
fn num(r: &str, key: &str) -> u64 {
    let i = r.find(key).unwrap_or_else(|| panic!("{key} in {r}")) + key.len();
    r[i..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .unwrap()
}

#[test]
fn resync_reports_exactly_what_changed() {
    let (_d, svc) = services(true);
    let mut a = login(&svc);
    let mut b = login(&svc);
    for i in 0..4 {
        let m = format!("Subject: {i}\r\n\r\n");
        talk(
            &mut a,
            &format!("p APPEND INBOX {{{}+}}\r\n{m}\r\n", m.len()),
        );
    }
    let r = talk(&mut a, "c CAPABILITY\r\n");
    assert!(r.contains(" CONDSTORE QRESYNC"), "{r}");
    // QRESYNC parameters need ENABLE QRESYNC first.
    let r = talk(&mut b, "s SELECT INBOX (QRESYNC (1 1))\r\n");
    assert!(r.starts_with("s BAD"), "{r}");
    let r = talk(&mut b, "e ENABLE QRESYNC\r\n");
    assert!(r.starts_with("* ENABLED QRESYNC\r\n"), "{r}");
    let r = talk(&mut b, "e ENABLE QRESYNC CONDSTORE\r\n");
    assert!(r.starts_with("* ENABLED\r\n"), "{r}");
    let r = talk(&mut b, "s SELECT INBOX\r\n");
    let (uv, ms) = (num(&r, "UIDVALIDITY "), num(&r, "[HIGHESTMODSEQ "));
    let r = talk(&mut b, "u UNSELECT\r\n");
    assert!(r.starts_with("u OK"), "{r}");

    talk(&mut a, "s SELECT INBOX\r\n");
    let r = talk(&mut a, "f STORE 2 +FLAGS (\\Flagged)\r\n");
    assert!(r.contains("* 2 FETCH (FLAGS (\\Flagged))"), "{r}");
    talk(&mut a, "f UID STORE 3,4 +FLAGS.SILENT (\\Deleted)\r\n");
    let r = talk(&mut a, "x UID EXPUNGE 3\r\n");
    assert!(r.starts_with("* 3 EXPUNGE\r\n"), "{r}");

    let r = talk(
        &mut b,
        &format!("s SELECT INBOX (QRESYNC ({uv} {ms} 1:4))\r\n"),
    );
    let ms2 = num(&r, "[HIGHESTMODSEQ ");
    assert!(ms2 > ms, "{r}");
    assert!(r.contains("* VANISHED (EARLIER) 3\r\n"), "{r}");
    assert!(
        r.contains(&format!(
            "* 2 FETCH (UID 2 FLAGS (\\Flagged) MODSEQ ({}))",
            ms2 - 3
        )),
        "{r}"
    );
    assert!(
        r.contains("* 3 FETCH (UID 4 FLAGS (\\Deleted) MODSEQ ("),
        "{r}"
    );
    assert!(!r.contains("(UID 1 "), "{r}");
    let fetches = r.matches(" FETCH ").count();
    assert_eq!(fetches, 2, "{r}");
    // VANISHED comes before the FETCHes, all before the tagged OK.
    assert!(r.find("VANISHED").unwrap() < r.find(" FETCH ").unwrap());
    assert!(r.ends_with("s OK [READ-WRITE] SELECT completed\r\n"), "{r}");

    // A wrong UIDVALIDITY: a plain select, no VANISHED or FETCH.
    let r = talk(
        &mut b,
        &format!("s SELECT INBOX (QRESYNC ({} {ms} 1:4))\r\n", uv + 1),
    );
    assert!(r.starts_with("* OK [CLOSED]"), "{r}");
    assert!(!r.contains("VANISHED") && !r.contains("FETCH"), "{r}");

    // Unsolicited updates carry MODSEQ; expunges come as VANISHED.
    talk(&mut a, "f STORE 1 +FLAGS.SILENT (\\Seen)\r\n");
    talk(&mut a, "x EXPUNGE\r\n");
    let r = talk(&mut b, "n NOOP\r\n");
    assert!(
        r.contains("* VANISHED 4\r\n") && !r.contains("EXPUNGE"),
        "{r}"
    );
    assert!(
        r.contains("* 1 FETCH (UID 1 FLAGS (\\Seen) MODSEQ ("),
        "{r}"
    );

    // FETCH CHANGEDSINCE and UID FETCH ... VANISHED.
    let r = talk(
        &mut b,
        &format!("g FETCH 1:* (FLAGS) (CHANGEDSINCE {ms})\r\n"),
    );
    assert!(r.contains("* 1 FETCH (FLAGS (\\Seen) MODSEQ ("), "{r}");
    assert!(r.contains("* 2 FETCH (FLAGS (\\Flagged) MODSEQ ("), "{r}");
    let r = talk(
        &mut b,
        &format!("h UID FETCH 1:* (FLAGS) (CHANGEDSINCE {ms} VANISHED)\r\n"),
    );
    assert!(r.starts_with("* VANISHED (EARLIER) 3:4\r\n"), "{r}");
    let r = talk(&mut b, "h FETCH 1 (FLAGS) (CHANGEDSINCE 1 VANISHED)\r\n");
    assert!(r.starts_with("h BAD"), "{r}");
    let r = talk(&mut b, "i UID FETCH 1 (MODSEQ)\r\n");
    assert!(r.contains("* 1 FETCH (UID 1 MODSEQ ("), "{r}");
}

#[test]
fn conditional_store_search_and_status() {
    let (_d, svc) = services(true);
    let mut a = login(&svc);
    for i in 0..3 {
        let m = format!("Subject: {i}\r\n\r\n");
        talk(
            &mut a,
            &format!("p APPEND INBOX {{{}+}}\r\n{m}\r\n", m.len()),
        );
    }
    let r = talk(&mut a, "s STATUS INBOX (HIGHESTMODSEQ MESSAGES)\r\n");
    let ms = num(&r, "HIGHESTMODSEQ ");
    assert!(r.contains("MESSAGES 3"), "{r}");
    let r = talk(&mut a, "s SELECT INBOX (CONDSTORE)\r\n");
    assert!(r.contains(&format!("* OK [HIGHESTMODSEQ {ms}]")), "{r}");
    talk(&mut a, "f STORE 2 +FLAGS.SILENT (\\Seen)\r\n");
    // Message 2 changed after `ms`: its conditional store fails, the others succeed.
    let r = talk(
        &mut a,
        &format!("g UID STORE 1:3 (UNCHANGEDSINCE {ms}) +FLAGS.SILENT (\\Flagged)\r\n"),
    );
    assert!(
        r.contains("* 1 FETCH (UID 1 FLAGS (\\Flagged \\Recent) MODSEQ ("),
        "{r}"
    );
    assert!(
        r.contains("* 3 FETCH (UID 3 FLAGS (\\Flagged \\Recent) MODSEQ ("),
        "{r}"
    );
    assert!(!r.contains("* 2 FETCH"), "{r}");
    assert!(r.contains("g OK [MODIFIED 2]"), "{r}");
    let r = talk(
        &mut a,
        "h STORE 1:3 (UNCHANGEDSINCE 0) +FLAGS (\\Draft)\r\n",
    );
    assert!(r.contains("h OK [MODIFIED 1:3]"), "{r}");
    let r = talk(&mut a, &format!("i SEARCH MODSEQ {}\r\n", ms + 1));
    let top = num(&r, "(MODSEQ ");
    assert!(r.starts_with("* SEARCH 1 2 3 (MODSEQ "), "{r}");
    let r = talk(
        &mut a,
        &format!("j UID SEARCH RETURN (ALL) MODSEQ {top}\r\n"),
    );
    assert!(r.contains("UID ALL 3 MODSEQ "), "{r}");
    let r = talk(&mut a, &format!("k SEARCH MODSEQ {}\r\n", top + 1));
    assert!(r.starts_with("* SEARCH\r\n"), "{r}");
}

/// Mangled RFC 7162 commands never panic or hang the session.
#[test]
fn mangled_condstore_commands_never_panic() {
    let (_d, svc) = services(true);
    let mut s = login(&svc);
    talk(
        &mut s,
        "b APPEND INBOX {14+}\r\nSubject: z\r\n\r\n\r\ne ENABLE QRESYNC\r\nc SELECT INBOX\r\n",
    );
    let seeds = [
        "x SELECT INBOX (QRESYNC (1 2 1:5 (1:2 3:4)))\r\n",
        "x EXAMINE INBOX (CONDSTORE)\r\n",
        "x UID FETCH 1:* (FLAGS MODSEQ) (CHANGEDSINCE 1 VANISHED)\r\n",
        "x STORE 1:* (UNCHANGEDSINCE 3) +FLAGS (\\Seen)\r\n",
        "x SEARCH MODSEQ \"/flags/\\\\draft\" all 5\r\n",
        "x STATUS INBOX (HIGHESTMODSEQ)\r\n",
    ];
    feed_mutations(&mut s, &seeds, 11, 1200, b"()*:,0123456789 \r\n");
    let r = talk(&mut s, "\r\nz1 NOOP\r\n");
    assert!(r.contains("z1 OK") || r.contains("z1 BAD"), "{r}");
}

/// When the expunge memory no longer reaches back to the client's modseq, every missing UID
/// of its range is reported, less those its sequence match data proves present (§3.2.5.2).
#[test]
fn forgotten_expunges_fall_back_to_the_missing_uids() {
    let (_d, svc) = services(true);
    let mut a = login(&svc);
    let mut b = login(&svc);
    for i in 0..5 {
        let m = format!("Subject: {i}\r\n\r\n");
        talk(
            &mut a,
            &format!("p APPEND INBOX {{{}+}}\r\n{m}\r\n", m.len()),
        );
    }
    talk(
        &mut a,
        "s SELECT INBOX\r\nd UID STORE 1 +FLAGS (\\Deleted)\r\nx EXPUNGE\r\n",
    );
    talk(&mut b, "e ENABLE QRESYNC\r\n");
    let r = talk(&mut b, "s SELECT INBOX\r\n");
    let (uv, ms) = (num(&r, "UIDVALIDITY "), num(&r, "[HIGHESTMODSEQ "));
    talk(&mut b, "u UNSELECT\r\n");
    talk(&mut a, "d UID STORE 4 +FLAGS (\\Deleted)\r\nx EXPUNGE\r\n");
    // Precise while remembered: only what vanished after `ms`.
    let r = talk(
        &mut b,
        &format!("s SELECT INBOX (QRESYNC ({uv} {ms} 1:5))\r\n"),
    );
    assert!(r.contains("* VANISHED (EARLIER) 4\r\n"), "{r}");
    let mb = svc
        .store
        .mailbox("u@example.com", &crate::store::MailboxName::Inbox)
        .unwrap();
    mb.lock().expunged.floor = ms + 100;
    let r = talk(
        &mut b,
        &format!("s SELECT INBOX (QRESYNC ({uv} {ms} 1:5))\r\n"),
    );
    assert!(r.contains("* VANISHED (EARLIER) 1,4\r\n"), "{r}");
    // The client's sequence 1:2 were UIDs 2:3, and still are: nothing below 3 vanished.
    let r = talk(
        &mut b,
        &format!("s SELECT INBOX (QRESYNC ({uv} {ms} 1:5 (1:2 2:3)))\r\n"),
    );
    assert!(r.contains("* VANISHED (EARLIER) 4\r\n"), "{r}");
}

#[test]
fn sequence_match_proves_a_prefix() {
    let view = View {
        uids: vec![2, 4, 9],
        ..View::default()
    };
    let s = SequenceSet::try_from("1:3").unwrap();
    assert_eq!(
        matched_uid(&s, &SequenceSet::try_from("2,4,8").unwrap(), &view),
        4
    );
    assert_eq!(
        matched_uid(&s, &SequenceSet::try_from("1,4,9").unwrap(), &view),
        0
    );
}
