//! STATUS SIZE (RFC 8438) from the sizes the Maildir file names record.

use super::{logged_in, talk};

#[test]
fn status_size_reads_the_size_in_the_file_name() {
    let (d, svc) = super::services(true);
    let mut s = logged_in(&svc);
    let r = talk(&mut s, "a APPEND INBOX {14+}\r\nSubject: x\r\n\r\n\r\n");
    assert!(r.contains("a OK"), "{r}");
    // A file whose name records its size (`,S=`, as every writer of ours and Dovecot put
    // it): that figure is used, the file is not stat'ed. Here the name says 5 for 9 octets,
    // which only a count from the name reports.
    let new = d.path().join("mail/example.com/u/new");
    std::fs::write(new.join("1700000000.M1P1Q1.host,S=5"), b"a: b\r\n\r\nx").unwrap();
    // And one without: its length on disk.
    std::fs::write(new.join("1700000001.M1P1Q1.host"), b"a: b\r\n\r\nxyz").unwrap();
    let r = talk(&mut s, "s STATUS INBOX (MESSAGES SIZE)\r\n");
    assert!(r.contains("(MESSAGES 3 SIZE 30)"), "{r}");
}
