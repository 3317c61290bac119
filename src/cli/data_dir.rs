//! The data_dir a command is about to use: checked before anything is read or created there,
//! so a wrong `--config` (or a relative data_dir from elsewhere) fails with a clear line instead
//! of creating a second, empty instance; and the lock that keeps one server per data_dir.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::Path;

use anyhow::{Context, bail};
use fs4::fs_std::FileExt;

use crate::config::Config;

/// "data_dir /x (from the config /etc/postern/postern.toml)".
fn named(config: &Config, config_path: &Path) -> String {
    format!(
        "data_dir {} (from {})",
        config.data_dir.display(),
        std::path::absolute(config_path)
            .unwrap_or_else(|_| config_path.to_owned())
            .display()
    )
}

/// For commands that change accounts or the queue: data_dir must exist (`init` made it).
pub fn require_exists(config: &Config, config_path: &Path) -> anyhow::Result<()> {
    if !config.data_dir.is_dir() {
        bail!(
            "{} does not exist: wrong --config or data_dir? (`postern init` creates it)",
            named(config, config_path)
        );
    }
    Ok(())
}

/// For read-only commands on accounts (`user list`, `alias list`): they never create files.
pub fn require_accounts(config: &Config, config_path: &Path) -> anyhow::Result<()> {
    require_exists(config, config_path)?;
    if !config.data_dir.join("accounts").is_dir() {
        bail!(
            "{} has no accounts: wrong --config or data_dir? (`postern user add` creates the first)",
            named(config, config_path)
        );
    }
    Ok(())
}

/// For `dns` and `check`: the DKIM key must already be there; they never create one (a new key
/// printed by `dns` would not be the one the server signs with).
pub fn require_dkim_key(config: &Config, config_path: &Path) -> anyhow::Result<()> {
    require_exists(config, config_path)?;
    let key = crate::delivery::dkim::rsa_key_path(&config.data_dir);
    if !key.is_file() {
        bail!(
            "{} has no DKIM key ({}): wrong --config or data_dir? (`postern init` creates it)",
            named(config, config_path),
            key.display()
        );
    }
    Ok(())
}

/// The layout version of a data_dir, recorded in `data_dir/postern-format`. A binary that
/// finds an older version migrates in place (file by file, as the UID list P1→P2 upgrade
/// does) and records its own; one that finds a newer version refuses to start rather than
/// misread files it does not know.
pub const DATA_FORMAT: u32 = 1;

/// At `serve`/`dev`, under the server lock: record or check the data format.
pub fn check_format(data_dir: &Path) -> anyhow::Result<()> {
    let marker = data_dir.join("postern-format");
    let found = match std::fs::read_to_string(&marker) {
        Ok(text) => text.trim().parse::<u32>().with_context(|| {
            format!(
                "{} does not hold a format number: {text:?}",
                marker.display()
            )
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", marker.display())),
    };
    if found > DATA_FORMAT {
        bail!(
            "{} was written by a newer postern (data format {found}); this postern {} knows format {DATA_FORMAT} at most: install the newer version again",
            data_dir.display(),
            env!("CARGO_PKG_VERSION")
        );
    }
    if found < DATA_FORMAT {
        // Format 0 (no marker) is what every postern before the marker wrote: the same layout.
        crate::fsutil::write_atomic(&marker, format!("{DATA_FORMAT}\n").as_bytes(), 0o644)
            .with_context(|| format!("cannot write {}", marker.display()))?;
    }
    Ok(())
}

/// Held while a server runs on a data_dir: a second `serve`/`dev` on the same one is refused,
/// naming the pid that holds it. The kernel drops the lock when the process ends, however it
/// ends, so a stale file never blocks a start.
pub struct ServerLock {
    _file: File,
}

impl ServerLock {
    pub fn take(data_dir: &Path) -> anyhow::Result<ServerLock> {
        let path = data_dir.join("postern.pid");
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("cannot open the lock file {}", path.display()))?;
        match file.try_lock_exclusive() {
            Ok(true) => {}
            Ok(false) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = pid.trim();
                bail!(
                    "another postern (pid {}) is running on {}; stop it first (one server per data_dir)",
                    if pid.is_empty() { "unknown" } else { pid },
                    data_dir.display()
                );
            }
            Err(e) => {
                return Err(e).with_context(|| format!("cannot lock {}", path.display()));
            }
        }
        file.set_len(0)?;
        file.rewind()?;
        writeln!(file, "{}", std::process::id())?;
        Ok(ServerLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_names_the_first_pid() {
        let d = tempfile::tempdir().unwrap();
        let first = ServerLock::take(d.path()).unwrap();
        let pid = std::fs::read_to_string(d.path().join("postern.pid")).unwrap();
        assert_eq!(pid.trim(), std::process::id().to_string());
        // flock(2) locks belong to the open file description: a second open conflicts even
        // within one process, as a second server would.
        let e = ServerLock::take(d.path()).err().unwrap().to_string();
        assert!(
            e.contains(&format!("another postern (pid {})", std::process::id())),
            "{e}"
        );
        drop(first);
        ServerLock::take(d.path()).unwrap();
    }

    #[test]
    fn the_data_format_is_recorded_and_a_newer_one_refused() {
        let d = tempfile::tempdir().unwrap();
        check_format(d.path()).unwrap();
        let marker = d.path().join("postern-format");
        assert_eq!(
            std::fs::read_to_string(&marker).unwrap(),
            format!("{DATA_FORMAT}\n")
        );
        check_format(d.path()).unwrap();
        std::fs::write(&marker, format!("{}\n", DATA_FORMAT + 1)).unwrap();
        let e = check_format(d.path()).unwrap_err().to_string();
        assert!(
            e.contains(&format!(
                "newer postern (data format {}); this postern",
                DATA_FORMAT + 1
            )),
            "{e}"
        );
        assert!(
            e.contains(&format!("knows format {DATA_FORMAT} at most")),
            "{e}"
        );
    }
}
