//! Drive the sans-IO SMTP session with arbitrary lines in every mode: no panic, every reply
//! well-formed (3-digit code, CRLF-terminated lines without stray CR/LF).
#![no_main]

use libfuzzer_sys::fuzz_target;
use postern::accounts::Recipient;
use postern::smtp::Mode;
use postern::smtp::line::{Line, LineReader};
use postern::smtp::reply::Reply;
use postern::smtp::session::{Action, Directory, Session, SessionConfig};

struct Dir;

impl Directory for Dir {
    fn resolve(&self, address: &str) -> Result<Recipient, String> {
        match address.rsplit_once('@') {
            Some((l, "example.com")) if l.starts_with('a') => Ok(Recipient::Local {
                users: vec!["alice@example.com".into()],
                forward: vec![],
            }),
            Some((_, "example.com")) => Ok(Recipient::Unknown),
            _ => Ok(Recipient::Remote),
        }
    }
    fn may_send_as(&self, user: &str, address: &str) -> bool {
        user == address
    }
}

fn check(r: &Reply) {
    assert!((200..=599).contains(&r.code));
    let b = r.to_bytes();
    assert!(b.ends_with(b"\r\n"));
    assert_eq!(
        b.iter().filter(|&&c| c == b'\n').count(),
        r.lines.len().max(1)
    );
}

fuzz_target!(|input: (u8, &[u8])| {
    let (m, bytes) = input;
    let mode = match m % 3 {
        0 => Mode::Mx,
        1 => Mode::Submission,
        _ => Mode::Submissions,
    };
    let mut s = Session::new(SessionConfig {
        hostname: "mx.example.com".into(),
        domain: "example.com".into(),
        mode,
        max_message_size: 4096,
        max_recipients: 5,
        max_messages: 3,
        max_invalid_recipients: 3,
        max_errors: 50,
        spool: postern::spool::Spool::memory(),
    });
    let mut reader = LineReader::new();
    reader.push(bytes);
    while let Some(line) = reader.next_line() {
        let mut action = match line {
            Line::Complete(l) => s.line(&l, &Dir),
            Line::TooLong => s.line_too_long(),
        };
        loop {
            action = match action {
                Action::Reply(r) => {
                    check(&r);
                    break;
                }
                Action::Close(r) => {
                    check(&r);
                    return;
                }
                Action::StartTls(r) => {
                    check(&r);
                    s.tls_started();
                    break;
                }
                Action::ReadData(r) => {
                    check(&r);
                    let mut d = postern::smtp::data::DataDecoder::new(4096)
                        .forbid_bare_newline(s.forbid_bare_newline());
                    let rest = reader.take();
                    let (n, _) = d.feed(&rest);
                    reader.unread(rest[n..].to_vec());
                    s.data_received(d.finish().map(Into::into), &Dir)
                }
                Action::ReadBdat { size } => {
                    let mut rest = reader.take();
                    let take = size.min(rest.len());
                    let tail = rest.split_off(take);
                    s.bdat_data(&rest);
                    reader.unread(tail);
                    s.bdat_end(&Dir)
                }
                Action::Authenticate(c) => {
                    let ok = c.password == "pw";
                    s.auth_result(if ok {
                        Ok(c.user)
                    } else {
                        Err(Reply::new(535, "5.7.8", "no"))
                    })
                }
                Action::Deliver(_) => s.delivered(Reply::new(250, "2.0.0", "ok")),
            };
        }
    }
});
