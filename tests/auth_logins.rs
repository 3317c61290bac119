//! The login entry point as clients see it (issue 12 items 3, 6): one canonical name per
//! account for the throttle, refused spellings, and the auth cache dropping what `postern user
//! passwd` / `user del` changed. Python's imaplib/smtplib are the clients.

mod common;
use common::*;

fn start() -> Postern {
    let p = Postern::start_with(Setup {
        extra: "[limits]\nmax_auth_failures = 3\n".into(),
        ..Setup::default()
    });
    p.add_user("bob@example.test", "right-password");
    p
}

/// Run IMAP LOGINs (name, password, source address) on 993; prints one result line each.
fn imap_logins(p: &Postern, attempts: &[(&str, &str, &str)]) -> Vec<String> {
    let list: Vec<String> = attempts
        .iter()
        .map(|(u, pw, src)| format!("({u:?}, {pw:?}, {src:?})"))
        .collect();
    let out = python(&format!(
        r#"
import ssl, socket
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
def until(f, tag):
    while True:
        l = f.readline()
        if not l or l.startswith(tag) or l.startswith(b"+"): return l
# The name and password go as literals (RFC 9051 §4.3), so any byte reaches the server as is.
for user, pw, src in [{list}]:
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", {port}), timeout=30, source_address=(src, 0)), server_hostname="x")
    f = s.makefile("rb"); f.readline()
    u, p = user.encode(), pw.encode()
    s.sendall(b"a LOGIN {{%d}}\r\n" % len(u)); assert until(f, b"a").startswith(b"+")
    s.sendall(u + b" {{%d}}\r\n" % len(p)); assert until(f, b"a").startswith(b"+")
    s.sendall(p + b"\r\n")
    r = until(f, b"a").decode().strip()
    print("OK" if r.startswith("a OK") else "NO " + r)
    s.sendall(b"z LOGOUT\r\n"); s.close()
"#,
        list = list.join(", "),
        port = p.ports.imaps
    ));
    out.lines().map(str::to_string).collect()
}

#[test]
fn a_locked_account_stays_locked_under_every_spelling() {
    let p = start();
    let wrong: Vec<(&str, &str, &str)> = ["bob", "BOB@example.test", "bob@EXAMPLE.test"]
        .iter()
        .map(|u| (*u, "guess", "127.0.0.1"))
        .collect();
    let r = imap_logins(&p, &wrong);
    assert!(
        r.iter().all(|l| l.contains("AUTHENTICATIONFAILED")),
        "{r:?}"
    );
    // From another address, with the right password: still refused, whatever the spelling.
    let r = imap_logins(
        &p,
        &[
            ("bob@example.test", "right-password", "127.0.0.2"),
            ("bob@example.test....", "right-password", "127.0.0.3"),
            ("bob@example.test.", "right-password", "127.0.0.4"),
            (" bob@example.test", "right-password", "127.0.0.5"),
            ("<bob@example.test>", "right-password", "127.0.0.6"),
            ("\u{212a}", "right-password", "127.0.0.7"),
        ],
    );
    assert!(r[0].contains("UNAVAILABLE"), "{r:?}");
    assert!(r[1..].iter().all(|l| l.starts_with("NO")), "{r:?}");
    let log = p.log();
    assert!(
        log.contains("user=bob@example.test.... reason=bad-name:bad-domain"),
        "{log}"
    );
    assert!(
        log.contains("user=\\x20bob@example.test reason=bad-name"),
        "{log}"
    );
}

#[test]
fn spellings_that_canonicalise_log_in_as_one_account() {
    let p = start();
    let r = imap_logins(
        &p,
        &[
            ("bob", "right-password", "127.0.0.1"),
            ("Bob@Example.Test", "right-password", "127.0.0.1"),
        ],
    );
    assert_eq!(r, ["OK", "OK"]);
    assert_eq!(
        p.log()
            .matches("auth ok: service=imap ip=127.0.0.1 user=bob@example.test")
            .count(),
        2
    );
}

#[test]
fn password_change_and_deletion_end_cached_logins() {
    let p = start();
    // Cached after the first success; the second is a cache hit.
    let r = imap_logins(
        &p,
        &[
            ("bob", "right-password", "127.0.0.1"),
            ("bob", "right-password", "127.0.0.1"),
        ],
    );
    assert_eq!(r, ["OK", "OK"]);
    let out = p.cli(
        &["user", "passwd", "bob@example.test", "--password-stdin"],
        Some("new-password\n"),
    );
    assert!(out.status.success(), "{out:?}");
    let r = imap_logins(
        &p,
        &[
            ("bob", "right-password", "127.0.0.1"),
            ("bob", "new-password", "127.0.0.1"),
        ],
    );
    assert!(r[0].starts_with("NO"), "{r:?}");
    assert_eq!(r[1], "OK");
    // Without a terminal `user del` wants --yes; --force: the role aliases may point at bob.
    let out = p.cli(
        &["user", "del", "bob@example.test", "--yes", "--force"],
        None,
    );
    assert!(out.status.success(), "{out:?}");
    let r = imap_logins(&p, &[("bob", "new-password", "127.0.0.1")]);
    assert!(r[0].starts_with("NO"), "{r:?}");
}

#[test]
fn smtp_and_imap_share_the_sasl_rules() {
    let p = start();
    let out = python(&format!(
        r#"
import ssl, socket, base64, smtplib
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
def b64(b): return base64.b64encode(b).decode()
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", {imaps}), timeout=20), server_hostname="x")
f = s.makefile("rb"); f.readline()
def cmd(line):
    s.sendall(line + b"\r\n")
    while True:
        l = f.readline()
        if l[:2] in (b"a ", b"b ", b"c ", b"d "): return l.decode().strip()
# Another authorization identity: refused, as RFC 4616 allows when proxying is not offered.
print("imap-authz", cmd(b"a AUTHENTICATE PLAIN " + b64(b"alice@example.test\0bob\0right-password").encode()))
# Not UTF-8 (RFC 4616 §2): refused as malformed, not converted.
print("imap-utf8", cmd(b"b AUTHENTICATE PLAIN " + b64(b"\0b\xffob\0right-password").encode()))
print("imap-ok", cmd(b"c AUTHENTICATE PLAIN " + b64(b"bob\0bob\0right-password").encode()))
m = smtplib.SMTP_SSL("127.0.0.1", {subs}, context=ctx, timeout=20)
m.ehlo("client.example")
print("smtp-authz", m.docmd("AUTH", "PLAIN " + b64(b"alice@example.test\0bob\0right-password")))
print("smtp-utf8", m.docmd("AUTH", "PLAIN " + b64(b"\0b\xffob\0right-password")))
print("smtp-ok", m.docmd("AUTH", "PLAIN " + b64(b"BOB@example.test\0bob\0right-password")))
"#,
        imaps = p.ports.imaps,
        subs = p.ports.submissions
    ));
    let line = |k: &str| {
        out.lines()
            .find(|l| l.starts_with(k))
            .unwrap_or_else(|| panic!("{k}: {out}"))
            .to_string()
    };
    assert!(line("imap-authz").contains("AUTHORIZATIONFAILED"), "{out}");
    assert!(
        line("imap-utf8").contains("a BAD") || line("imap-utf8").contains("b BAD"),
        "{out}"
    );
    assert!(line("imap-ok").contains("c OK"), "{out}");
    assert!(line("smtp-authz").contains("535"), "{out}");
    assert!(line("smtp-utf8").contains("501"), "{out}");
    assert!(line("smtp-ok").contains("235"), "{out}");
}
