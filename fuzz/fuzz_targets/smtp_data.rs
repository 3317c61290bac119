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
    }
    assert_eq!(r1, r2);
});
