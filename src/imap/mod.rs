//! IMAP4rev1/rev2 server over the Maildir store.

use std::sync::Arc;

use tokio::net::TcpListener;

use crate::server::Services;

pub fn spawn_listener(_svc: Arc<Services>, _listener: TcpListener, implicit_tls: bool) {
    tracing::warn!("IMAP listener (implicit_tls={implicit_tls}) is not built yet");
}
pub mod mime;
pub mod wire;
