//! The message content: DATA (RFC 5321 §4.1.1.4) and BDAT (RFC 3030), then the checks made
//! on the whole message before it is handed to delivery (header From ownership on
//! submission, RFC 6409 §6.1; RFC 5322 §3.6).

use std::sync::Arc;

use super::{Action, Directory, Reply, Session, Transaction, r, sanitize, std_replies};
use crate::smtp::data::{BdatCollector, DataError};
use crate::spool::{SpoolWriter, SpooledMessage};

impl Session {
    /// Bare CR/LF in the body are refused from the internet (port 25) and normalised on
    /// authenticated submission, where sloppy scripts are common (see `smtp::data`).
    pub fn forbid_bare_newline(&self) -> bool {
        self.is_from_internet() && self.auth_user.is_none()
    }

    pub(super) fn data(&mut self) -> Action {
        match &self.tx {
            None => self.error(std_replies::bad_sequence("Need MAIL command")),
            Some(tx) if tx.rcpts.is_empty() => self.error(r(554, "5.5.1", "No valid recipients")),
            Some(_) if self.bdat.is_some() => {
                self.error(std_replies::bad_sequence("DATA not allowed after BDAT"))
            }
            Some(_) => Action::ReadData(Reply::plain(
                354,
                vec!["Start mail input; end with <CRLF>.<CRLF>".into()],
            )),
        }
    }

    /// The body of DATA is in (or refused by the decoder).
    pub fn data_received(
        &mut self,
        result: Result<SpooledMessage, DataError>,
        dir: &dyn Directory,
    ) -> Action {
        match result {
            Ok(message) => self.complete(message, dir),
            Err(e) => {
                self.reset_transaction();
                Action::Reply(data_error_reply(&e, self.cfg.max_message_size))
            }
        }
    }

    pub(super) fn bdat_start(&mut self, size: usize, last: bool) -> Action {
        self.bdat_refusal = None;
        self.bdat_last = last;
        match &self.tx {
            None => self.bdat_refusal = Some(std_replies::bad_sequence("Need MAIL command")),
            Some(tx) if tx.rcpts.is_empty() => {
                self.bdat_refusal = Some(r(554, "5.5.1", "No valid recipients"))
            }
            Some(_) => {
                if self.bdat.is_none() {
                    self.bdat = Some(
                        BdatCollector::with_sink(
                            self.cfg.max_message_size,
                            self.cfg.spool.writer(),
                        )
                        .forbid_bare_newline(self.forbid_bare_newline()),
                    );
                }
            }
        }
        Action::ReadBdat { size }
    }

    /// Some octets of the current BDAT chunk.
    pub fn bdat_data(&mut self, bytes: &[u8]) {
        if self.bdat_refusal.is_none()
            && let Some(c) = &mut self.bdat
        {
            c.push(bytes);
        }
    }

    /// The current BDAT chunk has been read completely.
    pub fn bdat_end(&mut self, dir: &dyn Directory) -> Action {
        if let Some(reply) = self.bdat_refusal.take() {
            return self.error(reply);
        }
        let Some(c) = &self.bdat else {
            return self.error(std_replies::bad_sequence("Need MAIL command"));
        };
        if !self.bdat_last {
            if c.too_big() {
                // Keep reading nothing more: refuse now and drop the transaction.
                let reply = data_error_reply(
                    &DataError::TooBig { size: c.size() },
                    self.cfg.max_message_size,
                );
                self.reset_transaction();
                return Action::Reply(reply);
            }
            return Action::Reply(r(250, "2.0.0", format!("{} octets received", c.size())));
        }
        let c = self.bdat.take().expect("checked above");
        self.data_received(finish_body(c.finish()), dir)
    }

    fn complete(&mut self, message: SpooledMessage, dir: &dyn Directory) -> Action {
        let tx = self
            .tx
            .take()
            .expect("DATA only after a transaction started");
        self.bdat = None;
        if let Some(user) = &self.auth_user {
            // RFC 6409 §6.1 leaves sender policy to us: header From must be the user's too.
            // RFC 5322 §3.6: exactly one From; a second one could hide the real author.
            if crate::smtp::headers::count_header(message.as_bytes(), "From") > 1 {
                return Action::Reply(r(
                    550,
                    "5.6.0",
                    "Message has more than one From header (RFC 5322 §3.6)",
                ));
            }
            match header_from_addresses(message.as_bytes()) {
                None => {
                    return Action::Reply(r(
                        550,
                        "5.6.0",
                        "Message has no From header (RFC 5322 §3.6)",
                    ));
                }
                Some(addrs) => {
                    if let Some(bad) = addrs.iter().find(|a| !dir.may_send_as(user, a)) {
                        return Action::Reply(r(
                            553,
                            "5.7.1",
                            format!("From: <{}> is not owned by {user}", sanitize(bad)),
                        ));
                    }
                }
            }
        }
        let mut protocol = if tx.smtputf8 { "UTF8SMTP" } else { "ESMTP" }.to_string();
        if !self.esmtp && !tx.smtputf8 {
            protocol = "SMTP".into();
        }
        // RFC 3848: S for TLS, A for authenticated.
        if self.tls {
            protocol.push('S');
        }
        if self.auth_user.is_some() {
            protocol.push('A');
        }
        Action::Deliver(Box::new(Transaction {
            mail_from: tx.mail_from,
            rcpts: tx.rcpts,
            message: Arc::new(message),
            helo: self.helo.clone().unwrap_or_default(),
            auth_user: self.auth_user.clone(),
            smtputf8: tx.smtputf8,
            protocol,
        }))
    }

    /// Delivery finished with this reply (250 or a failure).
    pub fn delivered(&mut self, reply: Reply) -> Action {
        if reply.is_positive() {
            self.messages += 1;
        }
        Action::Reply(reply)
    }
}

/// The spooled body of a decoder or BDAT collector that finished without a protocol error.
pub fn finish_body(r: Result<SpoolWriter, DataError>) -> Result<SpooledMessage, DataError> {
    r?.finish().map_err(|e| DataError::Storage(e.to_string()))
}

fn data_error_reply(e: &DataError, max: u64) -> Reply {
    match e {
        // RFC 3463 §3.4: X.3.1 "mail system full"; the client keeps the message and retries.
        DataError::Storage(_) => r(452, "4.3.1", "Insufficient system storage, try again later"),
        DataError::TooBig { .. } => r(
            552,
            "5.3.4",
            format!("Message size exceeds fixed maximum message size ({max} octets)"),
        ),
        // RFC 5321 §4.5.3.1.6: text lines are at most 1000 octets with CRLF.
        DataError::LineTooLong => r(
            550,
            "5.5.2",
            "Message has a line over 1000 octets (RFC 5321 §4.5.3.1.6)",
        ),
        // RFC 5322 §2.2, RFC 5321 §2.3.8: CR and LF only together. A lone one in the header
        // section makes readers disagree on where a field ends (a hidden second From).
        DataError::BareNewlineInHeader => r(
            550,
            "5.6.0",
            "Message header section has a bare CR or LF (RFC 5322 §2.2)",
        ),
        // Postfix 3.9 smtpd_forbid_bare_newline: bare line ends are how smuggling starts.
        DataError::BareNewline => r(
            550,
            "5.5.2",
            "Message has a bare CR or LF; lines must end with CRLF (RFC 5321 §2.3.8)",
        ),
    }
}

/// The addresses of the header `From:` (and `Sender:`), or None without a From header.
pub fn header_from_addresses(message: &[u8]) -> Option<Vec<String>> {
    let parsed = mail_parser::MessageParser::default().parse_headers(message)?;
    let mut out = Vec::new();
    let mut saw_from = false;
    for (name, list) in [("From", parsed.from()), ("Sender", parsed.sender())] {
        let Some(list) = list else { continue };
        if name == "From" {
            saw_from = true;
        }
        for a in list.iter() {
            match &a.address {
                Some(addr) => out.push(addr.to_string()),
                // A From without a usable address cannot be owned.
                None => out.push(a.name.as_deref().unwrap_or("").to_string()),
            }
        }
    }
    // An empty group ("From: undisclosed:;") names nobody, so nobody can own it.
    if !saw_from || out.is_empty() {
        return None;
    }
    Some(out)
}
