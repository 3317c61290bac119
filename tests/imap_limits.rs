//! Oversized IMAP input over a real socket (RFC 7888 §4, RFC 5530): long command lines, huge
//! literal counts, many literals in one command. Each gets a clear answer; the connection
//! stays usable, or ends with BYE when literal data is already on its way.
mod common;

use common::*;

fn greet(p: &Postern) -> Raw {
    let mut c = Raw::connect(p.ports.imap);
    assert!(c.line().starts_with("* OK"));
    c
}

#[test]
fn oversized_input_gets_clear_answers() {
    let p = Postern::start_with(Setup {
        extra: "[limits]\nimap_max_literal = 100000\n".into(),
        ..Setup::default()
    });
    // A command line longer than any frame (literal limit + 64 KiB).
    let mut c = greet(&p);
    let mut line = b"a NOOP ".to_vec();
    line.extend(std::iter::repeat_n(b'x', 400_000));
    line.extend_from_slice(b"\r\n");
    c.send_bytes(&line);
    let r = c.line();
    assert!(r.starts_with("a BAD") && r.contains("too long"), "{r}");
    c.send("b NOOP\r\n");
    assert_eq!(c.line(), "b OK NOOP completed");

    // Synchronizing literals too large: NO [TOOBIG], no continuation, still in sync.
    for n in ["100001", "4294967296", "99999999999"] {
        c.send(&format!("c APPEND INBOX {{{n}}}\r\n"));
        let r = c.line();
        assert!(r.starts_with("c NO [TOOBIG]"), "{n}: {r}");
        c.send("d NOOP\r\n");
        assert_eq!(c.line(), "d OK NOOP completed", "{n}");
    }

    // Many literals in one command count against the same frame.
    let mut cmd = b"e SEARCH".to_vec();
    for _ in 0..40_000 {
        cmd.extend_from_slice(b" TEXT {1+}\r\nx");
    }
    cmd.extend_from_slice(b"\r\n");
    c.send_bytes(&cmd);
    let r = c.line();
    assert!(r.starts_with("e BAD"), "{r}");
    c.send("f NOOP\r\n");
    assert_eq!(c.line(), "f OK NOOP completed");

    // A non-synchronizing literal too large: its data is on its way, so BYE and close;
    // the bytes after the announcement are never run as a command.
    for n in ["100001", "99999999999"] {
        let mut c = greet(&p);
        c.send(&format!("g APPEND INBOX {{{n}+}}\r\nh CAPABILITY\r\n"));
        let rest = c.rest();
        assert!(rest.starts_with("* BYE [TOOBIG]"), "{n}: {rest}");
        assert!(!rest.contains("CAPABILITY"), "{n}: {rest}");
    }
}
