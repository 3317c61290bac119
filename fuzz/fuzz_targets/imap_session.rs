//! Drive the sans-IO IMAP session, logged in with INBOX selected, with arbitrary input over a
//! real (temporary) Maildir holding a few messages: no panic, no endless loop, and the output
//! of each step is whole lines (it ends in CRLF).
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use postern::config::Config;
use postern::imap::session::{Session, Step};
use postern::services::Services;

const MESSAGES: &[&str] = &[
    "From: A <a@example.org>\r\nTo: u@example.com\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\n\r\nbody\r\n",
    "Content-Type: multipart/mixed; boundary=b\r\nSubject: m\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\ny\r\n--b--\r\n",
];

fn services() -> &'static Arc<Services> {
    static SVC: OnceLock<(tempfile::TempDir, Arc<Services>)> = OnceLock::new();
    &SVC.get_or_init(|| {
        postern::tls::install_crypto_provider();
        let d = tempfile::tempdir().unwrap();
        let text = format!(
            "domain = \"example.com\"\nhostname = \"mail.example.com\"\ndata_dir = \"{}\"\n[tls]\nsource = \"self-signed\"\n[imap]\nallow_plaintext_auth = true\n[limits]\nimap_max_literal = 4000\nmax_auth_failures = 1000000\n",
            d.path().display()
        );
        let cfg = Config::parse(&text, std::path::Path::new("fuzz.toml")).unwrap();
        let svc = Services::build(cfg).unwrap();
        svc.accounts.add_user("u@example.com", "pw").unwrap();
        let mut s = Session::new(svc.clone(), "127.0.0.1".parse().unwrap(), false);
        let mut setup = String::from("a LOGIN u@example.com pw\r\n");
        for m in MESSAGES {
            setup.push_str(&format!("b APPEND INBOX (\\Seen $Label) {{{}+}}\r\n{m}\r\n", m.len()));
        }
        run(&mut s, setup.as_bytes());
        (d, svc)
    })
    .1
}

/// Feed input and step until the session waits; false once it has closed.
fn run(s: &mut Session, input: &[u8]) -> bool {
    s.input(input);
    for _ in 0..10_000 {
        let mut out = Vec::new();
        let st = s.step(&mut out);
        assert!(out.is_empty() || out.ends_with(b"\r\n"));
        match st {
            Step::Continue => {}
            Step::Close => return false,
            _ => return true,
        }
    }
    panic!("the session did not wait for input after 10,000 steps");
}

fn logged_in() -> Session {
    let mut s = Session::new(services().clone(), "127.0.0.1".parse().unwrap(), false);
    assert!(run(&mut s, b"a LOGIN u@example.com pw\r\n"));
    s
}

thread_local! {
    // Logging in costs an Argon2 verification (~0.1 s), so one session is kept across runs
    // and put back into a known state after each input; a new one only after LOGOUT.
    static SESSION: std::cell::RefCell<Option<Session>> = const { std::cell::RefCell::new(None) };
}

fuzz_target!(|bytes: &[u8]| {
    SESSION.with(|cell| {
        let mut slot = cell.borrow_mut();
        let mut s = slot.take().unwrap_or_else(logged_in);
        // End whatever the input left open (a literal, IDLE, AUTHENTICATE), then reselect.
        let alive = run(&mut s, b"y SELECT INBOX\r\n")
            && run(&mut s, bytes)
            && run(&mut s, b"\r\nDONE\r\n*\r\nz NOOP\r\n");
        if alive {
            *slot = Some(s);
        }
    });
});
