//! The state table (RFC 3501 §3, §6).

use super::{Valid, allowed, valid_in};
use crate::imap::session::State;

#[test]
fn each_state_allows_its_commands() {
    let none = State::NotAuthenticated;
    let auth = State::Authenticated { user: "u".into() };
    assert_eq!(allowed(&none, "CAPABILITY"), Ok(()));
    assert_eq!(allowed(&none, "LOGIN"), Ok(()));
    assert_eq!(allowed(&auth, "LOGIN"), Err("already authenticated"));
    assert_eq!(
        allowed(&auth, "STARTTLS"),
        Err("TLS is already active or not allowed now")
    );
    assert_eq!(allowed(&none, "SELECT"), Err("log in first"));
    assert_eq!(allowed(&none, "FETCH"), Err("log in first"));
    assert_eq!(allowed(&auth, "FETCH"), Err("select a mailbox first"));
    assert_eq!(allowed(&auth, "IDLE"), Ok(()));
    assert_eq!(allowed(&auth, "GETQUOTAROOT"), Ok(()));
    assert_eq!(valid_in("MOVE"), Valid::Selected);
}
