//! `postern import --from-imap` from a real Dovecot started by the test (populated with
//! APPEND over imaplib, flags and dates set), then bytes, flags, INTERNALDATE and the
//! special-use mapping compared over IMAP on postern; a second run copies nothing.
mod common;

use common::*;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

const USER: &str = "una@example.test";
const PASS: &str = "unas new password";

struct Dovecot {
    dir: std::path::PathBuf,
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("run/master.pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
    }
}

fn start_dovecot(p: &Postern, port: u16) -> Option<Dovecot> {
    if !client_available("dovecot (dovecot-imapd)", which("dovecot")) {
        return None;
    }
    let d = p.dir.path().join("dovecot");
    std::fs::create_dir_all(d.join("mail")).unwrap();
    // Dovecot's processes run as nobody/dovenull: they must reach their directories.
    for dir in [p.dir.path(), &d, &d.join("mail")] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(d.join("mail"), std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::write(d.join("users"), "src@remote.test:{PLAIN}srcpass\n").unwrap();
    let tls = p.data_dir().join("tls");
    let conf = format!(
        r#"protocols = imap
listen = 127.0.0.1
base_dir = {d}/run
log_path = {d}/dovecot.log
ssl = required
ssl_cert = <{cert}
ssl_key = <{key}
mail_location = maildir:~/Maildir
first_valid_uid = 1
first_valid_gid = 1
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {d}/users
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={d}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    port = {port}
    ssl = yes
  }}
}}
namespace inbox {{
  inbox = yes
  separator = /
  mailbox "Sent Messages" {{
    special_use = \Sent
  }}
  mailbox "Deleted Items" {{
    special_use = \Trash
  }}
}}
"#,
        d = d.display(),
        cert = tls.join("self-signed-cert.pem").display(),
        key = tls.join("self-signed-key.pem").display(),
    );
    std::fs::write(d.join("dovecot.conf"), conf).unwrap();
    let st = Command::new("dovecot")
        .arg("-c")
        .arg(d.join("dovecot.conf"))
        .status()
        .unwrap();
    assert!(st.success(), "dovecot did not start");
    let dc = Dovecot { dir: d.clone() };
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "dovecot did not listen: {}",
            std::fs::read_to_string(d.join("dovecot.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(dc)
}

#[test]
fn copies_a_dovecot_account_with_flags_dates_and_special_use() {
    let p = Postern::start();
    p.add_user(USER, PASS);
    let port = free_port();
    let Some(_dc) = start_dovecot(&p, port) else {
        return;
    };
    let cert = p.self_signed_cert().display().to_string();
    let common = format!(
        r#"import imaplib, ssl, time
ctx = ssl.create_default_context(cafile={cert:?})
MSGS = {{
    'INBOX': [(b'From: a@remote.test\r\nSubject: one\r\n\r\nfirst\r\n', r'(\Seen \Flagged $Work)', 1600000000),
              (b'From: b@remote.test\r\nSubject: two\r\n\r\n.dot\r\n', r'()', 1610000000)],
    'Sent Messages': [(b'From: una@example.test\r\nSubject: sent\r\n\r\nbye\r\n', r'(\Seen)', 1620000000)],
    'Deleted Items': [(b'From: c@remote.test\r\nSubject: gone\r\n\r\nx\r\n', r'(\Seen \Deleted)', 1630000000)],
    'Lists/rust': [(b'From: d@remote.test\r\nSubject: list\r\n\r\n\xc3\xa9\r\n', r'(\Answered)', 1640000000)],
    # "Résumé" in modified UTF-7 (RFC 3501 §5.1.3).
    'R&AOk-sum&AOk-': [(b'From: e@remote.test\r\nSubject: cv\r\n\r\ncv\r\n', r'()', 1650000000)],
}}
TARGET = {{'INBOX': 'INBOX', 'Sent Messages': 'Sent', 'Deleted Items': 'Trash', 'Lists/rust': 'Lists.rust', 'R&AOk-sum&AOk-': 'R&AOk-sum&AOk-'}}
"#
    );
    let populate = common.clone()
        + &format!(
            r#"
m = imaplib.IMAP4_SSL('localhost', {port}, ssl_context=ctx)
m.login('src@remote.test', 'srcpass')
for f, msgs in MSGS.items():
    if f != 'INBOX':
        m.create('"%s"' % f)
    for raw, fl, ts in msgs:
        typ, data = m.append('"%s"' % f, fl, imaplib.Time2Internaldate(ts), raw)
        assert typ == 'OK', data
m.logout()
print('ok')
"#
        );
    assert_eq!(python(&populate).trim(), "ok");
    let pw = p.dir.path().join("srcpass");
    std::fs::write(&pw, "srcpass\n").unwrap();
    let url = format!("imaps://localhost:{port}");
    let args = [
        "import",
        USER,
        "--from-imap",
        &url,
        "--login",
        "src@remote.test",
        "--password-file",
        &path_str(&pw),
        "--ca-file",
        &cert,
    ];
    let o = p.cli(&args, None);
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("imported 6 messages") && out.contains("refused 0"),
        "{out}"
    );
    let check = common
        + &format!(
            r#"
m = imaplib.IMAP4_SSL('localhost', {imaps}, ssl_context=ctx)
m.login({USER:?}, {PASS:?})
for f, msgs in MSGS.items():
    typ, data = m.select('"%s"' % TARGET[f])
    assert typ == 'OK' and int(data[0]) == len(msgs), (f, data)
    typ, data = m.fetch('1:*', '(FLAGS INTERNALDATE BODY.PEEK[])')
    got = [d for d in data if isinstance(d, tuple)]
    for (head, body), (raw, fl, ts) in zip(got, msgs):
        assert body == raw, (f, body, raw)
        flags = set(imaplib.ParseFlags(head))
        want = set(x.encode() for x in fl.strip('()').split())
        assert want <= flags, (f, head, fl)
        assert int(time.mktime(imaplib.Internaldate2tuple(head))) == ts, (f, head, ts)
m.logout()
print('ok')
"#,
            imaps = p.ports.imaps
        );
    eprintln!("first run: {out}");
    assert_eq!(python(&check).trim(), "ok");
    // Resumable: nothing is copied twice.
    let o = p.cli(&args, None);
    let again = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success()
            && again.contains("imported 0 messages")
            && again.contains("skipped 6 already imported"),
        "{again}{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
