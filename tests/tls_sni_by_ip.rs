//! A client connecting by IP address (`openssl s_client -connect 127.0.0.1:…` as the README's
//! `postern dev` invites) may send the address as SNI, which RFC 6066 §3 forbids. rustls then
//! logs a warning without naming the peer, once per connection; postern filters rustls below
//! `error` unless POSTERN_LOG names rustls (issue 20, item 14). The control half shows the probe
//! does make rustls warn, so the first half can fail.

mod common;
use common::*;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WARNING: &str = "Illegal SNI";

/// A TLS handshake to 127.0.0.1:`port` (implicit TLS) sending "127.0.0.1" as SNI; the text
/// openssl printed (with the server's greeting when the handshake succeeded).
fn connect_by_ip(port: u16) -> String {
    let out = run_with_stdin(
        Command::new("openssl").args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-servername",
            "127.0.0.1",
            "-ign_eof",
        ]),
        Some("a1 LOGOUT\r\n"),
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn wait_for(log: &Mutex<String>, needle: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if log.lock().unwrap().contains(needle) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn a_connection_by_ip_logs_no_rustls_sni_warning() {
    if !client_available("openssl s_client", which("openssl")) {
        return;
    }
    let mut p = Postern::start();
    let said = connect_by_ip(p.ports.imaps);
    assert!(said.contains("* OK"), "no IMAP greeting over TLS:\n{said}");
    // The IMAP session logged its LOGOUT after the handshake; the log is one ordered stream,
    // so a warning from the handshake would be in it by now.
    assert!(
        p.wait_log("imap logout peer=127.0.0.1", Duration::from_secs(15)),
        "the session never logged its LOGOUT:\n{}",
        p.log()
    );
    assert!(!p.log().contains(WARNING), "{}", p.log());

    // Control: the same probe with rustls warnings let through does produce the line.
    p.stop();
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&p.config)
        .arg("serve")
        .env("POSTERN_LOG", "debug,rustls=warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let stderr = child.stderr.take().unwrap();
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().unwrap().push_str(&(line + "\n"));
        }
    });
    let started = wait_for(&log, "postern started");
    let said = if started {
        connect_by_ip(p.ports.imaps)
    } else {
        String::new()
    };
    let warned = started && wait_for(&log, WARNING);
    let _ = child.kill();
    let _ = child.wait();
    assert!(started, "{}", log.lock().unwrap());
    assert!(said.contains("* OK"), "{said}");
    assert!(
        warned,
        "the probe did not make rustls warn:\n{}",
        log.lock().unwrap()
    );
}
