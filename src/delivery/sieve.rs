//! Local delivery through each user's active Sieve script (RFC 5228): after the inbound
//! checks, for port 25 and submission alike. The script sees the message as stored (our
//! Received and Authentication-Results headers included). `fileinto` (with `:create`),
//! keep, discard, redirect (queued, SRS sender), reject (returned to the caller, who answers
//! 550 before the 250 when it can, and otherwise sends `reject_notice`, a DSN) and vacation
//! (queued, DKIM-signed, once per sender per period). A script that fails to load or run
//! never blocks delivery: the message is kept, and the user finds a notice saying why in
//! INBOX (`sieve_notices::error_notice`, once a day per error).
//!
//! Every local delivery goes through `deliver` (port 25, submission, the queue scheduler,
//! `postern sendmail`), so a user's active script runs once per message whichever way it
//! came. Users without an active script simply get the message in the default folder.

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

/// A recipient whose script rejected the message, with the script's reason.
#[derive(Debug, Clone)]
pub struct Reject {
    pub user: String,
    /// The address the message was sent to (the DSN's Final-Recipient).
    pub address: String,
    pub reason: String,
}

/// What the scripts decided beyond storing: the users who rejected the message.
#[derive(Debug, Default)]
pub struct Filtered {
    pub rejects: Vec<Reject>,
}

/// An error without its quoted parts (mailbox names, addresses, expanded variables), so
/// one mistake met with many messages counts as one error for the daily notice.
fn error_kind(e: &str) -> String {
    let mut out = String::new();
    let mut quoted = false;
    for c in e.chars() {
        if c == '"' {
            if !quoted {
                out.push_str("\"…\"");
            }
            quoted = !quoted;
        } else if !quoted {
            out.push(c);
        }
    }
    out
}

/// Marks each copy a script redirects, naming the user whose script sent it on (as
/// Pigeonhole does). Redirected mail to a local address comes back through the queue and
/// that user's script: RFC 5228 §4.2 asks implementations to stop loops, which these
/// headers do (`redirect_loop`).
const REDIRECTED_FROM: &str = "X-Sieve-Redirected-From";

/// At most this many redirect hops through our scripts.
const MAX_REDIRECT_HOPS: usize = 8;

/// Why `user`'s script may not redirect this message again, if it may not: it already went
/// through this user's redirect (a loop), or through too many.
fn redirect_loop(msg: &[u8], user: &str) -> Option<&'static str> {
    let view = MessageView::new(msg);
    let hops = view.header_values(&REDIRECTED_FROM.to_ascii_lowercase());
    let me = format!("<{}>", user.to_ascii_lowercase());
    if hops.iter().any(|h| h.trim().to_ascii_lowercase() == me) {
        Some("the message was already redirected by this user's script (loop)")
    } else if hops.len() >= MAX_REDIRECT_HOPS {
        Some("too many redirects")
    } else {
        None
    }
}

/// How long one script error is reported once (the log has every occurrence).
const ERROR_NOTICE_PERIOD: u64 = 86_400;

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
        let (script, outcome) = run_script(env, &scripts, r, mail_from, &local);
        let mut errors = outcome.errors.clone();
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
                    if let Some(why) = redirect_loop(stored, &r.user) {
                        tracing::warn!(user = %r.user, "sieve redirect to {addr} refused ({why}); keeping");
                        errors.push(format!("redirect \"{addr}\" refused: {why}"));
                        stores.push(Store::Default(Vec::new()));
                        continue;
                    }
                    let from = match env.srs {
                        Some(srs) => srs.forward(mail_from, crate::clock::unix_now()),
                        None => mail_from.to_string(),
                    };
                    let mut copy = format!("{REDIRECTED_FROM}: <{}>\r\n", r.user).into_bytes();
                    copy.extend_from_slice(stored);
                    match env
                        .queue
                        .enqueue(&from, std::slice::from_ref(addr), outgoing(copy))
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
                Action::Reject { reason, .. } => out.rejects.push(Reject {
                    user: r.user.clone(),
                    address: r.address.clone(),
                    reason: reason.clone(),
                }),
                Action::Vacation(v) => vacation(env, cause, r, mail_from, &local, v).await,
            }
        }
        let store = env.store.clone();
        let (user, msg) = (r.user.clone(), local.clone());
        let fileinto_errors = tokio::task::spawn_blocking(move || {
            let mut errors = Vec::new();
            let default = if default_folder.is_empty() {
                MailboxName::Inbox
            } else {
                MailboxName::from_utf8_wire(default_folder.as_bytes()).unwrap_or(MailboxName::Inbox)
            };
            for s in stores {
                let res = match s {
                    Store::Default(flags) => {
                        if default != MailboxName::Inbox && !store.mailbox_exists(&user, &default) {
                            store.deliver(&user, Folder::Named(default_folder), &msg).map(drop)
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
                                    errors.push(format!("fileinto :create \"{name}\": {e}"));
                                    store.deliver(&user, Folder::Inbox, &msg).map(drop)
                                }
                            },
                            // RFC 5490 §3.2: without :create, a missing mailbox is a runtime
                            // error; the message is kept.
                            _ => {
                                tracing::warn!(%user, "sieve fileinto {name:?}: no such mailbox; keeping in INBOX");
                                errors.push(format!(
                                    "fileinto \"{name}\": no such mailbox (create it, or use fileinto :create)"
                                ));
                                store.deliver(&user, Folder::Inbox, &msg).map(drop)
                            }
                        }
                    }
                };
                if let Err(source) = res {
                    return Err(DeliveryError::Store { user, source });
                }
            }
            Ok(errors)
        })
        .await
        .map_err(|e| DeliveryError::Join(e.to_string()))??;
        errors.extend(fileinto_errors);
        if let (Some(script), false) = (&script, errors.is_empty()) {
            error_notice(env, r, script, &errors, mail_from, &local).await;
        }
    }
    Ok(out)
}

/// RFC 5228 §2.10.6: the author of a failing script learns why. A notice goes into the
/// user's INBOX (where a mail client shows it), once a day per script and error; the log
/// has every occurrence. Failing to write it only costs the notice.
async fn error_notice(
    env: &SieveEnv<'_>,
    r: &LocalRcpt,
    script: &str,
    errors: &[String],
    mail_from: &str,
    msg: &[u8],
) {
    let now = crate::clock::unix_now();
    let notice = super::sieve_notices::error_notice(
        env.config, &r.user, script, errors, msg, mail_from, now,
    );
    let kinds: Vec<String> = errors.iter().map(|e| error_kind(e)).collect();
    let key = format!("{script}\t{}", kinds.join("; "));
    let scripts = ScriptStore::new(&env.config.data_dir);
    let (store, user) = (env.store.clone(), r.user.clone());
    let res = tokio::task::spawn_blocking(move || -> Result<bool, String> {
        if scripts
            .error_noticed(&user, &key, ERROR_NOTICE_PERIOD, now)
            .map_err(|e| e.to_string())?
        {
            return Ok(false);
        }
        store
            .deliver(&user, Folder::Inbox, &notice)
            .map_err(|e| e.to_string())?;
        Ok(true)
    })
    .await;
    match res {
        Ok(Ok(true)) => tracing::info!(user = %r.user, script, "sieve error notice put into INBOX"),
        Ok(Ok(false)) => {}
        Ok(Err(e)) => tracing::warn!(user = %r.user, "sieve error notice not delivered: {e}"),
        Err(e) => tracing::warn!(user = %r.user, "sieve error notice task failed: {e}"),
    }
}

fn run_script(
    env: &SieveEnv<'_>,
    scripts: &ScriptStore,
    r: &LocalRcpt,
    mail_from: &str,
    msg: &[u8],
) -> (Option<String>, sieve::Outcome) {
    let keep = |errors| sieve::Outcome {
        actions: vec![Action::Keep { flags: vec![] }],
        implicit_keep: true,
        errors,
    };
    let (name, text) = match scripts.active(&r.user) {
        Ok(Some(s)) => s,
        Ok(None) => return (None, keep(vec![])),
        Err(e) => {
            tracing::warn!(user = %r.user, "cannot read the active sieve script: {e}; keeping");
            return (None, keep(vec![]));
        }
    };
    let limits = Limits::default();
    let script = match sieve::compile(&text, &limits) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(user = %r.user, script = %name, "sieve script does not compile: {e}; keeping");
            return (
                Some(name),
                keep(vec![format!("the script does not compile: {e}")]),
            );
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
    (Some(name), out)
}

async fn vacation(
    env: &SieveEnv<'_>,
    cause: &str,
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
    // The memory is a locked file read-modify-write: off the async workers.
    let scripts = ScriptStore::new(&env.config.data_dir);
    let (user, handle, sender, period) = (
        r.user.clone(),
        v.handle.clone(),
        mail_from.to_string(),
        v.period,
    );
    let replied = tokio::task::spawn_blocking(move || {
        scripts
            .vacation_replied(&user, &handle, &sender, period, now)
            .map_err(|e| e.to_string())
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()));
    match replied {
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

/// RFC 5429 §2.1: after the message was accepted, a reject becomes a delivery status
/// notification to the envelope sender (`sieve_notices::reject_dsn`: multipart/report,
/// Action: failed, Status: 5.7.1), from the null reverse-path, DKIM-signed. Never to the
/// null sender (a bounce is not answered with another). `cause` is the id of the
/// transaction or queue entry that carried the message, logged beside the DSN's own id.
pub async fn reject_notice(
    env: &SieveEnv<'_>,
    cause: &str,
    mail_from: &str,
    reject: &Reject,
    original: &[u8],
) {
    if mail_from.is_empty() {
        tracing::info!(user = %reject.user, "sieve reject of a null-sender message: no DSN");
        return;
    }
    let cfg = env.config;
    let m = super::sieve_notices::reject_dsn(
        cfg,
        mail_from,
        &reject.address,
        &reject.reason,
        original,
        crate::clock::unix_now(),
    );
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
            id, cause, user = %reject.user,
            "sieve reject DSN to <{mail_from}> for {cause} queued as {id}"
        ),
        Err(e) => {
            tracing::warn!(cause, user = %reject.user, "sieve reject DSN could not be queued: {e}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_kinds_ignore_quoted_parts() {
        assert_eq!(
            error_kind("fileinto \"a@x\": no such mailbox"),
            error_kind("fileinto \"b@y\": no such mailbox")
        );
        assert_ne!(
            error_kind("fileinto \"a\": no such mailbox"),
            error_kind("redirect \"a\" refused: loop")
        );
    }

    #[test]
    fn redirect_loops_are_stopped() {
        let fresh = b"Subject: x\r\n\r\nb";
        assert_eq!(redirect_loop(fresh, "a@example.com"), None);
        let once = b"X-Sieve-Redirected-From: <b@example.com>\r\nX-Sieve-Redirected-From: <A@example.com>\r\nSubject: x\r\n\r\nb";
        assert!(redirect_loop(once, "a@example.com").is_some());
        assert_eq!(redirect_loop(once, "c@example.com"), None);
        let many: Vec<u8> = (0..MAX_REDIRECT_HOPS)
            .flat_map(|i| format!("X-Sieve-Redirected-From: <u{i}@example.com>\r\n").into_bytes())
            .chain(b"\r\nb".iter().copied())
            .collect();
        assert_eq!(
            redirect_loop(&many, "c@example.com"),
            Some("too many redirects")
        );
    }
}
