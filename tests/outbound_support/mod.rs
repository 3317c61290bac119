//! Peers for outbound tests, all on loopback: dnsmasq as the DNS server, Postfix's smtp-sink
//! and a tiny scripted SMTP sink as receiving MX hosts.
#![allow(dead_code)]

pub mod dnssec;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{Postern, Setup, free_port, peers};

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

/// Run a shell script in `dir`; panics with its stderr if it fails.
pub fn sh(dir: &Path, script: &str) {
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and one leaf certificate for `names`, as ca.pem, leaf.pem, leaf.key in `dir`.
pub fn make_certs(dir: &Path, names: &[&str]) {
    let san: Vec<String> = names.iter().map(|n| format!("DNS:{n}")).collect();
    sh(
        dir,
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 \
         -subj /CN=postern-test-ca -addext basicConstraints=critical,CA:TRUE \
         -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null",
    );
    std::fs::write(
        dir.join("leaf.ext"),
        format!(
            "subjectAltName={}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
            san.join(",")
        ),
    )
    .unwrap();
    sh(
        dir,
        &format!(
            "openssl req -newkey rsa:2048 -nodes -keyout leaf.key -out leaf.csr -subj /CN={} 2>/dev/null && \
             openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out leaf.pem \
             -days 2 -extfile leaf.ext 2>/dev/null",
            names[0]
        ),
    );
}

/// dnsmasq on 127.0.0.1:port, authoritative for `.test` with the given config lines.
pub struct Dns {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Dns {
    pub fn start(lines: &[String]) -> Dns {
        peers::dnsmasq().essential();
        // free_port() checks TCP only: if the UDP port is taken, dnsmasq exits; try another.
        for _ in 0..5 {
            if let Some(dns) = Self::try_start(lines) {
                return dns;
            }
        }
        panic!("dnsmasq did not start");
    }

    fn try_start(lines: &[String]) -> Option<Dns> {
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
        let mut child = Command::new("dnsmasq")
            .arg("-k")
            .arg("-C")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dnsmasq");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if child.try_wait().ok().flatten().is_some() {
                return None;
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(Dns {
                    child,
                    port,
                    _dir: dir,
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
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
        peers::smtp_sink().essential();
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

/// One transaction a `ScriptSink` accepted.
#[derive(Debug, Clone)]
pub struct Received {
    pub rcpts: Vec<String>,
    pub data: String,
    /// The transaction ran over TLS (after STARTTLS).
    pub tls: bool,
}

/// A scripted SMTP server: RCPT for local parts starting with "bad" gets 550 5.1.1, with
/// "later" 451 4.2.1; everything else is accepted. Records every transaction. With
/// `start_tls`, it offers STARTTLS with a self-signed certificate for `mx.tls.test`.
pub struct ScriptSink {
    pub addr: String,
    pub received: Arc<Mutex<Vec<Received>>>,
    /// The most connections that were open at once.
    pub peak: Arc<AtomicUsize>,
}

impl ScriptSink {
    pub fn start(ip: &str, port: u16) -> ScriptSink {
        Self::start_inner(ip, port, None)
    }

    pub fn start_tls(ip: &str, port: u16) -> ScriptSink {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let ck = rcgen::generate_simple_self_signed(vec!["mx.tls.test".to_string()]).unwrap();
        let cert = ck.cert.der().clone();
        let key =
            rustls::pki_types::PrivateKeyDer::try_from(ck.signing_key.serialize_der()).unwrap();
        let cfg = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .unwrap();
        Self::start_inner(ip, port, Some(Arc::new(cfg)))
    }

    /// STARTTLS with a PEM certificate chain and key (e.g. issued by a test CA).
    pub fn start_tls_pem(ip: &str, port: u16, cert: &Path, key: &Path) -> ScriptSink {
        use rustls::pki_types::pem::PemObject;
        let _ = rustls::crypto::ring::default_provider().install_default();
        let certs: Vec<_> = rustls::pki_types::CertificateDer::pem_file_iter(cert)
            .unwrap()
            .map(|c| c.unwrap())
            .collect();
        let key = rustls::pki_types::PrivateKeyDer::from_pem_file(key).unwrap();
        let cfg = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        Self::start_inner(ip, port, Some(Arc::new(cfg)))
    }

    /// A plain sink that waits `delay` before its greeting, so sessions overlap.
    pub fn start_slow(ip: &str, port: u16, delay: Duration) -> ScriptSink {
        Self::start_with(ip, port, None, delay)
    }

    fn start_inner(ip: &str, port: u16, tls: Option<Arc<rustls::ServerConfig>>) -> ScriptSink {
        Self::start_with(ip, port, tls, Duration::ZERO)
    }

    fn start_with(
        ip: &str,
        port: u16,
        tls: Option<Arc<rustls::ServerConfig>>,
        greet_delay: Duration,
    ) -> ScriptSink {
        let addr = format!("{ip}:{port}");
        let listener = TcpListener::bind(&addr).expect("bind script sink");
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let peak = Arc::new(AtomicUsize::new(0));
        let active = Arc::new(AtomicUsize::new(0));
        let rec = received.clone();
        let peak2 = peak.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let rec = rec.clone();
                let tls = tls.clone();
                let (active, peak) = (active.clone(), peak2.clone());
                std::thread::spawn(move || {
                    let now = active.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(greet_delay);
                    let _ = serve(conn, &rec, tls);
                    active.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        ScriptSink {
            addr,
            received,
            peak,
        }
    }

    pub fn wait(&self, n: usize, timeout: Duration) -> Vec<Received> {
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

fn serve(
    mut conn: TcpStream,
    rec: &Arc<Mutex<Vec<Received>>>,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    conn.write_all(b"220 script.sink ESMTP\r\n")?;
    let upgrade = session(&mut conn, rec, tls.is_some(), false)?;
    if let (true, Some(cfg)) = (upgrade, tls) {
        let sc = rustls::ServerConnection::new(cfg).map_err(std::io::Error::other)?;
        let mut s = rustls::StreamOwned::new(sc, conn);
        session(&mut s, rec, false, true)?;
    }
    Ok(())
}

/// Run SMTP until QUIT/EOF; returns true when the client asked for STARTTLS.
fn session<S: std::io::Read + Write>(
    s: &mut S,
    rec: &Arc<Mutex<Vec<Received>>>,
    offer_tls: bool,
    secured: bool,
) -> std::io::Result<bool> {
    let mut r = BufReader::new(s);
    let mut rcpts = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Ok(false);
        }
        let w = r.get_mut();
        let up = line.to_ascii_uppercase();
        if up.starts_with("EHLO") {
            let tls = if offer_tls { "250-STARTTLS\r\n" } else { "" };
            w.write_all(
                format!("250-script.sink\r\n{tls}250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 10000000\r\n")
                    .as_bytes(),
            )?;
        } else if up.starts_with("STARTTLS") && offer_tls {
            w.write_all(b"220 2.0.0 go ahead\r\n")?;
            w.flush()?;
            return Ok(true);
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
            w.flush()?;
            let mut data = String::new();
            loop {
                let mut l = String::new();
                if r.read_line(&mut l)? == 0 {
                    return Ok(false);
                }
                if l == ".\r\n" {
                    break;
                }
                data.push_str(l.strip_prefix('.').unwrap_or(&l));
            }
            rec.lock().unwrap().push(Received {
                rcpts: rcpts.clone(),
                data,
                tls: secured,
            });
            r.get_mut().write_all(b"250 2.0.0 queued\r\n")?;
        } else if up.starts_with("RSET") {
            rcpts.clear();
            w.write_all(b"250 ok\r\n")?;
        } else if up.starts_with("QUIT") {
            w.write_all(b"221 bye\r\n")?;
            w.flush()?;
            return Ok(false);
        } else {
            w.write_all(b"502 5.5.2 not implemented\r\n")?;
        }
        r.get_mut().flush()?;
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

/// `postern queue show ID` of the only message in the queue.
pub fn queue_show(p: &Postern) -> String {
    let list = queue_list(p);
    let Some(id) = list
        .lines()
        .filter(|l| !l.starts_with(' ') && !l.ends_with("message(s)"))
        .filter_map(|l| l.split_whitespace().next())
        .find(|w| w.chars().all(|c| c.is_ascii_alphanumeric()))
    else {
        return list;
    };
    let out = p.cli(&["queue", "show", id], None);
    format!(
        "{list}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn wait_queue_show(p: &Postern, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let s = queue_show(p);
        if s.contains(needle) || Instant::now() > deadline {
            return s;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Python's https server answering /.well-known/mta-sts.txt per Host header.
pub struct PolicyServer {
    child: Child,
}

impl PolicyServer {
    /// Serves `leaf.pem`/`leaf.key` from `dir` (see `make_certs`).
    pub fn start(dir: &Path, ip: &str, port: u16, policies: &[(&str, &str)]) -> PolicyServer {
        let table: Vec<String> = policies
            .iter()
            .map(|(host, body)| format!("{host:?}: {body:?}"))
            .collect();
        let script = format!(
            r#"
import http.server, ssl
POLICIES = {{{table}}}
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        host = (self.headers.get("Host") or "").split(":")[0]
        body = POLICIES.get(host)
        if self.path != "/.well-known/mta-sts.txt" or body is None:
            self.send_response(404); self.end_headers(); return
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, *a): pass
srv = http.server.HTTPServer(({ip:?}, {port}), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain("leaf.pem", "leaf.key")
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
"#,
            table = table.join(", ")
        );
        let child = Command::new("python3")
            .arg("-c")
            .arg(script)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect((ip, port)).is_err() {
            assert!(Instant::now() < deadline, "policy server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        PolicyServer { child }
    }
}

impl Drop for PolicyServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
