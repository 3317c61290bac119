//! From a message to the set of tokens the classifier counts (sans-IO).
//!
//! mail-parser decodes the MIME structure (base64, quoted-printable, charsets) and reduces
//! HTML parts to text. Tokens, each counted once per message:
//! - body words: lower-cased runs of letters, digits and `$ ' -` of 3–24 characters; longer
//!   runs become `skip:<first char>:<length/10>` and long numbers `num:<digits>` (so a
//!   tracking id or an amount's shape still counts, not each value);
//! - subject words, prefixed `s:`;
//! - link hosts (`url:example.com`, the last two labels) from the text and the HTML;
//! - header features: the From domain (`from:`), a Reply-To domain differing from it
//!   (`replyto:other`), the first word of X-Mailer (`mailer:`), list mail (`list:yes`),
//!   HTML without a text alternative (`html:only`), the number of attachments (`attach:N`)
//!   and the top-level content type (`ct:`).
//!
//! Tokens never contain whitespace or control characters (the token file is line-based).

use std::collections::BTreeSet;

use mail_parser::{MessageParser, MimeHeaders};

/// At most this much decoded text per part is read (a spam's tell is near the top).
const MAX_TEXT: usize = 64 * 1024;
/// At most this many tokens per message.
const MAX_TOKENS: usize = 3000;

pub fn tokens(message: &[u8]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let Some(msg) = MessageParser::default().parse(message) else {
        out.insert("parse:failed".into());
        return out;
    };
    if let Some(subject) = msg.subject() {
        words(subject, "s:", &mut out);
    }
    let from_domain = msg
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .and_then(|a| a.rsplit_once('@'))
        .map(|(_, d)| d.to_ascii_lowercase());
    if let Some(d) = &from_domain {
        out.insert(format!("from:{}", clean_token(d)));
    }
    let reply_domain = msg
        .reply_to()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .and_then(|a| a.rsplit_once('@'))
        .map(|(_, d)| d.to_ascii_lowercase());
    if let Some(r) = reply_domain
        && Some(&r) != from_domain.as_ref()
    {
        out.insert("replyto:other".into());
    }
    if let Some(m) = msg.header_raw("X-Mailer")
        && let Some(first) = m.split_whitespace().next()
    {
        out.insert(format!("mailer:{}", clean_token(&first.to_lowercase())));
    }
    if msg.header_raw("List-Id").is_some() || msg.header_raw("List-Unsubscribe").is_some() {
        out.insert("list:yes".into());
    }
    if let Some(ct) = msg.root_part().content_type() {
        let sub = ct.subtype().unwrap_or("");
        out.insert(format!(
            "ct:{}/{}",
            clean_token(&ct.ctype().to_ascii_lowercase()),
            clean_token(&sub.to_ascii_lowercase())
        ));
    }
    out.insert(format!("attach:{}", msg.attachment_count().min(5)));
    let has_plain = msg.text_bodies().any(|p| !p.is_text_html());
    if msg.html_body_count() > 0 && !has_plain {
        out.insert("html:only".into());
    }
    for i in 0..msg.text_body_count() {
        if let Some(text) = msg.body_text(i) {
            let text = bounded(&text);
            words(text, "", &mut out);
            urls(text, &mut out);
        }
    }
    for i in 0..msg.html_body_count() {
        if let Some(html) = msg.body_html(i) {
            urls(bounded(&html), &mut out);
        }
    }
    if out.len() > MAX_TOKENS {
        out = out.into_iter().take(MAX_TOKENS).collect();
    }
    out
}

fn bounded(s: &str) -> &str {
    if s.len() <= MAX_TEXT {
        return s;
    }
    let mut end = MAX_TEXT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '$' | '\'' | '-')
}

fn words(text: &str, prefix: &str, out: &mut BTreeSet<String>) {
    for raw in text.split(|c: char| !is_word_char(c)) {
        let w = raw.trim_matches(|c| c == '\'' || c == '-');
        let n = w.chars().count();
        if n < 3 {
            continue;
        }
        let w = w.to_lowercase();
        if w.chars().all(|c| c.is_ascii_digit()) {
            if n > 4 {
                out.insert(format!("{prefix}num:{n}"));
            } else {
                out.insert(format!("{prefix}{w}"));
            }
        } else if n > 24 {
            let first = w.chars().next().unwrap_or('x');
            out.insert(format!("{prefix}skip:{first}:{}", n / 10 * 10));
        } else {
            out.insert(format!("{prefix}{w}"));
        }
    }
}

/// Hosts of http(s) links, reduced to their last two labels.
fn urls(text: &str, out: &mut BTreeSet<String>) {
    let lower = text.to_ascii_lowercase();
    for (i, _) in lower.match_indices("http") {
        let rest = &lower[i + 4..];
        let rest = rest.strip_prefix('s').unwrap_or(rest);
        let Some(rest) = rest.strip_prefix("://") else {
            continue;
        };
        let host: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
            .take(253)
            .collect();
        let labels: Vec<&str> = host.split('.').filter(|l| !l.is_empty()).collect();
        if labels.len() >= 2 {
            out.insert(format!(
                "url:{}.{}",
                labels[labels.len() - 2],
                labels[labels.len() - 1]
            ));
        }
    }
}

/// A header value as a token part: no whitespace or control characters, bounded.
fn clean_token(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace() && !c.is_control())
        .take(64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_prefixes() {
        let m = b"From: Shop <deals@shop.example>\r\nReply-To: x@elsewhere.example\r\n\
Subject: =?utf-8?q?Cheap_Watches?=\r\nX-Mailer: BulkMailer 3.1\r\n\
MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\r\n\
<html><body><p>Buy n=C3=B6w at <a href=3D\"https://www.deals.shop.example/x\">our \
store</a> for $99 order 1234567</p></body></html>\r\n";
        let t = tokens(m);
        for want in [
            "s:cheap",
            "s:watches",
            "from:shop.example",
            "replyto:other",
            "mailer:bulkmailer",
            "html:only",
            "ct:text/html",
            "attach:0",
            "buy",
            "nöw",
            "store",
            "$99",
            "num:7",
            "url:shop.example",
        ] {
            assert!(t.contains(want), "{want} missing from {t:?}");
        }
        assert!(
            !t.iter().any(|x| x.contains('<') || x.contains(' ')),
            "{t:?}"
        );
    }

    #[test]
    fn hostile_input_is_bounded() {
        let mut m = b"Subject: x\r\n\r\n".to_vec();
        for i in 0..200_000 {
            m.extend_from_slice(format!("w{i}x ").as_bytes());
        }
        let t = tokens(&m);
        assert!(t.len() <= MAX_TOKENS);
        assert!(tokens(b"").len() <= 2);
        assert!(!tokens(&[0xff; 100]).is_empty());
    }
}
