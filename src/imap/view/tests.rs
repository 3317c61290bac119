//! The view against a real mailbox: sequence numbers follow expunges and arrivals.

use super::{Update, View};
use crate::store::{FlagOp, Mailbox, flags};

fn mk() -> (tempfile::TempDir, std::path::PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("box");
    for s in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(p.join(s)).unwrap();
    }
    (d, p)
}

#[test]
fn sessions_see_each_others_changes() {
    let (_d, p) = mk();
    let mb = Mailbox::open(p.clone()).unwrap();
    mb.append(b"1", 0, &[], None).unwrap();
    mb.append(b"2", 0, &[], None).unwrap();
    let (mut a, mut b) = (View::default(), View::default());
    a.sync(&mb, true, true).unwrap();
    b.sync(&mb, true, true).unwrap();
    mb.store(
        &[2],
        FlagOp::Add,
        flags::FLAGGED | flags::DELETED,
        &[],
        None,
    )
    .unwrap();
    let up = b.sync(&mb, true, true).unwrap();
    assert!(matches!(up[..], [Update::Flags(2, 2, _, _)]), "{up:?}");
    mb.expunge(None).unwrap();
    crate::store::deliver_to_maildir(&p, b"3").unwrap();
    // Held back during FETCH/STORE/SEARCH...
    let up = a.sync(&mb, false, true).unwrap();
    assert_eq!(a.uids, vec![1, 2, 3]);
    assert!(up.contains(&Update::Exists(3)));
    // ...and reported afterwards.
    let up = a.sync(&mb, true, true).unwrap();
    assert_eq!(up[0], Update::Expunge(2, 2));
    assert_eq!(a.uids, vec![1, 3]);
}

#[test]
fn sequence_numbers_resolve_to_uids() {
    let view = View {
        uids: vec![3, 5, 9],
        ..View::default()
    };
    let set = |s: &str| imap_codec::imap_types::sequence::SequenceSet::try_from(s).unwrap();
    assert_eq!(view.resolve(&set("2:*"), false), Some(vec![(2, 5), (3, 9)]));
    assert_eq!(view.resolve(&set("4"), false), None);
    assert_eq!(
        view.resolve(&set("4:100"), true),
        Some(vec![(2, 5), (3, 9)])
    );
    assert_eq!(view.resolve(&set("*"), true), Some(vec![(3, 9)]));
}
