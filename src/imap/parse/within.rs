//! SEARCH OLDER/YOUNGER (RFC 5032, WITHIN), which imap-codec does not parse: found in key
//! position with the tokenizer and turned into a HEADER key on a field name that no message
//! can have (it contains ':'), which `imap/search.rs` reads back.

use super::tokens::{Tok, is_atom};

/// Stand-in HEADER field names for OLDER and YOUNGER. A field name cannot contain ':'
/// (RFC 5322 §3.6.8), so no real header search is taken for one of these.
pub const OLDER_MARK: &str = "postern:older";
pub const YOUNGER_MARK: &str = "postern:younger";

/// How many arguments a search key takes before the next key (RFC 3501 §6.4.4, RFC 5032,
/// RFC 7162 §3.1.5). NOT and OR take keys, which are walked as keys; sequence sets and
/// parentheses take nothing.
fn key_args(key: &[u8], next: Option<&Tok>) -> usize {
    let k = String::from_utf8_lossy(key).to_ascii_uppercase();
    match k.as_str() {
        "BCC" | "BEFORE" | "BODY" | "CC" | "FROM" | "KEYWORD" | "LARGER" | "ON" | "SENTBEFORE"
        | "SENTON" | "SENTSINCE" | "SINCE" | "SMALLER" | "SUBJECT" | "TEXT" | "TO" | "UID"
        | "UNKEYWORD" | "OLDER" | "YOUNGER" => 1,
        "HEADER" => 2,
        // MODSEQ [entry-name entry-type-req] mod-sequence-value; the entry name is quoted.
        "MODSEQ" if matches!(next, Some(Tok::Str(_))) => 3,
        "MODSEQ" => 1,
        _ => 0,
    }
}

/// Index of the first search key after `SEARCH` (at `at`): past `RETURN (...)` (RFC 4731)
/// and `CHARSET x`.
pub fn search_keys_start(toks: &[(Tok, usize, usize)], at: usize) -> usize {
    let mut i = at + 1;
    if toks.get(i).is_some_and(|t| is_atom(&t.0, "RETURN")) {
        i += 1;
        let mut depth = 0usize;
        while let Some((t, _, _)) = toks.get(i) {
            i += 1;
            match t {
                Tok::Open => depth += 1,
                Tok::Close => depth = depth.saturating_sub(1),
                _ => {}
            }
            if depth == 0 {
                break;
            }
        }
    }
    if toks.get(i).is_some_and(|t| is_atom(&t.0, "CHARSET")) {
        i += 2;
    }
    i
}

/// Indexes of the atoms in key position from `start` on (their arguments are skipped).
pub fn key_positions(toks: &[(Tok, usize, usize)], start: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut i = start;
    while let Some((t, _, _)) = toks.get(i) {
        i += 1;
        let Tok::Atom(a) = t else { continue };
        out.push(i - 1);
        i += key_args(a, toks.get(i).map(|x| &x.0));
    }
    out
}

/// Rewrite OLDER/YOUNGER keys (RFC 5032) in a SEARCH command into stand-in HEADER keys that
/// imap-codec parses. `toks` are the command's tokens with spans and `start` the index of the
/// first search key. Ok(None): nothing to rewrite. Err: a protocol error for a BAD reply.
/// The result must not be given to this function again (it holds the stand-in names).
pub fn rewrite_within(
    msg: &[u8],
    toks: &[(Tok, usize, usize)],
    start: usize,
) -> Result<Option<Vec<u8>>, &'static str> {
    let found: Vec<usize> = key_positions(toks, start)
        .into_iter()
        .filter(|k| is_atom(&toks[*k].0, "OLDER") || is_atom(&toks[*k].0, "YOUNGER"))
        .collect();
    // A client's own HEADER search on a stand-in name would be taken for OLDER/YOUNGER.
    let lower = String::from_utf8_lossy(msg).to_ascii_lowercase();
    if lower.contains(OLDER_MARK) || lower.contains(YOUNGER_MARK) {
        return Err("reserved header name in SEARCH");
    }
    if found.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(msg.len() + 32 * found.len());
    let mut from = 0;
    for k in found {
        let (key, kstart, _) = &toks[k];
        let Some((Tok::Atom(num), _, nend)) = toks.get(k + 1) else {
            return Err("OLDER and YOUNGER take a number of seconds");
        };
        // interval = nz-number (RFC 5032 §4).
        let secs = std::str::from_utf8(num)
            .ok()
            .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<u32>().ok())
            .filter(|n| *n > 0)
            .ok_or("OLDER and YOUNGER take a number of seconds")?;
        let mark = if is_atom(key, "OLDER") {
            OLDER_MARK
        } else {
            YOUNGER_MARK
        };
        out.extend_from_slice(&msg[from..*kstart]);
        out.extend_from_slice(format!("HEADER \"{mark}\" \"{secs}\"").as_bytes());
        from = *nend;
    }
    out.extend_from_slice(&msg[from..]);
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::super::tokens::tokenize;
    use super::*;

    fn rw(cmd: &str) -> Result<Option<String>, &'static str> {
        let t = tokenize(cmd.as_bytes()).unwrap();
        rewrite_within(cmd.as_bytes(), &t, 2).map(|o| o.map(|v| String::from_utf8(v).unwrap()))
    }

    #[test]
    fn within_keys_are_rewritten_only_in_key_position() {
        assert_eq!(
            rw("a SEARCH OLDER 60 NOT YOUNGER 5\r\n").unwrap().unwrap(),
            "a SEARCH HEADER \"postern:older\" \"60\" NOT HEADER \"postern:younger\" \"5\"\r\n"
        );
        // Arguments of other keys are left alone.
        assert_eq!(
            rw("a SEARCH SUBJECT OLDER HEADER X YOUNGER\r\n").unwrap(),
            None
        );
        assert_eq!(
            rw("a SEARCH OR (SUBJECT older) OLDER 1 UNSEEN\r\n")
                .unwrap()
                .unwrap(),
            "a SEARCH OR (SUBJECT older) HEADER \"postern:older\" \"1\" UNSEEN\r\n"
        );
        assert_eq!(
            rw("a SEARCH MODSEQ \"/flags/older\" all 5 YOUNGER 9\r\n")
                .unwrap()
                .unwrap(),
            "a SEARCH MODSEQ \"/flags/older\" all 5 HEADER \"postern:younger\" \"9\"\r\n"
        );
        for bad in [
            "a SEARCH OLDER\r\n",
            "a SEARCH OLDER 0\r\n",
            "a SEARCH OLDER -5\r\n",
            "a SEARCH OLDER 99999999999\r\n",
            "a SEARCH YOUNGER (1)\r\n",
            "a SEARCH OLDER 5 HEADER postern:older 1\r\n",
        ] {
            assert!(rw(bad).is_err(), "{bad}");
        }
        let t = tokenize(b"a UID SEARCH RETURN (MIN (X)) CHARSET UTF-8 OLDER 5").unwrap();
        assert_eq!(search_keys_start(&t, 2), 12);
        let t = tokenize(b"a SEARCH OLDER 5").unwrap();
        assert_eq!(search_keys_start(&t, 1), 2);
    }
}
