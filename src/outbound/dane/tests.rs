use super::*;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

struct Certs {
    ca: CertificateDer<'static>,
    leaf: CertificateDer<'static>,
}

fn certs(names: &[&str]) -> Certs {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "dane test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    Certs {
        ca: ca_cert.der().clone(),
        leaf: leaf.der().clone(),
    }
}

fn rec(usage: u8, selector: u8, matching: u8, cert: &[u8]) -> Tlsa {
    let part = selected(cert, selector).unwrap();
    let data = match matching {
        0 => part,
        1 => sha2::Sha256::digest(&part).to_vec(),
        _ => sha2::Sha512::digest(&part).to_vec(),
    };
    Tlsa {
        usage,
        selector,
        matching,
        data,
    }
}

#[test]
fn dane_ee_matches_every_selector_and_matching_type() {
    let c = certs(&["mx.example"]);
    let chain = [c.leaf.clone()];
    for s in 0..=1 {
        for m in 0..=2 {
            let r = rec(3, s, m, &c.leaf);
            assert_eq!(
                verify(&[r], &chain, "other.name").unwrap(),
                format!("DANE-EE 3 {s} {m}"),
                "DANE-EE ignores the name"
            );
        }
    }
    let other = certs(&["mx.example"]);
    let e = verify(&[rec(3, 1, 1, &other.leaf)], &chain, "mx.example").unwrap_err();
    assert!(e.contains("no TLSA record matches"), "{e}");
    assert_eq!(tlsa_311(&c.leaf).unwrap(), hex(&rec(3, 1, 1, &c.leaf).data));
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn dane_ta_needs_the_anchor_in_the_chain_and_the_mx_name() {
    let c = certs(&["mx.example"]);
    let chain = [c.leaf.clone(), c.ca.clone()];
    for s in 0..=1 {
        let r = rec(2, s, 1, &c.ca);
        assert_eq!(
            verify(std::slice::from_ref(&r), &chain, "mx.example").unwrap(),
            format!("DANE-TA 2 {s} 1")
        );
        let e = verify(std::slice::from_ref(&r), &chain, "wrong.example").unwrap_err();
        assert!(e.contains("does not verify"), "{e}");
        // The anchor must be presented by the server.
        assert!(verify(&[r], &chain[..1], "mx.example").is_err());
    }
}

#[test]
fn pkix_usages_and_bad_records_are_unusable() {
    let c = certs(&["mx.example"]);
    let pkix_ee = rec(1, 1, 1, &c.leaf);
    let pkix_ta = rec(0, 0, 1, &c.ca);
    let mut short = rec(3, 1, 1, &c.leaf);
    short.data.pop();
    let odd_selector = Tlsa {
        selector: 7,
        ..rec(3, 1, 1, &c.leaf)
    };
    assert_eq!(
        requirement(vec![pkix_ee, pkix_ta, short, odd_selector]),
        Requirement::Encrypt
    );
    let good = rec(3, 1, 1, &c.leaf);
    assert_eq!(
        requirement(vec![rec(1, 1, 1, &c.leaf), good.clone()]),
        Requirement::Verify(vec![good])
    );
    assert!(verify(&[], &[], "mx.example").is_err());
}
