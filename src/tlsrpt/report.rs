//! The aggregate report (RFC 8460 §4), its gzip'd `multipart/report` message (§5.3), and the
//! `_smtp._tls` TXT record that says where it goes (§3).

use std::io::Write;

use base64::Engine;
use serde::Serialize;

use super::{Detail, Policy, PolicyCounts};

/// What the report says about us.
pub struct Submitter<'a> {
    /// `organization-name` (our mail domain).
    pub organization: &'a str,
    /// The sending MTA, `TLS-Report-Submitter` (our host name).
    pub submitter: &'a str,
    /// `contact-info`.
    pub contact: &'a str,
}

#[derive(Serialize)]
struct DateRange {
    #[serde(rename = "start-datetime")]
    start: String,
    #[serde(rename = "end-datetime")]
    end: String,
}

#[derive(Serialize)]
struct Summary {
    #[serde(rename = "total-successful-session-count")]
    success: u64,
    #[serde(rename = "total-failure-session-count")]
    failure: u64,
}

#[derive(Serialize)]
struct PolicyOut<'a> {
    #[serde(rename = "policy-type")]
    kind: &'a str,
    #[serde(rename = "policy-string", skip_serializing_if = "<[_]>::is_empty")]
    strings: &'a [String],
    #[serde(rename = "policy-domain")]
    domain: &'a str,
    #[serde(rename = "mx-host", skip_serializing_if = "<[_]>::is_empty")]
    mx: &'a [String],
}

#[derive(Serialize)]
struct PolicyEntry<'a> {
    policy: PolicyOut<'a>,
    summary: Summary,
    #[serde(rename = "failure-details", skip_serializing_if = "<[_]>::is_empty")]
    details: &'a [Detail],
}

#[derive(Serialize)]
struct Report<'a> {
    #[serde(rename = "organization-name")]
    organization: &'a str,
    #[serde(rename = "date-range")]
    range: DateRange,
    #[serde(rename = "contact-info")]
    contact: &'a str,
    #[serde(rename = "report-id")]
    id: &'a str,
    policies: Vec<PolicyEntry<'a>>,
}

/// RFC 3339 date-time in UTC (§4.4: "date-time ... in UTC").
pub fn rfc3339(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// The report id for `domain` and the period starting at `start` (unique per both).
pub fn report_id(start: i64, domain: &str, submitter: &str) -> String {
    let day = chrono::DateTime::from_timestamp(start, 0)
        .unwrap_or_default()
        .format("%Y%m%dT%H%M%SZ");
    format!("{day}.{domain}@{submitter}")
}

/// The JSON report (§4.4) for one policy domain over [start, end).
pub fn json(
    who: &Submitter<'_>,
    domain: &str,
    start: i64,
    end: i64,
    id: &str,
    counts: &[PolicyCounts],
) -> Vec<u8> {
    let none = Policy::none();
    let policies = counts
        .iter()
        .map(|c| {
            let p = c.policy.as_ref().unwrap_or(&none);
            PolicyEntry {
                policy: PolicyOut {
                    kind: &p.kind,
                    strings: &p.strings,
                    domain,
                    mx: &p.mx,
                },
                summary: Summary {
                    success: c.success,
                    failure: c.failure,
                },
                details: &c.details,
            }
        })
        .collect();
    let report = Report {
        organization: who.organization,
        range: DateRange {
            start: rfc3339(start),
            end: rfc3339(end),
        },
        contact: who.contact,
        id,
        policies,
    };
    serde_json::to_vec_pretty(&report).expect("a report always serialises")
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).expect("writing to a Vec");
    enc.finish().expect("writing to a Vec")
}

/// The `mailto:` addresses of the domain's TLSRPT record (§3), from its TXT strings.
/// None when there is not exactly one `v=TLSRPTv1` record (§3: then no report is sent).
pub fn parse_txt(records: &[String]) -> Option<Vec<String>> {
    let ours: Vec<&String> = records
        .iter()
        .filter(|r| {
            r.split(';')
                .next()
                .is_some_and(|v| v.trim() == "v=TLSRPTv1")
        })
        .collect();
    let [record] = ours.as_slice() else {
        return None;
    };
    let rua = record
        .split(';')
        .filter_map(|f| f.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("rua"))?
        .1;
    let mut out = Vec::new();
    for uri in rua.split(',').map(str::trim) {
        // https: rua (§3, HTTPS POST) is not supported: only mail.
        let Some(rest) = uri
            .get(..7)
            .filter(|s| s.eq_ignore_ascii_case("mailto:"))
            .map(|_| &uri[7..])
        else {
            continue;
        };
        let addr = percent_decode(rest.split('?').next().unwrap_or(""));
        if let Some((local, dom)) = addr.rsplit_once('@')
            && !local.is_empty()
            && crate::config::is_domain_name(dom)
            && !addr
                .chars()
                .any(|c| c.is_control() || c == ' ' || c == '<' || c == '>')
            && out.len() < 5
            && !out.contains(&addr)
        {
            out.push(addr);
        }
    }
    Some(out)
}

fn percent_decode(s: &str) -> String {
    fn hex(c: u8) -> Option<u8> {
        (c as char).to_digit(16).map(|d| d as u8)
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push(h << 4 | l);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The report message (§5.3), unsigned; `json` is the uncompressed report.
#[allow(clippy::too_many_arguments)]
pub fn message(
    who: &Submitter<'_>,
    from: &str,
    to: &[String],
    domain: &str,
    start: i64,
    end: i64,
    id: &str,
    json: &[u8],
    now: i64,
) -> Vec<u8> {
    use rand::Rng;
    let boundary = format!("=_postern_tlsrpt_{:016x}", rand::rng().random::<u64>());
    let date = chrono::DateTime::from_timestamp(now, 0)
        .unwrap_or_default()
        .format("%a, %d %b %Y %H:%M:%S +0000");
    let to: Vec<String> = to.iter().map(|a| format!("<{a}>")).collect();
    let mut m = String::new();
    m.push_str(&format!("From: TLS Reporting <{from}>\r\n"));
    m.push_str(&format!("To: {}\r\n", to.join(", ")));
    m.push_str(&format!(
        "Subject: Report Domain: {domain}\r\n Submitter: {}\r\n Report-ID: <{id}>\r\n",
        who.submitter
    ));
    m.push_str(&format!("Date: {date}\r\n"));
    m.push_str(&format!(
        "Message-ID: <tlsrpt.{:016x}.{id}>\r\n",
        rand::rng().random::<u64>()
    ));
    m.push_str(&format!("TLS-Report-Domain: {domain}\r\n"));
    m.push_str(&format!("TLS-Report-Submitter: {}\r\n", who.submitter));
    // RFC 3834 §5: generated automatically; no auto-replies.
    m.push_str("Auto-Submitted: auto-generated\r\n");
    m.push_str("MIME-Version: 1.0\r\n");
    m.push_str(&format!(
        "Content-Type: multipart/report; report-type=\"tlsrpt\";\r\n\tboundary=\"{boundary}\"\r\n"
    ));
    m.push_str("\r\nThis is a multipart message in MIME format.\r\n\r\n");
    m.push_str(&format!("--{boundary}\r\n"));
    m.push_str(
        "Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\n",
    );
    m.push_str(&format!(
        "This is an aggregate TLS report (RFC 8460) from {} for {domain},\r\n{} to {}.\r\n\r\n",
        who.submitter,
        rfc3339(start),
        rfc3339(end)
    ));
    // §5.3: filename = sender "!" policy-domain "!" begin "!" end [ "!" unique-id ] ".json.gz"
    let filename = format!("{}!{domain}!{start}!{end}.json.gz", who.submitter);
    m.push_str(&format!("--{boundary}\r\n"));
    m.push_str("Content-Type: application/tlsrpt+gzip\r\n");
    m.push_str("Content-Transfer-Encoding: base64\r\n");
    m.push_str(&format!(
        "Content-Disposition: attachment;\r\n\tfilename=\"{filename}\"\r\n\r\n"
    ));
    let b64 = base64::engine::general_purpose::STANDARD.encode(gzip(json));
    for chunk in b64.as_bytes().chunks(76) {
        m.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        m.push_str("\r\n");
    }
    m.push_str(&format!("\r\n--{boundary}--\r\n"));
    m.into_bytes()
}
