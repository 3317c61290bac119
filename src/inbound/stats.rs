//! Counters of inbound verdicts, rendered in the Prometheus text format (a block the
//! `/metrics` page can append: `svc.authenticator.stats().render_prometheus()`).

use std::sync::atomic::{AtomicU64, Ordering};

use super::Disposition;
use super::policy::DmarcStatus;

/// Result labels shared by the SPF, DKIM and DMARC counters.
const RESULTS: [&str; 5] = ["pass", "fail", "none", "temperror", "permerror"];
const DISPOSITIONS: [&str; 4] = ["accept", "junk", "reject", "tempfail"];

#[derive(Default, Debug)]
pub struct InboundStats {
    spf: [AtomicU64; 5],
    dkim: [AtomicU64; 5],
    dmarc: [AtomicU64; 5],
    verdicts: [AtomicU64; 4],
}

/// A check's outcome reduced to the RFC 8601 result words we count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Fail,
    None,
    TempError,
    PermError,
}

impl Outcome {
    fn index(self) -> usize {
        self as usize
    }
}

impl From<DmarcStatus> for Outcome {
    fn from(s: DmarcStatus) -> Outcome {
        match s {
            DmarcStatus::Pass => Outcome::Pass,
            DmarcStatus::Fail(_) => Outcome::Fail,
            DmarcStatus::None => Outcome::None,
            DmarcStatus::TempError => Outcome::TempError,
            DmarcStatus::PermError => Outcome::PermError,
        }
    }
}

impl InboundStats {
    pub fn record(&self, spf: Outcome, dkim: Outcome, dmarc: Outcome, d: &Disposition) {
        self.spf[spf.index()].fetch_add(1, Ordering::Relaxed);
        self.dkim[dkim.index()].fetch_add(1, Ordering::Relaxed);
        self.dmarc[dmarc.index()].fetch_add(1, Ordering::Relaxed);
        let i = match d {
            Disposition::Accept => 0,
            Disposition::Junk => 1,
            Disposition::Reject { .. } => 2,
            Disposition::TempFail { .. } => 3,
        };
        self.verdicts[i].fetch_add(1, Ordering::Relaxed);
    }

    pub fn render_prometheus(&self) -> String {
        let mut out = String::new();
        let mut family = |name: &str, help: &str, label: &str, names: &[&str], v: &[AtomicU64]| {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n"));
            for (n, c) in names.iter().zip(v) {
                out.push_str(&format!(
                    "{name}{{{label}=\"{n}\"}} {}\n",
                    c.load(Ordering::Relaxed)
                ));
            }
        };
        family(
            "postern_inbound_spf_total",
            "SPF results of the MAIL FROM identity (HELO for the null sender) on port 25.",
            "result",
            &RESULTS,
            &self.spf,
        );
        family(
            "postern_inbound_dkim_total",
            "Per message: pass if any DKIM signature verified, else the first signature's result.",
            "result",
            &RESULTS,
            &self.dkim,
        );
        family(
            "postern_inbound_dmarc_total",
            "DMARC results on port 25.",
            "result",
            &RESULTS,
            &self.dmarc,
        );
        family(
            "postern_inbound_verdicts_total",
            "What port 25 did with checked messages.",
            "disposition",
            &DISPOSITIONS,
            &self.verdicts,
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_renders() {
        let s = InboundStats::default();
        s.record(
            Outcome::Pass,
            Outcome::None,
            Outcome::Fail,
            &Disposition::Junk,
        );
        let text = s.render_prometheus();
        assert!(text.contains("postern_inbound_spf_total{result=\"pass\"} 1\n"));
        assert!(text.contains("postern_inbound_dkim_total{result=\"none\"} 1\n"));
        assert!(text.contains("postern_inbound_dmarc_total{result=\"fail\"} 1\n"));
        assert!(text.contains("postern_inbound_verdicts_total{disposition=\"junk\"} 1\n"));
        assert!(text.contains("postern_inbound_verdicts_total{disposition=\"accept\"} 0\n"));
        assert!(text.contains("# TYPE postern_inbound_dmarc_total counter\n"));
    }
}
