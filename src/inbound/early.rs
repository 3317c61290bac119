//! The inbound checks that need no message, run while it arrives: iprev (RFC 8601 §3) from
//! the connect on, SPF of the HELO and MAIL FROM identities (RFC 7208) from an accepted MAIL
//! FROM on. The SMTP loop starts them on the session's events and collects them at the end
//! of DATA (`results`), where `verify::evaluate` would otherwise make the same lookups after
//! the message. A result is used only for the identities it was computed for; anything
//! missing (a task that failed, a HELO changed since) is computed then as before.

use std::net::IpAddr;

use mail_auth::{IprevOutput, SpfOutput};
use tokio::task::JoinHandle;

use super::Authenticator;
use super::verify::{self, Early};

/// A lookup task that is aborted when dropped, so a session that ends leaves none behind.
struct Task<T>(JoinHandle<T>);

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> Task<T> {
    /// The task's result; None if it failed.
    async fn join(mut self) -> Option<T> {
        (&mut self.0).await.ok()
    }
}

type SpfPair = (SpfOutput, Option<SpfOutput>);

enum Iprev {
    Running(Task<IprevOutput>),
    Done(IprevOutput),
    None,
}

/// The early checks of one port-25 connection.
pub struct EarlyChecks {
    /// None: verification is off (or not port 25), nothing is started.
    auth: Option<(Authenticator, String)>,
    peer: IpAddr,
    iprev: Iprev,
    /// (HELO, MAIL FROM) the running SPF task checks.
    spf: Option<(String, String, Task<SpfPair>)>,
}

impl EarlyChecks {
    /// Nothing to run (submission, or `[inbound] verify = false`).
    pub fn off(peer: IpAddr) -> EarlyChecks {
        EarlyChecks {
            auth: None,
            peer,
            iprev: Iprev::None,
            spf: None,
        }
    }

    /// A client just connected on port 25: start its iprev check. `hostname` is our
    /// authserv-id and SPF's receiving host.
    pub fn start(auth: &Authenticator, hostname: &str, peer: IpAddr) -> EarlyChecks {
        let a = auth.clone();
        let task = Task(tokio::spawn(
            async move { verify::iprev_check(&a, peer).await },
        ));
        EarlyChecks {
            auth: Some((auth.clone(), hostname.to_string())),
            peer,
            iprev: Iprev::Running(task),
            spf: None,
        }
    }

    /// MAIL FROM was accepted: start SPF for this HELO and sender (replacing the check of
    /// an earlier transaction).
    pub fn mail_from(&mut self, helo: &str, mail_from: &str) {
        let Some((auth, hostname)) = &self.auth else {
            return;
        };
        if self
            .spf
            .as_ref()
            .is_some_and(|(h, f, _)| h == helo && f == mail_from)
        {
            return;
        }
        let (a, host, peer) = (auth.clone(), hostname.clone(), self.peer);
        let (h, f) = (helo.to_string(), mail_from.to_string());
        let task = Task(tokio::spawn(async move {
            verify::spf_checks(&a, peer, &h, &host, &f).await
        }));
        self.spf = Some((helo.to_string(), mail_from.to_string(), task));
    }

    /// At the end of DATA: what finished (or finishes now) for this transaction's HELO and
    /// sender. iprev is kept for the next message of the connection; SPF is per transaction.
    pub async fn results(&mut self, helo: &str, mail_from: &str) -> Early {
        if self.auth.is_none() {
            return Early::default();
        }
        if let Iprev::Running(_) = self.iprev {
            let Iprev::Running(task) = std::mem::replace(&mut self.iprev, Iprev::None) else {
                unreachable!("checked above");
            };
            if let Some(out) = task.join().await {
                self.iprev = Iprev::Done(out);
            }
        }
        let iprev = match &self.iprev {
            Iprev::Done(out) => Some(out.clone()),
            _ => None,
        };
        let spf = match self.spf.take() {
            Some((h, f, task)) if h == helo && f == mail_from => task.join().await,
            _ => None,
        };
        Early { spf, iprev }
    }
}
