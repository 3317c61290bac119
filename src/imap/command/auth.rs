//! STARTTLS (RFC 3501 §6.2.1, RFC 9051 §6.2.1), LOGIN (§6.2.3) and AUTHENTICATE with SASL
//! PLAIN (§6.2.2, RFC 4616; SASL-IR RFC 4959): the not-authenticated state.

use base64::Engine;
use imap_codec::imap_types::auth::AuthMechanism;
use imap_codec::imap_types::core::AString;
use imap_codec::imap_types::secret::Secret;

use super::super::session::{Pending, Session, State, Step, cmd_bad, cmd_no, cmd_ok};
use crate::accounts::throttle::Verdict;

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
        let u = String::from_utf8_lossy(username.as_ref()).into_owned();
        let p = String::from_utf8_lossy(password.declassify().as_ref()).into_owned();
        self.login(tag, &u, &p, out);
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
        let line = line.trim_ascii();
        if line == b"*" {
            cmd_bad(out, tag, "authentication cancelled");
            return Step::Continue;
        }
        match base64::engine::general_purpose::STANDARD.decode(line) {
            Ok(data) => self.auth_plain(tag, &data, out),
            Err(_) => cmd_bad(out, tag, "invalid base64"),
        }
        Step::Continue
    }

    /// SASL PLAIN (RFC 4616): authzid NUL authcid NUL password.
    pub(crate) fn auth_plain(&mut self, tag: &str, data: &[u8], out: &mut Vec<u8>) {
        let parts: Vec<&[u8]> = data.split(|&b| b == 0).collect();
        if parts.len() != 3 {
            cmd_bad(out, tag, "malformed PLAIN response");
            return;
        }
        let authz = String::from_utf8_lossy(parts[0]).into_owned();
        let user = String::from_utf8_lossy(parts[1]).into_owned();
        let pass = String::from_utf8_lossy(parts[2]).into_owned();
        if !authz.is_empty() && !authz.eq_ignore_ascii_case(&user) {
            cmd_no(out, tag, "[AUTHORIZATIONFAILED] cannot act as another user");
            return;
        }
        self.login(tag, &user, &pass, out);
    }

    pub(crate) fn login(&mut self, tag: &str, user: &str, pass: &str, out: &mut Vec<u8>) {
        let throttle = &self.svc.login_throttle;
        match throttle.check(self.peer, user) {
            Verdict::Refuse => {
                tracing::warn!(
                    "auth failed: service=imap ip={} user={} (throttled)",
                    self.peer,
                    user
                );
                cmd_no(
                    out,
                    tag,
                    "[UNAVAILABLE] too many failed logins, try again later",
                );
                return;
            }
            Verdict::Proceed(d) => {
                if !d.is_zero() {
                    std::thread::sleep(d);
                }
            }
        }
        match self.svc.accounts.authenticate_blocking(user, pass) {
            Some(name) => {
                throttle.succeeded(self.peer, user);
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
            None => {
                throttle.failed(self.peer, user);
                crate::metrics::Metrics::inc(&self.svc.metrics.auth_failures);
                tracing::warn!("auth failed: service=imap ip={} user={}", self.peer, user);
                cmd_no(out, tag, "[AUTHENTICATIONFAILED] invalid credentials");
            }
        }
    }
}
