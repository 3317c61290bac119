//! The end of a mail transaction: trace headers, the inbound verdict (port 25) or the
//! submission additions and DKIM signature, then local delivery and the queue. The reply is
//! 250 only once every local copy is fsynced and every remote copy is in the queue.

use std::net::IpAddr;

use super::Mode;
use super::headers::{self, TraceInfo};
use super::reply::Reply;
use super::session::Transaction;
use crate::delivery::{self, LocalOutcome, Plan};
use crate::inbound::{self, Disposition, MessageContext};
use crate::logsafe::{Untrusted, UntrustedText};
use crate::metrics::Metrics;
use crate::services::Services;
use crate::spool::Outgoing;

pub struct Context<'a> {
    pub svc: &'a Services,
    pub mode: Mode,
    pub peer: IpAddr,
    /// TLS protocol and cipher when the session is encrypted.
    pub tls: Option<&'a str>,
    /// The client is on a DNS blocklist and `dnsbl_action = "junk"`.
    pub dnsbl_junk: Option<&'a crate::inbound::dnsbl::Listing>,
    /// The checks the I/O loop ran while the message arrived (port 25).
    pub early: crate::inbound::Early,
}

/// Deliver the transaction; returns the reply for the end of DATA. Logs one line.
pub async fn finish(mut ctx: Context<'_>, tx: &Transaction) -> Reply {
    let early = std::mem::take(&mut ctx.early);
    let ctx = &ctx;
    // The queue's id format, and the queue id itself when a copy is queued: one id in the
    // 250 reply, the Received header, this log line and `postern queue list/show`.
    let id = crate::queue::new_id();
    let plan = delivery::plan(tx.rcpts.iter().map(|r| (&r.users[..], &r.remote[..])));
    let reply = match ctx.mode {
        Mode::Mx => inbound_delivery(ctx, tx, &plan, &id, early).await,
        Mode::Submission | Mode::Submissions => submission_delivery(ctx, tx, &plan, &id).await,
    };
    let rcpts: Vec<&str> = tx.rcpts.iter().map(|r| r.address.as_str()).collect();
    let msgid = headers::message_id(tx.message.as_bytes()).unwrap_or_default();
    let m = &ctx.svc.metrics;
    // One line per transaction: info when accepted, warn when refused.
    let line = format!(
        "smtp transaction: service={} peer={} id={id} queued={} message_id={} helo={} user={} from=<{}> rcpts={rcpts:?} size={} result=\"{}\"",
        ctx.mode.service(),
        ctx.peer,
        if reply.is_positive() {
            plan.remote.len()
        } else {
            0
        },
        Untrusted(&msgid),
        Untrusted(&tx.helo),
        tx.auth_user.as_deref().unwrap_or("-"),
        Untrusted(&tx.mail_from),
        tx.message.len(),
        UntrustedText(&reply.to_string())
    );
    if reply.is_positive() {
        Metrics::inc(&m.messages_received);
        tracing::info!("{line}");
    } else {
        Metrics::inc(&m.messages_rejected);
        tracing::warn!("{line}");
    }
    reply
}

fn trace(ctx: &Context<'_>, tx: &Transaction, id: &str) -> String {
    let single = (tx.rcpts.len() == 1).then(|| tx.rcpts[0].address.as_str());
    headers::received(&TraceInfo {
        helo: &tx.helo,
        peer: ctx.peer,
        hostname: &ctx.svc.config.hostname,
        protocol: &tx.protocol,
        id,
        tls: ctx.tls,
        single_rcpt: single,
    })
}

fn ok(id: &str) -> Reply {
    Reply::new(250, "2.0.0", format!("OK id={id}"))
}

/// RFC 3463 §3.4: X.3.1 "mail system full" when the disk or quota is full (the client
/// retries later, RFC 5321 §4.2.5 452), else 451 4.3.0.
fn temp_failure(disk_full: bool, what: &str) -> Reply {
    if disk_full {
        Reply::new(452, "4.3.1", "Insufficient system storage, try again later")
    } else {
        Reply::new(451, "4.3.0", format!("{what}, try again later"))
    }
}

fn temp_local(e: &delivery::DeliveryError) -> Reply {
    temp_failure(e.is_disk_full(), "Local delivery failed")
}

fn temp_queue(e: &crate::queue::QueueError) -> Reply {
    temp_failure(
        e.is_disk_full(),
        "Cannot queue the message for remote delivery",
    )
}

async fn inbound_delivery(
    ctx: &Context<'_>,
    tx: &Transaction,
    plan: &Plan,
    id: &str,
    early: crate::inbound::Early,
) -> Reply {
    let svc = ctx.svc;
    let rcpts: Vec<String> = tx.rcpts.iter().map(|r| r.address.clone()).collect();
    let mctx = MessageContext {
        peer_ip: ctx.peer,
        helo: &tx.helo,
        mail_from: &tx.mail_from,
        rcpts: &rcpts,
    };
    let mut verdict = inbound::check_message(
        &svc.config,
        &svc.authenticator,
        &svc.spool,
        &mctx,
        tx.message.as_bytes(),
        early,
    )
    .await;
    if let Some(l) = ctx.dnsbl_junk {
        verdict.mark_spam(&l.header_value());
    }
    inbound::spam_checks(
        &svc.config,
        &svc.dns,
        &mctx,
        id,
        tx.message.as_bytes(),
        &mut verdict,
    )
    .await;
    let folder = match &verdict.disposition {
        Disposition::Accept => "",
        Disposition::Junk => "Junk",
        Disposition::Reject {
            code,
            enhanced,
            text,
        }
        | Disposition::TempFail {
            code,
            enhanced,
            text,
        } => return Reply::new(*code, enhanced, text.clone()),
    };
    // Written from the spool: Authentication-Results, Received, the message without forged
    // Authentication-Results.
    let stored = verdict.compose(trace(ctx, tx, id).as_bytes(), tx.message.clone());
    // Forwarding aliases: the copy for remote targets goes to the queue first, so a queue
    // failure leaves nothing delivered and the sender's retry duplicates nothing. Its
    // envelope sender is rewritten with SRS so the destination's SPF check sees our domain;
    // a null sender (also the bounces to our SRS addresses) stays null.
    let forward_from = match &svc.srs {
        Some(srs) => srs.forward(&tx.mail_from, crate::clock::unix_now()),
        None => tx.mail_from.clone(),
    };
    if !plan.remote.is_empty()
        && let Err(e) = svc
            .queue
            .enqueue_as(id.to_string(), &forward_from, &plan.remote, stored.clone())
            .await
    {
        tracing::warn!(id, "enqueue of forwarded copy failed: {e}");
        return temp_queue(&e);
    }
    // The per-user junk filter decides for mail headed to the INBOX, recipient by recipient
    // (in `local_delivery`'s blocking trip).
    let junk = (folder.is_empty() && svc.config.spam.junk_filter && !plan.users.is_empty())
        .then(|| (svc.junk_dbs.clone(), tx.message.clone()));
    local_delivery(ctx, tx, plan, id, folder, stored, junk).await
}

/// Local delivery of `stored` (the message as stored, default `folder`) to the plan's
/// users: the junk filter when `junk` is given, the quota, and the copies of the users
/// without an active Sieve script, in one blocking trip (`delivery::LocalJob`); then the
/// others through their script (`delivery::sieve`). A reject from every local recipient,
/// with nothing else to deliver, is refused here, before any 250 (RFC 5429 §2.1: 550 5.7.1
/// with the script's reason); otherwise a rejecting user's copy is dropped and the sender
/// gets a DSN.
async fn local_delivery(
    ctx: &Context<'_>,
    tx: &Transaction,
    plan: &Plan,
    id: &str,
    folder: &'static str,
    stored: Outgoing,
    junk: Option<(
        std::sync::Arc<crate::spam::DbCache>,
        std::sync::Arc<crate::spool::SpooledMessage>,
    )>,
) -> Reply {
    let svc = ctx.svc;
    if plan.users.is_empty() {
        return ok(id);
    }
    let rp = headers::return_path(&tx.mail_from);
    let job = delivery::LocalJob {
        store: svc.store.clone(),
        config: svc.config.clone(),
        users: plan.users.clone(),
        folder,
        stored,
        return_path: rp.clone(),
        junk,
        has_remote: !plan.remote.is_empty(),
    };
    let (groups, over) = match job.run().await {
        Ok(LocalOutcome::Delivered { sieve, over_quota }) => (sieve, over_quota),
        Ok(LocalOutcome::Refused { too_large }) => {
            tracing::info!(id, users = ?plan.users, "over quota with this message");
            return if too_large {
                Reply::new(552, "5.2.2", "Message larger than the mailbox quota")
            } else {
                Reply::new(452, "4.2.2", "Mailbox full, try again later")
            };
        }
        Err(e) => {
            tracing::error!(id, "local delivery failed: {e}");
            return temp_local(&e);
        }
    };
    if !over.is_empty() {
        tracing::info!(id, users = ?over, "over quota with this message");
    }
    let mut rejects = Vec::new();
    for (filtered, folder, stored) in groups {
        let rcpts: Vec<delivery::sieve::LocalRcpt> = filtered
            .iter()
            .map(|u| delivery::sieve::LocalRcpt {
                user: u.clone(),
                address: tx
                    .rcpts
                    .iter()
                    .find(|r| r.users.contains(u))
                    .map_or_else(|| u.clone(), |r| r.address.clone()),
            })
            .collect();
        // A script reads the whole message (body tests), so it is held in memory here.
        let bytes = stored.to_vec();
        match delivery::sieve::deliver(
            &svc.sieve_env(),
            id,
            &rcpts,
            folder,
            &tx.mail_from,
            &rp,
            &bytes,
        )
        .await
        {
            Ok(f) => rejects.extend(f.rejects.into_iter().map(|r| (r, bytes.clone()))),
            Err(e) => {
                tracing::error!(id, "local delivery failed: {e}");
                return temp_local(&e);
            }
        }
    }
    if !rejects.is_empty() {
        // Every local recipient (within its quota) had a script, and every script rejected.
        if rejects.len() == plan.users.len() - over.len() && plan.remote.is_empty() {
            let reason: String = rejects[0]
                .0
                .reason
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .take(400)
                .collect();
            return Reply::new(550, "5.7.1", reason.trim().to_string());
        }
        for (reject, stored) in &rejects {
            delivery::sieve::reject_notice(&svc.sieve_env(), id, &tx.mail_from, reject, stored)
                .await;
        }
    }
    if !over.is_empty() {
        let addresses: Vec<String> = over
            .iter()
            .map(|u| {
                tx.rcpts
                    .iter()
                    .find(|r| r.users.contains(u))
                    .map_or_else(|| u.clone(), |r| r.address.clone())
            })
            .collect();
        let env = delivery::quota::DsnEnv {
            config: &svc.config,
            queue: &svc.queue,
            dkim: &svc.dkim,
        };
        let message = tx.message.as_bytes();
        delivery::quota::report_over_quota(&env, id, &tx.mail_from, &addresses, message).await;
    }
    ok(id)
}

async fn submission_delivery(ctx: &Context<'_>, tx: &Transaction, plan: &Plan, id: &str) -> Reply {
    let svc = ctx.svc;
    let mut msg = Outgoing::new(tx.message.clone());
    msg.prepend(
        headers::submission_additions(tx.message.as_bytes(), &svc.config.hostname).as_bytes(),
    );
    msg.prepend(trace(ctx, tx, id).as_bytes());
    if !plan.remote.is_empty() {
        // Hashing a large body is CPU work: off the async workers.
        let signed = inbound::cpu_bound(|| svc.dkim.sign_outgoing(&svc.config, &msg));
        let signature = match signed {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(id, "DKIM signing failed: {e}");
                return Reply::new(451, "4.3.0", "Cannot sign the message, try again later");
            }
        };
        let signed = msg.with_prepended(signature.as_bytes());
        if let Err(e) = svc
            .queue
            .enqueue_as(id.to_string(), &tx.mail_from, &plan.remote, signed)
            .await
        {
            tracing::warn!(id, "enqueue failed: {e}");
            return temp_queue(&e);
        }
    }
    local_delivery(ctx, tx, plan, id, "", msg, None).await
}

#[cfg(test)]
mod tests {
    use std::io::{Error, ErrorKind};

    use super::*;
    use crate::queue::QueueError;

    #[test]
    fn disk_full_is_452_4_3_1_other_errors_451_4_3_0() {
        let store = |kind| delivery::DeliveryError::Store {
            user: "a@b".into(),
            source: Error::from(kind),
        };
        for kind in [ErrorKind::StorageFull, ErrorKind::QuotaExceeded] {
            let r = temp_local(&store(kind));
            assert_eq!((r.code, r.enhanced.as_str()), (452, "4.3.1"));
            let r = temp_queue(&QueueError::Io(Error::from(kind)));
            assert_eq!((r.code, r.enhanced.as_str()), (452, "4.3.1"));
        }
        // ENOSPC and EDQUOT as the kernel reports them map to those kinds.
        for errno in [28, 122] {
            let r = temp_queue(&QueueError::Io(Error::from_raw_os_error(errno)));
            assert_eq!((r.code, r.enhanced.as_str()), (452, "4.3.1"), "{errno}");
        }
        let r = temp_local(&store(ErrorKind::PermissionDenied));
        assert_eq!((r.code, r.enhanced.as_str()), (451, "4.3.0"));
        let r = temp_queue(&QueueError::Other("x".into()));
        assert_eq!((r.code, r.enhanced.as_str()), (451, "4.3.0"));
    }
}
