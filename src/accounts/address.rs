//! Mailbox address syntax as far as account policy needs it. The SMTP layer has already
//! parsed the path (RFC 5321 §4.1.2); here we canonicalise and refuse what must never
//! reach a lookup: source routes, `%`/`!` relay hacks, quoted local parts hiding an `@`.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("{0:?} is not a mail address (expected local@domain)")]
    Syntax(String),
    #[error(
        "{0:?} uses a source route, quoting or relay syntax (%, !, @, \", \\ or : in the local part)"
    )]
    RelayHack(String),
}

/// A parsed, canonical (lower case) address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Address {
    pub local: String,
    pub domain: String,
}

impl Address {
    pub fn parse(s: &str) -> Result<Address, AddressError> {
        let s = s.trim();
        let s = s
            .strip_prefix('<')
            .and_then(|x| x.strip_suffix('>'))
            .unwrap_or(s);
        if s.starts_with('@') {
            // "@a,@b:user@c" — source route (RFC 5321 §4.1.2 / Appendix C); never honoured.
            return Err(AddressError::RelayHack(s.into()));
        }
        let (local, domain) = s
            .rsplit_once('@')
            .ok_or_else(|| AddressError::Syntax(s.into()))?;
        if local.is_empty() || domain.is_empty() || local.len() > 64 || domain.len() > 255 {
            return Err(AddressError::Syntax(s.into()));
        }
        if local.contains(['%', '!', '@', '"', '\\']) || local.contains(':') {
            return Err(AddressError::RelayHack(s.into()));
        }
        if local
            .chars()
            .any(|c| c.is_control() || c == ' ' || c == ',' || c == '<' || c == '>' || c == '/')
            || local.starts_with('.')
            || local.ends_with('.')
            || local.contains("..")
        {
            return Err(AddressError::Syntax(s.into()));
        }
        let domain = domain.trim_end_matches('.');
        if domain.starts_with('[') {
            // Address literals name a host, not our domain.
            return Ok(Address {
                local: local.to_lowercase(),
                domain: domain.to_ascii_lowercase(),
            });
        }
        if !domain
            .split('.')
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_alphanumeric() || c == '-'))
        {
            return Err(AddressError::Syntax(s.into()));
        }
        Ok(Address {
            local: local.to_lowercase(),
            domain: domain.to_lowercase(),
        })
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.local, self.domain)
    }
}

/// Canonical string form of an address: `local@domain`, lower case.
pub fn normalize_address(s: &str) -> Result<String, AddressError> {
    Address::parse(s).map(|a| a.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical() {
        assert_eq!(
            normalize_address("<Alice@Example.COM>").unwrap(),
            "alice@example.com"
        );
        assert_eq!(
            normalize_address("a.b+c@example.com.").unwrap(),
            "a.b+c@example.com"
        );
    }

    #[test]
    fn relay_hacks_refused() {
        for s in [
            "user%other.org@example.com",
            "@a.org:user@example.com",
            "\"x@y\"@example.com",
            "a!b@example.com",
        ] {
            assert!(
                matches!(Address::parse(s), Err(AddressError::RelayHack(_))),
                "{s}"
            );
        }
        for s in [
            "",
            "nobody",
            "@example.com",
            "a@",
            "a..b@example.com",
            "../x@example.com",
        ] {
            assert!(Address::parse(s).is_err(), "{s}");
        }
    }
}
