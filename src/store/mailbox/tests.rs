//! The mailbox against a real Maildir in a temp dir: UIDs, MODSEQs, crash cuts, \Recent.

use std::fs;
use std::path::PathBuf;

use super::*;
use crate::store::flags::{self, MAX_KEYWORDS};

fn mk() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("box");
    for s in ["cur", "new", "tmp"] {
        fs::create_dir_all(p.join(s)).unwrap();
    }
    (d, p)
}

#[test]
fn uids_ascend_and_survive_reopen() {
    let (_d, p) = mk();
    crate::store::deliver_to_maildir(&p, b"a").unwrap();
    crate::store::deliver_to_maildir(&p, b"b").unwrap();
    let mb = Mailbox::open(p.clone()).unwrap();
    let ch = mb.changes(&[], 0, true).unwrap();
    assert_eq!(ch.added, vec![(1, true), (2, true)]);
    let (uv, uid) = mb
        .append(b"c", flags::SEEN, &["$Label1".into()], None)
        .unwrap();
    assert_eq!(uid, 3);
    mb.store(&[1], FlagOp::Add, flags::DELETED, &[], None)
        .unwrap();
    assert_eq!(mb.expunge(None).unwrap(), vec![1]);
    drop(mb);
    let mb = Mailbox::open(p.clone()).unwrap();
    let ix = mb.lock();
    assert_eq!(ix.uidvalidity, uv);
    let uids: Vec<u32> = ix.msgs.iter().map(|m| m.uid).collect();
    assert_eq!(uids, vec![2, 3]);
    assert_eq!(
        ix.keyword_names(ix.msgs[1].flags),
        vec!["$Label1".to_string()]
    );
    assert!(ix.msgs[1].flags.has(flags::SEEN));
    drop(ix);
    // New UIDs stay above every UID ever given, even the expunged highest one.
    mb.store(&[3], FlagOp::Add, flags::DELETED, &[], None)
        .unwrap();
    mb.expunge(None).unwrap();
    let (_, uid) = mb.append(b"d", 0, &[], None).unwrap();
    assert_eq!(uid, 4);
}

#[test]
fn uidvalidity_of_an_empty_folder_stays_when_mail_arrives() {
    let (_d, p) = mk();
    let mb = Mailbox::open(p.clone()).unwrap();
    let uv = mb.lock().uidvalidity;
    assert_ne!(uv, 0);
    // The same after a restart, before any message arrived...
    drop(mb);
    let mb = Mailbox::open(p.clone()).unwrap();
    assert_eq!(mb.lock().uidvalidity, uv);
    // ...and after the first delivery and the first APPEND.
    crate::store::deliver_to_maildir(&p, b"a").unwrap();
    mb.changes(&[], 0, true).unwrap();
    assert_eq!(mb.lock().uidvalidity, uv);
    let (uv2, uid) = mb.append(b"b", 0, &[], None).unwrap();
    assert_eq!((uv2, uid), (uv, 2));
}

#[test]
fn uidvalidities_ascend_within_one_second() {
    let (a, b, c) = (new_uidvalidity(), new_uidvalidity(), new_uidvalidity());
    assert!(a < b && b < c, "{a} {b} {c}");
    assert!(a as i64 >= crate::clock::unix_now() - 1);
}

#[test]
fn torn_uidlist_line_is_ignored() {
    let (_d, p) = mk();
    fs::write(p.join(UIDLIST), "P1 77 5\n3 abc\n4 de").unwrap();
    fs::write(p.join("cur/abc:2,S"), "x").unwrap();
    let mb = Mailbox::open(p).unwrap();
    let ix = mb.lock();
    assert_eq!(ix.uidvalidity, 77);
    assert_eq!(ix.msgs[0].uid, 3);
    assert!(ix.msgs[0].flags.has(flags::SEEN));
    assert_eq!(ix.uidnext, 5);
}

#[test]
fn recent_is_claimed_once_and_survives_reopen() {
    let (_d, p) = mk();
    crate::store::deliver_to_maildir(&p, b"a").unwrap();
    let mb = Mailbox::open(p.clone()).unwrap();
    // UIDs given (STATUS, APPEND) but no session has selected: still unclaimed on reopen.
    mb.append(b"b", 0, &[], None).unwrap();
    assert_eq!(mb.lock().unclaimed_recent(), 2);
    drop(mb);
    let mb = Mailbox::open(p.clone()).unwrap();
    let recent = |ch: Changes| ch.added.iter().filter(|a| a.1).count();
    let ro = mb.changes(&[], 0, false).unwrap();
    assert_eq!(recent(ro), 2, "EXAMINE sees them");
    let a = mb.changes(&[], 0, true).unwrap();
    let b = mb.changes(&[], 0, true).unwrap();
    assert_eq!((recent(a), recent(b)), (2, 0));
    drop(mb);
    let mb = Mailbox::open(p.clone()).unwrap();
    assert_eq!(mb.lock().unclaimed_recent(), 0);
    assert_eq!(recent(mb.changes(&[], 0, true).unwrap()), 0);
}

fn modseqs(mb: &Mailbox) -> (u64, Vec<(u32, u64)>) {
    let ix = mb.lock();
    (
        ix.modseq,
        ix.msgs.iter().map(|m| (m.uid, m.modseq)).collect(),
    )
}

#[test]
fn modseqs_persist_and_never_go_backwards() {
    let (_d, p) = mk();
    let mb = Mailbox::open(p.clone()).unwrap();
    mb.append(b"1", 0, &[], None).unwrap();
    mb.append(b"2", 0, &[], None).unwrap();
    mb.store(&[1], FlagOp::Add, flags::SEEN, &[], None).unwrap();
    let (high, per) = modseqs(&mb);
    assert_eq!(per[0].1, high);
    assert!(per[1].1 < high);
    mb.store(&[2], FlagOp::Add, flags::DELETED, &[], None)
        .unwrap();
    mb.expunge(None).unwrap();
    let (high, per) = modseqs(&mb);
    drop(mb);
    let mb = Mailbox::open(p.clone()).unwrap();
    assert_eq!(modseqs(&mb), (high, per.clone()));
    // The expunge is remembered with its modseq, across the reopen.
    assert_eq!(mb.lock().expunged.since(per[0].1).unwrap(), vec![2]);
    let st = mb
        .store(&[1], FlagOp::Add, flags::FLAGGED, &[], Some(1))
        .unwrap();
    assert_eq!(st.modified, vec![1]);
    mb.store(&[1], FlagOp::Add, flags::FLAGGED, &[], None)
        .unwrap();
    assert_eq!(modseqs(&mb).1[0].1, high + 1);
}

#[test]
fn torn_or_truncated_log_never_reuses_an_acknowledged_modseq() {
    let (_d, p) = mk();
    let mb = Mailbox::open(p.clone()).unwrap();
    for i in 0..3 {
        mb.append(format!("{i}").as_bytes(), 0, &[], None).unwrap();
    }
    let (acked, _) = modseqs(&mb);
    let acked_len = fs::metadata(p.join(UIDLIST)).unwrap().len() as usize;
    // Changes whose append the "crash" tears somewhere: never acknowledged.
    mb.store(&[1, 2], FlagOp::Add, flags::SEEN, &[], None)
        .unwrap();
    mb.store(&[3], FlagOp::Add, flags::ANSWERED, &[], None)
        .unwrap();
    drop(mb);
    let full = fs::read(p.join(UIDLIST)).unwrap();
    let files: Vec<_> = fs::read_dir(p.join("cur")).unwrap().collect();
    assert_eq!(files.len(), 3);
    for cut in acked_len..=full.len() {
        fs::write(p.join(UIDLIST), &full[..cut]).unwrap();
        let mb = Mailbox::open(p.clone()).unwrap();
        let (high, per) = modseqs(&mb);
        assert!(high >= acked, "cut {cut}: {high} < {acked}");
        // Every message whose flags are not what the surviving log says got a modseq
        // above everything that survived, and the flags on disk won.
        let ix = mb.lock();
        assert!(ix.msgs[0].flags.has(flags::SEEN) && ix.msgs[2].flags.has(flags::ANSWERED));
        drop(ix);
        assert_eq!(per.len(), 3);
        // A new change after the reopen gets a number nobody saw before.
        mb.store(&[1], FlagOp::Add, flags::FLAGGED, &[], None)
            .unwrap();
        let (h2, _) = modseqs(&mb);
        assert!(h2 > high, "cut {cut}");
        if cut == full.len() {
            assert!(high >= acked + 3);
        }
        drop(mb);
        // The reopen rewrote a torn file: it loads cleanly and keeps the number.
        let mb = Mailbox::open(p.clone()).unwrap();
        assert_eq!(modseqs(&mb).0, h2, "cut {cut}");
        mb.store(&[1], FlagOp::Remove, flags::FLAGGED, &[], None)
            .unwrap();
    }
}

#[test]
fn external_renames_and_deletions_get_modseqs() {
    let (_d, p) = mk();
    let mb = Mailbox::open(p.clone()).unwrap();
    mb.append(b"1", 0, &[], None).unwrap();
    mb.append(b"2", 0, &[], None).unwrap();
    let since = mb.changes(&[], 0, true).unwrap().modseq;
    let (high, _) = modseqs(&mb);
    // Another program marks message 1 seen while we run.
    let f = mb.lock().msgs[0].file.to_string();
    fs::rename(p.join("cur").join(&f), p.join("cur").join(format!("{f}S"))).unwrap();
    mb.lock().stamp = None;
    mb.lock().seen = None;
    let ch = mb.changes(&[1, 2], since, true).unwrap();
    assert!(
        matches!(ch.flags[..], [(1, f, m)] if f.has(flags::SEEN) && m == high + 1),
        "{ch:?}"
    );
    drop(mb);
    // ...and while we are down: message 2 deleted, message 1 unflagged.
    let f2 = fs::read_dir(p.join("cur"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .find(|n| !n.ends_with('S'))
        .unwrap();
    fs::remove_file(p.join("cur").join(f2)).unwrap();
    let f1 = format!("{f}S");
    fs::rename(p.join("cur").join(&f1), p.join("cur").join(&f)).unwrap();
    let mb = Mailbox::open(p.clone()).unwrap();
    let (h, per) = modseqs(&mb);
    assert_eq!(per.len(), 1);
    assert!(per[0].1 > high + 1 && h >= per[0].1);
    assert_eq!(mb.lock().expunged.since(high + 1).unwrap(), vec![2]);
    drop(mb);
    assert_eq!(modseqs(&Mailbox::open(p).unwrap()).0, h);
}

#[test]
fn old_uidlist_is_upgraded_in_place() {
    let (_d, p) = mk();
    fs::write(p.join(UIDLIST), "P1 77 5\n3 abc\n4 de\n").unwrap();
    fs::write(p.join("cur/abc:2,S"), "x").unwrap();
    fs::write(p.join("cur/de:2,"), "y").unwrap();
    let mb = Mailbox::open(p.clone()).unwrap();
    assert_eq!(modseqs(&mb), (1, vec![(3, 1), (4, 1)]));
    drop(mb);
    let text = fs::read_to_string(p.join(UIDLIST)).unwrap();
    assert!(text.starts_with("P2 77 5 1 0\n"), "{text}");
    let mb = Mailbox::open(p.clone()).unwrap();
    assert_eq!(modseqs(&mb), (1, vec![(3, 1), (4, 1)]));
    assert!(mb.lock().msgs[0].flags.has(flags::SEEN));
}

#[test]
fn empty_mailbox_keeps_the_uidvalidity_it_showed_first() {
    let (_d, p) = mk();
    let uv = Mailbox::open(p.clone()).unwrap().lock().uidvalidity;
    assert_ne!(uv, 0);
    let mb = Mailbox::open(p.clone()).unwrap();
    assert_eq!(mb.append(b"x", 0, &[], None).unwrap(), (uv, 1));
}

#[test]
fn failed_copy_leaves_the_destination_as_it_was() {
    // RFC 3501 §6.4.7: an unsuccessful COPY restores the destination. The second message
    // needs a 27th keyword in the destination, which fails after the first was placed.
    let (_d, p) = mk();
    let src = Mailbox::open(p.clone()).unwrap();
    let dp = p.join(".Dest");
    for s in ["cur", "new", "tmp"] {
        fs::create_dir_all(dp.join(s)).unwrap();
    }
    let dest = Mailbox::open(dp.clone()).unwrap();
    let full: Vec<String> = (0..MAX_KEYWORDS).map(|i| format!("k{i}")).collect();
    dest.append(b"x", 0, &full, None).unwrap();
    let before: Vec<_> = fs::read_dir(dp.join("cur")).unwrap().collect();
    src.append(b"1", 0, &[], None).unwrap();
    src.append(b"2", 0, &["other".into()], None).unwrap();
    assert!(src.copy_to(&[1, 2], &dest).is_err());
    assert_eq!(fs::read_dir(dp.join("cur")).unwrap().count(), before.len());
    assert_eq!(fs::read_dir(dp.join("tmp")).unwrap().count(), 0);
    assert_eq!(dest.lock().msgs.len(), 1);
    dest.lock().stamp = None;
    dest.lock().seen = None;
    assert!(dest.changes(&[1], 1, true).unwrap().added.is_empty());
}

/// One poller per mailbox while anyone watches; it stops when the last watcher is gone and
/// the next watcher starts a new one.
#[test]
fn one_poller_while_someone_watches() {
    let (_d, p) = mk();
    let mb = Mailbox::open(p).unwrap();
    let w = mb.subscribe();
    assert!(mb.start_poller());
    assert!(!mb.start_poller(), "a second poller for the same mailbox");
    assert!(mb.keep_polling());
    drop(w);
    assert!(!mb.keep_polling(), "nobody watches: the poller stops");
    let _w = mb.subscribe();
    assert!(mb.start_poller(), "the claim was given back");
    // A change on disk found by the poller reaches the watcher.
    let mut w2 = mb.subscribe();
    crate::store::deliver_to_maildir(&mb.dir, b"x").unwrap();
    mb.poll_disk();
    assert!(w2.has_changed().unwrap());
}
