//! The DNS resolver every part shares (outbound MX lookups, SPF/DKIM/DMARC checks,
//! `postern check`), built from `[dns]`: the listed servers, or the system's resolv.conf.

pub mod dnssec;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use std::time::Duration;

use crate::config::Dns;

#[derive(Debug, thiserror::Error)]
#[error("DNS resolver setup failed: {0} (set [dns].nameservers in the config)")]
pub struct DnsError(String);

pub fn build_resolver(cfg: &Dns) -> Result<TokioResolver, DnsError> {
    let mut builder = if cfg.nameservers.is_empty() {
        TokioResolver::builder_tokio().map_err(|e| DnsError(e.to_string()))?
    } else {
        let servers = cfg
            .nameservers
            .iter()
            .map(|sa| {
                let mut udp = ConnectionConfig::udp();
                udp.port = sa.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = sa.port();
                NameServerConfig::new(sa.ip(), true, vec![udp, tcp])
            })
            .collect();
        TokioResolver::builder_with_config(
            ResolverConfig::from_name_servers(servers),
            TokioRuntimeProvider::default(),
        )
    };
    let opts: &mut ResolverOpts = builder.options_mut();
    opts.timeout = Duration::from_secs(cfg.timeout_secs.max(1));
    opts.attempts = 2;
    // Mail checks need fresh answers while an operator fixes records; keep caching modest.
    opts.cache_size = 1024;
    builder.build().map_err(|e| DnsError(e.to_string()))
}
