//! HTTP: ACME HTTP-01 answers, Thunderbird autoconfig, the MTA-STS policy, /metrics.

use std::sync::Arc;

use tokio::net::TcpListener;

use crate::server::Services;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Http,
    Https,
    Metrics,
}

pub fn spawn_listener(_svc: Arc<Services>, _listener: TcpListener, kind: Kind) {
    tracing::warn!("HTTP {kind:?} listener is not built yet");
}
