//! A message as its final file gets it: header lines we add (Return-Path, Received,
//! Authentication-Results, DKIM-Signature, Message-ID/Date on submission) in front of the
//! spooled message, without the header fields we remove (forged Authentication-Results,
//! RFC 8601 §5). Nothing here copies the body: `write_to` streams it from the spool.

use std::io::{self, Write};
use std::ops::Range;
use std::sync::Arc;

use super::SpooledMessage;

#[derive(Debug, Clone)]
pub struct Outgoing {
    prefix: Vec<u8>,
    message: Arc<SpooledMessage>,
    /// Octet ranges of `message` left out: sorted, not overlapping.
    omit: Vec<Range<usize>>,
}

impl Outgoing {
    pub fn new(message: Arc<SpooledMessage>) -> Outgoing {
        Outgoing {
            prefix: Vec::new(),
            message,
            omit: Vec::new(),
        }
    }

    /// Leave these ranges of the message out (sorted, not overlapping; as `strip` finds
    /// them in the header section).
    pub fn omitting(mut self, omit: Vec<Range<usize>>) -> Outgoing {
        debug_assert!(omit.windows(2).all(|w| w[0].end <= w[1].start));
        debug_assert!(omit.iter().all(|r| r.end <= self.message.len()));
        self.omit = omit;
        self
    }

    /// Put `lines` (whole CRLF-terminated header fields) in front of everything so far.
    pub fn prepend(&mut self, lines: &[u8]) {
        let mut p = Vec::with_capacity(lines.len() + self.prefix.len());
        p.extend_from_slice(lines);
        p.extend_from_slice(&self.prefix);
        self.prefix = p;
    }

    /// A copy with `lines` in front.
    pub fn with_prepended(&self, lines: &[u8]) -> Outgoing {
        let mut o = self.clone();
        o.prepend(lines);
        o
    }

    /// The ranges of the message that are kept.
    fn kept(&self) -> Vec<Range<usize>> {
        let mut out = Vec::with_capacity(self.omit.len() + 1);
        let mut at = 0;
        for r in &self.omit {
            if r.start > at {
                out.push(at..r.start);
            }
            at = at.max(r.end);
        }
        if at < self.message.len() {
            out.push(at..self.message.len());
        }
        out
    }

    pub fn len(&self) -> usize {
        self.prefix.len() + self.kept().iter().map(|r| r.len()).sum::<usize>()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The message in order, as slices (of the mapped spool file for a large body): for the
    /// DKIM signer, which reads it once.
    pub fn parts(&self) -> Vec<&[u8]> {
        let bytes = self.message.as_bytes();
        let mut out = vec![&self.prefix[..]];
        out.extend(self.kept().into_iter().map(|r| &bytes[r]));
        out
    }

    /// Write the whole message to `out` (the temp file of a durable write).
    pub fn write_to<W: Write + ?Sized>(&self, out: &mut W) -> io::Result<()> {
        out.write_all(&self.prefix)?;
        for r in self.kept() {
            self.message.copy_range_to(r, out)?;
        }
        Ok(())
    }

    /// The whole message in memory (small messages, tests).
    pub fn to_vec(&self) -> Vec<u8> {
        self.parts().concat()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_and_omitted_ranges() {
        let m = Arc::new(SpooledMessage::from(
            b"A: 1\r\nB: 2\r\nC: 3\r\n\r\nbody".to_vec(),
        ));
        let mut o = Outgoing::new(m).omitting(vec![Range { start: 6, end: 12 }]);
        o.prepend(b"X: 0\r\n");
        let o2 = o.with_prepended(b"R: p\r\n");
        assert_eq!(o.to_vec(), b"X: 0\r\nA: 1\r\nC: 3\r\n\r\nbody");
        assert_eq!(o.len(), o.to_vec().len());
        assert_eq!(o2.to_vec(), b"R: p\r\nX: 0\r\nA: 1\r\nC: 3\r\n\r\nbody");
    }

    #[test]
    fn omitting_the_start_and_adjacent_ranges() {
        let m = Arc::new(SpooledMessage::from(
            b"A: 1\r\nB: 2\r\nC: 3\r\n\r\nx".to_vec(),
        ));
        let o = Outgoing::new(m).omitting(vec![0..6, 6..12]);
        assert_eq!(o.to_vec(), b"C: 3\r\n\r\nx");
        assert_eq!(o.len(), 9);
    }
}
