//! COMPRESS=DEFLATE (RFC 4978): raw deflate (RFC 1951, no zlib header) in both directions
//! once the tagged OK is out. Sans-IO: the listener (`mod.rs`) passes bytes through. Each
//! reply is flushed with a sync flush so the client can decode it at once (§4). Inflating is
//! bounded per read, so a small "zip bomb" cannot make the session buffer grow unchecked.
//! Compression starts right after the CRLF of the COMPRESS command (§3): bytes a client
//! pipelined behind it, already read from the socket, are inflated like the rest (`mod.rs`).

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// At most this much plain text out of one read from the socket: more is an attack (deflate
/// expands at most ~1032:1, and the listener reads 64 KiB at a time).
pub const MAX_INFLATE_PER_READ: usize = 8 * 1024 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CompressError {
    #[error("invalid deflate data from the client")]
    Corrupt,
    #[error("compressed input expands beyond the limit")]
    TooLarge,
}

pub struct Deflate {
    out: Compress,
    inp: Decompress,
}

impl Default for Deflate {
    fn default() -> Self {
        Self::new()
    }
}

impl Deflate {
    pub fn new() -> Deflate {
        Deflate {
            out: Compress::new(Compression::new(6), false),
            inp: Decompress::new(false),
        }
    }

    /// Compress a reply, ending with a sync flush so it is decodable on its own.
    pub fn deflate(&mut self, data: &[u8]) -> Vec<u8> {
        let mut out: Vec<u8> = Vec::with_capacity(data.len() / 2 + 64);
        let mut rest = data;
        loop {
            out.reserve(rest.len() + 1024);
            let before = self.out.total_in();
            // Compressing into memory cannot fail for valid state; a failure here would be a
            // bug in the library, and losing a reply would desync the client anyway.
            let _ = self.out.compress_vec(rest, &mut out, FlushCompress::Sync);
            rest = &rest[(self.out.total_in() - before) as usize..];
            // Done when all input is taken and the flush did not run out of room.
            if rest.is_empty() && out.len() < out.capacity() {
                return out;
            }
        }
    }

    /// Inflate bytes read from the client.
    pub fn inflate(&mut self, data: &[u8]) -> Result<Vec<u8>, CompressError> {
        let mut out: Vec<u8> = Vec::with_capacity(data.len() * 4 + 64);
        let mut rest = data;
        loop {
            if out.len() > MAX_INFLATE_PER_READ {
                return Err(CompressError::TooLarge);
            }
            out.reserve(rest.len() * 2 + 4096);
            let before = self.inp.total_in();
            let st = self
                .inp
                .decompress_vec(rest, &mut out, FlushDecompress::None)
                .map_err(|_| CompressError::Corrupt)?;
            rest = &rest[(self.inp.total_in() - before) as usize..];
            match st {
                // The client ended its stream: nothing more may follow.
                Status::StreamEnd if !rest.is_empty() => return Err(CompressError::Corrupt),
                Status::StreamEnd => return Ok(out),
                _ if rest.is_empty() && out.len() < out.capacity() => return Ok(out),
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_in_pieces_with_sync_flush() {
        let mut server = Deflate::new();
        let mut client = Deflate::new();
        for msg in [
            &b"a1 NOOP\r\n"[..],
            b"",
            &vec![b'x'; 300_000],
            b"* 1 EXISTS\r\n",
        ] {
            let z = server.deflate(msg);
            // Each piece decodes on its own (sync flush), even fed a byte at a time.
            let mut got = Vec::new();
            for b in z.chunks(7) {
                got.extend(client.inflate(b).unwrap());
            }
            assert_eq!(got, msg);
        }
    }

    #[test]
    fn garbage_and_bombs_are_refused() {
        let mut d = Deflate::new();
        assert_eq!(d.inflate(&[0xff; 64]), Err(CompressError::Corrupt));
        let mut server = Deflate::new();
        let bomb = server.deflate(&vec![0u8; MAX_INFLATE_PER_READ + 1_000_000]);
        assert!(bomb.len() < 64 * 1024, "{}", bomb.len());
        assert_eq!(Deflate::new().inflate(&bomb), Err(CompressError::TooLarge));
    }
}
