//! Header fields the server adds: the `Received` trace field (RFC 5321 §4.4), `Return-Path`
//! at final delivery (RFC 5321 §4.4), and on submission `Message-ID` and `Date` when the
//! client left them out (RFC 6409 §8.2, §8.3).

use std::net::IpAddr;

use rand::Rng;

/// A short random id for the transaction (logs, Received "id", 250 reply).
pub fn transaction_id() -> String {
    let n: u64 = rand::rng().random();
    format!("{n:016X}")
}

/// RFC 5322 §3.3 date-time of now.
pub fn rfc5322_now() -> String {
    chrono::Local::now().to_rfc2822()
}

pub struct TraceInfo<'a> {
    pub helo: &'a str,
    pub peer: IpAddr,
    pub hostname: &'a str,
    pub protocol: &'a str,
    pub id: &'a str,
    /// "TLSv1.3 with cipher TLS13_AES_256_GCM_SHA384" when the session used TLS.
    pub tls: Option<&'a str>,
    /// Named in a `for` clause only when there is exactly one recipient (privacy).
    pub single_rcpt: Option<&'a str>,
}

/// `Received: from HELO ([IP]) by HOST (postern) with PROTO id ID (using TLS...) for <R>; DATE`
pub fn received(t: &TraceInfo<'_>) -> String {
    let literal = match t.peer {
        IpAddr::V4(a) => format!("[{a}]"),
        IpAddr::V6(a) => format!("[IPv6:{a}]"),
    };
    let helo = if t.helo.is_empty() { "unknown" } else { t.helo };
    let mut s = format!(
        "Received: from {helo} ({literal})\r\n\tby {} (postern) with {} id {}",
        t.hostname, t.protocol, t.id
    );
    if let Some(tls) = t.tls {
        s.push_str(&format!("\r\n\t(using {tls})"));
    }
    if let Some(r) = t.single_rcpt {
        s.push_str(&format!("\r\n\tfor <{r}>"));
    }
    s.push_str(&format!(";\r\n\t{}\r\n", rfc5322_now()));
    s
}

pub fn return_path(mail_from: &str) -> String {
    format!("Return-Path: <{mail_from}>\r\n")
}

/// The header section of a message (up to the first empty line), or all of it.
fn header_section(message: &[u8]) -> &[u8] {
    let mut i = 0;
    while i < message.len() {
        let end = message[i..]
            .iter()
            .position(|&b| b == b'\n')
            .map(|p| i + p + 1)
            .unwrap_or(message.len());
        let line = &message[i..end];
        if line == b"\r\n" || line == b"\n" {
            return &message[..i];
        }
        i = end;
    }
    message
}

/// Is there a header field `name` (case-insensitive) in the header section?
pub fn has_header(message: &[u8], name: &str) -> bool {
    let head = header_section(message);
    head.split(|&b| b == b'\n').any(|line| {
        line.len() > name.len()
            && line[..name.len()].eq_ignore_ascii_case(name.as_bytes())
            && line[name.len()] == b':'
    })
}

/// How many header fields named `name` the header section has.
pub fn count_header(message: &[u8], name: &str) -> usize {
    let head = header_section(message);
    head.split(|&b| b == b'\n')
        .filter(|line| {
            line.len() > name.len()
                && line[..name.len()].eq_ignore_ascii_case(name.as_bytes())
                && line[name.len()] == b':'
        })
        .count()
}

/// RFC 6409 §8.2/§8.3: add Message-ID and Date when missing. Returns the header lines to
/// prepend (CRLF-terminated), possibly empty.
pub fn submission_additions(message: &[u8], hostname: &str) -> String {
    let mut out = String::new();
    if !has_header(message, "Message-ID") {
        out.push_str(&format!(
            "Message-ID: <{}.{}@{hostname}>\r\n",
            chrono::Utc::now().format("%Y%m%d%H%M%S"),
            transaction_id().to_ascii_lowercase()
        ));
    }
    if !has_header(message, "Date") {
        out.push_str(&format!("Date: {}\r\n", rfc5322_now()));
    }
    out
}

/// The value of the Message-ID header, for logs. Only that field is copied (the header
/// section of a spooled message can be large).
pub fn message_id(message: &[u8]) -> Option<String> {
    let head = header_section(message);
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    while let Some(l) = lines.next() {
        if l.len() > 11 && l[..11].eq_ignore_ascii_case(b"message-id:") {
            let mut v = l[11..].trim_ascii();
            if v.is_empty() {
                v = lines.next().unwrap_or_default().trim_ascii();
            }
            let v = &v[..v.len().min(800)];
            let text = String::from_utf8_lossy(v);
            return Some(text.chars().filter(|c| !c.is_control()).take(200).collect());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_headers_only_in_header_section() {
        let m = b"Subject: x\r\nmessage-id: <a@b>\r\n\r\nDate: not a header\r\n";
        assert!(has_header(m, "Message-ID"));
        assert!(!has_header(m, "Date"));
        assert_eq!(
            count_header(b"From: a\r\nfrom: b\r\n\r\nFrom: c\r\n", "From"),
            2
        );
        let add = submission_additions(m, "mail.example.com");
        assert!(add.starts_with("Date: "), "{add}");
        assert_eq!(message_id(m).as_deref(), Some("<a@b>"));
        let add = submission_additions(b"Subject: y\r\n\r\nbody", "h.example");
        assert!(add.contains("Message-ID: <") && add.contains("@h.example>\r\n"));
        assert!(add.contains("\r\nDate: "));
    }

    #[test]
    fn received_has_literal_and_tls() {
        let s = received(&TraceInfo {
            helo: "client.example",
            peer: "2001:db8::1".parse().unwrap(),
            hostname: "mx.example.com",
            protocol: "ESMTPS",
            id: "ABC",
            tls: Some("TLSv1.3 with cipher TLS13_AES_128_GCM_SHA256"),
            single_rcpt: Some("a@example.com"),
        });
        assert!(s.starts_with("Received: from client.example ([IPv6:2001:db8::1])\r\n\tby mx.example.com (postern) with ESMTPS id ABC"));
        assert!(s.contains("(using TLSv1.3"));
        assert!(s.contains("for <a@example.com>;"));
        assert!(s.ends_with("\r\n"));
    }
}
