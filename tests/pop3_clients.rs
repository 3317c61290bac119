//! POP3 against the real binary with independent clients: Python poplib (STLS on the
//! 110-style port, implicit TLS on the 995-style port), fetchmail (keep and delete modes),
//! and imaplib and poplib on the same INBOX at once.
mod common;

use common::*;
use std::process::Command;

const USER: &str = "pat@example.test";
const PASS: &str = "pats pop password";

fn setup() -> Postern {
    let p = Postern::start();
    p.add_user(USER, PASS);
    p
}

/// Deliver over SMTP port 25 (the real path into the store).
fn deliver(p: &Postern, subject: &str, body: &str) {
    let mut c = Raw::connect(p.ports.smtp);
    assert!(c.reply().starts_with("220"));
    for (cmd, want) in [
        ("EHLO client.test\r\n".to_string(), "250"),
        ("MAIL FROM:<x@remote.test>\r\n".into(), "250"),
        (format!("RCPT TO:<{USER}>\r\n"), "250"),
        ("DATA\r\n".into(), "354"),
        (
            format!(
                "From: x@remote.test\r\nTo: {USER}\r\nSubject: {subject}\r\n\r\n{body}\r\n.\r\n"
            ),
            "250",
        ),
    ] {
        c.send(&cmd);
        let r = c.reply();
        assert!(r.starts_with(want), "{cmd}: {r}");
    }
}

/// Python prelude: a TLS context that verifies the server's self-signed certificate.
fn prelude(p: &Postern) -> String {
    format!(
        "import poplib, imaplib, ssl, sys, time\n\
         ctx = ssl.create_default_context(cafile={cert:?})\n\
         USER, PASS = {USER:?}, {PASS:?}\n\
         POP3, POP3S, IMAPS = {pop3}, {pop3s}, {imaps}\n\
         def pop_stls():\n    \
             c = poplib.POP3('localhost', POP3, timeout=20)\n    \
             c.stls(context=ctx)\n    \
             c.user(USER); c.pass_(PASS)\n    \
             return c\n\
         def pop_ssl():\n    \
             c = poplib.POP3_SSL('localhost', POP3S, context=ctx, timeout=20)\n    \
             c.user(USER); c.pass_(PASS)\n    \
             return c\n",
        cert = p.self_signed_cert().display().to_string(),
        pop3 = p.ports.pop3,
        pop3s = p.ports.pop3s,
        imaps = p.ports.imaps,
    )
}

#[test]
fn poplib_stls_and_implicit_tls() {
    let p = setup();
    // SMTP stuffing: the stored line is ".leading dot line".
    deliver(&p, "one", "first body\r\n..leading dot line");
    deliver(&p, "two", "second body");
    // A message stored with bare LF line ends and no final newline (as an import may leave
    // it): LIST must count the CRLF form that RETR sends.
    let inbox = p.maildir(USER);
    std::fs::write(
        inbox.join("new/1700000000.M1P1Q1.import"),
        "From: old@remote.test\nSubject: three\n\nlf only\n.dot\nno newline at end",
    )
    .unwrap();
    let script = prelude(&p)
        + r#"
c = poplib.POP3('localhost', POP3, timeout=20)
caps = c.capa()
assert 'STLS' in caps and 'USER' not in caps and 'SASL' not in caps, caps
try:
    c.user(USER); raise SystemExit('USER accepted before STLS')
except poplib.error_proto as e:
    assert b'STLS' in e.args[0], e
c.stls(context=ctx)
caps = c.capa()
assert 'USER' in caps and 'SASL' in caps and 'STLS' not in caps and 'UIDL' in caps and 'TOP' in caps, caps
c.user(USER); c.pass_(PASS)
count, total = c.stat()
assert count == 3, count
_, listing, _ = c.list()
sizes = {int(l.split()[0]): int(l.split()[1]) for l in listing}
assert sum(sizes.values()) == total
_, uidls, _ = c.uidl()
uidl = {int(l.split()[0]): l.split()[1] for l in uidls}
assert len(set(uidl.values())) == 3
for n in (1, 2, 3):
    _, lines, octets = c.retr(n)
    # poplib removes the stuffing dots and the CRLFs: put the CRLFs back to count.
    sent = sum(len(l) + 2 for l in lines)
    assert sent == sizes[n], (n, sent, sizes[n], lines)
    assert octets == sent, (octets, sent)
bodies = {}
for n in (1, 2, 3):
    _, lines, _ = c.retr(n)
    subj = [l for l in lines if l.startswith(b'Subject: ')][0][9:].decode()
    bodies[subj] = (n, lines)
assert b'.leading dot line' in bodies['one'][1], bodies
assert bodies['three'][1][-2:] == [b'.dot', b'no newline at end'], bodies
_, top, _ = c.top(bodies['two'][0], 0)
assert top[-1] == b'' and b'Subject: two' in top and b'second body' not in top, top
gone = bodies['one'][0]
c.dele(gone)
try:
    c.retr(gone); raise SystemExit('deleted message retrieved')
except poplib.error_proto:
    pass
assert c.stat()[0] == 2
c.quit()
# Implicit TLS: the deletion was made durable by QUIT, the others keep their UIDL.
c = pop_ssl()
assert c.stat()[0] == 2
_, uidls, _ = c.uidl()
after = sorted(l.split()[1] for l in uidls)
assert after == sorted(v for k, v in uidl.items() if k != gone), (after, uidl)
c.quit()
print('ok')
"#;
    assert_eq!(python(&script).trim(), "ok");
    assert_eq!(p.messages(USER, "").len(), 2);
    // Only the two refusals the script asked for.
    assert_eq!(
        p.log().matches("pop3 reply: -ERR").count(),
        2,
        "{}",
        p.log()
    );
}

#[test]
fn imap_and_pop3_share_the_inbox() {
    let p = setup();
    deliver(&p, "a", "aaa");
    deliver(&p, "b", "bbb");
    deliver(&p, "c", "ccc");
    let script = prelude(&p)
        + r#"
m = imaplib.IMAP4_SSL('localhost', IMAPS, ssl_context=ctx)
m.login(USER, PASS)
typ, data = m.select('INBOX')
assert data == [b'3'], data
uv = int(m.response('UIDVALIDITY')[1][0])
typ, data = m.uid('SEARCH', 'ALL')
uids = [int(x) for x in data[0].split()]
# UIDL is UIDVALIDITY.UID: the same identity IMAP gives the message.
c = pop_stls()
_, uidls, _ = c.uidl()
assert [l.split()[1].decode() for l in uidls] == ['%d.%d' % (uv, u) for u in uids], (uidls, uv, uids)
c.retr(2)
c.dele(1)
c.quit()
# The IMAP session sees POP3's deletion as an expunge.
typ, data = m.noop()
exp = m.response('EXPUNGE')[1]
assert exp == [b'1'], (exp, data)
typ, data = m.uid('FETCH', '%d' % uids[1], '(FLAGS)')
assert b'\\Seen' in data[0], data
# Mail added over IMAP shows up at the next POP3 login; old UIDLs stay.
m.append('INBOX', None, None, b'From: x@remote.test\r\nSubject: d\r\n\r\nddd\r\n')
c = pop_ssl()
_, uidls2, _ = c.uidl()
vals = [l.split()[1].decode() for l in uidls2]
assert vals[:2] == ['%d.%d' % (uv, u) for u in uids[1:]], (vals, uids)
assert len(vals) == 3
_, lines, _ = c.retr(3)
assert b'Subject: d' in lines
# A maildrop is a snapshot: an IMAP expunge during the POP3 session is an error there,
# not a renumbering.
m.uid('STORE', '%d' % uids[2], '+FLAGS', '(\\Deleted)')
m.expunge()
try:
    c.retr(2); raise SystemExit('expunged message retrieved')
except poplib.error_proto as e:
    assert b'removed' in e.args[0], e
assert c.list(3).startswith(b'+OK 3 ')
c.dele(3)
c.quit()
m.noop()
typ, data = m.uid('SEARCH', 'ALL')
assert [int(x) for x in data[0].split()] == [uids[1]], data
m.logout()
print('ok')
"#;
    assert_eq!(python(&script).trim(), "ok");
}

#[test]
fn fetchmail_keep_then_delete() {
    if !client_available("fetchmail", which("fetchmail")) {
        return;
    }
    let p = setup();
    deliver(&p, "first", "1");
    deliver(&p, "second", "2");
    let d = p.dir.path();
    let out = d.join("fetched");
    let rc = d.join("fetchmailrc");
    let fetch = |port: u16, ssl: &str, server: &str, opts: &str| {
        std::fs::write(
            &rc,
            format!(
                "set no syslog\n\
                 poll localhost service {port} protocol POP3 auth password timeout 20 {server}\n\
                 user \"{USER}\" password \"{PASS}\" is root here\n\
                 {ssl} sslcertck sslcertfile \"{cert}\" {opts}\n\
                 mda \"/bin/sh -c 'cat >> {out}'\"\n",
                cert = p.self_signed_cert().display(),
                out = out.display(),
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&rc, std::fs::Permissions::from_mode(0o600)).unwrap();
        let o = Command::new("fetchmail")
            .arg("-f")
            .arg(&rc)
            .arg("--pidfile")
            .arg(d.join("fetchmail.pid"))
            .arg("-v")
            .env("FETCHMAILHOME", d)
            .output()
            .unwrap();
        let log = format!(
            "{}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        // 0: mail fetched; 1: no mail.
        assert!(matches!(o.status.code(), Some(0 | 1)), "fetchmail: {log}");
        log
    };
    let got = || std::fs::read_to_string(&out).unwrap_or_default();
    // 1: keep mode over implicit TLS, remembering UIDLs: both fetched, both stay.
    let log1 = fetch(p.ports.pop3s, "ssl", "uidl", "keep");
    assert_eq!(got().matches("Subject: ").count(), 2, "{log1}");
    assert_eq!(p.messages(USER, "").len(), 2);
    // 2: the same again: UIDL is stable, nothing is fetched twice.
    let log2 = fetch(p.ports.pop3s, "ssl", "uidl", "keep");
    assert_eq!(got().matches("Subject: ").count(), 2, "{log2}");
    // 3: delete mode over STLS on the plain port: everything fetched, then deleted.
    deliver(&p, "third", "3");
    let log3 = fetch(p.ports.pop3, "sslproto 'tls1.2+'", "", "fetchall");
    assert!(log3.contains("STLS"), "{log3}");
    let all = got();
    assert_eq!(all.matches("Subject: ").count(), 5, "{all}\n{log3}");
    assert!(all.contains("Subject: third"), "{all}");
    assert_eq!(p.messages(USER, "").len(), 0, "{log3}");
    assert!(!p.log().contains("pop3 reply: -ERR"), "{}", p.log());
}

#[test]
fn bad_logins_share_the_fail2ban_line_and_throttle() {
    let p = setup();
    let script = prelude(&p)
        + r#"
c = poplib.POP3_SSL('localhost', POP3S, context=ctx, timeout=20)
c.user(USER)
try:
    c.pass_('wrong'); raise SystemExit('wrong password accepted')
except poplib.error_proto as e:
    assert e.args[0].startswith(b'-ERR [AUTH]'), e
# A response that is not base64 counts as a failed login too.
try:
    c._shortcmd('AUTH PLAIN !!!'); raise SystemExit('malformed AUTH accepted')
except poplib.error_proto as e:
    assert b'malformed' in e.args[0], e
# AUTH PLAIN with an initial response, then a session that works.
import base64
r = c._shortcmd('AUTH PLAIN ' + base64.b64encode(b'\0' + USER.encode() + b'\0' + PASS.encode()).decode())
assert r.startswith(b'+OK maildrop has 0 messages'), r
c.quit()
print('ok')
"#;
    assert_eq!(python(&script).trim(), "ok");
    assert!(
        p.log()
            .contains("auth failed: service=pop3 ip=127.0.0.1 user=pat@example.test"),
        "{}",
        p.log()
    );
    assert!(
        p.log()
            .contains("auth failed: service=pop3 ip=127.0.0.1 user=- reason=malformed"),
        "{}",
        p.log()
    );
    // A raw plaintext session: no login before STLS, bad input answered precisely.
    let mut c = Raw::connect(p.ports.pop3);
    assert!(c.line().starts_with("+OK"));
    c.send("PASS x\r\n");
    assert_eq!(c.line(), "-ERR plaintext login refused: use STLS first");
    c.send(&format!("NOOP {}\r\n", "x".repeat(5000)));
    assert_eq!(c.line(), "-ERR line too long");
    c.send("RETR 1\r\nQUIT\r\n");
    assert_eq!(c.line(), "-ERR not logged in");
    assert_eq!(c.line(), "+OK postern POP3 signing off");
    assert_eq!(c.line(), "");
}

/// RFC 1939 §8 maildrop lock: a second session on the same account, on either port, gets
/// `-ERR [IN-USE]` (RFC 2449 §8.1.1) until the first ends; a lost connection frees it too.
#[test]
fn second_session_on_a_maildrop_is_in_use() {
    let p = setup();
    let script = prelude(&p)
        + r#"
a = pop_ssl()
for connect in (pop_ssl, pop_stls):
    try:
        connect(); raise SystemExit('second session got the maildrop')
    except poplib.error_proto as e:
        assert e.args[0].startswith(b'-ERR [IN-USE]'), e
a.quit()
b = pop_stls()
import socket
b.sock.shutdown(socket.SHUT_RDWR)  # gone without QUIT
b.close()
for _ in range(50):
    try:
        c = pop_ssl(); break
    except poplib.error_proto as e:
        assert e.args[0].startswith(b'-ERR [IN-USE]'), e
        time.sleep(0.1)
else:
    raise SystemExit('lock not released after a lost connection')
c.quit()
print('ok')
"#;
    assert_eq!(python(&script).trim(), "ok");
}
