//! DKIM, DMARC, MTA-STS and PTR: the published records against what postern uses.

use std::net::IpAddr;

use hickory_resolver::TokioResolver;
use hickory_resolver::proto::rr::RData;

use super::Outcome;
use super::lookup::{lookup_problem, norm, txt_records};
use crate::cli::dns::{self, fqdn};
use crate::config::Config;

/// `tag=value; …` lists (DKIM RFC 6376 §3.2, DMARC RFC 7489 §6.4); whitespace in values
/// removed, as it is insignificant in base64 keys.
fn tags(record: &str) -> Vec<(String, String)> {
    record
        .split(';')
        .filter_map(|t| t.split_once('='))
        .map(|(k, v)| {
            (
                k.trim().to_ascii_lowercase(),
                v.chars().filter(|c| !c.is_whitespace()).collect(),
            )
        })
        .collect()
}

fn tag<'a>(t: &'a [(String, String)], name: &str) -> Option<&'a str> {
    t.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

pub(super) async fn check_dkim(config: &Config, r: &TokioResolver) -> Vec<Outcome> {
    let expected = match dns::dkim_records(config) {
        Ok(v) if v.is_empty() => {
            return vec![Err((
                format!(
                    "no DKIM key in {}/dkim, so mail leaves unsigned",
                    config.data_dir.display()
                ),
                "run `postern init` (or restart `postern serve`) to create it, then publish the record `postern dns` prints".into(),
            ))];
        }
        Ok(v) => v,
        Err(e) => {
            return vec![Err((
                format!("cannot read the DKIM key: {e}"),
                format!(
                    "check the files in {}/dkim (owner, permissions)",
                    config.data_dir.display()
                ),
            ))];
        }
    };
    let mut out = vec![];
    for (name, value) in expected {
        let name = norm(&name);
        let want = tags(&value);
        let want_p = tag(&want, "p").unwrap_or("").to_string();
        let fix = format!(
            "publish `{} IN TXT {}`",
            fqdn(&name),
            dns::txt_strings(&value)
        );
        out.push(match txt_records(r, &name).await {
            Err(e) => Err((e, fix)),
            Ok(recs) if recs.is_empty() => Err((format!("no DKIM record at {name}"), fix)),
            Ok(recs) => {
                let published: Vec<Vec<(String, String)>> = recs.iter().map(|s| tags(s)).collect();
                if published
                    .iter()
                    .any(|t| tag(t, "p") == Some(want_p.as_str()))
                {
                    Ok(format!("{name} publishes the key in use"))
                } else {
                    Err((
                        format!("the key published at {name} is not the key postern signs with"),
                        fix,
                    ))
                }
            }
        });
    }
    out
}

pub(super) async fn check_dmarc(config: &Config, r: &TokioResolver) -> Outcome {
    let name = format!("_dmarc.{}", config.domain);
    let fix = format!(
        "publish `{} IN TXT {}`",
        fqdn(&name),
        dns::txt_strings(&dns::dmarc_value(config))
    );
    let recs = txt_records(r, &name).await.map_err(|e| (e, fix.clone()))?;
    // RFC 7489 §6.6.3: records not starting with v=DMARC1 are ignored; more than one → none.
    let dmarc: Vec<&String> = recs
        .iter()
        .filter(|t| t.trim_start().starts_with("v=DMARC1"))
        .collect();
    match dmarc.as_slice() {
        [] => Err((format!("no DMARC record at {name}"), fix)),
        [one] => {
            let t = tags(one);
            match tag(&t, "p") {
                Some(p @ ("quarantine" | "reject")) => Ok(format!("{name}: p={p}")),
                Some("none") => Ok(format!(
                    "{name}: p=none (reports only; consider p=quarantine)"
                )),
                _ => Err((format!("DMARC record at {name} lacks a valid p= tag"), fix)),
            }
        }
        _ => Err((
            format!(
                "{} DMARC records at {name} (receivers ignore all of them)",
                dmarc.len()
            ),
            fix,
        )),
    }
}

pub(super) async fn check_mta_sts(config: &Config, r: &TokioResolver) -> Outcome {
    let name = format!("_mta-sts.{}", config.domain);
    let want = crate::http::mta_sts::txt_record(config);
    let fix = format!("publish `{} IN TXT \"{want}\"`", fqdn(&name));
    let recs = txt_records(r, &name).await.map_err(|e| (e, fix.clone()))?;
    let sts: Vec<&String> = recs.iter().filter(|t| t.starts_with("v=STSv1")).collect();
    match sts.as_slice() {
        [] => Err((format!("no MTA-STS record at {name}"), fix)),
        [one] => {
            let id = tag(&tags(one), "id").unwrap_or("").to_string();
            let served = crate::http::mta_sts::policy_id(config);
            if id == served {
                Ok(format!("{name}: id={id} matches the served policy"))
            } else {
                Err((
                    format!(
                        "{name} has id={id}, but the served policy's id is {served} (senders keep a stale policy)"
                    ),
                    fix,
                ))
            }
        }
        _ => Err((format!("{} MTA-STS records at {name}", sts.len()), fix)),
    }
}

pub(super) async fn check_ptr(r: &TokioResolver, ip: IpAddr, host: &str) -> Outcome {
    let fix = format!("ask your hosting provider to set the reverse DNS (PTR) of {ip} to {host}");
    match r.reverse_lookup(ip).await {
        Ok(l) => {
            let names: Vec<String> = l
                .answers()
                .iter()
                .filter_map(|rec| match &rec.data {
                    RData::PTR(p) => Some(norm(&p.0.to_string())),
                    _ => None,
                })
                .collect();
            if names.iter().any(|n| n == host) {
                Ok(format!("{ip} → {host}"))
            } else {
                Err((
                    format!("PTR of {ip} is {}, not {host}", names.join(", ")),
                    fix,
                ))
            }
        }
        Err(e) => Err((format!("{} for {ip}", lookup_problem("PTR", &e)), fix)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_lists() {
        let t = tags("v=DKIM1; k=rsa; p=AB CD\tEF");
        assert_eq!(tag(&t, "p"), Some("ABCDEF"));
        assert_eq!(tag(&t, "k"), Some("rsa"));
    }
}
