//! `postern backup` under load restores to the same UIDVALIDITY and UIDs; `postern export`
//! (mbox) read back by `postern import` gives the same bytes, flags and dates over IMAP.
mod common;

use common::*;
use std::time::Duration;

const USER: &str = "bea@example.test";
const PASS: &str = "beas backup password";
const OTHER: &str = "cy@example.test";

fn deliver(port: u16, n: usize) {
    let mut c = Raw::connect(port);
    assert!(c.reply().starts_with("220"));
    c.send("EHLO client.test\r\n");
    assert!(c.reply().starts_with("250"));
    c.send("MAIL FROM:<x@remote.test>\r\n");
    assert!(c.reply().starts_with("250"));
    c.send(&format!("RCPT TO:<{USER}>\r\n"));
    assert!(c.reply().starts_with("250"));
    c.send("DATA\r\n");
    assert!(c.reply().starts_with("354"));
    c.send(&format!(
        "From: x@remote.test\r\nSubject: msg {n}\r\nMessage-ID: <{n}@remote.test>\r\n\r\nbody {n}\r\nFrom here\r\n.\r\n"
    ));
    assert!(c.reply().starts_with("250"));
    c.send("QUIT\r\n");
}

/// Python: UIDVALIDITY and uid → (subject, flags) of a folder.
fn uid_map(p: &Postern, user: &str, pass: &str, folder: &str) -> String {
    python(&format!(
        r#"import imaplib, ssl
ctx = ssl.create_default_context(cafile={cert:?})
m = imaplib.IMAP4_SSL('localhost', {port}, ssl_context=ctx)
m.login({user:?}, {pass:?})
m.select({folder:?})
uv = m.response('UIDVALIDITY')[1][0].decode()
typ, data = m.uid('FETCH', '1:*', '(FLAGS INTERNALDATE BODY.PEEK[])')
out = []
for d in data:
    if isinstance(d, tuple):
        head = d[0].split(b' BODY')[0].split(b'(', 1)[1].replace(b' \\Recent', b'').replace(b'\\Recent', b'')
        out.append(repr((head, d[1])))
print(uv)
print('\n'.join(sorted(out)))
"#,
        cert = p.self_signed_cert().display().to_string(),
        port = p.ports.imaps,
    ))
}

#[test]
fn backup_under_load_restores_identical_uids() {
    let mut p = Postern::start();
    p.add_user(USER, PASS);
    for i in 0..5 {
        deliver(p.ports.smtp, i);
    }
    // Flags set over IMAP, so the UID list holds MODSEQs and flags.
    python(&format!(
        r#"import imaplib, ssl
ctx = ssl.create_default_context(cafile={cert:?})
m = imaplib.IMAP4_SSL('localhost', {port}, ssl_context=ctx)
m.login({USER:?}, {PASS:?})
m.select('INBOX')
m.uid('STORE', '1:2', '+FLAGS', '(\\Seen $Keep)')
m.logout()
"#,
        cert = p.self_signed_cert().display().to_string(),
        port = p.ports.imaps,
    ));
    // Deliveries keep arriving while the backup runs.
    let smtp = p.ports.smtp;
    let load = std::thread::spawn(move || {
        for i in 5..25 {
            deliver(smtp, i);
        }
    });
    let dest = p.dir.path().join("backup");
    let o = p.cli(&["backup", &path_str(&dest)], None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    load.join().unwrap();
    let before = uid_map(&p, USER, PASS, "INBOX");
    p.stop();
    std::fs::rename(p.data_dir(), p.dir.path().join("data.old")).unwrap();
    let o = p.cli(&["restore", &path_str(&dest)], None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    p.spawn();
    let after = uid_map(&p, USER, PASS, "INBOX");
    let (uv_b, rest_b) = before.split_once('\n').unwrap();
    let (uv_a, rest_a) = after.split_once('\n').unwrap();
    assert_eq!(uv_a, uv_b, "UIDVALIDITY changed");
    let before: Vec<&str> = rest_b.lines().collect();
    let after: Vec<&str> = rest_a.lines().collect();
    // Every restored message is the same message under the same UID with the same flags,
    // and at least the mail from before the backup is there.
    assert!(after.len() >= 5, "{after:?}");
    for line in &after {
        // Mail that had no UID in the backup gets one above the restore gap, never one the
        // original server may have given to another message.
        let uid: u64 = line
            .split("UID ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|u| u.parse().ok())
            .unwrap();
        if uid > 1_000_000 {
            continue;
        }
        assert!(
            before.contains(line),
            "{line} not in the original:\n{before:?}"
        );
    }
    assert!(
        after.iter().filter(|l| l.contains("$Keep")).count() == 2,
        "{after:?}"
    );
    // A second restore into a non-empty data dir is refused.
    let o = p.cli(&["restore", &path_str(&dest)], None);
    assert!(!o.status.success());
}

#[test]
fn export_mbox_and_maildir_round_trip_through_import() {
    let p = Postern::start();
    p.add_user(USER, PASS);
    p.add_user(OTHER, PASS);
    for i in 0..3 {
        deliver(p.ports.smtp, i);
    }
    python(&format!(
        r#"import imaplib, ssl
ctx = ssl.create_default_context(cafile={cert:?})
m = imaplib.IMAP4_SSL('localhost', {port}, ssl_context=ctx)
m.login({USER:?}, {PASS:?})
m.select('INBOX')
m.uid('STORE', '1', '+FLAGS', '(\\Seen \\Flagged $Keep)')
m.uid('STORE', '2', '+FLAGS', '(\\Answered)')
m.logout()
"#,
        cert = p.self_signed_cert().display().to_string(),
        port = p.ports.imaps,
    ));
    std::thread::sleep(Duration::from_millis(50));
    let mbox_dir = p.dir.path().join("out-mbox");
    let o = p.cli(
        &["export", USER, &path_str(&mbox_dir), "--format", "mbox"],
        None,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = p.cli(
        &["import", OTHER, &path_str(&mbox_dir.join("INBOX.mbox"))],
        None,
    );
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(out.contains("imported 3 messages"), "{out}");
    let strip = |s: &str| -> Vec<String> {
        // Compare flags, date and bytes; UIDs may differ between the two users.
        s.lines()
            .skip(1)
            .map(|l| l.split_once(" FLAGS").map(|x| x.1).unwrap_or(l).to_owned())
            .collect()
    };
    let a = uid_map(&p, USER, PASS, "INBOX");
    let b = uid_map(&p, OTHER, PASS, "INBOX");
    assert_eq!(strip(&a), strip(&b), "mbox round trip");
    let md = p.dir.path().join("out-md");
    let o = p.cli(&["export", USER, &path_str(&md)], None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let names: Vec<String> = std::fs::read_dir(md.join("cur"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(names.iter().any(|n| n.ends_with(":2,FSa")), "{names:?}");
    assert!(md.join(".Sent/cur").is_dir());
}
