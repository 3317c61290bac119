//! Everything a transaction does to its local recipients' disks, in one trip to a blocking
//! thread: the per-user junk filter, the quota with the real size, the check for an active
//! Sieve script, and the durable delivery of the plain copies. Each of these reads or
//! writes files; done one `spawn_blocking` each they cost a thread hand-off apiece, which
//! on a busy port 25 was a good part of the CPU time per message.
//!
//! What is decided here stays as `smtp::transaction` decided it before: the junk filter
//! sorts only the INBOX copy, the quota is checked before anything is stored (every user
//! over quota and nothing else to deliver refuses the message), users with an active Sieve
//! script are left to `delivery::sieve` (async, it may queue mail), and the caller replies
//! 250 only once every plain copy is fsynced with its directory.

use std::sync::Arc;

use super::local::{DeliveryError, deliver_blocking};
use crate::config::Config;
use crate::sieve::scripts::ScriptStore;
use crate::spam::DbCache;
use crate::spool::{Outgoing, SpooledMessage};
use crate::store::Store;

/// One message's local recipients and what is needed to file it for them.
pub struct LocalJob {
    pub store: Store,
    pub config: Arc<Config>,
    pub users: Vec<String>,
    /// The folder for every copy ("" = INBOX; "Junk" when the verdict said so).
    pub folder: &'static str,
    /// The message as stored, without Return-Path.
    pub stored: Outgoing,
    /// The Return-Path field (with its CRLF) in front of a plain copy.
    pub return_path: String,
    /// Sort the INBOX copy per user with the junk filter: its databases and the message as
    /// received (what the filter scores).
    pub junk: Option<(Arc<DbCache>, Arc<SpooledMessage>)>,
    /// Another copy goes elsewhere (the queue): then users over quota never refuse the
    /// message, they get a DSN instead.
    pub has_remote: bool,
}

/// Users grouped by the folder and the message they get.
pub type Groups = Vec<(Vec<String>, &'static str, Outgoing)>;

#[derive(Debug)]
pub enum LocalOutcome {
    /// Nothing stored: every local user is over quota and nothing else was to be delivered.
    /// `too_large` when the message alone is larger than the quota.
    Refused { too_large: bool },
    /// The plain copies are durable. `sieve`: the users with an active script, grouped as
    /// the plain ones were (their message without Return-Path); `over_quota`: the users left
    /// out for their quota.
    Delivered {
        sieve: Groups,
        over_quota: Vec<String>,
    },
}

impl LocalJob {
    /// Run the job on a blocking thread.
    pub async fn run(self) -> Result<LocalOutcome, DeliveryError> {
        tokio::task::spawn_blocking(move || self.run_blocking())
            .await
            .map_err(|e| DeliveryError::Join(e.to_string()))?
    }

    /// The job, blocking (file reads, writes and fsyncs).
    pub fn run_blocking(self) -> Result<LocalOutcome, DeliveryError> {
        let groups = self.sorted();
        let (groups, over_quota) = match self.within_quota(groups) {
            Ok(x) => x,
            Err(too_large) => return Ok(LocalOutcome::Refused { too_large }),
        };
        let scripts = ScriptStore::new(&self.config.data_dir);
        let mut sieve = Vec::new();
        for (users, folder, stored) in groups {
            let (filtered, plain): (Vec<String>, Vec<String>) = users
                .into_iter()
                .partition(|u| scripts.active_name(u).ok().flatten().is_some());
            let local = stored.with_prepended(self.return_path.as_bytes());
            deliver_blocking(&self.store, &plain, folder, &local)?;
            if !filtered.is_empty() {
                sieve.push((filtered, folder, stored));
            }
        }
        Ok(LocalOutcome::Delivered { sieve, over_quota })
    }

    /// The junk filter's verdict per user (when asked): the INBOX group, then one Junk group
    /// per user it sorted out, whose copy carries its finding. Each user's Sieve script
    /// runs after this and sees it.
    fn sorted(&self) -> Groups {
        let Some((dbs, message)) = &self.junk else {
            return vec![(self.users.clone(), self.folder, self.stored.clone())];
        };
        let sorted = crate::spam::sort_users(
            &self.store,
            dbs,
            &self.config.spam,
            &self.users,
            message.as_bytes(),
        );
        let mut groups = vec![(sorted.inbox, self.folder, self.stored.clone())];
        for (user, finding) in sorted.junk {
            let line = format!("{}: {finding}\r\n", crate::inbound::SPAM_HEADER);
            groups.push((
                vec![user],
                "Junk",
                self.stored.with_prepended(line.as_bytes()),
            ));
        }
        groups
    }

    /// The quota with the real size (`delivery::quota`), before anything is stored: the
    /// groups without the users over quota, and those users. Err(too_large): every user is
    /// over quota and nothing else is to be delivered, refuse the message.
    fn within_quota(&self, groups: Groups) -> Result<(Groups, Vec<String>), bool> {
        let limit = self.config.limits.mailbox_quota;
        if limit == 0 {
            return Ok((groups, Vec::new()));
        }
        let wanted: Vec<(String, u64)> = groups
            .iter()
            .flat_map(|(users, _, stored)| {
                let size = (stored.len() + self.return_path.len()) as u64;
                users.iter().map(move |u| (u.clone(), size))
            })
            .collect();
        let over = super::quota::over_quota_blocking(&self.store, limit, &wanted);
        if over.is_empty() {
            return Ok((groups, over));
        }
        if over.len() >= wanted.len() && !self.has_remote {
            let largest = wanted.iter().map(|w| w.1).max().unwrap_or(0);
            return Err(largest > limit);
        }
        let groups = groups
            .into_iter()
            .map(|(users, folder, stored)| {
                let users = users.into_iter().filter(|u| !over.contains(u)).collect();
                (users, folder, stored)
            })
            .collect();
        Ok((groups, over))
    }
}
