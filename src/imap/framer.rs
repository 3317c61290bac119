//! Command framing: imap-codec's Fragmentizer, fed one fragment at a time, with large APPEND
//! literals streamed to the spool instead of into the command buffer.
//!
//! The Fragmentizer keeps every byte of a command, literals included, in one buffer (and the
//! session copies it once more), so an APPEND of 40 MiB would cost 80 MiB per connection. Here
//! input is held back and given to the Fragmentizer only up to the end of the current line or
//! literal, so when a line announces an APPEND literal over `spool::THRESHOLD` no literal byte
//! is in the Fragmentizer yet. The session then calls `take_over`: the command so far is
//! taken out, the literal's octets go to a `SpoolWriter` as they arrive, and once they are
//! complete the command is replayed into the Fragmentizer with an empty literal (`{0}`) in
//! place of the big one, followed by the rest of the client's input. The Fragmentizer thus
//! parses the rest of the command as always (further literals included), and the session
//! decodes a small APPEND whose message is the spooled body.
//!
//! While the replayed bytes are parsed, `replaying` is true: the client already sent them,
//! so no continuation request (`+`) may be sent for their literals.

use std::io;

use imap_codec::fragmentizer::{FragmentInfo, Fragmentizer};

use crate::spool::{Spool, SpoolWriter, SpooledMessage};

/// What the Fragmentizer is parsing next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Line,
    Literal(u32),
}

/// An APPEND literal on its way to the spool.
struct Streaming {
    /// The command up to the announcement, with `{0}` (or `~{0}`) for the literal.
    head: Vec<u8>,
    left: u64,
    writer: SpoolWriter,
}

/// Progress of a streamed literal.
pub enum Streamed {
    /// Waiting for more of the literal.
    NeedInput,
    /// The literal is complete (or could not be spooled); the command goes on.
    Done(io::Result<SpooledMessage>),
}

pub struct Framer {
    frag: Fragmentizer,
    max_message: u32,
    /// Input not yet given to the Fragmentizer, from `pos` on.
    held: Vec<u8>,
    pos: usize,
    expect: Expect,
    streaming: Option<Streaming>,
    replaying: bool,
}

impl Framer {
    pub fn new(max_message: u32) -> Framer {
        Framer {
            frag: Fragmentizer::new(max_message),
            max_message,
            held: Vec::new(),
            pos: 0,
            expect: Expect::Line,
            streaming: None,
            replaying: false,
        }
    }

    /// Start again with nothing buffered (after STARTTLS: what came in the clear is dropped).
    pub fn reset(&mut self) {
        *self = Framer::new(self.max_message);
    }

    /// The input received but not yet given to the parser: what the client sent after the
    /// command just handled (after COMPRESS it is deflated data, RFC 4978 §3).
    pub fn take_unread(&mut self) -> Vec<u8> {
        let rest = self.held.split_off(self.pos);
        self.held.clear();
        self.pos = 0;
        rest
    }

    pub fn input(&mut self, bytes: &[u8]) {
        if self.pos > 0 && self.pos == self.held.len() {
            self.held.clear();
            self.pos = 0;
        }
        self.held.extend_from_slice(bytes);
    }

    fn consume(&mut self, n: usize) {
        self.pos += n;
        if self.pos == self.held.len() {
            self.held.clear();
            self.pos = 0;
        } else if self.pos > 64 * 1024 && self.pos > self.held.len() / 2 {
            self.held.drain(..self.pos);
            self.pos = 0;
        }
    }

    /// The next fragment, feeding the Fragmentizer from the held input as it asks for more.
    pub fn progress(&mut self) -> Option<FragmentInfo> {
        loop {
            if let Some(fi) = self.frag.progress() {
                self.expect = match fi {
                    FragmentInfo::Line {
                        announcement: Some(a),
                        ..
                    } => Expect::Literal(a.length),
                    _ => Expect::Line,
                };
                return Some(fi);
            }
            if !self.feed() {
                return None;
            }
        }
    }

    /// Give the Fragmentizer the rest of the current line or literal; false if nothing is
    /// held.
    fn feed(&mut self) -> bool {
        let pending = &self.held[self.pos..];
        if pending.is_empty() {
            return false;
        }
        let n = match self.expect {
            Expect::Line => pending
                .iter()
                .position(|&b| b == b'\n')
                .map_or(pending.len(), |p| p + 1),
            Expect::Literal(left) => pending.len().min(left as usize),
        };
        self.frag.enqueue_bytes(&pending[..n]);
        if let Expect::Literal(left) = &mut self.expect {
            *left -= n as u32;
        }
        self.consume(n);
        self.replaying = false;
        true
    }

    /// Are the fragments now parsed ones the client sent before (replayed after a streamed
    /// literal), so that their literals need no continuation request?
    pub fn replaying(&self) -> bool {
        self.replaying
    }

    /// Should the literal just announced (`length` octets) be streamed to the spool? Only
    /// an APPEND's, and only when it is large.
    pub fn should_stream(&self, length: u32) -> bool {
        if length as usize <= crate::spool::THRESHOLD {
            return false;
        }
        let line = self.frag.message_bytes();
        let mut words = line.split(|&b| b == b' ');
        words.next();
        words
            .next()
            .is_some_and(|w| w.eq_ignore_ascii_case(b"APPEND"))
    }

    /// Stream the literal just announced (`length` octets) to `spool` instead of buffering it.
    pub fn take_over(&mut self, length: u32, spool: &Spool) {
        let head = empty_literal(self.frag.message_bytes());
        self.frag.skip_message();
        self.expect = Expect::Line;
        self.streaming = Some(Streaming {
            head,
            left: u64::from(length),
            writer: spool.writer(),
        });
    }

    /// Move held input into a streamed literal. None when no literal is being streamed.
    pub fn pump(&mut self) -> Option<Streamed> {
        let s = self.streaming.as_mut()?;
        let pending = &self.held[self.pos..];
        let n = pending
            .len()
            .min(usize::try_from(s.left).unwrap_or(usize::MAX));
        s.writer.write(&pending[..n]);
        s.left -= n as u64;
        self.consume(n);
        let s = self.streaming.as_mut().expect("checked above");
        if s.left > 0 {
            return Some(Streamed::NeedInput);
        }
        let s = self.streaming.take().expect("checked above");
        self.frag.enqueue_bytes(&s.head);
        self.replaying = true;
        Some(Streamed::Done(s.writer.finish()))
    }

    pub fn skip_message(&mut self) {
        self.frag.skip_message();
        self.expect = Expect::Line;
    }

    pub fn is_message_complete(&self) -> bool {
        self.frag.is_message_complete()
    }

    pub fn is_max_message_size_exceeded(&self) -> bool {
        self.frag.is_max_message_size_exceeded()
    }

    pub fn message_bytes(&self) -> &[u8] {
        self.frag.message_bytes()
    }

    pub fn fragment_bytes(&self, fi: FragmentInfo) -> &[u8] {
        self.frag.fragment_bytes(fi)
    }

    pub fn decode_tag(&self) -> Option<imap_codec::imap_types::core::Tag<'_>> {
        self.frag.decode_tag()
    }
}

/// `line` (ending in a literal announcement `{N}`, `{N+}`, `~{N}`... and CRLF or LF) with the
/// announcement replaced by `{0}` of the same kind, so the command parses with an empty
/// literal.
fn empty_literal(line: &[u8]) -> Vec<u8> {
    let open = line.iter().rposition(|&b| b == b'{').unwrap_or(line.len());
    let close = line[open..]
        .iter()
        .position(|&b| b == b'}')
        .map_or(line.len(), |p| open + p);
    let plus = line[open..close].ends_with(b"+");
    let mut out = line[..open].to_vec();
    out.extend_from_slice(if plus { b"{0+}" } else { b"{0}" });
    out.extend_from_slice(&line[(close + 1).min(line.len())..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run the framer like the session does; returns (commands, streamed bodies, continuations).
    fn run(chunks: &[&[u8]], spool: &Spool) -> (Vec<Vec<u8>>, Vec<Vec<u8>>, usize) {
        let mut f = Framer::new(1 << 20);
        let (mut cmds, mut bodies, mut plus) = (Vec::new(), Vec::new(), 0);
        for c in chunks {
            f.input(c);
            loop {
                match f.pump() {
                    Some(Streamed::NeedInput) => break,
                    Some(Streamed::Done(r)) => {
                        bodies.push(r.unwrap().to_vec());
                        continue;
                    }
                    None => {}
                }
                let Some(fi) = f.progress() else { break };
                if let FragmentInfo::Line {
                    announcement: Some(a),
                    ..
                } = fi
                {
                    if f.replaying() {
                        continue;
                    }
                    if f.should_stream(a.length) {
                        f.take_over(a.length, spool);
                    }
                    plus += 1;
                    continue;
                }
                if f.is_message_complete() {
                    cmds.push(f.message_bytes().to_vec());
                }
            }
        }
        (cmds, bodies, plus)
    }

    #[test]
    fn large_append_literal_is_streamed_and_the_command_replayed() {
        let d = tempfile::tempdir().unwrap();
        let spool = Spool::open(d.path()).unwrap();
        let body = vec![b'x'; crate::spool::THRESHOLD + 5];
        let mut input = format!("a APPEND INBOX (\\Seen) {{{}}}\r\n", body.len()).into_bytes();
        input.extend_from_slice(&body);
        input.extend_from_slice(b"\r\nb NOOP\r\n");
        // Byte-sized pieces around the edges, big ones in the middle.
        let (first, rest) = input.split_at(20);
        let (mid, last) = rest.split_at(rest.len() - 15);
        let mut chunks: Vec<&[u8]> = first.chunks(1).collect();
        chunks.extend(mid.chunks(70_000));
        chunks.extend(last.chunks(1));
        let (cmds, bodies, plus) = run(&chunks, &spool);
        assert_eq!(
            cmds,
            vec![
                b"a APPEND INBOX (\\Seen) {0}\r\n\r\n".to_vec(),
                b"b NOOP\r\n".to_vec()
            ]
        );
        assert_eq!(bodies, vec![body]);
        assert_eq!(plus, 1, "one continuation, for the real literal");
    }

    #[test]
    fn small_literals_and_other_commands_are_framed_as_before() {
        let spool = Spool::memory();
        let big = vec![b'y'; crate::spool::THRESHOLD + 1];
        let mut input = b"a LOGIN {1}\r\nu {2+}\r\npw\r\nb APPEND INBOX {3}\r\nabc\r\n".to_vec();
        // A large literal that is not an APPEND's goes through the Fragmentizer.
        input.extend_from_slice(format!("c SEARCH TEXT {{{}+}}\r\n", big.len()).as_bytes());
        input.extend_from_slice(&big);
        input.extend_from_slice(b"\r\n");
        let (cmds, bodies, plus) = run(&[&input], &spool);
        assert!(bodies.is_empty());
        assert_eq!(plus, 4);
        assert_eq!(cmds.len(), 3);
        assert_eq!(cmds[0], b"a LOGIN {1}\r\nu {2+}\r\npw\r\n");
        assert_eq!(cmds[1], b"b APPEND INBOX {3}\r\nabc\r\n");
        assert!(cmds[2].starts_with(b"c SEARCH TEXT {262145+}\r\n"));
        assert_eq!(cmds[2].len(), big.len() + 27);
    }

    #[test]
    fn literals_after_the_streamed_one_still_frame() {
        // MULTIAPPEND-like input (not advertised): the next literal is framed normally, so
        // its octets are never read as commands.
        let spool = Spool::memory();
        let body = vec![b'z'; crate::spool::THRESHOLD + 1];
        let mut input = format!("a APPEND INBOX {{{}+}}\r\n", body.len()).into_bytes();
        input.extend_from_slice(&body);
        input.extend_from_slice(b" {10+}\r\nb LOGOUT\r\n\r\n");
        let (cmds, bodies, _) = run(&[&input], &spool);
        assert_eq!(bodies.len(), 1);
        assert_eq!(
            cmds,
            vec![b"a APPEND INBOX {0+}\r\n {10+}\r\nb LOGOUT\r\n\r\n".to_vec()]
        );
    }

    #[test]
    fn empty_literal_keeps_the_kind() {
        assert_eq!(
            empty_literal(b"a APPEND x {123}\r\n"),
            b"a APPEND x {0}\r\n"
        );
        assert_eq!(
            empty_literal(b"a APPEND x {123+}\r\n"),
            b"a APPEND x {0+}\r\n"
        );
        assert_eq!(
            empty_literal(b"a APPEND x UTF8 (~{5}\n"),
            b"a APPEND x UTF8 (~{0}\n"
        );
    }
}
