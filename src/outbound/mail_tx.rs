//! One mail transaction on an open SMTP client session (RFC 5321 §3.3): MAIL with its
//! parameters (SIZE, RFC 1870; BODY=8BITMIME, RFC 6152; SMTPUTF8, RFC 6531), RCPT per
//! recipient, DATA, in one batch when the server offers PIPELINING (RFC 2920), and the
//! message streamed after the 354. The session around it is `client`'s.

use super::client::{
    Attempt, Client, ClientError, RSET_PROBE, RcptResult, Transaction, has, timeouts,
};
use super::payload::{DataEncoder, needs_smtputf8};
use super::reply::Reply;

/// Octets of the message encoded per write (the wire form may be a little longer).
const DATA_BLOCK: usize = 64 * 1024;

/// The message after a 354: canonicalised and dot-stuffed (`DataEncoder`, the same
/// transformation as `data_payload`) block by block from the (mapped) queue file, so no
/// second copy of the whole message is made; a small message goes out in one write.
async fn send_data(c: &mut Client, message: &[u8]) -> Result<(), ClientError> {
    let mut enc = DataEncoder::new();
    let mut buf = Vec::with_capacity(message.len().min(DATA_BLOCK) + DATA_BLOCK / 32 + 8);
    let mut blocks = message.chunks(DATA_BLOCK).peekable();
    while let Some(block) = blocks.next() {
        enc.push(block, &mut buf);
        if blocks.peek().is_some() {
            c.send(&buf, timeouts::DATA_BLOCK, "data block").await?;
            buf.clear();
        }
    }
    enc.finish(&mut buf);
    c.send(&buf, timeouts::DATA_BLOCK, "data block").await
}

/// One transaction (MAIL, RCPT, DATA) on an open session; with `rset` (only with
/// PIPELINING) an RSET leads the batch and must be answered 250 (else `Stale`).
pub(super) async fn run(
    c: &mut Client,
    host: &str,
    tx: &Transaction<'_>,
    caps: &[(String, String)],
    rset: bool,
) -> Result<Attempt, ClientError> {
    // MAIL parameters.
    let mut params = String::new();
    if let Some((_, v)) = caps.iter().find(|(k, _)| k == "SIZE") {
        let max: u64 = v.parse().unwrap_or(0);
        if max > 0 && tx.message.len() as u64 > max {
            return Ok(Attempt::Rejected(Reply {
                code: 552,
                enhanced: Some("5.3.4".into()),
                lines: vec![format!(
                    "5.3.4 message of {} bytes exceeds the {max} bytes {host} accepts",
                    tx.message.len()
                )],
            }));
        }
        params.push_str(&format!(" SIZE={}", tx.message.len()));
    }
    let eight_bit = !tx.message.is_ascii();
    if eight_bit && has(caps, "8BITMIME") {
        params.push_str(" BODY=8BITMIME");
    }
    if needs_smtputf8(tx.mail_from, tx.rcpts, tx.message) {
        if has(caps, "SMTPUTF8") {
            params.push_str(" SMTPUTF8");
        } else {
            // RFC 6531 §3.2: without the extension such a message cannot be sent.
            return Ok(Attempt::Rejected(Reply {
                code: 553,
                enhanced: Some("5.6.7".into()),
                lines: vec![format!(
                    "5.6.7 {host} does not support SMTPUTF8, which this message needs"
                )],
            }));
        }
    }
    let mail_cmd = format!("MAIL FROM:<{}>{params}", tx.mail_from);
    let rcpt_cmds: Vec<String> = tx.rcpts.iter().map(|r| format!("RCPT TO:<{r}>")).collect();

    let mut results = Vec::with_capacity(tx.rcpts.len());
    let mail_reply;
    let data_reply;
    if has(caps, "PIPELINING") {
        // RFC 2920 §3.1: MAIL, RCPTs and DATA may go in one batch; replies come in order.
        let mut batch = if rset { "RSET\r\n" } else { "" }.to_string();
        batch.push_str(&mail_cmd);
        batch.push_str("\r\n");
        for r in &rcpt_cmds {
            batch.push_str(r);
            batch.push_str("\r\n");
        }
        batch.push_str("DATA\r\n");
        if rset {
            // A write to a session the server closed may still succeed: the RSET reply
            // (or its absence) tells.
            let _ = c.send(batch.as_bytes(), RSET_PROBE, "RSET").await;
            match c.read_reply(RSET_PROBE, "RSET reply").await {
                Ok(r) if r.code == 250 => {}
                _ => return Err(ClientError::Stale),
            }
        } else {
            c.send(batch.as_bytes(), timeouts::COMMAND, "MAIL").await?;
        }
        mail_reply = c.read_reply(timeouts::COMMAND, "MAIL reply").await?;
        for _ in &rcpt_cmds {
            let r = c.read_reply(timeouts::COMMAND, "RCPT reply").await?;
            results.push(r);
        }
        data_reply = Some(c.read_reply(timeouts::DATA_INIT, "DATA reply").await?);
    } else {
        mail_reply = c
            .command(&mail_cmd, timeouts::COMMAND, "MAIL reply")
            .await?;
        if mail_reply.is_positive() {
            for r in &rcpt_cmds {
                results.push(c.command(r, timeouts::COMMAND, "RCPT reply").await?);
            }
        }
        data_reply = None;
    }
    if !mail_reply.is_positive() {
        if data_reply.as_ref().is_some_and(|d| d.code == 354) {
            // The server took DATA after a failed MAIL: abort the data phase cleanly.
            c.send(b".\r\n", timeouts::DATA_BLOCK, "data").await?;
            let _ = c.read_reply(timeouts::DATA_END, "end of data").await;
        }
        return Ok(if mail_reply.is_permanent() {
            Attempt::Rejected(mail_reply)
        } else {
            Attempt::TryNext(format!("{host} answered MAIL with {mail_reply}"))
        });
    }
    let rcpt_results: Vec<RcptResult> = results
        .into_iter()
        .map(|r| {
            if r.is_positive() {
                RcptResult::Accepted
            } else if r.is_permanent() {
                RcptResult::Permanent(r)
            } else {
                RcptResult::Transient(r)
            }
        })
        .collect();
    let any_accepted = rcpt_results.contains(&RcptResult::Accepted);
    let data_reply = match data_reply {
        Some(d) => d,
        None if any_accepted => c.command("DATA", timeouts::DATA_INIT, "DATA reply").await?,
        None => {
            let _ = c.command("RSET", timeouts::COMMAND, "RSET reply").await;
            return Ok(Attempt::Done(rcpt_results));
        }
    };
    if data_reply.code != 354 {
        if !any_accepted {
            // Expected: DATA refused because no recipient was accepted (RFC 2920 §3.1).
            return Ok(Attempt::Done(rcpt_results));
        }
        let as_result = if data_reply.is_permanent() {
            RcptResult::Permanent(data_reply)
        } else {
            RcptResult::Transient(data_reply)
        };
        return Ok(Attempt::Done(
            rcpt_results
                .into_iter()
                .map(|r| {
                    if r == RcptResult::Accepted {
                        as_result.clone()
                    } else {
                        r
                    }
                })
                .collect(),
        ));
    }
    if !any_accepted {
        // Pipelined DATA was accepted although no recipient was: send an empty message is
        // wrong; close the data phase with nothing and expect a refusal.
        c.send(b".\r\n", timeouts::DATA_BLOCK, "data").await?;
        let _ = c.read_reply(timeouts::DATA_END, "end of data").await;
        return Ok(Attempt::Done(rcpt_results));
    }
    send_data(c, tx.message).await?;
    let end = c.read_reply(timeouts::DATA_END, "end of data").await?;
    let final_result = if end.is_positive() {
        RcptResult::Accepted
    } else if end.is_permanent() {
        RcptResult::Permanent(end)
    } else {
        RcptResult::Transient(end)
    };
    Ok(Attempt::Done(
        rcpt_results
            .into_iter()
            .map(|r| {
                if r == RcptResult::Accepted {
                    final_result.clone()
                } else {
                    r
                }
            })
            .collect(),
    ))
}
