//! The queue file: one file per message, `msg/ID`, holding the envelope as it was at enqueue
//! time and then the message octets:
//!
//! ```text
//! POSTERN-QUEUE/1 <n>\n      n = length of the JSON that follows
//! {"id":…,"rcpts":[…]}\n     the envelope (compact JSON)
//! Received: …\r\n            the message, as accepted
//! ```
//!
//! One file makes an enqueue one create, one file fsync and one (shared) directory fsync;
//! a separate envelope file (`env/ID.json`) is written only when the state changes after an
//! attempt that left something to do (a deferral, a partial delivery, a DSN sent), and it
//! then overrides the envelope in the head. A delivered message is one unlink.
//!
//! Files written before this format (a bare message in `msg/ID` beside `env/ID.json`) have
//! no head: their envelope file is authoritative and the body starts at offset 0.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

use super::Envelope;

const MAGIC: &[u8] = b"POSTERN-QUEUE/1 ";
/// The head's JSON is bounded (a few hundred recipients take a few tens of KiB).
const MAX_HEAD: usize = 16 << 20;

/// The head of a queue file for `env`.
pub fn head(env: &Envelope) -> Result<Vec<u8>, serde_json::Error> {
    let json = serde_json::to_vec(env)?;
    let mut out = Vec::with_capacity(json.len() + 32);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(json.len().to_string().as_bytes());
    out.push(b'\n');
    out.extend_from_slice(&json);
    out.push(b'\n');
    Ok(out)
}

/// What the start of a queue file says: the envelope of its head and where the message
/// starts, or `None` for a file in the old layout (bare message, offset 0).
pub struct Head {
    pub envelope: Option<Envelope>,
    pub body_offset: u64,
}

/// Read the head of an open queue file from its start, leaving the file positioned
/// anywhere. One read for heads under 4 KiB (the usual case).
pub fn read_head(f: &mut File) -> io::Result<Head> {
    let mut buf = vec![0u8; 4096];
    let n = read_up_to(f, &mut buf)?;
    buf.truncate(n);
    match parse(&buf)? {
        Parsed::Done(h) => Ok(h),
        Parsed::Need(total) => {
            buf.resize(total, 0);
            f.seek(SeekFrom::Start(n as u64))?;
            f.read_exact(&mut buf[n..])?;
            match parse(&buf)? {
                Parsed::Done(h) => Ok(h),
                Parsed::Need(_) => Err(damaged()),
            }
        }
    }
}

/// The result of parsing the first bytes of a queue file.
pub enum Parsed {
    Done(Head),
    /// The head is longer: this many bytes from the start hold it.
    Need(usize),
}

/// Parse the head from the first bytes of a queue file (`bytes` may be the whole file).
pub fn parse(bytes: &[u8]) -> io::Result<Parsed> {
    if !bytes.starts_with(MAGIC) {
        // Not even the magic fits: a file in the old layout (or a shorter one).
        return Ok(Parsed::Done(Head {
            envelope: None,
            body_offset: 0,
        }));
    }
    let rest = &bytes[MAGIC.len()..];
    let nl = rest[..rest.len().min(12)]
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(damaged)?;
    let len: usize = std::str::from_utf8(&rest[..nl])
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&l| l <= MAX_HEAD)
        .ok_or_else(damaged)?;
    let json_at = MAGIC.len() + nl + 1;
    let end = json_at + len;
    if bytes.len() <= end {
        return Ok(Parsed::Need(end + 1));
    }
    if bytes[end] != b'\n' {
        return Err(damaged());
    }
    let env: Envelope = serde_json::from_slice(&bytes[json_at..end])
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("queue file head: {e}")))?;
    Ok(Parsed::Done(Head {
        envelope: Some(env),
        body_offset: end as u64 + 1,
    }))
}

fn damaged() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "damaged queue file head")
}

fn read_up_to(f: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn env() -> Envelope {
        Envelope {
            id: "0123ABC".into(),
            mail_from: "a@x.test".into(),
            created: 5,
            size: 4,
            rcpts: vec![],
            delay_notified: false,
        }
    }

    #[test]
    fn head_round_trips_and_old_files_have_none() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        let mut f = File::create(&p).unwrap();
        let h = head(&env()).unwrap();
        f.write_all(&h).unwrap();
        f.write_all(b"hi\r\n").unwrap();
        let mut f = File::open(&p).unwrap();
        let got = read_head(&mut f).unwrap();
        assert_eq!(got.envelope.unwrap().id, "0123ABC");
        assert_eq!(got.body_offset, h.len() as u64);

        std::fs::write(&p, b"Subject: old\r\n\r\nx\r\n").unwrap();
        let got = read_head(&mut File::open(&p).unwrap()).unwrap();
        assert!(got.envelope.is_none());
        assert_eq!(got.body_offset, 0);
    }

    #[test]
    fn damaged_heads_are_errors_not_panics() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        for bad in [
            &b"POSTERN-QUEUE/1 "[..],
            b"POSTERN-QUEUE/1 x\n{}\n",
            b"POSTERN-QUEUE/1 99999999999999999999\n",
            b"POSTERN-QUEUE/1 100\n{}\n",
            b"POSTERN-QUEUE/1 2\n{}X",
            b"POSTERN-QUEUE/1 2\n{}\n",
        ] {
            std::fs::write(&p, bad).unwrap();
            assert!(read_head(&mut File::open(&p).unwrap()).is_err(), "{bad:?}");
        }
    }
}
