//! The spool: enqueue, state file, removal, old layout, orphans.

use super::*;

#[test]
fn enqueue_update_retry_delete() {
    let d = tempfile::tempdir().unwrap();
    let q = Queue::open(d.path()).unwrap();
    let id = q
        .enqueue_blocking(
            "a@x.test",
            &["b@y.test".into(), "c@y.test".into()],
            b"hi\r\n",
        )
        .unwrap();
    assert!(valid_id(&id));
    assert_eq!(q.message(&id).unwrap(), b"hi\r\n");
    assert_eq!(&*q.body(&id).unwrap(), b"hi\r\n");
    let env = q.load(&id).unwrap().unwrap();
    assert_eq!(env.rcpts.len(), 2);
    q.update(&id, |e| {
        e.rcpts[0].status = RcptStatus::Delivered;
        e.rcpts[1].next_attempt = i64::MAX;
    })
    .unwrap();
    assert!(q.retry(&id).unwrap());
    let env = q.load(&id).unwrap().unwrap();
    // A large message is mapped, with the same octets.
    let big: Vec<u8> = (0..crate::spool::THRESHOLD + 10).map(|i| i as u8).collect();
    let big_id = q
        .enqueue_blocking("a@x", &["b@y.test".into()], &big)
        .unwrap();
    let body = q.body(&big_id).unwrap();
    assert!(matches!(body, Body::Map(..)));
    assert_eq!(&*body, &big[..]);
    assert!(q.delete(&big_id).unwrap());
    assert_eq!(env.rcpts[0].status, RcptStatus::Delivered);
    assert_eq!(env.rcpts[1].next_attempt, 0);
    assert_eq!(q.ids().unwrap(), vec![id.clone()]);
    assert!(q.delete(&id).unwrap());
    assert!(!q.delete(&id).unwrap());
    assert!(q.load(&id).unwrap().is_none());
    assert!(q.update(&id, |_| {}).unwrap().is_none());
    assert!(q.message(&id).is_err());
    assert!(!q.retry("../etc").unwrap());
    assert!(q.enqueue_blocking("a@x", &[], b"x").is_err());
}

#[test]
fn one_file_per_message_until_an_attempt_changes_the_state() {
    let d = tempfile::tempdir().unwrap();
    let q = Queue::open(d.path()).unwrap();
    let id = q
        .enqueue_blocking("a@x.test", &["b@y.test".into()], b"hi\r\n")
        .unwrap();
    let names = |sub: &str| -> Vec<String> {
        std::fs::read_dir(d.path().join("queue").join(sub))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    assert_eq!(names("msg"), vec![id.clone()]);
    assert!(names("env").is_empty());
    assert_eq!(q.load(&id).unwrap().unwrap().mail_from, "a@x.test");
    let Stamp::Head(_) = q.stamps().unwrap()[0].1 else {
        panic!("a fresh message is stamped by its file")
    };
    // A deferral writes the state file, which then wins over the head.
    q.update(&id, |e| e.rcpts[0].attempts = 3).unwrap();
    assert_eq!(names("env"), vec![format!("{id}.json")]);
    assert_eq!(q.load(&id).unwrap().unwrap().rcpts[0].attempts, 3);
    let Stamp::State(_) = q.stamps().unwrap()[0].1 else {
        panic!("a changed message is stamped by its state file")
    };
    assert_eq!(q.message(&id).unwrap(), b"hi\r\n");
    assert!(q.delete(&id).unwrap());
    assert!(names("msg").is_empty() && names("env").is_empty());
}

#[test]
fn old_layout_messages_are_still_read_and_orphans_cleared() {
    let d = tempfile::tempdir().unwrap();
    let q = Queue::open(d.path()).unwrap();
    let qd = d.path().join("queue");
    // Written by an earlier version: bare message + envelope file.
    let old = "000000000000000A000001";
    let env = Envelope {
        id: old.into(),
        mail_from: "a@x.test".into(),
        created: 1,
        size: 4,
        rcpts: vec![],
        delay_notified: false,
    };
    std::fs::write(qd.join("msg").join(old), b"hi\r\n").unwrap();
    std::fs::write(
        qd.join("env").join(format!("{old}.json")),
        serde_json::to_vec(&env).unwrap(),
    )
    .unwrap();
    assert_eq!(q.load(old).unwrap().unwrap().created, 1);
    assert_eq!(&*q.body(old).unwrap(), b"hi\r\n");
    assert_eq!(q.ids().unwrap(), vec![old.to_string()]);
    // Leftovers of crashes: an old bare message without envelope, a state file without
    // message, a temp file. Only once older than a minute.
    let aged = |p: &std::path::Path| {
        let t = std::time::SystemTime::now() - std::time::Duration::from_secs(120);
        std::fs::File::options()
            .write(true)
            .open(p)
            .unwrap()
            .set_modified(t)
            .unwrap();
    };
    let bare = qd.join("msg").join("000000000000000B000001");
    let state = qd.join("env").join("000000000000000C000001.json");
    let tmp = qd.join("msg").join(".X.tmp1.2");
    for p in [&bare, &state, &tmp] {
        std::fs::write(p, b"x").unwrap();
    }
    assert_eq!(q.remove_orphans().unwrap(), 0);
    for p in [&bare, &state, &tmp] {
        aged(p);
    }
    let fresh = q
        .enqueue_blocking("a@x", &["b@y.test".into()], b"x")
        .unwrap();
    aged(&qd.join("msg").join(&fresh));
    assert_eq!(q.remove_orphans().unwrap(), 3);
    assert!(!bare.exists() && !state.exists() && !tmp.exists());
    assert!(q.load(old).unwrap().is_some() && q.load(&fresh).unwrap().is_some());
}

#[test]
fn settle_removes_a_finished_message_and_keeps_an_unfinished_one() {
    let d = tempfile::tempdir().unwrap();
    let q = Queue::open(d.path()).unwrap();
    let rcpts = ["b@y.test".to_string(), "c@y.test".to_string()];
    let id = q.enqueue_blocking("a@x.test", &rcpts, b"hi\r\n").unwrap();
    // One delivered, one still pending: rewritten, not removed.
    let (env, removed) = q
        .settle(&id, |e| e.rcpts[0].status = RcptStatus::Delivered)
        .unwrap()
        .unwrap();
    assert!(!removed);
    assert_eq!(env.pending().count(), 1);
    assert_eq!(q.load(&id).unwrap().unwrap().pending().count(), 1);
    // A failure without its DSN yet: kept for `finish` to report.
    let (_, removed) = q
        .settle(&id, |e| e.rcpts[1].status = RcptStatus::Failed)
        .unwrap()
        .unwrap();
    assert!(!removed);
    assert!(q.message(&id).is_ok());
    let syncs = q.removal_syncs();
    let (_, removed) = q
        .settle(&id, |e| e.rcpts[1].reported = true)
        .unwrap()
        .unwrap();
    assert!(removed);
    assert!(q.load(&id).unwrap().is_none());
    assert!(q.message(&id).is_err());
    assert_eq!(q.removal_syncs(), syncs + 1);
    assert!(q.settle(&id, |_| {}).unwrap().is_none());
}
