//! Local delivery through each user's active Sieve script (RFC 5228): after the inbound
//! checks, for port 25 and submission alike. The script sees the message as stored (our
//! Received and Authentication-Results headers included). `fileinto` (with `:create`),
//! keep, discard, redirect (queued, SRS sender), reject (returned to the caller, who answers
//! 550 before the 250 when it can) and vacation (queued, DKIM-signed, once per sender per
//! period). A script that fails to load or run never blocks delivery: the message is kept.

use crate::config::Config;
use crate::queue::Queue;
use crate::sieve::scripts::ScriptStore;
use crate::sieve::{self, Action, Envelope, Limits, MessageView};
use crate::store::Folder;
use crate::store::names::MailboxName;

use super::DeliveryError;

/// The shared handles Sieve delivery uses, borrowed from the server's services by the
/// caller (`Services::sieve_env`): storage for keep/fileinto, the queue for redirect,
/// vacation and reject notices, SRS for redirected senders, DKIM for generated replies.
pub struct SieveEnv<'a> {
    pub config: &'a Config,
    pub store: &'a crate::store::Store,
    pub queue: &'a Queue,
    pub srs: Option<&'a super::srs::Srs>,
    pub dkim: &'a super::dkim::KeyCache,
}

/// One local recipient: the account and the address the message was sent to.
#[derive(Debug, Clone)]
pub struct LocalRcpt {
    pub user: String,
    pub address: String,
}

/// What the scripts decided beyond storing: the users who rejected the message.
#[derive(Debug, Default)]
pub struct Filtered {
    pub rejects: Vec<(String, String)>,
}

/// An in-memory message for the queue.
fn outgoing(bytes: Vec<u8>) -> crate::spool::Outgoing {
    crate::spool::Outgoing::new(std::sync::Arc::new(crate::spool::SpooledMessage::from(
        bytes,
    )))
}

enum Store {
    Default(Vec<String>),
    Mailbox(String, bool, Vec<String>),
}

/// Deliver `stored` (the message as we keep it, without Return-Path) to every recipient,
/// running their scripts. `return_path` is prepended to stored copies. Stops at the first
/// storage failure (the caller answers 4xx; nothing is acknowledged). `cause` is the id of the
/// transaction (its 250 and log line): every message a script queues (redirect, vacation)
/// gets an id of its own, logged beside it.
pub async fn deliver(
    env: &SieveEnv<'_>,
    cause: &str,
    rcpts: &[LocalRcpt],
    default_folder: &'static str,
    mail_from: &str,
    return_path: &str,
    stored: &[u8],
) -> Result<Filtered, DeliveryError> {
    let scripts = ScriptStore::new(&env.config.data_dir);
    let mut out = Filtered::default();
    let mut local = return_path.as_bytes().to_vec();
    local.extend_from_slice(stored);
    for r in rcpts {
        let outcome = run_script(env, &scripts, r, mail_from, &local);
        let mut stores = Vec::new();
        for a in &outcome.actions {
            match a {
                Action::Keep { flags } => stores.push(Store::Default(flags.clone())),
                Action::FileInto {
                    mailbox,
                    create,
                    flags,
                    ..
                } => stores.push(Store::Mailbox(mailbox.clone(), *create, flags.clone())),
                Action::Discard => {}
                Action::Redirect { addr, .. } => {
                    let from = match env.srs {
                        Some(srs) => srs.forward(mail_from, crate::clock::unix_now()),
                        None => mail_from.to_string(),
                    };
                    match env
                        .queue
                        .enqueue(&from, std::slice::from_ref(addr), outgoing(stored.to_vec()))
                        .await
                    {
                        Ok(id) => tracing::info!(
                            id, cause, user = %r.user,
                            "sieve redirect of {cause} to <{addr}> queued as {id}"
                        ),
                        Err(e) => {
                            tracing::warn!(cause, user = %r.user, "sieve redirect to {addr} could not be queued: {e}; keeping");
                            stores.push(Store::Default(Vec::new()));
                        }
                    }
                }
                Action::Reject { reason, .. } => out.rejects.push((r.user.clone(), reason.clone())),
                Action::Vacation(v) => {
                    vacation(env, cause, &scripts, r, mail_from, &local, v).await
                }
            }
        }
        let store = env.store.clone();
        let (user, msg) = (r.user.clone(), local.clone());
        tokio::task::spawn_blocking(move || {
            let default = if default_folder.is_empty() {
                MailboxName::Inbox
            } else {
                MailboxName::from_utf8_wire(default_folder.as_bytes()).unwrap_or(MailboxName::Inbox)
            };
            for s in stores {
                let res = match s {
                    Store::Default(flags) => {
                        if default != MailboxName::Inbox && !store.mailbox_exists(&user, &default) {
                            store.deliver(&user, Folder::Named(default_folder), &msg)
                        } else {
                            store.deliver_mailbox(&user, &default, &msg, &flags)
                        }
                    }
                    Store::Mailbox(name, create, flags) => {
                        let mb = MailboxName::from_utf8_wire(name.as_bytes());
                        match mb {
                            Ok(mb) if mb == MailboxName::Inbox || store.mailbox_exists(&user, &mb) => {
                                store.deliver_mailbox(&user, &mb, &msg, &flags)
                            }
                            Ok(mb) if create => match store.create_mailbox(&user, &mb) {
                                Ok(()) => store.deliver_mailbox(&user, &mb, &msg, &flags),
                                Err(e) => {
                                    tracing::warn!(%user, "sieve fileinto :create {name:?} failed: {e}; keeping");
                                    store.deliver(&user, Folder::Inbox, &msg)
                                }
                            },
                            // RFC 5490 §3.2: without :create, a missing mailbox is a runtime
                            // error; the message is kept.
                            _ => {
                                tracing::warn!(%user, "sieve fileinto {name:?}: no such mailbox; keeping in INBOX");
                                store.deliver(&user, Folder::Inbox, &msg)
                            }
                        }
                    }
                };
                if let Err(source) = res {
                    return Err(DeliveryError::Store { user, source });
                }
            }
            Ok(())
        })
        .await
        .map_err(|e| DeliveryError::Join(e.to_string()))??;
    }
    Ok(out)
}

fn run_script(
    env: &SieveEnv<'_>,
    scripts: &ScriptStore,
    r: &LocalRcpt,
    mail_from: &str,
    msg: &[u8],
) -> sieve::Outcome {
    let keep = || sieve::Outcome {
        actions: vec![Action::Keep { flags: vec![] }],
        implicit_keep: true,
        errors: vec![],
    };
    let (name, text) = match scripts.active(&r.user) {
        Ok(Some(s)) => s,
        Ok(None) => return keep(),
        Err(e) => {
            tracing::warn!(user = %r.user, "cannot read the active sieve script: {e}; keeping");
            return keep();
        }
    };
    let limits = Limits::default();
    let script = match sieve::compile(&text, &limits) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(user = %r.user, script = %name, "sieve script does not compile: {e}; keeping");
            return keep();
        }
    };
    let envelope = Envelope {
        from: mail_from.to_string(),
        to: r.address.clone(),
    };
    let store = env.store;
    let exists = |m: &str| {
        MailboxName::from_utf8_wire(m.as_bytes())
            .is_ok_and(|mb| mb == MailboxName::Inbox || store.mailbox_exists(&r.user, &mb))
    };
    let ctx = sieve::interp::Context {
        envelope: &envelope,
        mailbox_exists: &exists,
        now: crate::clock::unix_now(),
    };
    let out = sieve::run(&script, &MessageView::new(msg), &ctx, &limits);
    for e in &out.errors {
        // RFC 5228 §2.10.6: the message is kept; the author learns why from the log.
        tracing::warn!(user = %r.user, script = %name, "sieve runtime error: {e}; message kept in INBOX");
    }
    out
}

async fn vacation(
    env: &SieveEnv<'_>,
    cause: &str,
    scripts: &ScriptStore,
    r: &LocalRcpt,
    mail_from: &str,
    msg: &[u8],
    v: &sieve::Vacation,
) {
    let view = MessageView::new(msg);
    let mut mine = vec![r.user.clone(), r.address.clone()];
    mine.extend(v.addresses.iter().cloned());
    if let Some(why) = super::vacation::suppressed(&view, mail_from, &mine) {
        tracing::info!(user = %r.user, "vacation: no reply to <{mail_from}> ({why})");
        return;
    }
    let now = crate::clock::unix_now();
    match scripts.vacation_replied(&r.user, &v.handle, mail_from, v.period, now) {
        Ok(true) => {
            tracing::info!(user = %r.user, "vacation: <{mail_from}> already answered this period");
            return;
        }
        Ok(false) => {}
        Err(e) => {
            tracing::warn!(user = %r.user, "vacation memory unavailable ({e}); not replying");
            return;
        }
    }
    let reply = super::vacation::reply(&view, v, &r.user, mail_from, &env.config.hostname, now);
    let signed = match env.dkim.sign(env.config, &reply) {
        Ok(sig) => {
            let mut s = sig.into_bytes();
            s.extend_from_slice(&reply);
            s
        }
        Err(e) => {
            tracing::warn!(user = %r.user, "vacation reply not DKIM-signed: {e}");
            reply
        }
    };
    // RFC 3834 §3.3: an automatic response goes from the null reverse-path.
    match env
        .queue
        .enqueue("", &[mail_from.to_string()], outgoing(signed))
        .await
    {
        Ok(id) => tracing::info!(
            id, cause, user = %r.user,
            "vacation reply to <{mail_from}> for {cause} queued as {id}"
        ),
        Err(e) => tracing::warn!(cause, user = %r.user, "vacation reply could not be queued: {e}"),
    }
}

/// RFC 5429 §2.1: after the message was accepted, a reject becomes a report to the sender
/// (from the null reverse-path, marked auto-replied), carrying the script's reason and the
/// original header section.
pub async fn reject_notice(
    env: &SieveEnv<'_>,
    cause: &str,
    mail_from: &str,
    user: &str,
    reason: &str,
    original: &[u8],
) {
    if mail_from.is_empty() {
        return;
    }
    let cfg = env.config;
    let date = chrono::DateTime::from_timestamp(crate::clock::unix_now(), 0)
        .unwrap_or_default()
        .to_rfc2822();
    let mut m = format!(
        "From: Mail Delivery System <MAILER-DAEMON@{}>\r\nTo: <{mail_from}>\r\nSubject: Message rejected by {user}\r\n\
         Date: {date}\r\nMessage-ID: <{:016x}.reject@{}>\r\nAuto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
         Your message to <{user}> was rejected by the recipient's mail filter:\r\n\r\n  {}\r\n\r\n\
         The header of your message follows.\r\n\r\n",
        cfg.domain,
        crate::fsutil::unique(),
        cfg.hostname,
        reason.replace(['\r', '\n'], " "),
    )
    .into_bytes();
    m.extend_from_slice(&crate::queue::dsn::header_section(original));
    let signed = match env.dkim.sign(cfg, &m) {
        Ok(sig) => [sig.into_bytes(), m].concat(),
        Err(_) => m,
    };
    match env
        .queue
        .enqueue("", &[mail_from.to_string()], outgoing(signed))
        .await
    {
        Ok(id) => tracing::info!(
            id, cause, %user,
            "sieve reject notice to <{mail_from}> for {cause} queued as {id}"
        ),
        Err(e) => tracing::warn!(cause, %user, "sieve reject notice could not be queued: {e}"),
    }
}
