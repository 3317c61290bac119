//! SMTP: the receiver on port 25 (RFC 5321), submission on 587/465 (RFC 6409, RFC 8314), and
//! the client used by the outbound queue.

use std::sync::Arc;

use tokio::net::TcpListener;

use crate::server::Services;

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

pub fn spawn_listener(_svc: Arc<Services>, _listener: TcpListener, mode: Mode) {
    tracing::warn!("SMTP {mode:?} listener is not built yet");
}
