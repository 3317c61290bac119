//! Hostile input to the spam code: the junk-filter tokenizer (any message), the token
//! database parser (a damaged `postern-junk` file) and rspamd's reply parser must never
//! panic; tokens never carry whitespace (the database is line-based) and stay bounded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use postern::inbound::rspamd;
use postern::spam::{TokenDb, tokenize};

fuzz_target!(|bytes: &[u8]| {
    let tokens = tokenize::tokens(bytes);
    assert!(tokens.len() <= 3000);
    assert!(tokens.iter().all(|t| !t.is_empty() && !t.contains(char::is_whitespace)));
    if let Ok(db) = TokenDb::from_bytes(bytes) {
        let again = TokenDb::from_bytes(&db.to_bytes()).expect("own output parses");
        assert_eq!(again.to_bytes(), db.to_bytes());
        let _ = db.score(&tokens);
    }
    if let Ok(r) = rspamd::parse_reply(bytes) {
        let _ = rspamd::decide(&r);
    }
});
