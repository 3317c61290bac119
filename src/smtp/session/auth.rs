//! AUTH (RFC 4954) on submission: the SASL exchange state, PLAIN (RFC 4616) and LOGIN. The
//! password check itself is slow and throttled, so it is handed to the I/O loop as
//! `Action::Authenticate`; `auth_result` takes the outcome.

use super::{Action, Mode, Reply, Sasl, Session, r, std_replies};
use crate::accounts::sasl::{self as auth, Credentials, SaslError};

impl Session {
    pub(super) fn auth(&mut self, mechanism: u64, initial: &str) -> Action {
        if self.cfg.mode == Mode::Mx {
            return self.error(r(
                502,
                "5.5.1",
                "AUTH is not available on this port; use submission",
            ));
        }
        if !self.tls {
            return self.error(r(530, "5.7.0", "Must issue a STARTTLS command first"));
        }
        if self.helo.is_none() || !self.esmtp {
            return self.error(std_replies::bad_sequence("Send EHLO first"));
        }
        if self.auth_user.is_some() {
            return self.error(std_replies::bad_sequence("Already authenticated"));
        }
        if self.tx.is_some() {
            return self.error(std_replies::bad_sequence(
                "AUTH not allowed during a mail transaction",
            ));
        }
        if mechanism == smtp_proto::AUTH_PLAIN {
            if initial.is_empty() {
                self.sasl = Sasl::PlainWait;
                return Action::Reply(Reply::plain(334, vec![String::new()]));
            }
            return self.plain(initial);
        }
        if mechanism == smtp_proto::AUTH_LOGIN {
            if initial.is_empty() {
                self.sasl = Sasl::LoginUser;
                return Action::Reply(Reply::plain(334, vec![auth::challenge("Username:")]));
            }
            return match auth::decode_response(initial).and_then(auth::utf8) {
                Ok(user) => {
                    self.sasl = Sasl::LoginPass(user);
                    Action::Reply(Reply::plain(334, vec![auth::challenge("Password:")]))
                }
                Err(e) => self.sasl_error(e),
            };
        }
        self.error(r(504, "5.5.4", "Unrecognized authentication type"))
    }

    fn plain(&mut self, response: &str) -> Action {
        match auth::decode_response(response).and_then(|raw| auth::parse_plain(&raw)) {
            Ok(c) => Action::Authenticate(c),
            Err(e) => self.sasl_error(e),
        }
    }

    fn sasl_error(&mut self, e: SaslError) -> Action {
        self.sasl = Sasl::Idle;
        match e {
            SaslError::Cancelled => self.error(r(501, "5.0.0", "Authentication cancelled")),
            SaslError::Malformed => {
                self.error(r(501, "5.5.2", "Cannot decode the authentication response"))
            }
        }
    }

    pub(super) fn sasl_line(&mut self, line: &[u8]) -> Action {
        let text = String::from_utf8_lossy(line);
        let state = std::mem::replace(&mut self.sasl, Sasl::Idle);
        match state {
            Sasl::Idle => unreachable!("sasl_line is only called during an exchange"),
            Sasl::PlainWait => self.plain(&text),
            Sasl::LoginUser => match auth::decode_response(&text).and_then(auth::utf8) {
                Ok(user) => {
                    self.sasl = Sasl::LoginPass(user);
                    Action::Reply(Reply::plain(334, vec![auth::challenge("Password:")]))
                }
                Err(e) => self.sasl_error(e),
            },
            Sasl::LoginPass(user) => match auth::decode_response(&text).and_then(auth::utf8) {
                Ok(password) => Action::Authenticate(Credentials {
                    authzid: String::new(),
                    user,
                    password,
                }),
                Err(e) => self.sasl_error(e),
            },
        }
    }

    /// Result of the credential check: Ok(canonical user) or Err(reply) for failure/throttle.
    pub fn auth_result(&mut self, result: Result<String, Reply>) -> Action {
        match result {
            Ok(user) => {
                self.auth_user = Some(user);
                Action::Reply(r(235, "2.7.0", "Authentication successful"))
            }
            Err(reply) => self.error(reply),
        }
    }
}
