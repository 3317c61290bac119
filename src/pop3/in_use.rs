//! One POP3 session per maildrop at a time: RFC 1939 §8 has the server lock the maildrop
//! at login, and RFC 2449 §8.1.1 names the refusal `-ERR [IN-USE]`. Without it two sessions
//! could number the same messages and each DELE and QUIT what the other still lists. The
//! lock is held by the opened maildrop and released when the session ends (dropped, also
//! on a lost connection). It covers this server's POP3 sessions; IMAP sessions on the same
//! INBOX are not locked out (their view follows POP3's deletions through the change hub).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// The accounts whose maildrop a POP3 session has open; shared by the 110 and 995
/// listeners (`Services::pop3_in_use`).
#[derive(Debug, Default)]
pub struct InUse(Mutex<HashSet<String>>);

/// The lock on one maildrop; released on drop.
#[derive(Debug)]
pub struct Held {
    set: Arc<InUse>,
    user: String,
}

impl InUse {
    /// Lock `user`'s maildrop; None when another session holds it.
    pub fn take(self: &Arc<Self>, user: &str) -> Option<Held> {
        let mut set = self.0.lock().unwrap_or_else(|e| e.into_inner());
        set.insert(user.to_string()).then(|| Held {
            set: self.clone(),
            user: user.to_string(),
        })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut set = self.set.0.lock().unwrap_or_else(|e| e.into_inner());
        set.remove(&self.user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_per_user_until_dropped() {
        let locks = Arc::new(InUse::default());
        let a = locks.take("a@x.test").expect("free");
        assert!(locks.take("a@x.test").is_none());
        let b = locks.take("b@x.test");
        assert!(b.is_some());
        drop(a);
        assert!(locks.take("a@x.test").is_some());
    }
}
