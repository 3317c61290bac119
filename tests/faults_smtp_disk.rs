//! Issue 12 "disk full" on SMTP against the real binary: a recipient's Maildir on a tiny
//! tmpfs that is full. The answer is `452 4.3.1` (RFC 3463 "mail system full"), no partial
//! file stays in `tmp/`, and mail is accepted again once there is space.
//!
//! Mounting needs root (CAP_SYS_ADMIN); without it the test says so and passes vacuously.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Postern, Raw};

struct Tmpfs(PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Put `dir` (keeping its contents) on a tmpfs of `size`; None when mounting is not allowed.
fn tmpfs_over(dir: &Path, size: &str) -> Option<Tmpfs> {
    let saved = tempfile::tempdir().unwrap();
    let copy = |from: &Path, to: &Path| {
        let ok = Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", from.display()))
            .arg(to)
            .status()
            .unwrap()
            .success();
        assert!(ok, "cp -a {} {}", from.display(), to.display());
    };
    copy(dir, saved.path());
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        return None;
    }
    let guard = Tmpfs(dir.to_path_buf());
    copy(saved.path(), dir);
    Some(guard)
}

fn send(p: &Postern, subject: &str) -> String {
    let mut c = Raw::connect(p.ports.smtp);
    assert!(c.reply().starts_with("220"));
    c.send("EHLO client.example\r\n");
    assert!(c.reply().starts_with("250"));
    c.send("MAIL FROM:<s@remote.example>\r\n");
    assert!(c.reply().starts_with("250"));
    c.send("RCPT TO:<bob@example.test>\r\n");
    assert!(c.reply().starts_with("250"));
    c.send("DATA\r\n");
    assert!(c.reply().starts_with("354"));
    let body = "x".repeat(200);
    let mut msg = format!("From: s@remote.example\r\nSubject: {subject}\r\n\r\n");
    for _ in 0..200 {
        msg.push_str(&body);
        msg.push_str("\r\n");
    }
    msg.push_str(".\r\n");
    c.send(&msg);
    let r = c.reply();
    c.send("QUIT\r\n");
    r
}

#[test]
fn full_disk_answers_452_4_3_1_and_leaves_no_temp_file() {
    let p = Postern::start_with(common::Setup {
        extra: "[inbound]\nverify = false\n".into(),
        ..Default::default()
    });
    p.add_user("bob@example.test", "bob-pw");
    // Deliver once so the Maildir and its index exist.
    let first = send(&p, "first");
    assert!(first.starts_with("250"), "{first}");
    let maildir = p.maildir("bob@example.test");
    let mount = tmpfs_over(&maildir, "256k");
    if !common::peers::require("a tmpfs mount (needs root)", mount.is_some()) {
        return;
    }
    let _mount = mount;
    // Fill it to the last block.
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=4k", "count=100000"])
        .arg(format!("of={}", maildir.join("filler").display()))
        .output();
    let r = send(&p, "second");
    assert!(r.starts_with("452 4.3.1"), "{r}");
    let tmp: Vec<_> = std::fs::read_dir(maildir.join("tmp")).unwrap().collect();
    assert!(tmp.is_empty(), "partial files left: {tmp:?}");
    // Space returns: accepted again.
    std::fs::remove_file(maildir.join("filler")).unwrap();
    let r = send(&p, "third");
    assert!(r.starts_with("250"), "{r}");
}
