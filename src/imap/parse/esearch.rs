//! SEARCH RETURN (RFC 4731 ESEARCH, RFC 5182 SAVE), which imap-codec does not parse: the
//! RETURN options are taken out and the rest is a plain SEARCH.

use super::tokens::Tok;

/// The RETURN options we answer.
const OPTIONS: [&str; 5] = ["MIN", "MAX", "ALL", "COUNT", "SAVE"];

/// Split `tag [UID] SEARCH RETURN (opts) criteria` at `RETURN` (token `at + 1`): the command
/// without the RETURN part, and the options upper-cased. Err: the text of a BAD reply.
pub fn split_return(
    msg: &[u8],
    toks: &[(Tok, usize, usize)],
    at: usize,
) -> Result<(Vec<u8>, Vec<String>), &'static str> {
    let ret_start = toks[at + 1].1;
    let mut i = at + 2;
    let mut opts = Vec::new();
    if toks.get(i).map(|t| &t.0) != Some(&Tok::Open) {
        return Err("RETURN needs a list");
    }
    i += 1;
    while let Some((t, _, end)) = toks.get(i) {
        match t {
            Tok::Close => {
                let mut rest = msg[..ret_start].to_vec();
                let after = if msg.get(*end) == Some(&b' ') {
                    *end + 1
                } else {
                    *end
                };
                rest.extend_from_slice(&msg[after..]);
                return Ok((rest, opts));
            }
            Tok::Atom(a) => {
                let o = String::from_utf8_lossy(a).to_ascii_uppercase();
                if !OPTIONS.contains(&o.as_str()) {
                    return Err("unknown RETURN option");
                }
                opts.push(o);
            }
            _ => return Err("bad RETURN option"),
        }
        i += 1;
    }
    Err("unterminated RETURN list")
}

#[cfg(test)]
mod tests {
    use super::super::tokens::tokenize;
    use super::*;

    #[test]
    fn return_options_are_cut_out() {
        let m = b"a UID SEARCH RETURN (min COUNT) UNSEEN\r\n";
        let (rest, opts) = split_return(m, &tokenize(m).unwrap(), 2).unwrap();
        assert_eq!(rest, b"a UID SEARCH UNSEEN\r\n");
        assert_eq!(opts, ["MIN", "COUNT"]);
        let m = b"a SEARCH RETURN (FOO) ALL\r\n";
        assert_eq!(
            split_return(m, &tokenize(m).unwrap(), 1),
            Err("unknown RETURN option")
        );
        let m = b"a SEARCH RETURN ALL\r\n";
        assert!(split_return(m, &tokenize(m).unwrap(), 1).is_err());
    }
}
