//! What ships beside the binary: the systemd unit, the fail2ban filter and jail, the example
//! config and the zone template — each checked by the tool that will read it.

mod common;
use common::*;

use std::path::Path;
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn read(rel: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every key of `v` as a dotted path.
fn keys(v: &toml::Value, prefix: &str, out: &mut Vec<String>) {
    if let toml::Value::Table(t) = v {
        for (k, v) in t {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            if v.is_table() {
                keys(v, &path, out);
            } else {
                out.push(path);
            }
        }
    }
}

#[test]
fn example_config_lists_every_key_with_its_default() {
    use postern::config::Config;
    let text = read("contrib/postern.example.toml");
    // It parses (unknown keys would be refused, naming them).
    let example = Config::parse(&text, Path::new("contrib/postern.example.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    // Every key the parser knows appears in the file …
    let defaults = Config::parse(
        &format!(
            "domain = {:?}\nhostname = {:?}\ndata_dir = {:?}\n",
            example.domain,
            example.hostname,
            example.data_dir.display().to_string()
        ),
        Path::new("defaults.toml"),
    )
    .unwrap();
    let want = toml::Value::try_from(&defaults).unwrap();
    let written: toml::Value = toml::from_str(&text).unwrap();
    let (mut known, mut listed) = (vec![], vec![]);
    keys(&want, "", &mut known);
    keys(&written, "", &mut listed);
    known.sort();
    listed.sort();
    assert_eq!(
        known, listed,
        "contrib/postern.example.toml must list exactly the config keys"
    );
    // … with the default value, so the file documents what postern does when a key is absent.
    assert_eq!(
        toml::Value::try_from(&example).unwrap(),
        want,
        "a value in contrib/postern.example.toml differs from the default"
    );
    // And each key line carries a comment, or a comment precedes it.
    let lines: Vec<&str> = text.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        if l.contains(" = ") && !l.trim_start().starts_with('#') {
            let commented =
                l.contains('#') || (i > 0 && lines[i - 1].trim_start().starts_with('#'));
            assert!(commented, "no comment for: {l}");
        }
    }
}

#[test]
fn systemd_unit_verifies_and_is_hardened() {
    let unit = read("systemd/postern.service");
    for directive in [
        "User=postern",
        "ExecStart=/usr/local/bin/postern serve",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/postern",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "SystemCallFilter=@system-service",
        "LimitNOFILE=",
    ] {
        assert!(
            unit.lines().any(|l| l.starts_with(directive)),
            "missing {directive}"
        );
    }
    peers::systemd_analyze().essential();
    // systemd-analyze insists that ExecStart's binary exists; point it at the one just built
    // unless it is installed where the unit expects it. Everything else is verified as shipped.
    let dir = tempfile::tempdir().unwrap();
    let unit_path = dir.path().join("postern.service");
    let installed = Path::new("/usr/local/bin/postern").exists();
    let text = if installed {
        unit.clone()
    } else {
        unit.replace("/usr/local/bin/postern", BIN)
    };
    std::fs::write(&unit_path, text).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit_path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{stderr}"
    );
    assert!(
        !stderr.contains("postern.service:"),
        "systemd-analyze complained about the unit:\n{stderr}"
    );
}

/// Lines postern logged for failed logins: real ones from SMTP AUTH (465) and IMAP LOGIN (993)
/// with wrong passwords. Until those listeners exist (they log "not built yet"), a line in the
/// exact format the tracing subscriber writes stands in for each missing one.
fn failed_login_lines() -> Vec<String> {
    let p = Postern::start();
    p.add_user("bob@example.test", "right-password");
    let _ = run_with_stdin(
        Command::new("python3").arg("-"),
        Some(&format!(
            r#"
import ssl, smtplib, imaplib
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
try:
    s = smtplib.SMTP_SSL("127.0.0.1", {subs}, context=ctx, timeout=20)
    try: s.login("bob@example.test", "wrong")
    except smtplib.SMTPAuthenticationError: pass
except Exception as e: print("smtp:", e)
try:
    m = imaplib.IMAP4_SSL("127.0.0.1", {imaps}, ssl_context=ctx, timeout=20)
    try: m.login("bob@example.test", "wrong")
    except imaplib.IMAP4.error: pass
except Exception as e: print("imap:", e)
"#,
            subs = p.ports.submissions,
            imaps = p.ports.imaps
        )),
    );
    let mut lines = vec![];
    for (service, stub) in [
        ("smtp", "SMTP Submissions listener is not built yet"),
        ("imap", "IMAP"),
    ] {
        let needle = format!("auth failed: service={service}");
        let built = !p
            .log()
            .lines()
            .any(|l| l.contains(stub) && l.contains("not built yet"));
        if built {
            p.wait_log(&needle, std::time::Duration::from_secs(10));
        }
        let log = p.log();
        let real: Vec<String> = log
            .lines()
            .filter(|l| l.contains(&needle))
            .map(str::to_string)
            .collect();
        if !real.is_empty() {
            lines.extend(real);
            continue;
        }
        assert!(
            !built,
            "a failed {service} login was not logged as `auth failed: service={service} ip=… user=…`:\n{log}"
        );
        // The subscriber's format: RFC 3339 UTC time, two spaces, level, message.
        let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ");
        lines.push(format!(
            "{now}  WARN auth failed: service={service} ip=127.0.0.1 user=bob@example.test reason=invalid"
        ));
    }
    lines
}

#[test]
fn fail2ban_filter_matches_failed_logins() {
    if !peers::fail2ban_regex().available() {
        return;
    }
    let lines = failed_login_lines();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("postern.log");
    let mut text = lines.join("\n");
    // Lines that must not match: a successful login, and a forged address in the user name.
    text.push_str("\n2026-01-01T00:00:00.000000Z  INFO auth ok: service=imap ip=192.0.2.1 user=bob@example.test");
    text.push_str("\n2026-01-01T00:00:00.000000Z  INFO login: user=x auth failed: service=smtp ip=192.0.2.66 user=y\n");
    std::fs::write(&log, &text).unwrap();
    let filter = Path::new(ROOT).join("contrib/fail2ban/filter.d/postern.conf");
    let out = Command::new("fail2ban-regex")
        .args(["-o", "ip"])
        .arg(&log)
        .arg(&filter)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ips: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(
        ips.len(),
        lines.len(),
        "every failed login matches, nothing else: {ips:?}\n{text}"
    );
    assert!(
        ips.iter()
            .all(|ip| ip == "127.0.0.1" || ip == "::ffff:127.0.0.1"),
        "{ips:?}"
    );
}

#[test]
fn fail2ban_jail_loads_with_the_filter() {
    if !peers::fail2ban_client().available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path();
    let status = Command::new("cp")
        .arg("-r")
        .arg("/etc/fail2ban/.")
        .arg(etc)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::copy(
        Path::new(ROOT).join("contrib/fail2ban/filter.d/postern.conf"),
        etc.join("filter.d/postern.conf"),
    )
    .unwrap();
    std::fs::copy(
        Path::new(ROOT).join("contrib/fail2ban/jail.d/postern.local"),
        etc.join("jail.d/postern.local"),
    )
    .unwrap();
    let out = Command::new("fail2ban-client")
        .arg("-c")
        .arg(etc)
        .arg("-d")
        .output()
        .unwrap();
    let dump = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dump.contains("['add', 'postern', 'systemd']"), "{dump}");
    assert!(dump.contains("auth failed: service="), "{dump}");
}

/// A forged fail2ban line a client tries to get logged through its login name.
const FORGED: &str = "x\r\n2026-01-31T12:00:00.000000Z  WARN auth failed: service=imap ip=203.0.113.77 user=x reason=invalid";

/// Six failed logins from 127.0.0.1 whose names carry `FORGED`: IMAP LOGIN with the name as a
/// literal (twice), IMAP AUTHENTICATE PLAIN with an initial response and with a continuation,
/// SMTP AUTH PLAIN and AUTH LOGIN on 465. Returns postern's log afterwards.
fn forged_login_attempts() -> (Postern, String) {
    let p = Postern::start_with(Setup {
        // Low, so the later attempts are refused at once by the throttle (and still logged).
        extra: "[limits]\nmax_auth_failures = 3\n".into(),
        ..Setup::default()
    });
    p.add_user("bob@example.test", "right-password");
    let out = python(&format!(
        r#"
import ssl, socket, base64, smtplib
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
forged = {forged:?}.encode()
def imap():
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", {imaps}), timeout=20), server_hostname="x")
    f = s.makefile("rb"); f.readline(); return s, f
def until(f, tag):
    while True:
        l = f.readline()
        if not l or l.startswith(tag) or l.startswith(b"+"): return l
s, f = imap()
for tag in (b"a1", b"a2"):
    s.sendall(tag + b" LOGIN {{%d}}\r\n" % len(forged))
    assert until(f, tag).startswith(b"+")
    s.sendall(forged + b" wrong\r\n")
    print(until(f, tag))
ir = base64.b64encode(b"\0" + forged + b"\0wrong")
s.sendall(b"b1 AUTHENTICATE PLAIN " + ir + b"\r\n"); print(until(f, b"b1"))
s.sendall(b"b2 AUTHENTICATE PLAIN\r\n"); assert until(f, b"b2").startswith(b"+")
s.sendall(ir + b"\r\n"); print(until(f, b"b2"))
m = smtplib.SMTP_SSL("127.0.0.1", {subs}, context=ctx, timeout=20)
m.ehlo("client.example")
print(m.docmd("AUTH", "PLAIN " + ir.decode()))
print(m.docmd("AUTH", "LOGIN " + base64.b64encode(forged).decode()))
print(m.docmd(base64.b64encode(b"wrong").decode()))
"#,
        forged = FORGED,
        imaps = p.ports.imaps,
        subs = p.ports.submissions,
    ));
    for refused in ["a1 NO", "a2 NO", "b1 NO", "b2 NO", "(535,", "(535,"] {
        assert!(out.contains(refused), "{refused} missing:\n{out}");
    }
    // Both SMTP refusals must be in the log before it is read: the second line can trail the
    // client's 535 under load (the journal test then saw 4 of 6 lines and did not ban).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while p.log().matches("auth failed:").count() < 6 {
        assert!(
            std::time::Instant::now() < deadline,
            "six 'auth failed' lines expected:\n{}",
            p.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let log = p.log();
    (p, log)
}

/// `fail2ban-regex -o ip LOG FILTER`: the addresses the shipped filter finds.
fn fail2ban_ips(log: &str) -> Vec<String> {
    peers::fail2ban_regex().essential();
    let filter = Path::new(ROOT).join("contrib/fail2ban/filter.d/postern.conf");
    let out = Command::new("fail2ban-regex")
        .args(["-o", "ip"])
        .arg(log)
        .arg(&filter)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn forged_login_names_cannot_write_a_fail2ban_line() {
    let (_p, log) = forged_login_attempts();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("postern.log");
    std::fs::write(&file, &log).unwrap();
    assert!(
        !log.lines().any(|l| l.contains("WARN auth failed")
            && l.contains("ip=203.0.113.77 ")
            && !l.contains("user=")),
        "{log}"
    );
    let ips = fail2ban_ips(&path_str(&file));
    assert!(
        !ips.iter().any(|ip| ip == "203.0.113.77"),
        "forged line matched: {ips:?}\n{log}"
    );
    assert_eq!(
        ips.iter().filter(|ip| *ip == "127.0.0.1").count(),
        6,
        "one line per failed login: {ips:?}\n{log}"
    );
}

/// A systemd-journald of its own (a journal namespace, systemd-journald(8)), so the test
/// writes to a real journal without touching the machine's. Stopped and removed on drop.
struct Journald {
    child: std::process::Child,
    namespace: String,
    files: std::path::PathBuf,
}

impl Journald {
    fn start() -> Journald {
        let namespace = format!("postern-test-{}", std::process::id());
        let child = Command::new("/lib/systemd/systemd-journald")
            .arg(&namespace)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start systemd-journald");
        let machine = std::fs::read_to_string("/etc/machine-id").unwrap();
        let dirs = ["/var/log/journal", "/run/log/journal"]
            .map(|d| Path::new(d).join(format!("{}.{namespace}", machine.trim())));
        // Built first, so a failed wait below still stops and removes it (Drop).
        let mut j = Journald {
            child,
            namespace,
            files: dirs[0].clone(),
        };
        let socket = format!("/run/systemd/journal.{}/stdout", j.namespace);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            if Path::new(&socket).exists()
                && let Some(files) = dirs.iter().find(|d| d.exists())
            {
                j.files = files.clone();
                return j;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "systemd-journald {} did not start",
                j.namespace
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Stream `bytes` as a service's stderr, through journald's stdout-stream protocol, as
    /// systemd does for a unit with StandardError=journal (header: identifier, unit, priority,
    /// level prefix, forward to syslog/kmsg/console).
    fn stream_as_postern(&self, bytes: &[u8]) {
        use std::io::Write;
        let path = format!("/run/systemd/journal.{}/stdout", self.namespace);
        let mut s = std::os::unix::net::UnixStream::connect(path).unwrap();
        s.write_all(b"postern\npostern.service\n6\n0\n0\n0\n0\n")
            .unwrap();
        s.write_all(bytes).unwrap();
    }
}

impl Drop for Journald {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.files);
        let _ = std::fs::remove_dir_all(format!("/run/systemd/journal.{}", self.namespace));
    }
}

/// Issue 12 item 7: the shipped jail (backend = systemd) bans from the journal. postern's own
/// stderr after six failed logins with forged names goes into a live systemd-journald; a real
/// fail2ban-server runs the shipped filter and jail on it (only the backend path, the action
/// and `ignoreself` are overridden) and must ban 127.0.0.1 and never 203.0.113.77.
#[test]
fn fail2ban_jail_bans_from_the_journal() {
    // Starting a systemd-journald of its own needs root.
    if !peers::require(
        "root (to start a systemd-journald)",
        unsafe { geteuid() } == 0,
    ) || !peers::fail2ban_client().available()
        || !peers::journald().available()
        || !peers::python3_systemd().available()
    {
        return;
    }

    let journal = Journald::start();
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("etc");
    let run = dir.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    assert!(
        Command::new("cp")
            .arg("-r")
            .arg("/etc/fail2ban/.")
            .arg(&etc)
            .status()
            .unwrap()
            .success()
    );
    // Only our jail: the distribution's (sshd in defaults-debian.conf) need logs not here.
    std::fs::remove_dir_all(etc.join("jail.d")).unwrap();
    std::fs::create_dir(etc.join("jail.d")).unwrap();
    for f in ["filter.d/postern.conf", "jail.d/postern.local"] {
        std::fs::copy(
            Path::new(ROOT).join("contrib/fail2ban").join(f),
            etc.join(f),
        )
        .unwrap();
    }
    let bans = dir.path().join("bans");
    std::fs::write(
        etc.join("fail2ban.local"),
        format!(
            "[Definition]\nlogtarget = {}\nsocket = {}\npidfile = {}\ndbfile = :memory:\n",
            path_str(&dir.path().join("fail2ban.log")),
            path_str(&run.join("f2b.sock")),
            path_str(&run.join("f2b.pid")),
        ),
    )
    .unwrap();
    std::fs::write(
        etc.join("action.d/record.conf"),
        format!(
            "[Definition]\nactionban = echo <ip> >> {}\nactionunban =\n",
            path_str(&bans)
        ),
    )
    .unwrap();
    // Only what a test needs differs from the shipped jail: where the journal is, what a ban
    // does, and that 127.0.0.1 (this machine) may be banned at all.
    std::fs::write(
        etc.join("jail.d/zz-test.local"),
        format!(
            "[postern]\nbackend = systemd[journalpath={}]\naction = record\nignoreself = false\nignoreip =\n",
            path_str(&journal.files)
        ),
    )
    .unwrap();
    let sock = run.join("f2b.sock");
    let client = |args: &[&str]| {
        Command::new("fail2ban-client")
            .arg("-c")
            .arg(&etc)
            .arg("-s")
            .arg(&sock)
            .args(args)
            .output()
            .unwrap()
    };
    let mut server = Command::new("fail2ban-client")
        .arg("-c")
        .arg(&etc)
        .args(["-x", "-f", "start"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    struct Kill<'a>(&'a mut std::process::Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _server = Kill(&mut server);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !client(&["status", "postern"]).status.success() {
        assert!(
            std::time::Instant::now() < deadline,
            "fail2ban did not start the postern jail:\n{}",
            std::fs::read_to_string(dir.path().join("fail2ban.log")).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    let (_p, log) = forged_login_attempts();
    journal.stream_as_postern(log.as_bytes());

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let banned = std::fs::read_to_string(&bans).unwrap_or_default();
        if banned.lines().any(|l| l.trim() == "127.0.0.1") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the jail did not ban 127.0.0.1 from the journal; fail2ban log:\n{}\njournal:\n{}",
            std::fs::read_to_string(dir.path().join("fail2ban.log")).unwrap_or_default(),
            String::from_utf8_lossy(
                &Command::new("journalctl")
                    .arg("--directory")
                    .arg(&journal.files)
                    .output()
                    .unwrap()
                    .stdout
            )
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let status = String::from_utf8_lossy(&client(&["status", "postern"]).stdout).into_owned();
    assert!(
        status.contains("Total failed:\t6") || status.contains("Total failed: 6"),
        "{status}"
    );
    assert!(!status.contains("203.0.113.77"), "{status}");
    let banned = std::fs::read_to_string(&bans).unwrap();
    assert!(!banned.contains("203.0.113.77"), "{banned}");
}

unsafe extern "C" {
    fn geteuid() -> u32;
}

#[test]
fn zone_template_parses_and_has_every_record_postern_dns_prints() {
    if !peers::dnspython().available() {
        return;
    }
    let zone = Path::new(ROOT).join("contrib/zone.example.txt");
    let out = python(&format!(
        r#"
import dns.zone, dns.rdatatype as T
z = dns.zone.from_text(open({zone:?}).read(), relativize=False)  # checks SOA and NS too
have = {{(n.to_text(), T.to_text(rs.rdtype)) for n, node in z.nodes.items() for rs in node.rdatasets}}
want = {{("example.com.", "MX"), ("mail.example.com.", "A"), ("mail.example.com.", "AAAA"),
        ("example.com.", "TXT"), ("mail.example.com.", "TXT"), ("postern._domainkey.example.com.", "TXT"),
        ("_dmarc.example.com.", "TXT"), ("_mta-sts.example.com.", "TXT"), ("mta-sts.example.com.", "CNAME"),
        ("_smtp._tls.example.com.", "TXT"), ("_submissions._tcp.example.com.", "SRV"),
        ("_submission._tcp.example.com.", "SRV"), ("_imaps._tcp.example.com.", "SRV"),
        ("_imap._tcp.example.com.", "SRV"), ("autoconfig.example.com.", "CNAME")}}
missing = want - have
assert not missing, missing
print("ok")
"#,
        zone = path_str(&zone)
    ));
    assert_eq!(out.trim(), "ok");
}
