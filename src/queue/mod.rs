//! The outbound queue: durable spool under `data_dir/queue`, scheduler, DSN bounces.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::server::Services;

pub struct Queue {
    dir: PathBuf,
}

impl Queue {
    pub fn open(data_dir: &Path) -> std::io::Result<Queue> {
        let dir = data_dir.join("queue");
        std::fs::create_dir_all(&dir)?;
        Ok(Queue { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

pub fn spawn_scheduler(_svc: Arc<Services>) {}
