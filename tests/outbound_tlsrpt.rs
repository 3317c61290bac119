//! SMTP TLS reporting (RFC 8460): one delivery over verified TLS to an MTA-STS domain, one
//! refused under an "enforce" policy because its MX offers no STARTTLS; both domains publish
//! `_smtp._tls` (dnsmasq). With a reporting period shortened to 3 s, postern sends each a
//! gzip'd JSON report (multipart/report, DKIM-signed, null sender) that reaches the rua
//! mailbox, Postfix's smtp-sink; Python gunzips it and checks counts and failure type, and
//! dkimpy verifies its signatures.

mod common;
mod outbound_support;

use std::time::Duration;

use common::{free_port, peers, python};
use outbound_support::dnssec::{Unbound, sh_out};
use outbound_support::*;

const WAIT: Duration = Duration::from_secs(40);

#[test]
fn reports_success_and_starttls_failure_to_the_rua_mailbox() {
    // dkimpy with PyNaCl verifies the report's signatures (RSA and Ed25519).
    if !peers::dkimpy_ed25519().available() {
        return;
    }
    peers::openssl().essential();
    let dir = tempfile::tempdir().unwrap();
    make_certs(
        dir.path(),
        &["mx.sts.test", "mta-sts.sts.test", "mta-sts.stsplain.test"],
    );
    let smtp_port = free_port();
    let https_port = free_port();
    let rua = "\"v=TLSRPTv1; rua=mailto:tls-reports@rua.test\"";
    let dns = Dns::start(&[
        // sts.test: enforce, TLS with a certificate from the trusted CA → success.
        "mx-host=sts.test,mx.sts.test,10".into(),
        "host-record=mx.sts.test,127.0.0.40".into(),
        "host-record=mta-sts.sts.test,127.0.0.40".into(),
        "txt-record=_mta-sts.sts.test,\"v=STSv1; id=one\"".into(),
        format!("txt-record=_smtp._tls.sts.test,{rua}"),
        // stsplain.test: enforce, but its MX offers no STARTTLS → starttls-not-supported.
        "mx-host=stsplain.test,mx.stsplain.test,10".into(),
        "host-record=mx.stsplain.test,127.0.0.41".into(),
        "host-record=mta-sts.stsplain.test,127.0.0.40".into(),
        "txt-record=_mta-sts.stsplain.test,\"v=STSv1; id=two\"".into(),
        format!("txt-record=_smtp._tls.stsplain.test,{rua}"),
        // rua.test: where the reports go (no policy, no TLSRPT record of its own).
        "mx-host=rua.test,mx.rua.test,10".into(),
        "host-record=mx.rua.test,127.0.0.42".into(),
    ]);
    let _policies = PolicyServer::start(
        dir.path(),
        "127.0.0.40",
        https_port,
        &[
            (
                "mta-sts.sts.test",
                "version: STSv1\nmode: enforce\nmx: mx.sts.test\nmax_age: 86400\n",
            ),
            (
                "mta-sts.stsplain.test",
                "version: STSv1\nmode: enforce\nmx: mx.stsplain.test\nmax_age: 86400\n",
            ),
        ],
    );
    let good = ScriptSink::start_tls_pem(
        "127.0.0.40",
        smtp_port,
        &dir.path().join("leaf.pem"),
        &dir.path().join("leaf.key"),
    );
    let plain = ScriptSink::start("127.0.0.41", smtp_port);
    let reports = SmtpSink::start("127.0.0.42", smtp_port, &[]);
    let p = sender(
        &dns,
        smtp_port,
        &format!(
            "mta_sts_port = {https_port}\nca_file = \"{}\"\ntlsrpt_period_secs = 3\n\
             [queue]\nretry_schedule_secs = [3600]\n",
            dir.path().join("ca.pem").display()
        ),
    );
    sendmail(&p, &["ok@sts.test"], "Subject: sts ok\n\nbody\n");
    sendmail(&p, &["no@stsplain.test"], "Subject: no starttls\n\nbody\n");
    assert_eq!(good.wait(1, WAIT).len(), 1, "log:\n{}", p.log());
    assert!(
        p.wait_log("policy requires TLS with a valid certificate", WAIT),
        "log:\n{}",
        p.log()
    );
    assert!(plain.received.lock().unwrap().is_empty());

    let got = reports.wait_messages(2, WAIT);
    assert_eq!(got.len(), 2, "log:\n{}", p.log());
    assert!(p.log().contains("tlsrpt: report queued"));
    let mut summary = Vec::new();
    for raw in &got {
        // smtp-sink's X- lines: sent with the null reverse-path, so a report never bounces
        // (RFC 8460 §5.3), to the rua address.
        assert!(raw.contains("X-Mail-Args: <>"), "{raw}");
        assert!(raw.contains("X-Rcpt-Args: <tls-reports@rua.test>"), "{raw}");
        let start = raw.find("DKIM-Signature:").expect("signed");
        summary.push(check_report(&p, &raw[start..].replace('\n', "\r\n")));
    }
    summary.sort();
    assert_eq!(
        summary,
        vec![
            "sts.test sts 1 0 ".to_string(),
            "stsplain.test sts 0 1 starttls-not-supported@mx.stsplain.test/127.0.0.41".to_string(),
        ]
    );
}

/// DANE failures (RFC 7672) in a DNSSEC-signed zone: a TLSA record that matches nothing
/// (validation-failure) and an MX with TLSA records but no STARTTLS (starttls-not-supported),
/// both reported under their "tlsa" policy with the TLSA record as policy string.
#[test]
fn reports_dane_failures() {
    if !peers::dane_tools().available() || !peers::dkimpy_ed25519().available() {
        return;
    }
    peers::openssl().essential();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_certs(d, &["mx2.dane.test", "mx5.dane.test"]);
    let spki = sh_out(
        d,
        "openssl x509 -in leaf.pem -noout -pubkey | openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1",
    );
    let zeros = "0".repeat(64);
    let rua = "\"v=TLSRPTv1; rua=mailto:tls-reports@rua.dane.test\"";
    let zone = format!(
        "$ORIGIN dane.test.\n$TTL 300\n\
         @ IN SOA ns.dane.test. hostmaster.dane.test. 1 3600 600 86400 300\n\
         @ IN NS ns.dane.test.\nns IN A 127.0.0.1\n\
         bad IN MX 10 mx2.dane.test.\nmx2 IN A 127.0.0.72\n_25._tcp.mx2 IN TLSA 3 1 1 {zeros}\n\
         _smtp._tls.bad IN TXT {rua}\n\
         nostarttls IN MX 10 mx5.dane.test.\nmx5 IN A 127.0.0.75\n_25._tcp.mx5 IN TLSA 3 1 1 {spki}\n\
         _smtp._tls.nostarttls IN TXT {rua}\n\
         rua IN MX 10 mx4.dane.test.\nmx4 IN A 127.0.0.74\n"
    );
    std::fs::write(d.join("dane.zone"), zone).unwrap();
    sh(
        d,
        "KSK=$(ldns-keygen -a ECDSAP256SHA256 -k dane.test) && ZSK=$(ldns-keygen -a ECDSAP256SHA256 dane.test) \
         && ldns-signzone -f dane.zone.signed dane.zone $KSK $ZSK && cp $KSK.ds anchor.ds",
    );
    let ub = Unbound::start(
        d,
        &[("dane.test", &d.join("dane.zone.signed"))],
        &d.join("anchor.ds"),
    );
    let port = free_port();
    let _mismatch =
        ScriptSink::start_tls_pem("127.0.0.72", port, &d.join("leaf.pem"), &d.join("leaf.key"));
    let no_tls = ScriptSink::start("127.0.0.75", port);
    let reports = SmtpSink::start("127.0.0.74", port, &[]);
    let p = common::Postern::start_with(common::Setup {
        extra: format!(
            "[dns]\nnameservers = [\"127.0.0.1:{}\"]\n[outbound]\nport = {port}\n\
             tlsrpt_period_secs = 3\n[queue]\nretry_schedule_secs = [3600]\n",
            ub.port
        ),
        ..Default::default()
    });
    sendmail(
        &p,
        &["a@bad.dane.test", "b@nostarttls.dane.test"],
        "Subject: dane\n\nbody\n",
    );
    let got = reports.wait_messages(2, WAIT);
    assert_eq!(got.len(), 2, "log:\n{}", p.log());
    assert!(no_tls.received.lock().unwrap().is_empty());
    let mut summary: Vec<String> = got
        .iter()
        .map(|raw| {
            let start = raw.find("DKIM-Signature:").expect("signed");
            check_report(&p, &raw[start..].replace('\n', "\r\n"))
        })
        .collect();
    summary.sort();
    assert_eq!(
        summary,
        vec![
            "bad.dane.test tlsa 0 1 validation-failure@mx2.dane.test/127.0.0.72".to_string(),
            "nostarttls.dane.test tlsa 0 1 starttls-not-supported@mx5.dane.test/127.0.0.75"
                .to_string(),
        ]
    );
}

/// Parse one report message with Python's email module, gunzip its attachment, and verify
/// the DKIM signatures with dkimpy; returns "domain type success failure details".
fn check_report(p: &common::Postern, data: &str) -> String {
    let key = p.data_dir().join("dkim/rsa.pem");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl rsa -in {} -pubout -outform DER 2>/dev/null | base64 -w0",
            key.display()
        ))
        .output()
        .unwrap();
    let rsa = String::from_utf8(out.stdout).unwrap();
    assert!(rsa.len() > 300, "openssl produced a key");
    let ed_pem = std::fs::read_to_string(p.data_dir().join("dkim/ed25519.pem")).unwrap();
    let script = format!(
        r#"
import base64, email, gzip, json, dkim, nacl.signing
der = base64.b64decode("".join(l for l in {ed_pem:?}.splitlines() if "-----" not in l))
i = der.index(bytes([4, 34, 4, 32])) + 4
ed = base64.b64encode(bytes(nacl.signing.SigningKey(der[i:i+32]).verify_key))
raw = {data:?}.encode()
recs = {{b"postern._domainkey.example.test.": b"v=DKIM1; k=rsa; p={rsa}",
        b"postern-ed._domainkey.example.test.": b"v=DKIM1; k=ed25519; p=" + ed}}
def dnsfunc(name, timeout=5):
    return recs[name]
n = raw.split(b"\r\n\r\n", 1)[0].count(b"\r\nDKIM-Signature:") + raw.startswith(b"DKIM-Signature:")
assert n == 2, n
for idx in range(n):
    assert dkim.DKIM(raw).verify(idx=idx, dnsfunc=dnsfunc), idx
msg = email.message_from_bytes(raw)
assert msg.get_content_type() == "multipart/report", msg.get_content_type()
assert msg.get_param("report-type") == "tlsrpt"
domain = msg["TLS-Report-Domain"]
assert msg["TLS-Report-Submitter"]
subject = " ".join(msg["Subject"].split())
assert subject.startswith("Report Domain: " + domain + " Submitter: "), subject
assert "Report-ID: <" in subject, subject
part = [p for p in msg.walk() if p.get_content_type() == "application/tlsrpt+gzip"][0]
assert part.get_filename().endswith(".json.gz"), part.get_filename()
report = json.loads(gzip.decompress(part.get_payload(decode=True)))
for k in ("organization-name", "date-range", "contact-info", "report-id", "policies"):
    assert k in report, k
assert report["organization-name"] == "example.test"
assert report["date-range"]["start-datetime"].endswith("Z")
assert len(report["policies"]) == 1, report
pol = report["policies"][0]
assert pol["policy"]["policy-domain"] == domain
assert pol["policy"]["policy-string"], pol
s = pol["summary"]
details = ",".join("%s@%s/%s" % (d["result-type"], d["receiving-mx-hostname"], d["receiving-ip"])
                   for d in pol.get("failure-details", []))
print("REPORT", domain, pol["policy"]["policy-type"], s["total-successful-session-count"],
      s["total-failure-session-count"], details)
"#
    );
    let out = python(&script);
    out.lines()
        .find_map(|l| l.strip_prefix("REPORT "))
        .unwrap_or_else(|| panic!("{out}\n{data}"))
        .to_string()
}
