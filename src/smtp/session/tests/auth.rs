//! Submission: TLS before AUTH, the AUTH mechanisms and their continuations, and the
//! limits on what an AUTH exchange may send.

use super::*;
use base64::Engine;

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[test]
fn submission_requires_tls_then_auth() {
    let mut s = Session::new(cfg(Mode::Submission));
    let a = cmd(&mut s, "EHLO c");
    assert!(
        !String::from_utf8(reply(&a).to_bytes())
            .unwrap()
            .contains("AUTH")
    );
    let a = cmd(
        &mut s,
        &format!("AUTH PLAIN {}", b64("\0alice@example.com\0pw")),
    );
    assert_eq!(
        (reply(&a).code, reply(&a).enhanced.as_str()),
        (530, "5.7.0")
    );
    assert_eq!(
        reply(&cmd(&mut s, "MAIL FROM:<alice@example.com>")).code,
        530
    );
    cmd(&mut s, "STARTTLS");
    s.tls_started();
    let a = cmd(&mut s, "EHLO c");
    assert!(
        String::from_utf8(reply(&a).to_bytes())
            .unwrap()
            .contains("AUTH PLAIN LOGIN")
    );
    assert_eq!(
        reply(&cmd(&mut s, "MAIL FROM:<alice@example.com>")).code,
        530
    );
    let a = cmd(
        &mut s,
        &format!("AUTH PLAIN {}", b64("\0alice@example.com\0pw")),
    );
    let Action::Authenticate(c) = a else {
        panic!("{a:?}")
    };
    assert_eq!(
        (c.user.as_str(), c.password.as_str()),
        ("alice@example.com", "pw")
    );
    assert_eq!(code(&s.auth_result(Ok("alice@example.com".into()))), 235);
    assert_eq!(code(&cmd(&mut s, "AUTH PLAIN x")), 503);
    let a = cmd(&mut s, "MAIL FROM:<bob@example.com>");
    assert_eq!(
        (reply(&a).code, reply(&a).enhanced.as_str()),
        (553, "5.7.1")
    );
    assert_eq!(code(&cmd(&mut s, "MAIL FROM:<alice@example.com>")), 250);
    // Remote recipients are fine on submission.
    assert_eq!(code(&cmd(&mut s, "RCPT TO:<x@elsewhere.org>")), 250);
    cmd(&mut s, "DATA");
    let a = s.data_received(
        Ok(b"From: Bob <bob@example.com>\r\n\r\nx\r\n".to_vec().into()),
        &Dir,
    );
    assert_eq!(
        (reply(&a).code, reply(&a).enhanced.as_str()),
        (553, "5.7.1")
    );
    cmd(&mut s, "MAIL FROM:<alice@example.com>");
    cmd(&mut s, "RCPT TO:<x@elsewhere.org>");
    cmd(&mut s, "DATA");
    let a = s.data_received(
        Ok(
            b"From: alice@example.com\r\nFrom: bob@example.com\r\n\r\nx\r\n"
                .to_vec()
                .into(),
        ),
        &Dir,
    );
    assert_eq!(
        (reply(&a).code, reply(&a).enhanced.as_str()),
        (550, "5.6.0")
    );
    cmd(&mut s, "MAIL FROM:<alice@example.com>");
    cmd(&mut s, "RCPT TO:<x@elsewhere.org>");
    cmd(&mut s, "DATA");
    let a = s.data_received(
        Ok(b"From: A <alice@example.com>\r\n\r\nx\r\n".to_vec().into()),
        &Dir,
    );
    let Action::Deliver(tx) = a else {
        panic!("{a:?}")
    };
    assert_eq!(tx.protocol, "ESMTPSA");
    assert_eq!(tx.rcpts[0].remote, vec!["x@elsewhere.org"]);
}

#[test]
fn auth_login_continuations_and_cancel() {
    let mut s = Session::new(cfg(Mode::Submissions));
    cmd(&mut s, "EHLO c");
    let a = cmd(&mut s, "AUTH LOGIN");
    assert_eq!(reply(&a).lines[0], b64("Username:"));
    let a = cmd(&mut s, &b64("alice@example.com"));
    assert_eq!(reply(&a).lines[0], b64("Password:"));
    let Action::Authenticate(c) = cmd(&mut s, &b64("secret")) else {
        panic!()
    };
    assert_eq!(c.password, "secret");
    let a = s.auth_result(Err(Reply::new(535, "5.7.8", "no")));
    assert_eq!(code(&a), 535);
    // Cancel with "*".
    assert_eq!(code(&cmd(&mut s, "AUTH PLAIN")), 334);
    let a = cmd(&mut s, "*");
    assert_eq!(
        (reply(&a).code, reply(&a).enhanced.as_str()),
        (501, "5.0.0")
    );
    // Garbage continuation.
    assert_eq!(code(&cmd(&mut s, "AUTH LOGIN")), 334);
    assert_eq!(code(&cmd(&mut s, "%%%")), 501);
    assert_eq!(code(&cmd(&mut s, "AUTH CRAM-MD5")), 504);
}

#[test]
fn oversized_auth_lines_get_a_precise_error() {
    let mut s = Session::new(cfg(Mode::Submissions));
    cmd(&mut s, "EHLO c");
    // A continuation over the framer's bound (RFC 4954 §4: 12288 octets) ends the exchange.
    assert_eq!(code(&cmd(&mut s, "AUTH PLAIN")), 334);
    let a = s.line_too_long();
    assert_eq!(
        (reply(&a).code, reply(&a).enhanced.as_str()),
        (500, "5.5.6")
    );
    assert_eq!(code(&cmd(&mut s, "NOOP")), 250);
    // An initial response just under the bound is decoded (and refused as garbage), one
    // over it is a line too long.
    let a = cmd(&mut s, &format!("AUTH PLAIN {}", "A".repeat(12000)));
    assert_eq!(code(&a), 501);
    let a = s.line_too_long();
    assert_eq!(
        (reply(&a).code, reply(&a).enhanced.as_str()),
        (500, "5.5.2")
    );
}
