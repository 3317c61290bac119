//! Command forms imap-codec (2.0.0-alpha) does not parse, handled before its `CommandCodec`
//! sees the bytes: LIST-EXTENDED (`list.rs`), SEARCH RETURN (`esearch.rs`), SEARCH
//! OLDER/YOUNGER (`within.rs`), SEARCHRES `$` (`searchres.rs`) and APPEND UTF8
//! (`append.rs`), on a small tokenizer (`tokens.rs`). Each either produces arguments
//! directly or rewrites the command into a form the codec parses. `command/` evaluates;
//! `wire.rs` encodes.

pub mod append;
pub mod esearch;
pub mod list;
pub mod searchres;
pub mod tokens;
pub mod within;

use std::borrow::Cow;

pub use tokens::{Tok, is_atom, tag_of, text, tokenize};

/// What to do with one complete command.
pub enum Prepared<'a> {
    /// Decode these bytes with imap-codec.
    Decode(Cow<'a, [u8]>),
    /// LIST; None is a syntax error.
    List(Option<list::ListArgs>),
    /// SEARCH RETURN: the plain SEARCH and the RETURN options, or the text of a BAD reply.
    ESearch(Result<(Vec<u8>, Vec<String>), &'static str>),
    /// COMPRESS (RFC 4978) with its algorithm; None when not exactly one argument.
    Compress(Option<Vec<u8>>),
    /// Answer BAD with this text.
    Bad(&'static str),
    /// `$` is empty for a command that takes a set (RFC 5182 §2.1): answer OK at once; the
    /// command name is for the reply.
    NoMessages(String),
}

/// Look at a command before decoding. `saved` is the SEARCHRES result, `view` the selected
/// mailbox's UIDs (None when nothing is selected: `$` is then left to fail decoding).
/// Returns the tag for replies and what to do.
pub fn prepare<'a>(msg: &'a [u8], saved: &[u32], view: Option<&[u32]>) -> (String, Prepared<'a>) {
    let tag = tag_of(msg);
    let Some(mut toks) = tokenize(msg) else {
        return (tag, Prepared::Decode(Cow::Borrowed(msg)));
    };
    let mut msg = Cow::Borrowed(msg);
    let at = |t: &[(Tok, usize, usize)]| {
        if t.get(1).is_some_and(|w| is_atom(&w.0, "UID")) {
            2
        } else {
            1
        }
    };
    // SEARCH OLDER/YOUNGER (RFC 5032): rewritten once, before anything else looks at it.
    let a = at(&toks);
    if toks.get(a).is_some_and(|w| is_atom(&w.0, "SEARCH")) {
        let start = within::search_keys_start(&toks, a);
        match within::rewrite_within(&msg, &toks, start) {
            Ok(None) => {}
            Ok(Some(m)) => {
                let Some(t) = tokenize(&m) else {
                    return (tag, Prepared::Decode(Cow::Owned(m)));
                };
                toks = t;
                msg = Cow::Owned(m);
            }
            Err(e) => return (tag, Prepared::Bad(e)),
        }
    }
    // SEARCHRES `$` (RFC 5182).
    if let Some(view) = view
        && msg.contains(&b'$')
    {
        match searchres::rewrite(&msg, &toks, saved, view) {
            searchres::Rewrite::None => {}
            searchres::Rewrite::Cmd(m) => {
                let Some(t) = tokenize(&m) else {
                    return (tag, Prepared::Decode(Cow::Owned(m)));
                };
                toks = t;
                msg = Cow::Owned(m);
            }
            searchres::Rewrite::Empty(name) => return (tag, Prepared::NoMessages(name)),
        }
    }
    let word = |i: usize| toks.get(i).map(|x| &x.0);
    if word(1).is_some_and(|w| is_atom(w, "COMPRESS")) {
        let alg = (toks.len() == 3)
            .then(|| text(&toks[2].0).map(<[u8]>::to_vec))
            .flatten();
        return (tag, Prepared::Compress(alg));
    }
    if word(1).is_some_and(|w| is_atom(w, "LIST")) {
        return (tag, Prepared::List(list::parse(&toks[2..])));
    }
    if word(1).is_some_and(|w| is_atom(w, "APPEND"))
        && let Some(m) = append::utf8_append(&msg, &toks)
    {
        return (tag, Prepared::Decode(Cow::Owned(m)));
    }
    let a = at(&toks);
    if word(a).is_some_and(|w| is_atom(w, "SEARCH"))
        && word(a + 1).is_some_and(|w| is_atom(w, "RETURN"))
    {
        return (
            tag,
            Prepared::ESearch(esearch::split_return(&msg, &toks, a)),
        );
    }
    (tag, Prepared::Decode(msg))
}
