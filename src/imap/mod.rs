//! IMAP4rev1/IMAP4rev2 server (RFC 3501, RFC 9051 after ENABLE, and the extensions listed in
//! `session.rs`) over the Maildir store. This file is the I/O shell: accept, TLS (implicit on
//! 993, STARTTLS on 143), timeouts and IDLE waiting; the protocol lives in the sans-IO
//! `session`.

pub mod condstore;
pub mod fetch;
pub mod framer;
pub mod list;
pub mod mime;
pub mod search;
pub mod searchres;
pub mod session;
pub mod wire;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::net::{Admission, ConnLimiter, accept_loop};
use crate::server::Services;
use session::{Session, Step};

/// Unauthenticated clients get this long per command.
const PREAUTH_TIMEOUT: Duration = Duration::from_secs(60);
/// How often IDLE looks at the Maildir for deliveries made by other programs.
const IDLE_POLL: Duration = Duration::from_secs(1);

pub fn spawn_listener(svc: Arc<Services>, listener: TcpListener, implicit_tls: bool) {
    let limits = &svc.config.limits;
    let limiter = ConnLimiter::new(limits.max_connections, limits.max_connections_per_ip);
    let shutdown = svc.shutdown.clone();
    let tracker = svc.tasks.clone();
    let tasks = svc.tasks.clone();
    tasks.spawn(accept_loop(
        listener,
        limiter,
        shutdown,
        tracker,
        move |stream, peer, admission| {
            let svc = svc.clone();
            async move {
                match admission {
                    Admission::Accepted(_guard) => {
                        crate::metrics::Metrics::inc(&svc.metrics.imap_connections);
                        serve_conn(svc, stream, peer, implicit_tls).await;
                    }
                    Admission::Refused(_) => {
                        let mut s = stream;
                        if !implicit_tls {
                            let _ = s.write_all(b"* BYE too many connections\r\n").await;
                        }
                    }
                }
            }
        },
    ));
}

async fn serve_conn(svc: Arc<Services>, stream: TcpStream, peer: SocketAddr, implicit_tls: bool) {
    tracing::debug!(peer = %peer, implicit_tls, "imap connection");
    let acceptor = svc.tls.acceptor();
    if implicit_tls {
        let tls = match tokio::time::timeout(PREAUTH_TIMEOUT, acceptor.accept(stream)).await {
            Ok(Ok(t)) => t,
            _ => {
                tracing::debug!(peer = %peer, "imaps: TLS handshake failed");
                return;
            }
        };
        let sess = Session::new(svc.clone(), peer.ip(), true);
        let greeting = sess.greeting();
        drive(&svc, tls, sess, greeting).await;
        return;
    }
    let sess = Session::new(svc.clone(), peer.ip(), false);
    let greeting = sess.greeting();
    if let Outcome::StartTls(stream, mut sess) = drive(&svc, stream, sess, greeting).await {
        let tls = match tokio::time::timeout(PREAUTH_TIMEOUT, acceptor.accept(stream)).await {
            Ok(Ok(t)) => t,
            _ => {
                tracing::debug!(peer = %peer, "imap: STARTTLS handshake failed");
                return;
            }
        };
        sess.tls_started();
        drive(&svc, tls, *sess, Vec::new()).await;
    }
}

enum Outcome<S> {
    Done,
    StartTls(S, Box<Session>),
}

enum Wake {
    Input(std::io::Result<usize>),
    Changed,
    Timeout,
    Shutdown,
}

/// Run the session's blocking step off the runtime.
async fn step(sess: Session) -> Option<(Session, Vec<u8>, Step)> {
    tokio::task::spawn_blocking(move || {
        let mut sess = sess;
        let mut out = Vec::new();
        let st = sess.step(&mut out);
        (sess, out, st)
    })
    .await
    .ok()
}

async fn idle_sync(sess: Session) -> Option<(Session, Vec<u8>)> {
    tokio::task::spawn_blocking(move || {
        let mut sess = sess;
        let mut out = Vec::new();
        sess.idle_sync(&mut out);
        (sess, out)
    })
    .await
    .ok()
}

/// Drive a session over a stream until it closes or asks for STARTTLS.
async fn drive<S: AsyncRead + AsyncWrite + Unpin + Send>(
    svc: &Arc<Services>,
    mut stream: S,
    mut sess: Session,
    greeting: Vec<u8>,
) -> Outcome<S> {
    if !greeting.is_empty() && stream.write_all(&greeting).await.is_err() {
        return Outcome::Done;
    }
    let idle_timeout = Duration::from_secs(svc.config.limits.imap_idle_timeout_secs.max(60));
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let Some((s, out, st)) = step(sess).await else {
            return Outcome::Done;
        };
        sess = s;
        if !out.is_empty() && stream.write_all(&out).await.is_err() {
            return Outcome::Done;
        }
        let limit = if sess.is_authenticated() {
            idle_timeout
        } else {
            PREAUTH_TIMEOUT
        };
        match st {
            Step::Continue => continue,
            Step::Close => {
                let _ = stream.flush().await;
                let _ = stream.shutdown().await;
                return Outcome::Done;
            }
            Step::StartTls => {
                let _ = stream.flush().await;
                return Outcome::StartTls(stream, Box::new(sess));
            }
            Step::NeedInput | Step::Idle => {
                let _ = stream.flush().await;
                let deadline = tokio::time::Instant::now() + limit;
                let mut watch = if st == Step::Idle {
                    sess.idle_watch()
                } else {
                    None
                };
                loop {
                    let wake = tokio::select! {
                        r = stream.read(&mut buf) => Wake::Input(r),
                        _ = tokio::time::sleep_until(deadline) => Wake::Timeout,
                        _ = svc.shutdown.cancelled() => Wake::Shutdown,
                        _ = async {
                            match watch.as_mut() {
                                Some(w) => {
                                    let _ = tokio::time::timeout(IDLE_POLL, w.changed()).await;
                                }
                                None => std::future::pending::<()>().await,
                            }
                        } => Wake::Changed,
                    };
                    match wake {
                        Wake::Input(Ok(0)) | Wake::Input(Err(_)) => return Outcome::Done,
                        Wake::Input(Ok(n)) => {
                            sess.input(&buf[..n]);
                            break;
                        }
                        Wake::Timeout => {
                            let _ = stream
                                .write_all(b"* BYE Autologout; idle for too long\r\n")
                                .await;
                            return Outcome::Done;
                        }
                        Wake::Shutdown => {
                            let _ = stream
                                .write_all(b"* BYE [UNAVAILABLE] server shutting down\r\n")
                                .await;
                            return Outcome::Done;
                        }
                        Wake::Changed => {
                            let Some((s, out)) = idle_sync(sess).await else {
                                return Outcome::Done;
                            };
                            sess = s;
                            if !out.is_empty() && stream.write_all(&out).await.is_err() {
                                return Outcome::Done;
                            }
                            if sess.is_closing() {
                                let _ = stream.flush().await;
                                return Outcome::Done;
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod condstore_tests;
#[cfg(test)]
mod session_tests;
