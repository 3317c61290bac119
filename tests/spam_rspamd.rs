//! rspamd verdicts enforced on port 25: a real rspamd (Debian's package) started with its own
//! config on loopback, driven to each action by its GTUBE test patterns (`XJS*…` reject,
//! `YJS*…` add header, `ZJS*…` rewrite subject; `enable_test_patterns`). Actions a stock
//! rspamd cannot be made to return on demand (soft reject) and the failure policy are checked
//! against a tiny fake rspamd that records what postern sent.

mod common;
use common::*;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const RCPT: &str = "user@example.test";
const GTUBE_TAIL: &str = "JS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";

/// rspamd's normal worker on a free loopback port, with everything under a temp dir.
struct Rspamd {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Rspamd {
    fn start() -> Rspamd {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        for sub in ["db", "run", "local"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        std::fs::write(
            dir.path().join("rspamd.conf"),
            format!(
                r#".include "$CONFDIR/common.conf"
options {{
    pidfile = "$RUNDIR/rspamd.pid";
    .include "$CONFDIR/options.inc"
    enable_test_patterns = true;
    dns {{ nameserver = ["{nx}"]; timeout = 1s; retransmits = 1; }}
}}
logging {{ type = "file"; filename = "$LOGDIR/rspamd.log"; level = "info"; }}
worker "normal" {{
    bind_socket = "127.0.0.1:{port}";
    .include "$CONFDIR/worker-normal.inc"
    count = 1;
}}
"#,
                nx = nx_dns()
            ),
        )
        .unwrap();
        let root = unsafe { geteuid() } == 0;
        if root {
            // rspamd drops to an unprivileged user, who must write the temp dir.
            Command::new("chmod")
                .args(["-R", "0777"])
                .arg(dir.path())
                .status()
                .unwrap();
        }
        let (user, group) = if root {
            ("nobody".to_string(), "nogroup".to_string())
        } else {
            let id = |a: &str| {
                String::from_utf8(Command::new("id").arg(a).output().unwrap().stdout)
                    .unwrap()
                    .trim()
                    .to_string()
            };
            (id("-un"), id("-gn"))
        };
        let d = path_str(dir.path());
        let child = Command::new("rspamd")
            .args(["-f", "-i", "-c"])
            .arg(dir.path().join("rspamd.conf"))
            .args(["-u", &user, "-g", &group])
            .args(["--var", "CONFDIR=/etc/rspamd"])
            .args(["--var", &format!("LOCAL_CONFDIR={d}/local")])
            .args(["--var", &format!("DBDIR={d}/db")])
            .args(["--var", &format!("RUNDIR={d}/run")])
            .args(["--var", &format!("LOGDIR={d}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("rspamd (apt-get install rspamd)");
        let mut r = Rspamd { child, port, dir };
        // Loading the rules and compiling its regexps takes a while on a busy machine.
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            if r.answers() {
                return r;
            }
            if let Ok(Some(status)) = r.child.try_wait() {
                panic!("rspamd exited with {status}: {}", r.log());
            }
            assert!(
                Instant::now() < deadline,
                "rspamd did not start: {}",
                r.log()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Whether the worker answers a check (it listens before its rules are loaded).
    fn answers(&self) -> bool {
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let body = "Subject: ping\r\n\r\nping\r\n";
        let _ = write!(
            s,
            "POST /checkv2 HTTP/1.0\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out.contains("\"action\"")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("rspamd.log")).unwrap_or_default()
    }
}

impl Drop for Rspamd {
    fn drop(&mut self) {
        // SIGTERM: the main process stops its workers (SIGKILL would orphan them).
        unsafe { kill(self.child.id() as i32, 15) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

unsafe extern "C" {
    fn geteuid() -> u32;
    fn kill(pid: i32, sig: i32) -> i32;
}

fn start_postern(spam: &str) -> Postern {
    let p = Postern::start_with(Setup {
        extra: format!("[spam]\n{spam}\n"),
        ..Setup::default()
    });
    p.add_user(RCPT, "pw-unused-here");
    p.add_user("other@example.test", "pw-unused-here");
    p
}

/// Deliver over port 25; "OK" or "ERR <code> <text>".
fn send(p: &Postern, tag: &str, body: &str) -> String {
    python(&format!(
        r#"
import smtplib
msg = ("From: Sender <a@sender.test>\r\nTo: {RCPT}\r\nSubject: {tag}\r\n"
       "Message-ID: <{tag}@sender.test>\r\n\r\n{body}\r\n").encode()
s = smtplib.SMTP('127.0.0.1', {port}, local_hostname='client.sender.test', timeout=120)
try:
    s.sendmail('a@sender.test', ['{RCPT}', 'other@example.test'], msg)
    print('OK')
except smtplib.SMTPResponseException as e:
    print('ERR', e.smtp_code, e.smtp_error.decode())
try:
    s.quit()
except Exception:
    pass
"#,
        port = p.ports.smtp,
    ))
    .trim()
    .to_string()
}

fn find<'a>(msgs: &'a [Vec<u8>], tag: &str) -> Option<&'a Vec<u8>> {
    msgs.iter()
        .find(|m| String::from_utf8_lossy(m).contains(&format!("Subject: {tag}\r\n")))
}

fn spam_header(msg: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(msg);
    let head = text.split("\r\n\r\n").next().unwrap_or("").to_string();
    head.split("\r\n")
        .find(|l| l.starts_with("X-Postern-Spam:"))
        .map(|l| l["X-Postern-Spam:".len()..].trim().to_string())
}

#[test]
fn real_rspamd_verdicts_are_enforced() {
    if !client_available("rspamd", which("rspamd")) {
        return;
    }
    let r = Rspamd::start();
    let p = start_postern(&format!("rspamd_url = \"http://127.0.0.1:{}\"", r.port));

    let reject = send(&p, "gtube-reject", &format!("X{GTUBE_TAIL}"));
    assert!(reject.starts_with("ERR 550"), "{reject}");
    assert!(reject.contains("5.7.1"), "{reject}");

    assert_eq!(send(&p, "gtube-header", &format!("Y{GTUBE_TAIL}")), "OK");
    assert_eq!(send(&p, "gtube-subject", &format!("Z{GTUBE_TAIL}")), "OK");
    assert_eq!(
        send(&p, "clean", "Lunch on Tuesday? The usual place."),
        "OK"
    );

    let junk = p.wait_messages(RCPT, "Junk", 2, Duration::from_secs(10));
    for (tag, action) in [
        ("gtube-header", "add header"),
        ("gtube-subject", "rewrite subject"),
    ] {
        let m = find(&junk, tag).unwrap_or_else(|| panic!("{tag} not in Junk"));
        let h = spam_header(m).expect("X-Postern-Spam");
        assert!(h.contains(&format!("action=\"{action}\"")), "{h}");
        assert!(h.contains("GTUBE"), "{h}");
    }
    let inbox = p.messages(RCPT, "");
    assert!(find(&inbox, "clean").is_some(), "clean mail in INBOX");
    assert!(find(&inbox, "gtube-reject").is_none());
    assert_eq!(inbox.len(), 1);
    // Each recipient got its copy where the verdict says.
    assert_eq!(p.messages("other@example.test", "Junk").len(), 2);
    assert!(p.log().contains("rspamd verdict"), "{}", p.log());
    // rspamd saw the envelope: its log line names the client and both recipients.
    let log = r.log();
    assert!(log.contains("ip: 127.0.0.1"), "{log}");
    assert!(log.contains("user@example.test"), "{log}");
}

/// A fake rspamd answering every request with `reply`; returns its port and the requests
/// (head and body) it received.
fn fake_rspamd(reply: &'static str) -> (u16, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut head = String::new();
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                let end = line == "\r\n";
                head.push_str(&line);
                if end {
                    break;
                }
            }
            let mut body = vec![0u8; len];
            let _ = reader.read_exact(&mut body);
            s2.lock()
                .unwrap()
                .push(head + &String::from_utf8_lossy(&body));
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                reply.len()
            );
        }
    });
    (port, seen)
}

#[test]
fn soft_reject_and_failure_policy() {
    let (port, seen) = fake_rspamd(
        r#"{"action":"soft reject","score":3.0,"required_score":15.0,"symbols":{},"messages":{"smtp_message":"Ratelimited"}}"#,
    );
    let p = start_postern(&format!("rspamd_url = \"http://127.0.0.1:{port}\""));
    let r = send(&p, "soft", "hello");
    assert!(r.starts_with("ERR 451 4.7.1 Ratelimited"), "{r}");
    let req = seen.lock().unwrap()[0].clone();
    assert!(req.starts_with("POST /checkv2 HTTP/1.1\r\n"), "{req}");
    let lower = req.to_ascii_lowercase();
    for h in [
        "ip: 127.0.0.1\r\n",
        "helo: client.sender.test\r\n",
        "from: a@sender.test\r\n",
        "rcpt: user@example.test\r\n",
        "rcpt: other@example.test\r\n",
        "queue-id: ",
        "hostname: ",
    ] {
        assert!(lower.contains(h), "{h} missing in {req}");
    }
    assert!(!lower.contains("\r\nuser: "), "{req}");
    assert!(
        req.contains("Subject: soft\r\n"),
        "the message is the body: {req}"
    );
    assert!(p.messages(RCPT, "").is_empty());

    // Nothing listens: accepted (and logged) by default …
    let dead = free_port();
    let p = start_postern(&format!("rspamd_url = \"http://127.0.0.1:{dead}\""));
    assert_eq!(send(&p, "unchecked", "hello"), "OK");
    assert!(
        p.log().contains("message accepted unchecked"),
        "{}",
        p.log()
    );
    assert_eq!(
        p.wait_messages(RCPT, "", 1, Duration::from_secs(10)).len(),
        1
    );
    // … or 451 with rspamd_failure = "tempfail".
    let p = start_postern(&format!(
        "rspamd_url = \"http://127.0.0.1:{dead}\"\nrspamd_failure = \"tempfail\""
    ));
    let r = send(&p, "tempfail", "hello");
    assert!(r.starts_with("ERR 451 4.7.1"), "{r}");
}
