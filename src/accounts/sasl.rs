//! SASL PLAIN (RFC 4616) and LOGIN (draft-murchison-sasl-login) decoding, shared by SMTP AUTH
//! (RFC 4954) and IMAP AUTHENTICATE (RFC 3501 §6.2.2 / RFC 9051 §6.2.2). Pure functions; each
//! session drives its own exchange and hands the `Credentials` to `accounts::login`.
//!
//! Both protocols are equally strict: a response that is not base64, a PLAIN message that is not
//! exactly `authzid NUL authcid NUL passwd`, or any field that is not UTF-8 (RFC 4616 §2) is
//! `Malformed`. Whether the authzid may differ from the authcid is the login's decision
//! (`login::Logins`), since it needs the canonical names.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Authorization identity; empty when the client did not ask to act as anyone else.
    pub authzid: String,
    /// Authentication identity (the login name) as the client sent it.
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    // Never print the password, not even in a test failure.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("authzid", &self.authzid)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaslError {
    /// The client sent `*` (RFC 4954 §4, RFC 3501 §6.2.2): SMTP 501 5.0.0, IMAP BAD.
    Cancelled,
    /// Not base64, not UTF-8, or not the mechanism's format: SMTP 501 5.5.2, IMAP BAD.
    Malformed,
}

/// Decode one client response line (without CRLF).
pub fn decode_response(line: &str) -> Result<Vec<u8>, SaslError> {
    decode_response_bytes(line.as_bytes())
}

/// `decode_response` for a line that need not be UTF-8 (IMAP continuation).
pub fn decode_response_bytes(line: &[u8]) -> Result<Vec<u8>, SaslError> {
    let line = line.trim_ascii();
    if line == b"*" {
        return Err(SaslError::Cancelled);
    }
    // "=" is an empty initial response (RFC 4954 §4, RFC 4959 §3).
    if line == b"=" {
        return Ok(Vec::new());
    }
    STANDARD.decode(line).map_err(|_| SaslError::Malformed)
}

/// PLAIN: `authzid NUL authcid NUL passwd` (RFC 4616 §2): authcid and passwd non-empty, no
/// NUL inside a field, every field UTF-8.
pub fn parse_plain(raw: &[u8]) -> Result<Credentials, SaslError> {
    let mut parts = raw.split(|&b| b == 0);
    let (Some(z), Some(u), Some(p), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslError::Malformed);
    };
    let s = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| SaslError::Malformed);
    let c = Credentials {
        authzid: s(z)?,
        user: s(u)?,
        password: s(p)?,
    };
    if c.user.is_empty() || c.password.is_empty() {
        return Err(SaslError::Malformed);
    }
    Ok(c)
}

/// One LOGIN field (user name or password): UTF-8 required.
pub fn utf8(raw: Vec<u8>) -> Result<String, SaslError> {
    String::from_utf8(raw).map_err(|_| SaslError::Malformed)
}

/// base64 of a server challenge.
pub fn challenge(text: &str) -> String {
    STANDARD.encode(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_cancel() {
        let raw = decode_response(&STANDARD.encode("\0alice@x\0pw")).unwrap();
        let c = parse_plain(&raw).unwrap();
        assert_eq!((c.user.as_str(), c.password.as_str()), ("alice@x", "pw"));
        assert_eq!(decode_response("*"), Err(SaslError::Cancelled));
        assert_eq!(decode_response_bytes(b" * "), Err(SaslError::Cancelled));
        assert_eq!(decode_response("="), Ok(Vec::new()));
        assert_eq!(decode_response("!!notb64"), Err(SaslError::Malformed));
        assert_eq!(parse_plain(b"nonul"), Err(SaslError::Malformed));
        assert_eq!(parse_plain(b"\0\0pw"), Err(SaslError::Malformed));
        assert_eq!(parse_plain(b"\0bob\0"), Err(SaslError::Malformed));
        assert_eq!(parse_plain(b"\0bob\0p\0w"), Err(SaslError::Malformed));
    }

    #[test]
    fn utf8_is_required_in_every_field() {
        assert_eq!(parse_plain(b"\0b\xffob\0pw"), Err(SaslError::Malformed));
        assert_eq!(parse_plain(b"\0bob\0p\xc3"), Err(SaslError::Malformed));
        assert_eq!(parse_plain(b"\xff\0bob\0pw"), Err(SaslError::Malformed));
        assert_eq!(utf8(b"\xff".to_vec()), Err(SaslError::Malformed));
        let c = parse_plain("bob\0bob\0pässword".as_bytes()).unwrap();
        assert_eq!(c.authzid, "bob");
        assert!(!format!("{c:?}").contains("pässword"));
    }
}
