//! IMAP4rev2 (RFC 9051, with SEARCHRES), UTF8=ACCEPT (RFC 6855), SEARCH OLDER/YOUNGER (RFC 5032), exact
//! \Recent and RENAME of a selected mailbox, against the real binary with Python imaplib
//! sending raw commands (imaplib's own UTF8 APPEND puts `UTF8 (` inside the literal, which
//! RFC 6855 §4 does not allow, so the commands are written out here).
mod common;

use common::*;

const USER: &str = "rev2@example.test";
const PASS: &str = "rev two pass";

#[test]
fn rev2_utf8_within_recent_and_rename() {
    let p = Postern::start();
    p.add_user(USER, PASS);
    let script = format!(
        r#"
import imaplib, ssl
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE

def conn():
    s = imaplib.IMAP4_SSL('127.0.0.1', {imaps}, ssl_context=ctx)
    typ, _ = s.login('{USER}', '{PASS}')
    assert typ == 'OK'
    return s

def raw(s, cmd):
    """Send one command as bytes; return (status, untagged responses, tag)."""
    s.untagged_responses.clear()
    tag = s._new_tag()
    s.send(tag + b' ' + cmd + b'\r\n')
    typ, data = s._get_tagged_response(tag)
    return typ, dict(s.untagged_responses), tag.decode()

def ok(r):
    assert r[0] == 'OK', r
    return r[1]

a = conn()
caps = a.capabilities
assert 'IMAP4REV1' in caps and 'IMAP4REV2' in caps, caps
assert 'UTF8=ACCEPT' in caps and 'WITHIN' in caps and 'ENABLE' in caps, caps
m1 = b'Subject: old one\r\n\r\nfrom 2020\r\n'
m2 = b'Subject: new one\r\n\r\nfrom now\r\n'
ok(raw(a, b'APPEND INBOX "01-Jan-2020 00:00:00 +0000" {{%d+}}\r\n' % len(m1) + m1))
ok(raw(a, b'APPEND INBOX {{%d+}}\r\n' % len(m2) + m2))

# A plain IMAP4rev1 session may look (EXAMINE) without taking \Recent away.
r1 = conn()
u = ok(raw(r1, b'EXAMINE INBOX'))
assert u.get('RECENT') == [b'2'], u

# IMAP4rev2: ENABLE, then no \Recent, ESEARCH for SEARCH, LIST in SELECT.
u = ok(raw(a, b'ENABLE IMAP4rev2'))
assert u['ENABLED'] == [b'IMAP4rev2'], u
u = ok(raw(a, b'SELECT INBOX'))
assert 'RECENT' not in u and u['EXISTS'] == [b'2'], u
assert u['LIST'] == [b'(\\HasNoChildren) "." "INBOX"'], u
typ, u, tag = raw(a, b'SEARCH ALL')
assert typ == 'OK' and 'SEARCH' not in u, u
assert u['ESEARCH'] == [('(TAG "%s") ALL 1:2' % tag).encode()], u
typ, u, tag = raw(a, b'UID SEARCH RECENT')
assert u['ESEARCH'] == [('(TAG "%s") UID' % tag).encode()], u
u = ok(raw(a, b'FETCH 1:* FLAGS'))
assert all(b'Recent' not in f for f in u['FETCH']), u
# OLDER / YOUNGER (RFC 5032) on INTERNALDATE.
typ, u, tag = raw(a, b'SEARCH OLDER 3600')
assert u['ESEARCH'] == [('(TAG "%s") ALL 1' % tag).encode()], u
typ, u, tag = raw(a, b'UID SEARCH RETURN (COUNT) YOUNGER 3600')
assert u['ESEARCH'] == [('(TAG "%s") UID COUNT 1' % tag).encode()], u
assert raw(a, b'SEARCH OLDER 0')[0] == 'BAD'
# SEARCHRES (part of IMAP4rev2): SAVE, then $.
u = ok(raw(a, b'SEARCH RETURN (SAVE) OLDER 3600'))
assert 'ESEARCH' not in u, u
u = ok(raw(a, b'FETCH $ (BODY.PEEK[])'))
assert [x[1] for x in u['FETCH'] if isinstance(x, tuple)] == [m1], u
u = ok(raw(a, b'STATUS INBOX (MESSAGES DELETED SIZE)'))
assert u['STATUS'] == [b'"INBOX" (MESSAGES 2 DELETED 0 SIZE %d)' % (len(m1) + len(m2))], u

# The IMAP4rev2 SELECT took \Recent: the rev1 session now finds none (RFC 3501 §2.3.2).
u = ok(raw(r1, b'SELECT INBOX'))
assert u.get('RECENT') == [b'0'], u
u = ok(raw(r1, b'SEARCH ALL'))
assert u['SEARCH'] == [b'1 2'], u

# UTF8=ACCEPT: UTF-8 names both ways, APPEND UTF8 (literal8), no SEARCH CHARSET.
w = conn()
u = ok(raw(w, b'ENABLE UTF8=ACCEPT'))
assert u['ENABLED'] == [b'UTF8=ACCEPT'], u
name = 'Grüße'.encode()
ok(raw(w, b'CREATE "' + name + b'"'))
u = ok(raw(w, b'LIST "" "Gr*"'))
assert u['LIST'] == [b'(\\HasNoChildren) "." "' + name + b'"'], u
m3 = 'Subject: Grüße aus Köln\r\nFrom: jörg@example.test\r\n\r\nUTF-8 header\r\n'.encode()
typ, u, tag = raw(w, b'APPEND "' + name + b'" UTF8 (~{{%d+}}\r\n' % len(m3) + m3 + b')')
assert typ == 'OK', (typ, u)
ok(raw(w, b'SELECT "' + name + b'"'))
u = ok(raw(w, b'FETCH 1 BODY.PEEK[]'))
assert u['FETCH'][0][1] == m3, u
assert raw(w, b'SEARCH CHARSET UTF-8 ALL')[0] == 'BAD'
u = ok(raw(w, b'SEARCH SUBJECT "' + 'Köln'.encode() + b'"'))
assert u['SEARCH'] == [b'1'], u
# The rev1 session sees the same mailbox in modified UTF-7.
u = ok(raw(r1, b'LIST "" "Gr*"'))
assert u['LIST'] == [b'(\\HasNoChildren) "." "Gr&APwA3w-e"'], u

# RENAME of the selected mailbox: the renaming session follows it; another session that
# had it selected is disconnected with BYE (as Dovecot does).
ok(raw(a, b'CREATE Projects'))
ok(raw(a, b'APPEND Projects {{%d+}}\r\n' % len(m2) + m2))
ok(raw(r1, b'SELECT Projects'))
ok(raw(a, b'SELECT Projects'))
u = ok(raw(a, b'RENAME Projects Done'))
assert u['LIST'] == [b'(\\HasNoChildren) "." "Done" ("OLDNAME" ("Projects"))'], u
u = ok(raw(a, b'FETCH 1 (UID BODY.PEEK[])'))
assert u['FETCH'][0][1] == m2, u
ok(raw(a, b'STORE 1 +FLAGS (\\Flagged)'))
try:
    raw(r1, b'NOOP')
    raise SystemExit('old-name session kept going')
except imaplib.IMAP4.abort as e:
    assert 'renamed or deleted' in str(e), e
a.logout()
w.logout()
print('ALL OK')
"#,
        imaps = p.ports.imaps,
    );
    let out = python(&script);
    assert!(out.contains("ALL OK"), "{out}");
    let root = p.maildir(USER);
    assert!(root.join(".Gr&APwA3w-e/cur").is_dir());
    assert!(root.join(".Done/cur").is_dir() && !root.join(".Projects").exists());
}
