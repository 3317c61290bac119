//! LIST with LIST-EXTENDED selection and return options (RFC 5258 §3, LIST-STATUS RFC 5819),
//! which imap-codec does not parse.

use imap_codec::imap_types::status::StatusDataItemName;

use super::tokens::{Tok, is_atom, text};

fn status_items(toks: &[(Tok, usize, usize)], i: &mut usize) -> Option<Vec<StatusDataItemName>> {
    if toks.get(*i)?.0 != Tok::Open {
        return None;
    }
    *i += 1;
    let mut v = Vec::new();
    loop {
        let t = &toks.get(*i)?.0;
        *i += 1;
        if *t == Tok::Close {
            return Some(v);
        }
        let a = String::from_utf8_lossy(text(t)?).to_ascii_uppercase();
        v.push(match a.as_str() {
            "MESSAGES" => StatusDataItemName::Messages,
            "RECENT" => StatusDataItemName::Recent,
            "UIDNEXT" => StatusDataItemName::UidNext,
            "UIDVALIDITY" => StatusDataItemName::UidValidity,
            "UNSEEN" => StatusDataItemName::Unseen,
            "DELETED" => StatusDataItemName::Deleted,
            "SIZE" => StatusDataItemName::Size,
            "HIGHESTMODSEQ" => StatusDataItemName::HighestModSeq,
            _ => return None,
        });
    }
}

/// A LIST command's arguments (RFC 5258 §3).
#[derive(Debug, Default)]
pub struct ListArgs {
    pub sel_subscribed: bool,
    pub sel_special: bool,
    /// RECURSIVEMATCH (RFC 5258 §3.1): report parents of matches with CHILDINFO.
    pub recursive: bool,
    pub ret_subscribed: bool,
    pub ret_status: Option<Vec<StatusDataItemName>>,
    pub patterns: Vec<Vec<u8>>,
    pub reference: Vec<u8>,
}

/// LIST arguments after the command name; None is a syntax error.
pub fn parse(toks: &[(Tok, usize, usize)]) -> Option<ListArgs> {
    let mut o = ListArgs::default();
    let mut i = 0;
    if toks.first()?.0 == Tok::Open {
        i = 1;
        loop {
            let t = &toks.get(i)?.0;
            i += 1;
            if *t == Tok::Close {
                break;
            }
            if is_atom(t, "SUBSCRIBED") {
                o.sel_subscribed = true;
            } else if is_atom(t, "SPECIAL-USE") {
                o.sel_special = true;
            } else if is_atom(t, "RECURSIVEMATCH") {
                o.recursive = true;
            } else if !is_atom(t, "REMOTE") {
                return None;
            }
        }
        // RFC 5258 §3.1: RECURSIVEMATCH needs another selection option (SUBSCRIBED here;
        // SPECIAL-USE has no hierarchy meaning and is treated alike).
        if o.recursive && !o.sel_subscribed && !o.sel_special {
            return None;
        }
    }
    o.reference = text(&toks.get(i)?.0)?.to_vec();
    i += 1;
    if toks.get(i)?.0 == Tok::Open {
        i += 1;
        loop {
            let t = &toks.get(i)?.0;
            i += 1;
            if *t == Tok::Close {
                break;
            }
            o.patterns.push(text(t)?.to_vec());
        }
    } else {
        o.patterns.push(text(&toks.get(i)?.0)?.to_vec());
        i += 1;
    }
    if let Some((t, _, _)) = toks.get(i) {
        if !is_atom(t, "RETURN") {
            return None;
        }
        i += 1;
        if toks.get(i)?.0 != Tok::Open {
            return None;
        }
        i += 1;
        loop {
            let t = &toks.get(i)?.0;
            i += 1;
            if *t == Tok::Close {
                break;
            }
            if is_atom(t, "SUBSCRIBED") {
                o.ret_subscribed = true;
            } else if is_atom(t, "STATUS") {
                o.ret_status = Some(status_items(toks, &mut i)?);
            } else if !(is_atom(t, "CHILDREN") || is_atom(t, "SPECIAL-USE")) {
                return None;
            }
        }
        if i != toks.len() {
            return None;
        }
    } else if i != toks.len() {
        return None;
    }
    Some(o)
}

#[cfg(test)]
mod tests {
    use super::super::tokens::tokenize;
    use super::*;

    #[test]
    fn extended_arguments() {
        let t = tokenize(b"(SPECIAL-USE) \"\" \"*\" RETURN (SUBSCRIBED STATUS (MESSAGES UNSEEN))")
            .unwrap();
        let o = parse(&t).unwrap();
        assert!(o.sel_special && o.ret_subscribed);
        assert_eq!(o.ret_status.unwrap().len(), 2);
        assert!(parse(&tokenize(b"\"\" \"*\" junk").unwrap()).is_none());
        assert!(parse(&tokenize(b"(RECURSIVEMATCH) \"\" *").unwrap()).is_none());
        let o = parse(&tokenize(b"(RECURSIVEMATCH SUBSCRIBED) \"\" %").unwrap()).unwrap();
        assert!(o.recursive && o.sel_subscribed);
    }
}
