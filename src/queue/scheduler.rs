//! The queue scheduler: finds due messages, delivers them (local recipients into the store,
//! remote ones per domain through `outbound`), records each outcome in the envelope right
//! after the attempt, retries with backoff and jitter, bounces and expires.
//!
//! Crash safety: a recipient's state is written as soon as its domain's transaction ends, so
//! after a kill only a transaction that was in flight can be repeated (the unavoidable window
//! between the remote's 250 and our envelope write, RFC 5321 §6.1 accepts duplicates over
//! losses).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use tokio::sync::Semaphore;

use super::dsn::{self, Action};
use super::{Envelope, RcptState, RcptStatus};
use crate::accounts::Recipient;
use crate::metrics::Metrics;
use crate::outbound::{self, Kind, RcptOutcome};
use crate::services::Services;

/// How often the spool is rescanned for work written by other processes (CLI).
const RESCAN: Duration = Duration::from_secs(1);

struct Scheduler {
    svc: Arc<Services>,
    inflight: Mutex<HashSet<String>>,
    global: Arc<Semaphore>,
    per_domain: Mutex<HashMap<String, Arc<Semaphore>>>,
}

pub fn spawn_scheduler(svc: Arc<Services>) {
    let sched = Arc::new(Scheduler {
        global: Arc::new(Semaphore::new(svc.config.outbound.max_connections.max(1))),
        svc: svc.clone(),
        inflight: Mutex::new(HashSet::new()),
        per_domain: Mutex::new(HashMap::new()),
    });
    svc.tasks.spawn(async move { sched.run().await });
}

/// Delay before attempt number `attempts + 1`, with up to 10 % random jitter so messages
/// deferred together do not all come back at once.
pub fn backoff(schedule: &[u64], attempts: u32) -> u64 {
    let base = schedule
        .get((attempts.max(1) - 1) as usize)
        .or(schedule.last())
        .copied()
        .unwrap_or(300);
    base + rand::rng().random_range(0..=base / 10)
}

impl Scheduler {
    async fn run(self: Arc<Self>) {
        let q = &self.svc.queue;
        let svc = self.svc.clone();
        match tokio::task::spawn_blocking(move || svc.dkim.warm_up(&svc.config)).await {
            Ok(Err(e)) => tracing::warn!("{e}: outbound mail will leave unsigned"),
            Err(e) => tracing::warn!("DKIM key loading failed: {e}"),
            Ok(Ok(())) => {}
        }
        match q.remove_orphans() {
            Ok(0) => {}
            Ok(n) => tracing::info!("queue: removed {n} message file(s) without an envelope"),
            Err(e) => tracing::warn!("queue: orphan cleanup failed: {e}"),
        }
        // Envelope cache: re-read a file only when its mtime changed.
        let mut cache: HashMap<String, (super::Stamp, Envelope)> = HashMap::new();
        let mut last_scan: Option<tokio::time::Instant> = None;
        loop {
            let now = crate::clock::unix_now();
            let mut due = Vec::new();
            // Woken by our own enqueues: take those ids and leave `env/` alone (a rescan per
            // wake-up costs a stat of every queued envelope, per message under load). The
            // full rescan still runs every RESCAN for the CLI's and the retries' work.
            let fresh = q.take_fresh();
            if last_scan.is_some_and(|t| t.elapsed() < RESCAN) {
                // A fresh envelope is due at once (`process` reads it).
                if !self.svc.shutdown.is_cancelled() {
                    self.start(fresh);
                }
                self.idle().await;
                if self.svc.shutdown.is_cancelled() {
                    break;
                }
                continue;
            }
            last_scan = Some(tokio::time::Instant::now());
            let mut seen = HashSet::new();
            match q.stamps() {
                Ok(stamps) => {
                    for (id, stamp) in stamps {
                        seen.insert(id.clone());
                        let fresh = cache.get(&id).is_some_and(|(t, _)| *t == stamp);
                        if !fresh {
                            match q.load(&id) {
                                Ok(Some(env)) => {
                                    cache.insert(id.clone(), (stamp, env));
                                }
                                Ok(None) => continue,
                                Err(e) => {
                                    tracing::warn!("queue: cannot read envelope {id}: {e}");
                                    continue;
                                }
                            }
                        }
                        let (_, env) = &cache[&id];
                        if self.needs_work(env, now) {
                            due.push(id);
                        }
                    }
                }
                Err(e) => tracing::warn!("queue: cannot list {}: {e}", q.dir().display()),
            }
            cache.retain(|id, _| seen.contains(id));
            self.svc
                .metrics
                .queue_size
                .store(seen.len() as i64, Ordering::Relaxed);
            self.start(due);
            self.idle().await;
            if self.svc.shutdown.is_cancelled() {
                break;
            }
        }
        tracing::debug!("queue scheduler stopped");
    }

    /// Start a task for each due id not already in flight.
    fn start(self: &Arc<Self>, due: Vec<String>) {
        for id in due {
            if !self.inflight.lock().unwrap().insert(id.clone()) {
                continue;
            }
            let me = self.clone();
            self.svc.tasks.spawn(async move {
                me.process(&id).await;
                me.inflight.lock().unwrap().remove(&id);
            });
        }
    }

    /// Wait for an enqueue, the next rescan, or shutdown.
    async fn idle(&self) {
        tokio::select! {
            _ = self.svc.shutdown.cancelled() => {}
            _ = self.svc.queue.wake().notified() => {}
            _ = tokio::time::sleep(RESCAN) => {}
        }
    }

    fn needs_work(&self, env: &Envelope, now: i64) -> bool {
        if self.svc.shutdown.is_cancelled() {
            return false;
        }
        let cfg = &self.svc.config.queue;
        let pending: Vec<&RcptState> = env.pending().collect();
        pending.is_empty()
            || pending.iter().any(|r| r.next_attempt <= now)
            || env
                .rcpts
                .iter()
                .any(|r| r.status == RcptStatus::Failed && !r.reported)
            || now >= env.created + cfg.max_age_secs as i64
            || (cfg.delay_notice_secs > 0
                && !env.delay_notified
                && !env.mail_from.is_empty()
                && now >= env.created + cfg.delay_notice_secs as i64)
    }

    fn domain_limit(&self, domain: &str) -> Arc<Semaphore> {
        self.per_domain
            .lock()
            .unwrap()
            .entry(domain.to_string())
            .or_insert_with(|| {
                Arc::new(Semaphore::new(
                    self.svc.config.outbound.max_connections_per_domain.max(1),
                ))
            })
            .clone()
    }

    async fn process(self: &Arc<Self>, id: &str) {
        let svc = &self.svc;
        let q = &svc.queue;
        let (env, message) = match q.open(id) {
            Ok(Some((e, m))) => (e, Arc::new(m)),
            Ok(None) => return,
            Err(e) => {
                // A message whose file cannot be read is left alone (and reported), never
                // dropped: the next rescan tries again and `postern queue` shows it.
                tracing::error!(queue_id = id, "cannot read the queued message: {e}");
                return;
            }
        };
        let now = crate::clock::unix_now();
        let cfg = &svc.config.queue;
        let expires = env.created + cfg.max_age_secs as i64;
        let mut removed = false;
        if now >= expires {
            let _ = q.update(id, |e| {
                for r in e
                    .rcpts
                    .iter_mut()
                    .filter(|r| r.status == RcptStatus::Pending)
                {
                    r.status = RcptStatus::Failed;
                    r.code = Some("4.4.7".into());
                    r.last_error = Some(format!(
                        "delivery time expired after {} attempts; last error: {}",
                        r.attempts,
                        r.last_error.as_deref().unwrap_or("none")
                    ));
                }
            });
            tracing::info!(
                queue_id = id,
                "expired: giving up on the pending recipients"
            );
        } else {
            let due: Vec<String> = env
                .pending()
                .filter(|r| r.next_attempt <= now)
                .map(|r| r.addr.clone())
                .collect();
            let (local, remote): (Vec<String>, Vec<String>) = due
                .into_iter()
                .partition(|a| svc.config.is_local_domain(&outbound::domain_of(a)));
            for addr in local {
                let outcome = deliver_local(svc, &env, &addr, &message).await;
                removed |= self.record(id, vec![addr], vec![outcome], expires).await;
            }
            let mut by_domain: HashMap<String, Vec<String>> = HashMap::new();
            for a in remote {
                by_domain
                    .entry(outbound::domain_of(&a))
                    .or_default()
                    .push(a);
            }
            let mut set = tokio::task::JoinSet::new();
            for (domain, rcpts) in by_domain {
                let me = self.clone();
                let message = message.clone();
                let mail_from = env.mail_from.clone();
                let id = id.to_string();
                set.spawn(async move {
                    let dom_limit = me.domain_limit(&domain);
                    let svc = &me.svc;
                    let run = async {
                        let _g = me.global.clone().acquire_owned().await.ok()?;
                        let _d = dom_limit.acquire_owned().await.ok()?;
                        Some(
                            outbound::deliver_domain(
                                &svc.outbound_env(),
                                &id,
                                &domain,
                                &mail_from,
                                &rcpts,
                                &message,
                            )
                            .await,
                        )
                    };
                    let outcomes = tokio::select! {
                        // Shutdown: leave these recipients as they were; they are retried
                        // at the next start.
                        _ = svc.shutdown.cancelled() => None,
                        o = run => o,
                    };
                    match outcomes {
                        Some(outcomes) => me.record(&id, rcpts, outcomes, expires).await,
                        None => false,
                    }
                });
            }
            while let Some(r) = set.join_next().await {
                removed |= r.unwrap_or(false);
            }
        }
        // A message the last outcome removed from the queue has nothing left to finish.
        if !removed {
            self.finish(id, &message).await;
        }
    }

    /// Write the outcomes of one attempt into the envelope, on a blocking thread (the
    /// removal of a finished message waits for a group-committed directory fsync). True
    /// when this removed the message from the queue (nothing left to do).
    async fn record(
        self: &Arc<Self>,
        id: &str,
        rcpts: Vec<String>,
        outcomes: Vec<RcptOutcome>,
        expires: i64,
    ) -> bool {
        let me = self.clone();
        let id = id.to_string();
        let res = tokio::task::spawn_blocking(move || {
            me.record_blocking(&id, &rcpts, &outcomes, expires)
        })
        .await;
        res.unwrap_or_else(|e| {
            tracing::error!("recording a delivery outcome failed: {e}");
            false
        })
    }

    fn record_blocking(
        &self,
        id: &str,
        rcpts: &[String],
        outcomes: &[RcptOutcome],
        expires: i64,
    ) -> bool {
        let now = crate::clock::unix_now();
        let schedule = &self.svc.config.queue.retry_schedule_secs;
        let m = &self.svc.metrics;
        // `settle`: when this attempt finishes the message (all delivered), the envelope is
        // removed at once rather than rewritten and then removed by `finish`.
        let res = self.svc.queue.settle(id, |env| {
            for (addr, o) in rcpts.iter().zip(outcomes) {
                let Some(r) = env
                    .rcpts
                    .iter_mut()
                    .find(|r| &r.addr == addr && r.status == RcptStatus::Pending)
                else {
                    continue;
                };
                r.attempts += 1;
                r.code = Some(o.status.clone());
                r.remote_mta = o.remote_mta.clone().or(r.remote_mta.take());
                match o.kind {
                    Kind::Delivered => {
                        r.status = RcptStatus::Delivered;
                        r.last_error = None;
                    }
                    Kind::Permanent => {
                        r.status = RcptStatus::Failed;
                        r.last_error = Some(o.diagnostic.clone());
                    }
                    Kind::Transient => {
                        r.last_error = Some(o.diagnostic.clone());
                        // Never schedule past the expiry: the last attempt is the expiry.
                        r.next_attempt = (now + backoff(schedule, r.attempts) as i64).min(expires);
                        Metrics::inc(&m.messages_deferred);
                    }
                }
            }
        });
        match res {
            Ok(Some((env, true))) => {
                log_done(id, &env);
                true
            }
            Ok(_) => false,
            Err(e) => {
                tracing::error!(queue_id = id, "cannot record delivery outcome: {e}");
                false
            }
        }
    }

    /// After an attempt: failure DSNs, the delay notice, and removal once nothing is pending.
    async fn finish(&self, id: &str, message: &[u8]) {
        let svc = &self.svc;
        let q = &svc.queue;
        let Ok(Some(env)) = q.load(id) else { return };
        let now = crate::clock::unix_now();
        let cfg = &svc.config.queue;

        let failed: Vec<&RcptState> = env
            .rcpts
            .iter()
            .filter(|r| r.status == RcptStatus::Failed && !r.reported)
            .collect();
        if !failed.is_empty() {
            if env.mail_from.is_empty() {
                // RFC 5321 §6.1 / RFC 3464: never a bounce to the null reverse-path.
                tracing::info!(queue_id = id, "undeliverable bounce (null sender): dropped");
            } else {
                self.send_dsn(&env, &failed, Action::Failed, message, now);
                Metrics::inc(&svc.metrics.messages_bounced);
            }
            let addrs: Vec<String> = failed.iter().map(|r| r.addr.clone()).collect();
            let _ = q.update(id, |e| {
                for r in e.rcpts.iter_mut().filter(|r| addrs.contains(&r.addr)) {
                    r.reported = true;
                }
            });
        }

        let pending: Vec<&RcptState> = env.pending().collect();
        if !pending.is_empty()
            && cfg.delay_notice_secs > 0
            && !env.delay_notified
            && !env.mail_from.is_empty()
            && now >= env.created + cfg.delay_notice_secs as i64
        {
            self.send_dsn(&env, &pending, Action::Delayed, message, now);
            let _ = q.update(id, |e| e.delay_notified = true);
        }

        if pending.is_empty() {
            // Blocking: the removal waits for a group-committed directory fsync.
            let spool: super::Spool = (**q).clone();
            let del_id = id.to_string();
            let deleted = tokio::task::spawn_blocking(move || spool.delete(&del_id))
                .await
                .unwrap_or_else(|e| Err(super::QueueError::Other(e.to_string())));
            match deleted {
                Ok(_) => log_done(id, &env),
                Err(e) => tracing::error!(queue_id = id, "cannot remove from the queue: {e}"),
            }
        }
    }

    fn send_dsn(
        &self,
        env: &Envelope,
        rcpts: &[&RcptState],
        action: Action,
        message: &[u8],
        now: i64,
    ) {
        let svc = &self.svc;
        let mut dsn = dsn::build(&svc.config, env, rcpts, action, message, now);
        match svc.dkim.sign(&svc.config, &dsn) {
            Ok(sig) => {
                let mut signed = sig.into_bytes();
                signed.extend_from_slice(&dsn);
                dsn = signed;
            }
            Err(e) => tracing::warn!(queue_id = %env.id, "DSN not DKIM-signed: {e}"),
        }
        // The null reverse-path (RFC 5321 §4.5.5): a DSN never triggers another.
        match svc
            .queue
            .enqueue_blocking("", std::slice::from_ref(&env.mail_from), &dsn)
        {
            Ok(dsn_id) => tracing::info!(
                queue_id = %env.id,
                dsn_id,
                to = %env.mail_from,
                action = ?action,
                "DSN queued"
            ),
            Err(e) => tracing::error!(queue_id = %env.id, "cannot queue the DSN: {e}"),
        }
    }
}

/// Deliver to a recipient of our own domain (DSNs to our users, vacation replies and
/// redirects to local addresses, bounces to SRS addresses): resolve aliases, queue forwards
/// to remote targets, then store for each user through their Sieve script, as port 25 does
/// (`delivery::sieve::deliver`). A reject from every user of the address fails it with
/// 5.7.1 (the scheduler's DSN goes to the sender, RFC 5429 §2.1); a reject from some of
/// them gets its own DSN.
/// The one log line of a message leaving the queue with nothing left to do.
fn log_done(id: &str, env: &Envelope) {
    let count = |st| env.rcpts.iter().filter(|r| r.status == st).count();
    tracing::info!(
        queue_id = id,
        delivered = count(RcptStatus::Delivered),
        failed = count(RcptStatus::Failed),
        "done: removed from the queue"
    );
}

async fn deliver_local(
    svc: &Arc<Services>,
    env: &Envelope,
    addr: &str,
    message: &Arc<super::Body>,
) -> RcptOutcome {
    let outcome = |kind, status: &str, d: String| RcptOutcome {
        kind,
        status: status.into(),
        diagnostic: d,
        remote_mta: None,
    };
    let svc2 = svc.clone();
    let addr2 = addr.to_string();
    let from = env.mail_from.clone();
    let msg = message.clone();
    let id = env.id.clone();
    // The blocking half: SRS bounces, alias resolution, forwarded copies.
    let res = tokio::task::spawn_blocking(move || -> Result<Result<Vec<String>, RcptOutcome>, String> {
        // Our own DSN for a forwarded message is addressed to the SRS0 sender we put on it:
        // unwrap it and pass the bounce on to the original sender, as port 25 does (only
        // null-sender mail, see smtp::session `srs_rcpt`).
        if let Some(srs) = &svc2.srs
            && from.is_empty()
            && let Ok(original) = srs.reverse(&addr2, crate::clock::unix_now())
        {
            let fid = svc2
                .queue
                .enqueue_blocking("", std::slice::from_ref(&original), &msg)
                .map_err(|e| format!("cannot queue the SRS bounce: {e}"))?;
            tracing::info!(queue_id = %id, forward_id = fid, "SRS bounce for {original} passed on");
            return Ok(Err(outcome(
                Kind::Delivered,
                "2.0.0",
                "SRS bounce passed on to the original sender".into(),
            )));
        }
        match svc2.accounts.resolve(&addr2).map_err(|e| e.to_string())? {
            Recipient::Local { users, forward } => {
                // The quota holds here too (`delivery::quota`): a full mailbox is a
                // persistent transient failure (RFC 3463 §3.3 X.2.2), retried until the
                // queue gives up and reports it. Checked before anything is stored or
                // forwarded, so a retry duplicates nothing.
                let size = (format!("Return-Path: <{from}>\r\n").len() + msg.len()) as u64;
                let limit = svc2.config.limits.mailbox_quota;
                if limit != 0 && size > limit {
                    // It can never fit: waiting for room would only delay the bounce.
                    return Ok(Err(outcome(
                        Kind::Permanent,
                        "5.2.2",
                        format!("552 5.2.2 <{addr2}>: message larger than the mailbox quota"),
                    )));
                }
                let wanted: Vec<(String, u64)> = users.iter().map(|u| (u.clone(), size)).collect();
                if !crate::delivery::quota::over_quota_blocking(&svc2.store, limit, &wanted).is_empty() {
                    return Ok(Err(outcome(
                        Kind::Transient,
                        "4.2.2",
                        format!("452 4.2.2 <{addr2}>: mailbox full (quota exceeded)"),
                    )));
                }
                if !forward.is_empty() {
                    // Forwarded copies carry an SRS sender, as on port 25.
                    let forward_from = match &svc2.srs {
                        Some(srs) => srs.forward(&from, crate::clock::unix_now()),
                        None => from.clone(),
                    };
                    let fid = svc2
                        .queue
                        .enqueue_blocking(&forward_from, &forward, &msg)
                        .map_err(|e| format!("cannot queue forward: {e}"))?;
                    tracing::info!(queue_id = %id, forward_id = fid, "alias {addr2} forwarded");
                }
                Ok(Ok(users))
            }
            Recipient::Unknown => Ok(Err(outcome(
                Kind::Permanent,
                "5.1.1",
                format!("550 5.1.1 <{addr2}>: no such user here"),
            ))),
            Recipient::Remote => Ok(Err(outcome(
                Kind::Permanent,
                "5.1.2",
                format!("{addr2} is not in a local domain"),
            ))),
        }
    })
    .await;
    let users = match res {
        Ok(Ok(Ok(users))) => users,
        Ok(Ok(Err(done))) => return done,
        Ok(Err(e)) => return outcome(Kind::Transient, "4.3.0", e),
        Err(e) => {
            return outcome(
                Kind::Transient,
                "4.3.0",
                format!("local delivery task failed: {e}"),
            );
        }
    };
    if users.is_empty() {
        return outcome(Kind::Delivered, "2.0.0", "forwarded".into());
    }
    let rcpts: Vec<crate::delivery::sieve::LocalRcpt> = users
        .iter()
        .map(|u| crate::delivery::sieve::LocalRcpt {
            user: u.clone(),
            address: addr.to_string(),
        })
        .collect();
    // Return-Path records the envelope sender at final delivery (RFC 5321 §4.4).
    let rp = format!("Return-Path: <{}>\r\n", env.mail_from);
    let sieve_env = svc.sieve_env();
    match crate::delivery::sieve::deliver(
        &sieve_env,
        &env.id,
        &rcpts,
        "",
        &env.mail_from,
        &rp,
        message,
    )
    .await
    {
        Ok(f) if !f.rejects.is_empty() && f.rejects.len() == users.len() => {
            let reason: String = f.rejects[0]
                .reason
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .take(400)
                .collect();
            tracing::info!(queue_id = %env.id, rcpt = %addr, "rejected by the recipient's Sieve script");
            outcome(
                Kind::Permanent,
                "5.7.1",
                format!(
                    "rejected by the recipient's mail filter (Sieve): {}",
                    reason.trim()
                ),
            )
        }
        Ok(f) => {
            for r in &f.rejects {
                crate::delivery::sieve::reject_notice(
                    &sieve_env,
                    &env.id,
                    &env.mail_from,
                    r,
                    message,
                )
                .await;
            }
            tracing::info!(queue_id = %env.id, rcpt = %addr, users = ?users, "delivered locally");
            outcome(Kind::Delivered, "2.0.0", "delivered to mailbox".into())
        }
        Err(e) => outcome(
            Kind::Transient,
            "4.3.0",
            format!("local delivery failed: {e}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn backoff_follows_schedule_with_jitter() {
        let s = [60, 300, 900];
        for _ in 0..50 {
            let a = super::backoff(&s, 1);
            assert!((60..=66).contains(&a));
            let b = super::backoff(&s, 2);
            assert!((300..=330).contains(&b));
            let c = super::backoff(&s, 9);
            assert!((900..=990).contains(&c));
        }
    }
}
