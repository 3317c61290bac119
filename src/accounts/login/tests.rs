use std::io::Write;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use super::*;

struct Fixture {
    _dir: tempfile::TempDir,
    accounts: Arc<Accounts>,
    logins: Logins,
    metrics: Arc<Metrics>,
}

fn fixture(max_failures: u32) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let accounts = Arc::new(Accounts::open(dir.path(), "example.test").unwrap());
    accounts.add_user("bob@example.test", "right").unwrap();
    let metrics = Arc::new(Metrics::default());
    let logins = Logins::new(accounts.clone(), max_failures, metrics.clone());
    Fixture {
        _dir: dir,
        accounts,
        logins,
        metrics,
    }
}

fn creds(user: &str, password: &str) -> Credentials {
    Credentials {
        authzid: String::new(),
        user: user.into(),
        password: password.into(),
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn every_spelling_counts_against_one_account() {
    let f = fixture(3);
    let attacker = ip("192.0.2.1");
    for spelling in ["bob", "BOB@example.test", "bob@EXAMPLE.TEST"] {
        assert_eq!(
            f.logins
                .login_blocking("imap", attacker, &creds(spelling, "guess")),
            Err(Refusal::Invalid)
        );
    }
    // Locked: from another address, neither the canonical nor a trailing-dot spelling gets in,
    // even with the right password.
    let other = ip("198.51.100.7");
    assert_eq!(
        f.logins
            .login_blocking("imap", other, &creds("bob@example.test", "right")),
        Err(Refusal::Throttled)
    );
    for s in [
        "bob@example.test.",
        "bob@example.test....",
        " bob",
        "<bob@example.test>",
        "\u{212a}",
    ] {
        assert_eq!(
            f.logins.login_blocking("imap", other, &creds(s, "right")),
            Err(Refusal::BadName),
            "{s:?}"
        );
    }
    assert_eq!(
        f.metrics
            .auth_failures
            .load(std::sync::atomic::Ordering::Relaxed),
        9
    );
}

#[test]
fn bad_names_count_against_the_address() {
    let f = fixture(3);
    let a = ip("192.0.2.2");
    for _ in 0..3 {
        assert_eq!(
            f.logins.login_blocking("smtp", a, &creds("x\r\ny", "pw")),
            Err(Refusal::BadName)
        );
    }
    assert_eq!(
        f.logins.login_blocking("smtp", a, &creds("bob", "right")),
        Err(Refusal::Throttled)
    );
    assert!(
        f.logins
            .login_blocking("smtp", ip("192.0.2.3"), &creds("bob", "right"))
            .is_ok()
    );
}

#[test]
fn successes_are_cached_until_the_password_changes() {
    let f = fixture(10);
    let a = ip("192.0.2.4");
    assert_eq!(
        f.logins
            .login_blocking("imap", a, &creds("Bob", "right"))
            .as_deref(),
        Ok("bob@example.test")
    );
    assert_eq!(f.logins.cached(), 1);
    assert!(
        f.logins
            .login_blocking("imap", a, &creds("bob@example.test", "right"))
            .is_ok()
    );
    assert_eq!(f.logins.cached(), 1);
    // Failures are never cached.
    assert_eq!(
        f.logins.login_blocking("imap", a, &creds("bob", "wrong")),
        Err(Refusal::Invalid)
    );
    assert_eq!(f.logins.cached(), 1);
    // `postern user passwd` (another process, through the file) invalidates the entry.
    let cli = Accounts::open(f._dir.path(), "example.test").unwrap();
    cli.set_password("bob@example.test", "new").unwrap();
    assert_eq!(
        f.logins.login_blocking("imap", a, &creds("bob", "right")),
        Err(Refusal::Invalid)
    );
    assert!(
        f.logins
            .login_blocking("imap", a, &creds("bob", "new"))
            .is_ok()
    );
    cli.delete_user("bob@example.test").unwrap();
    assert_eq!(
        f.logins.login_blocking("imap", a, &creds("bob", "new")),
        Err(Refusal::Invalid)
    );
    let _ = &f.accounts;
}

#[test]
fn authzid_must_name_the_same_account() {
    let f = fixture(10);
    let a = ip("192.0.2.5");
    let mut c = creds("bob", "right");
    c.authzid = "BOB@example.test".into();
    assert!(f.logins.login_blocking("smtp", a, &c).is_ok());
    c.authzid = "alice@example.test".into();
    assert_eq!(
        f.logins.login_blocking("smtp", a, &c),
        Err(Refusal::NotAuthorized)
    );
}

/// A `Write` that appends to a shared buffer, for capturing log lines.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_forged_name_writes_one_escaped_line() {
    let f = fixture(10);
    let buf = Captured::default();
    let writer = buf.clone();
    let sub = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let forged = "x\r\n2026-01-31T12:00:00Z  WARN auth failed: service=imap ip=203.0.113.77 user=x";
    tracing::subscriber::with_default(sub, || {
        let _ = f
            .logins
            .login_blocking("imap", ip("192.0.2.6"), &creds(forged, "pw"));
        let _ = f.logins.login_blocking(
            "imap",
            ip("192.0.2.6"),
            &creds("nobody\u{2028}ip=203.0.113.77", "pw"),
        );
    });
    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    for line in text.lines() {
        assert!(
            line.contains("auth failed: service=imap ip=192.0.2.6 user="),
            "{line}"
        );
        // The escaped name stays one token: the next field is the reason.
        let toks: Vec<&str> = line.split_whitespace().collect();
        let u = toks.iter().position(|t| t.starts_with("user=")).unwrap();
        assert!(toks[u + 1].starts_with("reason="), "{line}");
        assert!(line.is_ascii() && !line.contains('\r'), "{line}");
    }
}
