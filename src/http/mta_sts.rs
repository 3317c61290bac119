//! The MTA-STS policy (RFC 8461) for our domain: served at
//! `https://mta-sts.DOMAIN/.well-known/mta-sts.txt`, announced by the `_mta-sts.DOMAIN` TXT
//! record whose `id` changes whenever the policy text changes (§3.1).

use crate::config::Config;

/// The policy file (RFC 8461 §3.2): `version`, `mode`, one `mx` per MX host (ours is
/// `hostname`), `max_age` in seconds. Lines end in CRLF, which §3.2 allows (LF too).
pub fn policy(config: &Config) -> String {
    format!(
        "version: STSv1\r\nmode: {}\r\nmx: {}\r\nmax_age: {}\r\n",
        config.http.mta_sts_mode, config.hostname, config.http.mta_sts_max_age
    )
}

/// The `id` of the `_mta-sts` TXT record: 1–32 letters/digits (§3.1). Derived from the policy
/// text (FNV-1a, 64 bit, in hex) so it changes exactly when the served policy changes and
/// `postern dns` prints the same value every time for the same config.
pub fn policy_id(config: &Config) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in policy(config).bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The `_mta-sts.DOMAIN` TXT value.
pub fn txt_record(config: &Config) -> String {
    format!("v=STSv1; id={}", policy_id(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn cfg(extra: &str) -> Config {
        Config::parse(
            &format!("domain='example.com'\nhostname='mail.example.com'\ndata_dir='/x'\n{extra}"),
            Path::new("t.toml"),
        )
        .unwrap()
    }

    #[test]
    fn policy_has_every_field() {
        let p = policy(&cfg(
            "[http]\nmta_sts_mode='enforce'\nmta_sts_max_age=86400",
        ));
        assert_eq!(
            p,
            "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmax_age: 86400\r\n"
        );
    }

    #[test]
    fn id_is_stable_and_follows_the_policy() {
        let a = cfg("");
        let b = cfg("[http]\nmta_sts_mode='enforce'");
        assert_eq!(policy_id(&a), policy_id(&a.clone()));
        assert_ne!(policy_id(&a), policy_id(&b));
        let id = policy_id(&a);
        assert!(id.len() <= 32 && id.chars().all(|c| c.is_ascii_alphanumeric()));
        assert!(txt_record(&a).starts_with("v=STSv1; id="));
    }
}
