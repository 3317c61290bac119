//! POP3 server (RFC 1939; CAPA RFC 2449, STLS RFC 2595, AUTH PLAIN RFC 5034) over the user's
//! INBOX. This file is the I/O shell: accept through the shared connection limiter, TLS
//! (implicit on 995, STLS on 110) with the handshake deadline, timeouts, and logins through
//! the accounts' throttle; the protocol lives in the sans-IO `session`, the mailbox behind
//! the `maildrop::Maildrop` trait.

pub mod body;
pub mod in_use;
pub mod maildrop;
pub mod session;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::accounts::Refusal;
use crate::accounts::sasl::Credentials;
use crate::listener;
use crate::services::Services;
use maildrop::{Maildrop, StoreMaildrop};
use session::{LoginError, Session, Step};

/// RFC 1939 §3: an inactivity autologout timer of at least 10 minutes once logged in.
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// A client that stops reading must not hold the session forever: each write gets this long.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5 * 60);

pub fn spawn_listener(svc: Arc<Services>, listener: TcpListener, implicit_tls: bool) {
    listener::spawn(
        &svc,
        listener,
        // RFC 2449 §8.1.2: [SYS/TEMP], a temporary problem on our side.
        move |_, stream, _, _| {
            listener::say_unless_tls(
                stream,
                implicit_tls,
                b"-ERR [SYS/TEMP] too many connections\r\n",
            )
        },
        move |svc, stream, peer| async move {
            crate::metrics::Metrics::inc(&svc.metrics.pop3_connections);
            serve_conn(svc, stream, peer, implicit_tls).await;
        },
    );
}

async fn serve_conn(svc: Arc<Services>, stream: TcpStream, peer: SocketAddr, implicit_tls: bool) {
    tracing::debug!(peer = %peer, implicit_tls, "pop3 connection");
    let allow_plain = svc.config.imap.allow_plaintext_auth;
    if implicit_tls {
        let Some(tls) = listener::tls_handshake(&svc, stream, peer, "pop3s: TLS").await else {
            return;
        };
        let sess = Session::new(true, allow_plain);
        let greeting = sess.greeting();
        drive(&svc, peer.ip(), tls, sess, greeting).await;
        return;
    }
    let sess = Session::new(false, allow_plain);
    let greeting = sess.greeting();
    if let Outcome::StartTls(stream, mut sess) =
        drive(&svc, peer.ip(), stream, sess, greeting).await
    {
        let Some(tls) = listener::tls_handshake(&svc, stream, peer, "pop3: STLS").await else {
            return;
        };
        sess.tls_started();
        drive(&svc, peer.ip(), tls, *sess, Vec::new()).await;
    }
}

enum Outcome<S> {
    Done,
    StartTls(S, Box<Session>),
}

/// Run the session's (blocking: maildrop reads, UPDATE) step off the runtime.
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

/// Check credentials and open the maildrop, off the runtime (Argon2, directory scan).
async fn login(
    svc: &Arc<Services>,
    ip: IpAddr,
    creds: Credentials,
    sess: Session,
) -> Option<(Session, Vec<u8>)> {
    let svc = svc.clone();
    tokio::task::spawn_blocking(move || {
        let mut sess = sess;
        let mut out = Vec::new();
        let result = authenticate(&svc, ip, &creds).and_then(|user| {
            let Some(held) = svc.pop3_in_use.take(&user) else {
                tracing::info!(peer = %ip, user = %user, "pop3 login refused: maildrop in use");
                return Err(LoginError::InUse);
            };
            StoreMaildrop::open(&svc.store, &user, held)
                .map(|m| {
                    tracing::info!(peer = %ip, user = %user, "pop3 login");
                    Box::new(m) as Box<dyn Maildrop>
                })
                .map_err(|e| {
                    tracing::error!("pop3: cannot open the INBOX of {user}: {e}");
                    LoginError::Unavailable
                })
        });
        sess.login_done(result, &mut out);
        (sess, out)
    })
    .await
    .ok()
}

/// The one login entry point of every protocol (`accounts::login`): the same canonical
/// names, throttle, auth cache and fail2ban line (`auth failed: service=pop3 ...`) as IMAP
/// and SMTP.
fn authenticate(svc: &Services, ip: IpAddr, c: &Credentials) -> Result<String, LoginError> {
    svc.logins
        .login_blocking("pop3", ip, c)
        .map_err(|r| match r {
            Refusal::Throttled => LoginError::Throttled,
            Refusal::NotAuthorized => LoginError::NotAuthorized,
            Refusal::BadName | Refusal::Invalid => LoginError::Invalid,
        })
}

async fn send<S: AsyncWrite + Unpin>(stream: &mut S, data: &[u8]) -> bool {
    matches!(
        tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(data)).await,
        Ok(Ok(()))
    )
}

/// Drive a session over a stream until it closes or asks for STLS.
async fn drive<S: AsyncRead + AsyncWrite + Unpin + Send>(
    svc: &Arc<Services>,
    ip: IpAddr,
    mut stream: S,
    mut sess: Session,
    greeting: Vec<u8>,
) -> Outcome<S> {
    if !greeting.is_empty() && !send(&mut stream, &greeting).await {
        return Outcome::Done;
    }
    let preauth = Duration::from_secs(svc.config.limits.imap_preauth_timeout_secs.max(1));
    let limit = |s: &Session| {
        if s.is_authenticated() {
            TRANSACTION_TIMEOUT
        } else {
            preauth
        }
    };
    // The timer runs from the last reply, not the last byte: a client trickling a command
    // one byte at a time still runs out of time.
    let mut deadline = tokio::time::Instant::now() + limit(&sess);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let Some((s, out, st)) = step(sess).await else {
            return Outcome::Done;
        };
        sess = s;
        if !out.is_empty() {
            if !send(&mut stream, &out).await {
                return Outcome::Done;
            }
            deadline = tokio::time::Instant::now() + limit(&sess);
        }
        match st {
            Step::Continue => continue,
            Step::Malformed => {
                svc.logins.malformed("pop3", ip, "-");
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
            Step::Login(creds) => {
                let Some((s, out)) = login(svc, ip, creds, sess).await else {
                    return Outcome::Done;
                };
                sess = s;
                if !send(&mut stream, &out).await {
                    return Outcome::Done;
                }
                deadline = tokio::time::Instant::now() + limit(&sess);
            }
            Step::NeedInput => {
                let _ = stream.flush().await;
                tokio::select! {
                    r = stream.read(&mut buf) => match r {
                        Ok(0) | Err(_) => return Outcome::Done,
                        Ok(n) => sess.input(&buf[..n]),
                    },
                    _ = tokio::time::sleep_until(deadline) => {
                        send(&mut stream, b"-ERR autologout; idle for too long\r\n").await;
                        return Outcome::Done;
                    }
                    _ = svc.shutdown.cancelled() => {
                        send(&mut stream, b"-ERR [SYS/TEMP] server shutting down\r\n").await;
                        return Outcome::Done;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
