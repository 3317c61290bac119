use super::*;

fn decode(input: &[u8], max: u64) -> (usize, bool, Result<Vec<u8>, DataError>) {
    let mut d = DataDecoder::new(max);
    let (n, done) = d.feed(input);
    (n, done, d.finish())
}

fn decode_strict(input: &[u8]) -> (usize, bool, Result<Vec<u8>, DataError>) {
    let mut d = DataDecoder::new(1 << 20).forbid_bare_newline(true);
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
    let input = b"S: 1\r\n\r\na\r\n..b\r\nc\n.\nd\r\n.\r\n";
    let mut d = DataDecoder::new(1000);
    let mut done = false;
    for b in input.iter() {
        let (n, dn) = d.feed(std::slice::from_ref(b));
        assert_eq!(n, 1);
        done = dn;
    }
    assert!(done);
    assert_eq!(
        d.finish().unwrap(),
        b"S: 1\r\n\r\na\r\n.b\r\nc\r\n.\r\nd\r\n"
    );
}

/// Every smuggling shape of issue 12: content, never the end of the message.
const SMUGGLE: [&[u8]; 8] = [
    b"\n.\r\n", // <LF>.<CR><LF>: the one that ended DATA before
    b"\r\n.\n", // <CR><LF>.<LF>
    b"\n.\n",   // <LF>.<LF>
    b"\r.\r\n", // <CR>.<CR><LF>
    b"\r\n.\r", // <CR><LF>.<CR>
    b"\r.\r",   // <CR>.<CR>
    b"\r.\n",   // <CR>.<LF>
    b"\n.\r",   // <LF>.<CR>
];

#[test]
fn no_smuggling_variant_ends_data() {
    for v in SMUGGLE {
        let mut input = b"Subject: x\r\n\r\nbody".to_vec();
        input.extend_from_slice(v);
        input.extend_from_slice(b"MAIL FROM:<evil@x.test>\r\n");
        let (n, done, _) = decode(&input, 1 << 20);
        assert!(!done, "{v:?} ended DATA");
        assert_eq!(n, input.len());
        // The real end follows; on port 25 the message is refused, on submission normalised.
        input.extend_from_slice(b".\r\n");
        let (n, done, r) = decode_strict(&input);
        assert!(done && n == input.len(), "{v:?}");
        assert_eq!(r, Err(DataError::BareNewline), "{v:?}");
        let (_, done, r) = decode(&input, 1 << 20);
        assert!(done);
        let m = r.unwrap();
        assert!(m.ends_with(b"MAIL FROM:<evil@x.test>\r\n"), "{v:?}");
        assert_canonical(&m);
    }
}

#[test]
fn bare_lf_is_normalised_on_submission_and_refused_on_port_25() {
    let (_, _, r) = decode(b"S: x\r\n\r\na\nb\r\n.\r\n", 1000);
    assert_eq!(r.unwrap(), b"S: x\r\n\r\na\r\nb\r\n");
    let (_, _, r) = decode(b"S: x\r\n\r\na\rb\r\n.\r\n", 1000);
    assert_eq!(r.unwrap(), b"S: x\r\n\r\na\r\nb\r\n");
    let (_, _, r) = decode_strict(b"S: x\r\n\r\na\nb\r\n.\r\n");
    assert_eq!(r, Err(DataError::BareNewline));
    let (_, _, r) = decode_strict(b"S: x\r\n\r\na\rb\r\n.\r\n");
    assert_eq!(r, Err(DataError::BareNewline));
    let (_, _, r) = decode_strict(b"S: x\r\n\r\na\r\n.\r\n");
    assert!(r.is_ok());
}

#[test]
fn bare_cr_or_lf_in_the_header_section_is_always_refused() {
    // Issue 12 item 5: one From to one reader, two fields to another.
    for m in [
        &b"From: bob@example.test\rX-A: alice@example.test\r\n\r\nhi\r\n.\r\n"[..],
        b"From: bob@example.test\nX-A: alice@example.test\r\n\r\nhi\r\n.\r\n",
        b"Subject: x\r\n.\nFrom: a@b\r\n\r\n.\r\n",
        b"Subject: x\n\r\nbody\r\n.\r\n",
    ] {
        assert_eq!(
            decode(m, 1000).2,
            Err(DataError::BareNewlineInHeader),
            "{m:?}"
        );
        assert_eq!(decode_strict(m).2, Err(DataError::BareNewlineInHeader));
    }
    // After the empty line it is body.
    let (_, _, r) = decode(b"From: a@b\r\n\r\nx\ry\r\n.\r\n", 1000);
    assert!(r.is_ok());
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

fn bdat(chunks: &[&[u8]], strict: bool) -> Result<Vec<u8>, DataError> {
    let mut c = BdatCollector::new(1 << 20).forbid_bare_newline(strict);
    for ch in chunks {
        c.push(ch);
    }
    c.finish()
}

#[test]
fn bdat_line_ends_follow_the_data_rules() {
    // A CRLF split across chunks is a CRLF.
    assert_eq!(
        bdat(&[b"S: x\r", b"\n\r\nbody\r\n"], true).unwrap(),
        b"S: x\r\n\r\nbody\r\n"
    );
    // Bare LF / CR in the body: refused on port 25, normalised on submission.
    assert_eq!(
        bdat(&[b"S: x\r\n\r\na\n.\r\nb"], true),
        Err(DataError::BareNewline)
    );
    assert_eq!(
        bdat(&[b"S: x\r\n\r\na\n.\r\nb\r"], false).unwrap(),
        b"S: x\r\n\r\na\r\n.\r\nb\r\n"
    );
    assert_eq!(
        bdat(&[b"S: x\r\n\r\na\r", b"b"], false).unwrap(),
        b"S: x\r\n\r\na\r\nb"
    );
    // In the header section: always refused.
    assert_eq!(
        bdat(&[b"From: b@x\rX: a@y\r\n\r\n"], false),
        Err(DataError::BareNewlineInHeader)
    );
    assert_eq!(
        bdat(&[b"From: b@x\r", b"X: a@y\r\n\r\n"], false),
        Err(DataError::BareNewlineInHeader)
    );
}

fn assert_canonical(m: &[u8]) {
    for (i, &c) in m.iter().enumerate() {
        if c == b'\r' {
            assert_eq!(m.get(i + 1), Some(&b'\n'), "bare CR at {i} in {m:?}");
        }
        if c == b'\n' {
            assert!(i > 0 && m[i - 1] == b'\r', "bare LF at {i} in {m:?}");
        }
    }
}

/// A small deterministic generator (xorshift64*): no dependency, same soup on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// Bytes weighted towards the ones that matter: CR, LF, dot.
    fn soup(&mut self, max_len: usize) -> Vec<u8> {
        let len = self.below(max_len + 1);
        (0..len)
            .map(|_| match self.below(8) {
                0 | 1 => b'\r',
                2 | 3 => b'\n',
                4 | 5 => b'.',
                6 => b'a',
                _ => self.next() as u8,
            })
            .collect()
    }
}

/// Property (issue 12): on random byte soup the decoder stops exactly after the first
/// `CRLF . CRLF` whose CRLF is real (DATA starts after a virtual CRLF), whatever the reads
/// look like, and its output is canonical CRLF.
#[test]
fn random_soup_ends_only_at_a_real_crlf_dot_crlf() {
    let mut rng = Rng(0x005E_ED0F_5A1D_2026);
    for _ in 0..20_000 {
        let input = rng.soup(40);
        let mut framed = b"\r\n".to_vec();
        framed.extend_from_slice(&input);
        let expect = framed
            .windows(5)
            .position(|w| w == b"\r\n.\r\n")
            .map(|p| p + 3);
        // Fed whole, and fed in random pieces.
        let mut whole = DataDecoder::new(1 << 20);
        let (n, done) = whole.feed(&input);
        assert_eq!(done.then_some(n), expect, "{input:?}");
        let mut parts = DataDecoder::new(1 << 20);
        let (mut used, mut pdone, mut rest) = (0, false, &input[..]);
        while !rest.is_empty() && !pdone {
            let k = 1 + rng.below(rest.len());
            let (n, d) = parts.feed(&rest[..k]);
            used += n;
            pdone = d;
            rest = &rest[k..];
        }
        assert_eq!((used, pdone), (n, done), "{input:?}");
        let (a, b) = (whole.out.clone(), parts.out.clone());
        assert_eq!(a, b, "{input:?}");
        assert_canonical(&a);
    }
}

/// Property: a dot-stuffed encoding (the outbound encoder) decodes back to the canonical
/// message, consuming exactly the payload.
#[test]
fn random_messages_round_trip_through_dot_stuffing() {
    let mut rng = Rng(0x0D07_5707_F00D_0001);
    for _ in 0..20_000 {
        let mut message = b"Subject: r\r\n\r\n".to_vec();
        message.extend(rng.soup(60));
        let payload = crate::outbound::client::data_payload(&message);
        let mut d = DataDecoder::new(1 << 20).forbid_bare_newline(true);
        let (n, done) = d.feed(&payload);
        assert!(done && n == payload.len(), "{message:?}");
        // The canonical form: every CR, LF or CRLF is one CRLF, and it ends with CRLF.
        let mut canon = Vec::new();
        let mut i = 0;
        while i < message.len() {
            match message[i] {
                b'\r' if message.get(i + 1) == Some(&b'\n') => {
                    canon.extend_from_slice(b"\r\n");
                    i += 1;
                }
                b'\r' | b'\n' => canon.extend_from_slice(b"\r\n"),
                c => canon.push(c),
            }
            i += 1;
        }
        if !canon.ends_with(b"\r\n") {
            canon.extend_from_slice(b"\r\n");
        }
        assert_eq!(d.finish().unwrap(), canon, "{message:?}");
    }
}
