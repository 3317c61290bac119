//! Events the core reports for the I/O loop to act on early (`take_event`).

use super::*;

#[test]
fn accepted_mail_from_raises_one_event_with_helo_and_sender() {
    let mut s = mx();
    assert_eq!(s.take_event(), None);
    assert_eq!(code(&cmd(&mut s, "MAIL FROM:<a@remote.org>")), 250);
    assert_eq!(
        s.take_event(),
        Some(Event::MailFrom {
            helo: "client.example".into(),
            mail_from: "a@remote.org".into()
        })
    );
    assert_eq!(s.take_event(), None);
    // A refused MAIL (nested) raises nothing; after RSET the next one does again.
    assert_ne!(code(&cmd(&mut s, "MAIL FROM:<b@remote.org>")), 250);
    assert_eq!(s.take_event(), None);
    assert_eq!(code(&cmd(&mut s, "RSET")), 250);
    assert_eq!(code(&cmd(&mut s, "MAIL FROM:<>")), 250);
    assert_eq!(
        s.take_event(),
        Some(Event::MailFrom {
            helo: "client.example".into(),
            mail_from: String::new()
        })
    );
}
