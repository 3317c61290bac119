//! Large-mailbox timing (ignored by default; run with
//! `cargo test --release --test imap_bench -- --ignored --nocapture`, optionally with
//! IMAP_BENCH_N=100000). Builds an N-message Maildir, starts the real binary and times
//! LOGIN+SELECT and `UID FETCH 1:* (UID FLAGS)` on a first and a second connection (and, in
//! `large_inbox_envelope_fetch_and_restart`, the parse cache across a restart), and the
//! server's RSS afterwards. Prints figures; asserts only correctness, never timing.
mod common;

use common::*;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Instant;

fn build_maildir(dir: &std::path::Path, n: usize) {
    for s in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(dir.join(s)).unwrap();
    }
    for i in 0..n {
        let body = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. ".repeat(15 + i % 35);
        let msg = format!(
            "From: Sender {i} <s{i}@remote.test>\r\nTo: user@example.test\r\nSubject: message {i}\r\nMessage-ID: <{i}@remote.test>\r\n\r\n{body}\r\n"
        );
        let flags = if i % 3 != 0 { "S" } else { "" };
        let name = format!(
            "{}.M{i}P1.bench,S={}:2,{flags}",
            1_700_000_000 + i,
            msg.len()
        );
        std::fs::write(dir.join("cur").join(name), msg).unwrap();
    }
}

/// Send a command, read until its tagged reply; returns the number of lines.
fn cmd(w: &mut TcpStream, r: &mut BufReader<TcpStream>, tag: &str, c: &str) -> usize {
    w.write_all(format!("{tag} {c}\r\n").as_bytes()).unwrap();
    let mut n = 0;
    let mut line = Vec::new();
    loop {
        line.clear();
        r.read_until(b'\n', &mut line).unwrap();
        assert!(!line.is_empty(), "connection closed");
        n += 1;
        if line.starts_with(tag.as_bytes()) {
            assert!(
                line.starts_with(format!("{tag} OK").as_bytes()),
                "{}",
                String::from_utf8_lossy(&line)
            );
            return n;
        }
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

#[test]
#[ignore]
fn large_inbox_select_and_fetch() {
    let n: usize = std::env::var("IMAP_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let p = Postern::start_with(Setup {
        extra: "[imap]\nallow_plaintext_auth = true\n".into(),
        ..Setup::default()
    });
    p.add_user("user@example.test", "pw");
    let t = Instant::now();
    build_maildir(&p.maildir("user@example.test"), n);
    eprintln!("built {n} messages in {:?}", t.elapsed());
    for round in ["first", "second"] {
        let mut w = TcpStream::connect(("127.0.0.1", p.ports.imap)).unwrap();
        let mut r = BufReader::new(w.try_clone().unwrap());
        let mut g = String::new();
        r.read_line(&mut g).unwrap();
        cmd(&mut w, &mut r, "a", "LOGIN user@example.test pw");
        let t = Instant::now();
        cmd(&mut w, &mut r, "b", "SELECT INBOX");
        let sel = t.elapsed();
        let t = Instant::now();
        let lines = cmd(&mut w, &mut r, "c", "UID FETCH 1:* (UID FLAGS)");
        let fetch = t.elapsed();
        assert_eq!(lines, n + 1);
        eprintln!("{round}: SELECT {sel:?}, UID FETCH 1:* (UID FLAGS) {fetch:?}");
        cmd(&mut w, &mut r, "d", "LOGOUT");
    }
    eprintln!("server RSS: {} KiB", rss_kib(server_pid(&p)));
}

/// The parse cache: `FETCH 1:* (ENVELOPE BODYSTRUCTURE RFC822.SIZE)` reads and parses every
/// file the first time; afterwards it is answered from the cache (in memory up to 20,000
/// messages per mailbox, the rest and everything after a restart from `postern-cache`).
#[test]
#[ignore]
fn large_inbox_envelope_fetch_and_restart() {
    let n: usize = std::env::var("IMAP_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let mut p = Postern::start_with(Setup {
        extra: "[imap]\nallow_plaintext_auth = true\n".into(),
        ..Setup::default()
    });
    p.add_user("user@example.test", "pw");
    build_maildir(&p.maildir("user@example.test"), n);
    for round in ["first", "second", "after restart"] {
        if round == "after restart" {
            p.stop();
            p.spawn();
        }
        let mut w = TcpStream::connect(("127.0.0.1", p.ports.imap)).unwrap();
        let mut r = BufReader::new(w.try_clone().unwrap());
        let mut g = String::new();
        r.read_line(&mut g).unwrap();
        cmd(&mut w, &mut r, "a", "LOGIN user@example.test pw");
        cmd(&mut w, &mut r, "b", "SELECT INBOX");
        let t = Instant::now();
        let lines = cmd(
            &mut w,
            &mut r,
            "c",
            "FETCH 1:* (ENVELOPE BODYSTRUCTURE RFC822.SIZE)",
        );
        let fetch = t.elapsed();
        assert!(lines > n, "{lines} lines for {n} messages");
        eprintln!("{round}: FETCH 1:* (ENVELOPE BODYSTRUCTURE RFC822.SIZE) {fetch:?}");
        cmd(&mut w, &mut r, "d", "LOGOUT");
    }
    eprintln!("server RSS: {} KiB", rss_kib(server_pid(&p)));
}

fn server_pid(p: &Postern) -> u32 {
    // The harness does not expose the child pid; find the process serving this config.
    let cfg = p.config.display().to_string();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(c) = std::fs::read(e.path().join("cmdline"))
            && String::from_utf8_lossy(&c).contains(&cfg)
            && let Ok(pid) = e.file_name().to_string_lossy().parse()
        {
            return pid;
        }
    }
    0
}
