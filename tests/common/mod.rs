//! Shared harness for integration tests: start the real `postern` binary on free loopback
//! ports with a temporary data directory, and helpers to run external clients.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub mod dnsmasq;
pub mod peers;

pub const BIN: &str = env!("CARGO_BIN_EXE_postern");

/// A free port on 127.0.0.1 (TCP and UDP), never handed out twice by this test process.
///
/// Ports come from 10000-31999, below the kernel's ephemeral range (32768+), so an outgoing
/// client connection can never take the port of a server a test is about to restart, and the
/// counter keeps two tests of one binary from racing for the same port.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const BASE: u32 = 10_000;
    const SPAN: u32 = 22_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        (std::process::id().wrapping_mul(7919)) % SPAN,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..SPAN {
        let port = (BASE + NEXT.fetch_add(1, Ordering::SeqCst) % SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok()
            && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
        {
            return port;
        }
    }
    panic!("no free loopback port in {BASE}-{}", BASE + SPAN);
}

pub struct Ports {
    pub smtp: u16,
    pub submission: u16,
    pub submissions: u16,
    pub imap: u16,
    pub imaps: u16,
    pub pop3: u16,
    pub pop3s: u16,
    pub managesieve: u16,
    pub http: u16,
}

impl Ports {
    pub fn new() -> Ports {
        Ports {
            smtp: free_port(),
            submission: free_port(),
            submissions: free_port(),
            imap: free_port(),
            imaps: free_port(),
            pop3: free_port(),
            pop3s: free_port(),
            managesieve: free_port(),
            http: free_port(),
        }
    }
}

/// A running postern with its own data dir. Killed on drop.
pub struct Postern {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub ports: Ports,
    pub domain: String,
    child: Option<Child>,
    log: Arc<Mutex<String>>,
}

/// Options for `Postern::start_with`.
pub struct Setup {
    pub domain: String,
    pub hostname: String,
    /// Extra TOML appended to the generated config (whole sections, e.g. "[limits]\n...").
    pub extra: String,
    /// Replaces the generated [tls] section when set.
    pub tls: Option<String>,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            domain: "example.test".into(),
            hostname: "mail.example.test".into(),
            extra: String::new(),
            tls: None,
        }
    }
}

impl Postern {
    /// Start with defaults: domain example.test, self-signed TLS, all listeners on loopback.
    pub fn start() -> Postern {
        Self::start_with(Setup::default())
    }

    pub fn start_with(setup: Setup) -> Postern {
        let dir = tempfile::tempdir().unwrap();
        let ports = Ports::new();
        let config = dir.path().join("postern.toml");
        let tls = setup
            .tls
            .clone()
            .unwrap_or_else(|| "[tls]\nsource = \"self-signed\"\n".into());
        let text = format!(
            "domain = \"{domain}\"\nhostname = \"{host}\"\ndata_dir = \"{data}\"\n\
             [listen]\nsmtp = [\"127.0.0.1:{}\"]\nsubmission = [\"127.0.0.1:{}\"]\nsubmissions = [\"127.0.0.1:{}\"]\n\
             imap = [\"127.0.0.1:{}\"]\nimaps = [\"127.0.0.1:{}\"]\npop3 = [\"127.0.0.1:{}\"]\npop3s = [\"127.0.0.1:{}\"]\n\
             managesieve = [\"127.0.0.1:{}\"]\nhttp = [\"127.0.0.1:{}\"]\n{tls}\n{extra}\n",
            ports.smtp,
            ports.submission,
            ports.submissions,
            ports.imap,
            ports.imaps,
            ports.pop3,
            ports.pop3s,
            ports.managesieve,
            ports.http,
            domain = setup.domain,
            host = setup.hostname,
            data = dir.path().join("data").display(),
            extra = if setup.extra.contains("[dns]") {
                setup.extra.clone()
            } else {
                format!("{}\n[dns]\nnameservers = [\"{}\"]\n", setup.extra, nx_dns())
            },
        );
        std::fs::write(&config, text).unwrap();
        let mut p = Postern {
            dir,
            config,
            ports,
            domain: setup.domain,
            child: None,
            log: Arc::default(),
        };
        p.spawn();
        p
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Start (or restart) the server process and wait until the SMTP port answers.
    pub fn spawn(&mut self) {
        let before = self.log().matches("postern started").count();
        let mut child = Command::new(BIN)
            .arg("--config")
            .arg(&self.config)
            .arg("serve")
            .env("POSTERN_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start postern");
        let stderr = child.stderr.take().unwrap();
        let log = self.log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if std::env::var_os("POSTERN_TEST_LOG").is_some() {
                    eprintln!("[postern] {line}");
                }
                log.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        self.child = Some(child);
        self.wait_started(before);
    }

    /// Wait for the "postern started" log line (printed once every listener is bound).
    fn wait_started(&mut self, starts: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.log().matches("postern started").count() > starts {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("postern exited with {status}; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("postern did not start; log:\n{}", self.log());
    }

    /// Wait until a port accepts connections (the server binds all listeners before serving).
    pub fn wait_port(&mut self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("postern exited with {status}; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("postern did not listen on {port}; log:\n{}", self.log());
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Wait until the log contains `needle` (for asynchronous events).
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.log().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// SIGTERM and wait for exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe { libc_kill(c.id() as i32, 15) };
            let deadline = Instant::now() + Duration::from_secs(35);
            while Instant::now() < deadline {
                if c.try_wait().unwrap().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGKILL (a crash) and wait for exit.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Send a signal to the running server.
    pub fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            unsafe { libc_kill(c.id() as i32, sig) };
        }
    }

    /// Run a `postern` CLI command against this instance's config.
    pub fn cli(&self, args: &[&str], stdin: Option<&str>) -> Output {
        run_with_stdin(
            Command::new(BIN)
                .arg("--config")
                .arg(&self.config)
                .args(args),
            stdin,
        )
    }

    /// Add a user with a password (via --password-stdin).
    pub fn add_user(&self, address: &str, password: &str) {
        let out = self.cli(
            // Tests use short passwords; the CLI's refusal of them is tested in tests/cli.rs.
            &[
                "user",
                "add",
                address,
                "--password-stdin",
                "--allow-short-password",
            ],
            Some(&format!("{password}\n")),
        );
        assert!(
            out.status.success(),
            "user add failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn add_alias(&self, alias: &str, targets: &[&str]) {
        let mut args = vec!["alias", "add", alias];
        args.extend_from_slice(targets);
        let out = self.cli(&args, None);
        assert!(
            out.status.success(),
            "alias add failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The Maildir++ root of a user.
    pub fn maildir(&self, user: &str) -> PathBuf {
        let (local, domain) = user.rsplit_once('@').unwrap();
        self.data_dir().join("mail").join(domain).join(local)
    }

    /// Messages in a user's folder ("" = INBOX), new/ and cur/, as bytes.
    pub fn messages(&self, user: &str, folder: &str) -> Vec<Vec<u8>> {
        let base = if folder.is_empty() {
            self.maildir(user)
        } else {
            self.maildir(user).join(format!(".{folder}"))
        };
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(rd) = std::fs::read_dir(base.join(sub)) {
                let mut paths: Vec<_> = rd.map(|e| e.unwrap().path()).collect();
                paths.sort();
                for p in paths {
                    out.push(std::fs::read(p).unwrap());
                }
            }
        }
        out
    }

    /// Wait until a user's folder holds at least `n` messages.
    pub fn wait_messages(
        &self,
        user: &str,
        folder: &str,
        n: usize,
        timeout: Duration,
    ) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        loop {
            let m = self.messages(user, folder);
            if m.len() >= n || Instant::now() > deadline {
                return m;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The self-signed certificate (PEM) the server uses, for clients that verify.
    pub fn self_signed_cert(&self) -> PathBuf {
        self.data_dir().join("tls/self-signed-cert.pem")
    }
}

impl Drop for Postern {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!("---- postern log ----\n{}", self.log());
        }
    }
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

pub fn run_with_stdin(cmd: &mut Command, stdin: Option<&str>) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn command");
    if let Some(s) = stdin {
        // A command may refuse (and exit) before reading its input: a closed pipe is fine.
        if let Err(e) = child.stdin.take().unwrap().write_all(s.as_bytes()) {
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
        }
    } else {
        drop(child.stdin.take());
    }
    child.wait_with_output().unwrap()
}

/// Run a Python 3 snippet; panics with its output if it fails.
pub fn python(script: &str) -> String {
    let out = run_with_stdin(Command::new("python3").arg("-"), Some(script));
    let stderr = String::from_utf8_lossy(&out.stderr);
    if let Some(m) = stderr
        .lines()
        .find_map(|l| l.strip_prefix("ModuleNotFoundError: No module named "))
    {
        panic!("missing peer: python module {m} (tests/setup-peers.sh installs it)\n{stderr}");
    }
    assert!(
        out.status.success(),
        "python failed:\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A minimal line-based TCP client for raw protocol tests.
pub struct Raw {
    pub stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Raw {
    pub fn connect(port: u16) -> Raw {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        Raw { stream, reader }
    }

    pub fn send(&mut self, data: &str) {
        self.stream.write_all(data.as_bytes()).unwrap();
    }

    pub fn send_bytes(&mut self, data: &[u8]) {
        self.stream.write_all(data).unwrap();
    }

    /// One line, without CRLF ("" at EOF).
    pub fn line(&mut self) -> String {
        let mut s = String::new();
        self.reader.read_line(&mut s).unwrap();
        s.trim_end_matches(['\r', '\n']).to_string()
    }

    /// A whole SMTP reply (all continuation lines); returns the lines joined with '\n'.
    pub fn reply(&mut self) -> String {
        let mut all = Vec::new();
        loop {
            let l = self.line();
            let done = l.len() < 4 || l.as_bytes()[3] != b'-';
            all.push(l);
            if done {
                return all.join("\n");
            }
        }
    }

    /// Read until EOF (or timeout).
    pub fn rest(&mut self) -> String {
        let mut s = String::new();
        let _ = self.reader.read_to_string(&mut s);
        s
    }
}

pub fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

pub fn which(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

pub fn path_str(p: &Path) -> String {
    p.display().to_string()
}

/// A DNS server for this test process that answers every query with NXDOMAIN, so tests
/// that don't bring their own `[dns]` never depend on the machine's resolver (a CI box may
/// have none; a timeout there would turn SPF/DMARC checks into 451s).
pub fn nx_dns() -> SocketAddr {
    static ADDR: std::sync::OnceLock<SocketAddr> = std::sync::OnceLock::new();
    *ADDR.get_or_init(|| {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = sock.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while let Ok((n, from)) = sock.recv_from(&mut buf) {
                if n < 12 {
                    continue;
                }
                // Echo the header and question; QR=1, RD copied, RA=1, RCODE=3 (NXDOMAIN);
                // no answers (RFC 1035 4.1.1).
                let mut out = buf[..n].to_vec();
                out[2] = 0x80 | (buf[2] & 0x01);
                out[3] = 0x80 | 0x03;
                out[6..12].fill(0);
                // Drop any EDNS OPT record the query carried (ARCOUNT is now 0).
                if let Some(end) = question_end(&out) {
                    out.truncate(end);
                }
                let _ = sock.send_to(&out, from);
            }
        });
        addr
    })
}

fn question_end(msg: &[u8]) -> Option<usize> {
    let qd = u16::from_be_bytes([msg[4], msg[5]]);
    let mut i = 12;
    for _ in 0..qd {
        loop {
            let len = *msg.get(i)? as usize;
            if len == 0 {
                i += 1;
                break;
            }
            if len & 0xC0 == 0xC0 {
                i += 2;
                break;
            }
            i += 1 + len;
        }
        i += 4;
    }
    (i <= msg.len()).then_some(i)
}

/// Whether an external client a test needs is there; see `peers` (a missing one fails the
/// test naming it, or skips it loudly under POSTERN_ALLOW_SKIP=1 outside CI).
pub fn client_available(what: &str, present: bool) -> bool {
    peers::require(what, present)
}
