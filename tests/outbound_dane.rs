//! DANE (RFC 7672) against a DNSSEC-signed test zone: `ldns-signzone` signs `dane.test`,
//! unbound serves it (auth-zone) and validates it with the zone's DS as trust anchor, so it
//! sets the AD bit postern trusts. MX hosts are scripted sinks on 127.0.0.6x presenting a
//! certificate from a test CA. Matching DANE-EE and DANE-TA records deliver; a mismatching
//! record, or TLSA records with no TLS, defer; no TLSA delivers opportunistically; and an
//! unsigned zone (`plain.test`, same unbound) never enables DANE, even with a bad TLSA record.

mod common;
mod outbound_support;

use std::time::{Duration, Instant};

use common::{free_port, peers};
use outbound_support::dnssec::*;
use outbound_support::*;

const WAIT: Duration = Duration::from_secs(40);

#[test]
fn dane_is_enforced_for_signed_zones_only() {
    if !peers::dane_tools().available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let names = [
        "mx1.dane.test",
        "mx2.dane.test",
        "mx3.dane.test",
        "mx4.dane.test",
        "mx5.dane.test",
        "mx.plain.test",
        "mta-sts.sts.dane.test",
        "mta-sts.sts.plain.test",
    ];
    make_certs(d, &names);
    sh(d, "cat leaf.pem ca.pem > chain.pem");
    // TLSA data computed independently with openssl (RFC 6698 §2.1).
    let spki = sh_out(
        d,
        "openssl x509 -in leaf.pem -noout -pubkey | openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1",
    );
    let ca = sh_out(
        d,
        "openssl x509 -in ca.pem -outform DER | sha256sum | cut -d' ' -f1",
    );
    let zeros = "0".repeat(64);
    let zone = format!(
        "$ORIGIN dane.test.\n$TTL 300\n\
         @ IN SOA ns.dane.test. hostmaster.dane.test. 1 3600 600 86400 300\n\
         @ IN NS ns.dane.test.\nns IN A 127.0.0.1\n\
         match IN MX 10 mx1.dane.test.\nmx1 IN A 127.0.0.61\n_25._tcp.mx1 IN TLSA 3 1 1 {spki}\n\
         mismatch IN MX 10 mx2.dane.test.\nmx2 IN A 127.0.0.62\n_25._tcp.mx2 IN TLSA 3 1 1 {zeros}\n\
         ta IN MX 10 mx3.dane.test.\nmx3 IN A 127.0.0.63\n_25._tcp.mx3 IN TLSA 2 0 1 {ca}\n\
         notlsa IN MX 10 mx4.dane.test.\nmx4 IN A 127.0.0.64\n\
         pkix IN MX 10 mx5.dane.test.\nmx5 IN A 127.0.0.65\n_25._tcp.mx5 IN TLSA 1 1 1 {spki}\n\
         sts IN MX 10 mx1.dane.test.\n_mta-sts.sts IN TXT \"v=STSv1; id=1\"\n\
         mta-sts.sts IN A 127.0.0.67\n"
    );
    std::fs::write(d.join("dane.zone"), zone).unwrap();
    sh(
        d,
        "KSK=$(ldns-keygen -a ECDSAP256SHA256 -k dane.test) && ZSK=$(ldns-keygen -a ECDSAP256SHA256 dane.test) \
         && ldns-signzone -f dane.zone.signed dane.zone $KSK $ZSK && cp $KSK.ds anchor.ds",
    );
    // An unsigned zone with a TLSA record that matches nothing.
    std::fs::write(
        d.join("plain.zone"),
        format!(
            "$ORIGIN plain.test.\n$TTL 300\n@ IN SOA ns.plain.test. h.plain.test. 1 3600 600 86400 300\n\
             @ IN NS ns.plain.test.\nns IN A 127.0.0.1\n@ IN MX 10 mx.plain.test.\n\
             mx IN A 127.0.0.66\n_25._tcp.mx IN TLSA 3 1 1 {zeros}\n\
             sts IN MX 10 mx.plain.test.\n_mta-sts.sts IN TXT \"v=STSv1; id=1\"\n\
             mta-sts.sts IN A 127.0.0.67\n"
        ),
    )
    .unwrap();
    let ub = Unbound::start(
        d,
        &[
            ("dane.test", &d.join("dane.zone.signed")),
            ("plain.test", &d.join("plain.zone")),
        ],
        &d.join("anchor.ds"),
    );
    // The resolver validates: AD for the signed zone, none for the unsigned one.
    assert!(
        dig_flags(ub.port, "match.dane.test", "MX").contains(" ad"),
        "unbound does not validate the test zone"
    );
    assert!(!dig_flags(ub.port, "plain.test", "MX").contains(" ad"));

    // An enforce policy that names no MX host of either domain: it would defer all mail, but
    // DANE takes precedence over MTA-STS (RFC 8461 §2), so only the unsigned domain obeys it.
    let https_port = free_port();
    let policy = "version: STSv1\nmode: enforce\nmx: nowhere.example\nmax_age: 86400\n";
    let _policies = PolicyServer::start(
        d,
        "127.0.0.67",
        https_port,
        &[
            ("mta-sts.sts.dane.test", policy),
            ("mta-sts.sts.plain.test", policy),
        ],
    );
    let port = free_port();
    let (chain, key) = (d.join("chain.pem"), d.join("leaf.key"));
    let sinks: Vec<(&str, ScriptSink)> = [
        ("match", "127.0.0.61"),
        ("mismatch", "127.0.0.62"),
        ("ta", "127.0.0.63"),
        ("notlsa", "127.0.0.64"),
        ("plain", "127.0.0.66"),
    ]
    .into_iter()
    .map(|(n, ip)| (n, ScriptSink::start_tls_pem(ip, port, &chain, &key)))
    .collect();
    // The PKIX-only host offers no STARTTLS at all.
    let no_tls = ScriptSink::start("127.0.0.65", port);

    let p = common::Postern::start_with(common::Setup {
        extra: format!(
            "[dns]\nnameservers = [\"127.0.0.1:{}\"]\n[outbound]\nport = {port}\n\
             mta_sts_port = {https_port}\nca_file = \"{}\"\n",
            ub.port,
            d.join("ca.pem").display()
        ),
        ..Default::default()
    });
    let rcpts = [
        "a@match.dane.test",
        "b@mismatch.dane.test",
        "c@ta.dane.test",
        "d@notlsa.dane.test",
        "e@pkix.dane.test",
        "f@plain.test",
        "g@sts.dane.test",
        "h@sts.plain.test",
    ];
    let mut args = vec!["-f", "alice@example.test"];
    args.extend_from_slice(&rcpts);
    sendmail(
        &p,
        &args,
        "From: alice@example.test\nTo: undisclosed-recipients:;\nSubject: dane\n\nDANE test.\n",
    );
    let sink = |name: &str| &sinks.iter().find(|(n, _)| *n == name).unwrap().1;
    for name in ["match", "ta", "notlsa", "plain"] {
        let got = sink(name).wait(1, WAIT);
        assert!(!got.is_empty(), "{name} delivered; log:\n{}", p.log());
        assert!(got[0].tls, "{name} over TLS");
    }
    // The sinks count a message at its final dot; the queue records the outcome just after.
    let deadline = Instant::now() + WAIT;
    while queue_list(&p).matches("[delivered").count() < 5 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let show = wait_queue_show(&p, "DANE (TLSA records published) requires TLS");
    // Authenticated by the TLSA records (the log names the matching record).
    let log = p.log();
    assert!(log.contains("DANE-EE 3 1 1"), "{log}");
    assert!(log.contains("DANE-TA 2 0 1"), "{log}");
    assert!(
        show.contains("DANE: no TLSA record matches"),
        "{show}\nlog:\n{}",
        p.log()
    );
    assert!(
        show.contains("DANE (TLSA records published) requires TLS"),
        "{show}"
    );
    assert!(show.contains("4.7.5") && show.contains("4.7.4"), "{show}");
    assert!(sink("mismatch").received.lock().unwrap().is_empty());
    assert!(no_tls.received.lock().unwrap().is_empty());
    // DANE over MTA-STS: delivered to mx1 although the policy names no MX host …
    assert_eq!(sink("match").wait(2, WAIT).len(), 2, "{show}");
    assert!(
        show.contains("rcpt: g@sts.dane.test\n  status: delivered"),
        "{show}"
    );
    // … while the unsigned domain with the same policy is held back by it.
    assert!(
        show.contains("no MX host of sts.plain.test matches its MTA-STS policy"),
        "{show}"
    );
    // Exactly the two DANE failures and the MTA-STS one are still queued.
    assert_eq!(show.matches("status: retry in").count(), 3, "{show}");
}
