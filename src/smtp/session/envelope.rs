//! The envelope (RFC 5321 §4.1.1.2 MAIL, §4.1.1.3 RCPT): sender checks, recipient lookup
//! through the `Directory`, the relay decision (`delivery::relay`), SRS bounces.

use std::borrow::Cow;

use super::{Action, Directory, Envelope, Mode, Rcpt, Reply, Session, r, sanitize, std_replies};
use crate::accounts::{Address, AddressError, Recipient};
use crate::delivery::relay::{self, Target};

impl Session {
    pub(super) fn mail(
        &mut self,
        from: smtp_proto::MailFrom<Cow<'_, str>>,
        dir: &dyn Directory,
    ) -> Action {
        if self.helo.is_none() {
            return self.error(std_replies::bad_sequence("Send HELO/EHLO first"));
        }
        if self.tx.is_some() {
            return self.error(std_replies::bad_sequence("Nested MAIL command"));
        }
        if self.cfg.mode != Mode::Mx {
            if !self.tls {
                return self.error(r(530, "5.7.0", "Must issue a STARTTLS command first"));
            }
            if self.auth_user.is_none() {
                return self.error(r(530, "5.7.0", "Authentication required"));
            }
        }
        if self.messages >= self.cfg.max_messages {
            return Action::Close(r(
                421,
                "4.7.0",
                "Too many messages in one connection, reconnect to continue",
            ));
        }
        // Parameters of extensions we do not advertise (RFC 5321 §4.1.1.11: 555).
        let known =
            smtp_proto::MAIL_BODY_7BIT | smtp_proto::MAIL_BODY_8BITMIME | smtp_proto::MAIL_SMTPUTF8;
        if from.flags & !known != 0
            || from.trans_id.is_some()
            || from.env_id.is_some()
            || from.solicit.is_some()
            || from.mtrk.is_some()
            || from.by != 0
            || from.hold_for != 0
            || from.hold_until != 0
            || from.mt_priority != 0
        {
            return self.error(r(555, "5.5.4", "Unsupported MAIL parameter"));
        }
        let smtputf8 = from.flags & smtp_proto::MAIL_SMTPUTF8 != 0;
        if (from.size as u64) > self.cfg.max_message_size {
            return Action::Reply(r(
                552,
                "5.3.4",
                format!(
                    "Message size exceeds fixed maximum message size ({} octets)",
                    self.cfg.max_message_size
                ),
            ));
        }
        let address = from.address.to_string();
        if !address.is_ascii() && !smtputf8 {
            // RFC 6531 §3.5.
            return self.error(r(553, "5.6.7", "Non-ASCII address requires SMTPUTF8"));
        }
        if !address.is_empty()
            && let Err(e) = Address::parse(&address)
        {
            return self.error(r(
                501,
                "5.1.7",
                format!("Bad sender address: {}", sanitize(&e.to_string())),
            ));
        }
        if let Some(user) = &self.auth_user
            && !dir.may_send_as(user, &address)
        {
            return Action::Reply(r(
                553,
                "5.7.1",
                format!(
                    "Sender address <{}> is not owned by {user}",
                    sanitize(&address)
                ),
            ));
        }
        self.event = Some(super::Event::MailFrom {
            helo: self.helo.clone().unwrap_or_default(),
            mail_from: address.clone(),
        });
        self.tx = Some(Envelope {
            mail_from: address,
            smtputf8,
            rcpts: Vec::new(),
        });
        Action::Reply(r(250, "2.1.0", "Sender OK"))
    }

    pub(super) fn invalid_rcpt(&mut self, reply: Reply) -> Action {
        self.invalid_rcpts += 1;
        if self.invalid_rcpts > self.cfg.max_invalid_recipients {
            return Action::Close(r(
                421,
                "4.7.0",
                "Too many invalid recipients, closing connection",
            ));
        }
        Action::Reply(reply)
    }

    /// The mail comes from the internet (port 25), not from an authenticated user.
    pub(super) fn is_from_internet(&self) -> bool {
        self.cfg.mode == Mode::Mx
    }

    /// The one relay refusal: 554 5.7.1 (RFC 5321 §3.6.1), counted as an invalid recipient.
    pub(super) fn relay_refused(&mut self, target: Target<'_>, address: &str) -> Action {
        tracing::debug!(?target, "relay refused");
        self.invalid_rcpt(r(554, "5.7.1", relay::refusal_text(&sanitize(address))))
    }

    pub(super) fn rcpt(
        &mut self,
        to: smtp_proto::RcptTo<Cow<'_, str>>,
        raw: &[u8],
        dir: &dyn Directory,
    ) -> Action {
        let Some(tx) = &self.tx else {
            return self.error(std_replies::bad_sequence("Need MAIL before RCPT"));
        };
        if to.orcpt.is_some() || to.flags != 0 || to.rrvs != 0 {
            return self.error(r(555, "5.5.4", "Unsupported RCPT parameter"));
        }
        if tx.rcpts.len() >= self.cfg.max_recipients {
            // RFC 5321 §4.5.3.1.10.
            return Action::Reply(r(452, "4.5.3", "Too many recipients"));
        }
        let mut address = to.address.to_string();
        // smtp-proto returns "" for the bare <Postmaster>, which every server must accept.
        if address.is_empty() && is_bare_postmaster(raw) {
            address = format!("postmaster@{}", self.cfg.domain);
        }
        if !address.is_ascii() && !tx.smtputf8 {
            return self.error(r(553, "5.6.7", "Non-ASCII address requires SMTPUTF8"));
        }
        // smtp-proto drops a source route silently; we refuse it (RFC 5321 Appendix C
        // routes are a relay trick here).
        if has_source_route(raw) {
            return self.relay_refused(Target::SourceRoute, &address);
        }
        let parsed = match Address::parse(&address) {
            Ok(a) => a,
            Err(AddressError::RelayHack(_)) => {
                return self.relay_refused(Target::RelayHack, &address);
            }
            Err(AddressError::Syntax(_)) => {
                return self.error(r(501, "5.1.3", "Bad recipient address syntax"));
            }
        };
        if parsed.domain.starts_with('[')
            && relay::is_relaying(self.is_from_internet(), Target::AddressLiteral)
        {
            return self.relay_refused(Target::AddressLiteral, &address);
        }
        if self.cfg.mode == Mode::Mx
            && let Some(reversed) = dir.srs_reverse(&address)
        {
            return self.srs_rcpt(address, reversed);
        }
        if self.cfg.mode == Mode::Mx
            && self.auth_user.is_none()
            && let Some(text) = dir.client_refusal()
        {
            return self.invalid_rcpt(r(554, "5.7.1", sanitize(&text)));
        }
        let resolved = match dir.resolve(&address) {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("recipient lookup failed: {e}");
                return Action::Reply(r(451, "4.3.0", "Temporary lookup failure, try again later"));
            }
        };
        let rcpt = match resolved.clone() {
            Recipient::Local { users, forward } => {
                // A mailbox already full is refused here, one recipient at a time; one the
                // message would take over the limit is found after DATA, when its size is
                // known (`delivery::quota`).
                if let Some(u) = users.iter().find(|u| dir.mailbox_full(u)) {
                    tracing::info!(user = %u, "recipient refused: mailbox over quota");
                    return Action::Reply(r(
                        452,
                        "4.2.2",
                        format!("<{}>: mailbox full, try again later", sanitize(&address)),
                    ));
                }
                Rcpt {
                    address: address.clone(),
                    users,
                    remote: forward,
                }
            }
            Recipient::Unknown => {
                return self.invalid_rcpt(r(
                    550,
                    "5.1.1",
                    format!("<{}>: no such user here", sanitize(&address)),
                ));
            }
            Recipient::Remote => {
                if relay::is_relaying(self.is_from_internet(), Target::Resolved(&resolved)) {
                    return self.relay_refused(Target::Resolved(&resolved), &address);
                }
                Rcpt {
                    address: address.clone(),
                    users: vec![],
                    remote: vec![address.clone()],
                }
            }
        };
        let tx = self.tx.as_mut().expect("checked above");
        if !tx
            .rcpts
            .iter()
            .any(|x| x.address.eq_ignore_ascii_case(&rcpt.address))
        {
            tx.rcpts.push(rcpt);
        }
        Action::Reply(r(250, "2.1.5", "Recipient OK"))
    }

    /// RCPT TO an SRS address we issued: a bounce coming back for forwarded mail.
    ///
    /// Only a null reverse-path is accepted. Bounces (RFC 3464 DSNs, RFC 5321 §4.5.5) are
    /// sent with MAIL FROM:<>; anything else sent to an SRS address is a replay of an address
    /// seen in a forwarded message's headers, and accepting it would turn the 21-day-valid
    /// address into an open relay towards the original sender (postsrsd documents the same
    /// abuse and Postfix setups restrict SRS recipients to null senders for it).
    fn srs_rcpt(&mut self, address: String, reversed: Result<String, String>) -> Action {
        let original = match reversed {
            Ok(a) => a,
            Err(why) => {
                tracing::info!("SRS recipient refused: {why}");
                return self.invalid_rcpt(r(
                    550,
                    "5.1.1",
                    format!("<{}>: invalid or expired SRS address", sanitize(&address)),
                ));
            }
        };
        let tx = self.tx.as_mut().expect("rcpt checked MAIL first");
        if !tx.mail_from.is_empty() {
            return self.invalid_rcpt(r(
                550,
                "5.7.1",
                format!(
                    "<{}>: SRS addresses accept only bounces (null reverse-path)",
                    sanitize(&address)
                ),
            ));
        }
        if !tx
            .rcpts
            .iter()
            .any(|x| x.address.eq_ignore_ascii_case(&address))
        {
            tx.rcpts.push(Rcpt {
                address,
                users: vec![],
                remote: vec![original],
            });
        }
        Action::Reply(r(250, "2.1.5", "Recipient OK"))
    }
}

/// `RCPT TO:<Postmaster>` without a domain (RFC 5321 §4.5.1).
fn is_bare_postmaster(raw: &[u8]) -> bool {
    let text = String::from_utf8_lossy(raw).to_ascii_lowercase();
    text.contains("<postmaster>")
}

/// `RCPT TO:<@a,@b:user@c>`: the path starts with a route.
fn has_source_route(raw: &[u8]) -> bool {
    raw.iter()
        .position(|&b| b == b'<')
        .and_then(|i| raw.get(i + 1))
        .is_some_and(|&b| b == b'@')
}
