//! The report task: saves the counts every minute, and once a reporting period has ended
//! sends one report per policy domain that publishes a `mailto:` rua (RFC 8460 §3, §5.3).
//!
//! Reports never trigger bounces (§5.3): they are queued with the null reverse-path
//! (`MAIL FROM:<>`), so a report that cannot be delivered is dropped at expiry without a
//! DSN (RFC 5321 §4.5.5), and the header From (`noreply-tlsrpt@<our domain>`, DKIM-aligned)
//! receives no mail. They are DKIM-signed with our keys like all outbound mail.

use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::proto::rr::RData;

use super::Periods;
use super::report::{self, Submitter};
use crate::services::Services;

pub fn spawn(svc: Arc<Services>) {
    svc.tasks.clone().spawn(async move { run(svc).await });
}

async fn run(svc: Arc<Services>) {
    let store = svc.tlsrpt.clone();
    let tick = Duration::from_secs((store.period_secs() as u64 / 3).clamp(1, 60));
    loop {
        tokio::select! {
            _ = svc.shutdown.cancelled() => break,
            _ = tokio::time::sleep(tick) => {}
        }
        if svc.config.outbound.tlsrpt {
            send_finished(&svc, crate::clock::unix_now(), false).await;
        }
        save(&store).await;
    }
    save(&store).await;
}

async fn save(store: &Arc<super::Store>) {
    let s = store.clone();
    match tokio::task::spawn_blocking(move || s.save()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!("tlsrpt: cannot save the TLS report counts: {e}"),
        Err(e) => tracing::warn!("tlsrpt: save task failed: {e}"),
    }
}

/// Send the reports of every period that ended before `now` (and of the current one with
/// `include_current`). Returns how many report messages were queued.
pub async fn send_finished(svc: &Services, now: i64, include_current: bool) -> usize {
    let periods = svc.tlsrpt.take_finished(now, include_current);
    let mut back = Periods::new();
    let mut sent = 0;
    for (start, domains) in periods {
        let end = start + svc.tlsrpt.period_secs();
        for (domain, counts) in domains {
            let rua = match rua_of(svc, &domain).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::info!(domain, "tlsrpt: no report sent: {e}");
                    continue;
                }
            };
            let who = Submitter {
                organization: &svc.config.domain,
                submitter: &svc.config.hostname,
                contact: &format!("postmaster@{}", svc.config.domain),
            };
            let id = report::report_id(start, &domain, &svc.config.hostname);
            let json = report::json(&who, &domain, start, end, &id, &counts);
            let from = format!("noreply-tlsrpt@{}", svc.config.domain);
            let msg = report::message(&who, &from, &rua, &domain, start, end, &id, &json, now);
            let signed = match svc.dkim.sign(&svc.config, &msg) {
                Ok(sig) => {
                    let mut s = sig.into_bytes();
                    s.extend_from_slice(&msg);
                    s
                }
                Err(e) => {
                    tracing::warn!(domain, "tlsrpt: report not DKIM-signed: {e}");
                    msg
                }
            };
            // The null reverse-path: a report is never bounced (RFC 8460 §5.3).
            let spool: crate::queue::Spool = (*svc.queue).clone();
            let to = rua.clone();
            let queued =
                tokio::task::spawn_blocking(move || spool.enqueue_blocking("", &to, &signed))
                    .await
                    .unwrap_or_else(|e| Err(crate::queue::QueueError::Other(e.to_string())));
            svc.queue.wake().notify_one();
            match queued {
                Ok(qid) => {
                    sent += 1;
                    tracing::info!(queue_id = qid, domain, report_id = id, rua = ?rua, "tlsrpt: report queued");
                }
                Err(e) => {
                    tracing::warn!(
                        domain,
                        "tlsrpt: cannot queue the report, kept for later: {e}"
                    );
                    back.entry(start).or_default().insert(domain, counts);
                }
            }
        }
    }
    if !back.is_empty() {
        svc.tlsrpt.restore(back);
    }
    sent
}

/// The report addresses of `domain`, from `_smtp._tls.<domain>` TXT (§3).
async fn rua_of(svc: &Services, domain: &str) -> Result<Vec<String>, String> {
    let name = format!("_smtp._tls.{domain}.");
    let answer = svc
        .dns
        .txt_lookup(name.as_str())
        .await
        .map_err(|e| format!("{name}: {e}"))?;
    let records: Vec<String> = answer
        .answers()
        .iter()
        .filter_map(|r| match &r.data {
            RData::TXT(t) => {
                let joined: Vec<u8> = t.txt_data.iter().flat_map(|s| s.iter().copied()).collect();
                Some(String::from_utf8_lossy(&joined).into_owned())
            }
            _ => None,
        })
        .collect();
    match report::parse_txt(&records) {
        None => Err(format!("{name}: no single v=TLSRPTv1 record")),
        Some(r) if r.is_empty() => Err(format!("{name}: no mailto: rua")),
        Some(r) => Ok(r),
    }
}
