//! Unit tests of the session state machine with a fake directory.

use super::*;

use crate::smtp::data::DataError;

struct Dir;

impl Directory for Dir {
    fn resolve(&self, address: &str) -> Result<Recipient, String> {
        let a = address.to_ascii_lowercase();
        let (local, domain) = a.rsplit_once('@').unwrap();
        if domain != "example.com" {
            return Ok(Recipient::Remote);
        }
        let base = local.split('+').next().unwrap();
        match base {
            "alice" | "bob" | "postmaster" => Ok(Recipient::Local {
                users: vec![format!("{base}@example.com")],
                forward: vec![],
            }),
            "fwd" => Ok(Recipient::Local {
                users: vec![],
                forward: vec!["far@remote.org".into()],
            }),
            "broken" => Err("disk on fire".into()),
            _ => Ok(Recipient::Unknown),
        }
    }
    fn may_send_as(&self, user: &str, address: &str) -> bool {
        address.eq_ignore_ascii_case(user)
    }
}

fn cfg(mode: Mode) -> SessionConfig {
    SessionConfig {
        hostname: "mx.example.com".into(),
        domain: "example.com".into(),
        mode,
        max_message_size: 1000,
        max_recipients: 3,
        max_messages: 2,
        max_invalid_recipients: 2,
        max_errors: 5,
        spool: crate::spool::Spool::memory(),
    }
}

fn code(a: &Action) -> u16 {
    match a {
        Action::Reply(r) | Action::Close(r) | Action::StartTls(r) | Action::ReadData(r) => r.code,
        Action::ReadBdat { .. } => 0,
        Action::Authenticate(_) => 1,
        Action::Deliver(_) => 2,
    }
}

fn reply(a: &Action) -> &Reply {
    match a {
        Action::Reply(r) | Action::Close(r) | Action::StartTls(r) | Action::ReadData(r) => r,
        other => panic!("not a reply: {other:?}"),
    }
}

fn cmd(s: &mut Session, line: &str) -> Action {
    s.line(format!("{line}\r\n").as_bytes(), &Dir)
}

fn mx() -> Session {
    let mut s = Session::new(cfg(Mode::Mx));
    assert_eq!(code(&cmd(&mut s, "EHLO client.example")), 250);
    s
}

#[test]
fn ehlo_advertises_extensions() {
    let mut s = Session::new(cfg(Mode::Mx));
    let a = cmd(&mut s, "EHLO client.example");
    let text = String::from_utf8(reply(&a).to_bytes()).unwrap();
    for ext in [
        "PIPELINING",
        "SIZE 1000",
        "8BITMIME",
        "SMTPUTF8",
        "ENHANCEDSTATUSCODES",
        "STARTTLS",
        "CHUNKING",
    ] {
        assert!(text.contains(ext), "{ext} missing in {text}");
    }
    assert!(!text.contains("AUTH"), "no AUTH on port 25: {text}");
}

#[test]
fn sequence_errors() {
    let mut s = Session::new(cfg(Mode::Mx));
    assert_eq!(reply(&cmd(&mut s, "MAIL FROM:<a@b.org>")).enhanced, "5.5.1");
    let mut s = mx();
    assert_eq!(code(&cmd(&mut s, "RCPT TO:<alice@example.com>")), 503);
    assert_eq!(code(&cmd(&mut s, "DATA")), 503);
    assert_eq!(code(&cmd(&mut s, "MAIL FROM:<a@b.org>")), 250);
    assert_eq!(code(&cmd(&mut s, "MAIL FROM:<a@b.org>")), 503);
    assert_eq!(code(&cmd(&mut s, "DATA")), 554);
    assert_eq!(code(&cmd(&mut s, "RSET")), 250);
    assert_eq!(code(&cmd(&mut s, "RCPT TO:<alice@example.com>")), 503);
}

#[test]
fn syntax_errors_are_precise() {
    let mut s = mx();
    let a = cmd(&mut s, "FROB");
    assert_eq!(
        (reply(&a).code, reply(&a).enhanced.as_str()),
        (500, "5.5.1")
    );
    let a = cmd(&mut s, "MAIL FROM:foo");
    assert_eq!(reply(&a).code, 501);
    let a = cmd(&mut s, "HELO");
    assert_eq!(reply(&a).code, 501);
    let long = format!("NOOP {}", "x".repeat(600));
    let a = cmd(&mut s, &long);
    assert_eq!(
        (reply(&a).code, reply(&a).enhanced.as_str()),
        (500, "5.5.2")
    );
    let a = s.line_too_long();
    assert_eq!(reply(&a).code, 500);
    // MAIL/RCPT may carry extension parameters past 512 octets, up to a bound.
    let mut s = mx();
    let a = cmd(&mut s, &format!("MAIL FROM:<a@b.org> {}", " ".repeat(700)));
    assert_ne!(reply(&a).enhanced, "5.5.2");
    cmd(&mut s, "RSET");
    let a = cmd(&mut s, &format!("MAIL FROM:<a@b.org>{}", " ".repeat(2100)));
    assert_eq!(
        (reply(&a).code, reply(&a).enhanced.as_str()),
        (500, "5.5.2")
    );
}

#[test]
fn helo_must_be_a_domain_or_address_literal() {
    for good in [
        "client.example",
        "client.example.",
        "mx_1.example",
        "localhost",
        "192.0.2.1",
        "[192.0.2.1]",
        "[IPv6:2001:db8::1]",
        "[ipv6:::1]",
    ] {
        assert!(is_valid_helo(good), "{good}");
    }
    for bad in [
        "x([10.0.0.1])by",
        "a;b",
        "caf\u{e9}.example",
        "-a.example",
        "a-.example",
        "a..b",
        ".",
        "[10.0.0.300]",
        "[IPv6:zz]",
        "[host.example]",
        "a\"b",
        &"a".repeat(64),
        &format!("{}.example", "a.".repeat(130)),
    ] {
        assert!(!is_valid_helo(bad), "{bad}");
    }
    let mut s = Session::new(cfg(Mode::Mx));
    let a = cmd(&mut s, "EHLO x([10.0.0.1])by");
    assert_eq!(
        (reply(&a).code, reply(&a).enhanced.as_str()),
        (501, "5.5.4")
    );
    assert_eq!(s.helo(), "");
    assert_eq!(code(&cmd(&mut s, "MAIL FROM:<a@b.org>")), 503);
}

#[test]
fn error_storm_closes() {
    let mut s = mx();
    for _ in 0..5 {
        assert!(matches!(cmd(&mut s, "BOGUS"), Action::Reply(_)));
    }
    let a = cmd(&mut s, "BOGUS");
    assert!(matches!(a, Action::Close(ref r) if r.code == 421 && r.enhanced == "4.7.0"));
}

#[test]
fn recipients_users_tags_relay_and_unknown() {
    let mut s = mx();
    assert_eq!(code(&cmd(&mut s, "MAIL FROM:<sender@remote.org>")), 250);
    assert_eq!(code(&cmd(&mut s, "RCPT TO:<alice@example.com>")), 250);
    assert_eq!(code(&cmd(&mut s, "RCPT TO:<bob+news@example.com>")), 250);
    let a = cmd(&mut s, "RCPT TO:<nobody@example.com>");
    assert_eq!(
        (reply(&a).code, reply(&a).enhanced.as_str()),
        (550, "5.1.1")
    );
    let a = cmd(&mut s, "RCPT TO:<x@elsewhere.org>");
    assert_eq!(
        (reply(&a).code, reply(&a).enhanced.as_str()),
        (554, "5.7.1")
    );
    // Third invalid recipient with max 2: dropped.
    let a = cmd(&mut s, "RCPT TO:<alice%far.org@example.com>");
    assert!(matches!(a, Action::Close(ref r) if r.code == 421 && r.enhanced == "4.7.0"));
}

#[test]
fn relay_tricks_refused() {
    for trick in [
        "RCPT TO:<alice%far.org@example.com>",
        "RCPT TO:<@example.com:alice@far.org>",
        "RCPT TO:<@far.org:alice@example.com>",
        "RCPT TO:<\"alice@far.org\"@example.com>",
        "RCPT TO:<alice!far.org@example.com>",
        "RCPT TO:<alice@[127.0.0.1]>",
    ] {
        let mut s = mx();
        cmd(&mut s, "MAIL FROM:<a@b.org>");
        let a = cmd(&mut s, trick);
        assert_eq!(
            (reply(&a).code, reply(&a).enhanced.as_str()),
            (554, "5.7.1"),
            "{trick}"
        );
        // One wording for every relay refusal (issue 13).
        assert!(
            reply(&a).lines[0].ends_with(": relay access denied"),
            "{a:?}"
        );
    }
    // A remote domain: refused on port 25, accepted from an authenticated user.
    let mut s = mx();
    cmd(&mut s, "MAIL FROM:<a@b.org>");
    let a = cmd(&mut s, "RCPT TO:<x@far.org>");
    assert_eq!(reply(&a).lines[0], "<x@far.org>: relay access denied");
}

#[test]
fn lookup_failure_is_temporary() {
    let mut s = mx();
    cmd(&mut s, "MAIL FROM:<a@b.org>");
    let a = cmd(&mut s, "RCPT TO:<broken@example.com>");
    assert_eq!(
        (reply(&a).code, reply(&a).enhanced.as_str()),
        (451, "4.3.0")
    );
}

#[test]
fn too_many_recipients() {
    let mut s = mx();
    cmd(&mut s, "MAIL FROM:<a@b.org>");
    for r in ["alice", "bob", "alice+x"] {
        assert_eq!(
            code(&cmd(&mut s, &format!("RCPT TO:<{r}@example.com>"))),
            250
        );
    }
    let a = cmd(&mut s, "RCPT TO:<bob+y@example.com>");
    assert_eq!(
        (reply(&a).code, reply(&a).enhanced.as_str()),
        (452, "4.5.3")
    );
}

#[test]
fn size_declared_too_big() {
    let mut s = mx();
    let a = cmd(&mut s, "MAIL FROM:<a@b.org> SIZE=5000");
    assert_eq!(
        (reply(&a).code, reply(&a).enhanced.as_str()),
        (552, "5.3.4")
    );
    assert_eq!(
        code(&cmd(&mut s, "MAIL FROM:<a@b.org> SIZE=500 BODY=8BITMIME")),
        250
    );
}

#[test]
fn unadvertised_parameters_refused() {
    let mut s = mx();
    let a = cmd(&mut s, "MAIL FROM:<a@b.org> RET=FULL");
    assert_eq!(reply(&a).code, 555);
    let a = cmd(&mut s, "MAIL FROM:<a@b.org> BODY=BINARYMIME");
    assert_eq!(reply(&a).code, 555);
}

#[test]
fn smtputf8_addresses_need_the_parameter() {
    let mut s = mx();
    let a = cmd(&mut s, "MAIL FROM:<jörg@b.org>");
    assert_eq!(reply(&a).code, 553);
    assert_eq!(code(&cmd(&mut s, "MAIL FROM:<jörg@b.org> SMTPUTF8")), 250);
}

#[test]
fn data_flow_and_message_limit() {
    let mut s = mx();
    for _ in 0..2 {
        assert_eq!(code(&cmd(&mut s, "MAIL FROM:<a@b.org>")), 250);
        assert_eq!(code(&cmd(&mut s, "RCPT TO:<alice@example.com>")), 250);
        assert_eq!(code(&cmd(&mut s, "RCPT TO:<fwd@example.com>")), 250);
        let a = cmd(&mut s, "DATA");
        assert!(matches!(a, Action::ReadData(ref r) if r.code == 354));
        let a = s.data_received(Ok(b"Subject: t\r\n\r\nhi\r\n".to_vec().into()), &Dir);
        let Action::Deliver(tx) = a else {
            panic!("{a:?}")
        };
        assert_eq!(tx.mail_from, "a@b.org");
        assert_eq!(tx.rcpts[0].users, vec!["alice@example.com"]);
        assert_eq!(tx.rcpts[1].remote, vec!["far@remote.org"]);
        assert_eq!(tx.protocol, "ESMTP");
        assert_eq!(code(&s.delivered(Reply::new(250, "2.0.0", "ok"))), 250);
        assert!(!s.in_transaction());
    }
    let a = cmd(&mut s, "MAIL FROM:<a@b.org>");
    assert!(matches!(a, Action::Close(ref r) if r.code == 421));
}

#[test]
fn data_errors_map_to_replies() {
    let mut s = mx();
    cmd(&mut s, "MAIL FROM:<a@b.org>");
    cmd(&mut s, "RCPT TO:<alice@example.com>");
    cmd(&mut s, "DATA");
    let a = s.data_received(Err(DataError::TooBig { size: 5000 }), &Dir);
    assert_eq!(
        (reply(&a).code, reply(&a).enhanced.as_str()),
        (552, "5.3.4")
    );
    cmd(&mut s, "MAIL FROM:<a@b.org>");
    cmd(&mut s, "RCPT TO:<alice@example.com>");
    cmd(&mut s, "DATA");
    let a = s.data_received(Err(DataError::BareNewline), &Dir);
    assert_eq!(
        (reply(&a).code, reply(&a).enhanced.as_str()),
        (550, "5.5.2")
    );
    cmd(&mut s, "MAIL FROM:<a@b.org>");
    cmd(&mut s, "RCPT TO:<alice@example.com>");
    cmd(&mut s, "DATA");
    let a = s.data_received(Err(DataError::BareNewlineInHeader), &Dir);
    assert_eq!(
        (reply(&a).code, reply(&a).enhanced.as_str()),
        (550, "5.6.0")
    );
    cmd(&mut s, "MAIL FROM:<a@b.org>");
    cmd(&mut s, "RCPT TO:<alice@example.com>");
    cmd(&mut s, "DATA");
    let a = s.data_received(Err(DataError::LineTooLong), &Dir);
    assert_eq!(
        (reply(&a).code, reply(&a).enhanced.as_str()),
        (550, "5.5.2")
    );
}

#[test]
fn bdat_chunks() {
    let mut s = mx();
    // BDAT without a transaction: the chunk is read, then refused.
    assert!(matches!(
        cmd(&mut s, "BDAT 5"),
        Action::ReadBdat { size: 5 }
    ));
    s.bdat_data(b"hello");
    assert_eq!(code(&s.bdat_end(&Dir)), 503);
    cmd(&mut s, "MAIL FROM:<a@b.org>");
    cmd(&mut s, "RCPT TO:<alice@example.com>");
    assert!(matches!(
        cmd(&mut s, "BDAT 6"),
        Action::ReadBdat { size: 6 }
    ));
    s.bdat_data(b"Subj");
    s.bdat_data(b"ec");
    assert_eq!(code(&s.bdat_end(&Dir)), 250);
    assert!(matches!(
        cmd(&mut s, "BDAT 9 LAST"),
        Action::ReadBdat { size: 9 }
    ));
    s.bdat_data(b"t: x\r\n\r\nb");
    let Action::Deliver(tx) = s.bdat_end(&Dir) else {
        panic!()
    };
    assert_eq!(tx.message.as_bytes(), b"Subject: x\r\n\r\nb");
}

#[test]
fn bdat_bare_line_ends_refused_on_port_25() {
    let mut s = mx();
    cmd(&mut s, "MAIL FROM:<a@b.org>");
    cmd(&mut s, "RCPT TO:<alice@example.com>");
    assert!(s.forbid_bare_newline());
    cmd(&mut s, "BDAT 20 LAST");
    s.bdat_data(b"Subject: x\r\n\r\na\n.\r\n");
    let a = s.bdat_end(&Dir);
    assert_eq!(
        (reply(&a).code, reply(&a).enhanced.as_str()),
        (550, "5.5.2")
    );
    assert!(!s.in_transaction());
    // In the header section the reply says which rule (RFC 5322 §2.2).
    cmd(&mut s, "MAIL FROM:<a@b.org>");
    cmd(&mut s, "RCPT TO:<alice@example.com>");
    cmd(&mut s, "BDAT 17 LAST");
    s.bdat_data(b"From: b\rX: a\r\n\r\n");
    let a = s.bdat_end(&Dir);
    assert_eq!(
        (reply(&a).code, reply(&a).enhanced.as_str()),
        (550, "5.6.0")
    );
}

#[test]
fn starttls_resets_state() {
    let mut s = mx();
    cmd(&mut s, "MAIL FROM:<a@b.org>");
    assert!(matches!(cmd(&mut s, "STARTTLS"), Action::StartTls(ref r) if r.code == 220));
    s.tls_started();
    assert!(s.is_tls());
    assert!(!s.in_transaction());
    // RFC 3207 §4.2: EHLO again first.
    assert_eq!(code(&cmd(&mut s, "MAIL FROM:<a@b.org>")), 503);
    let a = cmd(&mut s, "EHLO c");
    assert!(
        !String::from_utf8(reply(&a).to_bytes())
            .unwrap()
            .contains("STARTTLS")
    );
    assert_eq!(code(&cmd(&mut s, "STARTTLS")), 503);
}

#[test]
fn misc_commands() {
    let mut s = mx();
    assert_eq!(reply(&cmd(&mut s, "VRFY alice")).code, 252);
    assert_eq!(reply(&cmd(&mut s, "NOOP")).code, 250);
    let help = cmd(&mut s, "HELP");
    let help = reply(&help);
    assert_eq!(help.code, 214);
    // Port 25 never offers AUTH, so HELP does not list it either.
    assert!(!help.lines[0].contains("AUTH"), "{:?}", help.lines);
    assert!(help.lines[0].contains("STARTTLS"), "{:?}", help.lines);
    assert_eq!(reply(&cmd(&mut s, "AUTH PLAIN AGFAAGI=")).code, 502);
    assert!(matches!(cmd(&mut s, "QUIT"), Action::Close(ref r) if r.code == 221));
}

#[test]
fn header_from_is_extracted() {
    let m = b"From: \"A\" <a@x.org>, b@y.org\r\nSender: c@z.org\r\n\r\n";
    assert_eq!(
        header_from_addresses(m).unwrap(),
        vec!["a@x.org", "b@y.org", "c@z.org"]
    );
    assert_eq!(header_from_addresses(b"Subject: x\r\n\r\n"), None);
    assert_eq!(header_from_addresses(b"From: undisclosed:;\r\n\r\n"), None);
}

#[test]
fn bare_postmaster_is_accepted() {
    let mut s = mx();
    cmd(&mut s, "MAIL FROM:<a@b.org>");
    assert_eq!(code(&cmd(&mut s, "RCPT TO:<Postmaster>")), 250);
    assert_eq!(code(&cmd(&mut s, "RCPT TO:<>")), 501);
}

mod auth;
mod events;
mod quota;
mod srs;
