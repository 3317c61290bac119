//! Telling "no record" from "DNS broken". mail-auth maps a SERVFAIL/REFUSED answer to
//! "record not found", which would turn an unreachable zone into SPF/DMARC "none" — a silent
//! pass. Where a check came back "none" we ask once more and look at the response code.

use hickory_resolver::TokioResolver;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;

/// Whether a TXT lookup of `name` fails for a reason other than "the name or record does
/// not exist" (timeout, SERVFAIL, REFUSED, network error).
pub async fn txt_lookup_fails(resolver: &TokioResolver, name: &str) -> bool {
    match resolver.txt_lookup(name).await {
        Ok(_) => false,
        Err(e) => is_temporary(&e),
    }
}

pub fn is_temporary(e: &NetError) -> bool {
    match e {
        NetError::Dns(DnsError::NoRecordsFound(nr)) => !is_definitive(nr.response_code),
        _ => true,
    }
}

/// Response codes that are a real answer: the name does not exist, or has no such record.
pub fn is_definitive(code: ResponseCode) -> bool {
    matches!(code, ResponseCode::NXDomain | ResponseCode::NoError)
}
