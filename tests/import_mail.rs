//! `postern import` with a running server: mbox files and a Maildir++ tree written by
//! Python's `mailbox`, then bytes, flags and INTERNALDATE compared over IMAP (imaplib).
mod common;

use common::*;

const USER: &str = "ivy@example.test";
const PASS: &str = "ivys import password";

fn import(p: &Postern, args: &[&str]) -> String {
    let mut all = vec!["import", USER];
    all.extend_from_slice(args);
    let o = p.cli(&all, None);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "import failed: {text}");
    text
}

/// Python: the messages (LF line ends, as `mailbox` writes them) with flags and dates, and a
/// helper that checks them over IMAP.
fn prelude(p: &Postern) -> String {
    format!(
        r#"import imaplib, mailbox, ssl, time, email.utils, sys
ctx = ssl.create_default_context(cafile={cert:?})
USER, PASS, IMAPS = {USER:?}, {PASS:?}, {imaps}
D = {dir:?}
MSGS = [
    (b'From: a@remote.test\nSubject: seen and answered\nMessage-ID: <1@remote.test>\n\nFrom the start of a line\n.dot line\n', 'RA', ['$Work'], 1600000000),
    (b'From: b@remote.test\nSubject: flagged\n\nbody two\n', 'F', [], 1610000000),
    (b'From: c@remote.test\nSubject: plain\n\n\xc3\xa9t\xc3\xa9\n\nlast\n', '', [], 1620000000),
]
def imap():
    m = imaplib.IMAP4_SSL('localhost', IMAPS, ssl_context=ctx)
    m.login(USER, PASS)
    return m
def check(m, folder, msgs):
    typ, data = m.select(folder)
    assert typ == 'OK', (folder, data)
    assert int(data[0]) == len(msgs), (folder, data, len(msgs))
    typ, data = m.fetch('1:*', '(FLAGS INTERNALDATE BODY.PEEK[])')
    got = [d for d in data if isinstance(d, tuple)]
    assert len(got) == len(msgs), data
    for (head, body), (raw, fl, kws, ts) in zip(got, msgs):
        assert body == raw.replace(b'\n', b'\r\n'), (body, raw)
        flags = imaplib.ParseFlags(head)
        want = {{'R': b'\\Seen', 'A': b'\\Answered', 'F': b'\\Flagged', 'S': b'\\Seen', 'D': b'\\Draft'}}
        for c in fl:
            if c in want:
                assert want[c] in flags, (head, fl)
        if 'R' not in fl and 'S' not in fl:
            assert b'\\Seen' not in flags, head
        for k in kws:
            assert k.encode() in flags, (head, kws)
        date = imaplib.Internaldate2tuple(head)
        assert int(time.mktime(date)) == ts, (head, ts)
"#,
        cert = p.self_signed_cert().display().to_string(),
        imaps = p.ports.imaps,
        dir = p.dir.path().display().to_string(),
    )
}

#[test]
fn mbox_from_python_mailbox_while_an_imap_session_watches() {
    let p = Postern::start();
    p.add_user(USER, PASS);
    // Write the mbox, and open an IMAP session on INBOX before the import.
    let script = prelude(&p)
        + r#"
mb = mailbox.mbox(D + '/in.mbox')
for raw, fl, kws, ts in MSGS:
    msg = mailbox.mboxMessage(raw)
    msg.set_flags(fl)
    msg.set_from('MAILER-DAEMON', time.gmtime(ts))
    if kws:
        msg['X-Keywords'] = ', '.join(kws)
    mb.add(msg)
mb.flush()
m = imap()
m.select('INBOX')
import subprocess
out = subprocess.run(sys.argv[1:] + [D + '/in.mbox'], capture_output=True, text=True)
assert out.returncode == 0, out
assert 'imported 3 messages' in out.stdout and 'refused 0' in out.stdout, out.stdout
# The session that was open sees the import.
deadline = time.time() + 10
while time.time() < deadline:
    m.noop()
    if m.response('EXISTS')[1] not in ([None], []):
        break
    time.sleep(0.2)
check(m, 'INBOX', MSGS)
m.logout()
print('ok')
"#;
    let out = run_with_stdin(
        std::process::Command::new("python3").args([
            "-",
            BIN,
            "--config",
            &path_str(&p.config),
            "import",
            USER,
        ]),
        Some(&script),
    );
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Resumable: a second run skips everything.
    let mbox = p.dir.path().join("in.mbox");
    let again = import(&p, &[&path_str(&mbox)]);
    assert!(
        again.contains("imported 0 messages") && again.contains("skipped 3 already imported"),
        "{again}"
    );
    assert_eq!(p.messages(USER, "").len(), 3);
}

#[test]
fn maildir_tree_into_a_folder_and_a_broken_mbox() {
    let p = Postern::start();
    p.add_user(USER, PASS);
    let script = prelude(&p)
        + r#"
md = mailbox.Maildir(D + '/md', create=True)
sub = md.add_folder('Lists.rust')
for box, msgs in ((md, MSGS[:2]), (sub, MSGS[2:])):
    for raw, fl, kws, ts in msgs:
        msg = mailbox.MaildirMessage(raw)
        msg.set_flags(fl.replace('A', '').replace('R', 'RS') if fl else '')
        msg.set_subdir('cur')
        msg.set_date(ts)
        box.add(msg)
print('ok')
"#;
    assert_eq!(python(&script).trim(), "ok");
    let md = p.dir.path().join("md");
    let out = import(&p, &[&path_str(&md), "--folder", "Old"]);
    assert!(
        out.contains("imported 3 messages") && out.contains("refused 0"),
        "{out}"
    );
    // A truncated mbox with a headerless piece: reported, the rest imported, exit 0.
    let broken = p.dir.path().join("broken.mbox");
    std::fs::write(
        &broken,
        "From x Sat Dec  6 16:00:00 2025\nSubject: fine\n\nok\n\n\
         From y Sat Dec  6 16:00:00 2025\nthis is no header\n\n\
         From z Sat Dec  6 16:00:00 2025\nSubject: cut short\n\nhalf a li",
    )
    .unwrap();
    let out = import(&p, &[&path_str(&broken), "--folder", "Broken"]);
    assert!(
        out.contains("imported 2 messages") && out.contains("refused 1"),
        "{out}"
    );
    assert!(out.contains("no header fields"), "{out}");
    let check = prelude(&p)
        + r#"
# Maildir flags: S (seen), R (answered), F (flagged); dates from the files' mtime.
m = imap()
typ, data = m.list()
names = b' '.join(data)
assert b'Old.Lists.rust' in names and b'"Old"' in names or b' Old' in names, data
check(m, 'Old', [(r, f.replace('A', ''), [], t) for r, f, k, t in MSGS[:2]])
check(m, 'Old.Lists.rust', MSGS[2:])
typ, data = m.select('Broken')
assert data == [b'2'], data
typ, data = m.fetch('2', '(BODY.PEEK[])')
assert data[0][1] == b'Subject: cut short\r\n\r\nhalf a li\r\n', data
m.logout()
print('ok')
"#;
    assert_eq!(python(&check).trim(), "ok");
}
