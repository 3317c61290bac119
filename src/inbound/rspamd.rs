//! rspamd for users who run it (`[spam] rspamd_url`): each message arriving on port 25 is
//! POSTed to the normal worker's `/checkv2` endpoint, the envelope in request headers as
//! rspamd's protocol documents them (`IP`, `Helo`, `From`, one `Rcpt` per recipient, `User`
//! for an authenticated sender, `Queue-Id`, `Hostname` = the client's PTR name or
//! "unknown", `MTA-Name`), and the JSON reply's `action` decides:
//!
//! | rspamd action                    | postern                                           |
//! |----------------------------------|---------------------------------------------------|
//! | `reject`                         | 550 5.7.1 at the end of DATA                       |
//! | `soft reject`, `greylist`        | 451 4.7.1 (the sender retries later)               |
//! | `add header`, `rewrite subject`  | Junk, with an `X-Postern-Spam` header (score, symbols); the subject is left alone |
//! | `no action` (and anything else)  | delivered as usual                                 |
//!
//! rspamd unreachable, slow (`rspamd_timeout_secs`) or answering garbage: accept and log by
//! default, or 451 4.7.1 with `rspamd_failure = "tempfail"`. Mail is never refused for good
//! because the filter is down.
//!
//! `request_headers`, `parse_reply` and `decide` are sans-IO; `check` does the HTTP/1.1
//! exchange over one TCP connection with hyper's client connection.

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;

use crate::config::{RspamdFailure, Spam};

/// Largest rspamd reply we read (a reply lists symbols; it is a few KiB).
const MAX_REPLY: usize = 1 << 20;

/// What rspamd is told besides the message.
#[derive(Debug, Clone)]
pub struct Envelope<'a> {
    pub peer_ip: IpAddr,
    /// The client's PTR name, None when it has none.
    pub peer_name: Option<&'a str>,
    pub helo: &'a str,
    pub mail_from: &'a str,
    pub rcpts: &'a [String],
    pub auth_user: Option<&'a str>,
    pub queue_id: &'a str,
    /// Our host name.
    pub mta_name: &'a str,
}

/// The request headers, in order (`Rcpt` repeats).
pub fn request_headers(e: &Envelope<'_>) -> Vec<(&'static str, String)> {
    let clean = |s: &str| -> String { s.chars().filter(|c| !c.is_control()).take(512).collect() };
    let mut h = vec![
        ("IP", e.peer_ip.to_canonical().to_string()),
        ("Helo", clean(e.helo)),
        ("Hostname", clean(e.peer_name.unwrap_or("unknown"))),
    ];
    // The null reverse-path (a bounce) is sent as an empty From, which rspamd reads as <>.
    h.push(("From", clean(e.mail_from)));
    for r in e.rcpts {
        h.push(("Rcpt", clean(r)));
    }
    if let Some(u) = e.auth_user {
        h.push(("User", clean(u)));
    }
    h.push(("Queue-Id", clean(e.queue_id)));
    h.push(("MTA-Name", clean(e.mta_name)));
    h
}

/// The parts of rspamd's `/checkv2` reply we use.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub action: String,
    pub score: f64,
    pub required_score: f64,
    /// Symbol names, highest score first.
    pub symbols: Vec<String>,
    /// `messages.smtp_message`, when rspamd (or a rule) suggests a reply text.
    pub smtp_message: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RspamdError {
    #[error("rspamd: {0}")]
    Http(String),
    #[error("rspamd: bad reply: {0}")]
    Reply(String),
    #[error("rspamd: no answer within {0} s")]
    Timeout(u64),
}

pub fn parse_reply(body: &[u8]) -> Result<Reply, RspamdError> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| RspamdError::Reply(e.to_string()))?;
    let action = v
        .get("action")
        .and_then(|a| a.as_str())
        .ok_or_else(|| RspamdError::Reply("no \"action\"".into()))?
        .to_ascii_lowercase();
    let num = |k: &str| v.get(k).and_then(|x| x.as_f64()).unwrap_or(0.0);
    let mut symbols: Vec<(String, f64)> = v
        .get("symbols")
        .and_then(|s| s.as_object())
        .map(|o| {
            o.iter()
                .map(|(name, s)| {
                    let score = s.get("score").and_then(|x| x.as_f64()).unwrap_or(0.0);
                    (name.clone(), score)
                })
                .collect()
        })
        .unwrap_or_default();
    symbols.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let smtp_message = v
        .pointer("/messages/smtp_message")
        .and_then(|m| m.as_str())
        .map(clean_text)
        .filter(|m| !m.is_empty());
    Ok(Reply {
        action,
        score: num("score"),
        required_score: num("required_score"),
        symbols: symbols.into_iter().map(|(n, _)| n).collect(),
        smtp_message,
    })
}

/// Text from rspamd (or a rule author) made safe for a reply line and a header.
fn clean_text(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .filter(|c| c.is_ascii())
        .take(200)
        .collect::<String>()
        .trim()
        .to_string()
}

/// What the message gets.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Accept,
    /// Junk, with this X-Postern-Spam value.
    Junk(String),
    Reject(String),
    TempFail(String),
}

pub fn decide(r: &Reply) -> Decision {
    let said = |default: &str| {
        r.smtp_message
            .clone()
            .unwrap_or_else(|| default.to_string())
    };
    match r.action.as_str() {
        "reject" => Decision::Reject(said("Message rejected as spam")),
        "soft reject" => Decision::TempFail(said("Try again later")),
        "greylist" => Decision::TempFail(said("Greylisted, try again later")),
        "add header" | "rewrite subject" => {
            let symbols: Vec<&str> = r.symbols.iter().take(8).map(String::as_str).collect();
            Decision::Junk(format!(
                "rspamd action=\"{}\" score={:.2}/{:.2} symbols={}",
                r.action,
                r.score,
                r.required_score,
                symbols.join(",")
            ))
        }
        _ => Decision::Accept,
    }
}

/// Ask rspamd about `message`; the decision, with failures handled per `rspamd_failure`.
pub async fn check(cfg: &Spam, env: &Envelope<'_>, message: &[u8]) -> Decision {
    let timeout = Duration::from_secs(cfg.rspamd_timeout_secs.max(1));
    let result = match tokio::time::timeout(timeout, exchange(&cfg.rspamd_url, env, message)).await
    {
        Ok(r) => r,
        Err(_) => Err(RspamdError::Timeout(timeout.as_secs())),
    };
    match result {
        Ok(reply) => {
            let d = decide(&reply);
            tracing::info!(
                queue_id = env.queue_id,
                action = %reply.action,
                score = reply.score,
                required = reply.required_score,
                symbols = ?reply.symbols,
                "rspamd verdict"
            );
            d
        }
        Err(e) => match cfg.rspamd_failure {
            RspamdFailure::Accept => {
                tracing::warn!(queue_id = env.queue_id, "{e}; message accepted unchecked");
                Decision::Accept
            }
            RspamdFailure::Tempfail => {
                tracing::warn!(queue_id = env.queue_id, "{e}; answering 451");
                Decision::TempFail("Spam check unavailable, try again later".into())
            }
        },
    }
}

async fn exchange(url: &str, env: &Envelope<'_>, message: &[u8]) -> Result<Reply, RspamdError> {
    let http = |e: &dyn std::fmt::Display| RspamdError::Http(e.to_string());
    let uri: hyper::Uri = url.parse().map_err(|e| http(&e))?;
    let host = uri.host().ok_or_else(|| http(&"the URL has no host"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(11333);
    let tcp = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| http(&format!("connect to {host}:{port}: {e}")))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| http(&e))?;
    let conn = tokio::spawn(async move {
        let _ = conn.await;
    });
    let base = uri.path().trim_end_matches('/');
    let mut req = hyper::Request::post(format!("{base}/checkv2"))
        .header(
            hyper::header::HOST,
            uri.authority().map_or(host, |a| a.as_str()),
        )
        .header(hyper::header::USER_AGENT, "postern");
    for (name, value) in request_headers(env) {
        req = req.header(name, value);
    }
    let req = req
        .body(Full::new(Bytes::copy_from_slice(message)))
        .map_err(|e| http(&e))?;
    let resp = sender.send_request(req).await.map_err(|e| http(&e))?;
    let status = resp.status();
    let body = Limited::new(resp.into_body(), MAX_REPLY)
        .collect()
        .await
        .map_err(|e| http(&e))?
        .to_bytes();
    conn.abort();
    if !status.is_success() {
        return Err(http(&format!(
            "HTTP status {status}: {}",
            clean_text(&String::from_utf8_lossy(&body))
        )));
    }
    parse_reply(&body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(action: &str) -> Reply {
        Reply {
            action: action.into(),
            score: 6.0,
            required_score: 15.0,
            symbols: vec!["GTUBE".into()],
            smtp_message: None,
        }
    }

    #[test]
    fn actions_map_to_dispositions() {
        assert!(matches!(decide(&reply("reject")), Decision::Reject(_)));
        assert_eq!(
            decide(&reply("soft reject")),
            Decision::TempFail("Try again later".into())
        );
        assert!(matches!(decide(&reply("greylist")), Decision::TempFail(_)));
        assert_eq!(
            decide(&reply("add header")),
            Decision::Junk("rspamd action=\"add header\" score=6.00/15.00 symbols=GTUBE".into())
        );
        assert!(matches!(
            decide(&reply("rewrite subject")),
            Decision::Junk(_)
        ));
        assert_eq!(decide(&reply("no action")), Decision::Accept);
        assert_eq!(decide(&reply("something new")), Decision::Accept);
        let mut r = reply("reject");
        r.smtp_message = Some("Gtube pattern".into());
        assert_eq!(decide(&r), Decision::Reject("Gtube pattern".into()));
    }

    #[test]
    fn parses_checkv2_reply() {
        // As rspamd 3.4 answers a GTUBE message.
        let body = br#"{"is_skipped":true,"score":15.0,"required_score":15.0,"action":"reject","symbols":{"GTUBE":{"name":"GTUBE","score":0.0},"R_X":{"name":"R_X","score":2.5}},"messages":{"smtp_message":"Gtube\r\npattern"},"message-id":"undef"}"#;
        let r = parse_reply(body).unwrap();
        assert_eq!(r.action, "reject");
        assert_eq!(r.score, 15.0);
        assert_eq!(r.symbols, vec!["R_X", "GTUBE"]);
        assert_eq!(r.smtp_message.as_deref(), Some("Gtube  pattern"));
        assert!(parse_reply(b"not json").is_err());
        assert!(parse_reply(br#"{"score":1}"#).is_err());
    }

    #[test]
    fn headers_follow_the_protocol() {
        let rcpts = vec!["a@example.test".to_string(), "b@example.test".to_string()];
        let e = Envelope {
            peer_ip: "::ffff:192.0.2.1".parse().unwrap(),
            peer_name: None,
            helo: "client\r\nX-Evil: 1",
            mail_from: "s@sender.test",
            rcpts: &rcpts,
            auth_user: None,
            queue_id: "ABC",
            mta_name: "mail.example.test",
        };
        let h = request_headers(&e);
        assert!(h.contains(&("IP", "192.0.2.1".into())));
        assert!(h.contains(&("Helo", "clientX-Evil: 1".into())));
        assert!(h.contains(&("Hostname", "unknown".into())));
        assert_eq!(h.iter().filter(|(n, _)| *n == "Rcpt").count(), 2);
        assert!(!h.iter().any(|(n, _)| *n == "User"));
        assert!(h.contains(&("Queue-Id", "ABC".into())));
    }
}
