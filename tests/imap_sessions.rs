//! Several sessions on one mailbox, IDLE, restarts, curl and mbsync against the real binary.
mod common;

use common::*;
use std::time::Duration;

const USER: &str = "bob@example.test";
const PASS: &str = "bobs secret pw";

fn setup() -> Postern {
    let p = Postern::start();
    p.add_user(USER, PASS);
    p
}

/// A message dropped into new/ the way Store::deliver writes it (tmp, fsync, rename).
fn drop_message(p: &Postern, subject: &str) {
    let base = p.maildir(USER);
    for d in ["tmp", "new", "cur"] {
        std::fs::create_dir_all(base.join(d)).unwrap();
    }
    let body = format!("From: x@remote.test\r\nTo: {USER}\r\nSubject: {subject}\r\n\r\nhi\r\n");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let name = format!(
        "{}.M{}P9.t,S={}",
        now.as_secs(),
        now.subsec_nanos(),
        body.len()
    );
    std::fs::write(base.join("tmp").join(&name), &body).unwrap();
    std::fs::rename(base.join("tmp").join(&name), base.join("new").join(&name)).unwrap();
}

/// Wait (30 s at most) for a file the Python client writes when it is ready.
fn wait_for_file(path: &std::path::Path, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !path.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(path.exists(), "{what}");
}

const PY: &str = r#"
import imaplib, ssl, socket, time, sys
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
def ok(r):
    assert r[0] == 'OK', r
    return r[1]
"#;

#[test]
fn expunge_seen_by_second_session_and_idle_push_of_smtp_delivery() {
    let p = setup();
    drop_message(&p, "one");
    drop_message(&p, "two");
    let trigger = p.dir.path().join("deliver-now");
    let script = format!(
        r#"{PY}
a = imaplib.IMAP4_SSL('127.0.0.1', {imaps}, ssl_context=ctx)
b = imaplib.IMAP4_SSL('127.0.0.1', {imaps}, ssl_context=ctx)
ok(a.login('{USER}', '{PASS}')); ok(b.login('{USER}', '{PASS}'))
assert ok(a.select('INBOX'))[0] == b'2'
assert ok(b.select('INBOX'))[0] == b'2'
ok(a.store('1', '+FLAGS', '\\Deleted'))
ok(a.expunge())
typ, d = b.noop()
print('b noop', d, b.untagged_responses)
assert b.untagged_responses.get('EXPUNGE') == [b'1'], b.untagged_responses
# flag change by a is pushed to b as FETCH
ok(a.store('1', '+FLAGS', '\\Flagged'))
b.untagged_responses.clear()
b.noop()
assert any(b'\\Flagged' in x for x in b.untagged_responses.get('FETCH', [])), b.untagged_responses
# IDLE on b (raw, imaplib has no idle in 3.11)
tag = b._new_tag().decode()
b.send(('%s IDLE\r\n' % tag).encode())
line = b.readline()
assert line.startswith(b'+'), line
open('{trigger}', 'w').write('go')
deadline = time.time() + 20
got = b''
while time.time() < deadline:
    l = b.readline()
    got += l
    if b'EXISTS' in l:
        break
assert b'* 2 EXISTS' in got, got
b.send(b'DONE\r\n')
l = b.readline()
while not l.startswith(tag.encode()):
    l = b.readline()
assert b'OK' in l, l
b.untagged_responses.clear()
f = ok(b.fetch('2', '(BODY.PEEK[HEADER.FIELDS (SUBJECT)])'))
assert any(isinstance(x, tuple) and b'Subject: pushed' in x[1] for x in f), f
print('ALL OK')
"#,
        imaps = p.ports.imaps,
        trigger = trigger.display()
    );
    let handle = std::thread::spawn(move || python(&script));
    wait_for_file(&trigger, "client never started IDLE");
    // Deliver over SMTP port 25 (the real path: SMTP session -> Store::deliver -> hub).
    if which("swaks") {
        let out = std::process::Command::new("swaks")
            .args(["--server", &format!("127.0.0.1:{}", p.ports.smtp)])
            .args(["--to", USER, "--from", "x@remote.example"])
            .args(["--header", "Subject: pushed"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    } else {
        python(&format!(
            "import smtplib\ns = smtplib.SMTP('127.0.0.1', {})\ns.sendmail('x@remote.example', ['{USER}'], b'Subject: pushed\\r\\n\\r\\nhi\\r\\n')\ns.quit()\n",
            p.ports.smtp
        ));
    }
    let out = handle.join().unwrap();
    assert!(out.contains("ALL OK"), "{out}");
}

/// Mail put into the Maildir by another program (no signal from this server) reaches every
/// session idling on the mailbox: one of them looks at the disk for all (`claim_poll`), and
/// what it finds wakes the others.
#[test]
fn idle_sessions_all_see_mail_another_program_drops_in() {
    let p = setup();
    drop_message(&p, "one");
    let trigger = p.dir.path().join("drop-now");
    let script = format!(
        r#"{PY}
cs = [imaplib.IMAP4_SSL('127.0.0.1', {imaps}, ssl_context=ctx) for _ in range(3)]
tags = []
for c in cs:
    ok(c.login('{USER}', '{PASS}'))
    assert ok(c.select('INBOX'))[0] == b'1'
    tag = c._new_tag().decode()
    c.send(('%s IDLE\r\n' % tag).encode())
    assert c.readline().startswith(b'+')
    c.sock.settimeout(20)
    tags.append(tag)
open('{trigger}', 'w').write('go')
for c, tag in zip(cs, tags):
    got = b''
    while b'EXISTS' not in got:
        l = c.readline()
        assert l, got
        got += l
    assert b'* 2 EXISTS' in got, got
    c.send(b'DONE\r\n')
    l = c.readline()
    while not l.startswith(tag.encode()):
        l = c.readline()
    assert b'OK' in l, l
print('ALL OK')
"#,
        imaps = p.ports.imaps,
        trigger = trigger.display()
    );
    let handle = std::thread::spawn(move || python(&script));
    wait_for_file(&trigger, "clients never started IDLE");
    drop_message(&p, "dropped by another program");
    let out = handle.join().unwrap();
    assert!(out.contains("ALL OK"), "{out}");
}

/// A folder deleted by another session while this one idles on it: BYE, as Dovecot says it
/// (the idling session learns it from the shared disk look, not from its own scan).
#[test]
fn idle_on_a_folder_another_session_deletes_ends_with_bye() {
    let p = setup();
    drop_message(&p, "one");
    let script = format!(
        r#"{PY}
a = imaplib.IMAP4_SSL('127.0.0.1', {imaps}, ssl_context=ctx)
b = imaplib.IMAP4_SSL('127.0.0.1', {imaps}, ssl_context=ctx)
ok(a.login('{USER}', '{PASS}')); ok(b.login('{USER}', '{PASS}'))
ok(b.create('Box'))
ok(a.select('Box'))
a.send(b'i1 IDLE\r\n')
assert a.readline().startswith(b'+')
a.sock.settimeout(20)
ok(b.delete('Box'))
got = b''
while b'BYE' not in got:
    l = a.readline()
    assert l, got
    got += l
assert b'NONEXISTENT' in got, got
print('ALL OK')
"#,
        imaps = p.ports.imaps,
    );
    let out = python(&script);
    assert!(out.contains("ALL OK"), "{out}");
}

#[test]
fn uids_survive_restart() {
    let mut p = setup();
    for s in ["a", "b", "c"] {
        drop_message(&p, s);
    }
    let fetch = format!(
        r#"{PY}
s = imaplib.IMAP4_SSL('127.0.0.1', {imaps}, ssl_context=ctx)
ok(s.login('{USER}', '{PASS}'))
ok(s.select('INBOX'))
r = ok(s.uid('FETCH', '1:*', '(UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])'))
print([x[0].split(b' ')[2] + b'=' + x[1].strip() for x in r if isinstance(x, tuple)])
print(s.response('UIDVALIDITY'))
"#,
        imaps = p.ports.imaps
    );
    let before = python(&fetch);
    // Expunge the middle one, so a reassignment would show.
    python(&format!(
        r#"{PY}
s = imaplib.IMAP4_SSL('127.0.0.1', {imaps}, ssl_context=ctx)
ok(s.login('{USER}', '{PASS}'))
ok(s.select('INBOX'))
ok(s.uid('STORE', '2', '+FLAGS', '(\\Deleted)'))
ok(s.expunge())
"#,
        imaps = p.ports.imaps
    ));
    p.kill9();
    p.spawn();
    let after = python(&fetch);
    let b: Vec<&str> = before.lines().collect();
    let a: Vec<&str> = after.lines().collect();
    assert_eq!(b[1], a[1], "UIDVALIDITY changed");
    assert!(
        b[0].contains("b'1=Subject: a'") && b[0].contains("b'3=Subject: c'"),
        "{before}"
    );
    assert!(
        a[0].contains("b'1=Subject: a'") && a[0].contains("b'3=Subject: c'"),
        "{after}"
    );
    assert!(!a[0].contains("Subject: b"), "{after}");
}

#[test]
fn curl_imaps() {
    if !peers::curl_imap().available() {
        return;
    }
    let p = setup();
    drop_message(&p, "for curl");
    let url = format!("imaps://127.0.0.1:{}/", p.ports.imaps);
    let out = std::process::Command::new("curl")
        .args(["-sk", "--user", &format!("{USER}:{PASS}"), &url])
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&out.stdout);
    assert!(list.contains("INBOX") && list.contains("\\Sent"), "{list}");
    let out = std::process::Command::new("curl")
        .args([
            "-sk",
            "--user",
            &format!("{USER}:{PASS}"),
            &format!("{url}INBOX;UID=1"),
        ])
        .output()
        .unwrap();
    let msg = String::from_utf8_lossy(&out.stdout);
    assert!(msg.contains("Subject: for curl"), "{msg}");
    // APPEND with -T, then read it back over imap:// + STARTTLS.
    let f = p.dir.path().join("up.eml");
    std::fs::write(&f, "Subject: uploaded\r\n\r\nbody\r\n").unwrap();
    let out = std::process::Command::new("curl")
        .args(["-sk", "--user", &format!("{USER}:{PASS}"), "-T"])
        .arg(&f)
        .arg(format!("{url}Archive"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let out = std::process::Command::new("curl")
        .args([
            "-sk",
            "--ssl-reqd",
            "--user",
            &format!("{USER}:{PASS}"),
            &format!("imap://127.0.0.1:{}/Archive;UID=1", p.ports.imap),
        ])
        .output()
        .unwrap();
    let msg = String::from_utf8_lossy(&out.stdout);
    assert!(msg.contains("Subject: uploaded"), "{msg} {out:?}");
}

#[test]
fn mbsync_two_way() {
    if !peers::mbsync().available() {
        return;
    }
    let p = setup();
    drop_message(&p, "server side");
    let local = p.dir.path().join("local");
    std::fs::create_dir_all(&local).unwrap();
    let rc = p.dir.path().join("mbsyncrc");
    std::fs::write(
        &rc,
        format!(
            "IMAPAccount t\nHost localhost\nPort {port}\nUser {USER}\nPass \"{PASS}\"\nSSLType IMAPS\nCertificateFile {cert}\n\n\
             IMAPStore remote\nAccount t\n\n\
             MaildirStore local\nPath {local}/\nInbox {local}/INBOX\nSubFolders Verbatim\n\n\
             Channel c\nFar :remote:\nNear :local:\nPatterns *\nCreate Both\nExpunge Both\nSyncState *\n",
            port = p.ports.imaps,
            cert = p.self_signed_cert().display(),
            local = local.display()
        ),
    )
    .unwrap();
    let run = || {
        let o = std::process::Command::new("mbsync")
            .arg("-c")
            .arg(&rc)
            .arg("-a")
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "mbsync failed: {}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    };
    run();
    let count = |dir: &std::path::Path| {
        ["new", "cur"]
            .iter()
            .map(|s| {
                std::fs::read_dir(dir.join(s))
                    .map(|r| r.count())
                    .unwrap_or(0)
            })
            .sum::<usize>()
    };
    assert_eq!(count(&local.join("INBOX")), 1);
    assert!(local.join("Sent").is_dir(), "special folders synced");
    // Local → server.
    let lnew = local.join("INBOX/new");
    std::fs::write(
        lnew.join("1700000000.local1.host"),
        "Subject: from local\r\n\r\nx\r\n",
    )
    .unwrap();
    run();
    let server = p.messages(USER, "");
    assert_eq!(server.len(), 2, "local message uploaded");
    assert!(
        server
            .iter()
            .any(|m| m.windows(10).any(|w| w == b"from local"))
    );
    // Server-side flag change and a second run are stable.
    run();
    assert_eq!(count(&local.join("INBOX")), 2);
}

/// An empty folder's UIDVALIDITY (reported by SELECT and STATUS) must not change when its
/// first message arrives: Delta Chat resynced everything when it did, mbsync refuses to sync.
#[test]
fn uidvalidity_of_empty_folders_is_stable() {
    let p = setup();
    let script = format!(
        r#"{PY}
import smtplib
def uidvalidity(m, box):
    ok(m.select(box))
    return m.untagged_responses.pop('UIDVALIDITY')[0]
def status_uv(m, box):
    return ok(m.status(box, '(UIDVALIDITY)'))[0]
m = imaplib.IMAP4_SSL('127.0.0.1', {imaps}, ssl_context=ctx)
ok(m.login('{USER}', '{PASS}'))
ok(m.create('Projects'))
before = (uidvalidity(m, 'INBOX'), status_uv(m, 'Projects'))
s = smtplib.SMTP('127.0.0.1', {smtp})
s.sendmail('x@remote.example', ['{USER}'], b'Subject: first\r\n\r\nhi\r\n')
s.quit()
ok(m.append('Projects', None, None, b'Subject: appended\r\n\r\nhi\r\n'))
ok(m.select('INBOX'))
assert m.untagged_responses.pop('EXISTS') == [b'1']
after = (uidvalidity(m, 'INBOX'), status_uv(m, 'Projects'))
assert before == after and b'UIDVALIDITY 1)' not in before[1], (before, after)
print('ALL OK')
"#,
        imaps = p.ports.imaps,
        smtp = p.ports.smtp,
    );
    let out = python(&script);
    assert!(out.contains("ALL OK"), "{out}");
}

/// Mail that arrived between SELECT and IDLE is announced after the "+ idling" continuation
/// (as in RFC 2177's example): clients built on async-imap (Delta Chat) drop untagged data
/// that comes before the continuation and then sat in IDLE without fetching it.
#[test]
fn idle_reports_pending_mail_after_the_continuation() {
    let p = setup();
    let script = format!(
        r#"{PY}
import smtplib
m = imaplib.IMAP4_SSL('127.0.0.1', {imaps}, ssl_context=ctx)
ok(m.login('{USER}', '{PASS}'))
assert ok(m.select('INBOX'))[0] == b'0'
s = smtplib.SMTP('127.0.0.1', {smtp})
s.sendmail('x@remote.example', ['{USER}'], b'Subject: between\r\n\r\nhi\r\n')
s.quit()
m.send(b'i1 IDLE\r\n')
first, second = m.readline(), m.readline()
assert first.startswith(b'+ '), (first, second)
assert second == b'* 1 EXISTS\r\n', (first, second)
m.send(b'DONE\r\n')
l = m.readline()
while not l.startswith(b'i1 '):
    l = m.readline()
assert l.startswith(b'i1 OK'), l
print('ALL OK')
"#,
        imaps = p.ports.imaps,
        smtp = p.ports.smtp,
    );
    let out = python(&script);
    assert!(out.contains("ALL OK"), "{out}");
}

/// A folder deleted and created again gets a greater UIDVALIDITY (RFC 3501 §2.3.1.1), even
/// within the same second, so a client's cached UIDs of the old folder are never reused.
#[test]
fn recreated_folder_gets_a_new_uidvalidity() {
    let p = setup();
    let script = format!(
        r#"{PY}
m = imaplib.IMAP4_SSL('127.0.0.1', {imaps}, ssl_context=ctx)
ok(m.login('{USER}', '{PASS}'))
seen = []
for i in range(3):
    ok(m.create('Scratch'))
    ok(m.append('Scratch', None, None, b'Subject: take %d\r\n\r\nhi\r\n' % i))
    ok(m.select('Scratch'))
    seen.append(int(m.untagged_responses.pop('UIDVALIDITY')[0]))
    ok(m.close())
    ok(m.delete('Scratch'))
assert seen[0] < seen[1] < seen[2], seen
print('ALL OK')
"#,
        imaps = p.ports.imaps,
    );
    let out = python(&script);
    assert!(out.contains("ALL OK"), "{out}");
}
