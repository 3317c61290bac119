//! argon2id password hashes in PHC string form.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

use super::AccountError;

/// A valid hash of a random password, checked against when the user does not exist so a
/// failed login costs the same either way.
pub(crate) const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$2ub3L8Us5IHQ7b6Ne7uGxjJK7xIMfmT8FrNGMdT6F2E";

pub fn hash_password(password: &str) -> Result<String, AccountError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| AccountError::Hash(e.to_string()))
}

pub fn verify_password(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(h) => Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip() {
        let h = super::hash_password("hunter2").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(super::verify_password("hunter2", &h));
        assert!(!super::verify_password("hunter3", &h));
        assert!(!super::verify_password("x", "garbage"));
        // The dummy must parse, or the timing equalisation silently does nothing.
        assert!(argon2::password_hash::phc::PasswordHash::new(super::DUMMY_HASH).is_ok());
    }
}
