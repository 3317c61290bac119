//! End-to-end checks of `verify::evaluate` with records injected into the authenticator's
//! caches (no DNS server needed) and messages signed by mail-auth's own signer. The
//! resolver behind it points at a port that never answers, so anything not injected is a
//! DNS failure — which is exactly what the tempfail cases need.

use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::time::{Duration, Instant};

use mail_auth::common::crypto::Ed25519Key;
use mail_auth::common::headers::HeaderWriter;
use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::resolver::ToFqdn;
use mail_auth::common::verify::DomainKey;
use mail_auth::dkim::DkimSigner;
use mail_auth::dkim::generate::DkimKeyPair;
use mail_auth::dmarc::Dmarc;
use mail_auth::hickory_resolver::proto::op::ResponseCode;
use mail_auth::spf::Spf;
use mail_auth::{DnsError, Error, RecordSet, ResolverCache, Txt};

use super::authenticator::Authenticator;
use super::{Disposition, MessageContext, Verdict, verify};
use crate::config::{Dns, Inbound};

const HOST: &str = "mx.example.org";
const PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));

struct World {
    auth: Authenticator,
    /// Keeps the silent "name server" port bound.
    _silent: UdpSocket,
    key: Vec<u8>,
}

fn later() -> Instant {
    Instant::now() + Duration::from_secs(3600)
}

impl World {
    fn new() -> World {
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        let dns = Dns {
            nameservers: vec![silent.local_addr().unwrap()],
            timeout_secs: 1,
            ..Dns::default()
        };
        let auth = Authenticator::new(crate::dns::build_resolver(&dns).unwrap());
        let pair = DkimKeyPair::generate_ed25519().unwrap();
        let w = World {
            auth,
            _silent: silent,
            key: pair.private_key().to_vec(),
        };
        w.txt(
            "sel._domainkey.sender.test",
            DomainKey::parse(
                format!("v=DKIM1; k=ed25519; p={}", pair.encoded_public_key()).as_bytes(),
            )
            .unwrap(),
        );
        w.nx("_dmarc.test");
        w
    }

    fn txt(&self, name: &str, value: impl Into<Txt>) {
        self.auth.caches.txt.insert(
            name.to_fqdn().into_owned().into_boxed_str(),
            value.into(),
            later(),
        );
    }

    fn nx(&self, name: &str) {
        self.txt(
            name,
            Txt::Error(Error::Dns(DnsError::RecordNotFound(ResponseCode::NXDomain))),
        );
    }

    fn spf(&self, domain: &str, record: &str) {
        self.txt(domain, Spf::parse(record.as_bytes()).unwrap());
    }

    fn dmarc(&self, domain: &str, record: &str) {
        self.txt(
            &format!("_dmarc.{domain}"),
            Dmarc::parse(record.as_bytes()).unwrap(),
        );
    }

    fn ptr(&self, name: &str, ip: Ipv4Addr) {
        let c = &self.auth.caches;
        c.ptr.insert(
            IpAddr::V4(ip),
            RecordSet {
                rrset: vec![format!("{name}.").into_boxed_str()].into(),
                dnssec_status: Default::default(),
            },
            later(),
        );
        c.ipv4.insert(
            format!("{name}.").into_boxed_str(),
            RecordSet {
                rrset: vec![ip].into(),
                dnssec_status: Default::default(),
            },
            later(),
        );
    }

    fn sign(&self, message: &str) -> String {
        self.sign_as(message, "")
    }

    /// Sign with `i=` set when `auid` is not empty.
    fn sign_as(&self, message: &str, auid: &str) -> String {
        let key = Ed25519Key::from_pkcs8_der(&self.key).unwrap();
        let mut signer = DkimSigner::from_key(key)
            .domain("sender.test")
            .selector("sel")
            .headers(["From", "To", "Subject"]);
        if !auid.is_empty() {
            signer = signer.agent_user_identifier(auid);
        }
        let sig = signer.sign(message.as_bytes()).unwrap();
        format!("{}{}", sig.to_header(), message)
    }

    async fn check(&self, cfg: &Inbound, helo: &str, mail_from: &str, message: &str) -> Verdict {
        let rcpts = vec!["user@example.org".to_string()];
        let ctx = MessageContext {
            peer_ip: PEER,
            helo,
            mail_from,
            rcpts: &rcpts,
        };
        verify::evaluate(
            &self.auth,
            cfg,
            HOST,
            &ctx,
            message.as_bytes(),
            Default::default(),
        )
        .await
    }
}

fn msg(from: &str) -> String {
    format!(
        "From: Alice <{from}>\r\nTo: user@example.org\r\nSubject: hello\r\n\
Message-ID: <1@sender.test>\r\n\r\nHello there.\r\n"
    )
}

fn ar(v: &Verdict) -> String {
    assert!(
        v.prepend
            .starts_with(&format!("Authentication-Results: {HOST};")),
        "{}",
        v.prepend
    );
    assert!(v.prepend.ends_with("\r\n"));
    assert_eq!(v.prepend.matches("Authentication-Results").count(), 1);
    v.prepend.clone()
}

/// SPF allows 127.0.0.1 for sender.test and its HELO name; PTR and A agree.
fn good_world(dmarc: &str) -> World {
    let w = World::new();
    w.spf("sender.test", "v=spf1 ip4:127.0.0.1 -all");
    w.spf("mail.sender.test", "v=spf1 ip4:127.0.0.1 -all");
    w.dmarc("sender.test", dmarc);
    w.ptr("mail.sender.test", Ipv4Addr::LOCALHOST);
    w
}

#[tokio::test]
async fn everything_passes() {
    let w = good_world("v=DMARC1; p=reject");
    let m = w.sign(&msg("alice@sender.test"));
    let v = w
        .check(
            &Inbound::default(),
            "mail.sender.test",
            "alice@sender.test",
            &m,
        )
        .await;
    assert_eq!(v.disposition, Disposition::Accept);
    let h = ar(&v);
    for want in [
        "spf=pass",
        "smtp.mailfrom=alice@sender.test",
        "smtp.helo=mail.sender.test",
        "dkim=pass header.d=sender.test header.s=sel",
        "dmarc=pass header.from=sender.test",
        "iprev=pass",
    ] {
        assert!(h.contains(want), "missing {want} in {h}");
    }
    let metrics = w.auth.stats().render_prometheus();
    assert!(metrics.contains("postern_inbound_dmarc_total{result=\"pass\"} 1\n"));
    assert!(metrics.contains("postern_inbound_verdicts_total{disposition=\"accept\"} 1\n"));
}

#[tokio::test]
async fn dkim_result_names_the_domain_even_with_an_auid() {
    let w = good_world("v=DMARC1; p=reject");
    let m = w.sign_as(&msg("alice@sender.test"), "alice@sender.test");
    let v = w
        .check(
            &Inbound::default(),
            "mail.sender.test",
            "alice@sender.test",
            &m,
        )
        .await;
    let h = ar(&v);
    assert!(
        h.contains("dkim=pass header.d=sender.test header.i=alice@sender.test header.s=sel"),
        "{h}"
    );
}

#[tokio::test]
async fn spf_fail_without_dkim_meets_p_reject() {
    let w = World::new();
    w.spf("sender.test", "v=spf1 ip4:192.0.2.1 -all");
    w.nx("mail.sender.test");
    w.dmarc("sender.test", "v=DMARC1; p=reject");
    w.ptr("mail.sender.test", Ipv4Addr::LOCALHOST);
    let v = w
        .check(
            &Inbound::default(),
            "mail.sender.test",
            "alice@sender.test",
            &msg("alice@sender.test"),
        )
        .await;
    match &v.disposition {
        Disposition::Reject {
            code,
            enhanced,
            text,
        } => {
            assert_eq!((*code, enhanced.as_str()), (550, "5.7.1"));
            assert!(text.contains("sender.test"));
        }
        other => panic!("{other:?}"),
    }
    let h = ar(&v);
    assert!(h.contains("spf=fail"), "{h}");
    assert!(h.contains("dkim=none"), "{h}");
    assert!(h.contains("dmarc=fail"), "{h}");
    assert!(h.contains("policy.dmarc=reject"), "{h}");

    // Relaxing the rule: quarantine instead, then accept.
    let cfg = Inbound {
        dmarc_reject: false,
        ..Inbound::default()
    };
    let v = w
        .check(
            &cfg,
            "mail.sender.test",
            "alice@sender.test",
            &msg("alice@sender.test"),
        )
        .await;
    assert_eq!(v.disposition, Disposition::Junk);
}

#[tokio::test]
async fn quarantine_goes_to_junk() {
    let w = good_world("v=DMARC1; p=quarantine");
    // SPF passes for another domain (not aligned), no signature: DMARC fails.
    w.spf("other.test", "v=spf1 ip4:127.0.0.1 -all");
    w.nx("_dmarc.other.test");
    let v = w
        .check(
            &Inbound::default(),
            "mail.sender.test",
            "bob@other.test",
            &msg("alice@sender.test"),
        )
        .await;
    assert_eq!(v.disposition, Disposition::Junk);
    let h = ar(&v);
    assert!(h.contains("spf=pass"), "{h}");
    assert!(h.contains("dmarc=fail"), "{h}");
    let cfg = Inbound {
        dmarc_quarantine: false,
        ..Inbound::default()
    };
    let v = w
        .check(
            &cfg,
            "mail.sender.test",
            "bob@other.test",
            &msg("alice@sender.test"),
        )
        .await;
    assert_eq!(v.disposition, Disposition::Accept);
}

#[tokio::test]
async fn tampered_body_fails_dkim_but_spf_aligns() {
    let w = good_world("v=DMARC1; p=reject");
    let m = w
        .sign(&msg("alice@sender.test"))
        .replace("Hello there.", "Send bitcoin.");
    let v = w
        .check(
            &Inbound::default(),
            "mail.sender.test",
            "alice@sender.test",
            &m,
        )
        .await;
    assert_eq!(v.disposition, Disposition::Accept);
    let h = ar(&v);
    assert!(h.contains("dkim=fail"), "{h}");
    assert!(h.contains("dmarc=pass"), "{h}");
}

#[tokio::test]
async fn dkim_alone_passes_dmarc_when_spf_fails() {
    let w = good_world("v=DMARC1; p=reject");
    w.spf("sender.test", "v=spf1 -all");
    let m = w.sign(&msg("alice@sender.test"));
    let v = w
        .check(
            &Inbound::default(),
            "mail.sender.test",
            "alice@sender.test",
            &m,
        )
        .await;
    assert_eq!(v.disposition, Disposition::Accept);
    let h = ar(&v);
    assert!(h.contains("spf=fail"), "{h}");
    assert!(h.contains("dkim=pass"), "{h}");
    assert!(h.contains("dmarc=pass"), "{h}");
}

#[tokio::test]
async fn nothing_published_is_none() {
    let w = World::new();
    w.nx("plain.test");
    w.nx("_dmarc.plain.test");
    w.ptr("mail.plain.test", Ipv4Addr::LOCALHOST);
    let v = w
        .check(
            &Inbound::default(),
            "[127.0.0.1]",
            "carol@plain.test",
            &msg("carol@plain.test"),
        )
        .await;
    assert_eq!(v.disposition, Disposition::Accept);
    let h = ar(&v);
    assert!(h.contains("spf=none"), "{h}");
    assert!(h.contains("dkim=none"), "{h}");
    assert!(h.contains("dmarc=none"), "{h}");
    assert!(!h.contains("smtp.helo"), "{h}");
}

#[tokio::test]
async fn our_own_domain_from_outside_fails_like_any_other() {
    let w = World::new();
    w.spf("example.org", "v=spf1 mx -all");
    w.dmarc("example.org", "v=DMARC1; p=reject");
    w.nx("_dmarc.org");
    w.auth.caches.mx.insert(
        "example.org.".into(),
        RecordSet {
            rrset: vec![mail_auth::MX {
                exchanges: vec!["mx.example.org.".into()].into(),
                preference: 10,
            }]
            .into(),
            dnssec_status: Default::default(),
        },
        later(),
    );
    w.auth.caches.ipv4.insert(
        "mx.example.org.".into(),
        RecordSet {
            rrset: vec![Ipv4Addr::new(192, 0, 2, 25)].into(),
            dnssec_status: Default::default(),
        },
        later(),
    );
    w.nx("forger.test");
    w.ptr("forger.test", Ipv4Addr::LOCALHOST);
    let v = w
        .check(
            &Inbound::default(),
            "forger.test",
            "ceo@example.org",
            &msg("ceo@example.org"),
        )
        .await;
    assert!(
        matches!(v.disposition, Disposition::Reject { code: 550, .. }),
        "{:?}",
        v.disposition
    );
}

#[tokio::test]
async fn a_second_from_domain_does_not_escape_dmarc() {
    let w = good_world("v=DMARC1; p=none");
    w.dmarc("example.org", "v=DMARC1; p=reject");
    w.nx("_dmarc.org");
    // sender.test signs and passes; example.org, named beside it, does not.
    let m = w.sign(
        "From: alice@sender.test, CEO <ceo@example.org>\r\nTo: user@example.org\r\n\
         Subject: pay this\r\n\r\nNow.\r\n",
    );
    let v = w
        .check(
            &Inbound::default(),
            "mail.sender.test",
            "alice@sender.test",
            &m,
        )
        .await;
    assert!(
        matches!(v.disposition, Disposition::Reject { code: 550, ref text, .. } if text.contains("example.org")),
        "{:?}",
        v.disposition
    );
    let h = ar(&v);
    assert!(h.contains("dmarc=pass header.from=sender.test"), "{h}");
    assert!(
        h.contains("dmarc=fail (policy not aligned) header.from=example.org"),
        "{h}"
    );
}

#[tokio::test]
async fn null_sender_uses_helo_identity() {
    let w = good_world("v=DMARC1; p=reject");
    w.nx("_dmarc.mail.sender.test");
    let v = w
        .check(
            &Inbound::default(),
            "mail.sender.test",
            "",
            &msg("mailer-daemon@mail.sender.test"),
        )
        .await;
    let h = ar(&v);
    assert!(
        h.contains("smtp.mailfrom=postmaster@mail.sender.test"),
        "{h}"
    );
    assert!(h.contains("spf=pass"), "{h}");
    // The From domain mail.sender.test falls under sender.test's policy (relaxed alignment
    // with the HELO identity passes).
    assert_eq!(v.disposition, Disposition::Accept, "{h}");
}

#[tokio::test]
async fn null_sender_with_address_literal_has_no_spf_identity() {
    let w = World::new();
    w.nx("_dmarc.plain.test");
    w.ptr("mail.plain.test", Ipv4Addr::LOCALHOST);
    let v = w
        .check(&Inbound::default(), "[127.0.0.1]", "", &msg("d@plain.test"))
        .await;
    assert_eq!(v.disposition, Disposition::Accept);
    let h = ar(&v);
    assert!(h.contains("spf=none"), "{h}");
    assert!(!h.contains("smtp.mailfrom"), "{h}");
}

#[tokio::test]
async fn dns_failure_is_temporary_not_a_pass() {
    // Nothing injected: every lookup goes to a server that never answers.
    let w = World::new();
    let v = w
        .check(
            &Inbound::default(),
            "mail.unknown.test",
            "dave@unknown.test",
            &msg("dave@unknown.test"),
        )
        .await;
    match &v.disposition {
        Disposition::TempFail { code, enhanced, .. } => {
            assert_eq!((*code, enhanced.as_str()), (451, "4.4.3"))
        }
        other => panic!("{other:?}"),
    }
    let h = ar(&v);
    assert!(h.contains("spf=temperror"), "{h}");

    let cfg = Inbound {
        tempfail_on_dns_error: false,
        ..Inbound::default()
    };
    let v = w
        .check(
            &cfg,
            "mail.unknown.test",
            "dave@unknown.test",
            &msg("dave@unknown.test"),
        )
        .await;
    assert_eq!(v.disposition, Disposition::Accept);
    assert!(ar(&v).contains("temperror"));
}

#[tokio::test]
async fn apply_strips_forged_results_and_prepends_ours() {
    let w = good_world("v=DMARC1; p=none");
    let forged = format!(
        "Authentication-Results: {HOST};\r\n\tdkim=pass header.d=bank.test\r\n{}",
        msg("alice@sender.test")
    );
    let v = w
        .check(
            &Inbound::default(),
            "mail.sender.test",
            "alice@sender.test",
            &forged,
        )
        .await;
    let stored = String::from_utf8(v.apply(forged.as_bytes())).unwrap();
    assert_eq!(
        stored.matches("Authentication-Results").count(),
        1,
        "{stored}"
    );
    assert!(stored.starts_with(&v.prepend));
    assert!(!stored.contains("bank.test"));
    assert!(stored.ends_with(&msg("alice@sender.test")));
}

#[tokio::test]
async fn garbage_message_does_not_panic() {
    let w = good_world("v=DMARC1; p=reject");
    for m in [
        "",
        "\r\n",
        "no headers at all",
        "From: <>\r\n\r\n",
        "From:\r\n\r\n",
    ] {
        let v = w
            .check(
                &Inbound::default(),
                "mail.sender.test",
                "alice@sender.test",
                m,
            )
            .await;
        ar(&v);
    }
}
