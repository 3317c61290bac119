//! IMAP against the real binary with independent clients: Python imaplib (STARTTLS and 993),
//! raw sockets, curl and mbsync.
mod common;

use common::*;
use std::time::Duration;

const USER: &str = "alice@example.test";
const PASS: &str = "correct horse battery";

const MIXED: &str = "From: =?utf-8?q?J=C3=B6rg_M=C3=BCller?= <jorg@remote.test>\r\nTo: alice@example.test\r\nSubject: =?utf-8?b?SGVsbG8gV8O2cmxk?=\r\nDate: Sun, 29 Nov 2026 05:00:00 +0000\r\nMessage-ID: <mixed-1@remote.test>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n--XX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello searchable world\r\n--XX\r\nContent-Type: application/pdf; name=\"a.pdf\"\r\nContent-Disposition: attachment; filename=\"a.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--XX\r\nContent-Type: message/rfc822\r\n\r\nFrom: inner@remote.test\r\nSubject: inner message\r\nContent-Type: text/plain\r\n\r\ninner body\r\n--XX--\r\n";

fn setup() -> Postern {
    let p = Postern::start();
    p.add_user(USER, PASS);
    p
}

/// Drop a message into new/ the way Store::deliver does (tmp, then rename).
fn drop_message(p: &Postern, folder: &str, body: &str) {
    let base = if folder.is_empty() {
        p.maildir(USER)
    } else {
        p.maildir(USER).join(format!(".{folder}"))
    };
    for d in ["tmp", "new", "cur"] {
        std::fs::create_dir_all(base.join(d)).unwrap();
    }
    let name = format!(
        "{}.M{}P1.test,S={}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos(),
        body.len()
    );
    std::fs::write(base.join("tmp").join(&name), body).unwrap();
    std::fs::rename(base.join("tmp").join(&name), base.join("new").join(&name)).unwrap();
}

const PY_PRELUDE: &str = r#"
import imaplib, ssl, sys, re, time, socket
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
def ok(r):
    typ, data = r
    assert typ == 'OK', (typ, data)
    return data
"#;

#[test]
fn imaplib_over_starttls_and_993() {
    let p = setup();
    drop_message(&p, "", MIXED);
    let script = format!(
        r#"{PY_PRELUDE}
m = imaplib.IMAP4('127.0.0.1', {imap})
assert 'LOGINDISABLED' in m.capabilities, m.capabilities
try:
    m.login('{USER}', '{PASS}')
    raise SystemExit('login before TLS was accepted')
except imaplib.IMAP4.error as e:
    print('refused:', e)
m.starttls(ssl_context=ctx)
assert 'AUTH=PLAIN' in m.capabilities, m.capabilities
ok(m.login('{USER}', '{PASS}'))
typ, data = ok(m.select('INBOX')), None
m.logout()

s = imaplib.IMAP4_SSL('127.0.0.1', {imaps}, ssl_context=ctx)
# AUTHENTICATE PLAIN (imaplib sends the response after a continuation)
ok(s.authenticate('PLAIN', lambda _: b'\0{USER}\0{PASS}'))
lst = ok(s.list())
lines = [l.decode() for l in lst]
print(lines)
assert any('\\Sent' in l and '"Sent"' in l for l in lines), lines
assert any('\\Trash' in l for l in lines) and any('\\Junk' in l for l in lines)
assert any('\\Drafts' in l for l in lines) and any('\\Archive' in l for l in lines)
su = ok(s._simple_command('LIST', '(SPECIAL-USE)', '""', '"*"'))
data = s.untagged_responses.pop('LIST', [])
assert len(data) == 5 and all(b'INBOX' not in d for d in data), data
ok(s._simple_command('LIST', '""', '"*"', 'RETURN', '(SPECIAL-USE STATUS (MESSAGES UIDNEXT))'))
st = s.untagged_responses.pop('STATUS', [])
assert any(b'INBOX' in x and b'MESSAGES 1' in x for x in st), st
s.untagged_responses.pop('LIST', None)
n = ok(s.select('INBOX'))
assert n[0] == b'1', n
bs = ok(s.fetch('1', '(BODYSTRUCTURE)'))[0].decode()
print(bs)
assert '("TEXT" "PLAIN" ("charset" "utf-8") NIL NIL "7BIT" 22 1 NIL NIL NIL NIL)' in bs, bs
assert '"APPLICATION" "PDF" ("name" "a.pdf") NIL NIL "BASE64"' in bs and '("ATTACHMENT" ("filename" "a.pdf"))' in bs, bs
assert '"MESSAGE" "RFC822"' in bs and '"inner message"' in bs, bs
assert '"MIXED" ("boundary" "XX")' in bs, bs
env = ok(s.fetch('1', '(ENVELOPE)'))[0].decode()
print(env)
assert '"=?utf-8?b?SGVsbG8gV8O2cmxk?="' in env and '"<mixed-1@remote.test>"' in env, env
from email.header import decode_header, make_header
assert str(make_header(decode_header('=?utf-8?b?SGVsbG8gV8O2cmxk?='))) == 'Hello Wörld'
m2 = re.search(r'\(\("([^"]*)" NIL "jorg" "remote.test"\)\)', env)
assert m2 and str(make_header(decode_header(m2.group(1)))) == 'Jörg Müller', env
part = ok(s.fetch('1', '(BODY.PEEK[3.TEXT] BODY.PEEK[1] BODY.PEEK[HEADER.FIELDS (SUBJECT)] BINARY.PEEK[2])'))
flat = b''.join(x if isinstance(x, bytes) else b''.join(x) for x in part)
assert b'inner body' in flat and b'hello searchable world' in flat and b'%PDF-1.4' in flat, flat
assert b'Subject: =?utf-8?b?SGVsbG8gV8O2cmxk?=' in flat
flags = ok(s.fetch('1', '(FLAGS)'))[0]
assert b'\\Seen' not in flags, flags
# SEARCH: text, header, decoded subject, flags, UID; ESEARCH
assert ok(s.search('UTF-8', 'SUBJECT', '"Wörld"'.encode()))[0] == b'1'
assert ok(s.search(None, 'BODY', 'searchable'))[0] == b'1'
assert ok(s.search(None, 'FROM', 'jorg'))[0] == b'1'
assert ok(s.search(None, 'UNSEEN'))[0] == b'1'
assert ok(s.search(None, 'SEEN'))[0] == b''
assert ok(s.search(None, 'NOT', 'BODY', 'absent-word'))[0] == b'1'
assert ok(s.uid('SEARCH', 'OR', 'DELETED', 'SUBJECT', 'nomatch'))[0] == b''
r = ok(s.fetch('1', '(BODY[1])'))
assert b'\\Seen' in b''.join(x if isinstance(x, bytes) else x[0] for x in r), r
assert ok(s.search(None, 'SEEN'))[0] == b'1'
ok(s._simple_command('UID', 'SEARCH', 'RETURN', '(COUNT MIN)', 'ALL'))
es = s.untagged_responses.pop('ESEARCH')
assert b'COUNT 1' in es[0] and b'MIN 1' in es[0], es
# STORE
r = ok(s.store('1', '+FLAGS', '(\\Flagged $Label1)'))
assert b'\\Flagged' in r[0] and b'$Label1' in r[0], r
ok(s.store('1', '+FLAGS.SILENT', '(\\Seen)'))
fl = ok(s.fetch('1', '(FLAGS)'))[0]
assert b'\\Seen' in fl and b'\\Flagged' in fl and b'$Label1' in fl, fl
r = ok(s.store('1', '-FLAGS', '(\\Flagged)'))
assert b'\\Flagged' not in r[0]
# APPEND then FETCH gives the same bytes
raw = b'From: a@b.test\r\nSubject: appended\r\n\r\nline one\r\nline two\r\n'
ar = ok(s.append('Drafts', '(\\Draft \\Seen)', imaplib.Time2Internaldate(time.time()), raw))
ok(s.select('Drafts'))
got = ok(s.fetch('1', '(RFC822.SIZE BODY.PEEK[] FLAGS)'))
assert got[0][1] == raw, got
assert ('RFC822.SIZE %d' % len(raw)).encode() in got[0][0], got
assert b'\\Draft' in got[1], got
# COPY and MOVE with UIDPLUS
ok(s.select('INBOX'))
typ, d = s.copy('1', 'Archive')
assert typ == 'OK' and b'COPYUID' in d[0], d
typ, d = s._simple_command('MOVE', '1', 'Trash')
assert typ == 'OK', d
ok(s.select('Trash'))
t = ok(s.fetch('1', '(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)] FLAGS)'))
assert b'<mixed-1@remote.test>' in t[0][1] and b'$Label1' in t[1], t
ok(s.select('INBOX'))
assert ok(s.search(None, 'ALL'))[0] == b''
typ, d = s.uid('COPY', '1:*', 'Nope')
assert typ == 'NO' and b'TRYCREATE' in d[0], (typ, d)
assert s.status('Archive', '(MESSAGES)')[1][0].endswith(b'(MESSAGES 1)')
# mailbox-name escapes are refused
for bad in ['../escape', 'a/b', '/etc/x', 'a..b', '.hidden', '~root', '"a\\x01b"', '"&Jjo"']:
    try:
        typ, d = s.create(bad)
        assert typ == 'NO', (bad, typ, d)
    except imaplib.IMAP4.error as e:
        print('refused as BAD:', bad, e)
    try:
        assert s.select(bad)[0] != 'OK'
    except imaplib.IMAP4.error:
        pass
ok(s.create('Entw&APw-rfe'))
ok(s.create('Lists.rust'))
ok(s.rename('Lists', 'Old'))
l2 = [x.decode() for x in ok(s.list('""', 'Old*'))]
assert any('"Old.rust"' in x for x in l2) and any('\\HasChildren' in x and '"Old"' in x for x in l2), l2
ok(s.delete('Old.rust'))
s.logout()
print('ALL OK')
"#,
        imap = p.ports.imap,
        imaps = p.ports.imaps,
    );
    let out = python(&script);
    assert!(out.contains("ALL OK"), "{out}");
    assert!(
        !p.maildir(USER).parent().unwrap().join("escape").exists()
            && !p.data_dir().join("mail/escape").exists()
    );
    assert!(p.maildir(USER).join(".Entw&APw-rfe/cur").is_dir());
    assert!(p.log().contains("imap login"));
}

#[test]
fn raw_protocol_edges() {
    let p = setup();
    let mut c = Raw::connect(p.ports.imap);
    let g = c.line();
    assert!(
        g.starts_with("* OK") && g.contains("LOGINDISABLED") && g.contains("STARTTLS"),
        "{g}"
    );
    c.send(&format!("a1 LOGIN {USER} \"{PASS}\"\r\n"));
    let l = c.line();
    assert!(
        l.starts_with("a1 NO") && l.contains("PRIVACYREQUIRED"),
        "{l}"
    );
    c.send("a2 AUTHENTICATE PLAIN AGFsaWNlAHg=\r\n");
    assert!(c.line().starts_with("a2 NO"));
    c.send("a3 SELECT INBOX\r\n");
    assert!(c.line().starts_with("a3 BAD"));
    c.send("garbage\r\n");
    assert!(c.line().contains("BAD"));
    c.send("a4 NOOP\r\n");
    assert_eq!(c.line(), "a4 OK NOOP completed");
    // A literal over the limit is refused without a continuation.
    c.send("a5 APPEND INBOX {999999999999}\r\n");
    let l = c.line();
    assert!(l.starts_with("a5 NO") || l.starts_with("a5 BAD"), "{l}");
    // Refusals are in the server log (the client tests look for them there).
    assert!(
        p.wait_log("imap reply: a3 BAD", Duration::from_secs(5)),
        "{}",
        p.log()
    );
    c.send("a6 LOGOUT\r\n");
    assert!(c.line().starts_with("* BYE"));
    assert!(c.line().starts_with("a6 OK"));
    // Wrong password over TLS: logged for fail2ban.
    let script = format!(
        r#"{PY_PRELUDE}
s = imaplib.IMAP4_SSL('127.0.0.1', {imaps}, ssl_context=ctx)
try:
    s.login('{USER}', 'wrong')
    raise SystemExit('wrong password accepted')
except imaplib.IMAP4.error as e:
    print('refused', e)
"#,
        imaps = p.ports.imaps
    );
    python(&script);
    assert!(
        p.wait_log(
            &format!("auth failed: service=imap ip=127.0.0.1 user={USER}"),
            Duration::from_secs(5)
        ),
        "{}",
        p.log()
    );
}
