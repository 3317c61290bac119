//! ManageSieve (RFC 5804): users upload, check and activate their Sieve scripts. A sans-IO
//! session (`session`) over the command syntax (`wire`), and the listener here: STARTTLS,
//! then AUTHENTICATE PLAIN through the shared login entry point (`accounts::login`).

pub mod session;
pub mod wire;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::listener;
use crate::services::Services;
use crate::sieve::scripts::ScriptStore;
use session::{Event, Session};

/// An idle or silent client is dropped after this long.
const IDLE: Duration = Duration::from_secs(10 * 60);
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

pub fn spawn_listener(svc: Arc<Services>, listener: TcpListener) {
    listener::spawn(
        &svc,
        listener,
        |_, stream, _, _| {
            listener::say_unless_tls(stream, false, b"BYE \"Too many connections\"\r\n")
        },
        serve_conn,
    );
}

enum Outcome<S> {
    Done,
    StartTls(S, Session),
}

async fn serve_conn(svc: Arc<Services>, stream: TcpStream, peer: SocketAddr) {
    tracing::debug!(peer = %peer, "managesieve connection");
    let scripts = Arc::new(ScriptStore::new(&svc.config.data_dir));
    let sess = Session::new(scripts, false, false);
    let greeting = vec![Event::Send(sess.greeting())];
    if let Outcome::StartTls(stream, mut sess) = drive(&svc, peer, stream, sess, greeting).await {
        let Some(tls) = listener::tls_handshake(&svc, stream, peer, "managesieve: STARTTLS").await
        else {
            return;
        };
        let after = sess.tls_started();
        drive(&svc, peer, tls, sess, after).await;
    }
}

async fn drive<S: AsyncRead + AsyncWrite + Unpin + Send>(
    svc: &Arc<Services>,
    peer: SocketAddr,
    mut stream: S,
    mut sess: Session,
    first: Vec<Event>,
) -> Outcome<S> {
    let mut buf = vec![0u8; 16 * 1024];
    let mut pending: VecDeque<Event> = first.into();
    loop {
        // Perform what the session asked for, in order.
        while let Some(ev) = pending.pop_front() {
            match ev {
                Event::Send(b) => {
                    let sent = tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(&b)).await;
                    if !matches!(sent, Ok(Ok(()))) {
                        return Outcome::Done;
                    }
                }
                Event::Close => return Outcome::Done,
                Event::StartTls => return Outcome::StartTls(stream, sess),
                Event::Login(creds) => {
                    let user = creds.user.clone();
                    let res = match svc.logins.login("managesieve", peer.ip(), creds).await {
                        Ok(u) => {
                            tracing::info!(peer = %peer, user = %u, "managesieve login");
                            Ok(u)
                        }
                        Err(r) => {
                            tracing::info!(
                                peer = %peer,
                                user = %crate::logsafe::Untrusted(&user),
                                "managesieve login refused: {r:?}"
                            );
                            Err("Authentication failed")
                        }
                    };
                    // The reply, then whatever the client pipelined behind AUTHENTICATE.
                    let mut more = sess.auth_result(res);
                    more.extend(sess.input(&[]));
                    for e in more.into_iter().rev() {
                        pending.push_front(e);
                    }
                }
            }
        }
        let n = match tokio::time::timeout(IDLE, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Outcome::Done,
            Ok(Ok(n)) => n,
            Err(_) => {
                let _ = stream.write_all(b"BYE \"Idle timeout\"\r\n").await;
                return Outcome::Done;
            }
        };
        pending = sess.input(&buf[..n]).into();
    }
}
