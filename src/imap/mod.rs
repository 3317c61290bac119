//! IMAP4rev1/IMAP4rev2 server (RFC 3501, RFC 9051 after ENABLE, and the extensions listed in
//! `session.rs`) over the Maildir store. This file is the I/O shell: accept, TLS (implicit on
//! 993, STARTTLS on 143), timeouts and IDLE waiting; the protocol lives in the sans-IO
//! `session`.

pub mod command;
pub mod compress;
pub mod condstore;
pub mod flag_list;
pub mod framer;
mod idle_poll;
pub mod mime;
pub mod parse;
pub mod search;
pub mod seqset;
pub mod session;
pub mod view;
pub mod wire;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::listener;
use crate::services::Services;
use session::{Session, Step};

pub fn spawn_listener(svc: Arc<Services>, listener: TcpListener, implicit_tls: bool) {
    listener::spawn(
        &svc,
        listener,
        // RFC 9051 §7.1.5: BYE as the greeting refuses the connection.
        move |_, stream, _, _| {
            listener::say_unless_tls(
                stream,
                implicit_tls,
                b"* BYE [UNAVAILABLE] too many connections\r\n",
            )
        },
        move |svc, stream, peer| async move {
            crate::metrics::Metrics::inc(&svc.metrics.imap_connections);
            serve_conn(svc, stream, peer, implicit_tls).await;
        },
    );
}

async fn serve_conn(svc: Arc<Services>, stream: TcpStream, peer: SocketAddr, implicit_tls: bool) {
    tracing::debug!(peer = %peer, implicit_tls, "imap connection");
    if implicit_tls {
        let Some(tls) = listener::tls_handshake(&svc, stream, peer, "imaps: TLS").await else {
            return;
        };
        let sess = Session::new(svc.clone(), peer.ip(), true);
        let greeting = sess.greeting();
        drive(&svc, tls, sess, greeting).await;
        return;
    }
    let sess = Session::new(svc.clone(), peer.ip(), false);
    let greeting = sess.greeting();
    if let Outcome::StartTls(stream, mut sess) = drive(&svc, stream, sess, greeting).await {
        let Some(tls) = listener::tls_handshake(&svc, stream, peer, "imap: STARTTLS").await else {
            return;
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

/// Output collected by one blocking call before it goes to the client.
const STEP_BATCH_OUT: usize = 64 * 1024;

/// Run the session's blocking steps off the runtime: one call runs steps while they say
/// Continue (the rest of a pipelined batch, the next FETCH slice) until the session needs
/// input or has a screenful of output, so a command costs one trip to the blocking pool, not
/// two (issue 15's profile: thread hand-offs were a large share of a small command).
async fn step(sess: Session) -> Option<(Session, Vec<u8>, Step)> {
    tokio::task::spawn_blocking(move || {
        let mut sess = sess;
        let mut out = Vec::new();
        let mut st = sess.step(&mut out);
        while st == Step::Continue && out.len() < STEP_BATCH_OUT {
            st = sess.step(&mut out);
        }
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

/// Read buffer of a connection: it starts small (what an idle connection keeps, beside its
/// TLS state), doubles while reads fill it (bulk input such as an APPEND) up to `READ_MAX`,
/// and goes back to `READ_MIN` when the session waits after small reads.
const READ_MIN: usize = 4 * 1024;
const READ_MAX: usize = 64 * 1024;

/// Slowest input that still counts as progress: each MIN_RATE bytes received add a second to
/// the command deadline (a trickle of a byte every few seconds earns nothing).
const MIN_RATE: u64 = 1024;

fn earned(received: u64) -> Duration {
    Duration::from_secs(received / MIN_RATE)
}

/// A client that stops reading must not hold the session forever: each write gets this long.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// Write `data`; false when the client is gone or did not read it in time.
async fn send<S: AsyncWrite + Unpin>(stream: &mut S, data: &[u8]) -> bool {
    matches!(
        tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(data)).await,
        Ok(Ok(()))
    )
}

/// Write `data`, deflated when COMPRESS is active.
async fn send_z<S: AsyncWrite + Unpin>(
    stream: &mut S,
    z: &mut Option<compress::Deflate>,
    data: &[u8],
) -> bool {
    match z {
        Some(z) => send(stream, &z.deflate(data)).await,
        None => send(stream, data).await,
    }
}

/// Drive a session over a stream until it closes or asks for STARTTLS.
async fn drive<S: AsyncRead + AsyncWrite + Unpin + Send>(
    svc: &Arc<Services>,
    mut stream: S,
    mut sess: Session,
    greeting: Vec<u8>,
) -> Outcome<S> {
    if !greeting.is_empty() && !send(&mut stream, &greeting).await {
        return Outcome::Done;
    }
    let idle_timeout = Duration::from_secs(svc.config.limits.imap_idle_timeout_secs.max(60));
    let preauth_timeout = Duration::from_secs(svc.config.limits.imap_preauth_timeout_secs.max(1));
    let limit = |sess: &Session| {
        if sess.is_authenticated() {
            idle_timeout
        } else {
            preauth_timeout
        }
    };
    // RFC 9051 §5.4: the autologout timer runs from the last *command*, not the last byte:
    // a client trickling one byte at a time (slowloris) still runs out of time. It restarts
    // whenever the session answers (a command done, or a literal continuation asked for).
    // Bytes that do arrive buy time at MIN_RATE, so a slow but honest APPEND still finishes.
    let mut deadline = tokio::time::Instant::now() + limit(&sess);
    let mut received: u64 = 0;
    let mut buf = vec![0u8; READ_MIN];
    let mut last_read = 0;
    // COMPRESS=DEFLATE (RFC 4978), once the session has said OK to it.
    let mut z: Option<compress::Deflate> = None;
    loop {
        let Some((s, out, st)) = step(sess).await else {
            return Outcome::Done;
        };
        sess = s;
        if !out.is_empty() {
            if !send_z(&mut stream, &mut z, &out).await {
                return Outcome::Done;
            }
            deadline = tokio::time::Instant::now() + limit(&sess);
            received = 0;
        }
        match st {
            Step::Continue => continue,
            Step::Compress => {
                // What the client sent right behind COMPRESS (in the same packet) is already
                // deflated (RFC 4978 §3): it goes through the inflater too, not the parser.
                let mut d = compress::Deflate::new();
                let early = sess.take_unread();
                match d.inflate(&early) {
                    Ok(_) if early.is_empty() => {}
                    Ok(plain) => sess.input(&plain),
                    Err(e) => {
                        tracing::debug!(peer = %sess.peer, "imap compress: {e}");
                        let bye = d.deflate(format!("* BYE {e}\r\n").as_bytes());
                        send(&mut stream, &bye).await;
                        return Outcome::Done;
                    }
                }
                z = Some(d);
                continue;
            }
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
                if buf.len() > READ_MIN && last_read < buf.len() / 4 {
                    // The bulk input is over: an idle connection keeps only the small buffer.
                    buf = vec![0u8; READ_MIN];
                }
                let mut watch = if st == Step::Idle {
                    sess.idle_watch().map(|(w, mb)| {
                        idle_poll::ensure_poller(&mb);
                        w
                    })
                } else {
                    None
                };
                loop {
                    let wake = tokio::select! {
                        r = stream.read(&mut buf) => Wake::Input(r),
                        _ = tokio::time::sleep_until(deadline + earned(received)) => Wake::Timeout,
                        _ = svc.shutdown.cancelled() => Wake::Shutdown,
                        _ = async {
                            match watch.as_mut() {
                                // The session holds the mailbox and with it the sender;
                                // were it gone, there would be nothing more to wait for.
                                Some(w) => {
                                    if w.changed().await.is_err() {
                                        std::future::pending::<()>().await;
                                    }
                                }
                                None => std::future::pending::<()>().await,
                            }
                        } => Wake::Changed,
                    };
                    match wake {
                        Wake::Input(Ok(0)) | Wake::Input(Err(_)) => return Outcome::Done,
                        Wake::Input(Ok(n)) => {
                            received += n as u64;
                            last_read = n;
                            match z.as_mut().map(|z| z.inflate(&buf[..n])) {
                                None => sess.input(&buf[..n]),
                                Some(Ok(plain)) => sess.input(&plain),
                                Some(Err(e)) => {
                                    tracing::debug!(peer = %sess.peer, "imap compress: {e}");
                                    send_z(
                                        &mut stream,
                                        &mut z,
                                        format!("* BYE {e}\r\n").as_bytes(),
                                    )
                                    .await;
                                    return Outcome::Done;
                                }
                            }
                            if n == buf.len() && buf.len() < READ_MAX {
                                // Bulk input (an APPEND): read in larger pieces.
                                buf = vec![0u8; buf.len() * 2];
                            }
                            break;
                        }
                        Wake::Timeout => {
                            send_z(
                                &mut stream,
                                &mut z,
                                b"* BYE Autologout; idle for too long\r\n",
                            )
                            .await;
                            return Outcome::Done;
                        }
                        Wake::Shutdown => {
                            send_z(
                                &mut stream,
                                &mut z,
                                b"* BYE [UNAVAILABLE] server shutting down\r\n",
                            )
                            .await;
                            return Outcome::Done;
                        }
                        Wake::Changed => {
                            let Some((s, out)) = idle_sync(sess).await else {
                                return Outcome::Done;
                            };
                            sess = s;
                            if !out.is_empty() && !send_z(&mut stream, &mut z, &out).await {
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
