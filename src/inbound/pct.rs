//! The `pct` tag of a DMARC record (RFC 7489 §6.3, §6.6.4). mail-auth 0.13 follows DMARCbis,
//! which drops `pct` (and honours `t=y` instead), so we read the tag ourselves from the
//! record that applies: the author domain's, else the nearest parent's.

use hickory_resolver::TokioResolver;

/// `pct` of the DMARC record for `from_domain`; 100 when absent, unparsable or unreachable
/// (the record was fetched moments ago by the DMARC check, so this is a cache hit).
pub async fn lookup_pct(resolver: &TokioResolver, from_domain: &str) -> u8 {
    let labels: Vec<&str> = from_domain
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
        .collect();
    // Same shape as the DMARC tree walk: the author domain, then its parents, no deeper
    // than two labels, at most eight queries.
    let mut starts: Vec<usize> = (0..labels.len().saturating_sub(1)).collect();
    if starts.len() > 8 {
        // The author domain, then the seven shortest parents (RFC 9989's eight-query cap).
        let tail = starts.split_off(starts.len() - 7);
        starts.truncate(1);
        starts.extend(tail);
    }
    for start in starts {
        let name = format!("_dmarc.{}.", labels[start..].join("."));
        let Ok(lookup) = resolver.txt_lookup(name.as_str()).await else {
            continue;
        };
        for answer in lookup.answers() {
            let hickory_resolver::proto::rr::RData::TXT(txt) = &answer.data else {
                continue;
            };
            let record: Vec<u8> = txt
                .txt_data
                .iter()
                .flat_map(|d| d.iter().copied())
                .collect();
            let record = String::from_utf8_lossy(&record);
            if is_dmarc(&record) {
                return parse_pct(&record).unwrap_or(100);
            }
        }
    }
    100
}

fn is_dmarc(record: &str) -> bool {
    record
        .split(';')
        .next()
        .is_some_and(|t| t.replace([' ', '\t'], "").eq_ignore_ascii_case("v=DMARC1"))
}

/// The `pct` tag (0..=100) of a DMARC record; None if absent or invalid.
pub fn parse_pct(record: &str) -> Option<u8> {
    record.split(';').find_map(|tag| {
        let (k, v) = tag.split_once('=')?;
        if !k.trim().eq_ignore_ascii_case("pct") {
            return None;
        }
        v.trim().parse::<u8>().ok().filter(|p| *p <= 100)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pct() {
        assert_eq!(parse_pct("v=DMARC1; p=reject; pct=25"), Some(25));
        assert_eq!(
            parse_pct("v=DMARC1;p=reject;PCT = 0 ;rua=mailto:a@b"),
            Some(0)
        );
        assert_eq!(parse_pct("v=DMARC1; p=reject"), None);
        assert_eq!(parse_pct("v=DMARC1; p=reject; pct=101"), None);
        assert_eq!(parse_pct("v=DMARC1; p=reject; pct=x"), None);
        assert!(is_dmarc("v=DMARC1; p=none"));
        assert!(is_dmarc(" v = DMARC1 ;p=none"));
        assert!(!is_dmarc("v=spf1 -all"));
    }
}
