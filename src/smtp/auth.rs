//! SASL PLAIN (RFC 4616) and LOGIN (draft-murchison-sasl-login) decoding for SMTP AUTH
//! (RFC 4954). Pure functions; the session drives the exchange.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub authzid: String,
    pub user: String,
    pub password: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaslError {
    /// The client sent `*` (RFC 4954 §4): 501 5.0.0.
    Cancelled,
    /// Not base64, not UTF-8, or not the mechanism's format: 501 5.5.2.
    Malformed,
}

/// Decode one client response line (without CRLF).
pub fn decode_response(line: &str) -> Result<Vec<u8>, SaslError> {
    let line = line.trim_end_matches(['\r', '\n']);
    if line == "*" {
        return Err(SaslError::Cancelled);
    }
    // "=" is an empty initial response (RFC 4954 §4).
    if line == "=" {
        return Ok(Vec::new());
    }
    STANDARD
        .decode(line.trim())
        .map_err(|_| SaslError::Malformed)
}

/// PLAIN: `authzid NUL authcid NUL passwd`.
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
    if c.user.is_empty() {
        return Err(SaslError::Malformed);
    }
    Ok(c)
}

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
        assert_eq!(decode_response("!!notb64"), Err(SaslError::Malformed));
        assert_eq!(parse_plain(b"nonul"), Err(SaslError::Malformed));
        assert_eq!(parse_plain(b"\0\0pw"), Err(SaslError::Malformed));
    }
}
