//! When to renew: pure arithmetic on Unix seconds, kept apart from the I/O so it is tested.

use std::time::Duration;

/// Renew when a third of the certificate's lifetime is left (30 days of Let's Encrypt's 90;
/// 2 of a 6-day short-lived certificate).
pub fn lifetime_due(not_before: i64, not_after: i64) -> i64 {
    not_after - (not_after - not_before).max(0) / 3
}

/// RFC 9773 §4.2: pick a uniformly random time inside the suggested window, so that clients
/// of a CA do not all come at once. `fraction` is in [0, 1).
pub fn ari_pick(start: i64, end: i64, fraction: f64) -> i64 {
    if end <= start {
        return start;
    }
    start + ((end - start) as f64 * fraction.clamp(0.0, 1.0)) as i64
}

/// How long to wait before polling renewal info again: the CA's Retry-After, bounded to at
/// least a minute and at most a day (RFC 9773 §4.3 lets clients cap it).
pub fn ari_recheck(retry_after: Duration) -> Duration {
    retry_after.clamp(Duration::from_secs(60), Duration::from_secs(24 * 3600))
}

/// Delay after the `failures`-th failed attempt in a row: 1, 2, 4, … minutes, at most 6 hours
/// (CAs rate-limit failed validations, e.g. Let's Encrypt 5 per hour per name).
pub fn backoff(failures: u32) -> Duration {
    let minutes = 1u64 << failures.saturating_sub(1).min(9);
    Duration::from_secs((minutes * 60).min(6 * 3600))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_third_of_the_lifetime() {
        let day = 86_400;
        assert_eq!(lifetime_due(0, 90 * day), 60 * day);
        assert_eq!(lifetime_due(100, 100), 100);
    }

    #[test]
    fn ari_window() {
        assert_eq!(ari_pick(10, 20, 0.0), 10);
        assert_eq!(ari_pick(10, 20, 0.5), 15);
        assert!(ari_pick(10, 20, 0.999) < 20);
        assert_eq!(ari_pick(30, 20, 0.5), 30);
        assert_eq!(ari_recheck(Duration::ZERO), Duration::from_secs(60));
        assert_eq!(
            ari_recheck(Duration::from_secs(7 * 86_400)),
            Duration::from_secs(86_400)
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_secs(60));
        assert_eq!(backoff(2), Duration::from_secs(120));
        assert_eq!(backoff(3), Duration::from_secs(240));
        assert_eq!(backoff(40), Duration::from_secs(6 * 3600));
    }
}
