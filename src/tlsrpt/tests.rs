use super::report::{self, Submitter};
use super::*;
use crate::outbound::client::{Attempt, Info};

const DAY: i64 = 86400;
// 2026-12-06T00:00:00Z
const T0: i64 = 1_796_515_200;

fn fail(result: ResultType, mx: &str, ip: &str) -> Result<(), Failure> {
    Err(Failure {
        result,
        mx_host: Some(mx.into()),
        ip: Some(ip.parse().unwrap()),
        reason: "why\r\nnot".into(),
    })
}

fn sts_policy() -> Policy {
    Policy::sts(&crate::outbound::mta_sts::Policy {
        mode: crate::outbound::mta_sts::Mode::Enforce,
        mx: vec!["mx.example.net".into(), "*.example.net".into()],
        max_age: 86400,
    })
}

#[test]
fn counts_per_period_domain_and_policy() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), DAY as u64);
    let sts = sts_policy();
    s.record(T0 + 10, "Example.NET.", &sts, Ok(()));
    s.record(T0 + 20, "example.net", &sts, Ok(()));
    let f = || {
        fail(
            ResultType::StarttlsNotSupported,
            "mx.example.net.",
            "192.0.2.1",
        )
    };
    s.record(T0 + 30, "example.net", &sts, f());
    s.record(T0 + 40, "example.net", &sts, f());
    s.record(T0 + 50, "example.net", &Policy::none(), Ok(()));
    s.record(T0 + DAY, "example.net", &sts, Ok(()));
    let snap = s.snapshot();
    assert_eq!(snap.len(), 2);
    let day = &snap[&T0]["example.net"];
    assert_eq!(day.len(), 2, "one entry per policy");
    assert_eq!((day[0].success, day[0].failure), (2, 2));
    assert_eq!(day[0].details.len(), 1, "same failure aggregated");
    let d = &day[0].details[0];
    assert_eq!(d.count, 2);
    assert_eq!(d.mx_host.as_deref(), Some("mx.example.net"));
    assert_eq!(d.ip.as_deref(), Some("192.0.2.1"));
    assert_eq!(d.reason, "why  not", "no control characters");
    assert_eq!(day[1].policy.as_ref().unwrap().kind, "no-policy-found");

    // Only finished periods are taken; the current one stays.
    let taken = s.take_finished(T0 + DAY + 5, false);
    assert_eq!(taken.keys().copied().collect::<Vec<_>>(), vec![T0]);
    assert_eq!(
        s.snapshot().keys().copied().collect::<Vec<_>>(),
        vec![T0 + DAY]
    );

    // Durable: saved and loaded again.
    s.save().unwrap();
    let again = Store::open(dir.path(), DAY as u64);
    assert_eq!(again.snapshot(), s.snapshot());
}

#[test]
fn storage_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), DAY as u64);
    let p = Policy::none();
    for day in 0..(MAX_PERIODS as i64 + 3) {
        s.record(T0 + day * DAY, "a.example", &p, Ok(()));
    }
    let snap = s.snapshot();
    assert_eq!(snap.len(), MAX_PERIODS);
    assert_eq!(*snap.keys().next().unwrap(), T0 + 3 * DAY, "oldest dropped");
    // An outcome older than everything kept is not stored.
    s.record(T0, "a.example", &p, Ok(()));
    assert!(!s.snapshot().contains_key(&T0));

    for i in 0..(MAX_DOMAINS + 10) {
        s.record(T0 + 20 * DAY, &format!("d{i}.example"), &p, Ok(()));
    }
    assert_eq!(s.snapshot()[&(T0 + 20 * DAY)].len(), MAX_DOMAINS);

    for i in 0..(MAX_DETAILS + 10) {
        let ip = format!("192.0.2.{}", i % 250);
        s.record(
            T0 + 21 * DAY,
            "x.example",
            &p,
            fail(
                ResultType::ValidationFailure,
                &format!("mx{i}.x.example"),
                &ip,
            ),
        );
    }
    let c = &s.snapshot()[&(T0 + 21 * DAY)]["x.example"][0];
    assert_eq!(c.details.len(), MAX_DETAILS);
    assert_eq!(c.failure, (MAX_DETAILS + 10) as u64, "still counted");
}

#[test]
fn json_has_the_rfc_8460_fields() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), DAY as u64);
    let sts = sts_policy();
    s.record(T0 + 1, "example.net", &sts, Ok(()));
    s.record(
        T0 + 2,
        "example.net",
        &sts,
        fail(
            ResultType::CertificateExpired,
            "mx.example.net",
            "2001:db8::1",
        ),
    );
    let counts = &s.snapshot()[&T0]["example.net"];
    let who = Submitter {
        organization: "example.org",
        submitter: "mail.example.org",
        contact: "postmaster@example.org",
    };
    let id = report::report_id(T0, "example.net", "mail.example.org");
    let json = report::json(&who, "example.net", T0, T0 + DAY, &id, counts);
    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(v["organization-name"], "example.org");
    assert_eq!(v["contact-info"], "postmaster@example.org");
    assert_eq!(v["report-id"], id.as_str());
    assert_eq!(v["date-range"]["start-datetime"], "2026-12-06T00:00:00Z");
    assert_eq!(v["date-range"]["end-datetime"], "2026-12-07T00:00:00Z");
    let p = &v["policies"][0];
    assert_eq!(p["policy"]["policy-type"], "sts");
    assert_eq!(p["policy"]["policy-domain"], "example.net");
    assert_eq!(
        p["policy"]["policy-string"],
        serde_json::json!([
            "version: STSv1",
            "mode: enforce",
            "mx: mx.example.net",
            "mx: *.example.net",
            "max_age: 86400"
        ])
    );
    assert_eq!(
        p["policy"]["mx-host"],
        serde_json::json!(["mx.example.net", "*.example.net"])
    );
    assert_eq!(p["summary"]["total-successful-session-count"], 1);
    assert_eq!(p["summary"]["total-failure-session-count"], 1);
    let d = &p["failure-details"][0];
    assert_eq!(d["result-type"], "certificate-expired");
    assert_eq!(d["receiving-mx-hostname"], "mx.example.net");
    assert_eq!(d["receiving-ip"], "2001:db8::1");
    assert_eq!(d["failed-session-count"], 1);
}

#[test]
fn result_types_are_named_as_in_the_rfc() {
    let all = [
        (ResultType::StarttlsNotSupported, "starttls-not-supported"),
        (
            ResultType::CertificateHostMismatch,
            "certificate-host-mismatch",
        ),
        (ResultType::CertificateExpired, "certificate-expired"),
        (ResultType::CertificateNotTrusted, "certificate-not-trusted"),
        (ResultType::ValidationFailure, "validation-failure"),
        (ResultType::TlsaInvalid, "tlsa-invalid"),
        (ResultType::DnssecInvalid, "dnssec-invalid"),
        (ResultType::DaneRequired, "dane-required"),
        (ResultType::StsPolicyFetchError, "sts-policy-fetch-error"),
        (ResultType::StsPolicyInvalid, "sts-policy-invalid"),
        (ResultType::StsWebpkiInvalid, "sts-webpki-invalid"),
    ];
    for (t, name) in all {
        assert_eq!(serde_json::to_value(t).unwrap(), name);
    }
    assert_eq!(
        ResultType::from_cert_error("invalid peer certificate: UnknownIssuer"),
        ResultType::CertificateNotTrusted
    );
    assert_eq!(
        ResultType::from_cert_error("invalid peer certificate: NotValidForName"),
        ResultType::CertificateHostMismatch
    );
    assert_eq!(
        ResultType::from_cert_error("invalid peer certificate: Expired"),
        ResultType::CertificateExpired
    );
}

#[test]
fn tlsa_policy_strings() {
    let req = crate::outbound::dane::Requirement::Verify(vec![crate::outbound::dane::Tlsa {
        usage: 3,
        selector: 1,
        matching: 1,
        data: vec![0xab; 32],
    }]);
    let p = Policy::tlsa("mx.example.net.", &req);
    assert_eq!(p.kind, "tlsa");
    assert_eq!(p.strings, vec![format!("3 1 1 {}", "ab".repeat(32))]);
    assert_eq!(p.mx, vec!["mx.example.net".to_string()]);
}

#[test]
fn outcomes_of_attempts() {
    let ip: std::net::IpAddr = "192.0.2.7".parse().unwrap();
    let sts = sts_policy();
    let tls_ok = Info {
        tls: true,
        tls_verified: true,
        ..Info::default()
    };
    let done = Attempt::Done(vec![]);
    assert_eq!(outcome(&done, &tls_ok, &sts, "mx", ip), Some(Ok(())));
    let no_tls = Attempt::Deferred {
        status: "4.7.4".into(),
        reason: "no STARTTLS".into(),
    };
    let o = outcome(&no_tls, &Info::default(), &sts, "mx", ip).unwrap();
    assert_eq!(o.unwrap_err().result, ResultType::StarttlsNotSupported);
    let bad_cert = Info {
        tls: true,
        tls_error: Some("invalid peer certificate: UnknownIssuer".into()),
        ..Info::default()
    };
    let refused = Attempt::Deferred {
        status: "4.7.5".into(),
        reason: "did not verify".into(),
    };
    let o = outcome(&refused, &bad_cert, &sts, "mx", ip).unwrap();
    assert_eq!(o.unwrap_err().result, ResultType::CertificateNotTrusted);
    let tlsa = Policy::tlsa("mx", &crate::outbound::dane::Requirement::Encrypt);
    let o = outcome(&refused, &bad_cert, &tlsa, "mx", ip).unwrap();
    assert_eq!(o.unwrap_err().result, ResultType::ValidationFailure);
    // Testing mode delivered over an unverified certificate: reported as a failure.
    let o = outcome(&done, &bad_cert, &sts, "mx", ip).unwrap();
    assert_eq!(o.unwrap_err().result, ResultType::CertificateNotTrusted);
    // Opportunistic TLS without a policy: an unverified certificate is a success.
    assert_eq!(
        outcome(&done, &bad_cert, &Policy::none(), "mx", ip),
        Some(Ok(()))
    );
    // A connection that failed is no TLS session.
    let gone = Attempt::TryNext("connection refused".into());
    assert_eq!(outcome(&gone, &Info::default(), &sts, "mx", ip), None);
}

#[test]
fn txt_record_parsing() {
    let rec = |s: &str| vec![s.to_string()];
    assert_eq!(
        report::parse_txt(&rec(
            "v=TLSRPTv1; rua=mailto:tls@example.net,mailto:b%40x@example.org?subject=x"
        )),
        Some(vec!["tls@example.net".into(), "b@x@example.org".into()])
    );
    assert_eq!(
        report::parse_txt(&rec("v=TLSRPTv1;rua=https://reports.example.net/tlsrpt")),
        Some(vec![])
    );
    assert_eq!(report::parse_txt(&rec("v=spf1 -all")), None);
    // Two TLSRPT records: none applies (§3).
    assert_eq!(
        report::parse_txt(&[
            "v=TLSRPTv1; rua=mailto:a@example.net".into(),
            "v=TLSRPTv1; rua=mailto:b@example.net".into()
        ]),
        None
    );
    assert_eq!(
        report::parse_txt(&rec("v=TLSRPTv1; rua=mailto:bad <x>@example.net%")),
        Some(vec![])
    );
}

#[test]
fn message_is_a_tlsrpt_multipart_report() {
    let who = Submitter {
        organization: "example.org",
        submitter: "mail.example.org",
        contact: "postmaster@example.org",
    };
    let json = br#"{"report-id":"x"}"#;
    let m = report::message(
        &who,
        "noreply-tlsrpt@example.org",
        &["tls@example.net".into()],
        "example.net",
        T0,
        T0 + DAY,
        "id1@mail.example.org",
        json,
        T0 + DAY + 60,
    );
    let text = String::from_utf8(m).unwrap();
    assert!(text.contains(
        "Subject: Report Domain: example.net\r\n Submitter: mail.example.org\r\n Report-ID: <id1@mail.example.org>\r\n"
    ));
    assert!(text.contains("TLS-Report-Domain: example.net\r\n"));
    assert!(text.contains("TLS-Report-Submitter: mail.example.org\r\n"));
    assert!(text.contains("multipart/report; report-type=\"tlsrpt\""));
    assert!(text.contains("Content-Type: application/tlsrpt+gzip\r\n"));
    let name = format!("mail.example.org!example.net!{T0}!{}.json.gz", T0 + DAY);
    assert!(text.contains(&name), "{text}");
    // The attachment decodes and gunzips back to the JSON.
    let start = text.find("filename=").unwrap();
    let body = &text[start..];
    let b64: String = body
        .split("\r\n\r\n")
        .nth(1)
        .unwrap()
        .split("\r\n--")
        .next()
        .unwrap()
        .lines()
        .collect();
    use base64::Engine;
    let gz = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut out).unwrap();
    assert_eq!(out, json);
}
