//! STARTTLS (RFC 3501 §6.2.1, RFC 9051 §6.2.1), LOGIN (§6.2.3) and AUTHENTICATE with SASL
//! PLAIN (§6.2.2, RFC 4616; SASL-IR RFC 4959): the not-authenticated state.

use imap_codec::imap_types::auth::AuthMechanism;
use imap_codec::imap_types::core::AString;
use imap_codec::imap_types::secret::Secret;

use super::super::session::{Pending, Session, State, Step, cmd_bad, cmd_no, cmd_ok};
use crate::accounts::Refusal;
use crate::accounts::sasl::{self, Credentials, SaslError};

impl Session {
    pub(crate) fn starttls(&mut self, tag: &str, out: &mut Vec<u8>) -> Step {
        if self.tls {
            cmd_bad(out, tag, "TLS is already active or not allowed now");
            return Step::Continue;
        }
        cmd_ok(out, tag, "Begin TLS negotiation now");
        Step::StartTls
    }

    pub(crate) fn login_cmd(
        &mut self,
        tag: &str,
        username: &AString<'_>,
        password: &Secret<AString<'_>>,
        out: &mut Vec<u8>,
    ) {
        if !self.may_login() {
            return cmd_no(
                out,
                tag,
                "[PRIVACYREQUIRED] LOGIN is disabled until STARTTLS",
            );
        }
        // Strict UTF-8 as in SASL; U+FFFD from a bad name is refused by the login.
        let user = String::from_utf8_lossy(username.as_ref()).into_owned();
        match std::str::from_utf8(password.declassify().as_ref()) {
            Ok(p) => {
                let c = Credentials {
                    authzid: String::new(),
                    user,
                    password: p.to_owned(),
                };
                self.login(tag, &c, out);
            }
            Err(_) => {
                self.svc.logins.malformed("imap", self.peer, &user);
                cmd_no(out, tag, "[AUTHENTICATIONFAILED] invalid credentials");
            }
        }
    }

    pub(crate) fn authenticate(
        &mut self,
        tag: String,
        mechanism: &AuthMechanism<'_>,
        initial_response: Option<&Secret<std::borrow::Cow<'_, [u8]>>>,
        out: &mut Vec<u8>,
    ) {
        if !matches!(mechanism, AuthMechanism::Plain) {
            cmd_no(out, &tag, "[CANNOT] unsupported mechanism (use PLAIN)");
        } else if !self.may_login() {
            cmd_no(
                out,
                &tag,
                "[PRIVACYREQUIRED] authentication is disabled until STARTTLS",
            );
        } else if let Some(ir) = initial_response {
            let data = ir.declassify().to_vec();
            self.auth_plain(&tag, &data, out);
        } else {
            out.extend_from_slice(b"+ \r\n");
            self.pending = Pending::Auth(tag);
        }
    }

    pub(crate) fn auth_response(&mut self, tag: &str, line: &[u8], out: &mut Vec<u8>) -> Step {
        match sasl::decode_response_bytes(line) {
            Ok(data) => self.auth_plain(tag, &data, out),
            Err(SaslError::Cancelled) => cmd_bad(out, tag, "authentication cancelled"),
            Err(SaslError::Malformed) => cmd_bad(out, tag, "invalid base64"),
        }
        Step::Continue
    }

    /// SASL PLAIN (RFC 4616), parsed by `accounts::sasl` like SMTP's.
    pub(crate) fn auth_plain(&mut self, tag: &str, data: &[u8], out: &mut Vec<u8>) {
        match sasl::parse_plain(data) {
            Ok(c) => self.login(tag, &c, out),
            Err(_) => cmd_bad(out, tag, "malformed PLAIN response"),
        }
    }

    /// LOGIN and AUTHENTICATE end here: one call into `accounts::login`.
    pub(crate) fn login(&mut self, tag: &str, c: &Credentials, out: &mut Vec<u8>) {
        match self.svc.logins.login_blocking("imap", self.peer, c) {
            Ok(name) => {
                if let Err(e) = self.svc.store.ensure_user(&name) {
                    tracing::error!("imap: cannot prepare mailboxes of {name}: {e}");
                    cmd_no(out, tag, "[SERVERBUG] cannot open your mailboxes");
                    return;
                }
                tracing::info!(peer = %self.peer, user = %name, "imap login");
                self.state = State::Authenticated { user: name };
                cmd_ok(
                    out,
                    tag,
                    &format!("[CAPABILITY {}] Logged in", self.capabilities()),
                );
            }
            Err(Refusal::Throttled) => cmd_no(
                out,
                tag,
                "[UNAVAILABLE] too many failed logins, try again later",
            ),
            Err(Refusal::NotAuthorized) => {
                cmd_no(out, tag, "[AUTHORIZATIONFAILED] cannot act as another user")
            }
            Err(Refusal::BadName | Refusal::Invalid) => {
                cmd_no(out, tag, "[AUTHENTICATIONFAILED] invalid credentials")
            }
        }
    }
}
