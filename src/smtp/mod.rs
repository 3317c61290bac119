//! SMTP: the receiver on port 25 (RFC 5321), submission on 587/465 (RFC 6409, RFC 8314).
//!
//! Layout: `line` (command framing) and `data` (DATA/BDAT body decoding) turn bytes into
//! lines and messages (`data` also holds the line-ending rules that stop SMTP smuggling);
//! `session` is the sans-IO state machine that turns command lines into replies and actions
//! (`session/auth.rs` the SASL exchange, `session/envelope.rs` MAIL/RCPT and the relay check,
//! `session/content.rs` DATA/BDAT and the message checks); `auth` decodes SASL; `headers` builds trace and missing headers;
//! `transaction` hands a finished message to delivery; `server` is the tokio loop (TLS,
//! timeouts, limits) around all of it.

pub mod data;
pub mod headers;
pub mod line;
pub mod reply;
pub mod server;
pub mod session;
pub mod transaction;

/// Which SMTP service a listener provides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Port 25: mail from the internet for our domain only.
    Mx,
    /// Port 587: STARTTLS, then AUTH, then mail to anywhere.
    Submission,
    /// Port 465: implicit TLS, then AUTH.
    Submissions,
}

impl Mode {
    /// The service name used in logs (the fail2ban filter matches `service=smtp-submission`).
    pub fn service(self) -> &'static str {
        match self {
            Mode::Mx => "smtp",
            Mode::Submission | Mode::Submissions => "smtp-submission",
        }
    }
}

pub use server::spawn as spawn_listener;
