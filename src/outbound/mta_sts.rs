//! MTA-STS (RFC 8461): a domain's published demand that mail to it use TLS with a valid
//! certificate, to MX hosts it names. The `_mta-sts` TXT record (§3.1) announces a policy and
//! its id; the policy itself is fetched over HTTPS with a verified certificate (§3.3) and
//! cached for its max_age, refreshed when the TXT id changes (§5.1).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::Env;

/// §3.2: policies are small; refuse to read more.
const MAX_POLICY_BYTES: usize = 64 * 1024;
/// §3.3: senders should time out the fetch; one minute is the RFC's suggestion.
const FETCH_TIMEOUT: Duration = Duration::from_secs(60);
/// §3.2: max_age is at most 31557600 seconds.
const MAX_AGE_LIMIT: u64 = 31_557_600;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    Enforce,
    Testing,
    None,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub mode: Mode,
    pub mx: Vec<String>,
    pub max_age: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StsError {
    #[error("policy: {0}")]
    Parse(String),
    #[error("policy fetch: {0}")]
    Fetch(String),
}

impl Policy {
    /// Parse the policy body (§3.2): `key: value` lines, CRLF or LF.
    pub fn parse(text: &str) -> Result<Policy, StsError> {
        let mut version = None;
        let mut mode = None;
        let mut mx = Vec::new();
        let mut max_age = None;
        for line in text.lines() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() {
                continue;
            }
            let Some((k, v)) = line.split_once(':') else {
                return Err(StsError::Parse(format!("bad line {line:?}")));
            };
            let v = v.trim();
            match k.trim() {
                "version" => version = Some(v.to_string()),
                "mode" => {
                    mode = Some(match v {
                        "enforce" => Mode::Enforce,
                        "testing" => Mode::Testing,
                        "none" => Mode::None,
                        _ => return Err(StsError::Parse(format!("unknown mode {v:?}"))),
                    })
                }
                "mx" => mx.push(v.to_ascii_lowercase()),
                "max_age" => {
                    let n: u64 = v
                        .parse()
                        .map_err(|_| StsError::Parse(format!("bad max_age {v:?}")))?;
                    max_age = Some(n.min(MAX_AGE_LIMIT));
                }
                // §3.2: unknown fields are ignored.
                _ => {}
            }
        }
        if version.as_deref() != Some("STSv1") {
            return Err(StsError::Parse("version is not STSv1".into()));
        }
        let mode = mode.ok_or_else(|| StsError::Parse("no mode".into()))?;
        let max_age = max_age.ok_or_else(|| StsError::Parse("no max_age".into()))?;
        if mode != Mode::None && mx.is_empty() {
            return Err(StsError::Parse("no mx".into()));
        }
        Ok(Policy { mode, mx, max_age })
    }

    /// §4.1: an MX host matches a pattern exactly, or a `*.` pattern by its leftmost label.
    pub fn matches_mx(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.mx.iter().any(|p| {
            let p = p.trim_end_matches('.');
            if let Some(suffix) = p.strip_prefix("*.") {
                host.split_once('.')
                    .is_some_and(|(first, rest)| !first.is_empty() && rest == suffix)
            } else {
                host == p
            }
        })
    }
}

/// The `id` of a `_mta-sts` TXT record (§3.1), if the record is a valid STSv1 one.
pub fn parse_txt(txt: &str) -> Option<String> {
    let mut fields = txt.split(';').map(str::trim).filter(|f| !f.is_empty());
    if fields.next()? != "v=STSv1" {
        return None;
    }
    fields.find_map(|f| {
        f.strip_prefix("id=")
            .filter(|id| {
                !id.is_empty() && id.len() <= 32 && id.bytes().all(|b| b.is_ascii_alphanumeric())
            })
            .map(str::to_string)
    })
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Cached {
    id: String,
    policy: Policy,
    /// Unix time the policy expires (fetch time + max_age).
    expires: i64,
}

type Cache = HashMap<String, Cached>;

/// §5: policies are cached persistently, so a restart does not open a downgrade window.
/// The cache lives in `data_dir/mta-sts-cache.json`, read when the server starts.
#[derive(Clone)]
pub struct PolicyCache {
    file: Arc<PathBuf>,
    map: Arc<Mutex<Cache>>,
}

impl PolicyCache {
    pub fn open(data_dir: &Path) -> PolicyCache {
        let file = data_dir.join("mta-sts-cache.json");
        let map = std::fs::read(&file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        PolicyCache {
            file: Arc::new(file),
            map: Arc::new(Mutex::new(map)),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Cache) -> T) -> T {
        f(&mut self.map.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Serialise and write under the cache lock: two fetches saving at once must not land
    /// out of order (an older snapshot written last dropped a policy from disk, and after a
    /// restart that domain had none: the downgrade §5 guards against).
    fn save(&self) -> std::io::Result<()> {
        self.with(|c| {
            let json = serde_json::to_vec_pretty(c).unwrap_or_default();
            crate::fsutil::write_atomic(&self.file, &json, 0o600)
        })
    }
}

/// The policy that applies to `domain` now: Ok(None) when it publishes none.
pub async fn policy_for(svc: &Env<'_>, domain: &str) -> Result<Option<Policy>, StsError> {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let now = crate::clock::unix_now();
    let cached = svc.mta_sts.with(|c| {
        c.get(&domain)
            .filter(|c| c.expires > now)
            .map(|c| (c.id.clone(), c.policy.clone()))
    });
    let txt_name = format!("_mta-sts.{domain}.");
    let id = match svc.dns.txt_lookup(txt_name.as_str()).await {
        Ok(l) => {
            let ids: Vec<String> = l
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    hickory_resolver::proto::rr::RData::TXT(t) => {
                        let joined: Vec<u8> =
                            t.txt_data.iter().flat_map(|s| s.iter().copied()).collect();
                        parse_txt(&String::from_utf8_lossy(&joined))
                    }
                    _ => None,
                })
                .collect();
            // §3.1: more than one STSv1 record is as if there were none.
            if ids.len() == 1 {
                Some(ids[0].clone())
            } else {
                None
            }
        }
        Err(_) => None,
    };
    let Some(id) = id else {
        // §5.1: without a TXT record a still-valid cached policy keeps applying.
        return Ok(cached.map(|(_, p)| p));
    };
    if let Some((_, p)) = cached.as_ref().filter(|(cid, _)| *cid == id) {
        return Ok(Some(p.clone()));
    }
    match fetch(svc, &domain).await {
        Ok(policy) => {
            svc.mta_sts.with(|c| {
                c.insert(
                    domain.clone(),
                    Cached {
                        id,
                        policy: policy.clone(),
                        expires: now + policy.max_age as i64,
                    },
                );
                c.retain(|_, v| v.expires > now);
            });
            let cache = svc.mta_sts.clone();
            let saved = tokio::task::spawn_blocking(move || cache.save()).await;
            if let Ok(Err(e)) = saved {
                tracing::warn!("cannot save the MTA-STS policy cache: {e}");
            }
            Ok(Some(policy))
        }
        // §5.1: if the new policy cannot be fetched, keep using the cached one.
        Err(e) => match cached {
            Some((_, p)) => Ok(Some(p)),
            None => Err(e),
        },
    }
}

/// GET https://mta-sts.DOMAIN/.well-known/mta-sts.txt with a verified certificate, no
/// redirects (§3.3), bounded size and time.
pub async fn fetch(svc: &Env<'_>, domain: &str) -> Result<Policy, StsError> {
    tokio::time::timeout(FETCH_TIMEOUT, fetch_inner(svc, domain))
        .await
        .map_err(|_| StsError::Fetch("timeout".into()))?
}

async fn fetch_inner(svc: &Env<'_>, domain: &str) -> Result<Policy, StsError> {
    let host = format!("mta-sts.{domain}");
    let err = |e: String| StsError::Fetch(format!("https://{host}/: {e}"));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| err(e.to_string()))?
        .with_root_certificates(svc.roots.get())
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    // The policy host is resolved through our resolver ([dns].nameservers), like the MX.
    let addrs = super::mx::addresses(svc.dns, &host).await.map_err(err)?;
    let port = svc.config.outbound.mta_sts_port;
    let mut tcp = None;
    let mut last = format!("no address for {host}");
    for ip in addrs {
        match TcpStream::connect((ip, port)).await {
            Ok(s) => {
                tcp = Some(s);
                break;
            }
            Err(e) => last = format!("[{ip}]:{port}: {e}"),
        }
    }
    let tcp = tcp.ok_or_else(|| err(last))?;
    let name =
        rustls::pki_types::ServerName::try_from(host.clone()).map_err(|e| err(e.to_string()))?;
    let tls = TlsConnector::from(std::sync::Arc::new(cfg))
        .connect(name, tcp)
        .await
        .map_err(|e| err(e.to_string()))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| err(e.to_string()))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = hyper::Request::get("/.well-known/mta-sts.txt")
        .header(hyper::header::HOST, host.as_str())
        .header(hyper::header::USER_AGENT, "postern")
        .body(Empty::<Bytes>::new())
        .map_err(|e| err(e.to_string()))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| err(e.to_string()))?;
    // §3.3: only 200 counts; redirects are not followed.
    if resp.status() != hyper::StatusCode::OK {
        return Err(err(format!("HTTP status {}", resp.status())));
    }
    let body = Limited::new(resp.into_body(), MAX_POLICY_BYTES)
        .collect()
        .await
        .map_err(|e| err(e.to_string()))?
        .to_bytes();
    let text = std::str::from_utf8(&body).map_err(|_| err("policy is not UTF-8".into()))?;
    Policy::parse(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_policy_and_matches() {
        let p = Policy::parse(
            "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmax_age: 86400\r\n",
        )
        .unwrap();
        assert_eq!(p.mode, Mode::Enforce);
        assert!(p.matches_mx("mail.example.com."));
        assert!(p.matches_mx("MX1.example.net"));
        assert!(!p.matches_mx("a.b.example.net"));
        assert!(!p.matches_mx("example.net"));
        assert!(!p.matches_mx("evil.com"));
        assert!(Policy::parse("version: STSv1\nmode: enforce\nmax_age: 1\n").is_err());
        assert!(Policy::parse("version: STSv2\nmode: none\nmax_age: 1\n").is_err());
        assert!(Policy::parse("version: STSv1\nmode: strict\nmx: a\nmax_age: 1\n").is_err());
        let p = Policy::parse("version: STSv1\nmode: none\nmax_age: 99999999999\n").unwrap();
        assert_eq!(p.max_age, MAX_AGE_LIMIT);
    }

    #[test]
    fn txt_record() {
        assert_eq!(
            parse_txt("v=STSv1; id=20240101T0000;"),
            Some("20240101T0000".into())
        );
        assert_eq!(parse_txt("v=STSv1;id=abc"), Some("abc".into()));
        assert_eq!(parse_txt("v=spf1 -all"), None);
        assert_eq!(parse_txt("v=STSv1; id=bad-id"), None);
    }
}
