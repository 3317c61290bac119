//! The on-disk form of accounts: `accounts/users.toml` and `accounts/aliases.toml`.
//! Every change is read-modify-write under an exclusive lock on `accounts/.lock`, and each file
//! is replaced atomically (crate::fsutil::write_atomic), so a reader sees the old or the new
//! file, never half of one.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use fs4::fs_std::FileExt;
use serde::{Deserialize, Serialize};

use super::AccountError;
use crate::fsutil::write_atomic;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserEntry {
    /// argon2id PHC string.
    pub password: String,
}

pub type UserMap = BTreeMap<String, UserEntry>;
/// alias address (or `@domain` for the catch-all) → target addresses.
pub type AliasMap = BTreeMap<String, Vec<String>>;

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    #[serde(default)]
    users: UserMap,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AliasesFile {
    #[serde(default)]
    aliases: AliasMap,
}

pub struct AccountFiles {
    dir: PathBuf,
}

impl AccountFiles {
    pub fn new(data_dir: &Path) -> AccountFiles {
        AccountFiles {
            dir: data_dir.join("accounts"),
        }
    }

    pub fn ensure_dir(&self) -> std::io::Result<()> {
        fs::create_dir_all(&self.dir)
    }

    fn users_path(&self) -> PathBuf {
        self.dir.join("users.toml")
    }

    fn aliases_path(&self) -> PathBuf {
        self.dir.join("aliases.toml")
    }

    /// Modification times of both files: a cheap "did anything change?" check.
    pub fn stamp(&self) -> (Option<SystemTime>, Option<SystemTime>) {
        let m = |p: PathBuf| fs::metadata(p).and_then(|m| m.modified()).ok();
        (m(self.users_path()), m(self.aliases_path()))
    }

    pub fn read_all(&self) -> Result<(UserMap, AliasMap), AccountError> {
        let users: UsersFile = read_toml(&self.users_path())?;
        let aliases: AliasesFile = read_toml(&self.aliases_path())?;
        Ok((users.users, aliases.aliases))
    }

    /// Apply `change` to the current contents under the lock and write both files back.
    pub fn update(
        &self,
        change: impl FnOnce(&mut UserMap, &mut AliasMap) -> Result<(), AccountError>,
    ) -> Result<(), AccountError> {
        self.ensure_dir()?;
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join(".lock"))?;
        lock.lock_exclusive()?;
        let (mut users, mut aliases) = self.read_all()?;
        change(&mut users, &mut aliases)?;
        let u = toml::to_string(&UsersFile { users }).map_err(|e| AccountError::Format {
            path: self.users_path(),
            message: e.to_string(),
        })?;
        let a = toml::to_string(&AliasesFile { aliases }).map_err(|e| AccountError::Format {
            path: self.aliases_path(),
            message: e.to_string(),
        })?;
        write_atomic(&self.users_path(), u.as_bytes(), 0o600)?;
        write_atomic(&self.aliases_path(), a.as_bytes(), 0o644)?;
        FileExt::unlock(&lock)?;
        Ok(())
    }
}

fn read_toml<T: Default + for<'de> Deserialize<'de>>(path: &Path) -> Result<T, AccountError> {
    match fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).map_err(|e| AccountError::Format {
            path: path.to_owned(),
            message: e
                .to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(e.into()),
    }
}
