//! The programs and libraries the integration tests talk to ("peers"). `tests/setup-peers.sh`
//! installs them (`tests/run.sh` calls it first); each is probed here by what the tests need
//! of it — a module import, `--version`, a feature probe — never by a name on PATH alone.
//!
//! A test that lacks its peer never passes silently: it fails naming the peer. Outside CI,
//! `POSTERN_ALLOW_SKIP=1` turns that into a loud skip instead. Either way the test is written
//! to `missing_log()`, from which `tests/run.sh` prints "N tests did not run: …".
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where the tests that lacked a peer are listed, one `test<TAB>peer<TAB>outcome` a line.
pub fn missing_log() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("postern-missing-peers.log")
}

/// Whether a missing peer may skip a test: only when asked, and never in CI.
fn skips_allowed() -> bool {
    std::env::var_os("CI").is_none()
        && std::env::var("POSTERN_ALLOW_SKIP").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// A peer and whether its probe passed.
#[must_use = "call .available() or .essential()"]
pub struct Peer {
    pub name: &'static str,
    pub present: bool,
}

impl Peer {
    /// For a test that needs the peer: `true` when it is there. Otherwise the test fails
    /// naming it, or — when skips are allowed — a loud line is printed, the skip recorded and
    /// `false` returned (the caller returns at once).
    pub fn available(self) -> bool {
        self.present || missing(self.name, skips_allowed())
    }

    /// For a helper many tests share (a DNS server, an SMTP sink): fails the test when the
    /// peer is missing, even when skips are allowed.
    pub fn essential(self) {
        if !self.present {
            missing(self.name, false);
        }
    }
}

/// For a client a test needs, probed by the caller (`client_available` in mod.rs).
pub fn require(peer: &str, present: bool) -> bool {
    present || missing(peer, skips_allowed())
}

fn missing(peer: &str, allowed: bool) -> bool {
    let test = std::thread::current()
        .name()
        .unwrap_or("(unnamed test)")
        .to_string();
    let outcome = if allowed { "skipped" } else { "failed" };
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(missing_log())
    {
        let _ = writeln!(f, "{test}\t{peer}\t{outcome}");
    }
    assert!(
        allowed,
        "missing peer: {peer}. Run tests/setup-peers.sh (tests/run.sh does){}",
        if skips_allowed() {
            " (tests sharing this peer cannot skip)"
        } else {
            ", or set POSTERN_ALLOW_SKIP=1 to skip the tests that need it"
        }
    );
    eprintln!("\n!!!!! SKIPPED {test}: missing peer {peer} (POSTERN_ALLOW_SKIP is set) !!!!!\n");
    false
}

/// The command runs and exits 0.
pub fn runs(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The command runs, exits 0 and prints `needle` (stdout or stderr).
pub fn prints(cmd: &str, args: &[&str], needle: &str) -> bool {
    Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|o| {
            o.status.success()
                && (String::from_utf8_lossy(&o.stdout).contains(needle)
                    || String::from_utf8_lossy(&o.stderr).contains(needle))
        })
}

/// `python3` imports every module in the comma-separated list.
pub fn python_imports(modules: &str) -> bool {
    runs("python3", &["-c", &format!("import {modules}")])
}

// --- the peers, by what the tests use them for -------------------------------------------

/// swaks that can STARTTLS (Debian: swaks + libnet-ssleay-perl + libio-socket-ssl-perl).
pub fn swaks() -> Peer {
    peer(
        "swaks with TLS (apt: swaks libio-socket-ssl-perl)",
        prints("swaks", &["--support"], "=== TLS supported"),
    )
}

/// curl with the IMAP and IMAPS protocols.
pub fn curl_imap() -> Peer {
    peer(
        "curl with imap/imaps (apt: curl)",
        prints("curl", &["--version"], " imaps "),
    )
}

pub fn mbsync() -> Peer {
    peer(
        "mbsync (apt: isync)",
        prints("mbsync", &["--version"], "isync"),
    )
}

pub fn offlineimap() -> Peer {
    peer(
        "offlineimap (apt: offlineimap3)",
        runs("offlineimap", &["--version"]),
    )
}

pub fn fetchmail() -> Peer {
    peer(
        "fetchmail (apt: fetchmail)",
        runs("fetchmail", &["--version"]),
    )
}

/// node, and ImapFlow installed from tests/clients/node/package-lock.json (`npm ci`).
pub fn imapflow(node_dir: &Path) -> Peer {
    let present = Command::new("node")
        .current_dir(node_dir)
        .args(["--input-type=module", "-e", "await import('imapflow')"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    peer(
        "node + ImapFlow (apt: nodejs npm; npm ci in tests/clients/node)",
        present,
    )
}

pub fn deltachat() -> Peer {
    peer(
        "Delta Chat (pip: deltachat-rpc-server deltachat-rpc-client)",
        python_imports("deltachat_rpc_client, deltachat_rpc_server"),
    )
}

/// dkimpy able to verify ed25519-sha256 (RFC 8463), which it does through PyNaCl.
pub fn dkimpy_ed25519() -> Peer {
    peer(
        "dkimpy with PyNaCl (pip: dkimpy pynacl)",
        python_imports("dkim") && python_imports("nacl.signing"),
    )
}

pub fn dkimpy() -> Peer {
    peer("dkimpy (pip: dkimpy)", python_imports("dkim"))
}

pub fn dnspython() -> Peer {
    peer(
        "dnspython (pip: dnspython)",
        python_imports("dns.zone, dns.rdatatype"),
    )
}

pub fn dnsmasq() -> Peer {
    peer(
        "dnsmasq (apt: dnsmasq-base)",
        prints("dnsmasq", &["--version"], "Dnsmasq version"),
    )
}

/// Postfix's smtp-sink (it has no --version: usage on stderr is how it says it runs).
pub fn smtp_sink() -> Peer {
    let present = Command::new("/usr/sbin/smtp-sink")
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stderr).contains("usage:"));
    peer("smtp-sink (apt: postfix)", present)
}

/// pebble and pebble-challtestsrv (they answer -h with their usage).
pub fn pebble() -> Peer {
    let usage = |cmd: &str| {
        Command::new(cmd)
            .arg("-h")
            .stdin(Stdio::null())
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stderr).contains("Usage of"))
    };
    peer(
        "pebble + pebble-challtestsrv (apt: pebble)",
        usage("pebble") && usage("pebble-challtestsrv"),
    )
}

pub fn openssl() -> Peer {
    peer(
        "openssl (apt: openssl)",
        prints("openssl", &["version"], "OpenSSL"),
    )
}

pub fn systemd_analyze() -> Peer {
    peer(
        "systemd-analyze (apt: systemd)",
        runs("systemd-analyze", &["--version"]),
    )
}

pub fn fail2ban_regex() -> Peer {
    peer(
        "fail2ban-regex (apt: fail2ban)",
        runs("fail2ban-regex", &["--version"]),
    )
}

pub fn fail2ban_client() -> Peer {
    peer(
        "fail2ban-client with /etc/fail2ban (apt: fail2ban)",
        runs("fail2ban-client", &["--version"]) && Path::new("/etc/fail2ban/jail.conf").exists(),
    )
}

/// DANE: a zone signer, a validating resolver and dig (tests/outbound_dane.rs).
pub fn dane_tools() -> Peer {
    peer(
        "unbound, ldns-signzone and dig (apt: unbound ldnsutils dnsutils)",
        prints("unbound", &["-V"], "Version")
            && prints("ldns-signzone", &["-v"], "zone signer")
            && runs("dig", &["-v"]),
    )
}

pub fn journald() -> Peer {
    peer(
        "systemd-journald (apt: systemd)",
        runs("/lib/systemd/systemd-journald", &["--version"]),
    )
}

/// fail2ban's systemd backend: it runs on the system Python (#!/usr/bin/python3), whatever
/// `python3` is on PATH.
pub fn python3_systemd() -> Peer {
    peer(
        "python3-systemd (apt: python3-systemd)",
        runs("/usr/bin/python3", &["-c", "import systemd.journal"]),
    )
}

fn peer(name: &'static str, present: bool) -> Peer {
    Peer { name, present }
}
