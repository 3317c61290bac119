use std::sync::Arc;

use super::*;

fn files(dir: &Path) -> usize {
    fs::read_dir(dir).unwrap().count()
}

#[test]
fn small_bodies_stay_in_memory() {
    let d = tempfile::tempdir().unwrap();
    let spool = Spool::open(d.path()).unwrap().with_threshold(16);
    let mut w = spool.writer();
    w.write(b"0123456789");
    w.write(b"012345");
    let m = w.finish().unwrap();
    assert!(m.path().is_none());
    assert_eq!(m.as_bytes(), b"0123456789012345");
    assert_eq!(files(spool.dir().unwrap()), 0);
}

#[test]
fn large_bodies_go_to_a_private_file_removed_on_drop() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    let spool = Spool::open(d.path()).unwrap().with_threshold(16);
    let dir = spool.dir().unwrap().to_path_buf();
    assert_eq!(
        fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let mut w = spool.writer();
    let mut want = Vec::new();
    // Byte by byte, as the DATA decoder writes, across several write blocks.
    for i in 0..(3 * WRITE_BLOCK + 7) {
        let b = (i % 251) as u8;
        w.write(&[b]);
        want.push(b);
    }
    assert_eq!(files(&dir), 1);
    let m = w.finish().unwrap();
    let path = m.path().unwrap().to_path_buf();
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(m.as_bytes(), &want[..]);
    drop(m);
    assert!(!path.exists());
    assert_eq!(files(&dir), 0);
}

#[test]
fn an_abandoned_writer_leaves_nothing() {
    let d = tempfile::tempdir().unwrap();
    let spool = Spool::open(d.path()).unwrap().with_threshold(4);
    let mut w = spool.writer();
    w.write(b"0123456789");
    assert_eq!(files(spool.dir().unwrap()), 1);
    drop(w);
    assert_eq!(files(spool.dir().unwrap()), 0);
}

#[test]
fn a_write_error_is_reported_at_the_end() {
    let d = tempfile::tempdir().unwrap();
    let spool = Spool::open(d.path()).unwrap().with_threshold(4);
    // The directory is gone: the spill fails, the writer goes on counting.
    fs::remove_dir(spool.dir().unwrap()).unwrap();
    let mut w = spool.writer();
    w.write(b"0123456789");
    w.write(b"more");
    assert_eq!(w.len(), 14);
    assert!(w.finish().is_err());
}

#[test]
fn memory_spool_never_spills() {
    let mut w = Spool::memory().writer();
    w.write(&vec![b'x'; THRESHOLD * 2]);
    let m = w.finish().unwrap();
    assert!(m.path().is_none());
    assert_eq!(m.len(), THRESHOLD * 2);
}

#[test]
fn leftovers_of_dead_processes_are_removed_at_open() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("spool").join("tmp");
    fs::create_dir_all(&dir).unwrap();
    // No process has pid 4294967295; our own files stay.
    fs::write(dir.join("4294967295.1"), b"old").unwrap();
    fs::write(dir.join(format!("{}.77", std::process::id())), b"ours").unwrap();
    fs::write(dir.join("junk"), b"?").unwrap();
    Spool::open(d.path()).unwrap();
    let left: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, vec![format!("{}.77", std::process::id())]);
}

#[test]
fn outgoing_streams_a_spooled_body_exactly() {
    let d = tempfile::tempdir().unwrap();
    let spool = Spool::open(d.path()).unwrap().with_threshold(8);
    let mut w = spool.writer();
    let mut msg = b"A-R: forged\r\nSubject: s\r\n\r\n".to_vec();
    msg.extend((0..200_000u32).map(|i| (i % 253) as u8));
    w.write(&msg);
    let m = Arc::new(w.finish().unwrap());
    assert!(m.path().is_some());
    let o = Outgoing::new(m)
        .omitting(vec![std::ops::Range { start: 0, end: 13 }])
        .with_prepended(b"R: 1\r\n");
    let out = d.path().join("out");
    let mut f = File::create(&out).unwrap();
    o.write_to(&mut f).unwrap();
    drop(f);
    let mut want = b"R: 1\r\n".to_vec();
    want.extend_from_slice(&msg[13..]);
    assert_eq!(fs::read(&out).unwrap(), want);
    assert_eq!(o.len(), want.len());
    assert_eq!(o.to_vec(), want);
}

#[test]
fn a_body_that_would_eat_the_reserve_is_refused() {
    let d = tempfile::tempdir().unwrap();
    // No disk has this much free: the spill fails, nothing is left behind.
    let spool = Spool::open(d.path())
        .unwrap()
        .with_threshold(4)
        .with_reserve(u64::MAX);
    let mut w = spool.writer();
    w.write(b"0123456789");
    w.write(b"more");
    let e = w.finish().unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::StorageFull);
    assert_eq!(files(spool.dir().unwrap()), 0);
    // A small body needs no disk and is fine.
    let mut w = spool.writer();
    w.write(b"012");
    assert!(w.finish().is_ok());
    // A modest reserve passes.
    let spool = Spool::open(d.path())
        .unwrap()
        .with_threshold(4)
        .with_reserve(1);
    let mut w = spool.writer();
    w.write(b"0123456789");
    assert_eq!(w.finish().unwrap().as_bytes(), b"0123456789");
}
