//! Noticing, while sessions IDLE, what other programs change in a Maildir (an MDA, the
//! `postern` commands, a second server). Changes made through this server wake the idling
//! sessions at once through the mailbox's change signal; for the others, one task per
//! mailbox looks at the disk every `IDLE_POLL` while at least one session idles on it, and
//! what it finds goes out through the same signal. 500 sessions idling on one mailbox cost
//! one look a second and no timer of their own (Dovecot uses inotify for the same job; RFC
//! 2177 leaves the mechanism to the server).

use std::sync::Arc;
use std::time::Duration;

use crate::store::Mailbox;

/// How often the poller looks at the Maildir.
const IDLE_POLL: Duration = Duration::from_secs(1);

/// Make sure `mb` has its poller; call after subscribing to its change signal.
pub(super) fn ensure_poller(mb: &Arc<Mailbox>) {
    if !mb.start_poller() {
        return;
    }
    let mb = mb.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(IDLE_POLL).await;
            if !mb.keep_polling() {
                break;
            }
            let m = mb.clone();
            // A scan that finds a change (or a folder gone) notifies every watcher.
            let _ = tokio::task::spawn_blocking(move || m.poll_disk()).await;
        }
    });
}
