//! Oversized input (RFC 7888 §4, RFC 5530 TOOBIG/LIMIT): a clear answer, and the session
//! stays usable or closes with BYE. `services` sets imap_max_literal = 1000.

use super::super::{Session, Step};
use super::{services, talk};

fn logged_in() -> (tempfile::TempDir, Session) {
    let (d, svc) = services(true);
    let mut s = Session::new(svc, "127.0.0.1".parse().unwrap(), false);
    let r = talk(&mut s, "a LOGIN u@example.com pw\r\n");
    assert!(r.starts_with("a OK"), "{r}");
    (d, s)
}

#[test]
fn overlong_command_line_is_refused_and_the_session_goes_on() {
    let (_d, mut s) = logged_in();
    let mut line = b"b SEARCH SUBJECT ".to_vec();
    line.extend(std::iter::repeat_n(b'x', 300_000));
    line.extend_from_slice(b"\r\n");
    s.input(&line);
    let mut out = Vec::new();
    while let Step::Continue = s.step(&mut out) {}
    let r = String::from_utf8_lossy(&out);
    assert!(r.starts_with("b BAD") && r.contains("too long"), "{r}");
    let r = talk(&mut s, "c NOOP\r\n");
    assert_eq!(r, "c OK NOOP completed\r\n");
}

#[test]
fn literal_counts_beyond_the_limit_get_toobig() {
    let (_d, mut s) = logged_in();
    for n in [
        "1001",
        "4294967295",
        "4294967296",
        "99999999999",
        "18446744073709551616",
    ] {
        let r = talk(&mut s, &format!("b APPEND INBOX {{{n}}}\r\n"));
        assert!(r.starts_with("b NO [TOOBIG]"), "{n}: {r}");
        assert!(
            !r.contains('+'),
            "{n}: no continuation for a refused literal: {r}"
        );
        let r = talk(&mut s, "c NOOP\r\n");
        assert_eq!(r, "c OK NOOP completed\r\n", "{n}");
    }
}

#[test]
fn non_synchronizing_literal_beyond_the_limit_closes_with_bye() {
    // RFC 7888 §4: the data is already on its way, so the connection cannot be kept in sync.
    for n in ["1001", "4294967296", "99999999999"] {
        let (_d, mut s) = logged_in();
        // The "data" would be a command if it were read as one.
        s.input(format!("b APPEND INBOX {{{n}+}}\r\nc LOGOUT\r\n").as_bytes());
        let mut out = Vec::new();
        let mut st = s.step(&mut out);
        while st == Step::Continue {
            st = s.step(&mut out);
        }
        let r = String::from_utf8_lossy(&out);
        assert_eq!(st, Step::Close, "{n}: {r}");
        assert_eq!(r, "* BYE [TOOBIG] literal too large\r\n", "{n}");
    }
}

#[test]
fn many_small_literals_in_one_command_stay_bounded() {
    // Every literal counts against the one frame limit (literal limit + 64 KiB).
    let (_d, mut s) = logged_in();
    let mut cmd = b"b SEARCH".to_vec();
    for _ in 0..20_000 {
        cmd.extend_from_slice(b" TEXT {1+}\r\nx");
    }
    cmd.extend_from_slice(b"\r\n");
    s.input(&cmd);
    let mut out = Vec::new();
    while let Step::Continue = s.step(&mut out) {}
    let r = String::from_utf8_lossy(&out);
    assert!(r.starts_with("b BAD"), "{}", &r[..r.len().min(300)]);
    let r = talk(&mut s, "c NOOP\r\n");
    assert_eq!(r, "c OK NOOP completed\r\n");
}
