//! RFC 5260 date parts (§4.2) of a moment shown in a zone.

use chrono::{Datelike, FixedOffset, TimeZone, Timelike};

pub const PARTS: &[&str] = &[
    "year", "month", "day", "date", "julian", "hour", "minute", "second", "time", "iso8601",
    "std11", "zone", "weekday",
];

/// `+hhmm` / `-hhmm` as seconds east of UTC.
pub fn parse_zone(z: &str) -> Option<i32> {
    let b = z.as_bytes();
    if b.len() != 5 || !matches!(b[0], b'+' | b'-') || !b[1..].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let h: i32 = z[1..3].parse().ok()?;
    let m: i32 = z[3..5].parse().ok()?;
    if h > 23 || m > 59 {
        return None;
    }
    let s = (h * 60 + m) * 60;
    Some(if b[0] == b'-' { -s } else { s })
}

/// A Date-style header value: the moment and the zone it was written in (seconds east).
pub fn parse_header_date(raw: &[u8]) -> Option<(i64, i32)> {
    let mut v = raw.to_vec();
    v.extend_from_slice(b"\r\n");
    match mail_parser::parsers::MessageStream::new(&v).parse_date() {
        mail_parser::HeaderValue::DateTime(d) => {
            let off = (d.tz_hour as i32 * 60 + d.tz_minute as i32) * 60;
            let off = if d.tz_before_gmt { -off } else { off };
            Some((d.to_timestamp(), off))
        }
        _ => None,
    }
}

/// The value of `part` for `ts` seen at `offset` seconds east of UTC.
pub fn part(ts: i64, offset: i32, part: &str) -> Option<String> {
    let tz = FixedOffset::east_opt(offset)?;
    let t = tz.timestamp_opt(ts, 0).single()?;
    let zone = {
        let a = offset.abs() / 60;
        format!(
            "{}{:02}{:02}",
            if offset < 0 { '-' } else { '+' },
            a / 60,
            a % 60
        )
    };
    Some(match part {
        "year" => format!("{:04}", t.year()),
        "month" => format!("{:02}", t.month()),
        "day" => format!("{:02}", t.day()),
        "date" => format!("{:04}-{:02}-{:02}", t.year(), t.month(), t.day()),
        // Modified Julian Day: days since 1858-11-17.
        "julian" => ((ts + offset as i64).div_euclid(86_400) + 40_587).to_string(),
        "hour" => format!("{:02}", t.hour()),
        "minute" => format!("{:02}", t.minute()),
        "second" => format!("{:02}", t.second()),
        "time" => format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second()),
        "iso8601" => t.format("%Y-%m-%dT%H:%M:%S%:z").to_string(),
        "std11" => t.format("%a, %d %b %Y %H:%M:%S ").to_string() + &zone,
        "zone" => zone,
        "weekday" => t.weekday().num_days_from_sunday().to_string(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts() {
        // 2026-12-06 16:00:00 UTC, a Sunday.
        let ts = 1_796_572_800;
        assert_eq!(part(ts, 0, "date").unwrap(), "2026-12-06");
        assert_eq!(part(ts, 0, "weekday").unwrap(), "0");
        assert_eq!(part(ts, 3600, "time").unwrap(), "17:00:00");
        assert_eq!(part(ts, -5 * 3600, "zone").unwrap(), "-0500");
        assert_eq!(part(ts, 0, "julian").unwrap(), "61380");
        assert_eq!(parse_zone("+0130"), Some(5400));
        assert_eq!(parse_zone("0130"), None);
        let (t, off) = parse_header_date(b" Sun, 6 Dec 2026 17:00:00 +0100").unwrap();
        assert_eq!((t, off), (ts, 3600));
    }
}
