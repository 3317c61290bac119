//! APPEND with UTF8 (RFC 6855 §4), which imap-codec does not parse.

use super::tokens::{Tok, is_atom};

/// `APPEND mailbox [flags] [date] UTF8 (literal8)` (RFC 6855 §4) as the plain APPEND with a
/// literal8 that imap-codec parses: the `UTF8 (` and `)` around the literal are cut out.
/// None when the command does not end in that form.
pub fn utf8_append(msg: &[u8], toks: &[(Tok, usize, usize)]) -> Option<Vec<u8>> {
    let n = toks.len();
    if n < 7 || !is_atom(&toks[n - 4].0, "UTF8") {
        return None;
    }
    let (Tok::Open, Tok::Str(_), Tok::Close) = (&toks[n - 3].0, &toks[n - 2].0, &toks[n - 1].0)
    else {
        return None;
    };
    let (lit_start, lit_end) = (toks[n - 2].1, toks[n - 2].2);
    if msg.get(lit_start) != Some(&b'~') {
        return None;
    }
    let mut out = msg[..toks[n - 4].1].to_vec();
    out.extend_from_slice(&msg[lit_start..lit_end]);
    out.extend_from_slice(&msg[toks[n - 1].2..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::super::tokens::tokenize;
    use super::*;

    #[test]
    fn utf8_literal_becomes_literal8() {
        let cmd = "a APPEND Drafts (\\Seen) UTF8 (~{3+}\r\nä!)\r\n".as_bytes();
        let got = utf8_append(cmd, &tokenize(cmd).unwrap()).unwrap();
        assert_eq!(got, "a APPEND Drafts (\\Seen) ~{3+}\r\nä!\r\n".as_bytes());
        for no in [
            &b"a APPEND UTF8 {1+}\r\nx\r\n"[..],
            b"a APPEND x UTF8 ({1+}\r\nx)\r\n",
            b"a APPEND x UTF8 (~{1+}\r\nx) y\r\n",
        ] {
            assert!(utf8_append(no, &tokenize(no).unwrap()).is_none());
        }
    }
}
