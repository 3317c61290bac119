//! RCPT to a local user whose mailbox is over quota (`Directory::mailbox_full`).

use super::*;

/// `Dir` where bob's mailbox is over quota.
struct FullDir;

impl Directory for FullDir {
    fn resolve(&self, address: &str) -> Result<Recipient, String> {
        Dir.resolve(address)
    }
    fn may_send_as(&self, user: &str, address: &str) -> bool {
        Dir.may_send_as(user, address)
    }
    fn mailbox_full(&self, user: &str) -> bool {
        user == "bob@example.com"
    }
}

#[test]
fn full_mailbox_is_452_4_2_2_for_that_recipient_only() {
    let mut s = mx();
    let c = |s: &mut Session, l: &str| s.line(format!("{l}\r\n").as_bytes(), &FullDir);
    assert_eq!(code(&c(&mut s, "MAIL FROM:<a@remote.org>")), 250);
    let a = c(&mut s, "RCPT TO:<bob@example.com>");
    assert_eq!(
        (reply(&a).code, reply(&a).enhanced.as_str()),
        (452, "4.2.2")
    );
    assert_eq!(code(&c(&mut s, "RCPT TO:<alice@example.com>")), 250);
    // A temporary refusal is not an invalid recipient: no drop after many.
    for _ in 0..5 {
        assert_eq!(code(&c(&mut s, "RCPT TO:<bob+x@example.com>")), 452);
    }
    assert_eq!(s.tx.as_ref().unwrap().rcpts.len(), 1);
}
