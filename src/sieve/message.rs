//! What a script sees of a message: its header fields (unfolded, RFC 2047-decoded on
//! demand), the addresses in them, the envelope, the size and the body parts.

use mail_parser::parsers::MessageStream;
use mail_parser::{MessageParser, MimeHeaders, PartType};

use super::ast::BodyTransform;

/// The SMTP envelope of this delivery. An empty `from` is the null sender `<>`.
#[derive(Debug, Clone, Default)]
pub struct Envelope {
    pub from: String,
    pub to: String,
}

/// A parsed view of one message; borrows the raw bytes.
pub struct MessageView<'a> {
    raw: &'a [u8],
    /// (lowercase name, raw value without the CRLF that ends the field)
    headers: Vec<(String, &'a [u8])>,
    body_start: usize,
}

/// The addresses of one field's raw value (see `MessageView::addresses`).
pub fn field_addresses(v: &[u8]) -> Vec<(String, bool)> {
    let text = String::from_utf8_lossy(v);
    let found = parse_address_list(&text);
    let mut out = Vec::new();
    if found.is_empty() {
        let whole = decode_unstructured(v);
        if !whole.is_empty() {
            out.push((whole, false));
        }
    }
    out.extend(found.into_iter().map(|a| (a, true)));
    out
}

impl<'a> MessageView<'a> {
    pub fn new(raw: &'a [u8]) -> Self {
        let mut headers: Vec<(String, &'a [u8])> = Vec::new();
        let mut i = 0;
        let mut body_start = raw.len();
        while i < raw.len() {
            let end = raw[i..]
                .iter()
                .position(|&c| c == b'\n')
                .map_or(raw.len(), |p| i + p + 1);
            let line = &raw[i..end];
            let content = line.strip_suffix(b"\n").unwrap_or(line);
            let content = content.strip_suffix(b"\r").unwrap_or(content);
            if content.is_empty() {
                body_start = end;
                break;
            }
            if (line[0] == b' ' || line[0] == b'\t') && !headers.is_empty() {
                // Continuation: extend the last field's value to this line's end.
                let last = headers.last_mut().expect("non-empty");
                let start = last.1.as_ptr() as usize - raw.as_ptr() as usize;
                let stop = i + content.len();
                last.1 = &raw[start..stop];
            } else if let Some(colon) = content.iter().position(|&c| c == b':') {
                let name = String::from_utf8_lossy(&content[..colon])
                    .trim_end()
                    .to_ascii_lowercase();
                headers.push((name, &content[colon + 1..]));
            } else {
                // Not a header line: RFC 5322 says the header ended; treat the rest as body.
                body_start = i;
                break;
            }
            i = end;
        }
        MessageView {
            raw,
            headers,
            body_start,
        }
    }

    pub fn size(&self) -> usize {
        self.raw.len()
    }

    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    pub fn has_header(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    /// Raw (undecoded, still folded) values of every field called `name`.
    pub fn raw_values(&self, name: &str) -> impl Iterator<Item = &'a [u8]> + '_ {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .filter(move |(n, _)| *n == name)
            .map(|(_, v)| *v)
    }

    /// §2.7.2 / §5.7: unfolded, RFC 2047-decoded, surrounding whitespace removed.
    pub fn header_values(&self, name: &str) -> Vec<String> {
        self.raw_values(name).map(decode_unstructured).collect()
    }

    /// The addresses (`local@domain`, or a lone local part) in every field called `name`,
    /// each with whether it is a usable address. A field holding none (an empty group,
    /// garbage) yields its whole unfolded value, marked unusable: `:all` still compares it,
    /// `:localpart`/`:domain` do not (RFC 5228 §2.7.4), as Pigeonhole does.
    pub fn addresses(&self, name: &str) -> Vec<(String, bool)> {
        self.raw_values(name).flat_map(field_addresses).collect()
    }

    /// Body text per the RFC 5173 transform, one string per part.
    pub fn body(&self, t: &BodyTransform) -> Vec<String> {
        if let BodyTransform::Raw = t {
            return vec![String::from_utf8_lossy(&self.raw[self.body_start..]).into_owned()];
        }
        let Some(msg) = MessageParser::default().parse(self.raw) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for part in &msg.parts {
            let (ctype, sub) = match part.content_type() {
                Some(ct) => (
                    ct.ctype().to_ascii_lowercase(),
                    ct.subtype().unwrap_or("").to_ascii_lowercase(),
                ),
                None => ("text".into(), "plain".into()),
            };
            let wanted = match t {
                BodyTransform::Text => ctype == "text",
                BodyTransform::Content(types) => types.iter().any(|want| {
                    let w = want.to_ascii_lowercase();
                    match w.split_once('/') {
                        _ if w.is_empty() => true,
                        Some((a, b)) => a == ctype && b == sub,
                        None => w == ctype,
                    }
                }),
                BodyTransform::Raw => false,
            };
            if !wanted {
                continue;
            }
            match &part.body {
                PartType::Text(s) => out.push(s.to_string()),
                PartType::Html(h) => out.push(if matches!(t, BodyTransform::Text) {
                    mail_parser::decoders::html::html_to_text(h)
                } else {
                    h.to_string()
                }),
                PartType::Binary(b) | PartType::InlineBinary(b) => {
                    out.push(String::from_utf8_lossy(b).into_owned())
                }
                _ => {}
            }
        }
        out
    }
}

/// Unfolds and decodes RFC 2047 encoded words (through mail-parser), then trims.
pub fn decode_unstructured(v: &[u8]) -> String {
    let mut buf = Vec::with_capacity(v.len() + 2);
    buf.extend_from_slice(v);
    buf.extend_from_slice(b"\r\n");
    let s = match MessageStream::new(&buf).parse_unstructured() {
        mail_parser::HeaderValue::Text(t) => t.into_owned(),
        mail_parser::HeaderValue::TextList(l) => l.join(" "),
        _ => String::new(),
    };
    s.trim().to_string()
}

/// Minimal RFC 5322 address-list reader: drops comments, display names and groups, returns
/// the addr-specs (a quoted local part is unquoted).
pub fn parse_address_list(v: &str) -> Vec<String> {
    // Strip comments (nesting, outside quotes).
    let mut clean = String::with_capacity(v.len());
    let (mut depth, mut quoted, mut esc) = (0u32, false, false);
    for c in v.chars() {
        if esc {
            esc = false;
            if depth == 0 {
                clean.push(c);
            }
            continue;
        }
        match c {
            '\\' if quoted || depth > 0 => {
                esc = true;
                if depth == 0 {
                    clean.push(c);
                }
            }
            '"' if depth == 0 => {
                quoted = !quoted;
                clean.push(c);
            }
            '(' if !quoted => depth += 1,
            ')' if !quoted && depth > 0 => depth -= 1,
            _ if depth > 0 => {}
            '\r' | '\n' => clean.push(' '),
            _ => clean.push(c),
        }
    }
    // Split on ',' and ';' outside quotes and angle brackets; a "name:" opens a group.
    let mut pieces = Vec::new();
    let (mut cur, mut quoted, mut angle) = (String::new(), false, false);
    let mut it = clean.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            '\\' if quoted => {
                cur.push(c);
                if let Some(n) = it.next() {
                    cur.push(n);
                }
            }
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            '<' if !quoted => {
                angle = true;
                cur.push(c);
            }
            '>' if !quoted => {
                angle = false;
                cur.push(c);
            }
            ',' | ';' if !quoted && !angle => pieces.push(std::mem::take(&mut cur)),
            ':' if !quoted && !angle => cur.clear(), // group display name
            _ => cur.push(c),
        }
    }
    pieces.push(cur);
    pieces
        .into_iter()
        .filter_map(|p| {
            let p = p.trim();
            let spec = match (p.find('<'), p.rfind('>')) {
                (Some(a), Some(b)) if a < b => &p[a + 1..b],
                (Some(a), None) => &p[a + 1..],
                _ => p,
            };
            // Obsolete source route "@a,@b:" was cut at ':' already by the group rule only
            // outside brackets; inside, drop it here.
            let spec = spec.rsplit_once(':').map_or(spec, |(_, s)| s).trim();
            if spec.is_empty() {
                return None;
            }
            Some(match spec.rfind('@') {
                Some(at) => format!("{}@{}", unquote(spec[..at].trim()), spec[at + 1..].trim()),
                None => unquote(spec),
            })
        })
        .collect()
}

fn unquote(s: &str) -> String {
    match s.strip_prefix('"').and_then(|x| x.strip_suffix('"')) {
        Some(inner) => {
            let mut out = String::new();
            let mut esc = false;
            for c in inner.chars() {
                if !esc && c == '\\' {
                    esc = true;
                } else {
                    out.push(c);
                    esc = false;
                }
            }
            out
        }
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(
            parse_address_list("\"Doe, J\" <j@x.org>, b@y.org (Bob), grp: c@z.org, d@z.org;"),
            vec!["j@x.org", "b@y.org", "c@z.org", "d@z.org"]
        );
        assert_eq!(parse_address_list("<@r.org:a@b.org>"), vec!["a@b.org"]);
        assert_eq!(parse_address_list("\"a b\"@c.org"), vec!["a b@c.org"]);
        assert!(parse_address_list("undisclosed-recipients:;").is_empty());
    }

    #[test]
    fn headers_unfold_and_decode() {
        let m = MessageView::new(
            b"Subject: =?utf-8?q?caf=C3=A9?=\r\n  ok\r\nX-A: 1\r\nx-a: 2\r\n\r\nbody",
        );
        assert_eq!(m.header_values("subject"), vec!["café ok"]);
        assert_eq!(m.header_values("X-A"), vec!["1", "2"]);
        assert!(m.has_header("X-a"));
        assert_eq!(m.body(&BodyTransform::Raw), vec!["body"]);
    }
}
