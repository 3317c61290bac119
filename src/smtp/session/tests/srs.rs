//! Bounces to our SRS addresses (routed back to the original sender, forgeries refused) and
//! clients on a DNS blocklist, whose only way in is such a bounce.

use super::*;

/// `Dir` plus one valid SRS address and one that fails verification.
struct SrsDir;

impl Directory for SrsDir {
    fn resolve(&self, address: &str) -> Result<Recipient, String> {
        Dir.resolve(address)
    }
    fn may_send_as(&self, user: &str, address: &str) -> bool {
        Dir.may_send_as(user, address)
    }
    fn srs_reverse(&self, address: &str) -> Option<Result<String, String>> {
        match address {
            "SRS0=good=AA=orig.org=a@example.com" => Some(Ok("a@orig.org".into())),
            "SRS0=bad=AA=orig.org=a@example.com" => Some(Err("SRS hash does not verify".into())),
            _ => None,
        }
    }
}

fn srs_cmd(s: &mut Session, line: &str) -> Action {
    s.line(format!("{line}\r\n").as_bytes(), &SrsDir)
}

#[test]
fn srs_bounce_is_routed_to_the_original_sender() {
    let mut s = mx();
    assert_eq!(code(&srs_cmd(&mut s, "MAIL FROM:<>")), 250);
    let a = srs_cmd(&mut s, "RCPT TO:<SRS0=good=AA=orig.org=a@example.com>");
    assert_eq!(reply(&a).enhanced, "2.1.5");
    let tx = s.tx.as_ref().unwrap();
    assert_eq!(tx.rcpts[0].remote, vec!["a@orig.org".to_string()]);
    assert!(tx.rcpts[0].users.is_empty());
}

#[test]
fn srs_refuses_forged_addresses_and_non_bounces() {
    let mut s = mx();
    assert_eq!(code(&srs_cmd(&mut s, "MAIL FROM:<>")), 250);
    let a = srs_cmd(&mut s, "RCPT TO:<SRS0=bad=AA=orig.org=a@example.com>");
    assert_eq!(
        (reply(&a).code, reply(&a).enhanced.as_str()),
        (550, "5.1.1")
    );
    let mut s = mx();
    assert_eq!(code(&srs_cmd(&mut s, "MAIL FROM:<x@y.org>")), 250);
    let a = srs_cmd(&mut s, "RCPT TO:<SRS0=good=AA=orig.org=a@example.com>");
    assert_eq!(
        (reply(&a).code, reply(&a).enhanced.as_str()),
        (550, "5.7.1")
    );
}

/// `SrsDir` for a client on a DNS blocklist (action "reject").
struct ListedDir;

impl Directory for ListedDir {
    fn resolve(&self, address: &str) -> Result<Recipient, String> {
        Dir.resolve(address)
    }
    fn may_send_as(&self, user: &str, address: &str) -> bool {
        Dir.may_send_as(user, address)
    }
    fn srs_reverse(&self, address: &str) -> Option<Result<String, String>> {
        SrsDir.srs_reverse(address)
    }
    fn client_refusal(&self) -> Option<String> {
        Some("Client [127.0.0.2] blocked using bl.test: listed\r\n".into())
    }
}

#[test]
fn listed_client_is_refused_at_rcpt_except_srs_bounces() {
    let mut s = mx();
    let listed = |s: &mut Session, l: &str| s.line(format!("{l}\r\n").as_bytes(), &ListedDir);
    assert_eq!(code(&listed(&mut s, "MAIL FROM:<a@far.org>")), 250);
    let a = listed(&mut s, "RCPT TO:<alice@example.com>");
    assert_eq!(
        (reply(&a).code, reply(&a).enhanced.as_str()),
        (554, "5.7.1")
    );
    let text = String::from_utf8(reply(&a).to_bytes()).unwrap();
    assert!(text.contains("blocked using bl.test: listed"), "{text}");
    assert_eq!(
        text.matches("\r\n").count(),
        1,
        "client text cannot add lines"
    );
    // A bounce to one of our SRS addresses is never checked.
    let mut s = mx();
    assert_eq!(code(&listed(&mut s, "MAIL FROM:<>")), 250);
    let a = listed(&mut s, "RCPT TO:<SRS0=good=AA=orig.org=a@example.com>");
    assert_eq!(reply(&a).code, 250);
    // Submission never asks.
    let mut s = Session::new(cfg(Mode::Submission));
    s.tls = true;
    s.auth_user = Some("alice@example.com".into());
    assert_eq!(code(&listed(&mut s, "EHLO c")), 250);
    assert_eq!(code(&listed(&mut s, "MAIL FROM:<alice@example.com>")), 250);
    assert_eq!(code(&listed(&mut s, "RCPT TO:<bob@example.com>")), 250);
}
