//! The SPF/DKIM/DMARC/iprev verifier, built once per server from the shared resolver (which
//! honours `[dns].nameservers` and `[dns].timeout_secs`) and kept in `Services`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use hickory_resolver::TokioResolver;
use mail_auth::{MX, MessageAuthenticator, Parameters, RecordSet, Txt};

use super::cache::RecordCache;
use super::stats::InboundStats;

pub(crate) struct Caches {
    pub txt: RecordCache<Box<str>, Txt>,
    pub mx: RecordCache<Box<str>, RecordSet<MX>>,
    pub ptr: RecordCache<IpAddr, RecordSet<Box<str>>>,
    pub ipv4: RecordCache<Box<str>, RecordSet<Ipv4Addr>>,
    pub ipv6: RecordCache<Box<str>, RecordSet<Ipv6Addr>>,
}

/// Cheap to clone: the resolver and the caches are shared.
#[derive(Clone)]
pub struct Authenticator {
    pub(crate) inner: MessageAuthenticator,
    pub(crate) caches: Arc<Caches>,
    pub(crate) stats: Arc<InboundStats>,
}

impl Authenticator {
    /// Wrap the server's resolver (a clone shares its connections and answer cache).
    pub fn new(resolver: TokioResolver) -> Authenticator {
        Authenticator {
            inner: MessageAuthenticator(resolver),
            caches: Arc::new(Caches {
                txt: RecordCache::new(),
                mx: RecordCache::new(),
                ptr: RecordCache::new(),
                ipv4: RecordCache::new(),
                ipv6: RecordCache::new(),
            }),
            stats: Arc::new(InboundStats::default()),
        }
    }

    /// Verdict counters for the metrics page.
    pub fn stats(&self) -> &InboundStats {
        &self.stats
    }

    pub(crate) fn resolver(&self) -> &TokioResolver {
        &self.inner.0
    }

    /// mail-auth parameters that read and fill our caches.
    #[allow(clippy::type_complexity)]
    pub(crate) fn params<T>(
        &self,
        p: T,
    ) -> Parameters<
        '_,
        T,
        RecordCache<Box<str>, Txt>,
        RecordCache<Box<str>, RecordSet<MX>>,
        RecordCache<Box<str>, RecordSet<Ipv4Addr>>,
        RecordCache<Box<str>, RecordSet<Ipv6Addr>>,
        RecordCache<IpAddr, RecordSet<Box<str>>>,
    > {
        let c = &*self.caches;
        Parameters::new(p)
            .with_txt_cache(&c.txt)
            .with_mx_cache(&c.mx)
            .with_ptr_cache(&c.ptr)
            .with_ipv4_cache(&c.ipv4)
            .with_ipv6_cache(&c.ipv6)
    }
}
