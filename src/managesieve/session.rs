//! A ManageSieve session (RFC 5804), sans-IO: bytes in, replies and requests out. The
//! listener performs what the session asks for (STARTTLS, checking a login) and reports back.

use std::sync::Arc;

use super::wire::{self, Arg, WireError};
use crate::accounts::sasl::{self, Credentials};
use crate::sieve::scripts::{ScriptError, ScriptStore};
use crate::sieve::{Limits, validate::EXTENSIONS};

/// What the session needs from its driver next.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// Send these bytes.
    Send(Vec<u8>),
    /// Send what came before, then start TLS, then call `tls_started`.
    StartTls,
    /// Check these credentials, then call `auth_result`.
    Login(Credentials),
    /// Send what came before, then close.
    Close,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    NotAuth,
    /// AUTHENTICATE "PLAIN" without an initial response: waiting for the client's response.
    SaslContinue,
    /// Waiting for the driver's login result.
    Checking,
    Auth(String),
    Closed,
}

pub struct Session {
    scripts: Arc<ScriptStore>,
    tls: bool,
    /// Allow AUTHENTICATE without TLS (tests on loopback only).
    allow_plain: bool,
    state: State,
    buf: Vec<u8>,
    failures: u32,
}

/// Largest script a user may store (HAVESPACE, PUTSCRIPT); the compile limit.
fn max_script() -> usize {
    Limits::default().max_script_bytes
}
/// Scripts per user.
const MAX_SCRIPTS: usize = 64;

fn ok(text: &str) -> Vec<u8> {
    let mut o = b"OK ".to_vec();
    o.extend_from_slice(&wire::string(text.as_bytes()));
    o.extend_from_slice(b"\r\n");
    o
}
fn no(code: Option<&str>, text: &str) -> Vec<u8> {
    let mut o = b"NO ".to_vec();
    if let Some(c) = code {
        o.extend_from_slice(format!("({c}) ").as_bytes());
    }
    o.extend_from_slice(&wire::string(text.as_bytes()));
    o.extend_from_slice(b"\r\n");
    o
}

impl Session {
    pub fn new(scripts: Arc<ScriptStore>, tls: bool, allow_plain: bool) -> Session {
        Session {
            scripts,
            tls,
            allow_plain,
            state: State::NotAuth,
            buf: Vec::new(),
            failures: 0,
        }
    }

    pub fn is_authenticated(&self) -> bool {
        matches!(self.state, State::Auth(_))
    }

    /// §1.7: the capability list, then OK.
    pub fn capabilities(&self) -> Vec<u8> {
        let mut o = Vec::new();
        let mut line = |k: &str, v: Option<&str>| {
            o.extend_from_slice(format!("\"{k}\"").as_bytes());
            if let Some(v) = v {
                o.push(b' ');
                o.extend_from_slice(&wire::string(v.as_bytes()));
            }
            o.extend_from_slice(b"\r\n");
        };
        line("IMPLEMENTATION", Some("postern"));
        let sasl = if self.tls || self.allow_plain {
            "PLAIN"
        } else {
            ""
        };
        line("SASL", Some(sasl));
        line("SIEVE", Some(&EXTENSIONS.join(" ")));
        if !self.tls {
            line("STARTTLS", None);
        }
        line(
            "MAXREDIRECTS",
            Some(&Limits::default().max_redirects.to_string()),
        );
        line("VERSION", Some("1.0"));
        o.extend_from_slice(&ok("ManageSieve ready"));
        o
    }

    pub fn greeting(&self) -> Vec<u8> {
        self.capabilities()
    }

    /// §2.2: after the handshake the server re-issues its capabilities.
    pub fn tls_started(&mut self) -> Vec<Event> {
        self.tls = true;
        self.buf.clear();
        vec![Event::Send(self.capabilities())]
    }

    pub fn auth_result(&mut self, result: Result<String, &'static str>) -> Vec<Event> {
        match result {
            Ok(user) => {
                self.state = State::Auth(user);
                vec![Event::Send(ok("Logged in"))]
            }
            Err(why) => {
                self.state = State::NotAuth;
                self.failures += 1;
                if self.failures >= 3 {
                    self.state = State::Closed;
                    return vec![
                        Event::Send(b"BYE \"Too many failed logins\"\r\n".to_vec()),
                        Event::Close,
                    ];
                }
                vec![Event::Send(no(None, why))]
            }
        }
    }

    /// Feeds received bytes; returns what to do, in order. Stops after a request that needs
    /// the driver (StartTls, Login, Close); call `input(&[])` again once it is answered.
    pub fn input(&mut self, data: &[u8]) -> Vec<Event> {
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        loop {
            if matches!(self.state, State::Checking | State::Closed) {
                return out;
            }
            if self.state == State::SaslContinue {
                let Some(end) = self.buf.iter().position(|&c| c == b'\n') else {
                    if self.buf.len() > wire::MAX_LINE {
                        self.state = State::Closed;
                        out.push(Event::Send(b"BYE \"Line too long\"\r\n".to_vec()));
                        out.push(Event::Close);
                    }
                    return out;
                };
                let line: Vec<u8> = self.buf.drain(..=end).collect();
                let line = String::from_utf8_lossy(&line).trim().to_string();
                let b64 = line.trim_matches('"');
                match line.as_str() {
                    "\"*\"" | "*" => {
                        self.state = State::NotAuth;
                        out.push(Event::Send(no(None, "Authentication cancelled")));
                    }
                    _ => match sasl::decode_response(b64).and_then(|r| sasl::parse_plain(&r)) {
                        Ok(c) => {
                            self.state = State::Checking;
                            out.push(Event::Login(c));
                            return out;
                        }
                        Err(_) => {
                            self.state = State::NotAuth;
                            out.push(Event::Send(no(None, "Malformed PLAIN response")));
                        }
                    },
                }
                continue;
            }
            match wire::parse(&self.buf) {
                Ok(None) => return out,
                Ok(Some((args, n))) => {
                    self.buf.drain(..n);
                    if self.command(args, &mut out) {
                        return out;
                    }
                }
                Err((WireError::TooLong, _)) => {
                    self.state = State::Closed;
                    out.push(Event::Send(b"BYE \"Command too long\"\r\n".to_vec()));
                    out.push(Event::Close);
                    return out;
                }
                Err((WireError::Syntax(why), n)) => {
                    self.buf.drain(..n.min(self.buf.len()));
                    out.push(Event::Send(no(None, &format!("Syntax error: {why}"))));
                }
            }
        }
    }

    /// Runs one command; true when the driver must act before more input is read.
    fn command(&mut self, args: Vec<Arg>, out: &mut Vec<Event>) -> bool {
        let Some(Arg::Atom(cmd)) = args.first().cloned() else {
            out.push(Event::Send(no(None, "Expected a command")));
            return false;
        };
        let strs: Option<Vec<Vec<u8>>> = args[1..]
            .iter()
            .map(|a| match a {
                Arg::Str(s) => Some(s.clone()),
                // HAVESPACE's size is a number, which reads as an atom.
                Arg::Atom(a) if !a.is_empty() && a.bytes().all(|c| c.is_ascii_digit()) => {
                    Some(a.as_bytes().to_vec())
                }
                Arg::Atom(_) => None,
            })
            .collect();
        let Some(strs) = strs else {
            out.push(Event::Send(no(None, "Arguments must be strings")));
            return false;
        };
        let s = |i: usize| strs.get(i).map(|b| String::from_utf8_lossy(b).into_owned());
        let argc = strs.len();
        let bad_args = |out: &mut Vec<Event>| {
            out.push(Event::Send(no(None, &format!("Wrong arguments for {cmd}"))))
        };
        match cmd.as_str() {
            "CAPABILITY" => out.push(Event::Send(self.capabilities())),
            "NOOP" => {
                let reply = match s(0) {
                    // §2.14: the tag comes back as a response code.
                    Some(tag) => {
                        let mut o = b"OK (TAG ".to_vec();
                        o.extend_from_slice(&wire::string(tag.as_bytes()));
                        o.extend_from_slice(b") \"Done\"\r\n");
                        o
                    }
                    None => ok("Done"),
                };
                out.push(Event::Send(reply));
            }
            "LOGOUT" => {
                self.state = State::Closed;
                out.push(Event::Send(ok("Bye")));
                out.push(Event::Close);
                return true;
            }
            "STARTTLS" => {
                if self.tls || self.is_authenticated() {
                    out.push(Event::Send(no(None, "TLS is not available now")));
                } else {
                    out.push(Event::Send(ok("Begin TLS negotiation now")));
                    out.push(Event::StartTls);
                    return true;
                }
            }
            "AUTHENTICATE" => {
                if self.is_authenticated() {
                    out.push(Event::Send(no(None, "Already authenticated")));
                } else if !self.tls && !self.allow_plain {
                    out.push(Event::Send(no(
                        Some("ENCRYPT-NEEDED"),
                        "Use STARTTLS first",
                    )));
                } else if !s(0).is_some_and(|m| m.eq_ignore_ascii_case("PLAIN")) {
                    out.push(Event::Send(no(None, "Only SASL PLAIN is offered")));
                } else if let Some(ir) = s(1) {
                    match sasl::decode_response(&ir).and_then(|r| sasl::parse_plain(&r)) {
                        Ok(c) => {
                            self.state = State::Checking;
                            out.push(Event::Login(c));
                            return true;
                        }
                        Err(_) => out.push(Event::Send(no(None, "Malformed PLAIN response"))),
                    }
                } else {
                    self.state = State::SaslContinue;
                    out.push(Event::Send(b"\"\"\r\n".to_vec()));
                }
            }
            _ => {
                let State::Auth(user) = self.state.clone() else {
                    out.push(Event::Send(no(None, "Authenticate first")));
                    return false;
                };
                let reply = self.authenticated(&cmd, &user, &strs, argc);
                match reply {
                    Some(r) => out.push(Event::Send(r)),
                    None => bad_args(out),
                }
            }
        }
        false
    }

    fn authenticated(
        &mut self,
        cmd: &str,
        user: &str,
        strs: &[Vec<u8>],
        argc: usize,
    ) -> Option<Vec<u8>> {
        let st = &self.scripts;
        let name = |i: usize| String::from_utf8(strs.get(i)?.clone()).ok();
        let err = |e: ScriptError| match e {
            ScriptError::NotFound(_) => no(Some("NONEXISTENT"), &e.to_string()),
            ScriptError::Active(_) => no(Some("ACTIVE"), &e.to_string()),
            ScriptError::Exists(_) => no(Some("ALREADYEXISTS"), &e.to_string()),
            ScriptError::Io(io) => {
                tracing::warn!(%user, "managesieve: {io}");
                no(Some("TRYLATER"), "Storage error, try again later")
            }
            e => no(None, &e.to_string()),
        };
        Some(match (cmd, argc) {
            ("UNAUTHENTICATE", 0) => {
                self.state = State::NotAuth;
                ok("Unauthenticated")
            }
            ("LISTSCRIPTS", 0) => match st.list(user) {
                Ok(list) => {
                    let mut o = Vec::new();
                    for (n, active) in list {
                        o.extend_from_slice(&wire::string(n.as_bytes()));
                        if active {
                            o.extend_from_slice(b" ACTIVE");
                        }
                        o.extend_from_slice(b"\r\n");
                    }
                    o.extend_from_slice(&ok("Listed"));
                    o
                }
                Err(e) => err(e),
            },
            ("GETSCRIPT", 1) => match st.get(user, &name(0)?) {
                Ok(text) => {
                    let mut o = format!("{{{}}}\r\n", text.len()).into_bytes();
                    o.extend_from_slice(text.as_bytes());
                    o.extend_from_slice(b"\r\n");
                    o.extend_from_slice(&ok("Done"));
                    o
                }
                Err(e) => err(e),
            },
            ("CHECKSCRIPT", 1) | ("PUTSCRIPT", 2) => {
                let body = strs.last()?;
                let Ok(text) = std::str::from_utf8(body) else {
                    return Some(no(None, "Script is not UTF-8"));
                };
                if cmd == "CHECKSCRIPT" {
                    match crate::sieve::compile(text, &Limits::default()) {
                        Ok(_) => ok("Script is valid"),
                        Err(e) => no(None, &e.to_string()),
                    }
                } else {
                    let n = name(0)?;
                    let count = st.list(user).map(|l| l.len()).unwrap_or(0);
                    let exists = st.get(user, &n).is_ok();
                    if !exists && count >= MAX_SCRIPTS {
                        return Some(no(Some("QUOTA/MAXSCRIPTS"), "Too many scripts"));
                    }
                    match st.put(user, &n, text) {
                        Ok(()) => ok("Stored"),
                        Err(e) => err(e),
                    }
                }
            }
            ("SETACTIVE", 1) => {
                let n = name(0)?;
                match st.activate(user, (!n.is_empty()).then_some(n.as_str())) {
                    Ok(()) => ok("Done"),
                    Err(e) => err(e),
                }
            }
            ("DELETESCRIPT", 1) => match st.delete(user, &name(0)?) {
                Ok(()) => ok("Deleted"),
                Err(e) => err(e),
            },
            ("RENAMESCRIPT", 2) => match st.rename(user, &name(0)?, &name(1)?) {
                Ok(()) => ok("Renamed"),
                Err(e) => err(e),
            },
            ("HAVESPACE", 2) => {
                let size: usize = name(1)?.parse().ok()?;
                if !crate::sieve::scripts::valid_name(&name(0)?) {
                    no(None, "Invalid script name")
                } else if size > max_script() {
                    no(
                        Some("QUOTA/MAXSIZE"),
                        &format!("Scripts are limited to {} bytes", max_script()),
                    )
                } else {
                    ok("Putscript would succeed")
                }
            }
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn text(ev: &[Event]) -> String {
        ev.iter()
            .map(|e| match e {
                Event::Send(b) => String::from_utf8_lossy(b).into_owned(),
                other => format!("<{other:?}>\n"),
            })
            .collect()
    }

    /// RFC 5804 §2.2 / CVE-2011-0411: what a client pipelined behind STARTTLS came in the
    /// clear and must not run once TLS is up.
    #[test]
    fn starttls_drops_what_was_pipelined_behind_it() {
        let d = tempfile::tempdir().unwrap();
        let mut s = Session::new(Arc::new(ScriptStore::new(d.path())), false, false);
        let r = s.input(b"STARTTLS\r\nLOGOUT\r\n");
        assert_eq!(r.last(), Some(&Event::StartTls));
        let r = text(&s.tls_started());
        assert!(
            r.contains("\"SASL\" \"PLAIN\"") && !r.contains("Bye"),
            "{r}"
        );
        // The LOGOUT was dropped: the session carries on.
        assert!(s.input(b"").is_empty());
        assert!(text(&s.input(b"NOOP\r\n")).starts_with("OK"));
    }

    #[test]
    fn flow() {
        let d = tempfile::tempdir().unwrap();
        let mut s = Session::new(Arc::new(ScriptStore::new(d.path())), false, false);
        let g = String::from_utf8(s.greeting()).unwrap();
        assert!(
            g.contains("\"STARTTLS\"")
                && g.contains("\"SASL\" \"\"")
                && g.ends_with("OK \"ManageSieve ready\"\r\n")
        );
        let r = text(&s.input(b"AUTHENTICATE \"PLAIN\"\r\n"));
        assert!(r.starts_with("NO (ENCRYPT-NEEDED)"), "{r}");
        let r = s.input(b"STARTTLS\r\n");
        assert_eq!(r.last(), Some(&Event::StartTls));
        let r = text(&s.tls_started());
        assert!(r.contains("\"SASL\" \"PLAIN\"") && !r.contains("STARTTLS"));
        assert!(text(&s.input(b"LISTSCRIPTS\r\n")).starts_with("NO"));
        let ir = base64::engine::general_purpose::STANDARD.encode(b"\0a@example.com\0pw");
        let r = s.input(format!("AUTHENTICATE \"PLAIN\" \"{ir}\"\r\n").as_bytes());
        assert!(matches!(&r[0], Event::Login(c) if c.user == "a@example.com"));
        s.auth_result(Ok("a@example.com".into()));
        let r = text(&s.input(b"PUTSCRIPT \"x\" {11+}\r\nkeep;\nfoo;\n\r\n"));
        assert!(r.starts_with("NO \"line 2: unknown command 'foo'\""), "{r}");
        let r = text(&s.input(b"PUTSCRIPT \"x\" {6+}\r\nkeep;\n\r\nSETACTIVE \"x\"\r\nLISTSCRIPTS\r\nGETSCRIPT \"x\"\r\n"));
        assert_eq!(
            r,
            "OK \"Stored\"\r\nOK \"Done\"\r\n\"x\" ACTIVE\r\nOK \"Listed\"\r\n{6}\r\nkeep;\n\r\nOK \"Done\"\r\n"
        );
        let r = text(&s.input(b"DELETESCRIPT \"x\"\r\nRENAMESCRIPT \"x\" \"y\"\r\nHAVESPACE \"y\" 99999999\r\nNOOP \"t1\"\r\n"));
        assert!(r.starts_with("NO (ACTIVE)"), "{r}");
        assert!(
            r.contains("OK \"Renamed\"")
                && r.contains("NO (QUOTA/MAXSIZE)")
                && r.ends_with("OK (TAG \"t1\") \"Done\"\r\n"),
            "{r}"
        );
        let r = text(&s.input(b"CHECKSCRIPT \"if true {\"\r\nUNAUTHENTICATE\r\nLISTSCRIPTS\r\n"));
        assert!(r.starts_with("NO \"line 1: missing '}'"), "{r}");
        assert!(
            r.contains("OK \"Unauthenticated\"\r\nNO \"Authenticate first\""),
            "{r}"
        );
        // SASL continuation form.
        assert_eq!(text(&s.input(b"AUTHENTICATE \"PLAIN\"\r\n")), "\"\"\r\n");
        let r = s.input(format!("\"{ir}\"\r\n").as_bytes());
        assert!(matches!(&r[0], Event::Login(_)));
        assert!(text(&s.auth_result(Err("Authentication failed"))).starts_with("NO"));
        let r = s.input(b"LOGOUT\r\n");
        assert_eq!(r.last(), Some(&Event::Close));
    }
}
