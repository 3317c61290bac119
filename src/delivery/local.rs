//! Splitting a transaction's recipients into local users and remote addresses, and durable
//! local delivery (on a blocking thread: `local_job`).

use crate::spool::Outgoing;
use crate::store::{Folder, Store};

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("storing for {user}: {source}")]
    Store {
        user: String,
        source: std::io::Error,
    },
    #[error("delivery task failed: {0}")]
    Join(String),
}

impl DeliveryError {
    /// The Maildir's disk or quota is full (see `fsutil::is_disk_full`).
    pub fn is_disk_full(&self) -> bool {
        matches!(self, DeliveryError::Store { source, .. } if crate::fsutil::is_disk_full(source))
    }
}

/// Where one message goes: each local user once, each remote address once.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    pub users: Vec<String>,
    pub remote: Vec<String>,
}

/// Merge the per-recipient resolutions (an alias and a direct address may name the same
/// user; the user gets one copy).
pub fn plan<'a>(rcpts: impl IntoIterator<Item = (&'a [String], &'a [String])>) -> Plan {
    let mut p = Plan::default();
    for (users, remote) in rcpts {
        for u in users {
            if !p.users.contains(u) {
                p.users.push(u.clone());
            }
        }
        for r in remote {
            if !p.remote.iter().any(|x| x.eq_ignore_ascii_case(r)) {
                p.remote.push(r.clone());
            }
        }
    }
    p
}

/// Deliver `message` into `folder` of every user; returns once every copy is fsynced
/// (Store::deliver syncs file and directory). Stops at the first failure. Each copy is
/// streamed from the spool, so a large message is never in memory. Blocking: call it from
/// a blocking thread (`LocalJob::run`).
pub fn deliver_blocking(
    store: &Store,
    users: &[String],
    folder: &'static str,
    message: &Outgoing,
) -> Result<(), DeliveryError> {
    for user in users {
        let f = if folder.is_empty() {
            Folder::Inbox
        } else {
            Folder::Named(folder)
        };
        store
            .deliver_with(user, f, message.len(), |file| message.write_to(file))
            .map_err(|source| DeliveryError::Store {
                user: user.clone(),
                source,
            })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_deduplicates() {
        let a = ["alice@x".to_string()];
        let ab = ["alice@x".to_string(), "bob@x".to_string()];
        let r1 = ["Far@y".to_string()];
        let r2 = ["far@y".to_string()];
        let p = plan([(&a[..], &r1[..]), (&ab[..], &r2[..])]);
        assert_eq!(p.users, vec!["alice@x", "bob@x"]);
        assert_eq!(p.remote, vec!["Far@y"]);
    }
}
