//! Smarthost relay (`[outbound] relay`): a second postern is the relay (its submission ports
//! require TLS and AUTH; a test CA issues its certificate, trusted through
//! `[outbound].ca_file`). Mail submitted to the sender for a remote domain leaves through the
//! relay, which delivers it to Postfix's smtp-sink as the remote MX. Also: a relay without
//! STARTTLS (refused, mail stays queued), bad credentials (temporary, bounced only at expiry),
//! implicit TLS on 465, `[outbound.relay_domains]`, the password file's mode, and
//! `postern check` against good and bad relays.

mod common;
mod outbound_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{BIN, Postern, Setup, free_port};
use outbound_support::*;

const WAIT: Duration = Duration::from_secs(40);
const RELAY_HOST: &str = "smtp.relay.test";
const RELAY_PW: &str = "relay-pw-for-alice";

/// The relay side: DNS for every test host, the remote MX (smtp-sink) and postern B.
struct RelaySetup {
    certs: tempfile::TempDir,
    dns: Dns,
    sink: SmtpSink,
    /// Port of the remote MX, and of every other test MX.
    mx_port: u16,
    relay: Postern,
}

impl RelaySetup {
    /// `mx_ip`: a loopback address of this test's own remote MX for remote.test.
    fn start(mx_ip: &str) -> RelaySetup {
        let certs = tempfile::tempdir().unwrap();
        make_certs(certs.path(), &[RELAY_HOST]);
        let mx_port = free_port();
        let dns = Dns::start(&[
            format!("host-record={RELAY_HOST},127.0.0.1"),
            "mx-host=remote.test,mx.remote.test,10".into(),
            format!("host-record=mx.remote.test,{mx_ip}"),
            "mx-host=direct.test,mx.direct.test,10".into(),
            "host-record=mx.direct.test,127.0.0.46".into(),
        ]);
        let sink = SmtpSink::start(mx_ip, mx_port, &[]);
        let c = certs.path();
        // The relay hosts the same domain: a provider's relay knows your address, and
        // postern's submission only lets a user send as their own addresses.
        let relay = Postern::start_with(Setup {
            domain: "example.test".into(),
            hostname: RELAY_HOST.into(),
            tls: Some(format!(
                "[tls]\nsource = \"files\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
                c.join("leaf.pem").display(),
                c.join("leaf.key").display()
            )),
            extra: format!(
                "[dns]\nnameservers = [\"127.0.0.1:{}\"]\n[outbound]\nport = {mx_port}\n\
                 [limits]\nmax_auth_failures = 1000\n",
                dns.port
            ),
        });
        relay.add_user("alice@example.test", RELAY_PW);
        RelaySetup {
            certs,
            dns,
            sink,
            mx_port,
            relay,
        }
    }

    fn ca(&self) -> PathBuf {
        self.certs.path().join("ca.pem")
    }

    /// A password file (mode 0600) in the certs directory.
    fn password_file(&self, name: &str, password: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = self.certs.path().join(name);
        std::fs::write(&p, format!("{password}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        p
    }

    /// `[outbound]` keys for relaying through B on `port` (after `[outbound] port = …`).
    fn relay_keys(&self, relay: &str, tls: &str, password_file: &Path, ca: bool) -> String {
        format!(
            "relay = \"{relay}\"\nrelay_tls = \"{tls}\"\nrelay_user = \"alice@example.test\"\n\
             relay_password_file = \"{}\"\n{}",
            password_file.display(),
            if ca {
                format!("ca_file = \"{}\"\n", self.ca().display())
            } else {
                String::new()
            }
        )
    }
}

fn msg(subject: &str, to: &str) -> String {
    format!("From: alice@example.test\nTo: {to}\nSubject: {subject}\n\nHello through the relay.\n")
}

/// `postern check` output (it also fails on the DNS checks of this test setup; the relay
/// lines are what these tests read).
fn check(p: &Postern) -> String {
    let out = p.cli(&["check"], None);
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn relay_line(out: &str, port: u16) -> &str {
    let name = format!("relay {RELAY_HOST}:{port}:");
    out.lines()
        .find(|l| l.contains(&name))
        .unwrap_or_else(|| panic!("no {name} line in:\n{out}"))
}

#[test]
fn starttls_relay_with_auth_delivers_and_check_logs_in() {
    let r = RelaySetup::start("127.0.0.41");
    let pw = r.password_file("pw", RELAY_PW);
    let relay = format!("{RELAY_HOST}:{}", r.relay.ports.submission);
    // The sender's own MX delivery would go to a closed port: as if port 25 were blocked.
    let a = sender(
        &r.dns,
        free_port(),
        &r.relay_keys(&relay, "starttls", &pw, true),
    );
    sendmail(
        &a,
        &["-f", "alice@example.test", "bob@remote.test"],
        &msg("via the relay", "bob@remote.test"),
    );
    let got = r.sink.wait_messages(1, WAIT);
    assert_eq!(
        got.len(),
        1,
        "sender log:\n{}\nrelay log:\n{}",
        a.log(),
        r.relay.log()
    );
    let m = &got[0];
    assert!(m.contains("Subject: via the relay"), "{m}");
    assert!(m.contains("bob@remote.test"), "{m}");
    // It passed through the relay's authenticated submission over TLS …
    assert!(
        m.contains(&format!("by {RELAY_HOST} (postern) with ESMTPSA")),
        "{m}"
    );
    // … carrying the sender's DKIM signature (signed before it left A).
    assert!(m.contains("d=example.test"), "{m}");
    assert!(
        a.wait_log("outbound transaction through the relay", WAIT),
        "{}",
        a.log()
    );
    let log = a.log();
    assert!(
        log.contains("tls_verified=true auth=\"PLAIN\"")
            || log.contains("tls_verified=true auth=PLAIN"),
        "{log}"
    );
    assert!(
        !log.contains(RELAY_PW),
        "the password never reaches the log"
    );
    assert!(
        r.relay.log().contains("auth ok: service=smtp-submission"),
        "the relay logged the login"
    );
    assert!(wait_queue_empty(&a, WAIT));

    let out = check(&a);
    let line = relay_line(&out, r.relay.ports.submission);
    assert!(line.starts_with("ok"), "{out}");
    assert!(
        line.contains("STARTTLS, certificate verified, AUTH PLAIN as alice@example.test accepted"),
        "{line}"
    );
}

#[test]
fn implicit_tls_relay_on_465() {
    let r = RelaySetup::start("127.0.0.42");
    let pw = r.password_file("pw", RELAY_PW);
    let relay = format!("{RELAY_HOST}:{}", r.relay.ports.submissions);
    let a = sender(
        &r.dns,
        free_port(),
        &r.relay_keys(&relay, "implicit", &pw, true),
    );
    sendmail(
        &a,
        &["-f", "alice@example.test", "bob@remote.test"],
        &msg("over 465", "bob@remote.test"),
    );
    let got = r.sink.wait_messages(1, WAIT);
    assert_eq!(
        got.len(),
        1,
        "sender log:\n{}\nrelay log:\n{}",
        a.log(),
        r.relay.log()
    );
    assert!(got[0].contains("Subject: over 465"));
    assert!(got[0].contains(&format!("by {RELAY_HOST} (postern) with ESMTPSA")));
    let out = check(&a);
    let line = relay_line(&out, r.relay.ports.submissions);
    assert!(
        line.contains("ok") && line.contains("implicit TLS"),
        "{out}"
    );
}

#[test]
fn relay_domains_sends_only_the_listed_domain_through_the_relay() {
    let r = RelaySetup::start("127.0.0.43");
    let pw = r.password_file("pw", RELAY_PW);
    // A direct MX for direct.test, on the same port number the sender uses for MX delivery.
    let direct = SmtpSink::start("127.0.0.46", r.mx_port, &[]);
    let a = sender(
        &r.dns,
        r.mx_port,
        &format!(
            "relay_user = \"alice@example.test\"\nrelay_password_file = \"{}\"\nca_file = \"{}\"\n\
             [outbound.relay_domains]\n\"remote.test\" = \"{RELAY_HOST}:{}\"\n",
            pw.display(),
            r.ca().display(),
            r.relay.ports.submission
        ),
    );
    sendmail(
        &a,
        &[
            "-f",
            "alice@example.test",
            "bob@remote.test",
            "carol@direct.test",
        ],
        &msg("split", "bob@remote.test, carol@direct.test"),
    );
    let relayed = r.sink.wait_messages(1, WAIT);
    let straight = direct.wait_messages(1, WAIT);
    assert_eq!((relayed.len(), straight.len()), (1, 1), "log:\n{}", a.log());
    assert!(relayed[0].contains(&format!("by {RELAY_HOST} (postern)")));
    assert!(relayed[0].contains("bob@remote.test") && !relayed[0].contains("X-Rcpt-Args: carol"));
    // Straight from the sender: no hop through the relay.
    assert!(
        !straight[0].contains(&format!("by {RELAY_HOST}")),
        "{}",
        straight[0]
    );
    assert!(straight[0].contains("carol@direct.test"));
}

#[test]
fn relay_without_starttls_is_refused_and_mail_stays_queued() {
    let r = RelaySetup::start("127.0.0.44");
    let pw = r.password_file("pw", RELAY_PW);
    let port = free_port();
    let plain = ScriptSink::start("127.0.0.45", port);
    let a = sender(
        &r.dns,
        free_port(),
        &format!(
            "{}[queue]\nretry_schedule_secs = [1]\n",
            r.relay_keys(&format!("127.0.0.45:{port}"), "starttls", &pw, true)
        ),
    );
    sendmail(
        &a,
        &["-f", "alice@example.test", "bob@remote.test"],
        &msg("never in the clear", "bob@remote.test"),
    );
    let show = wait_queue_show(&a, "offers no STARTTLS");
    assert!(
        show.contains("offers no STARTTLS"),
        "{show}\nlog:\n{}",
        a.log()
    );
    assert!(show.contains("4.7.4"), "{show}");
    assert!(show.contains("relay 127.0.0.45"), "{show}");
    // Retried (the schedule is 1 s), and still nothing was sent: no transaction at the relay.
    let show = wait_queue_show(&a, "attempts: 3");
    assert!(show.contains("attempts: 3"), "{show}");
    assert!(plain.received.lock().unwrap().is_empty());
    assert!(
        show.contains("status: retry in") || show.contains("status: due now"),
        "{show}"
    );
}

#[test]
fn bad_credentials_defer_with_a_status_and_bounce_only_at_expiry() {
    let r = RelaySetup::start("127.0.0.47");
    let pw = r.password_file("bad-pw", "not-the-password");
    let relay = format!("{RELAY_HOST}:{}", r.relay.ports.submission);
    let a = sender(
        &r.dns,
        free_port(),
        &format!(
            "{}[queue]\nretry_schedule_secs = [1]\nmax_age_secs = 12\ndelay_notice_secs = 0\n",
            r.relay_keys(&relay, "starttls", &pw, true)
        ),
    );
    a.add_user("alice@example.test", "pw-alice-on-a");
    sendmail(
        &a,
        &["-f", "alice@example.test", "bob@remote.test"],
        &msg("wrong password", "bob@remote.test"),
    );
    let show = wait_queue_show(&a, "refused AUTH");
    assert!(
        show.contains("refused AUTH as alice@example.test: 535"),
        "{show}\nlog:\n{}",
        a.log()
    );
    assert!(show.contains("4.7.8"), "{show}");
    // Temporary: no DSN yet, the message waits for the retry schedule.
    assert!(
        a.messages("alice@example.test", "").is_empty(),
        "a DSN before the retry schedule ran out"
    );
    // At expiry, the DSN names the relay's refusal.
    let inbox = a.wait_messages("alice@example.test", "", 1, WAIT);
    assert_eq!(inbox.len(), 1, "log:\n{}", a.log());
    let dsn = String::from_utf8_lossy(&inbox[0]);
    assert!(dsn.contains("Action: failed"), "{dsn}");
    assert!(dsn.contains("refused AUTH"), "{dsn}");
    assert!(r.sink.messages().is_empty());
    assert!(wait_queue_empty(&a, WAIT));

    // `postern check` quotes the refusal.
    let out = check(&a);
    let line = relay_line(&out, r.relay.ports.submission);
    assert!(line.starts_with("FAILED"), "{out}");
    assert!(
        line.contains("refused AUTH as alice@example.test: 535"),
        "{line}"
    );
}

#[test]
fn untrusted_relay_certificate_gets_no_credentials() {
    let r = RelaySetup::start("127.0.0.48");
    let pw = r.password_file("pw", RELAY_PW);
    let relay = format!("{RELAY_HOST}:{}", r.relay.ports.submission);
    // No ca_file: the test CA is unknown, so the certificate does not verify.
    let a = sender(
        &r.dns,
        free_port(),
        &r.relay_keys(&relay, "starttls", &pw, false),
    );
    sendmail(
        &a,
        &["-f", "alice@example.test", "bob@remote.test"],
        &msg("unverified", "bob@remote.test"),
    );
    let show = wait_queue_show(&a, "did not verify");
    assert!(show.contains("4.7.5"), "{show}\nlog:\n{}", a.log());
    // After the first message, so the DKIM key exists (`check` never creates one).
    let out = check(&a);
    let line = relay_line(&out, r.relay.ports.submission);
    assert!(line.starts_with("FAILED"), "{out}");
    assert!(line.contains("certificate did not verify"), "{line}");
    // The relay never saw a login attempt.
    let log = r.relay.log();
    assert!(
        !log.contains("auth ok") && !log.contains("auth failed"),
        "{log}"
    );
}

#[test]
fn readable_password_file_refuses_to_start() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "secret\n").unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).unwrap();
    let config = dir.path().join("postern.toml");
    std::fs::write(
        &config,
        format!(
            "domain = \"example.test\"\nhostname = \"mail.example.test\"\ndata_dir = \"{}\"\n\
             [listen]\nsmtp = []\nsubmission = []\nsubmissions = []\nimap = []\nimaps = []\nhttp = []\nmanagesieve = []\n\
             [tls]\nsource = \"self-signed\"\n\
             [outbound]\nrelay = \"smtp.provider.example:587\"\nrelay_user = \"me\"\n\
             relay_password_file = \"{}\"\n",
            dir.path().join("data").display(),
            pw.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("postern started with a world-readable relay password file");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(!status.success());
    assert!(err.contains("chmod 600"), "{err}");
    assert!(err.contains("0644"), "{err}");
}
