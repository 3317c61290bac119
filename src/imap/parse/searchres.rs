//! SEARCHRES (RFC 5182, part of IMAP4rev2: RFC 9051 §6.4.4.1): `SEARCH RETURN (SAVE)` keeps
//! the result in the session, and `$` stands for it where a sequence set may go. imap-codec
//! does not parse `$`, so the command is rewritten with the saved messages before decoding:
//! as UIDs in UID commands and in search keys (`UID set`), as sequence numbers otherwise.
//! Messages expunged since the SAVE drop out, as they are no longer in the view (§2.1).

use super::super::seqset::render as uid_set;
use super::tokens::{Tok, is_atom};

pub enum Rewrite {
    /// No `$` in a sequence-set position.
    None,
    /// The command with `$` replaced.
    Cmd(Vec<u8>),
    /// `$` is empty for a command that takes a set: it acts on no message (RFC 5182 §2.1);
    /// the command name is for the OK reply.
    Empty(String),
}

fn is_dollar(t: &Tok) -> bool {
    matches!(t, Tok::Atom(a) if a == b"$")
}

/// Replace `$` in `msg`. `saved` are the saved UIDs (ascending); `view` the session's UIDs
/// by sequence number.
pub fn rewrite(msg: &[u8], toks: &[(Tok, usize, usize)], saved: &[u32], view: &[u32]) -> Rewrite {
    let uid = toks.get(1).is_some_and(|t| is_atom(&t.0, "UID"));
    let at = if uid { 2 } else { 1 };
    let Some((cmd, _, _)) = toks.get(at) else {
        return Rewrite::None;
    };
    let present: Vec<u32> = saved
        .iter()
        .copied()
        .filter(|u| view.binary_search(u).is_ok())
        .collect();
    let seqs: Vec<u32> = present
        .iter()
        .filter_map(|u| view.binary_search(u).ok().map(|i| i as u32 + 1))
        .collect();
    let name =
        String::from_utf8_lossy(super::tokens::text(cmd).unwrap_or(b"")).to_ascii_uppercase();
    let mut edits: Vec<(usize, usize, String)> = Vec::new();
    match name.as_str() {
        "FETCH" | "STORE" | "COPY" | "MOVE" | "EXPUNGE" => {
            let Some((t, s, e)) = toks.get(at + 1) else {
                return Rewrite::None;
            };
            if !is_dollar(t) {
                return Rewrite::None;
            }
            let set = if uid { &present } else { &seqs };
            if set.is_empty() {
                return Rewrite::Empty(name);
            }
            edits.push((*s, *e, uid_set(set)));
        }
        "SEARCH" => {
            let start = super::within::search_keys_start(toks, at);
            let matched = if present.is_empty() {
                // A key that matches nothing.
                "NOT ALL".to_string()
            } else {
                format!("UID {}", uid_set(&present))
            };
            for k in super::within::key_positions(toks, start) {
                let (t, s, e) = &toks[k];
                if is_dollar(t) {
                    edits.push((*s, *e, matched.clone()));
                } else if is_atom(t, "UID")
                    && let Some((a, _, e2)) = toks.get(k + 1)
                    && is_dollar(a)
                {
                    edits.push((*s, *e2, matched.clone()));
                }
            }
        }
        _ => {}
    }
    if edits.is_empty() {
        return Rewrite::None;
    }
    let mut out = Vec::with_capacity(msg.len() + edits.iter().map(|x| x.2.len()).sum::<usize>());
    let mut from = 0;
    for (s, e, text) in edits {
        out.extend_from_slice(&msg[from..s]);
        out.extend_from_slice(text.as_bytes());
        from = e;
    }
    out.extend_from_slice(&msg[from..]);
    Rewrite::Cmd(out)
}

#[cfg(test)]
mod tests {
    use super::super::tokens::tokenize;
    use super::*;

    fn rw(cmd: &str, saved: &[u32], view: &[u32]) -> String {
        let t = tokenize(cmd.as_bytes()).unwrap();
        match rewrite(cmd.as_bytes(), &t, saved, view) {
            Rewrite::None => "none".into(),
            Rewrite::Cmd(c) => String::from_utf8(c).unwrap(),
            Rewrite::Empty(n) => format!("empty {n}"),
        }
    }

    #[test]
    fn dollar_becomes_the_saved_set() {
        let view = [3, 5, 6, 9];
        assert_eq!(
            rw("a FETCH $ FLAGS\r\n", &[5, 6, 7], &view),
            "a FETCH 2:3 FLAGS\r\n"
        );
        assert_eq!(
            rw("a UID STORE $ +FLAGS (\\Seen)\r\n", &[5, 6, 7], &view),
            "a UID STORE 5:6 +FLAGS (\\Seen)\r\n"
        );
        assert_eq!(rw("a COPY $ Trash\r\n", &[7], &view), "empty COPY");
        assert_eq!(
            rw("a SEARCH OR $ SUBJECT $ UID $\r\n", &[9], &view),
            "a SEARCH OR UID 9 SUBJECT $ UID 9\r\n"
        );
        assert_eq!(rw("a SEARCH $\r\n", &[], &view), "a SEARCH NOT ALL\r\n");
        // "$" as a flag or a string is not a set.
        assert_eq!(rw("a STORE 1 +FLAGS ($)\r\n", &[3], &view), "none");
        assert_eq!(rw("a FETCH 1 FLAGS\r\n", &[3], &view), "none");
    }
}
