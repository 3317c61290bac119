//! HTTP: ACME HTTP-01 answers, Thunderbird autoconfig, the MTA-STS policy, /metrics.
//!
//! One small hyper 1 (HTTP/1.1) server behind three kinds of listener:
//! - `Kind::Http` (listen.http, port 80): HTTP-01 tokens, autoconfig, MTA-STS policy;
//! - `Kind::Https` (listen.https, port 443): the same routes over TLS (MTA-STS requires HTTPS,
//!   RFC 8461 §3.3); a handshake that negotiated `acme-tls/1` is a TLS-ALPN-01 validation and is
//!   closed right after it (RFC 8737 §3);
//! - `Kind::Metrics` (listen.metrics, opt-in): only the Prometheus `/metrics` page.
//!
//! Limits: connections in total and per IP (`[limits]`, via `net::ConnLimiter`), request header
//! size (`MAX_HEADER_BYTES`), the time to send the headers, and the lifetime of a connection.

mod autoconfig;
pub mod mta_sts;
mod routes;

pub use autoconfig::{ClientPorts, render_autoconfig};
pub use routes::route;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

use crate::metrics::Metrics;
use crate::services::Services;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Http,
    Https,
    Metrics,
}

/// Largest request head (request line + headers) we buffer; hyper answers 431 beyond it.
/// hyper's floor for this buffer is 8 KiB.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Most header fields in one request.
pub const MAX_HEADERS: usize = 64;
/// Time a client gets to send a complete request head.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a connection may stay open (keep-alive included); our answers are all tiny.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);

/// Serve `kind` on `listener` until shutdown.
pub fn spawn_listener(svc: Arc<Services>, listener: TcpListener, kind: Kind) {
    crate::listener::spawn(
        &svc,
        listener,
        move |_, stream, _, _| async move {
            // On 443 a refusal would need a TLS handshake first: just close.
            if kind != Kind::Https {
                refuse(stream).await;
            }
        },
        move |svc, stream, peer| async move {
            Metrics::inc(&svc.metrics.http_connections);
            handle(svc, stream, peer, kind).await;
        },
    );
}

/// Over the connection limit: 503 (RFC 9110 §15.6.4) without reading the request, then close.
async fn refuse(mut stream: TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 10\r\n\
Content-Type: text/plain\r\nContent-Length: 21\r\nConnection: close\r\n\r\n\
too many connections\n";
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.write_all(BUSY)).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.shutdown()).await;
    // Read (and drop) what the client sent, briefly and boundedly: closing with unread input
    // would reset the connection and could destroy the 503 before the client reads it.
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        for _ in 0..4 {
            if matches!(stream.read(&mut sink).await, Ok(0) | Err(_)) {
                break;
            }
        }
    })
    .await;
}

async fn handle(svc: Arc<Services>, stream: TcpStream, peer: SocketAddr, kind: Kind) {
    match kind {
        Kind::Http | Kind::Metrics => serve(svc, stream, peer, kind).await,
        Kind::Https => {
            let acceptor = svc.tls.https_acceptor();
            let limit = svc.config.tls_handshake_timeout();
            let tls = match tokio::time::timeout(limit, acceptor.accept(stream)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, "https: TLS handshake failed: {e}");
                    return;
                }
                Err(_) => {
                    tracing::info!(%peer, "https: TLS handshake timeout");
                    return;
                }
            };
            if tls.get_ref().1.alpn_protocol() == Some(b"acme-tls/1") {
                // RFC 8737 §3: the validation is the handshake itself; nothing more is sent.
                tracing::info!(%peer, "https: answered an ACME TLS-ALPN-01 validation");
                return;
            }
            serve(svc, tls, peer, kind).await
        }
    }
}

async fn serve<S>(svc: Arc<Services>, io: S, peer: SocketAddr, kind: Kind)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let shutdown = svc.shutdown.clone();
    let svc2 = svc.clone();
    let service = service_fn(move |req: Request<Incoming>| {
        let svc = svc2.clone();
        async move {
            let resp = answer(&svc, &req, kind, peer);
            Ok::<_, std::convert::Infallible>(resp)
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES)
        .max_headers(MAX_HEADERS)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let lifetime = tokio::time::sleep(CONNECTION_LIFETIME);
    tokio::pin!(lifetime);
    let mut closing = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(%peer, "http connection ended: {e}");
                }
                return;
            }
            _ = shutdown.cancelled(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = &mut lifetime => {
                if closing {
                    return;
                }
                // Let a request in flight finish; then close. A client that stalls is cut
                // off when the lifetime expires a second time.
                closing = true;
                conn.as_mut().graceful_shutdown();
                lifetime.as_mut().reset(tokio::time::Instant::now() + HEADER_TIMEOUT);
            }
        }
    }
}

fn answer(
    svc: &Services,
    req: &Request<Incoming>,
    kind: Kind,
    peer: SocketAddr,
) -> Response<Full<Bytes>> {
    let ctx = routes::Context {
        config: &svc.config,
        metrics: &svc.metrics,
        tls: &svc.tls,
        extra_metrics: (kind == Kind::Metrics)
            .then(|| svc.authenticator.stats().render_prometheus()),
    };
    let resp = route(&ctx, kind, req.method(), req.uri());
    tracing::debug!(
        %peer,
        method = %req.method(),
        path = req.uri().path(),
        status = resp.status().as_u16(),
        "http request"
    );
    resp
}
