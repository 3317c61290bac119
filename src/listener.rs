//! The listener shell every protocol shares, around `net::accept_loop`: a connection over the
//! limits gets the protocol's own refusal, an admitted one is served with its slot held until
//! it ends; and the TLS handshake (implicit or after STARTTLS/STLS) under the configured
//! deadline, logging a failure or a timeout with the peer.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;

use crate::net::{Admission, Refusal, accept_loop};
use crate::services::Services;

/// How long a refusal line may take to write to a client that does not read.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Accept on `listener` until shutdown, through the shared connection limiter. Each admitted
/// connection runs `serve` (its limiter slot is released when `serve` ends); each refused one
/// runs `refuse`, which says goodbye in the protocol's words (or closes without a word).
pub fn spawn<S, SFut, R, RFut>(svc: &Arc<Services>, listener: TcpListener, refuse: R, serve: S)
where
    S: Fn(Arc<Services>, TcpStream, SocketAddr) -> SFut + Send + Sync + 'static,
    SFut: Future<Output = ()> + Send + 'static,
    R: Fn(Arc<Services>, TcpStream, SocketAddr, Refusal) -> RFut + Send + Sync + 'static,
    RFut: Future<Output = ()> + Send + 'static,
{
    let handler_svc = svc.clone();
    let (serve, refuse) = (Arc::new(serve), Arc::new(refuse));
    svc.tasks.spawn(accept_loop(
        listener,
        svc.conns.clone(),
        svc.shutdown.clone(),
        svc.tasks.clone(),
        move |stream, peer, admission| {
            let (svc, serve, refuse) = (handler_svc.clone(), serve.clone(), refuse.clone());
            async move {
                match admission {
                    Admission::Accepted(_guard) => serve(svc, stream, peer).await,
                    Admission::Refused(reason) => refuse(svc, stream, peer, reason).await,
                }
            }
        },
    ));
}

/// The usual refusal: `line` on a clear-text port (bounded in time), then close. On an
/// implicit-TLS port a reply would need a TLS handshake first, which is CPU spent for an
/// abuser: the connection is closed without a word.
pub async fn say_unless_tls(mut stream: TcpStream, implicit_tls: bool, line: &[u8]) {
    if !implicit_tls {
        let _ = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, stream.write_all(line)).await;
    }
}

/// The TLS handshake on `stream` with the configured deadline (`[limits]`'s handshake
/// timeout). A failure is logged at debug (scanners cause many), a timeout at info, both as
/// "`what` handshake failed/timeout" with the peer, e.g. `what` = "imaps: TLS".
pub async fn tls_handshake<IO>(
    svc: &Services,
    stream: IO,
    peer: SocketAddr,
    what: &str,
) -> Option<TlsStream<IO>>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let acceptor = svc.tls.acceptor();
    match tokio::time::timeout(svc.config.tls_handshake_timeout(), acceptor.accept(stream)).await {
        Ok(Ok(t)) => Some(t),
        Ok(Err(e)) => {
            tracing::debug!(peer = %peer, "{what} handshake failed: {e}");
            None
        }
        Err(_) => {
            tracing::info!(peer = %peer, "{what} handshake timeout");
            None
        }
    }
}
