//! The state table (RFC 3501 §3, §6).

use super::{Valid, allowed, valid_in, write_failed};
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

#[test]
fn full_disk_and_quota_get_their_response_codes() {
    // RFC 5530 §3: EDQUOT is OVERQUOTA, ENOSPC a LIMIT; neither is a server bug.
    let enospc = std::io::Error::from_raw_os_error(28);
    let edquot = std::io::Error::from_raw_os_error(122);
    assert!(write_failed(&enospc).starts_with("[LIMIT] "));
    assert!(write_failed(&edquot).starts_with("[OVERQUOTA] "));
    let other = std::io::Error::other("boom");
    assert_eq!(write_failed(&other), "[SERVERBUG] boom");
}
