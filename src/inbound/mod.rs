//! Inbound trust for mail arriving on port 25: SPF, DKIM, DMARC, iprev verdicts and the
//! Authentication-Results header (RFC 8601).
