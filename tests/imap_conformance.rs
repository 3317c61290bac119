//! Issue 14 against the real binary with an independent client (Python imaplib): LIST with
//! every list-char, sections of a message/rfc822 message, BINARY of quoted-printable, and a
//! short multi-client run of mixed commands with no BAD and no NO but EXPUNGEISSUED.
mod common;

use common::*;

const USER: &str = "carol@example.test";
const PASS: &str = "carols secret pw";

const PY: &str = r#"
import imaplib, ssl, random, threading, time
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
def conn():
    c = imaplib.IMAP4_SSL('127.0.0.1', PORT, ssl_context=ctx)
    assert c.login(USER, PASS)[0] == 'OK'
    return c
def ok(r):
    assert r[0] == 'OK', r
    return r[1]
"#;

#[test]
fn list_chars_rfc822_sections_binary_and_concurrent_clients() {
    let p = Postern::start();
    p.add_user(USER, PASS);
    let script = format!(
        r#"PORT = {port}
USER = '{USER}'
PASS = '{PASS}'
{PY}
a = conn()
# Every list-char in a LIST pattern (RFC 3501 §9 list-mailbox).
tag = a._new_tag().decode()
a.send(tag.encode() + b' LIST "" "!#$&\'+,-.0123456789:;<=>?@^_`|}}%*"\r\n')
l = a.readline()
while not l.startswith(tag.encode()):
    l = a.readline()
assert b' OK' in l, l
ok(a.noop())
inner = b'From: inner@example.test\r\nSubject: inner\r\n\r\ninner body\r\n'
msg = b'From: outer@example.test\r\nSubject: outer\r\nContent-Type: message/rfc822\r\n\r\n' + inner
ok(a.append('INBOX', None, None, msg))
qp = b'Subject: qp\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nJ=C3=B6rg =3D a soft=\r\n break\r\n'
ok(a.append('INBOX', None, None, qp))
ok(a.select('INBOX'))
d = ok(a.fetch('1', '(BODY.PEEK[1.HEADER] BODY.PEEK[1.TEXT] BODY.PEEK[1])'))
assert d[0][1] == b'From: inner@example.test\r\nSubject: inner\r\n\r\n', d
assert d[1][1] == b'inner body\r\n', d
assert d[2][1] == inner, d
d = ok(a.fetch('2', '(BINARY.SIZE[1] BINARY.PEEK[1])'))
want = 'Jörg = a soft break\r\n'.encode()
assert b'BINARY.SIZE[1] %d' % len(want) in d[0][0], d
assert d[0][1] == want, d
# Several clients at once; a NO is allowed only as EXPUNGEISSUED.
errors = []
def worker(seed):
    rnd = random.Random(seed)
    c = conn()
    ok(c.select('INBOX'))
    end = time.time() + 4
    while time.time() < end:
        k = rnd.randrange(7)
        try:
            if k == 0:
                r = c.append('INBOX', '($kw%d)' % rnd.randrange(4), None, b'Subject: s\r\n\r\nx\r\n')
            elif k == 1:
                r = c.fetch('1:*', '(UID FLAGS)')
            elif k == 2:
                r = c.store('1:*', '+FLAGS', '($k%d)' % rnd.randrange(4))
            elif k == 3:
                # Never the first two messages (UIDs 1 and 2): an empty mailbox would make
                # FETCH 1 a BAD, as RFC 9051 §9 asks ("This includes * if the selected
                # mailbox is empty"), which is right but not what this check is about.
                r = c.uid('STORE', '3:4294967295', '+FLAGS', '(\\Deleted)')
            elif k == 4:
                r = c.expunge()
            elif k == 5:
                r = c.fetch('1', '(BODY.PEEK[HEADER])')
            else:
                r = c.noop()
            if r[0] != 'OK' and b'EXPUNGEISSUED' not in b' '.join(x for x in r[1] if isinstance(x, bytes)):
                errors.append((seed, k, r))
        except Exception as e:
            errors.append((seed, k, repr(e)))
    c.logout()
ts = [threading.Thread(target=worker, args=(i,)) for i in range(5)]
[t.start() for t in ts]
[t.join() for t in ts]
assert not errors, errors[:5]
print('ALL OK')
"#,
        port = p.ports.imaps,
    );
    let out = python(&script);
    assert!(out.contains("ALL OK"), "{out}");
}

#[test]
fn compress_deflate_over_the_wire() {
    let p = Postern::start();
    p.add_user(USER, PASS);
    let script = format!(
        r#"PORT = {port}
USER = '{USER}'
PASS = '{PASS}'
{PY}
import zlib
a = conn()
caps = ok(a.capability())[0]
assert b'COMPRESS=DEFLATE' in caps, caps
a.send(b'z1 COMPRESS DEFLATE\r\n')
l = a.readline()
assert l == b'z1 OK DEFLATE active\r\n', l
sock = a.sock
co = zlib.compressobj(6, zlib.DEFLATED, -15)
de = zlib.decompressobj(-15)
def say(b):
    sock.sendall(co.compress(b) + co.flush(zlib.Z_SYNC_FLUSH))
def until(tag):
    got = b''
    while not got.endswith(b'\r\n') or (tag + b' ') not in got:
        got += de.decompress(sock.recv(65536))
    return got
msg = b'Subject: z\r\n\r\n' + b'compressible ' * 2000 + b'\r\n'
say(b'z2 APPEND INBOX {{%d+}}\r\n' % len(msg) + msg + b'\r\n')
r = until(b'z2')
assert b'z2 OK' in r, r
say(b'z3 SELECT INBOX\r\nz4 FETCH 1 BODY.PEEK[]\r\n')
r = until(b'z4')
assert b'* 1 EXISTS' in r and msg in r and b'z4 OK' in r, r[:300]
say(b'z5 COMPRESS DEFLATE\r\n')
r = until(b'z5')
assert b'z5 NO [COMPRESSIONACTIVE]' in r, r
say(b'z6 LOGOUT\r\n')
r = until(b'z6')
assert b'* BYE' in r, r
print('ALL OK')
"#,
        port = p.ports.imaps,
    );
    let out = python(&script);
    assert!(out.contains("ALL OK"), "{out}");
}

/// Cases Dovecot's imaptest found (tests/imaptest/run.sh), rebuilt from the RFC text.
#[test]
fn imaptest_found_cases() {
    let p = Postern::start();
    p.add_user(USER, PASS);
    let script = format!(
        r#"PORT = {port}
USER = '{USER}'
PASS = '{PASS}'
{PY}
a = conn()
def raw(cmd):
    tag = a._new_tag()
    a.send(tag + b' ' + cmd + b'\r\n')
    lines = []
    while True:
        l = a.readline()
        lines.append(l)
        if l.endswith(b'}}\r\n'):
            n = int(l[l.rindex(b'{{') + 1:-3])
            lines.append(a.read(n))
        if l.startswith(tag + b' '):
            return lines
# RFC 3501 §9: '[' is an atom-char, so it may appear in an unquoted list-mailbox.
r = raw(b'LIST "" !#$&\'+,-.0123456789:;<=>?@^_`|[}}%*')
assert b' OK ' in r[-1], r
# RFC 3501 §6.3.3: a trailing hierarchy delimiter declares intent to create inferiors;
# the mailbox created is the name without it.
ok(a.create('proj.'))
ok(a.create('proj.sub.'))
names = [x.decode() for x in ok(a.list('""', 'proj*'))]
assert any(n.endswith('"proj"') for n in names), names
assert any(n.endswith('"proj.sub"') for n in names), names
assert not any(n.endswith('."') for n in names), names
# RFC 3516 §4.4 / RFC 3501 §4.3: content with NUL octets APPENDed in a literal8 is never
# sent back in a plain literal: BODY[1] is base64, BINARY[1] the original octets.
body = b'\x00-\xe4\r\n\r\n'
msg = b'From: u@example.test\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n' + body
r = raw(b'APPEND INBOX ~{{%d+}}\r\n' % len(msg) + msg)
assert b' OK ' in r[-1], r
ok(a.select('INBOX'))
r = raw(b'FETCH 1 (BODY.PEEK[1])')
assert r[1] == b'AC3kDQoNCg==', r
r = raw(b'FETCH 1 (BINARY.SIZE[1])')
assert b'BINARY.SIZE[1] 7' in r[0], r
r = raw(b'FETCH 1 (BODY.PEEK[])')
assert b'\x00' not in r[1] and b'Content-Transfer-Encoding: base64' in r[1], r
# RFC 2046 §5.2.1: the embedded message is the whole message/rfc822 body, epilogue included.
inner = b'Subject: in\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\npro\r\n--b\r\nContent-Type: text/x-own\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8gd29ybGQ=\r\n--b--\r\n\r\nepilogue\r\n'
ok(a.append('INBOX', None, None, b'From: o@example.test\r\nContent-Type: message/rfc822\r\n\r\n' + inner))
ok(a.noop())
r = raw(b'FETCH 2 (BODY.PEEK[1.TEXT])')
assert r[1].endswith(b'--b--\r\n\r\nepilogue\r\n'), r
# RFC 3501 §6.4.4: BODY/TEXT search every text part, decoded, and TEXT the headers of the
# embedded message too.
assert ok(a.search(None, 'BODY', '"hello world"')) == [b'2'], 'body'
assert ok(a.search(None, 'TEXT', '"Subject: in"')) == [b'2'], 'text'
# RFC 3501 §7.4.2: groups, an empty group and a group holding only a comment.
ok(a.append('INBOX', None, None, b'From: <@route:user@domain>\r\nCc: group:;, group2: (foo) ;\r\n\r\nx\r\n'))
ok(a.noop())
d = ok(a.fetch('3', 'ENVELOPE'))[0]
assert b'((NIL "@route" "user" "domain"))' in d, d
assert b'((NIL NIL "group" NIL)(NIL NIL NIL NIL)(NIL NIL "group2" NIL)(NIL NIL NIL NIL))' in d, d
# RFC 3501 §6.4.4: SUBJECT looks in the envelope's subject; a message without one does not
# match even the empty string, and encoded words match by their decoded text only.
ok(a.append('INBOX', None, None, b'Subject: =?iso-8859-1?q?RE:_C?=\r\n\r\nx\r\n'))
ok(a.noop())
assert ok(a.search(None, 'SUBJECT', '""')) == [b'4'], 'empty subject'
assert ok(a.search(None, 'SUBJECT', '"re: c"')) == [b'4'], 'decoded'
assert ok(a.search(None, 'SUBJECT', 'iso')) == [b''], 'raw'
# A message another session expunged that this one was not told about (no EXPUNGE during
# SEARCH, RFC 3501 §7.4.1) still has its sequence number: a set naming it matches it.
b = conn()
ok(b.select('INBOX'))
ok(b.store('2', '+FLAGS', '(\\Deleted)'))
ok(b.expunge())
assert ok(a.search(None, '1:3')) == [b'1 2 3'], 'held-back expunge'
assert ok(a.search(None, '2', 'SEEN')) == [b''], 'no flags to go by'
print('ALL OK')
"#,
        port = p.ports.imaps,
    );
    let out = python(&script);
    assert!(out.contains("ALL OK"), "{out}");
}
