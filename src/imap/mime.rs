//! Message structure for FETCH: the MIME tree (from mail-parser) with absolute byte ranges in
//! the CRLF form of the message, ENVELOPE and BODY/BODYSTRUCTURE rendering (RFC 3501 §7.4.2)
//! and section extraction (`BODY[1.2.HEADER.FIELDS (...)]`, RFC 3501 §6.4.5).

use mail_parser::{MessageParser, MimeHeaders, PartType};

use super::wire::{nstring, string};

/// One MIME entity. Ranges index the CRLF-normalized message.
#[derive(Debug, Clone)]
pub struct Part {
    pub header: (usize, usize),
    pub body: (usize, usize),
    pub ctype: String,
    pub subtype: String,
    pub params: Vec<(String, String)>,
    pub disposition: Option<(String, Vec<(String, String)>)>,
    pub language: Vec<String>,
    pub location: Option<String>,
    pub children: Vec<Part>,
    /// For message/rfc822: the embedded message's root entity.
    pub message: Option<Box<Part>>,
}

/// Convert bare LF line ends to CRLF (RFC 5322 §2.3; RFC822.SIZE counts CRLF octets).
pub fn to_crlf(data: Vec<u8>) -> Vec<u8> {
    let bare = data
        .iter()
        .enumerate()
        .any(|(i, &b)| b == b'\n' && (i == 0 || data[i - 1] != b'\r'));
    if !bare {
        return data;
    }
    let mut out = Vec::with_capacity(data.len() + data.len() / 40);
    for (i, &b) in data.iter().enumerate() {
        if b == b'\n' && (i == 0 || data[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

/// Parse a message into its MIME tree.
pub fn parse(data: &[u8]) -> Part {
    let fallback = || {
        let hend = header_end(data, 0);
        plain_part((0, hend), (hend, data.len()), data)
    };
    match MessageParser::default().parse(data) {
        Some(msg) if !msg.parts.is_empty() => {
            let mut root = build(&msg, 0, data, 0, 0);
            // The message text runs to the end of the message, epilogue included.
            root.body.1 = data.len();
            root
        }
        _ => fallback(),
    }
}

/// Where the header block of an entity starting at `start` ends (after the empty line).
pub fn header_end(data: &[u8], start: usize) -> usize {
    let d = &data[start.min(data.len())..];
    if d.starts_with(b"\r\n") {
        return start + 2;
    }
    match d.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(p) => start + p + 4,
        None => data.len(),
    }
}

fn plain_part(header: (usize, usize), body: (usize, usize), data: &[u8]) -> Part {
    let _ = data;
    Part {
        header,
        body,
        ctype: "text".into(),
        subtype: "plain".into(),
        params: vec![("charset".into(), "us-ascii".into())],
        disposition: None,
        language: vec![],
        location: None,
        children: vec![],
        message: None,
    }
}

fn build(
    msg: &mail_parser::Message<'_>,
    id: usize,
    data: &[u8],
    base: usize,
    depth: usize,
) -> Part {
    let p = &msg.parts[id];
    let clamp = |x: u32| (base + x as usize).min(data.len());
    let hstart = clamp(p.offset_header);
    let bstart = clamp(p.offset_body).max(hstart);
    let bend = clamp(p.offset_end).max(bstart);
    let (ctype, subtype, params) = match p.content_type() {
        Some(ct) => (
            ct.c_type.to_ascii_lowercase(),
            ct.c_subtype
                .as_deref()
                .unwrap_or(if ct.c_type.eq_ignore_ascii_case("text") {
                    "plain"
                } else {
                    ""
                })
                .to_ascii_lowercase(),
            ct.attributes
                .as_ref()
                .map(|a| {
                    a.iter()
                        .map(|a| (a.name.to_string(), a.value.to_string()))
                        .collect()
                })
                .unwrap_or_default(),
        ),
        None => match &p.body {
            PartType::Message(_) => ("message".into(), "rfc822".into(), vec![]),
            _ => (
                "text".into(),
                "plain".into(),
                vec![("charset".into(), "us-ascii".into())],
            ),
        },
    };
    let mut params: Vec<(String, String)> = params;
    if ctype == "text"
        && !params
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("charset"))
    {
        // RFC 2045 §5.2: text defaults to charset us-ascii.
        params.insert(0, ("charset".into(), "us-ascii".into()));
    }
    let disposition = p.content_disposition().map(|d| {
        (
            d.c_type.to_string(),
            d.attributes
                .as_ref()
                .map(|a| {
                    a.iter()
                        .map(|a| (a.name.to_string(), a.value.to_string()))
                        .collect()
                })
                .unwrap_or_default(),
        )
    });
    let language = p
        .content_language()
        .as_text_list()
        .map(|l| l.iter().map(|s| s.to_string()).collect())
        .unwrap_or_default();
    let location = p.content_location().map(|s| s.to_string());
    let mut part = Part {
        header: (hstart, bstart),
        body: (bstart, bend),
        ctype,
        subtype,
        params,
        disposition,
        language,
        location,
        children: vec![],
        message: None,
    };
    if depth > 40 {
        return part;
    }
    match &p.body {
        PartType::Multipart(ids) => {
            part.children = ids
                .iter()
                .map(|c| build(msg, *c as usize, data, base, depth + 1))
                .collect();
        }
        PartType::Message(inner) => {
            // The embedded message is addressable only when it is stored as is (not base64):
            // then mail-parser's inner buffer is a slice of ours.
            let raw: &[u8] = &inner.raw_message;
            let outer = data.as_ptr() as usize;
            let ip = raw.as_ptr() as usize;
            if ip >= outer && ip + raw.len() <= outer + data.len() && !inner.parts.is_empty() {
                let mut m = build(inner, 0, data, ip - outer, depth + 1);
                // The embedded message is the whole body of the message/rfc822 part (RFC
                // 2046 §5.2.1): its text runs to the part's end, a multipart's epilogue
                // included, wherever the parser stopped.
                m.body.1 = m.body.1.max(bend);
                part.message = Some(Box::new(m));
            } else {
                let s = bstart;
                let he = header_end(data, s).min(bend);
                part.message = Some(Box::new(plain_part((s, he), (he, bend), data)));
            }
        }
        _ => {}
    }
    part
}

/// One header field: name, raw value, and the byte range of the whole field in its block.
pub type Field<'a> = (&'a [u8], &'a [u8], (usize, usize));

/// Header fields of a header block: (name, raw value without the final CRLF), unfolded
/// values are left to callers.
pub fn fields(block: &[u8]) -> Vec<Field<'_>> {
    let mut out: Vec<Field<'_>> = Vec::new();
    let mut i = 0;
    while i < block.len() {
        let line_end = block[i..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .map_or(block.len(), |p| i + p);
        let line = &block[i..line_end];
        let next = (line_end + 2).min(block.len());
        if line.is_empty() {
            break;
        }
        if (line[0] == b' ' || line[0] == b'\t') && !out.is_empty() {
            let last = out.last_mut().expect("non-empty");
            last.2.1 = next;
        } else if let Some(c) = line.iter().position(|&b| b == b':') {
            out.push((&line[..c], b"", (i, next)));
        }
        i = next;
    }
    out.into_iter()
        .map(|(name, _, (s, e))| {
            let full = &block[s..e];
            let colon = full.iter().position(|&b| b == b':').unwrap_or(0);
            let mut v = &full[colon + 1..];
            while v.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                v = &v[..v.len() - 1];
            }
            (trim(name), v, (s, e))
        })
        .collect()
}

fn trim(mut s: &[u8]) -> &[u8] {
    while s.first().is_some_and(|b| b.is_ascii_whitespace()) {
        s = &s[1..];
    }
    while s.last().is_some_and(|b| b.is_ascii_whitespace()) {
        s = &s[..s.len() - 1];
    }
    s
}

/// Unfold and trim a raw header value.
pub fn unfold(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    for &b in trim(v) {
        if b != b'\r' && b != b'\n' {
            out.push(b);
        }
    }
    out
}

pub fn header_value<'a>(block: &'a [u8], name: &str) -> Option<&'a [u8]> {
    fields(block)
        .into_iter()
        .find(|(n, _, _)| n.eq_ignore_ascii_case(name.as_bytes()))
        .map(|(_, v, _)| v)
}

/// The header block restricted to (or without) the named fields, plus the blank line.
pub fn header_fields(block: &[u8], names: &[Vec<u8>], not: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for (n, _, (s, e)) in fields(block) {
        let listed = names.iter().any(|x| x.eq_ignore_ascii_case(n));
        if listed != not {
            out.extend_from_slice(&block[s..e]);
            if !out.ends_with(b"\r\n") {
                out.extend_from_slice(b"\r\n");
            }
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

fn encode_word(s: &str) -> Vec<u8> {
    if s.is_ascii() {
        s.as_bytes().to_vec()
    } else {
        use base64::Engine;
        format!(
            "=?utf-8?b?{}?=",
            base64::engine::general_purpose::STANDARD.encode(s)
        )
        .into_bytes()
    }
}

fn address_list(out: &mut Vec<u8>, block: &[u8], name: &str) -> bool {
    let Some(raw) = header_value(block, name) else {
        out.extend_from_slice(b"NIL");
        return false;
    };
    let mut hdr = format!("{name}:").into_bytes();
    hdr.extend_from_slice(raw);
    hdr.extend_from_slice(b"\r\n\r\n");
    let parsed = MessageParser::default().parse_headers(&hdr[..]);
    let addr = parsed.as_ref().and_then(|m| match name {
        "From" => m.from(),
        "Sender" => m.sender(),
        "Reply-To" => m.reply_to(),
        "To" => m.to(),
        "Cc" => m.cc(),
        _ => m.bcc(),
    });
    let one = |out: &mut Vec<u8>, a: &mail_parser::Addr<'_>| {
        let email = a.address.as_deref().unwrap_or("");
        let (local, host) = email.rsplit_once('@').unwrap_or((email, ""));
        // RFC 5322 §4.4 obs-route `<@route:user@domain>`: the route is the address's adl.
        let (adl, local) = match local.split_once(':') {
            Some((route, rest)) if route.starts_with('@') => (Some(route), rest),
            _ => (None, local),
        };
        out.push(b'(');
        nstring(out, a.name.as_deref().map(encode_word).as_deref());
        out.push(b' ');
        nstring(out, adl.map(str::as_bytes));
        out.push(b' ');
        string(out, local.as_bytes());
        out.push(b' ');
        if host.is_empty() {
            out.extend_from_slice(b"NIL");
        } else {
            string(out, host.as_bytes());
        }
        out.push(b')');
    };
    let start = out.len();
    out.push(b'(');
    match addr {
        Some(mail_parser::Address::List(l)) => l.iter().for_each(|a| one(out, a)),
        Some(mail_parser::Address::Group(groups)) => {
            for g in groups {
                if let Some(n) = &g.name {
                    // RFC 3501 §7.4.2: a group is marked by (NIL NIL name NIL) ... (NIL NIL NIL NIL).
                    out.extend_from_slice(b"(NIL NIL ");
                    string(out, &encode_word(n));
                    out.extend_from_slice(b" NIL)");
                    // A comment alone (`group: (foo) ;`) is no mailbox of the group.
                    g.addresses
                        .iter()
                        .filter(|a| a.address.as_deref().is_some_and(|e| !e.is_empty()))
                        .for_each(|a| one(out, a));
                    out.extend_from_slice(b"(NIL NIL NIL NIL)");
                } else {
                    g.addresses.iter().for_each(|a| one(out, a));
                }
            }
        }
        None => {}
    }
    if out.len() == start + 1 {
        out.truncate(start);
        out.extend_from_slice(b"NIL");
        return false;
    }
    out.push(b')');
    true
}

/// ENVELOPE of an entity given its header block (RFC 3501 §7.4.2).
pub fn envelope(block: &[u8]) -> Vec<u8> {
    let mut out = b"(".to_vec();
    let raw = |n: &str| header_value(block, n).map(unfold);
    nstring(&mut out, raw("Date").as_deref());
    out.push(b' ');
    nstring(&mut out, raw("Subject").as_deref());
    out.push(b' ');
    let mut from = Vec::new();
    let has_from = address_list(&mut from, block, "From");
    out.extend_from_slice(&from);
    for n in ["Sender", "Reply-To"] {
        out.push(b' ');
        // Sender and Reply-To default to From.
        let mut v = Vec::new();
        if !address_list(&mut v, block, n) && has_from {
            v = from.clone();
        }
        out.extend_from_slice(&v);
    }
    for n in ["To", "Cc", "Bcc"] {
        out.push(b' ');
        address_list(&mut out, block, n);
    }
    out.push(b' ');
    nstring(&mut out, raw("In-Reply-To").as_deref());
    out.push(b' ');
    nstring(&mut out, raw("Message-ID").as_deref());
    out.push(b')');
    out
}

fn params(out: &mut Vec<u8>, p: &[(String, String)]) {
    if p.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for (i, (k, v)) in p.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        string(out, k.as_bytes());
        out.push(b' ');
        string(out, &encode_word(v));
    }
    out.push(b')');
}

fn lines(s: &[u8]) -> usize {
    s.iter().filter(|&&b| b == b'\n').count() + usize::from(!s.is_empty() && !s.ends_with(b"\n"))
}

/// BODY (ext = false) or BODYSTRUCTURE (ext = true) of an entity.
pub fn body_structure(out: &mut Vec<u8>, p: &Part, data: &[u8], ext: bool) {
    let hdr = &data[p.header.0..p.header.1];
    out.push(b'(');
    if !p.children.is_empty() {
        for c in &p.children {
            body_structure(out, c, data, ext);
        }
        out.push(b' ');
        string(out, p.subtype.to_ascii_uppercase().as_bytes());
        if ext {
            out.push(b' ');
            params(out, &p.params);
            extension_tail(out, p, hdr);
        }
        out.push(b')');
        return;
    }
    let body = &data[p.body.0..p.body.1];
    string(out, p.ctype.to_ascii_uppercase().as_bytes());
    out.push(b' ');
    string(
        out,
        if p.subtype.is_empty() {
            b"OCTET-STREAM".to_vec()
        } else {
            p.subtype.to_ascii_uppercase().into_bytes()
        }
        .as_slice(),
    );
    out.push(b' ');
    params(out, &p.params);
    out.push(b' ');
    nstring(out, header_value(hdr, "Content-ID").map(unfold).as_deref());
    out.push(b' ');
    nstring(
        out,
        header_value(hdr, "Content-Description")
            .map(unfold)
            .as_deref(),
    );
    out.push(b' ');
    let enc = header_value(hdr, "Content-Transfer-Encoding")
        .map(|v| String::from_utf8_lossy(&unfold(v)).to_ascii_uppercase())
        .unwrap_or_else(|| "7BIT".into());
    string(out, enc.as_bytes());
    out.extend_from_slice(format!(" {}", body.len()).as_bytes());
    if p.ctype == "message"
        && p.subtype == "rfc822"
        && let Some(m) = &p.message
    {
        out.push(b' ');
        out.extend_from_slice(&envelope(&data[m.header.0..m.header.1]));
        out.push(b' ');
        body_structure(out, m, data, ext);
        out.extend_from_slice(format!(" {}", lines(body)).as_bytes());
    } else if p.ctype == "text" {
        out.extend_from_slice(format!(" {}", lines(body)).as_bytes());
    }
    if ext {
        out.push(b' ');
        nstring(out, header_value(hdr, "Content-MD5").map(unfold).as_deref());
        extension_tail(out, p, hdr);
    }
    out.push(b')');
}

/// body-fld-dsp body-fld-lang body-fld-loc (RFC 3501 §9 body-ext-1part / body-ext-mpart).
fn extension_tail(out: &mut Vec<u8>, p: &Part, _hdr: &[u8]) {
    out.push(b' ');
    match &p.disposition {
        Some((kind, ps)) => {
            out.push(b'(');
            string(out, kind.to_ascii_uppercase().as_bytes());
            out.push(b' ');
            params(out, ps);
            out.push(b')');
        }
        None => out.extend_from_slice(b"NIL"),
    }
    out.push(b' ');
    match p.language.len() {
        0 => out.extend_from_slice(b"NIL"),
        1 => string(out, p.language[0].as_bytes()),
        _ => {
            out.push(b'(');
            for (i, l) in p.language.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                string(out, l.as_bytes());
            }
            out.push(b')');
        }
    }
    out.push(b' ');
    nstring(out, p.location.as_deref().map(str::as_bytes));
}

/// What a section text names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionText {
    Full,
    Header,
    Fields(Vec<Vec<u8>>, bool),
    Text,
    Mime,
}

/// Find the entity a part path names (RFC 3501 §6.4.5). `[]` is the message itself.
///
/// Numbers count the body parts of a *message*: the children of its root entity when that
/// is multipart, else part 1 is the root entity itself. A multipart part's numbers are its
/// children; a message/rfc822 part's numbers are those of the message it encapsulates (so
/// in a message that is wholly `message/rfc822`, `1` is that body, `1.1` the inner
/// message's first part). A leaf has no sub-parts.
pub fn locate<'a>(root: &'a Part, path: &[u32]) -> Option<&'a Part> {
    let mut cur = root;
    for (i, &n) in path.iter().enumerate() {
        let container = if i == 0 {
            root
        } else if let Some(m) = &cur.message {
            m
        } else if !cur.children.is_empty() {
            cur = cur.children.get((n as usize).checked_sub(1)?)?;
            continue;
        } else {
            return None;
        };
        cur = if container.children.is_empty() {
            if n != 1 {
                return None;
            }
            container
        } else {
            container.children.get((n as usize).checked_sub(1)?)?
        };
    }
    Some(cur)
}

/// Bytes of a section; None when the part does not exist (answered as empty by callers).
pub fn section_bytes(
    root: &Part,
    data: &[u8],
    path: &[u32],
    text: &SectionText,
) -> Option<Vec<u8>> {
    let part = locate(root, path)?;
    // HEADER/TEXT/FIELDS address the message: the root or an embedded message/rfc822.
    let msg = if path.is_empty() {
        Some(root)
    } else {
        part.message.as_deref()
    };
    Some(match text {
        SectionText::Full if path.is_empty() => data.to_vec(),
        SectionText::Full => data[part.body.0..part.body.1].to_vec(),
        SectionText::Mime => data[part.header.0..part.header.1].to_vec(),
        SectionText::Header => {
            let m = msg?;
            data[m.header.0..m.header.1].to_vec()
        }
        SectionText::Fields(names, not) => {
            let m = msg?;
            header_fields(&data[m.header.0..m.header.1], names, *not)
        }
        SectionText::Text => {
            let m = msg?;
            data[m.body.0..m.body.1].to_vec()
        }
    })
}

#[cfg(test)]
mod tests;
