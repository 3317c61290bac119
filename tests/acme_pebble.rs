//! ACME against a private Pebble on loopback: issuance with TLS-ALPN-01 and with HTTP-01, a
//! forced renewal swapped in live, restart reusing the stored certificate, and failures that
//! leave the self-signed stand-in serving.

mod acme_support;
mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use acme_support::*;
use common::*;

const ISSUED: &str = "ACME: certificate issued";

fn wait_issued(p: &Postern, pebble: &Pebble, n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while p.log().matches(ISSUED).count() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "no certificate issued; postern log:\n{}\npebble log:\n{}",
            p.log(),
            pebble.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn is_pebble(s: &Served) -> bool {
    s.issuer.contains("Pebble")
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn tls_alpn01_issuance_then_forced_renewal_swaps_live() {
    let mut p = Postern::start();
    let https = free_port();
    let pebble = Pebble::start(p.ports.http, https);
    respawn_with_tls(&mut p, https, &acme_tls(&pebble, "tls-alpn-01"));
    assert!(
        p.log()
            .contains("no ACME certificate yet: serving a self-signed one"),
        "{}",
        p.log()
    );
    wait_issued(&p, &pebble, 1);
    assert!(
        p.log()
            .contains("ACME: answering TlsAlpn01 for mail.example.test")
    );
    let first = wait_serving(https, "the Pebble certificate", is_pebble);
    assert!(
        first.names.contains(&"mail.example.test".to_string()),
        "{first:?}"
    );
    assert!(
        first.names.contains(&"mta-sts.example.test".to_string()),
        "{first:?}"
    );

    // Secrets are private and written where the brief says.
    let tls_dir = p.data_dir().join("tls");
    assert_eq!(mode(&tls_dir.join("acme-key.pem")), 0o600);
    assert_eq!(mode(&tls_dir.join("acme-account.json")), 0o600);

    let (tlsa_before, _) = dns_tlsa(&p);
    // A connection opened before the renewal…
    let (mut old, before) = tls_open(https);
    assert_eq!(before.serial, first.serial);
    assert!(http_get(&mut old, "/.well-known/mta-sts.txt").starts_with("HTTP/1.1 "));

    let out = p.cli(&["tls", "renew", "--wait"], None);
    assert!(
        out.status.success(),
        "{}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        p.log()
    );
    let second = wait_serving(https, "a renewed certificate", |s| {
        is_pebble(s) && s.serial != first.serial
    });
    assert_eq!(p.log().matches(ISSUED).count(), 2);
    // Without acme_reuse_key the renewal made a new key: `postern dns` says so.
    let (after, warned) = dns_tlsa(&p);
    assert!(warned);
    assert_ne!(after, tlsa_before, "a fresh key per certificate");
    // …still works after the swap, with its original certificate.
    assert!(http_get(&mut old, "/.well-known/mta-sts.txt").starts_with("HTTP/1.1 "));
    assert_eq!(
        acme_support::served_on(&old).serial,
        first.serial,
        "the open connection keeps its session"
    );

    let status = p.cli(&["tls", "status"], None);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{text}");
    assert!(
        text.contains(&format!("serial: {}", second.serial)),
        "{text}"
    );
    assert!(text.contains("mta-sts.example.test"), "{text}");
    assert!(
        text.contains("issuer: ") && text.contains("Pebble"),
        "{text}"
    );
    assert!(text.contains("next renewal: "), "{text}");
    assert!(text.contains("succeeded"), "{text}");
}

/// The `TLSA 3 1 1` value `postern dns` prints for the current certificate, and whether it
/// warns that renewals change the key.
fn dns_tlsa(p: &Postern) -> (String, bool) {
    let out = p.cli(&["dns"], None);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let hash = text
        .lines()
        .find_map(|l| {
            l.split_once("IN TLSA 3 1 1 ")
                .map(|(_, h)| h.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no TLSA line in:\n{text}"));
    (hash, text.contains("every ACME renewal makes a new key"))
}

#[test]
fn renewals_keep_the_key_with_acme_reuse_key_so_dane_records_stay_valid() {
    let mut p = Postern::start();
    let https = free_port();
    let pebble = Pebble::start(p.ports.http, https);
    respawn_with_tls(
        &mut p,
        https,
        &format!(
            "{}\nacme_reuse_key = true",
            acme_tls(&pebble, "tls-alpn-01")
        ),
    );
    wait_issued(&p, &pebble, 1);
    let first = wait_serving(https, "the Pebble certificate", is_pebble);
    let (before, warned) = dns_tlsa(&p);
    assert!(!warned, "no rollover warning when the key is kept");
    let out = p.cli(&["tls", "renew", "--wait"], None);
    assert!(out.status.success(), "{}", p.log());
    wait_serving(https, "a renewed certificate", |s| {
        is_pebble(s) && s.serial != first.serial
    });
    let (after, _) = dns_tlsa(&p);
    assert_eq!(before, after, "the renewed certificate has the same key");
}

#[test]
fn http01_issuance_and_restart_reuses_stored_certificate() {
    let mut p = Postern::start();
    let (https, metrics) = (free_port(), free_port());
    let pebble = Pebble::start(p.ports.http, https);
    respawn_with(
        &mut p,
        &format!("https = [\"127.0.0.1:{https}\"]\nmetrics = [\"127.0.0.1:{metrics}\"]\n"),
        &acme_tls(&pebble, "http-01"),
    );
    p.wait_port(https);
    wait_issued(&p, &pebble, 1);
    assert!(
        p.log()
            .contains("ACME: answering Http01 for mail.example.test")
    );
    let issued = wait_serving(https, "the Pebble certificate", is_pebble);

    // The expiry gauge follows the served certificate.
    p.wait_port(metrics);
    let body = python(&format!(
        "import urllib.request\nprint(urllib.request.urlopen('http://127.0.0.1:{metrics}/metrics').read().decode())"
    ));
    assert!(
        body.contains(&format!(
            "postern_certificate_expiry_timestamp_seconds {}",
            issued.not_after
        )),
        "{body}"
    );

    p.stop();
    let requests = p.log().matches("ACME: requesting a certificate").count();
    spawn_again(&mut p);
    p.wait_port(https);
    assert!(p.log().contains("serving the stored ACME certificate"));
    assert_eq!(serving(https), issued);
    // Give the maintenance task several rounds: it must not order anything.
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(
        p.log().matches("ACME: requesting a certificate").count(),
        requests,
        "{}",
        p.log()
    );
    assert_eq!(serving(https), issued);

    // The CA goes away: a forced renewal fails, is logged with its backoff, and the issued
    // certificate keeps serving.
    drop(pebble);
    let out = p.cli(&["tls", "renew", "--wait"], None);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("renewal failed"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = p.log();
    let line = log
        .lines()
        .rfind(|l| l.contains("not obtained"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        line.contains("keeping the current one, valid until"),
        "{line}"
    );
    assert!(line.contains("next attempt in 60s"), "{line}");
    assert_eq!(serving(https), issued);
}

#[test]
fn unreachable_directory_is_logged_and_self_signed_keeps_serving() {
    let mut p = Postern::start();
    let https = free_port();
    let closed = free_port();
    let tls = format!(
        "[tls]\nsource = \"acme\"\nacme_directory = \"https://127.0.0.1:{closed}/dir\"\n\
         acme_extra_names = []\nacme_challenge = \"tls-alpn-01\""
    );
    respawn_with_tls(&mut p, https, &tls);
    assert!(
        p.wait_log("cannot use the ACME directory", Duration::from_secs(30)),
        "{}",
        p.log()
    );
    let log = p.log();
    let line = log
        .lines()
        .find(|l| l.contains("cannot use the ACME directory"))
        .unwrap();
    assert!(
        line.contains(&format!("https://127.0.0.1:{closed}/dir")),
        "{line}"
    );
    assert!(line.contains("tls.acme_directory"), "{line}");
    assert!(line.contains("keeping the self-signed stand-in"), "{line}");
    assert!(line.contains("next attempt in"), "{line}");
    let s = serving(https);
    assert!(!is_pebble(&s));
    assert!(s.names.contains(&"mail.example.test".to_string()), "{s:?}");
    let status = p.cli(&["tls", "status"], None);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("none issued yet"), "{text}");
    assert!(
        text.contains("failed: cannot use the ACME directory"),
        "{text}"
    );
    // `postern check` shows ACME's last error instead of advising the source already set
    // (issue 20, item 6).
    let check = p.cli(&["check", "--dns-only"], None);
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(!check.status.success(), "{text}");
    assert!(
        text.contains("ACME is failing (last error: cannot use the ACME directory"),
        "{text}"
    );
    assert!(!text.contains("tls.source = \"acme\""), "{text}");
}

#[test]
fn bad_directory_is_logged_and_self_signed_keeps_serving() {
    let mut p = Postern::start();
    let https = free_port();
    let pebble = Pebble::start(p.ports.http, https);
    // Pebble's API with a path that is no ACME directory (404, not JSON).
    let tls = acme_tls(&pebble, "http-01").replace("/dir\"", "/not-a-directory\"");
    respawn_with_tls(&mut p, https, &tls);
    assert!(
        p.wait_log("cannot use the ACME directory", Duration::from_secs(30)),
        "{}",
        p.log()
    );
    let log = p.log();
    let line = log
        .lines()
        .find(|l| l.contains("cannot use the ACME directory"))
        .unwrap();
    assert!(line.contains("/not-a-directory"), "{line}");
    assert!(line.contains("answered HTTP 404"), "{line}");
    assert!(line.contains("keeping the self-signed stand-in"), "{line}");
    assert!(!is_pebble(&serving(https)));
}
