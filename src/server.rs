//! `postern serve`: build the services once, bind every configured listener, run until
//! SIGTERM/SIGINT, then stop accepting and let sessions in flight finish (bounded).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::config::Config;
pub use crate::services::Services;

/// Bind one listener with an error that names the config key.
async fn bind(addr: SocketAddr, key: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr} (listen.{key}): is another server using it, or does the port need root / CAP_NET_BIND_SERVICE?")
    })
}

/// Start every listener and background task; returns once all are bound.
pub async fn start(svc: &Arc<Services>) -> anyhow::Result<()> {
    let cfg = svc.config.clone();
    for &addr in &cfg.listen.smtp {
        let l = bind(addr, "smtp").await?;
        tracing::info!("smtp listening on {addr}");
        crate::smtp::spawn_listener(svc.clone(), l, crate::smtp::Mode::Mx);
    }
    for &addr in &cfg.listen.submission {
        let l = bind(addr, "submission").await?;
        tracing::info!("submission listening on {addr}");
        crate::smtp::spawn_listener(svc.clone(), l, crate::smtp::Mode::Submission);
    }
    for &addr in &cfg.listen.submissions {
        let l = bind(addr, "submissions").await?;
        tracing::info!("submissions listening on {addr}");
        crate::smtp::spawn_listener(svc.clone(), l, crate::smtp::Mode::Submissions);
    }
    for &addr in &cfg.listen.imap {
        let l = bind(addr, "imap").await?;
        tracing::info!("imap listening on {addr}");
        crate::imap::spawn_listener(svc.clone(), l, false);
    }
    for &addr in &cfg.listen.imaps {
        let l = bind(addr, "imaps").await?;
        tracing::info!("imaps listening on {addr}");
        crate::imap::spawn_listener(svc.clone(), l, true);
    }
    for &addr in &cfg.listen.managesieve {
        let l = bind(addr, "managesieve").await?;
        tracing::info!("managesieve listening on {addr}");
        crate::managesieve::spawn_listener(svc.clone(), l);
    }
    for &addr in &cfg.listen.http {
        let l = bind(addr, "http").await?;
        tracing::info!("http listening on {addr}");
        crate::http::spawn_listener(svc.clone(), l, crate::http::Kind::Http);
    }
    for &addr in &cfg.listen.https {
        let l = bind(addr, "https").await?;
        tracing::info!("https listening on {addr}");
        crate::http::spawn_listener(svc.clone(), l, crate::http::Kind::Https);
    }
    for &addr in &cfg.listen.metrics {
        let l = bind(addr, "metrics").await?;
        tracing::info!("metrics listening on {addr}");
        crate::http::spawn_listener(svc.clone(), l, crate::http::Kind::Metrics);
    }
    crate::queue::scheduler::spawn_scheduler(svc.clone());
    crate::tlsrpt::task::spawn(svc.clone());
    crate::tls::spawn_maintenance(crate::tls::Maintenance {
        config: svc.config.clone(),
        tls: svc.tls.clone(),
        metrics: svc.metrics.clone(),
        shutdown: svc.shutdown.clone(),
        tasks: svc.tasks.clone(),
    });
    Ok(())
}

/// Run until SIGTERM or SIGINT, then shut down gracefully.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let svc = Services::build(config)?;
    start(&svc).await?;
    tracing::info!(domain = %svc.config.domain, hostname = %svc.config.hostname, "postern started");
    wait_for_signal(&svc).await;
    tracing::info!("shutting down: no new connections; waiting up to 30 s for sessions in flight");
    svc.shutdown.cancel();
    svc.tasks.close();
    if tokio::time::timeout(Duration::from_secs(30), svc.tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            "sessions still open after 30 s; exiting (acknowledged mail is already on disk)"
        );
    }
    tracing::info!("stopped");
    Ok(())
}

async fn wait_for_signal(svc: &Arc<Services>) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    let mut hup = signal(SignalKind::hangup()).expect("SIGHUP handler");
    loop {
        tokio::select! {
            _ = term.recv() => return,
            _ = int.recv() => return,
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading certificates");
                crate::tls::reload(&svc.config, &svc.tls, &svc.metrics);
            }
        }
    }
}
