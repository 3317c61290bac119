//! Arbitrary bytes into a POP3 session (logged in or not) over an in-memory maildrop: no
//! panic, every reply line ends in CRLF, and a RETR'd message's octet count (RFC 1939 §5) is
//! what the canonicaliser counts for the unstuffed bytes.
#![no_main]

use std::io;

use libfuzzer_sys::fuzz_target;
use postern::pop3::body::{Canon, crlf_size};
use postern::pop3::maildrop::{Entry, Maildrop};
use postern::pop3::session::{Session, Step};

struct Mem(Vec<Vec<u8>>);

impl Maildrop for Mem {
    fn uidvalidity(&self) -> u32 {
        7
    }
    fn list(&mut self) -> io::Result<Vec<Entry>> {
        Ok(self
            .0
            .iter()
            .enumerate()
            .map(|(i, m)| Entry {
                uid: i as u32 + 1,
                size: crlf_size(&m[..]).unwrap(),
            })
            .collect())
    }
    fn open(&mut self, uid: u32) -> io::Result<Box<dyn io::Read + Send>> {
        let m = self.0.get(uid as usize - 1).cloned().unwrap_or_default();
        Ok(Box::new(io::Cursor::new(m)))
    }
    fn expunge(&mut self, _: &[u32]) -> io::Result<()> {
        Ok(())
    }
    fn mark_seen(&mut self, _: &[u32]) -> io::Result<()> {
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else { return };
    // The first bytes up to a NUL are a message for the maildrop; the rest is client input.
    let (msg, input) = match rest.iter().position(|&b| b == 0) {
        Some(p) => (&rest[..p], &rest[p + 1..]),
        None => (&rest[..0], rest),
    };
    // The message's canonical form: the unstuffed wire bytes count what LIST says.
    let mut c = Canon::wire(None);
    let mut wire = Vec::new();
    c.feed(msg, &mut wire);
    c.finish(&mut wire);
    let stuffed = wire
        .split_inclusive(|&b| b == b'\n')
        .filter(|l| l.starts_with(b".."))
        .count();
    assert_eq!((wire.len() - stuffed) as u64, crlf_size(msg).unwrap());

    let mut s = Session::new(first & 1 == 1, first & 2 == 2);
    s.input(input);
    let mut out = Vec::new();
    for _ in 0..10_000 {
        match s.step(&mut out) {
            Step::Continue | Step::Malformed => {}
            Step::Login(_) => {
                s.login_done(Ok(Box::new(Mem(vec![msg.to_vec(), b"x\n".to_vec()]))), &mut out)
            }
            Step::StartTls => s.tls_started(),
            Step::NeedInput | Step::Close => break,
        }
    }
    assert!(out.is_empty() || out.ends_with(b"\r\n"));
});
