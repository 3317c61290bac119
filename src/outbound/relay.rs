//! Delivery through a smarthost relay (`[outbound] relay`, `[outbound.relay_domains]`), for
//! servers whose outgoing port 25 is blocked. The relay gets the whole transaction instead of
//! the MX hosts; the queue, retries, DSNs and DKIM (signed at submission) stay the same.
//!
//! Security rules (RFC 8314 §3, RFC 4954 §4): TLS (STARTTLS or implicit) is mandatory and the
//! relay's certificate must verify for the configured host name against the system roots plus
//! `[outbound].ca_file`. Credentials go out only after that; a relay without TLS, with a bad
//! certificate, without AUTH PLAIN/LOGIN, or refusing our login is a temporary failure with a
//! precise queue status, never a send in the clear. MTA-STS and DANE describe the recipient
//! domain's MX hosts, so they do not apply to the hop to our own relay.

use std::fmt;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use super::client::{self, Attempt, ClientError, TlsPolicy, Transaction, timeouts};
use super::reply::Reply;
use super::{Kind, RcptOutcome};
use crate::config::{Outbound, RelayTls};
use crate::logsafe::UntrustedText;

/// The login at the relay. The password never appears in logs or `Debug` output.
#[derive(Clone)]
pub struct Credentials {
    pub user: String,
    password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Credentials {{ user: {:?}, password: <hidden> }}",
            self.user
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("cannot read outbound.relay_password_file {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error(
        "outbound.relay_password_file {0} is readable by group or others (mode {1:04o}); run `chmod 600 {0}`"
    )]
    Mode(PathBuf, u32),
    #[error("outbound.relay_password_file {0} is empty; put the relay password on its first line")]
    Empty(PathBuf),
}

/// The relay login from the config, reading the password file (None without `relay_user`).
/// Refuses a file that group or others may read: the secret would not be ours alone.
pub fn credentials(cfg: &Outbound) -> Result<Option<Credentials>, RelayError> {
    if cfg.relay_user.is_empty() {
        return Ok(None);
    }
    let password = read_password(&cfg.relay_password_file)?;
    Ok(Some(Credentials {
        user: cfg.relay_user.clone(),
        password,
    }))
}

fn read_password(path: &Path) -> Result<String, RelayError> {
    let err = |e| RelayError::Read(path.to_owned(), e);
    let mode = std::fs::metadata(path).map_err(err)?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(RelayError::Mode(path.to_owned(), mode & 0o7777));
    }
    let text = std::fs::read_to_string(path).map_err(err)?;
    let first = text.lines().next().unwrap_or("").trim_end_matches('\r');
    if first.is_empty() {
        return Err(RelayError::Empty(path.to_owned()));
    }
    Ok(first.to_string())
}

fn policy(cfg: &Outbound) -> TlsPolicy {
    TlsPolicy {
        require_valid: true,
        implicit: cfg.relay_tls == RelayTls::Implicit,
    }
}

/// A 4.x.y status for a refusal of ours to go on: AUTH refusals are temporary whatever the
/// relay's class, since the fix (credentials, account) is on our side and mail must wait.
fn temporary_status(r: &Reply, fallback: &str) -> String {
    match &r.enhanced {
        Some(e) if e.len() > 2 => format!("4{}", &e[1..]),
        _ => fallback.to_string(),
    }
}

/// RFC 4954 AUTH with PLAIN (RFC 4616, initial response) or LOGIN, on a session whose TLS
/// policy has already been checked. None = logged in; Some(a) = stop with `a`.
pub(super) async fn authenticate(
    c: &mut client::Client,
    host: &str,
    creds: &Credentials,
    caps: &[(String, String)],
) -> Result<Option<Attempt>, ClientError> {
    if !(c.info.tls && c.info.tls_verified) {
        // open_session checks the policy first; this guards the rule itself.
        return Ok(Some(Attempt::Deferred {
            status: "4.7.4".into(),
            reason: format!("{host}: not sending credentials without verified TLS"),
        }));
    }
    let offered: Vec<String> = caps
        .iter()
        .filter(|(k, _)| k == "AUTH")
        .flat_map(|(_, v)| v.split_whitespace().map(|m| m.to_ascii_uppercase()))
        .collect();
    let reply = if offered.iter().any(|m| m == "PLAIN") {
        c.info.auth = Some("PLAIN");
        let token = B64.encode(format!("\0{}\0{}", creds.user, creds.password));
        let r = c
            .command(
                &format!("AUTH PLAIN {token}"),
                timeouts::COMMAND,
                "AUTH reply",
            )
            .await?;
        if r.code == 334 {
            // A challenge after an initial response: cancel the exchange (RFC 4954 §4).
            c.command("*", timeouts::COMMAND, "AUTH reply").await?
        } else {
            r
        }
    } else if offered.iter().any(|m| m == "LOGIN") {
        c.info.auth = Some("LOGIN");
        let mut r = c
            .command("AUTH LOGIN", timeouts::COMMAND, "AUTH reply")
            .await?;
        for answer in [&creds.user, &creds.password] {
            if r.code != 334 {
                break;
            }
            r = c
                .command(&B64.encode(answer), timeouts::COMMAND, "AUTH reply")
                .await?;
        }
        r
    } else {
        let what = if offered.is_empty() {
            "no AUTH".to_string()
        } else {
            format!("only AUTH {}", offered.join(" "))
        };
        return Ok(Some(Attempt::Deferred {
            status: "4.7.4".into(),
            reason: format!("{host} offers {what}; postern logs in with PLAIN or LOGIN"),
        }));
    };
    if reply.code == 235 {
        return Ok(None);
    }
    c.info.auth = None;
    Ok(Some(Attempt::Deferred {
        status: temporary_status(&reply, "4.7.0"),
        reason: format!("{host} refused AUTH as {}: {reply}", creds.user),
    }))
}

/// One attempt to deliver `message` to `rcpts` of `domain` through the relay `host:port`.
#[allow(clippy::too_many_arguments)]
pub async fn deliver(
    svc: &super::Env<'_>,
    queue_id: &str,
    domain: &str,
    (host, port): (String, u16),
    mail_from: &str,
    rcpts: &[String],
    message: &[u8],
) -> Vec<RcptOutcome> {
    let cfg = &svc.config.outbound;
    let relay = format!("relay {host}:{port}");
    let deferred = |status: &str, why: String| {
        tracing::info!(
            queue_id,
            domain,
            "{relay}: deferred: {}",
            UntrustedText(&why)
        );
        vec![RcptOutcome::ours(Kind::Transient, status, format!("{relay}: {why}")); rcpts.len()]
    };
    let creds = match credentials(cfg) {
        Ok(c) => c,
        Err(e) => return deferred("4.3.5", e.to_string()),
    };
    let addrs = match relay_addresses(svc.dns, &host).await {
        Ok(a) => a,
        Err(e) => return deferred("4.4.3", e),
    };
    let tx = Transaction {
        helo_name: &svc.config.hostname,
        roots: svc.roots.get(),
        mail_from,
        rcpts,
        message,
        auth: creds.as_ref(),
    };
    let mut last = ("4.4.1".to_string(), format!("{host} has no address"));
    for ip in addrs {
        if svc.shutdown.is_cancelled() {
            return deferred("4.3.2", "delivery interrupted by shutdown".into());
        }
        let (attempt, info) = client::attempt(&host, ip, port, &tx, policy(cfg), None).await;
        let remote = Some(format!("{host} [{ip}]"));
        match attempt {
            Attempt::Done(results) => {
                let outcomes = super::outcomes(results, &remote);
                let ok = outcomes
                    .iter()
                    .filter(|o| o.kind == Kind::Delivered)
                    .count();
                tracing::info!(
                    queue_id,
                    domain,
                    relay = %host,
                    %ip,
                    port,
                    tls = info.tls,
                    tls_verified = info.tls_verified,
                    auth = info.auth.unwrap_or("none"),
                    accepted = ok,
                    "outbound transaction through the relay"
                );
                svc.metrics
                    .messages_sent
                    .fetch_add(ok as u64, Ordering::Relaxed);
                return outcomes;
            }
            Attempt::Rejected(r) => {
                tracing::info!(queue_id, domain, relay = %host, %ip, "message rejected: {}", UntrustedText(&r.to_string()));
                return vec![
                    RcptOutcome {
                        kind: Kind::Permanent,
                        status: r.status(),
                        diagnostic: r.to_string(),
                        remote_mta: remote,
                    };
                    rcpts.len()
                ];
            }
            Attempt::TryNext(e) => {
                tracing::info!(queue_id, domain, relay = %host, %ip, "relay address failed: {}", UntrustedText(&e));
                last = ("4.4.1".into(), e);
            }
            Attempt::Deferred { status, reason } => {
                tracing::info!(queue_id, domain, relay = %host, %ip, "{}", UntrustedText(&reason));
                last = (status, reason);
            }
        }
    }
    let (status, why) = last;
    vec![RcptOutcome::ours(Kind::Transient, &status, format!("{relay}: {why}")); rcpts.len()]
}

/// The relay's addresses: an IP literal as is, else A and AAAA.
async fn relay_addresses(
    dns: &hickory_resolver::TokioResolver,
    host: &str,
) -> Result<Vec<IpAddr>, String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    match super::mx::addresses(dns, host).await? {
        a if a.is_empty() => Err(format!("relay host {host} has no A or AAAA record")),
        a => Ok(a),
    }
}

/// `postern check`: log in to the relay (EHLO, STARTTLS, AUTH, QUIT) without sending mail.
/// Ok(what happened) or Err(the exact refusal).
pub async fn probe(
    config: &crate::config::Config,
    dns: &hickory_resolver::TokioResolver,
    host: &str,
    port: u16,
) -> Result<String, String> {
    let cfg = &config.outbound;
    let creds = credentials(cfg).map_err(|e| e.to_string())?;
    let roots = super::tls::Roots::new(&cfg.ca_file).get();
    let policy = policy(cfg);
    let addrs = relay_addresses(dns, host).await?;
    let mut errors = Vec::new();
    for ip in addrs {
        let mut c = match client::connect(host, ip, port, &roots, policy).await {
            Ok(c) => c,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let r = client::open_session(
            &mut c,
            host,
            &config.hostname,
            &roots,
            policy,
            creds.as_ref(),
            None,
        )
        .await;
        client::quit(&mut c).await;
        match r {
            Ok(Ok(_)) => {
                let how = if policy.implicit {
                    "implicit TLS"
                } else {
                    "STARTTLS"
                };
                return Ok(match (&creds, c.info.auth) {
                    (Some(cr), Some(mech)) => format!(
                        "{host} [{ip}]:{port}: {how}, certificate verified, AUTH {mech} as {} accepted",
                        cr.user
                    ),
                    _ => format!(
                        "{host} [{ip}]:{port}: {how}, certificate verified (no relay_user: no AUTH)"
                    ),
                });
            }
            Ok(Err(Attempt::Deferred { reason, .. })) | Ok(Err(Attempt::TryNext(reason))) => {
                errors.push(format!("[{ip}]:{port}: {reason}"))
            }
            Ok(Err(other)) => errors.push(format!("[{ip}]:{port}: {other:?}")),
            Err(e) => errors.push(format!("{host} [{ip}]:{port}: {e}")),
        }
    }
    Err(errors.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_file_must_be_private() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "s3cret\nignored\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = read_password(&p).unwrap_err().to_string();
        assert!(e.contains("chmod 600") && e.contains("0640"), "{e}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_password(&p).unwrap(), "s3cret");
        std::fs::write(&p, "\n").unwrap();
        assert!(matches!(read_password(&p), Err(RelayError::Empty(_))));
        assert!(matches!(
            read_password(&dir.path().join("missing")),
            Err(RelayError::Read(..))
        ));
    }

    #[test]
    fn credentials_never_show_the_password() {
        let c = Credentials {
            user: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn auth_refusals_become_temporary() {
        let r = Reply {
            code: 535,
            enhanced: Some("5.7.8".into()),
            lines: vec!["5.7.8 bad credentials".into()],
        };
        assert_eq!(temporary_status(&r, "4.7.0"), "4.7.8");
        let r = Reply {
            code: 535,
            enhanced: None,
            lines: vec!["no".into()],
        };
        assert_eq!(temporary_status(&r, "4.7.0"), "4.7.0");
    }
}
