//! `postern import USER --from-imap imaps://HOST[:PORT] --login U --password-file F`: a small
//! blocking IMAP4rev1 client (RFC 3501) over verified TLS that lists the source's folders,
//! maps special-use ones to ours (RFC 6154 attributes, else well-known names), and copies
//! every message with its flags and INTERNALDATE into `import::Target`.
//!
//! Resumable without downloading twice: each message also gets a source key (host, folder,
//! UIDVALIDITY, UID) recorded with the content key, and a later run fetches only UIDs it has
//! no key for. Responses are parsed by a tokenizer for the few forms used (atoms, quoted
//! strings, literals, lists); every length is bounded by the size limit.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};

use super::import_source::{Item, Message, to_crlf};
use crate::store::flags;

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    Atom(String),
    Str(Vec<u8>),
    List(Vec<Tok>),
}

impl Tok {
    fn text(&self) -> String {
        match self {
            Tok::Atom(a) => a.clone(),
            Tok::Str(s) => String::from_utf8_lossy(s).into_owned(),
            Tok::List(_) => String::new(),
        }
    }
}

/// Tokens of one response (literals already read in place).
pub fn tokenize(raw: &[Part]) -> Vec<Tok> {
    let mut stack: Vec<Vec<Tok>> = vec![Vec::new()];
    for part in raw {
        match part {
            Part::Literal(b) => stack.last_mut().expect("root").push(Tok::Str(b.clone())),
            Part::Text(t) => {
                let mut i = 0;
                while i < t.len() {
                    match t[i] {
                        b' ' => i += 1,
                        b'(' => {
                            stack.push(Vec::new());
                            i += 1;
                        }
                        b')' => {
                            if stack.len() > 1 {
                                let l = stack.pop().expect("nested");
                                stack.last_mut().expect("root").push(Tok::List(l));
                            }
                            i += 1;
                        }
                        b'"' => {
                            let mut s = Vec::new();
                            i += 1;
                            while i < t.len() && t[i] != b'"' {
                                if t[i] == b'\\' && i + 1 < t.len() {
                                    i += 1;
                                }
                                s.push(t[i]);
                                i += 1;
                            }
                            i += 1;
                            stack.last_mut().expect("root").push(Tok::Str(s));
                        }
                        _ => {
                            let start = i;
                            let mut depth = 0;
                            // Atoms may hold brackets with spaces: BODY[HEADER.FIELDS (A B)].
                            while i < t.len() && (depth > 0 || !matches!(t[i], b' ' | b'(' | b')'))
                            {
                                match t[i] {
                                    b'[' => depth += 1,
                                    b']' => depth -= 1,
                                    _ => {}
                                }
                                i += 1;
                            }
                            let a = String::from_utf8_lossy(&t[start..i]).into_owned();
                            // "{n}" markers were replaced by literals already.
                            if !(a.starts_with('{') && a.ends_with('}')) {
                                stack.last_mut().expect("root").push(Tok::Atom(a));
                            }
                        }
                    }
                }
            }
        }
    }
    while stack.len() > 1 {
        let l = stack.pop().expect("nested");
        stack.last_mut().expect("root").push(Tok::List(l));
    }
    stack.pop().unwrap_or_default()
}

#[derive(Debug, Clone)]
pub enum Part {
    Text(Vec<u8>),
    Literal(Vec<u8>),
}

pub struct Client {
    r: BufReader<Tls>,
    tag: u32,
    max: u64,
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

impl Client {
    pub fn connect(
        host: &str,
        port: u16,
        ca_file: &std::path::Path,
        max: u64,
    ) -> anyhow::Result<Client> {
        crate::tls::install_crypto_provider();
        let roots = crate::outbound::tls::Roots::new(ca_file).get();
        let cfg = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from(host.to_owned())
            .with_context(|| format!("bad host name {host:?}"))?;
        let tcp = TcpStream::connect((host, port))
            .with_context(|| format!("cannot connect to {host}:{port}"))?;
        tcp.set_read_timeout(Some(Duration::from_secs(120)))?;
        tcp.set_write_timeout(Some(Duration::from_secs(120)))?;
        let conn = rustls::ClientConnection::new(Arc::new(cfg), name)?;
        let mut c = Client {
            r: BufReader::new(rustls::StreamOwned::new(conn, tcp)),
            tag: 0,
            max,
        };
        let greeting = c.read_response()?;
        let first = tokenize(&greeting);
        if first.get(1).map(Tok::text).as_deref() != Some("OK") {
            bail!("{host}: unexpected greeting {:?}", first);
        }
        Ok(c)
    }

    /// One response: a line, with literals read in place.
    fn read_response(&mut self) -> anyhow::Result<Vec<Part>> {
        let mut parts = Vec::new();
        loop {
            let mut line = Vec::new();
            let n = (&mut self.r).take(64 * 1024).read_until(b'\n', &mut line)?;
            if n == 0 {
                bail!("the server closed the connection");
            }
            if !line.ends_with(b"\n") {
                bail!("response line too long");
            }
            while matches!(line.last(), Some(b'\r' | b'\n')) {
                line.pop();
            }
            let lit = line
                .iter()
                .rposition(|&b| b == b'{')
                .filter(|_| line.ends_with(b"}"))
                .and_then(|p| {
                    std::str::from_utf8(&line[p + 1..line.len() - 1])
                        .ok()?
                        .trim_end_matches('+')
                        .parse::<u64>()
                        .ok()
                });
            parts.push(Part::Text(line));
            let Some(len) = lit else { return Ok(parts) };
            if len > self.max + 64 * 1024 {
                bail!("literal of {len} octets is over the size limit");
            }
            let mut buf = vec![0u8; len as usize];
            self.r.read_exact(&mut buf)?;
            parts.push(Part::Literal(buf));
        }
    }

    /// Send a command; returns the untagged responses, or the tagged NO/BAD as an error.
    pub fn command(&mut self, cmd: &str) -> anyhow::Result<Vec<Vec<Tok>>> {
        self.tag += 1;
        let tag = format!("i{}", self.tag);
        let w = self.r.get_mut();
        w.write_all(format!("{tag} {cmd}\r\n").as_bytes())?;
        w.flush()?;
        let mut untagged = Vec::new();
        loop {
            let toks = tokenize(&self.read_response()?);
            match toks.first() {
                Some(Tok::Atom(t)) if *t == tag => {
                    if toks.get(1).map(Tok::text).as_deref() == Some("OK") {
                        return Ok(untagged);
                    }
                    let verb = cmd.split(' ').next().unwrap_or("");
                    let text: Vec<String> = toks[1..].iter().map(Tok::text).collect();
                    bail!("{verb} refused: {}", text.join(" "));
                }
                _ => untagged.push(toks),
            }
        }
    }

    pub fn login(&mut self, user: &str, pass: &str) -> anyhow::Result<()> {
        self.command(&format!("LOGIN {} {}", quote(user), quote(pass)))
            .map(|_| ())
    }

    /// Every selectable folder.
    pub fn folders(&mut self) -> anyhow::Result<Vec<Folder>> {
        let mut out = Vec::new();
        for t in self.command("LIST \"\" \"*\"")? {
            let [_, Tok::Atom(kind), Tok::List(attrs), delim, name] = &t[..] else {
                continue;
            };
            if !kind.eq_ignore_ascii_case("LIST") {
                continue;
            }
            let attrs: Vec<String> = attrs
                .iter()
                .map(|a| a.text().to_ascii_lowercase())
                .collect();
            if attrs
                .iter()
                .any(|a| a == "\\noselect" || a == "\\nonexistent")
            {
                continue;
            }
            let name = name.text();
            let special = [
                ("\\sent", "Sent"),
                ("\\drafts", "Drafts"),
                ("\\trash", "Trash"),
                ("\\junk", "Junk"),
                ("\\archive", "Archive"),
            ]
            .iter()
            .find(|(a, _)| attrs.iter().any(|x| x == a))
            .map(|(_, n)| *n)
            .or_else(|| special_by_name(&name));
            let delim = match delim {
                Tok::Str(d) if d.len() == 1 => Some(d[0] as char),
                _ => None,
            };
            out.push(Folder {
                name,
                delim,
                special,
            });
        }
        Ok(out)
    }

    /// UIDVALIDITY and (UID, flags, internal date, size) of every message in a folder.
    pub fn examine(&mut self, folder: &str) -> anyhow::Result<(u32, Vec<Meta>)> {
        let mut uv = 0;
        let mut exists = 0;
        for t in self.command(&format!("EXAMINE {}", quote(folder)))? {
            if let [_, Tok::Atom(n), Tok::Atom(k)] = &t[..]
                && k.eq_ignore_ascii_case("EXISTS")
            {
                exists = n.parse().unwrap_or(0);
            }
            if let Some(Tok::List(code)) = t.get(2)
                && code.first().map(Tok::text).as_deref() == Some("UIDVALIDITY")
            {
                uv = code
                    .get(1)
                    .map(Tok::text)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
            }
            if let Some(Tok::Atom(a)) = t.get(2)
                && a.eq_ignore_ascii_case("[UIDVALIDITY")
            {
                uv = t
                    .get(3)
                    .map(Tok::text)
                    .and_then(|v| v.trim_end_matches(']').parse().ok())
                    .unwrap_or(0);
            }
        }
        if exists == 0 {
            return Ok((uv, Vec::new()));
        }
        let mut metas = Vec::new();
        for t in self.command("UID FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE)")? {
            let Some(Tok::List(items)) = t.get(3) else {
                continue;
            };
            let mut m = Meta::default();
            for pair in items.chunks(2) {
                let [Tok::Atom(k), v] = pair else { continue };
                match k.to_ascii_uppercase().as_str() {
                    "UID" => m.uid = v.text().parse().unwrap_or(0),
                    "RFC822.SIZE" => m.size = v.text().parse().unwrap_or(0),
                    "INTERNALDATE" => m.date = internal_date(&v.text()),
                    "FLAGS" => {
                        if let Tok::List(fl) = v {
                            for f in fl {
                                let f = f.text();
                                match flags::system_flag(&f) {
                                    Some(bit) => m.system |= bit,
                                    None if !f.starts_with('\\') => m.keywords.push(f),
                                    None => {}
                                }
                            }
                        }
                    }
                    _ => {}
                }
            }
            if m.uid != 0 {
                metas.push(m);
            }
        }
        metas.sort_by_key(|m| m.uid);
        Ok((uv, metas))
    }

    pub fn body(&mut self, uid: u32) -> anyhow::Result<Vec<u8>> {
        for t in self.command(&format!("UID FETCH {uid} (BODY.PEEK[])"))? {
            if let Some(Tok::List(items)) = t.get(3) {
                for pair in items.windows(2) {
                    if let [Tok::Atom(k), Tok::Str(b)] = pair
                        && k.eq_ignore_ascii_case("BODY[]")
                    {
                        return Ok(b.clone());
                    }
                }
            }
        }
        bail!("the server sent no body for UID {uid}")
    }

    pub fn logout(&mut self) {
        let _ = self.command("LOGOUT");
    }
}

/// Well-known names of special-use folders on servers that do not announce them.
fn special_by_name(name: &str) -> Option<&'static str> {
    let last = name
        .rsplit(['/', '.'])
        .next()
        .unwrap_or(name)
        .to_ascii_lowercase();
    Some(match last.as_str() {
        "sent" | "sent items" | "sent messages" | "sent mail" => "Sent",
        "drafts" => "Drafts",
        "trash" | "deleted items" | "deleted messages" | "bin" => "Trash",
        "junk" | "spam" | "junk e-mail" | "bulk mail" => "Junk",
        "archive" | "archives" => "Archive",
        _ => return None,
    })
}

/// A source folder: its wire name, hierarchy delimiter and our special-use folder for it.
#[derive(Debug, Clone)]
pub struct Folder {
    pub name: String,
    pub delim: Option<char>,
    pub special: Option<&'static str>,
}

#[derive(Debug, Default, Clone)]
pub struct Meta {
    pub uid: u32,
    pub system: u8,
    pub keywords: Vec<String>,
    pub date: Option<SystemTime>,
    pub size: u64,
}

/// RFC 3501 date-time: "06-Dec-2026 16:00:00 +0000".
fn internal_date(s: &str) -> Option<SystemTime> {
    chrono::DateTime::parse_from_str(s.trim(), "%d-%b-%Y %H:%M:%S %z")
        .ok()
        .map(|d| SystemTime::from(d.with_timezone(&chrono::Utc)))
}

/// The target folder of a source folder: special-use ones map to ours, INBOX to INBOX,
/// the rest keep their name with our '.' separator.
pub fn target_folder(name: &str, delim: Option<char>, special: Option<&str>) -> String {
    if let Some(s) = special {
        return s.to_owned();
    }
    if name.eq_ignore_ascii_case("INBOX") {
        return "INBOX".into();
    }
    let decoded = crate::store::names::decode_mutf7(name).unwrap_or_else(|| name.to_owned());
    match delim {
        Some(d) if d != '.' => decoded.replace('.', "_").replace(d, "."),
        _ => decoded,
    }
}

/// A fetched message as an import item (refused when over the size limit).
pub fn item(folder: &str, meta: &Meta, body: Option<Vec<u8>>, max: u64) -> Item {
    match body {
        Some(b) if b.len() as u64 <= max => Item::Msg(Message {
            folder: folder.to_owned(),
            data: to_crlf(&b),
            system: meta.system,
            keywords: meta.keywords.clone(),
            date: meta.date,
        }),
        _ => Item::Refused {
            folder: folder.to_owned(),
            at: format!("UID {}", meta.uid),
            why: format!("over the size limit ({max} octets)"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizes_list_and_fetch_responses() {
        let t = tokenize(&[Part::Text(
            br#"* LIST (\HasNoChildren \Sent) "/" "Sent Items""#.to_vec(),
        )]);
        assert_eq!(
            t[2],
            Tok::List(vec![
                Tok::Atom("\\HasNoChildren".into()),
                Tok::Atom("\\Sent".into())
            ])
        );
        assert_eq!(t[4].text(), "Sent Items");
        let t = tokenize(&[
            Part::Text(b"* 1 FETCH (UID 7 BODY[] {5}".to_vec()),
            Part::Literal(b"ab\r\nc".to_vec()),
            Part::Text(b" FLAGS (\\Seen $Work))".to_vec()),
        ]);
        let Tok::List(items) = &t[3] else {
            panic!("{t:?}")
        };
        assert_eq!(items[3], Tok::Str(b"ab\r\nc".to_vec()));
        assert_eq!(items[4], Tok::Atom("FLAGS".into()));
    }

    #[test]
    fn folder_mapping() {
        assert_eq!(target_folder("INBOX", Some('/'), None), "INBOX");
        assert_eq!(target_folder("Sent Items", Some('/'), Some("Sent")), "Sent");
        assert_eq!(
            target_folder("Lists/rust.lang", Some('/'), None),
            "Lists.rust_lang"
        );
        assert_eq!(special_by_name("[Gmail]/Spam"), Some("Junk"));
        assert!(internal_date("06-Dec-2026 16:00:00 +0100").is_some());
    }
}
