//! The certificate: trusted by a client's roots, naming the host, not near expiry.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

use super::Outcome;
use crate::config::{Config, TlsSource};

/// The certificate chain on disk (what the server loads at start), with its path.
pub(crate) fn stored_certificate(
    config: &Config,
) -> Option<(std::path::PathBuf, Vec<CertificateDer<'static>>)> {
    use rustls::pki_types::pem::PemObject;
    let dir = config.data_dir.join("tls");
    let candidates = match config.tls.source {
        TlsSource::Files => vec![config.tls.cert_file.clone()],
        TlsSource::Acme => vec![dir.join("acme-cert.pem"), dir.join("self-signed-cert.pem")],
        TlsSource::SelfSigned => vec![dir.join("self-signed-cert.pem")],
    };
    candidates.into_iter().find_map(|p| {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&p)
            .ok()?
            .collect::<Result<_, _>>()
            .ok()?;
        (!chain.is_empty()).then_some((p, chain))
    })
}

pub(super) fn check_certificate(
    config: &Config,
    served: Option<Vec<CertificateDer<'static>>>,
    min_days: i64,
) -> Outcome {
    let acme_fix = fix_for_source(config);
    let acme_fix = acme_fix.as_str();
    if config.tls.source == TlsSource::Files && !config.tls.cert_file.is_file() {
        return Err((
            format!(
                "tls.cert_file {} does not exist",
                config.tls.cert_file.display()
            ),
            "put the PEM certificate chain there, or correct tls.cert_file".into(),
        ));
    }
    let (origin, chain) = match served {
        Some(c) if !c.is_empty() => ("served".to_string(), c),
        _ => match stored_certificate(config) {
            Some((p, c)) => (format!("in {}", p.display()), c),
            None => {
                return Err((
                    "no certificate served or stored".into(),
                    "start postern once (it creates or obtains one), or check [tls]".into(),
                ));
            }
        },
    };
    let Ok((_, x)) = x509_parser::parse_x509_certificate(chain[0].as_ref()) else {
        return Err((
            format!("the certificate {origin} does not parse"),
            acme_fix.into(),
        ));
    };
    let not_after = x.validity().not_after.timestamp();
    let now = chrono::Utc::now().timestamp();
    let days_left = (not_after - now).div_euclid(86400);
    let until = chrono::DateTime::from_timestamp(not_after, 0)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_default();
    let issuer = x.issuer().to_string();

    let verdict = verify_chain(&chain, &config.hostname);
    if let Err(problem) = verdict {
        return Err((
            format!("the certificate {origin} {problem}"),
            acme_fix.into(),
        ));
    }
    if days_left < min_days {
        return Err((
            format!("the certificate {origin} expires in {days_left} days ({until})"),
            match config.tls.source {
                TlsSource::Acme => acme_fix.to_string(),
                _ => "renew the certificate files, then `systemctl reload postern`".into(),
            },
        ));
    }
    Ok(format!(
        "{origin}, valid for {}, issued by {issuer}, until {until} ({days_left} days)",
        config.hostname
    ))
}

/// What to do about an untrusted or expiring certificate, for the source configured: with
/// ACME already set, advising it would be no help, so its last error is shown instead.
fn fix_for_source(config: &Config) -> String {
    match config.tls.source {
        TlsSource::Acme => {
            let state = crate::tls::acme::Store::new(&config.data_dir.join("tls")).load_state();
            match state.and_then(|s| s.last_error) {
                Some(e) => format!(
                    "ACME is failing (last error: {e}); `postern tls status` has the details"
                ),
                None => format!(
                    "ACME has not obtained a certificate yet: port 80 (or 443 for tls-alpn-01) must be reachable from the internet for {}; `postern tls status` shows progress",
                    config.hostname
                ),
            }
        }
        TlsSource::Files => format!(
            "replace {} with a CA-issued certificate chain, then `systemctl reload postern`",
            config.tls.cert_file.display()
        ),
        TlsSource::SelfSigned => "use a CA-issued certificate: tls.source = \"acme\" (port 80 reachable from the internet) or \"files\" with your certificate".into(),
    }
}

/// Verify `chain` for `name` as a client would: against the system's roots (SSL_CERT_FILE
/// and SSL_CERT_DIR are honoured), at the current time.
pub(super) fn verify_chain(chain: &[CertificateDer<'static>], name: &str) -> Result<(), String> {
    use rustls::client::danger::ServerCertVerifier as _;
    let Some(leaf) = chain.first() else {
        return Err("is empty".into());
    };
    let Ok((_, x)) = x509_parser::parse_x509_certificate(leaf.as_ref()) else {
        return Err("does not parse".into());
    };
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if roots.is_empty() {
        return Err(
            "cannot be verified: no trusted root certificates on this system (install ca-certificates)"
                .into(),
        );
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| format!("cannot be verified: {e}"))?;
    let server_name =
        ServerName::try_from(name.to_string()).map_err(|e| format!("cannot be verified: {e}"))?;
    verifier
        .verify_server_cert(leaf, &chain[1..], &server_name, &[], UnixTime::now())
        .map(|_| ())
        .map_err(|e| describe_cert_error(&e, &x))
}

fn describe_cert_error(
    e: &rustls::Error,
    x: &x509_parser::certificate::X509Certificate<'_>,
) -> String {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(C::Expired)
        | rustls::Error::InvalidCertificate(C::ExpiredContext { .. }) => "has expired".into(),
        rustls::Error::InvalidCertificate(C::NotValidYet)
        | rustls::Error::InvalidCertificate(C::NotValidYetContext { .. }) => {
            "is not valid yet (check the clock)".into()
        }
        rustls::Error::InvalidCertificate(C::NotValidForName)
        | rustls::Error::InvalidCertificate(C::NotValidForNameContext { .. }) => {
            "does not name this host".into()
        }
        // Whatever webpki tripped over first (unknown issuer, CA used as end entity), a
        // certificate that issued itself is the problem to report.
        _ if x.issuer() == x.subject() => {
            "is self-signed: mail clients and MTA-STS senders reject it".into()
        }
        rustls::Error::InvalidCertificate(C::UnknownIssuer) => format!(
            "is issued by a CA this system does not trust ({})",
            x.issuer()
        ),
        other => format!("does not verify: {other}"),
    }
}
