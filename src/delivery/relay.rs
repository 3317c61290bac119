//! The relay decision (RFC 5321 §3.6.1 open relays, §7.1; Appendix C source routes): may a
//! recipient be accepted from this client, or would accepting it make us relay mail for
//! someone else? One answer for port 25 and submission; the SMTP session only asks and
//! words the refusal (`554 5.7.1 <addr>: relay access denied`).

use crate::accounts::Recipient;

/// What a recipient looks like before and after the account lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// `<@a,@b:user@c>`: a source route.
    SourceRoute,
    /// `%`, `!`, `@` or `:` in the local part (the address parser's `RelayHack`).
    RelayHack,
    /// `user@[192.0.2.1]`: a host, never our domain.
    AddressLiteral,
    /// What the accounts said about a plain `local@domain`.
    Resolved(&'a Recipient),
}

/// True when accepting `target` would relay. `from_internet` is port 25 (unauthenticated);
/// an authenticated submission client may send anywhere, but never through route or `%`
/// tricks, which no legitimate client needs.
pub fn is_relaying(from_internet: bool, target: Target<'_>) -> bool {
    match target {
        Target::SourceRoute | Target::RelayHack => true,
        Target::AddressLiteral => from_internet,
        Target::Resolved(Recipient::Remote) => from_internet,
        Target::Resolved(Recipient::Local { .. } | Recipient::Unknown) => false,
    }
}

/// The one wording of the refusal, for replies and logs.
pub fn refusal_text(address: &str) -> String {
    format!("<{address}>: relay access denied")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relaying_by_port() {
        for from_internet in [true, false] {
            assert!(is_relaying(from_internet, Target::SourceRoute));
            assert!(is_relaying(from_internet, Target::RelayHack));
            assert!(!is_relaying(
                from_internet,
                Target::Resolved(&Recipient::Unknown)
            ));
        }
        assert!(is_relaying(true, Target::AddressLiteral));
        assert!(!is_relaying(false, Target::AddressLiteral));
        assert!(is_relaying(true, Target::Resolved(&Recipient::Remote)));
        assert!(!is_relaying(false, Target::Resolved(&Recipient::Remote)));
        assert_eq!(refusal_text("a@b"), "<a@b>: relay access denied");
    }
}
