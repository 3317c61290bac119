//! `tls.source = "files"`: the PEM chain and key are reloaded on SIGHUP and whenever either
//! file changes on disk (certbot, acme.sh and friends replace them in place or by rename).
//! Polling the metadata every few seconds is enough for certificates that change every few
//! weeks, needs no inotify limits and also sees a renamed-over symlink target.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::Maintenance;
use super::{CertInfo, install, load_pem_files};

/// How often the files are checked.
const POLL: Duration = Duration::from_secs(2);

/// What identifies a version of a file: modification time, size, inode.
type Stamp = Option<(i64, i64, u64, u64)>;

fn stamp(path: &Path) -> Stamp {
    // `metadata` follows symlinks, so a certbot `live/` link that moves to a new archive file
    // counts as a change.
    std::fs::metadata(path)
        .ok()
        .map(|m| (m.mtime(), m.mtime_nsec(), m.len(), m.ino()))
}

/// Load the configured files and serve them; on failure keep the current certificate.
pub fn reload_files(
    config: &crate::config::Config,
    tls: &super::TlsService,
    metrics: &crate::metrics::Metrics,
    why: &str,
) -> bool {
    let (cert, key) = (&config.tls.cert_file, &config.tls.key_file);
    match load_pem_files(cert, key) {
        Ok(ck) => {
            let serial = CertInfo::of(&ck).map(|i| i.serial).unwrap_or_default();
            install(tls, metrics, ck);
            tracing::info!(
                "certificate reloaded from {} ({why}): serial {serial}",
                cert.display()
            );
            true
        }
        Err(e) => {
            tracing::error!("certificate reload ({why}) failed, keeping the current one: {e}");
            false
        }
    }
}

pub fn spawn(svc: Arc<Maintenance>) {
    let store = super::acme::Store::new(&svc.config.data_dir.join("tls"));
    let task = svc.clone();
    svc.tasks.spawn(async move {
        let svc = task;
        let (cert, key) = (
            svc.config.tls.cert_file.clone(),
            svc.config.tls.key_file.clone(),
        );
        let mut seen = (stamp(&cert), stamp(&key));
        loop {
            tokio::select! {
                _ = svc.shutdown.cancelled() => return,
                _ = tokio::time::sleep(POLL) => {}
            }
            // `postern tls renew` with files: reload now.
            if store.take_renew_request() {
                reload_files(&svc.config, &svc.tls, &svc.metrics, "renewal requested");
            }
            let now = (stamp(&cert), stamp(&key));
            if now != seen {
                seen = now;
                // A failure here (new chain written, key not yet) is retried when the other
                // file changes too, since that changes the stamp again.
                reload_files(&svc.config, &svc.tls, &svc.metrics, "file changed");
            }
        }
    });
}
