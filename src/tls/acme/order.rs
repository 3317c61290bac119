//! One certificate order (RFC 8555 §7.4): ask for the names, answer each pending
//! authorization with the configured challenge, finalize with a CSR for a fresh key, download
//! the chain. The challenge answers are withdrawn when the attempt ends, however it ends.

use std::time::Duration;

use instant_acme::{
    Account, AuthorizationStatus, CertificateIdentifier, ChallengeType, Identifier, NewOrder,
    OrderStatus, RetryPolicy,
};

use super::AcmeError;
use crate::config::AcmeChallenge;
use crate::tls::{TlsService, tls_alpn_challenge_cert};

/// How long the CA may take to validate and to issue.
const VALIDATION_TIMEOUT: Duration = Duration::from_secs(120);

/// A newly issued certificate: the PEM chain and its private key (PKCS#8 PEM).
pub struct Issued {
    pub chain_pem: String,
    pub key_pem: String,
}

/// Withdraws every challenge answer it offered when dropped.
struct Offered<'a> {
    tls: &'a TlsService,
    http01_tokens: Vec<String>,
    alpn_names: Vec<String>,
}

impl Drop for Offered<'_> {
    fn drop(&mut self) {
        for t in &self.http01_tokens {
            self.tls.set_http01(t, None);
        }
        for n in &self.alpn_names {
            self.tls.set_alpn_challenge(n, None);
        }
    }
}

pub async fn issue(
    account: &Account,
    names: &[String],
    challenge: AcmeChallenge,
    tls: &TlsService,
    replaces: Option<CertificateIdentifier<'static>>,
    reuse_key_pem: Option<&str>,
) -> Result<Issued, AcmeError> {
    let identifiers: Vec<Identifier> = names.iter().map(|n| Identifier::Dns(n.clone())).collect();
    let mut request = NewOrder::new(&identifiers);
    if let Some(r) = replaces {
        // RFC 9773 §5: name the certificate this order replaces.
        request = request.replaces(r);
    }
    let mut order = account.new_order(&request).await?;
    let mut offered = Offered {
        tls,
        http01_tokens: Vec::new(),
        alpn_names: Vec::new(),
    };
    let ctype = match challenge {
        AcmeChallenge::Http01 => ChallengeType::Http01,
        AcmeChallenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
    };

    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz?;
        match authz.status {
            AuthorizationStatus::Pending => {}
            // Still valid from an earlier order (CAs reuse authorizations): nothing to prove.
            AuthorizationStatus::Valid => continue,
            other => {
                return Err(AcmeError::Order(format!(
                    "authorization for {} is {other:?}",
                    authz.identifier()
                )));
            }
        }
        let name = authz.identifier().to_string();
        let mut ch = authz.challenge(ctype.clone()).ok_or_else(|| {
            AcmeError::Order(format!(
                "the CA offers no {challenge:?} challenge for {name} (see tls.acme_challenge)"
            ))
        })?;
        let key_auth = ch.key_authorization();
        match challenge {
            AcmeChallenge::Http01 => {
                tls.set_http01(&ch.token, Some(key_auth.as_str().to_owned()));
                offered.http01_tokens.push(ch.token.clone());
            }
            AcmeChallenge::TlsAlpn01 => {
                let ck = tls_alpn_challenge_cert(&name, key_auth.digest().as_ref())
                    .map_err(|e| AcmeError::Order(e.to_string()))?;
                tls.set_alpn_challenge(&name, Some(ck));
                offered.alpn_names.push(name.clone());
            }
        }
        tracing::info!("ACME: answering {challenge:?} for {name}");
        ch.set_ready().await?;
    }

    let retry = RetryPolicy::new()
        .initial_delay(Duration::from_millis(500))
        .backoff(1.5)
        .timeout(VALIDATION_TIMEOUT);
    let status = order.poll_ready(&retry).await?;
    if status != OrderStatus::Ready {
        return Err(AcmeError::Order(format!(
            "validation failed: {}",
            failed_challenges(&mut order).await
        )));
    }

    // A fresh ECDSA P-256 key per certificate, unless `[tls] acme_reuse_key` keeps the
    // current one (a published DANE `3 1 1` record pins it); the CA takes the names from the
    // CSR's SANs.
    let gen_err = |e: rcgen::Error| AcmeError::Order(format!("CSR: {e}"));
    let key = match reuse_key_pem.map(rcgen::KeyPair::from_pem) {
        Some(Ok(k)) => k,
        Some(Err(e)) => {
            tracing::warn!("ACME: the current key cannot be reused ({e}); making a new one");
            rcgen::KeyPair::generate().map_err(gen_err)?
        }
        None => rcgen::KeyPair::generate().map_err(gen_err)?,
    };
    let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(gen_err)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    let csr = params.serialize_request(&key).map_err(gen_err)?;
    order.finalize_csr(csr.der()).await?;
    let chain_pem = order.poll_certificate(&retry).await?;
    drop(offered);
    Ok(Issued {
        chain_pem,
        key_pem: key.serialize_pem(),
    })
}

/// The CA's reasons for failed challenges, for the log line.
async fn failed_challenges(order: &mut instant_acme::Order) -> String {
    let mut reasons = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(Ok(mut authz)) = authorizations.next().await {
        if let Ok(state) = authz.refresh().await {
            let name = state.identifier().to_string();
            for c in &state.challenges {
                if let Some(p) = &c.error {
                    reasons.push(format!("{name} ({:?}): {p}", c.r#type));
                }
            }
        }
    }
    if reasons.is_empty() {
        "the order became invalid".into()
    } else {
        reasons.join("; ")
    }
}
