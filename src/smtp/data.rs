//! The DATA body decoder (RFC 5321 §4.1.1.4, §4.5.2): a sans-IO state machine fed raw bytes.
//!
//! * The body ends only at `CRLF . CRLF`. A dot line ended by a bare LF (`\n.\n`, `\r\n.\n`)
//!   does not end it — that is the "SMTP smuggling" ambiguity; we treat such lines as content.
//! * Dot-unstuffing: a leading `.` on a line is removed (§4.5.2).
//! * Bare LF is stored as CRLF so the Maildir file is canonical (RFC 5321 §2.3.8 forbids bare
//!   LF on the wire; normalising, as Postfix does, keeps sloppy clients working).
//! * Limits: the stored size is capped at `max_size` (later bytes are counted and dropped, so
//!   memory stays bounded) and a text line over 1000 octets with CRLF (§4.5.3.1.6) is noted;
//!   the session then refuses the message with the right reply after the terminating dot.
//! * Output: decoded content goes to a `Sink` as it is decoded: the spool in the server (so a
//!   big body is on disk, not in memory), a `Vec` in tests and fuzzing.

/// Longest text line without its CRLF (RFC 5321 §4.5.3.1.6: 1000 octets including CRLF).
pub const MAX_TEXT_LINE: usize = 998;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    LineStart,
    Mid,
    Cr,
    Dot,
    DotCr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataError {
    /// More than `max_size` octets (552 5.3.4).
    TooBig { size: u64 },
    /// A text line longer than 1000 octets with CRLF (550 5.5.2).
    LineTooLong,
    /// The body could not be spooled (disk full): 452 4.3.1, try again later.
    Storage(String),
}

/// Where decoded content goes.
pub trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

impl Sink for crate::spool::SpoolWriter {
    fn put(&mut self, bytes: &[u8]) {
        self.write(bytes);
    }
}

pub struct DataDecoder<S = Vec<u8>> {
    st: St,
    out: S,
    max_size: usize,
    size: u64,
    line_len: usize,
    long_line: bool,
    done: bool,
}

impl DataDecoder {
    pub fn new(max_size: u64) -> DataDecoder {
        DataDecoder::with_sink(max_size, Vec::with_capacity(8192))
    }
}

impl<S: Sink> DataDecoder<S> {
    pub fn with_sink(max_size: u64, out: S) -> DataDecoder<S> {
        DataDecoder {
            st: St::LineStart,
            out,
            max_size: usize::try_from(max_size).unwrap_or(usize::MAX),
            size: 0,
            line_len: 0,
            long_line: false,
            done: false,
        }
    }

    /// Feed bytes; returns how many were consumed and whether the terminating dot was seen.
    /// Bytes after the terminator are not consumed: they are the next pipelined commands.
    pub fn feed(&mut self, input: &[u8]) -> (usize, bool) {
        if self.done {
            return (0, true);
        }
        for (i, &b) in input.iter().enumerate() {
            if self.step(b) {
                self.done = true;
                return (i + 1, true);
            }
        }
        (input.len(), false)
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Octets of content seen so far (after unstuffing), including those over the limit.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The decoded message (the sink holding it), or why it is refused.
    pub fn finish(self) -> Result<S, DataError> {
        if self.size > self.max_size as u64 {
            Err(DataError::TooBig { size: self.size })
        } else if self.long_line {
            Err(DataError::LineTooLong)
        } else {
            Ok(self.out)
        }
    }

    fn emit(&mut self, bytes: &[u8]) {
        self.size += bytes.len() as u64;
        if self.size <= self.max_size as u64 {
            self.out.put(bytes);
        }
    }

    fn content(&mut self, b: u8) {
        self.line_len += 1;
        if self.line_len > MAX_TEXT_LINE {
            self.long_line = true;
        }
        self.emit(&[b]);
    }

    fn eol(&mut self) {
        self.emit(b"\r\n");
        self.line_len = 0;
        self.st = St::LineStart;
    }

    /// One byte; true when it completes `CRLF . CRLF`.
    fn step(&mut self, b: u8) -> bool {
        match self.st {
            St::LineStart => {
                if b == b'.' {
                    self.st = St::Dot;
                } else {
                    self.mid(b);
                }
            }
            St::Mid => self.mid(b),
            St::Cr => match b {
                b'\n' => self.eol(),
                b'\r' => {
                    self.content(b'\r');
                }
                _ => {
                    self.content(b'\r');
                    self.st = St::Mid;
                    self.mid(b);
                }
            },
            St::Dot => match b {
                b'\r' => self.st = St::DotCr,
                // "\n.\n": a lone dot ended by a bare LF is content, never the end.
                b'\n' => self.eol(),
                _ => {
                    self.st = St::Mid;
                    self.mid(b);
                }
            },
            St::DotCr => {
                if b == b'\n' {
                    return true;
                }
                self.content(b'\r');
                self.st = St::Mid;
                self.mid(b);
            }
        }
        false
    }

    fn mid(&mut self, b: u8) {
        match b {
            b'\r' => self.st = St::Cr,
            b'\n' => self.eol(),
            _ => {
                self.content(b);
                self.st = St::Mid;
            }
        }
    }
}

/// Collects BDAT chunks (RFC 3030): raw octets, no dot-stuffing, bounded like DATA.
pub struct BdatCollector<S = Vec<u8>> {
    out: S,
    max_size: u64,
    size: u64,
}

impl BdatCollector {
    pub fn new(max_size: u64) -> BdatCollector {
        BdatCollector::with_sink(max_size, Vec::new())
    }
}

impl<S: Sink> BdatCollector<S> {
    pub fn with_sink(max_size: u64, out: S) -> BdatCollector<S> {
        BdatCollector {
            out,
            max_size,
            size: 0,
        }
    }

    pub fn push(&mut self, chunk: &[u8]) {
        self.size += chunk.len() as u64;
        if self.size <= self.max_size {
            self.out.put(chunk);
        }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn too_big(&self) -> bool {
        self.size > self.max_size
    }

    pub fn finish(self) -> Result<S, DataError> {
        if self.too_big() {
            Err(DataError::TooBig { size: self.size })
        } else {
            Ok(self.out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(input: &[u8], max: u64) -> (usize, bool, Result<Vec<u8>, DataError>) {
        let mut d = DataDecoder::new(max);
        let (n, done) = d.feed(input);
        (n, done, d.finish())
    }

    #[test]
    fn ends_at_crlf_dot_crlf_and_leaves_the_rest() {
        let (n, done, r) = decode(b"Subject: x\r\n\r\nhello\r\n.\r\nQUIT\r\n", 1000);
        assert!(done);
        assert_eq!(n, 24);
        assert_eq!(r.unwrap(), b"Subject: x\r\n\r\nhello\r\n");
    }

    #[test]
    fn empty_body() {
        let (n, done, r) = decode(b".\r\n", 1000);
        assert!(done);
        assert_eq!(n, 3);
        assert_eq!(r.unwrap(), b"");
    }

    #[test]
    fn unstuffs_leading_dots() {
        let (_, done, r) = decode(b"..hidden\r\n...two\r\n.x\r\n.\r\n", 1000);
        assert!(done);
        assert_eq!(r.unwrap(), b".hidden\r\n..two\r\nx\r\n");
    }

    #[test]
    fn byte_at_a_time_is_the_same() {
        let input = b"a\r\n..b\r\nc\n.\nd\r\n.\r\n";
        let mut d = DataDecoder::new(1000);
        let mut done = false;
        for b in input.iter() {
            let (n, dn) = d.feed(std::slice::from_ref(b));
            assert_eq!(n, 1);
            done = dn;
        }
        assert!(done);
        assert_eq!(d.finish().unwrap(), b"a\r\n.b\r\nc\r\n\r\nd\r\n");
    }

    #[test]
    fn bare_lf_dot_does_not_end_data() {
        // SMTP smuggling: "\n.\n" and "\r\n.\n" are content, only CRLF.CRLF ends the body.
        let (_, done, _) = decode(b"a\n.\nMAIL FROM:<x@y>\r\n", 1000);
        assert!(!done);
        let (_, done, _) = decode(b"a\r\n.\nRCPT TO:<x@y>\r\n", 1000);
        assert!(!done);
        let (_, done, r) = decode(b"a\n.\nb\r\n.\r\n", 1000);
        assert!(done);
        assert_eq!(r.unwrap(), b"a\r\n\r\nb\r\n");
    }

    #[test]
    fn bare_lf_is_normalised() {
        let (_, _, r) = decode(b"a\nb\r\n.\r\n", 1000);
        assert_eq!(r.unwrap(), b"a\r\nb\r\n");
    }

    #[test]
    fn too_big_is_bounded() {
        let mut body = vec![b'x'; 50];
        body.extend_from_slice(b"\r\n");
        let mut input = Vec::new();
        for _ in 0..100 {
            input.extend_from_slice(&body);
        }
        input.extend_from_slice(b".\r\n");
        let mut d = DataDecoder::new(1024);
        let (_, done) = d.feed(&input);
        assert!(done);
        assert!(d.out.len() <= 1024);
        assert_eq!(d.finish(), Err(DataError::TooBig { size: 5200 }));
    }

    #[test]
    fn long_line_detected() {
        let mut input = vec![b'y'; 999];
        input.extend_from_slice(b"\r\n.\r\n");
        let (_, done, r) = decode(&input, 1 << 20);
        assert!(done);
        assert_eq!(r, Err(DataError::LineTooLong));
        let mut input = vec![b'y'; 998];
        input.extend_from_slice(b"\r\n.\r\n");
        assert!(decode(&input, 1 << 20).2.is_ok());
    }

    #[test]
    fn bdat_limits() {
        let mut c = BdatCollector::new(10);
        c.push(b"12345");
        c.push(b"67890");
        assert!(!c.too_big());
        c.push(b"x");
        assert!(c.too_big());
        assert_eq!(c.finish(), Err(DataError::TooBig { size: 11 }));
    }
}
