//! Removal of `Authentication-Results` fields that claim our authserv-id (and of incoming
//! `X-Postern-Spam` fields, which only we write) (RFC 8601 §5: a
//! border MTA must delete such fields arriving from outside, or a forger could vouch for
//! itself in our name). Works on raw bytes: only the header section is touched, folded
//! fields are removed whole, names and ids compare case-insensitively. The `*_fields` forms
//! return the octet ranges to leave out, so a spooled message is never copied to strip it.

use std::ops::Range;

/// `message` without the Authentication-Results fields whose authserv-id is `authserv_id`.
/// The body and every other byte stay exactly as they were.
pub fn strip_forged(message: &[u8], authserv_id: &str) -> Vec<u8> {
    without(message, &forged_fields(message, authserv_id))
}

/// The octet ranges of the Authentication-Results fields whose authserv-id is
/// `authserv_id`, and of incoming `X-Postern-Spam` fields (sorted): what `strip_forged` leaves
/// out. Reads only the header section.
pub fn forged_fields(message: &[u8], authserv_id: &str) -> Vec<Range<usize>> {
    header_fields(message)
        .filter(|r| {
            let field = &message[r.clone()];
            claims_id(field, authserv_id) || is_our_spam_field(field)
        })
        .collect()
}

/// `message` with at most `max` DKIM-Signature fields (the first ones) in its header
/// section. Each signature costs a body hash and a DNS lookup; RFC 6376 §6.1 lets a
/// verifier limit how many it checks, and this bounds the work a hostile message can cause.
pub fn limit_dkim_signatures(message: &[u8], max: usize) -> std::borrow::Cow<'_, [u8]> {
    let extra = extra_dkim_signatures(message, max);
    if extra.is_empty() {
        std::borrow::Cow::Borrowed(message)
    } else {
        std::borrow::Cow::Owned(without(message, &extra))
    }
}

/// The octet ranges of the DKIM-Signature fields after the first `max` (sorted).
pub fn extra_dkim_signatures(message: &[u8], max: usize) -> Vec<Range<usize>> {
    let mut seen = 0;
    header_fields(message)
        .filter(|r| {
            let field = &message[r.clone()];
            let is_sig = field.iter().position(|&b| b == b':').is_some_and(|c| {
                field[..c]
                    .trim_ascii()
                    .eq_ignore_ascii_case(b"DKIM-Signature")
            });
            if is_sig {
                seen += 1;
            }
            is_sig && seen > max
        })
        .collect()
}

/// `message` without the (sorted, disjoint) ranges `omit`.
fn without(message: &[u8], omit: &[Range<usize>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len());
    let mut at = 0;
    for r in omit {
        out.extend_from_slice(&message[at..r.start]);
        at = r.end;
    }
    out.extend_from_slice(&message[at..]);
    out
}

/// The fields of the header section, each as the range of its lines (continuations
/// included); the empty line ends the section (RFC 5322 §2.1).
fn header_fields(message: &[u8]) -> impl Iterator<Item = Range<usize>> + '_ {
    let mut pos = 0;
    std::iter::from_fn(move || {
        if pos >= message.len() || message[pos..].starts_with(b"\r\n") || message[pos] == b'\n' {
            return None;
        }
        let start = pos;
        pos = field_end(message, pos);
        Some(start..pos)
    })
}

/// End (exclusive) of the field starting at `start`: its first line plus every continuation
/// line (one starting with SP or HTAB, RFC 5322 §2.2.3).
fn field_end(m: &[u8], start: usize) -> usize {
    let mut pos = start;
    loop {
        match m[pos..].iter().position(|&b| b == b'\n') {
            None => return m.len(),
            Some(i) => pos += i + 1,
        }
        if pos >= m.len() || (m[pos] != b' ' && m[pos] != b'\t') {
            return pos;
        }
    }
}

/// An `X-Postern-Spam` field that came with the message: only we write it (it says why a
/// message went to Junk), so an incoming one is forged.
fn is_our_spam_field(field: &[u8]) -> bool {
    field.iter().position(|&b| b == b':').is_some_and(|c| {
        field[..c]
            .trim_ascii()
            .eq_ignore_ascii_case(super::SPAM_HEADER.as_bytes())
    })
}

/// Whether `field` is an Authentication-Results field whose authserv-id is `id`.
fn claims_id(field: &[u8], id: &str) -> bool {
    let Some(colon) = field.iter().position(|&b| b == b':') else {
        return false;
    };
    // Obsolete syntax (RFC 5322 §4.5) allows whitespace before the colon.
    let name = field[..colon].trim_ascii();
    if !name.eq_ignore_ascii_case(b"Authentication-Results") {
        return false;
    }
    match authserv_id(&field[colon + 1..]) {
        Some(found) => {
            let found = found.strip_suffix(b".").unwrap_or(&found);
            let id = id.strip_suffix('.').unwrap_or(id);
            found.eq_ignore_ascii_case(id.as_bytes())
        }
        None => false,
    }
}

/// The authserv-id at the start of an Authentication-Results value (RFC 8601 §2.2:
/// `[CFWS] authserv-id [CFWS [authres-version]] ...`, the id being a token or a
/// quoted-string), with comments and folding skipped.
fn authserv_id(value: &[u8]) -> Option<Vec<u8>> {
    let mut i = skip_cfws(value, 0);
    if i >= value.len() {
        return None;
    }
    let mut id = Vec::new();
    if value[i] == b'"' {
        i += 1;
        while i < value.len() && value[i] != b'"' {
            if value[i] == b'\\' && i + 1 < value.len() {
                i += 1;
            }
            if value[i] != b'\r' && value[i] != b'\n' {
                id.push(value[i]);
            }
            i += 1;
        }
    } else {
        while i < value.len() && !matches!(value[i], b';' | b'(' | b' ' | b'\t' | b'\r' | b'\n') {
            id.push(value[i]);
            i += 1;
        }
    }
    (!id.is_empty()).then_some(id)
}

/// Skip folding whitespace and (nested) comments.
fn skip_cfws(v: &[u8], mut i: usize) -> usize {
    let mut depth = 0usize;
    while i < v.len() {
        match v[i] {
            b'(' => depth += 1,
            b')' if depth > 0 => depth -= 1,
            b'\\' if depth > 0 => i += 1,
            b' ' | b'\t' | b'\r' | b'\n' => {}
            _ if depth > 0 => {}
            _ => return i,
        }
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::strip_forged;

    const ID: &str = "mx.example.org";

    #[test]
    fn removes_our_id_keeps_others_and_body() {
        let m = b"Received: from x\r\n\
Authentication-Results: mx.example.org; spf=pass smtp.mailfrom=a@b\r\n\
Authentication-Results: other.example; dkim=pass\r\n\
Subject: hi\r\n\
\r\n\
Authentication-Results: mx.example.org; body line stays\r\n";
        let out = strip_forged(m, ID);
        let s = String::from_utf8(out).unwrap();
        assert_eq!(
            s,
            "Received: from x\r\n\
Authentication-Results: other.example; dkim=pass\r\n\
Subject: hi\r\n\
\r\n\
Authentication-Results: mx.example.org; body line stays\r\n"
        );
    }

    #[test]
    fn folded_case_insensitive_commented_and_quoted() {
        let m = b"authentication-results:\r\n\t(forged) MX.Example.ORG.;\r\n  dkim=pass\r\n\
AUTHENTICATION-RESULTS : \"mx.example.org\" 1; spf=pass\r\n\
Authentication-Results: mx.example.org.evil; none\r\n\
Authentication-Results: mx.example.org(c); none\r\n\
From: a@b\r\n\r\nbody";
        let s = String::from_utf8(strip_forged(m, ID)).unwrap();
        assert_eq!(
            s,
            "Authentication-Results: mx.example.org.evil; none\r\nFrom: a@b\r\n\r\nbody"
        );
    }

    #[test]
    fn random_input_never_panics_and_only_removes() {
        use rand::Rng;
        let alphabet = b"Authentication-Results:mx.example.org; \r\n\t()\"\\aZ";
        let mut rng = rand::rng();
        for _ in 0..5000 {
            let len = rng.random_range(0..120);
            let m: Vec<u8> = (0..len)
                .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                .collect();
            let out = strip_forged(&m, ID);
            assert!(out.len() <= m.len());
            // Only whole fields go: what is left is the input with some spans removed, and
            // the tail (from the header/body separator on) is untouched.
            let mut it = m.iter();
            assert!(out.iter().all(|b| it.any(|x| x == b)));
        }
    }

    #[test]
    fn keeps_only_the_first_signatures() {
        use super::limit_dkim_signatures;
        let m = b"DKIM-Signature: a=1;\r\n b=1\r\nFrom: x@y\r\ndkim-signature: a=2\r\n\
DKIM-Signature: a=3\r\n\r\nDKIM-Signature: body\r\n";
        assert_eq!(&*limit_dkim_signatures(m, 5), &m[..]);
        assert_eq!(
            &*limit_dkim_signatures(m, 2),
            b"DKIM-Signature: a=1;\r\n b=1\r\nFrom: x@y\r\ndkim-signature: a=2\r\n\
\r\nDKIM-Signature: body\r\n"
        );
        assert_eq!(
            &*limit_dkim_signatures(m, 0),
            b"From: x@y\r\n\r\nDKIM-Signature: body\r\n"
        );
    }

    #[test]
    fn lf_only_and_no_body() {
        let m = b"Authentication-Results: mx.example.org; x\nFrom: a@b\n\nbody\n";
        assert_eq!(strip_forged(m, ID), b"From: a@b\n\nbody\n");
        let m = b"From: a@b\r\nAuthentication-Results: mx.example.org; x";
        assert_eq!(strip_forged(m, ID), b"From: a@b\r\n");
        assert_eq!(strip_forged(b"", ID), b"");
        assert_eq!(strip_forged(b"\r\nbody", ID), b"\r\nbody");
        // A header line without a colon is kept as it was.
        assert_eq!(strip_forged(b"garbage\r\n\r\n", ID), b"garbage\r\n\r\n");
    }
}
