//! The outbound queue: durable spool under `data_dir/queue`, scheduler, DSN bounces.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::server::Services;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Other(String),
}

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

    /// Store a message for remote delivery. When this returns Ok, the message and its
    /// envelope are fsynced; the caller may answer 250. `mail_from` is empty for the null
    /// reverse-path (bounces). Returns the queue id.
    pub async fn enqueue(
        &self,
        _mail_from: &str,
        _rcpts: &[String],
        _message: &[u8],
    ) -> Result<String, QueueError> {
        Err(QueueError::Other(
            "the outbound queue is not built yet".into(),
        ))
    }
}

pub fn spawn_scheduler(_svc: Arc<Services>) {}
