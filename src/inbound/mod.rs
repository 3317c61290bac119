//! Inbound trust for mail arriving on port 25: SPF, DKIM, DMARC, iprev verdicts and the
//! Authentication-Results header (RFC 8601).
//!
//! The SMTP session calls `check_message` once per message at the end of DATA (port 25
//! only) and applies the returned `Verdict`: its `disposition` decides the reply and the
//! folder, `apply` produces the bytes to store.

use std::net::IpAddr;

use crate::server::Services;

/// What the SMTP session knows about a message when it asks for a verdict.
#[derive(Debug, Clone)]
pub struct MessageContext<'a> {
    pub peer_ip: IpAddr,
    /// The EHLO/HELO argument.
    pub helo: &'a str,
    /// MAIL FROM address; empty for the null reverse-path.
    pub mail_from: &'a str,
    pub rcpts: &'a [String],
}

/// What to do with the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Deliver to the INBOX.
    Accept,
    /// Deliver to the Junk folder (DMARC p=quarantine failed).
    Junk,
    /// Refuse at the end of DATA with this reply (e.g. 550 5.7.1 for DMARC p=reject).
    Reject {
        code: u16,
        enhanced: String,
        text: String,
    },
    /// Temporary failure (e.g. DNS timeout): 451 4.4.3 and the like.
    TempFail {
        code: u16,
        enhanced: String,
        text: String,
    },
}

#[derive(Debug, Clone)]
pub struct Verdict {
    pub disposition: Disposition,
    /// Header lines (each ending in CRLF) to prepend, e.g. Authentication-Results.
    pub prepend: String,
}

impl Verdict {
    pub fn accept() -> Verdict {
        Verdict {
            disposition: Disposition::Accept,
            prepend: String::new(),
        }
    }

    /// The message as it should be stored: our headers first, forged ones removed.
    pub fn apply(&self, message: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.prepend.len() + message.len());
        out.extend_from_slice(self.prepend.as_bytes());
        out.extend_from_slice(message);
        out
    }
}

/// Check a message received on port 25. (Filled in by the inbound-trust work.)
pub async fn check_message(_svc: &Services, _ctx: &MessageContext<'_>, _message: &[u8]) -> Verdict {
    Verdict::accept()
}
