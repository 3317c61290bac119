//! CONDSTORE/QRESYNC (RFC 7162) against the real binary with Python's imaplib: one session
//! changes flags and expunges, another resyncs with SELECT (QRESYNC ...); HIGHESTMODSEQ
//! survives kill -9; a conditional STORE that lost the race answers MODIFIED.
mod common;

use common::*;

const USER: &str = "carol@example.test";
const PASS: &str = "carols secret pw";

/// Raw commands over imaplib's connection (imaplib knows none of RFC 7162's syntax).
const PY: &str = r#"
import imaplib, ssl, re
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
def conn():
    c = imaplib.IMAP4_SSL('127.0.0.1', PORT, ssl_context=ctx)
    assert c.login(USER, PASS)[0] == 'OK'
    return c
def raw(c, line):
    tag = c._new_tag().decode()
    c.send(('%s %s\r\n' % (tag, line)).encode())
    out = []
    while True:
        l = c.readline().decode().rstrip('\r\n')
        if l.startswith(tag + ' '):
            return out, l
        out.append(l)
def ok(c, line):
    out, done = raw(c, line)
    assert done.split(' ')[1] == 'OK', (line, out, done)
    return out, done
def num(lines, key):
    for l in lines:
        m = re.search(re.escape(key) + r' (\d+)', l)
        if m:
            return int(m.group(1))
    raise AssertionError((key, lines))
"#;

fn script(p: &Postern, body: &str) -> String {
    format!(
        "{PY}\nPORT = {}\nUSER = '{USER}'\nPASS = '{PASS}'\n{body}",
        p.ports.imaps
    )
}

#[test]
fn qresync_after_changes_and_modseq_across_kill9() {
    let mut p = Postern::start();
    p.add_user(USER, PASS);
    let base = p.maildir(USER);
    for d in ["tmp", "new", "cur"] {
        std::fs::create_dir_all(base.join(d)).unwrap();
    }
    for i in 1..=4 {
        let body = format!("From: x@remote.test\r\nTo: {USER}\r\nSubject: m{i}\r\n\r\nhi\r\n");
        std::fs::write(
            base.join("new").join(format!("170000000{i}.M{i}P1.t")),
            body,
        )
        .unwrap();
    }
    let out = python(&script(
        &p,
        r#"
b = conn()
out, _ = ok(b, 'ENABLE QRESYNC')
assert out == ['* ENABLED QRESYNC'], out
out, _ = ok(b, 'SELECT INBOX')
uv, ms = num(out, 'UIDVALIDITY'), num(out, '[HIGHESTMODSEQ')
b.logout()

a = conn()
ok(a, 'SELECT INBOX')
ok(a, 'STORE 2 +FLAGS (\\Flagged)')
ok(a, 'STORE 3 +FLAGS (\\Deleted)')
out, _ = ok(a, 'EXPUNGE')
assert out == ['* 3 EXPUNGE'], out

b = conn()
ok(b, 'ENABLE QRESYNC')
out, done = ok(b, 'SELECT INBOX (QRESYNC (%d %d 1:4))' % (uv, ms))
ms2 = num(out, '[HIGHESTMODSEQ')
assert ms2 > ms, (ms, out)
changes = [l for l in out if 'VANISHED' in l or 'FETCH' in l]
assert len(changes) == 2, out
assert changes[0] == '* VANISHED (EARLIER) 3', out
assert re.fullmatch(r'\* 2 FETCH \(UID 2 FLAGS \(\\Flagged\) MODSEQ \((\d+)\)\)', changes[1]), out
# The other session changes flags; ours is now stale for UID 2 only.
ok(a, 'STORE 2 +FLAGS (\\Answered)')
out, done = ok(b, 'UID STORE 1,2 (UNCHANGEDSINCE %d) +FLAGS (\\Seen)' % ms2)
assert '[MODIFIED 2]' in done, (out, done)
assert any(l.startswith('* 1 FETCH (UID 1 FLAGS (\\Seen') and 'MODSEQ (' in l for l in out), out
# An expunge in a is reported to b as VANISHED.
ok(a, 'UID STORE 4 +FLAGS.SILENT (\\Deleted)')
ok(a, 'UID EXPUNGE 4')
out, _ = ok(b, 'NOOP')
assert '* VANISHED 4' in out and not any('EXPUNGE' in l for l in out), out
out, _ = ok(b, 'STATUS INBOX (HIGHESTMODSEQ UIDVALIDITY)')
print('STATE', uv, num(out, 'HIGHESTMODSEQ'))
"#,
    ));
    let state = out.lines().find(|l| l.starts_with("STATE")).expect(&out);
    let f: Vec<u64> = state
        .split(' ')
        .skip(1)
        .map(|x| x.parse().unwrap())
        .collect();
    let (uv, high) = (f[0], f[1]);

    p.kill9();
    p.spawn();
    python(&script(
        &p,
        &format!(
            r#"
c = conn()
out, _ = ok(c, 'STATUS INBOX (HIGHESTMODSEQ UIDVALIDITY)')
assert num(out, 'UIDVALIDITY') == {uv} and num(out, 'HIGHESTMODSEQ') == {high}, out
ok(c, 'ENABLE QRESYNC')
# Nothing changed since {high}: an empty resync.
out, _ = ok(c, 'SELECT INBOX (QRESYNC ({uv} {high} 1:10))')
assert not any('VANISHED' in l or 'FETCH' in l for l in out), out
out, _ = ok(c, 'STORE 1 +FLAGS (\\Draft)')
assert num([l.replace('MODSEQ (', 'MODSEQ ') for l in out], 'MODSEQ') == {high} + 1, out
# Everything expunged before the restart is still known precisely.
out, _ = ok(c, 'UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)')
assert out[0] == '* VANISHED (EARLIER) 3:4', out
"#
        ),
    ));
}
