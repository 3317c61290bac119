//! The mailbox quota (`[limits] mailbox_quota`) at delivery, with the real message size.
//! RCPT only refuses a mailbox that is already full (`smtp::session`, 452 4.2.2); after DATA
//! the size is known and each local user is checked again before anything is stored.
//!
//! What the SMTP transaction does with the answer (`smtp::transaction`), as Postfix with
//! Dovecot's LDA does (its default `quota_full_tempfail = no`):
//! - every local recipient over quota and nothing else to deliver: the whole message is
//!   refused, 452 4.2.2 (RFC 3463 §3.3: "mailbox full" is a persistent transient failure,
//!   the sender retries), or 552 5.2.2 when the message alone is larger than the quota and
//!   can never fit (RFC 5321 §4.2.2 "exceeded storage allocation");
//! - otherwise the others get the message and the 250 stands; the users over quota are
//!   reported to the sender in one failure DSN with Status 5.2.2 (RFC 3464), since after
//!   the 250 the reply can no longer say it (RFC 5321 §6.1). SMTP has one reply for all
//!   recipients after DATA; only LMTP could answer each.
//!
//! One copy per user is counted: a Sieve script that files the same message twice may end
//! one copy above the limit.

use std::io;

use crate::config::Config;
use crate::queue::{Envelope, Queue, RcptState, RcptStatus, dsn};
use crate::store::Store;

/// The users of `wanted` (user, octets to store) that the message would take above `limit`
/// (0 = no quota: none). A usage that cannot be read counts as within the quota: the
/// delivery then succeeds or fails on its own terms. Reads the disk: call off the runtime
/// (`over_quota` does).
pub fn over_quota_blocking(store: &Store, limit: u64, wanted: &[(String, u64)]) -> Vec<String> {
    if limit == 0 {
        return Vec::new();
    }
    wanted
        .iter()
        .filter(|(user, size)| {
            matches!(store.check_quota(user, limit, *size),
                Err(e) if e.kind() == io::ErrorKind::QuotaExceeded)
        })
        .map(|(user, _)| user.clone())
        .collect()
}

/// The handles the over-quota DSN needs.
pub struct DsnEnv<'a> {
    pub config: &'a Config,
    pub queue: &'a Queue,
    pub dkim: &'a super::dkim::KeyCache,
}

/// Tell `mail_from` that the message (transaction `id`, `original` as received) was not
/// delivered to `addresses` because their mailboxes are full: one failure DSN from the null
/// reverse-path. Nothing for a null sender (RFC 5321 §4.5.5: no bounce of a bounce).
pub async fn report_over_quota(
    env: &DsnEnv<'_>,
    id: &str,
    mail_from: &str,
    addresses: &[String],
    original: &[u8],
) {
    if mail_from.is_empty() || addresses.is_empty() {
        return;
    }
    let now = crate::clock::unix_now();
    let envelope = Envelope {
        id: id.to_string(),
        mail_from: mail_from.to_string(),
        created: now,
        size: original.len() as u64,
        rcpts: addresses
            .iter()
            .map(|a| RcptState {
                addr: a.clone(),
                status: RcptStatus::Failed,
                attempts: 1,
                next_attempt: 0,
                last_error: Some(format!("552 5.2.2 <{a}>: mailbox full (quota exceeded)")),
                code: Some("5.2.2".into()),
                remote_mta: None,
                reported: true,
            })
            .collect(),
        delay_notified: false,
    };
    let rcpts: Vec<&RcptState> = envelope.rcpts.iter().collect();
    let mut m = dsn::build(
        env.config,
        &envelope,
        &rcpts,
        dsn::Action::Failed,
        original,
        now,
    );
    match env.dkim.sign(env.config, &m) {
        Ok(sig) => m = [sig.into_bytes(), m].concat(),
        Err(e) => tracing::warn!(id, "quota DSN not DKIM-signed: {e}"),
    }
    let out =
        crate::spool::Outgoing::new(std::sync::Arc::new(crate::spool::SpooledMessage::from(m)));
    match env.queue.enqueue("", &[mail_from.to_string()], out).await {
        Ok(dsn_id) => {
            tracing::info!(id, dsn_id, rcpts = ?addresses, "over quota: DSN queued")
        }
        Err(e) => tracing::error!(id, "over quota: cannot queue the DSN: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Folder;

    #[test]
    fn only_users_the_message_would_take_over_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(tmp.path());
        store
            .deliver("a@x.test", Folder::Inbox, &[b'a'; 900])
            .unwrap();
        store
            .deliver("b@x.test", Folder::Inbox, &[b'b'; 100])
            .unwrap();
        let wanted = vec![("a@x.test".to_string(), 200), ("b@x.test".to_string(), 200)];
        assert_eq!(over_quota_blocking(&store, 1000, &wanted), ["a@x.test"]);
        // Exactly at the limit still fits.
        let wanted = vec![("a@x.test".to_string(), 100)];
        assert!(over_quota_blocking(&store, 1000, &wanted).is_empty());
        assert!(over_quota_blocking(&store, 0, &wanted).is_empty());
    }
}
