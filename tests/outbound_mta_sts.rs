//! MTA-STS (RFC 8461) against a policy served over HTTPS in the test: an enforce policy
//! delivers only to a matching MX over TLS with a valid certificate, and defers otherwise.
//! A test CA (openssl) issues the certificates; `[outbound].ca_file` trusts it.

mod common;
mod outbound_support;

use std::time::{Duration, Instant};

use common::free_port;
use outbound_support::*;

const WAIT: Duration = Duration::from_secs(40);

#[test]
fn enforce_policy_requires_matching_mx_and_valid_tls() {
    let dir = tempfile::tempdir().unwrap();
    make_certs(
        dir.path(),
        &[
            "mx.sts.test",
            "mta-sts.sts.test",
            "mta-sts.stsbad.test",
            "mta-sts.stsself.test",
        ],
    );
    let smtp_port = free_port();
    let https_port = free_port();
    let dns = Dns::start(&[
        // sts.test: enforce, MX matches, certificate from the trusted CA → delivered.
        "mx-host=sts.test,mx.sts.test,10".into(),
        "host-record=mx.sts.test,127.0.0.30".into(),
        "host-record=mta-sts.sts.test,127.0.0.30".into(),
        "txt-record=_mta-sts.sts.test,\"v=STSv1; id=one\"".into(),
        // stsbad.test: enforce, but its MX is not in the policy → deferred.
        "mx-host=stsbad.test,mx.sts.test,10".into(),
        "host-record=mta-sts.stsbad.test,127.0.0.30".into(),
        "txt-record=_mta-sts.stsbad.test,\"v=STSv1; id=two\"".into(),
        // stsself.test: enforce, MX matches, but it shows a self-signed certificate → deferred.
        "mx-host=stsself.test,mx.stsself.test,10".into(),
        "host-record=mx.stsself.test,127.0.0.31".into(),
        "host-record=mta-sts.stsself.test,127.0.0.30".into(),
        "txt-record=_mta-sts.stsself.test,\"v=STSv1; id=three\"".into(),
    ]);
    let policies = PolicyServer::start(
        dir.path(),
        "127.0.0.30",
        https_port,
        &[
            (
                "mta-sts.sts.test",
                "version: STSv1\nmode: enforce\nmx: mx.sts.test\nmax_age: 86400\n",
            ),
            (
                "mta-sts.stsbad.test",
                "version: STSv1\nmode: enforce\nmx: other.stsbad.test\nmax_age: 86400\n",
            ),
            (
                "mta-sts.stsself.test",
                "version: STSv1\nmode: enforce\nmx: *.stsself.test\nmax_age: 86400\n",
            ),
        ],
    );
    let good = ScriptSink::start_tls_pem(
        "127.0.0.30",
        smtp_port,
        &dir.path().join("leaf.pem"),
        &dir.path().join("leaf.key"),
    );
    let selfsigned = ScriptSink::start_tls("127.0.0.31", smtp_port);
    let mut p = sender(
        &dns,
        smtp_port,
        &format!(
            "mta_sts_port = {https_port}\nca_file = \"{}\"\n[queue]\nretry_schedule_secs = [3600]\n",
            dir.path().join("ca.pem").display()
        ),
    );
    sendmail(&p, &["ok@sts.test"], "Subject: sts ok\n\nbody\n");
    sendmail(&p, &["no@stsbad.test"], "Subject: sts bad mx\n\nbody\n");
    sendmail(
        &p,
        &["no@stsself.test"],
        "Subject: sts self-signed\n\nbody\n",
    );

    let got = good.wait(1, WAIT);
    assert_eq!(got.len(), 1, "log:\n{}", p.log());
    assert!(got[0].tls);
    assert_eq!(got[0].rcpts, vec!["ok@sts.test".to_string()]);
    assert!(
        p.wait_log("tls=true tls_verified=true", WAIT),
        "log:\n{}",
        p.log()
    );

    assert!(
        p.wait_log("no MX host of stsbad.test matches its MTA-STS policy", WAIT),
        "log:\n{}",
        p.log()
    );
    assert!(
        p.wait_log("policy requires TLS with a valid certificate", WAIT),
        "log:\n{}",
        p.log()
    );
    assert!(selfsigned.received.lock().unwrap().is_empty());
    // Both refused messages wait in the queue (temporary failures, RFC 8461 §5).
    let deadline = Instant::now() + WAIT;
    loop {
        let list = queue_list(&p);
        if list.contains("no@stsbad.test")
            && list.contains("no@stsself.test")
            && list.contains("2 message(s)")
        {
            break;
        }
        assert!(Instant::now() < deadline, "{list}");
        std::thread::sleep(Duration::from_millis(200));
    }

    // The policies are cached on disk (RFC 8461 §5): after a restart, with the policy server
    // gone, the enforce policy of stsbad.test still keeps its mail away from mx.sts.test.
    let cache = std::fs::read_to_string(p.data_dir().join("mta-sts-cache.json")).unwrap();
    assert!(
        cache.contains("stsbad.test") && cache.contains("Enforce"),
        "{cache}"
    );
    drop(policies);
    p.kill9();
    p.spawn();
    let refusals = p.log().matches("no MX host of stsbad.test matches").count();
    assert!(p.cli(&["queue", "retry", "--all"], None).status.success());
    let deadline = Instant::now() + WAIT;
    while p.log().matches("no MX host of stsbad.test matches").count() <= refusals {
        assert!(Instant::now() < deadline, "log:\n{}", p.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        good.received.lock().unwrap().len(),
        1,
        "only ok@sts.test was delivered"
    );
}
