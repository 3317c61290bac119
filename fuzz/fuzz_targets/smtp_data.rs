//! The DATA decoder must never panic, must keep memory bounded by the size limit, and must
//! give the same result however the input is split into reads.
#![no_main]

use libfuzzer_sys::fuzz_target;
use postern::smtp::data::DataDecoder;

fuzz_target!(|input: (u16, u16, &[u8])| {
    let (max, split, bytes) = input;
    let max = u64::from(max) + 1;
    let mut whole = DataDecoder::new(max);
    let (n1, done1) = whole.feed(bytes);
    let split = usize::from(split) % (bytes.len() + 1);
    let mut parts = DataDecoder::new(max);
    let (a, d) = parts.feed(&bytes[..split]);
    let (n2, done2) = if d {
        (a, true)
    } else {
        let (b, d2) = parts.feed(&bytes[split..]);
        (a + b, d2)
    };
    assert_eq!((n1, done1), (n2, done2));
    let r1 = whole.finish();
    let r2 = parts.finish();
    if let Ok(m) = &r1 {
        assert!(m.len() as u64 <= max);
        // Canonical: every CR is followed by LF and every LF preceded by CR.
        for (i, &c) in m.iter().enumerate() {
            assert!(c != b'\r' || m.get(i + 1) == Some(&b'\n'));
            assert!(c != b'\n' || (i > 0 && m[i - 1] == b'\r'));
        }
    }
    // It ends only after the first real CRLF.CRLF (the start of DATA counts as after CRLF).
    let mut framed = b"\r\n".to_vec();
    framed.extend_from_slice(bytes);
    let expect = framed
        .windows(5)
        .position(|w| w == b"\r\n.\r\n")
        .map(|p| p + 3);
    assert_eq!(done1.then_some(n1), expect);
    assert_eq!(r1, r2);
});
