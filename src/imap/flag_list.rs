//! Flags on the wire: the parenthesized list in FETCH/STORE responses and the flag arguments
//! of APPEND and STORE (RFC 3501 §2.3.2, §6.4.6).

use imap_codec::imap_types::flag::Flag;

use crate::store::flags::{self, Flags};

pub fn flag_list(f: Flags, keywords: &[String], recent: bool) -> String {
    let mut v: Vec<String> = flags::system_names(f.system).map(String::from).collect();
    for (i, k) in keywords.iter().enumerate() {
        if f.keywords & (1 << i) != 0 && !k.is_empty() {
            v.push(k.clone());
        }
    }
    if recent {
        v.push("\\Recent".into());
    }
    format!("({})", v.join(" "))
}

/// Split flags into system bits and keyword names; None if a flag may not be stored.
pub fn split_flags(fl: &[Flag<'_>]) -> Option<(u8, Vec<String>)> {
    let mut sys = 0;
    let mut kws = Vec::new();
    for f in fl {
        match f {
            Flag::Seen => sys |= flags::SEEN,
            Flag::Answered => sys |= flags::ANSWERED,
            Flag::Flagged => sys |= flags::FLAGGED,
            Flag::Deleted => sys |= flags::DELETED,
            Flag::Draft => sys |= flags::DRAFT,
            Flag::Keyword(k) => match flags::system_flag(k.as_ref()) {
                Some(b) => sys |= b,
                None => kws.push(k.as_ref().to_string()),
            },
            // \Recent and unknown system flags cannot be set by clients (RFC 3501 §2.3.2).
            Flag::Extension(_) => return None,
        }
    }
    Some((sys, kws))
}
