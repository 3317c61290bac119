//! Arbitrary bytes as a stored message: the MIME tree, BODYSTRUCTURE, ENVELOPE and every
//! section the FETCH code can ask for must come out without a panic, and ranges must stay
//! inside the message. Also arbitrary mailbox names: a name that parses never leaves the
//! user's directory and re-parses to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use postern::imap::mime::{self, SectionText};
use postern::store::names::MailboxName;

/// Parentheses outside quoted strings balance (literals `{n}` skip their bytes).
fn balanced(out: &[u8]) -> bool {
    let (mut depth, mut i, mut quoted) = (0i64, 0usize, false);
    while i < out.len() {
        let c = out[i];
        if quoted {
            match c {
                b'\\' => i += 1,
                b'"' => quoted = false,
                _ => {}
            }
        } else {
            match c {
                b'"' => quoted = true,
                b'(' => depth += 1,
                b')' => depth -= 1,
                b'{' => {
                    let end = out[i..].iter().position(|&b| b == b'}').map(|p| i + p);
                    let Some(end) = end else { return false };
                    let n: usize = std::str::from_utf8(&out[i + 1..end])
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0);
                    i = end + 2 + n; // "}\r\n" then n bytes; the loop adds 1 below
                }
                _ => {}
            }
        }
        if depth < 0 {
            return false;
        }
        i += 1;
    }
    depth == 0 && !quoted
}

fuzz_target!(|input: (u8, &[u8])| {
    let (sel, bytes) = input;
    if sel & 1 == 0 {
        let data = mime::to_crlf(bytes.to_vec());
        let root = mime::parse(&data);
        for ext in [false, true] {
            let mut out = Vec::new();
            mime::body_structure(&mut out, &root, &data, ext);
            assert!(balanced(&out), "{}", String::from_utf8_lossy(&out));
        }
        let env = mime::envelope(&data[root.header.0..root.header.1]);
        assert!(balanced(&env), "{}", String::from_utf8_lossy(&env));
        let fields = SectionText::Fields(vec![b"subject".to_vec(), b"from".to_vec()], sel & 2 != 0);
        for path in [&[][..], &[1], &[1, 1], &[2], &[1, 2, 1]] {
            for text in [SectionText::Full, SectionText::Header, SectionText::Text, SectionText::Mime, fields.clone()] {
                if let Some(b) = mime::section_bytes(&root, &data, path, &text) {
                    // HEADER.FIELDS may complete an unterminated last field and adds the blank line.
                    assert!(b.len() <= data.len() + 4);
                }
            }
        }
    } else if let Ok(name) = MailboxName::from_wire(bytes) {
        let dir = name.dir_name();
        assert!(!dir.contains('/') && !dir.contains('\0') && dir != "." && dir != "..", "{dir}");
        let again = MailboxName::from_wire(name.wire().as_bytes()).expect("a name re-parses");
        assert_eq!(again.dir_name(), dir);
    }
});
