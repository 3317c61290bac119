//! Peers for outbound tests, all on loopback: dnsmasq as the DNS server, Postfix's smtp-sink
//! and a tiny scripted SMTP sink as receiving MX hosts.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{Postern, Setup, free_port, which};

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn wait_tcp(addr: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if TcpStream::connect(addr).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not listen on {addr}");
}

/// dnsmasq on 127.0.0.1:port, authoritative for `.test` with the given config lines.
pub struct Dns {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Dns {
    pub fn start(lines: &[String]) -> Dns {
        assert!(
            which("dnsmasq"),
            "dnsmasq is required (installed by .ci/run)"
        );
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let conf = dir.path().join("dnsmasq.conf");
        let mut text = format!(
            "port={port}\nlisten-address=127.0.0.1\nbind-interfaces\nno-resolv\nno-hosts\n\
             local=/test/\npid-file={}\n",
            dir.path().join("pid").display()
        );
        for l in lines {
            text.push_str(l);
            text.push('\n');
        }
        std::fs::write(&conf, text).unwrap();
        let child = Command::new("dnsmasq")
            .arg("-k")
            .arg("-C")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dnsmasq");
        wait_tcp(&format!("127.0.0.1:{port}"), "dnsmasq");
        Dns {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Postfix's smtp-sink on ip:port, dumping every message into a file.
pub struct SmtpSink {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub addr: String,
}

impl SmtpSink {
    /// `extra`: e.g. ["-r", "rcpt"] to answer RCPT with 4xx, ["-f", "rcpt"] with 5xx.
    pub fn start(ip: &str, port: u16, extra: &[&str]) -> SmtpSink {
        assert!(
            Path::new("/usr/sbin/smtp-sink").exists(),
            "smtp-sink is required (package postfix, installed by .ci/run)"
        );
        let dir = tempfile::tempdir().unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let addr = format!("{ip}:{port}");
        let mut cmd = Command::new("/usr/sbin/smtp-sink");
        if is_root() {
            cmd.args(["-u", "nobody"]);
        }
        cmd.args(extra)
            .arg("-d")
            .arg(format!("{}/msg.", dir.path().display()))
            .arg(&addr)
            .arg("100")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn().expect("start smtp-sink");
        wait_tcp(&addr, "smtp-sink");
        SmtpSink {
            child: Some(child),
            dir,
            addr,
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The dumped transactions (X-… lines, then the message with LF line ends).
    pub fn messages(&self) -> Vec<String> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("msg."))
            })
            .collect();
        paths.sort();
        paths
            .iter()
            .map(|p| String::from_utf8_lossy(&std::fs::read(p).unwrap()).into_owned())
            // smtp-sink creates the file at MAIL; wait for the message to be complete.
            .filter(|m| m.contains("\nMessage-ID:") || m.contains("\nMessage-Id:"))
            .collect()
    }

    pub fn wait_messages(&self, n: usize, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let m = self.messages();
            if m.len() >= n || Instant::now() > deadline {
                return m;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A scripted SMTP server: RCPT for local parts starting with "bad" gets 550 5.1.1, with
/// "later" 451 4.2.1; everything else is accepted. Records every transaction.
pub struct ScriptSink {
    pub addr: String,
    pub received: Arc<Mutex<Vec<(Vec<String>, String)>>>,
}

impl ScriptSink {
    pub fn start(ip: &str, port: u16) -> ScriptSink {
        let addr = format!("{ip}:{port}");
        let listener = TcpListener::bind(&addr).expect("bind script sink");
        let received: Arc<Mutex<Vec<(Vec<String>, String)>>> = Arc::default();
        let rec = received.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let rec = rec.clone();
                std::thread::spawn(move || {
                    let _ = serve(conn, &rec);
                });
            }
        });
        ScriptSink { addr, received }
    }

    pub fn wait(&self, n: usize, timeout: Duration) -> Vec<(Vec<String>, String)> {
        let deadline = Instant::now() + timeout;
        loop {
            let m = self.received.lock().unwrap().clone();
            if m.len() >= n || Instant::now() > deadline {
                return m;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn serve(conn: TcpStream, rec: &Arc<Mutex<Vec<(Vec<String>, String)>>>) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut w = conn.try_clone()?;
    let mut r = BufReader::new(conn);
    w.write_all(b"220 script.sink ESMTP\r\n")?;
    let mut rcpts = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let up = line.to_ascii_uppercase();
        if up.starts_with("EHLO") {
            w.write_all(
                b"250-script.sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 10000000\r\n",
            )?;
        } else if up.starts_with("MAIL") {
            rcpts.clear();
            w.write_all(b"250 2.1.0 ok\r\n")?;
        } else if up.starts_with("RCPT") {
            let addr = line[line.find('<').unwrap_or(0) + 1..line.find('>').unwrap_or(line.len())]
                .to_string();
            if addr.starts_with("bad") {
                w.write_all(format!("550 5.1.1 <{addr}>: no such user\r\n").as_bytes())?;
            } else if addr.starts_with("later") {
                w.write_all(format!("451 4.2.1 <{addr}>: mailbox busy\r\n").as_bytes())?;
            } else {
                rcpts.push(addr);
                w.write_all(b"250 2.1.5 ok\r\n")?;
            }
        } else if up.starts_with("DATA") {
            if rcpts.is_empty() {
                w.write_all(b"554 5.5.1 no valid recipients\r\n")?;
                continue;
            }
            w.write_all(b"354 go ahead\r\n")?;
            let mut data = String::new();
            loop {
                let mut l = String::new();
                if r.read_line(&mut l)? == 0 {
                    return Ok(());
                }
                if l == ".\r\n" {
                    break;
                }
                data.push_str(l.strip_prefix('.').unwrap_or(&l));
            }
            rec.lock().unwrap().push((rcpts.clone(), data));
            w.write_all(b"250 2.0.0 queued\r\n")?;
        } else if up.starts_with("RSET") {
            rcpts.clear();
            w.write_all(b"250 ok\r\n")?;
        } else if up.starts_with("QUIT") {
            w.write_all(b"221 bye\r\n")?;
            return Ok(());
        } else {
            w.write_all(b"502 5.5.2 not implemented\r\n")?;
        }
    }
}

/// A sending postern (domain example.test) that resolves through `dns` and delivers to MX
/// hosts on `port`; `extra` adds config sections.
pub fn sender(dns: &Dns, port: u16, extra: &str) -> Postern {
    Postern::start_with(Setup {
        extra: format!(
            "[dns]\nnameservers = [\"127.0.0.1:{}\"]\n[outbound]\nport = {port}\n{extra}",
            dns.port
        ),
        ..Setup::default()
    })
}

/// `postern sendmail ARGS` with `msg` on stdin; panics on failure.
pub fn sendmail(p: &Postern, args: &[&str], msg: &str) {
    let mut a = vec!["sendmail"];
    a.extend_from_slice(args);
    let out = p.cli(&a, Some(msg));
    assert!(
        out.status.success(),
        "sendmail failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn queue_list(p: &Postern) -> String {
    let out = p.cli(&["queue", "list"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn wait_queue_empty(p: &Postern, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if queue_list(p).contains("queue is empty") {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}
