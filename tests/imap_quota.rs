//! QUOTA (RFC 9208) against the real binary: Python imaplib reads the figures and meets
//! NO [OVERQUOTA]; Python smtplib meets 452 4.2.2 for a full mailbox on port 25, at RCPT or
//! after DATA with the real size (`delivery::quota`).
mod common;

use common::*;

const USER: &str = "alice@example.test";
const PASS: &str = "correct horse battery";
const OTHER: &str = "bob@example.test";

#[test]
fn quota_figures_and_enforcement_over_imap_and_smtp() {
    let p = Postern::start_with(Setup {
        extra: "[limits]\nmailbox_quota = 10240\n".into(),
        ..Setup::default()
    });
    p.add_user(USER, PASS);
    p.add_user(OTHER, PASS);
    let script = format!(
        r#"
import imaplib, smtplib, ssl
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
def ok(r):
    assert r[0] == 'OK', r
    return r[1]
def msg(n):
    head = b'From: a@remote.test\r\nSubject: q\r\n\r\n'
    body = (b'x' * 70 + b'\r\n') * 100
    return head + body[:n - len(head)]
s = imaplib.IMAP4_SSL('127.0.0.1', {imaps}, ssl_context=ctx)
ok(s.login('{USER}', '{PASS}'))
caps = ok(s.capability())[0].split()
assert b'QUOTA' in caps and b'QUOTA=RES-STORAGE' in caps, caps
typ, d = s.getquotaroot('INBOX')
assert typ == 'OK', d
assert d[0] == [b'"INBOX" ""'] and d[1] == [b'"" (STORAGE 0 10)'], d
ok(s.append('INBOX', None, None, msg(4000)))
assert ok(s.getquota('""')) == [b'"" (STORAGE 4 10)']
ok(s.select('INBOX'))
ok(s.copy('1', 'Archive'))
assert ok(s.getquota('""')) == [b'"" (STORAGE 8 10)']
# 12000 > 10240: nothing stored
typ, d = s.copy('1', 'Archive')
assert typ == 'NO' and b'[OVERQUOTA]' in d[0], (typ, d)
typ, d = s.append('INBOX', None, None, msg(3000))
assert typ == 'NO' and b'[OVERQUOTA]' in d[0], (typ, d)
assert s.status('Archive', '(MESSAGES)')[1][0].endswith(b'(MESSAGES 1)')
assert s.status('INBOX', '(MESSAGES)')[1][0].endswith(b'(MESSAGES 1)')
# MOVE does not change usage: allowed.
typ, d = s._simple_command('MOVE', '1', 'Archive')
assert typ == 'OK', d
typ, d = s._simple_command('SETQUOTA', '""', '(STORAGE 100000)')
assert typ == 'NO' and b'[NOPERM]' in d[0], (typ, d)
typ, d = s.getquota('"other"')
assert typ == 'NO', (typ, d)
# Below the limit RCPT is accepted, but after DATA the real size counts: 8000 + 3000 is
# over, and the one recipient's mailbox is full: 452 4.2.2, nothing stored.
c = smtplib.SMTP('127.0.0.1', {smtp})
c.ehlo('client.remote.test')
r = c.mail('a@remote.test'); assert r[0] == 250, r
r = c.rcpt('{USER}'); assert r[0] == 250, r
code, text = c.data(msg(3000))
assert code == 452 and text.startswith(b'4.2.2'), (code, text)
# Larger than the whole quota: it can never fit, 552 5.2.2.
r = c.mail('a@remote.test'); assert r[0] == 250, r
r = c.rcpt('{USER}'); assert r[0] == 250, r
code, text = c.data(msg(7000) * 2)
assert code == 552 and text.startswith(b'5.2.2'), (code, text)
# Two recipients, one over quota with this message: the other gets it, 250, and the
# sender is told about the first in a DSN.
r = c.mail('a@remote.test'); assert r[0] == 250, r
r = c.rcpt('{USER}'); assert r[0] == 250, r
r = c.rcpt('{OTHER}'); assert r[0] == 250, r
r = c.data(msg(3000)); assert r[0] == 250, r
# The same on submission, from a local sender: the DSN comes back to its INBOX.
sub = smtplib.SMTP_SSL('127.0.0.1', {submissions}, context=ctx, timeout=30)
sub.login('{OTHER}', '{PASS}')
own = b'From: {OTHER}\r\nSubject: to both\r\n\r\n' + (b'y' * 70 + b'\r\n') * 45
assert sub.sendmail('{OTHER}', ['{USER}', '{OTHER}'], own) == dict()
sub.quit()
# Fits: delivered.
r = c.mail('a@remote.test'); assert r[0] == 250, r
r = c.rcpt('{USER}'); assert r[0] == 250, r
r = c.data(msg(1000)); assert r[0] == 250, r
# Fill the quota to the octet with APPEND (STATUS SIZE gives exact usage) ...
used = 0
for l in ok(s.list()):
    mb = l.rsplit(b' ', 1)[1].strip(b'"').decode()
    d = ok(s.status(mb, '(SIZE)'))[0]
    used += int(d.rsplit(b'SIZE ', 1)[1].rstrip(b')'))
head = b'Subject: fill\r\n\r\n'
ok(s.append('INBOX', None, None, head + b'f' * (10240 - used - len(head))))
# ... then the mailbox is full: 452 4.2.2 at RCPT.
r = c.mail('a@remote.test'); assert r[0] == 250, r
code, text = c.rcpt('{USER}')
assert code == 452 and text.startswith(b'4.2.2'), (code, text)
c.quit()
ok(s.select('INBOX'))
assert ok(s.search(None, 'ALL'))[0] == b'1 2', ok(s.search(None, 'ALL'))
s.logout()
print('ALL OK')
"#,
        imaps = p.ports.imaps,
        smtp = p.ports.smtp,
        submissions = p.ports.submissions,
    );
    let out = python(&script);
    assert!(out.contains("ALL OK"), "{out}");
    // bob: the port 25 copy, his own submitted copy, and the DSN about alice (RFC 3464).
    let got = p.wait_messages(OTHER, "", 3, std::time::Duration::from_secs(15));
    assert_eq!(got.len(), 3, "{}", p.log());
    let dsn = got
        .iter()
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .find(|m| m.contains("message/delivery-status"))
        .expect("a DSN");
    assert!(
        dsn.contains("Final-Recipient: rfc822; alice@example.test")
            && dsn.contains("Action: failed")
            && dsn.contains("Status: 5.2.2")
            && dsn.contains("Subject: to both"),
        "{dsn}"
    );
    assert!(
        p.wait_log("over quota: DSN queued", std::time::Duration::from_secs(10)),
        "{}",
        p.log()
    );
}

/// Without a limit QUOTA is advertised, but no mailbox has a quota root (RFC 9208 §4.3).
#[test]
fn no_limit_means_no_quota_root() {
    let p = Postern::start();
    p.add_user(USER, PASS);
    let script = format!(
        r#"
import imaplib, ssl
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = imaplib.IMAP4_SSL('127.0.0.1', {imaps}, ssl_context=ctx)
s.login('{USER}', '{PASS}')
assert b'QUOTA' in s.capability()[1][0].split()
s.create('Archive')
typ, d = s.getquotaroot('Archive')
assert typ == 'OK' and d[0] == [b'"Archive"'] and d[1] == [None], (typ, d)
typ, d = s.getquota('""')
assert typ == 'NO' and b'NONEXISTENT' in d[0], (typ, d)
typ, d = s.getquotaroot('Nope')
assert typ == 'NO', (typ, d)
typ, d = s.append('Archive', None, None, b'Subject: x\r\n\r\n' + b'y' * 100000)
assert typ == 'OK', (typ, d)
s.logout()
print('ALL OK')
"#,
        imaps = p.ports.imaps,
    );
    let out = python(&script);
    assert!(out.contains("ALL OK"), "{out}");
}

/// Local delivery that does not answer an SMTP client (`postern sendmail`, the queue's
/// local recipients) checks the quota too: a full mailbox defers the copy in the queue
/// (452 4.2.2, retried), which delivers it once there is room.
#[test]
fn queued_local_delivery_waits_for_room() {
    let p = Postern::start_with(Setup {
        extra: "[limits]\nmailbox_quota = 4096\n".into(),
        ..Setup::default()
    });
    p.add_user(USER, PASS);
    // About 2.3 KB stored straight away, 3.6 KB through the queue (DKIM-signed): each
    // fits in 4 KiB alone, two do not.
    let body = "x".repeat(2200);
    let first = format!("Subject: first\n\n{body}\n");
    let out = p.cli(&["sendmail", USER], Some(&first));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(p.messages(USER, "").len(), 1);
    // No room for a second one: not stored, queued; the queue finds the mailbox full too.
    let second = format!("Subject: second\n\n{body}\n");
    let out = p.cli(&["sendmail", USER], Some(&second));
    assert!(out.status.success(), "{out:?}");
    let list = || String::from_utf8_lossy(&p.cli(&["queue", "list"], None).stdout).into_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while !list().contains("4.2.2") && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let l = list();
    assert!(l.contains("4.2.2") && l.contains(USER), "{l}\n{}", p.log());
    assert_eq!(p.messages(USER, "").len(), 1);
    // The user makes room over IMAP; the retry delivers it.
    let script = format!(
        r#"
import imaplib, ssl
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = imaplib.IMAP4_SSL('127.0.0.1', {imaps}, ssl_context=ctx)
s.login('{USER}', '{PASS}')
s.select('INBOX')
s.store('1', '+FLAGS', '\\Deleted')
assert s.expunge()[0] == 'OK'
s.logout()
print('ALL OK')
"#,
        imaps = p.ports.imaps,
    );
    assert!(python(&script).contains("ALL OK"));
    let out = p.cli(&["queue", "retry", "--all"], None);
    assert!(out.status.success(), "{out:?}");
    let got = p.wait_messages(USER, "", 1, std::time::Duration::from_secs(15));
    assert_eq!(got.len(), 1, "{}\n{}", list(), p.log());
    assert!(String::from_utf8_lossy(&got[0]).contains("Subject: second"));
}
