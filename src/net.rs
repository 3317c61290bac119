//! Listener plumbing shared by every protocol: connection limits (in total and per client IP)
//! and the accept loop that applies them, so one busy or hostile peer cannot starve others.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Counts open connections; a `ConnGuard` releases its slot when dropped.
pub struct ConnLimiter {
    max_total: usize,
    max_per_ip: usize,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    TooManyTotal,
    TooManyFromIp,
}

pub struct ConnGuard {
    limiter: Arc<ConnLimiter>,
    ip: IpAddr,
}

impl ConnLimiter {
    pub fn new(max_total: usize, max_per_ip: usize) -> Arc<ConnLimiter> {
        Arc::new(ConnLimiter {
            max_total,
            max_per_ip,
            open: Mutex::new((0, HashMap::new())),
        })
    }

    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Result<ConnGuard, Refusal> {
        let mut g = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if g.0 >= self.max_total {
            return Err(Refusal::TooManyTotal);
        }
        let n = g.1.entry(ip).or_insert(0);
        if *n >= self.max_per_ip {
            return Err(Refusal::TooManyFromIp);
        }
        *n += 1;
        g.0 += 1;
        Ok(ConnGuard {
            limiter: self.clone(),
            ip,
        })
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let mut g = self.limiter.open.lock().unwrap_or_else(|e| e.into_inner());
        g.0 -= 1;
        if let Some(n) = g.1.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                g.1.remove(&self.ip);
            }
        }
    }
}

/// What a protocol does with an accepted connection.
pub enum Admission {
    Accepted(ConnGuard),
    Refused(Refusal),
}

/// Accept connections until `shutdown`, run `handle` for each on `tracker`. Refused
/// connections are handed to `handle` too (with `Admission::Refused`) so the protocol can say
/// its own goodbye (SMTP 421, IMAP BYE) before closing.
pub async fn accept_loop<F, Fut>(
    listener: TcpListener,
    limiter: Arc<ConnLimiter>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    handle: F,
) where
    F: Fn(TcpStream, SocketAddr, Admission) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let admission = match limiter.try_acquire(peer.ip()) {
                    Ok(g) => Admission::Accepted(g),
                    Err(r) => {
                        tracing::warn!(peer = %peer, reason = ?r, "connection refused: limit reached");
                        Admission::Refused(r)
                    }
                };
                tracker.spawn(handle(stream, peer, admission));
            }
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::error!("accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_total_and_per_ip() {
        let l = ConnLimiter::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let g1 = l.try_acquire(a).unwrap();
        let _g2 = l.try_acquire(a).unwrap();
        assert_eq!(l.try_acquire(a).err(), Some(Refusal::TooManyFromIp));
        let _g3 = l.try_acquire(b).unwrap();
        assert_eq!(l.try_acquire(b).err(), Some(Refusal::TooManyTotal));
        drop(g1);
        assert!(l.try_acquire(a).is_ok());
    }
}
