//! Sender Rewriting Scheme, SRS0 as in libsrs2 / postsrsd (Shevek's "SRS" paper):
//! `SRS0=HHHH=TT=orig-domain=orig-local@our-domain`.
//!
//! * HHHH: HMAC-SHA1(secret, TT || lower(orig-domain) || lower(orig-local)), URL-safe
//!   base64, first 4 characters. Compared case-insensitively, because some MTAs lower-case local
//!   parts on the way back (libsrs2 does the same).
//! * TT: the day number (unix time / 86400) mod 1024, two base32 characters; addresses
//!   older than 21 days are refused (libsrs2's default maxage).
//!
//! SRS1 is not produced: a sender that is already an SRS address of another domain is
//! wrapped again as SRS0 (its local part carries the inner address intact, so the bounce
//! still unwinds hop by hop). SRS1 addresses at our domain are refused on reverse.
//!
//! Sans-IO except for `Srs::load_or_create`, which reads or creates the secret.

use std::path::Path;

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

const HASH_LEN: usize = 4;
const MAX_AGE_DAYS: u32 = 21;
const TICK_SLOTS: u32 = 1024;
const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const KEY_FILE: &str = "srs.key";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SrsError {
    #[error("not an SRS address")]
    NotSrs,
    #[error("malformed SRS address")]
    Malformed,
    #[error("SRS hash does not verify")]
    BadHash,
    #[error("SRS timestamp expired")]
    Expired,
}

/// The secret and the domain SRS addresses are issued at.
pub struct Srs {
    key: Vec<u8>,
    domain: String,
}

impl std::fmt::Debug for Srs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Srs").field("domain", &self.domain).finish()
    }
}

impl Srs {
    pub fn new(key: &[u8], domain: &str) -> Srs {
        Srs {
            key: key.to_vec(),
            domain: domain.to_ascii_lowercase(),
        }
    }

    /// Read `data_dir/srs.key`, creating 32 random bytes (mode 0600, atomically) on first use.
    pub fn load_or_create(data_dir: &Path, domain: &str) -> std::io::Result<Srs> {
        let path = data_dir.join(KEY_FILE);
        match std::fs::read(&path) {
            Ok(key) if key.len() >= 16 => return Ok(Srs::new(&key, domain)),
            Ok(_) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{} is shorter than 16 bytes", path.display()),
                ));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let mut key = [0u8; 32];
        getrandom_fill(&mut key)?;
        crate::fsutil::write_atomic(&path, &key, 0o600)?;
        Ok(Srs::new(&key, domain))
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Is `address` at our domain (compared case-insensitively)?
    fn is_ours(&self, address: &str) -> bool {
        split(address).is_some_and(|(_, d)| d.eq_ignore_ascii_case(&self.domain))
    }

    /// The envelope sender to use when forwarding mail from `sender`: null stays null, our
    /// own domain stays as is, anything else becomes an SRS0 address at our domain.
    pub fn forward(&self, sender: &str, now_unix: i64) -> String {
        if sender.is_empty() || self.is_ours(sender) {
            return sender.to_string();
        }
        let Some((local, domain)) = split(sender) else {
            return sender.to_string();
        };
        let tt = timestamp(now_unix);
        let hash = self.hash(&tt, domain, local);
        format!("SRS0={hash}={tt}={domain}={local}@{}", self.domain)
    }

    /// The original sender encoded in `address` (an SRS0 address at our domain), after the
    /// hash and the timestamp verify.
    pub fn reverse(&self, address: &str, now_unix: i64) -> Result<String, SrsError> {
        let (local, domain) = split(address).ok_or(SrsError::NotSrs)?;
        if !domain.eq_ignore_ascii_case(&self.domain) || !is_srs(local) {
            return Err(SrsError::NotSrs);
        }
        if !local.as_bytes()[..4].eq_ignore_ascii_case(b"SRS0") {
            // SRS1: we never issue them (see the module comment).
            return Err(SrsError::Malformed);
        }
        // After "SRS0" libsrs2 accepts '=', '+' or '-' as the first separator.
        let rest = &local[5..];
        let mut parts = rest.splitn(4, '=');
        let hash = parts.next().ok_or(SrsError::Malformed)?;
        let tt = parts.next().ok_or(SrsError::Malformed)?;
        let odomain = parts.next().ok_or(SrsError::Malformed)?;
        let olocal = parts.next().ok_or(SrsError::Malformed)?;
        if hash.len() != HASH_LEN || tt.len() != 2 || odomain.is_empty() || olocal.is_empty() {
            return Err(SrsError::Malformed);
        }
        let expect = self.hash(tt, odomain, olocal);
        // Hashes issued before the URL-safe alphabet used '+' and '/' for '-' and '_'.
        let hash = hash.replace('+', "-").replace('/', "_");
        if !expect.eq_ignore_ascii_case(&hash) {
            return Err(SrsError::BadHash);
        }
        let then = decode_timestamp(tt).ok_or(SrsError::Malformed)?;
        let now = day(now_unix);
        // Day numbers wrap every 1024 days; the age is the forward distance.
        let age = (now + TICK_SLOTS - then) % TICK_SLOTS;
        if age > MAX_AGE_DAYS {
            return Err(SrsError::Expired);
        }
        Ok(format!("{olocal}@{odomain}"))
    }

    fn hash(&self, tt: &str, domain: &str, local: &str) -> String {
        let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(&self.key)
            .expect("HMAC accepts keys of any length");
        // Upper-cased timestamp and lower-cased address so a case-folding relay on the
        // way back cannot break the hash (libsrs2 folds case before hashing too).
        mac.update(tt.to_ascii_uppercase().as_bytes());
        mac.update(domain.to_ascii_lowercase().as_bytes());
        mac.update(local.to_ascii_lowercase().as_bytes());
        let digest = mac.finalize().into_bytes();
        // URL-safe base64 ('-', '_'): standard base64's '/' is refused in local parts
        // (accounts::Address), so a bounce to such an address could not come back.
        let b64 = base64::engine::general_purpose::URL_SAFE.encode(digest);
        b64[..HASH_LEN].to_string()
    }
}

/// Does the local part look like an SRS address ("SRS0=", "SRS1+", ...)?
pub fn is_srs(local: &str) -> bool {
    let b = local.as_bytes();
    b.len() > 5
        && (b[..4].eq_ignore_ascii_case(b"SRS0") || b[..4].eq_ignore_ascii_case(b"SRS1"))
        && matches!(b[4], b'=' | b'+' | b'-')
}

/// Split at the last '@' (a quoted local part may contain '@').
fn split(address: &str) -> Option<(&str, &str)> {
    let at = address.rfind('@')?;
    let (l, d) = (&address[..at], &address[at + 1..]);
    (!l.is_empty() && !d.is_empty()).then_some((l, d))
}

fn day(now_unix: i64) -> u32 {
    (now_unix.max(0) / 86400 % TICK_SLOTS as i64) as u32
}

fn timestamp(now_unix: i64) -> String {
    let d = day(now_unix);
    let hi = BASE32[(d >> 5) as usize & 31] as char;
    let lo = BASE32[d as usize & 31] as char;
    format!("{hi}{lo}")
}

fn decode_timestamp(tt: &str) -> Option<u32> {
    let mut v = 0u32;
    for c in tt.bytes() {
        let c = c.to_ascii_uppercase();
        let i = BASE32.iter().position(|&x| x == c)? as u32;
        v = (v << 5) | i;
    }
    Some(v)
}

fn getrandom_fill(buf: &mut [u8]) -> std::io::Result<()> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")?.read_exact(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_764_400_000;

    fn srs() -> Srs {
        Srs::new(b"0123456789abcdef0123456789abcdef", "example.test")
    }

    #[test]
    fn round_trip() {
        let s = srs();
        let f = s.forward("a@sender.test", NOW);
        assert!(f.starts_with("SRS0="), "{f}");
        assert!(f.ends_with("=sender.test=a@example.test"), "{f}");
        assert_eq!(s.reverse(&f, NOW).unwrap(), "a@sender.test");
        assert_eq!(s.reverse(&f, NOW + 20 * 86400).unwrap(), "a@sender.test");
    }

    #[test]
    fn every_srs_address_is_a_valid_recipient() {
        // ~6% of standard-base64 hashes held a '/', which RCPT refuses in a local part.
        let s = srs();
        let mut old_style = 0;
        for i in 0..500 {
            let sender = format!("user{i}@sender.test");
            let f = s.forward(&sender, NOW);
            let hash = &f[5..5 + HASH_LEN];
            assert!(!hash.contains(['/', '+']), "{f}");
            assert!(crate::accounts::Address::parse(&f).is_ok(), "{f}");
            assert_eq!(s.reverse(&f, NOW).unwrap(), sender);
            // An address issued with the standard alphabet still verifies.
            if hash.contains(['-', '_']) {
                old_style += 1;
                let old = format!(
                    "SRS0={}{}",
                    hash.replace('-', "+").replace('_', "/"),
                    &f[5 + HASH_LEN..]
                );
                assert_eq!(s.reverse(&old, NOW).unwrap(), sender, "{old}");
            }
        }
        assert!(old_style > 0);
    }

    #[test]
    fn null_and_own_domain_are_kept() {
        let s = srs();
        assert_eq!(s.forward("", NOW), "");
        assert_eq!(s.forward("me@Example.TEST", NOW), "me@Example.TEST");
    }

    #[test]
    fn tampered_hash_refused() {
        let s = srs();
        let f = s.forward("a@sender.test", NOW);
        let forged = f.replacen("=sender.test=a@", "=evil.test=a@", 1);
        assert_eq!(s.reverse(&forged, NOW), Err(SrsError::BadHash));
        let other = Srs::new(b"another key entirely", "example.test");
        assert_eq!(other.reverse(&f, NOW), Err(SrsError::BadHash));
        assert_eq!(
            s.reverse("SRS0=AAAA=AA=sender.test=a@example.test", NOW),
            Err(SrsError::BadHash)
        );
    }

    #[test]
    fn expired_timestamp_refused() {
        let s = srs();
        let f = s.forward("a@sender.test", NOW);
        assert_eq!(s.reverse(&f, NOW + 22 * 86400), Err(SrsError::Expired));
        // Day numbers wrap at 1024: the age is still computed forward across the wrap.
        let near_wrap = 1023 * 86400;
        let g = s.forward("a@sender.test", near_wrap);
        assert!(s.reverse(&g, near_wrap + 3 * 86400).is_ok());
    }

    #[test]
    fn case_insensitive() {
        let s = srs();
        let f = s.forward("Alice@Sender.test", NOW);
        assert_eq!(s.reverse(&f, NOW).unwrap(), "Alice@Sender.test");
        let lower = f.to_ascii_lowercase();
        assert_eq!(s.reverse(&lower, NOW).unwrap(), "alice@sender.test");
        assert_eq!(
            s.reverse(&f.to_ascii_uppercase(), NOW).unwrap(),
            "ALICE@SENDER.TEST"
        );
    }

    #[test]
    fn addresses_containing_equals() {
        let s = srs();
        let f = s.forward("a=b=c@sender.test", NOW);
        assert_eq!(s.reverse(&f, NOW).unwrap(), "a=b=c@sender.test");
        // An SRS address of another forwarder is wrapped again and unwinds one hop.
        let inner = "SRS0=XyZw=AB=orig.test=u@other.test";
        let g = s.forward(inner, NOW);
        assert_eq!(s.reverse(&g, NOW).unwrap(), inner);
    }

    #[test]
    fn not_srs_or_malformed() {
        let s = srs();
        assert_eq!(s.reverse("user@example.test", NOW), Err(SrsError::NotSrs));
        let f = s.forward("a@sender.test", NOW);
        let elsewhere = f.replace("@example.test", "@other.test");
        assert_eq!(s.reverse(&elsewhere, NOW), Err(SrsError::NotSrs));
        assert_eq!(
            s.reverse("SRS0=AAAA@example.test", NOW),
            Err(SrsError::Malformed)
        );
        assert_eq!(
            s.reverse("SRS1=AAAA=other.test==AAAA=AA=d=l@example.test", NOW),
            Err(SrsError::Malformed)
        );
    }

    #[test]
    fn key_created_once_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("postern-srs-{}", crate::fsutil::unique()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = Srs::load_or_create(&dir, "example.test").unwrap();
        let b = Srs::load_or_create(&dir, "example.test").unwrap();
        assert_eq!(a.key, b.key);
        assert_eq!(a.key.len(), 32);
        let mode = std::fs::metadata(dir.join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
