//! The DATA body decoder (RFC 5321 §4.1.1.4, §4.5.2): a sans-IO state machine fed raw bytes,
//! and the BDAT collector (RFC 3030) that applies the same line-ending rules to chunks.
//!
//! * The body ends only at `CRLF . CRLF` where the CRLF before the dot is a real CRLF (the
//!   start of DATA counts as one). Any dot line touched by a bare CR or LF (`LF . CRLF`,
//!   `CRLF . LF`, `LF . LF`, `CR . CRLF`, `CRLF . CR`) is content, never the end: this closes
//!   the "SMTP smuggling" ambiguity (CVE-2023-51764 family) where a lax receiver and a strict
//!   one disagree on where a message ends.
//! * Dot-unstuffing: a leading `.` on a line that follows a real CRLF is removed (§4.5.2). A
//!   line that follows a bare CR/LF is not a line to SMTP, so its dot is kept as content.
//! * Bare CR and bare LF (RFC 5321 §2.3.8 allows CR and LF only as CRLF) are written as CRLF so
//!   the stored file is canonical, and the first one is recorded: in the header section it
//!   always refuses the message (RFC 5322 §2.2: a lone CR is one field to one reader and two to
//!   another), in the body it refuses it when `forbid_bare_newline` is set (port 25, as
//!   Postfix 3.9 `smtpd_forbid_bare_newline = normal`); authenticated submission keeps the
//!   normalised copy, since sloppy scripts are common there.
//! * Limits: the stored size is capped at `max_size` (later bytes are counted and dropped, so
//!   memory stays bounded) and a text line over 1000 octets with CRLF (§4.5.3.1.6) is noted;
//!   the session then refuses the message with the right reply after the terminating dot.
//! * Output: decoded content goes to a `Sink` as it is decoded: the spool in the server (so a
//!   big body is on disk, not in memory), a `Vec` in tests and fuzzing.

/// Longest text line without its CRLF (RFC 5321 §4.5.3.1.6: 1000 octets including CRLF).
pub const MAX_TEXT_LINE: usize = 998;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    /// At the start of a line that follows a real CRLF (or the start of DATA).
    LineStart,
    Mid,
    /// A CR was seen; a LF next makes it a real CRLF.
    Cr,
    /// A dot at a real line start.
    Dot,
    /// `CRLF . CR`: one LF more and the body is over.
    DotCr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataError {
    /// More than `max_size` octets (552 5.3.4).
    TooBig { size: u64 },
    /// A text line longer than 1000 octets with CRLF (550 5.5.2).
    LineTooLong,
    /// A bare CR or LF in the header section (550 5.6.0; RFC 5322 §2.2, RFC 5321 §2.3.8).
    BareNewlineInHeader,
    /// A bare CR or LF in the body where they are forbidden (550 5.5.2).
    BareNewline,
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

/// Where line ends are tracked: the header section ends at the first empty line.
#[derive(Debug, Clone, Copy, Default)]
struct LineEnds {
    /// Still in the header section (no empty line yet).
    in_body: bool,
    bare_in_header: bool,
    bare_in_body: bool,
    forbid_bare_newline: bool,
}

impl LineEnds {
    fn bare(&mut self) {
        if self.in_body {
            self.bare_in_body = true;
        } else {
            self.bare_in_header = true;
        }
    }

    /// A real CRLF ended a line of `len` octets.
    fn eol(&mut self, len: usize) {
        if len == 0 {
            self.in_body = true;
        }
    }

    fn verdict(&self) -> Result<(), DataError> {
        if self.bare_in_header {
            Err(DataError::BareNewlineInHeader)
        } else if self.bare_in_body && self.forbid_bare_newline {
            Err(DataError::BareNewline)
        } else {
            Ok(())
        }
    }
}

pub struct DataDecoder<S = Vec<u8>> {
    st: St,
    out: S,
    max_size: usize,
    size: u64,
    line_len: usize,
    long_line: bool,
    ends: LineEnds,
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
            ends: LineEnds::default(),
            done: false,
        }
    }

    /// Refuse (rather than normalise) a bare CR or LF in the body too (port 25).
    pub fn forbid_bare_newline(mut self, forbid: bool) -> DataDecoder<S> {
        self.ends.forbid_bare_newline = forbid;
        self
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
            self.ends.verdict()?;
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

    /// A real CRLF: the next byte is at a line start where a dot means something.
    fn eol(&mut self) {
        self.emit(b"\r\n");
        self.ends.eol(self.line_len);
        self.line_len = 0;
        self.st = St::LineStart;
    }

    /// A bare CR or LF: stored as CRLF, recorded, and what follows is never a line start.
    fn bare(&mut self) {
        self.emit(b"\r\n");
        self.ends.bare();
        self.line_len = 0;
        self.st = St::Mid;
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
                // The first CR was bare; this one may start a CRLF.
                b'\r' => {
                    self.bare();
                    self.st = St::Cr;
                }
                _ => {
                    self.bare();
                    self.mid(b);
                }
            },
            St::Dot => match b {
                b'\r' => self.st = St::DotCr,
                // `CRLF . LF`: a lone dot ended by a bare LF is content, never the end.
                b'\n' => {
                    self.content(b'.');
                    self.bare();
                }
                _ => self.mid(b),
            },
            St::DotCr => {
                if b == b'\n' {
                    return true;
                }
                // `CRLF . CR x`: the CR was bare, the dot is content.
                self.content(b'.');
                self.bare();
                self.mid(b);
            }
        }
        false
    }

    fn mid(&mut self, b: u8) {
        match b {
            b'\r' => self.st = St::Cr,
            b'\n' => self.bare(),
            _ => {
                self.content(b);
                self.st = St::Mid;
            }
        }
    }
}

/// Collects BDAT chunks (RFC 3030): raw octets, no dot-stuffing, bounded like DATA, with the
/// same line-ending rules (a CR at the end of one chunk may pair with a LF in the next).
pub struct BdatCollector<S = Vec<u8>> {
    out: S,
    max_size: u64,
    size: u64,
    pending_cr: bool,
    line_len: usize,
    ends: LineEnds,
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
            pending_cr: false,
            line_len: 0,
            ends: LineEnds::default(),
        }
    }

    /// Refuse (rather than normalise) a bare CR or LF in the body too (port 25).
    pub fn forbid_bare_newline(mut self, forbid: bool) -> BdatCollector<S> {
        self.ends.forbid_bare_newline = forbid;
        self
    }

    fn emit(&mut self, bytes: &[u8]) {
        self.size += bytes.len() as u64;
        if self.size <= self.max_size {
            self.out.put(bytes);
        }
    }

    pub fn push(&mut self, chunk: &[u8]) {
        // Plain octets are copied in runs; `run` is where the current run starts.
        let mut run = 0;
        for (i, &b) in chunk.iter().enumerate() {
            if self.pending_cr {
                self.pending_cr = false;
                if b == b'\n' {
                    self.ends.eol(self.line_len);
                    self.line_len = 0;
                    self.emit(b"\r\n");
                    run = i + 1;
                    continue;
                }
                self.ends.bare();
                self.line_len = 0;
                self.emit(b"\r\n");
            }
            match b {
                b'\r' => {
                    self.emit(&chunk[run..i]);
                    self.pending_cr = true;
                    run = i + 1;
                }
                b'\n' => {
                    self.emit(&chunk[run..i]);
                    self.ends.bare();
                    self.line_len = 0;
                    self.emit(b"\r\n");
                    run = i + 1;
                }
                _ => self.line_len += 1,
            }
        }
        self.emit(&chunk[run..]);
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn too_big(&self) -> bool {
        self.size > self.max_size
    }

    pub fn finish(mut self) -> Result<S, DataError> {
        if self.pending_cr {
            self.pending_cr = false;
            self.ends.bare();
            self.emit(b"\r\n");
        }
        if self.too_big() {
            Err(DataError::TooBig { size: self.size })
        } else {
            self.ends.verdict()?;
            Ok(self.out)
        }
    }
}

#[cfg(test)]
mod tests;
