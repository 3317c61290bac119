//! Arbitrary bytes as a Sieve script: compiling never panics, and a script that compiles
//! runs on a fixed message without panicking, within the action limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use postern::sieve::{self, Envelope, Limits, MessageView};

const MSG: &[u8] = b"From: A <a+x@example.org>\r\nTo: b@example.com\r\nSubject: hi there\r\n\
List-Id: <l.example.org>\r\nContent-Type: text/plain\r\n\r\nbody text\r\n";

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let Ok(script) = sieve::compile_bytes(data, &limits) else { return };
    let env = Envelope { from: "a+x@example.org".into(), to: "b+y@example.com".into() };
    let exists = |m: &str| m == "INBOX";
    let ctx = sieve::interp::Context { envelope: &env, mailbox_exists: &exists, now: 1_796_572_800 };
    let out = sieve::run(&script, &MessageView::new(MSG), &ctx, &limits);
    assert!(out.actions.len() <= limits.max_actions + 1);
    if !out.errors.is_empty() {
        assert_eq!(out.actions.len(), 1);
    }
});
