//! DKIM signing (RFC 6376) of mail leaving the domain, with the key(s) in `data_dir/dkim/`.

use crate::server::Services;

#[derive(Debug, thiserror::Error)]
#[error("DKIM: {0}")]
pub struct DkimError(pub String);

/// Create the DKIM key(s) in `data_dir/dkim/` if missing (called by `init` and `dev`).
pub fn ensure_keys(_config: &crate::config::Config) -> Result<(), DkimError> {
    Ok(())
}

/// The DKIM-Signature header line(s) (CRLF-terminated) to prepend to `message`.
pub fn sign(_svc: &Services, _message: &[u8]) -> Result<String, DkimError> {
    Ok(String::new())
}

/// The DNS records to publish for the key(s): (owner name, TXT value), e.g.
/// ("postern._domainkey.example.com", "v=DKIM1; k=rsa; p=...").
pub fn dns_records(_config: &crate::config::Config) -> Result<Vec<(String, String)>, DkimError> {
    Ok(vec![])
}
