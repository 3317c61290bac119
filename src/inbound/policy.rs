//! From verdicts to a disposition: DMARC policy (RFC 7489 §6.3, §6.6.4, §6.7) under the
//! `[inbound]` switches, and temporary DNS failures turned into 4xx (never a silent pass).

use mail_auth::dmarc::Policy;

use super::Disposition;
use crate::config::Inbound;

/// The DMARC evaluation reduced to what policy needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmarcStatus {
    Pass,
    /// Not aligned; carries the policy the domain asks for (after `t=y` and `pct`).
    Fail(Policy),
    /// No policy record, or no usable From domain.
    None,
    PermError,
    TempError,
}

#[derive(Debug, Clone)]
pub struct Findings<'a> {
    pub dmarc: DmarcStatus,
    /// The RFC 5322.From domain DMARC was evaluated for.
    pub from_domain: &'a str,
    /// A DNS lookup for SPF (the identity DMARC uses), DKIM or DMARC failed temporarily.
    pub dns_temp: bool,
}

pub fn decide(cfg: &Inbound, f: &Findings<'_>) -> Disposition {
    // A DNS failure can hide the verdict that decides the message's fate; unless DMARC already
    // passed, ask the sender to retry instead of accepting unchecked mail (RFC 7489 §6.6.2
    // leaves temporary errors to local policy; RFC 7208 §2.6.6 "temperror").
    if f.dns_temp && f.dmarc != DmarcStatus::Pass && cfg.tempfail_on_dns_error {
        return Disposition::TempFail {
            code: 451,
            enhanced: "4.4.3".into(),
            text: "Temporary DNS failure while checking SPF/DKIM/DMARC; try again later".into(),
        };
    }
    match f.dmarc {
        DmarcStatus::Fail(Policy::Reject) if cfg.dmarc_reject => Disposition::Reject {
            code: 550,
            enhanced: "5.7.1".into(),
            text: format!(
                "Message rejected: it fails the DMARC policy (p=reject) of {}",
                f.from_domain
            ),
        },
        // With rejection relaxed, the next lower action still applies (RFC 7489 §6.7 lets
        // the receiver substitute a milder local action).
        DmarcStatus::Fail(Policy::Reject | Policy::Quarantine) if cfg.dmarc_quarantine => {
            Disposition::Junk
        }
        _ => Disposition::Accept,
    }
}

/// RFC 7489 §6.6.4: a message not selected by `pct` gets the next lower policy.
/// `roll` is uniform in 0..100.
pub fn apply_pct(policy: Policy, pct: u8, roll: u8) -> Policy {
    if pct >= 100 || roll < pct {
        return policy;
    }
    match policy {
        Policy::Reject => Policy::Quarantine,
        Policy::Quarantine => Policy::None,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(dmarc: DmarcStatus, dns_temp: bool) -> Findings<'static> {
        Findings {
            dmarc,
            from_domain: "sender.test",
            dns_temp,
        }
    }

    #[test]
    fn defaults() {
        let cfg = Inbound::default();
        assert!(matches!(
            decide(&cfg, &f(DmarcStatus::Fail(Policy::Reject), false)),
            Disposition::Reject { code: 550, ref enhanced, .. } if enhanced == "5.7.1"
        ));
        assert_eq!(
            decide(&cfg, &f(DmarcStatus::Fail(Policy::Quarantine), false)),
            Disposition::Junk
        );
        assert_eq!(
            decide(&cfg, &f(DmarcStatus::Fail(Policy::None), false)),
            Disposition::Accept
        );
        assert_eq!(
            decide(&cfg, &f(DmarcStatus::Pass, true)),
            Disposition::Accept
        );
        assert_eq!(
            decide(&cfg, &f(DmarcStatus::None, false)),
            Disposition::Accept
        );
        assert_eq!(
            decide(&cfg, &f(DmarcStatus::PermError, false)),
            Disposition::Accept
        );
        for s in [
            DmarcStatus::None,
            DmarcStatus::TempError,
            DmarcStatus::Fail(Policy::Reject),
        ] {
            assert!(matches!(
                decide(&cfg, &f(s, true)),
                Disposition::TempFail { code: 451, ref enhanced, .. } if enhanced == "4.4.3"
            ));
        }
    }

    #[test]
    fn switches() {
        let mut cfg = Inbound {
            dmarc_reject: false,
            ..Inbound::default()
        };
        assert_eq!(
            decide(&cfg, &f(DmarcStatus::Fail(Policy::Reject), false)),
            Disposition::Junk
        );
        cfg.dmarc_quarantine = false;
        assert_eq!(
            decide(&cfg, &f(DmarcStatus::Fail(Policy::Reject), false)),
            Disposition::Accept
        );
        assert_eq!(
            decide(&cfg, &f(DmarcStatus::Fail(Policy::Quarantine), false)),
            Disposition::Accept
        );
        cfg.tempfail_on_dns_error = false;
        assert_eq!(
            decide(&cfg, &f(DmarcStatus::TempError, true)),
            Disposition::Accept
        );
    }

    #[test]
    fn pct_sampling() {
        assert_eq!(apply_pct(Policy::Reject, 100, 99), Policy::Reject);
        assert_eq!(apply_pct(Policy::Reject, 30, 29), Policy::Reject);
        assert_eq!(apply_pct(Policy::Reject, 30, 30), Policy::Quarantine);
        assert_eq!(apply_pct(Policy::Quarantine, 0, 0), Policy::None);
        assert_eq!(apply_pct(Policy::None, 0, 50), Policy::None);
    }
}
